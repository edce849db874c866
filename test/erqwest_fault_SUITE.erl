%% Faults on the wire, in the runtime and in the processes that own
%% requests. Every wire fault is tried with a complete body, a streamed
%% response body and a streamed request body; each time the suite checks
%% the err() code, that exactly one final message arrives (and nothing
%% after it), that no NIF resource is left behind, and that the same
%% client still works once the server behaves again.
-module(erqwest_fault_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, groups/0, suite/0, init_per_suite/1, end_per_suite/1,
         init_per_group/2, end_per_group/2, init_per_testcase/2, end_per_testcase/2]).
-export([refused_connection/1, dns_failure/1, close_before_response/1,
         close_mid_headers/1, close_mid_body_content_length/1, close_mid_body_chunked/1,
         garbage_instead_of_http/1, oversized_header_block/1, tcp_reset/1,
         stall_request_timeout/1, stall_client_timeout/1, stall_read_timeout/1,
         stall_connect_timeout/1, slowloris_total_timeout/1, stall_mid_body_read_timeout/1,
         tls_untrusted_certificate/1, tls_wrong_hostname/1, redirect_loop/1,
         proxy_refuses_tunnel/1, proxy_refusal_is_its_answer/1, proxy_closes/1]).
-export([wire_faults_leave_nothing_behind/1]).
-export([stop_app_with_1000_in_flight/1, runtime_owner_killed/1,
         panic_in_nif_call/1, panic_in_request_task/1]).
-export([kill_1000_owners_mid_request/1, owner_dies_before_request_starts/1]).

-define(VARIANTS, [complete, stream_response, stream_upload]).

suite() -> [{timetrap, {minutes, 5}}].

all() -> [{group, wire}, wire_faults_leave_nothing_behind, {group, owner}, {group, runtime},
          {group, panic}].

groups() ->
    [{wire, [parallel],
      [refused_connection, dns_failure, close_before_response, close_mid_headers,
       close_mid_body_content_length, close_mid_body_chunked, garbage_instead_of_http,
       oversized_header_block, tcp_reset, stall_request_timeout, stall_client_timeout,
       stall_read_timeout, stall_connect_timeout, slowloris_total_timeout,
       stall_mid_body_read_timeout, tls_untrusted_certificate, tls_wrong_hostname,
       redirect_loop, proxy_refuses_tunnel, proxy_refusal_is_its_answer, proxy_closes]},
     {owner, [], [kill_1000_owners_mid_request, owner_dies_before_request_starts]},
     {runtime, [], [stop_app_with_1000_in_flight, runtime_owner_killed]},
     {panic, [], [panic_in_nif_call, panic_in_request_task]}].

init_per_suite(Config) ->
    {ok, _} = application:ensure_all_started(ssl),
    {ok, _} = application:ensure_all_started(erqwest),
    %% TLS alerts from failed handshakes are expected here.
    logger:set_application_level(ssl, none),
    Certs = erqwest_fault_server:make_certs(filename:join(?config(priv_dir, Config), "certs")),
    [{certs, Certs}, {suite_baseline, erqwest_check:baseline()} | Config].

end_per_suite(_Config) ->
    ok.

init_per_group(panic, Config) ->
    erqwest_fault_peer:init(Config);
init_per_group(wire, Config) ->
    %% Cases run in parallel: leaks are checked once, after the group.
    [{parallel, true} | Config];
init_per_group(_, Config) ->
    Config.

end_per_group(panic, Config) ->
    erqwest_fault_peer:stop(Config);
end_per_group(_, _Config) ->
    ok.

init_per_testcase(_, Config) ->
    case ?config(parallel, Config) of
        true -> Config;
        _ -> [{baseline, erqwest_check:baseline()} | Config]
    end.

end_per_testcase(_, _Config) ->
    ok.

%%% Wire faults

refused_connection(Config) ->
    {ok, L} = gen_tcp:listen(0, [{ip, {127, 0, 0, 1}}]),
    {ok, Port} = inet:port(L),
    ok = gen_tcp:close(L),
    Url = iolist_to_binary(["http://127.0.0.1:", integer_to_list(Port), "/"]),
    C = erqwest:make_client(),
    each_variant(C, Url, #{}, connect),
    still_works(C, Config).

dns_failure(Config) ->
    C = erqwest:make_client(),
    %% .invalid never resolves (RFC 6761), so no name server is involved.
    each_variant(C, <<"http://erqwest-test.invalid/">>, #{}, connect),
    still_works(C, Config).

close_before_response(Config) ->
    wire_fault(Config, close_before_response, #{}, request).

close_mid_headers(Config) ->
    wire_fault(Config, close_mid_headers, #{}, request).

close_mid_body_content_length(Config) ->
    wire_fault(Config, close_mid_body, #{}, body).

close_mid_body_chunked(Config) ->
    wire_fault(Config, close_mid_chunked, #{}, body).

garbage_instead_of_http(Config) ->
    wire_fault(Config, garbage, #{}, request).

oversized_header_block(Config) ->
    wire_fault(Config, oversized_headers, #{}, request).

tcp_reset(Config) ->
    wire_fault(Config, reset, #{}, request).

%% The request's own `timeout'.
stall_request_timeout(Config) ->
    wire_fault(Config, stall, #{}, #{timeout => 300}, timeout).

%% The client's `timeout'.
stall_client_timeout(Config) ->
    wire_fault(Config, stall, #{timeout => 300}, timeout).

stall_read_timeout(Config) ->
    wire_fault(Config, stall, #{read_timeout => 300}, timeout).

%% A trickle of header bytes defeats a read timeout; the total timeout
%% still ends the request.
slowloris_total_timeout(Config) ->
    wire_fault(Config, {slowloris, 50}, #{read_timeout => 5000, timeout => 600}, timeout).

stall_mid_body_read_timeout(Config) ->
    wire_fault(Config, stall_body, #{read_timeout => 300}, timeout).

%% A listener that never accepts, with its queue full: the SYN is never
%% answered, so only `connect_timeout' ends the wait.
stall_connect_timeout(Config) ->
    {ok, S} = erqwest_fault_server:start(echo, #{accept => false, backlog => 1}),
    Port = erqwest_fault_server:port(S),
    Fillers = fill_backlog(Port, 20, []),
    try
        C = erqwest:make_client(#{connect_timeout => 300}),
        each_variant(C, erqwest_fault_server:url(S, "/"), #{}, timeout),
        %% It is the connect that timed out, not the request.
        {error, #{code := timeout, reason := Reason}} =
            erqwest:get(C, erqwest_fault_server:url(S, "/")),
        ?assertMatch({match, _}, re:run(Reason, "connect", [caseless])),
        still_works(C, Config)
    after
        [gen_tcp:close(F) || F <- Fillers],
        erqwest_fault_server:stop(S)
    end.

tls_untrusted_certificate(Config) ->
    #{good := Good} = ?config(certs, Config),
    {ok, S} = erqwest_fault_server:start(echo, #{tls => Good}),
    Url = erqwest_fault_server:url(S, "/"),
    C = erqwest:make_client(),
    each_variant(C, Url, #{}, connect),
    still_works(C, Config),
    %% The same server is fine for a client that trusts the test CA.
    #{ca_der := Ca} = ?config(certs, Config),
    Trusting = erqwest:make_client(#{additional_root_certs => [Ca]}),
    {ok, #{status := 200}} = erqwest:get(Trusting, Url),
    erqwest_fault_server:stop(S),
    leak_check(Config).

tls_wrong_hostname(Config) ->
    #{wrong := Wrong, ca_der := Ca} = ?config(certs, Config),
    {ok, S} = erqwest_fault_server:start(echo, #{tls => Wrong}),
    Url = erqwest_fault_server:url(S, "/"),
    C = erqwest:make_client(#{additional_root_certs => [Ca]}),
    each_variant(C, Url, #{}, connect),
    still_works(C, Config),
    Lax = erqwest:make_client(#{additional_root_certs => [Ca],
                                danger_accept_invalid_hostnames => true}),
    {ok, #{status := 200}} = erqwest:get(Lax, Url),
    erqwest_fault_server:stop(S),
    leak_check(Config).

redirect_loop(Config) ->
    {ok, S} = erqwest_fault_server:start(redirect_loop),
    C = erqwest:make_client(#{follow_redirects => 3}),
    Url = erqwest_fault_server:url(S, "/loop"),
    {error, #{code := redirect}} = erqwest:get(C, Url),
    %% The first request and three redirects, then the client gives up.
    #{requests := 4} = erqwest_fault_server:stats(S),
    each_variant(C, Url, #{}, redirect),
    recovers(C, S, Url),
    erqwest_fault_server:stop(S),
    leak_check(Config).

%% A CONNECT refused with 403 is a failure to connect.
proxy_refuses_tunnel(Config) ->
    {ok, P} = erqwest_fault_server:start(proxy_refuse),
    C = erqwest:make_client(#{proxy => [{all, #{url => erqwest_fault_server:url(P, "")}}]}),
    each_variant(C, <<"https://127.0.0.1:9/x">>, #{}, connect),
    #{requests := N} = erqwest_fault_server:stats(P),
    ?assert(N >= 3),
    erqwest_fault_server:stop(P),
    still_works(erqwest:make_client(), Config).

%% For plain HTTP the proxy's 403 is the response: not an error.
proxy_refusal_is_its_answer(Config) ->
    {ok, P} = erqwest_fault_server:start(proxy_refuse),
    C = erqwest:make_client(#{proxy => [{http, #{url => erqwest_fault_server:url(P, "")}}]}),
    {ok, #{status := 403, body := <<"refused by proxy">>}} =
        erqwest_check:run(C, #{method => get, url => <<"http://127.0.0.1:9/x">>}),
    %% The proxy recovers and relays (here: echoes) the request.
    ok = erqwest_fault_server:set_fault(P, echo),
    {ok, #{status := 200, headers := Hs}} =
        erqwest_check:run(C, #{method => get, url => <<"http://127.0.0.1:9/x">>}),
    {_, <<"GET">>} = lists:keyfind(<<"x-echo-method">>, 1, Hs),
    erqwest_fault_server:stop(P),
    leak_check(Config).

proxy_closes(Config) ->
    {ok, P} = erqwest_fault_server:start(proxy_close),
    C = erqwest:make_client(#{proxy => [{all, #{url => erqwest_fault_server:url(P, "")}}]}),
    each_variant(C, <<"http://127.0.0.1:9/x">>, #{}, request),
    each_variant(C, <<"https://127.0.0.1:9/x">>, #{}, connect),
    ok = erqwest_fault_server:set_fault(P, echo),
    {ok, #{status := 200}} = erqwest_check:run(C, #{method => get, url => <<"http://127.0.0.1:9/x">>}),
    erqwest_fault_server:stop(P),
    leak_check(Config).

%% Every handle and task of the parallel wire cases is gone.
wire_faults_leave_nothing_behind(Config) ->
    ok = erqwest_check:wait_baseline(?config(suite_baseline, Config), 10000).

%%% Owner faults

%% 1,000 processes each own a request, in every phase: waiting for the
%% response head, uploading a streamed body, reading a streamed response.
%% Killing them cancels every request: the server sees every connection
%% closed, and no handle or task is left.
kill_1000_owners_mid_request(Config) ->
    {ok, Stall} = erqwest_fault_server:start(stall),
    {ok, StallBody} = erqwest_fault_server:start(stall_body),
    C = erqwest:make_client(),
    Self = self(),
    Kinds = [head, upload, body],
    Owners = [spawn(fun() -> owner(Self, C, Kind, Stall, StallBody) end)
              || I <- lists:seq(1, 1000), Kind <- [lists:nth(I rem 3 + 1, Kinds)]],
    [receive {in_flight, P} -> ok after 30000 -> error({not_in_flight, P}) end || P <- Owners],
    %% Every request is on the wire: 1,000 connections, and the server has
    %% read the 333 GET requests to each server whole.
    wait_connections([Stall, StallBody], 1000, 30000),
    wait_requests(Stall, 333, 30000),
    wait_requests(StallBody, 333, 30000),
    #{accepted := A1} = erqwest_fault_server:stats(Stall),
    #{accepted := A2} = erqwest_fault_server:stats(StallBody),
    ?assertEqual(1000, A1 + A2),
    [exit(P, kill) || P <- Owners],
    ok = erqwest_fault_server:wait_open(Stall, 0, 20000),
    ok = erqwest_fault_server:wait_open(StallBody, 0, 20000),
    leak_check(Config),
    %% The client is none the worse.
    ok = erqwest_fault_server:set_fault(Stall, echo),
    [{ok, #{status := 200}} = erqwest:get(C, erqwest_fault_server:url(Stall, "/"))
     || _ <- lists:seq(1, 20)],
    erqwest_fault_server:stop(Stall),
    erqwest_fault_server:stop(StallBody).

owner(Parent, C, head, Stall, _) ->
    Url = erqwest_fault_server:url(Stall, "/head"),
    _H = erqwest_async:req(C, self(), ref, #{method => get, url => Url}),
    Parent ! {in_flight, self()},
    receive after infinity -> ok end;
owner(Parent, C, upload, Stall, _) ->
    Url = erqwest_fault_server:url(Stall, "/upload"),
    H = erqwest_async:req(C, self(), ref, #{method => post, url => Url, body => stream}),
    receive {erqwest_response, ref, next} -> ok end,
    ok = erqwest_async:send(H, <<"part of a body">>),
    receive {erqwest_response, ref, next} -> ok end,
    Parent ! {in_flight, self()},
    receive after infinity -> ok end;
owner(Parent, C, body, _, StallBody) ->
    Url = erqwest_fault_server:url(StallBody, "/body"),
    H = erqwest_async:req(C, self(), ref, #{method => get, url => Url,
                                            response_body => stream}),
    receive {erqwest_response, ref, reply, #{status := 200}} -> ok end,
    ok = erqwest_async:read(H, #{length => 5}),
    receive {erqwest_response, ref, chunk, _} -> ok end,
    ok = erqwest_async:read(H, #{}),
    Parent ! {in_flight, self()},
    receive after infinity -> ok end.

wait_requests(S, N, Ms) ->
    #{requests := R} = erqwest_fault_server:stats(S),
    if
        R >= N -> ok;
        Ms =< 0 -> error({requests_not_read, R});
        true -> timer:sleep(50), wait_requests(S, N, Ms - 50)
    end.

%% A request made on behalf of a process that is already dead still runs
%% its usual course to cancellation and leaves nothing behind.
owner_dies_before_request_starts(Config) ->
    {ok, S} = erqwest_fault_server:start(stall),
    C = erqwest:make_client(),
    Dead = spawn(fun() -> ok end),
    Mon = monitor(process, Dead),
    receive {'DOWN', Mon, _, _, _} -> ok end,
    _ = [erqwest_async:req(C, Dead, I, #{method => get, url => erqwest_fault_server:url(S, "/")})
         || I <- lists:seq(1, 200)],
    leak_check(Config),
    ok = erqwest_fault_server:wait_open(S, 0, 10000),
    erqwest_fault_server:stop(S).

%%% Runtime faults

%% Stopping the application answers every in-flight request with its final
%% `error'; the application then starts again and works.
stop_app_with_1000_in_flight(Config) ->
    {ok, S} = erqwest_fault_server:start(stall),
    {ok, SB} = erqwest_fault_server:start(stall_body),
    C = erqwest:make_client(),
    Url = erqwest_fault_server:url(S, "/"),
    Reqs = [begin
                Ref = {req, I},
                Opts = case I rem 3 of
                    0 -> #{method => get, url => Url};
                    1 -> #{method => post, url => Url, body => stream};
                    2 -> #{method => get, url => erqwest_fault_server:url(SB, "/"),
                           response_body => stream}
                end,
                {Ref, erqwest_async:req(C, self(), Ref, Opts)}
            end || I <- lists:seq(1, 1000)],
    wait_connections([S, SB], 1000, 30000),
    ok = application:stop(erqwest),
    Finals = collect_finals(Reqs, #{}),
    ?assertEqual(1000, map_size(Finals)),
    erqwest_check:no_stray(200),
    %% Old clients and a stopped application refuse cleanly.
    ?assertError(badarg, erqwest:make_client()),
    ?assertError(bad_runtime, erqwest_async:req(C, self(), x, #{method => get, url => Url})),
    {ok, _} = application:ensure_all_started(erqwest),
    C2 = erqwest:make_client(),
    ok = erqwest_fault_server:set_fault(S, echo),
    {ok, #{status := 200}} = erqwest:get(C2, Url),
    ok = erqwest_fault_server:wait_open(SB, 0, 10000),
    leak_check(Config),
    erqwest_fault_server:stop(S),
    erqwest_fault_server:stop(SB).

%% Every message up to each request's final one; fails on a second final.
collect_finals([], Finals) ->
    Finals;
collect_finals(Pending, Finals) ->
    receive
        {erqwest_response, Ref, error, #{code := _}} ->
            ?assertNot(maps:is_key(Ref, Finals), {second_final, Ref}),
            collect_finals(lists:keydelete(Ref, 1, Pending), Finals#{Ref => error});
        {erqwest_response, _Ref, next} ->
            collect_finals(Pending, Finals);
        {erqwest_response, _Ref, reply, _} ->
            collect_finals(Pending, Finals)
    after 20000 ->
        error({no_final, length(Pending), lists:sublist(Pending, 5)})
    end.

wait_connections(Servers, N, Ms) ->
    Accepted = lists:sum([maps:get(accepted, erqwest_fault_server:stats(S)) || S <- Servers]),
    if
        Accepted >= N -> ok;
        Ms =< 0 -> error({not_connected, Accepted});
        true -> timer:sleep(50), wait_connections(Servers, N, Ms - 50)
    end.

%% The supervisor restarts a killed runtime owner; clients made before keep
%% their runtime and keep working, new clients use the new one.
runtime_owner_killed(Config) ->
    {ok, S} = erqwest_fault_server:start(echo),
    Url = erqwest_fault_server:url(S, "/"),
    Old = erqwest:make_client(),
    Pid = whereis(erqwest_runtime),
    exit(Pid, kill),
    wait_restarted(Pid, 5000),
    {ok, #{status := 200}} = erqwest:get(Old, Url),
    New = erqwest:make_client(),
    {ok, #{status := 200}} = erqwest:get(New, Url),
    erqwest_fault_server:stop(S),
    leak_check(Config).

wait_restarted(Old, Ms) ->
    case whereis(erqwest_runtime) of
        P when is_pid(P), P =/= Old ->
            try erqwest_runtime:get(), ok
            catch error:badarg -> timer:sleep(20), wait_restarted(Old, Ms - 20)
            end;
        _ when Ms =< 0 -> error(not_restarted);
        _ -> timer:sleep(20), wait_restarted(Old, Ms - 20)
    end.

%%% Panics (in a peer VM running a build with `fault-injection')

panic_in_nif_call(Config) ->
    erqwest_fault_peer:run(Config, fun erqwest_fault_peer:panic_in_nif_call/0).

panic_in_request_task(Config) ->
    erqwest_fault_peer:run(Config, fun erqwest_fault_peer:panic_in_request_task/0).

%%% Helpers

wire_fault(Config, Fault, ClientOpts, Code) ->
    wire_fault(Config, Fault, ClientOpts, #{}, Code).

wire_fault(Config, Fault, ClientOpts, ReqOpts, Code) ->
    {ok, S} = erqwest_fault_server:start(Fault),
    C = erqwest:make_client(ClientOpts),
    Url = erqwest_fault_server:url(S, "/fault"),
    each_variant(C, Url, ReqOpts, Code),
    %% The synchronous API sees the same error and leaves no message.
    {error, #{code := Code}} = erqwest:req(C, ReqOpts#{method => get, url => Url}),
    erqwest_check:no_stray(20),
    recovers(C, S, Url),
    erqwest_fault_server:stop(S),
    leak_check(Config).

%% The fault under every way of sending and reading a body.
each_variant(C, Url, ReqOpts, Code) ->
    [begin
         {Opts, Plan} = variant(V, ReqOpts#{url => Url}),
         case erqwest_check:run(C, Opts, Plan#{linger => 20}) of
             {error, #{code := Code}} -> ok;
             Other -> ct:fail({V, expected, Code, got, Other})
         end
     end || V <- ?VARIANTS],
    ok.

variant(complete, Opts) ->
    {Opts#{method => get}, #{}};
variant(stream_response, Opts) ->
    {Opts#{method => get, response_body => stream}, #{reads => [#{length => 100}]}};
variant(stream_upload, Opts) ->
    {Opts#{method => post, body => stream}, #{chunks => [<<"first">>, [<<"sec">>, "ond"]]}}.

%% The server behaves again: the same client, same URL, works.
recovers(C, S, Url) ->
    ok = erqwest_fault_server:set_fault(S, echo),
    [begin
         {Opts, Plan} = variant(V, #{url => Url}),
         {ok, #{status := 200}} = erqwest_check:run(C, Opts, Plan#{linger => 20})
     end || V <- ?VARIANTS],
    ok.

%% The client works against a healthy server.
still_works(C, Config) ->
    {ok, S} = erqwest_fault_server:start(echo),
    recovers(C, S, erqwest_fault_server:url(S, "/ok")),
    erqwest_fault_server:stop(S),
    leak_check(Config).

leak_check(Config) ->
    case ?config(baseline, Config) of
        undefined -> ok;
        Base -> ok = erqwest_check:wait_baseline(Base, 10000)
    end.

%% Connects until the listen queue is full and a connect times out.
fill_backlog(_Port, 0, Acc) ->
    Acc;
fill_backlog(Port, N, Acc) ->
    case gen_tcp:connect({127, 0, 0, 1}, Port, [], 200) of
        {ok, S} -> fill_backlog(Port, N - 1, [S | Acc]);
        {error, timeout} -> Acc
    end.
