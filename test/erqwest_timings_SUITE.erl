%% `timings => true' on both engines (issue 31): the same keys with the
%% same meaning whichever engine answers. `connect' is the connector's
%% whole work (TCP, and the TLS handshake over HTTPS) and comes only when
%% the final attempt opened a connection; `reused' says it did not;
%% `headers' and `total' count from the start of the request. Every case
%% runs in the `scheduler' and the `runtime' group (erqwest_engine).
-module(erqwest_timings_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-compile([export_all, nowarn_export_all]).

all() ->
    [{group, scheduler}, {group, runtime}, {group, placement}].

groups() ->
    [{scheduler, [], cases()},
     {runtime, [], cases()},
     {placement, [], [timings_requests_take_the_scheduler_engine]}].

cases() ->
    [a_fresh_connection_has_connect, a_pooled_connection_is_reused,
     timings_asked_per_request_or_per_client, retried_request_reports_its_last_attempt,
     retried_on_a_new_connection_reports_its_connect, tls_connect_includes_the_handshake,
     a_large_body_has_timings_too, a_stalled_server_still_answers,
     timings_over_a_redirect_chain, timings_of_a_hop_handed_to_reqwest].

suite() -> [{timetrap, {seconds, 60}}].

init_per_suite(Config) ->
    {ok, _} = application:ensure_all_started(erqwest),
    Certs = erqwest_test_certs:make(filename:join(?config(priv_dir, Config), "certs")),
    [{certs, Certs}, {ca_der, erqwest_test_certs:der(maps:get(ca, Certs))} | Config].

end_per_suite(_Config) ->
    application:stop(erqwest).

init_per_group(G, Config) when G =:= scheduler; G =:= runtime ->
    [{engine, G} | Config];
init_per_group(_, Config) ->
    Config.

end_per_group(_, _Config) ->
    ok.

%%% helpers

ok_handler(_) -> {200, [], <<"ok">>}.

with_server(Handler, Fun) ->
    {ok, S} = erqwest_test_server:start(Handler),
    try Fun(S) after erqwest_test_server:stop(S) end.

url(S) -> erqwest_test_server:url(S, "/").

get(Config, C, Url) -> get(Config, C, Url, #{}).

get(Config, C, Url, Extra) ->
    erqwest_engine:req(erqwest_engine:engine(Config), C,
                       maps:merge(#{method => get, url => Url}, Extra)).

client(Config, Opts) ->
    erqwest_engine:client(erqwest_engine:engine(Config), Opts).

-define(FRESH, [connect, headers, queued, remote_addr, reused, total]).
-define(REUSED, [headers, queued, remote_addr, reused, total]).

%% The figures are microseconds in the order the request went through
%% them, and the peer is the server.
check_order(T, S) ->
    #{queued := Q, headers := H, total := Total, remote_addr := Addr} = T,
    [?assert(is_integer(V) andalso V >= 0) || V <- [Q, H, Total]],
    ?assert(Q =< H),
    ?assert(H =< Total),
    case T of
        #{connect := C} ->
            ?assert(is_integer(C) andalso C >= 0),
            ?assert(C =< H);
        _ -> ok
    end,
    ?assertEqual({{127, 0, 0, 1}, erqwest_test_server:port(S)}, Addr).

keys(T) -> lists:sort(maps:keys(T)).

%%% cases

a_fresh_connection_has_connect(Config) ->
    with_server(fun ok_handler/1, fun(S) ->
        C = client(Config, #{timings => true}),
        {ok, #{status := 200, timings := T}} = get(Config, C, url(S)),
        ?assertEqual(?FRESH, keys(T)),
        ?assertMatch(#{reused := false}, T),
        check_order(T, S)
    end).

a_pooled_connection_is_reused(Config) ->
    with_server(fun ok_handler/1, fun(S) ->
        C = client(Config, #{timings => true}),
        {ok, #{timings := #{reused := false}}} = get(Config, C, url(S)),
        {ok, #{timings := T}} = get(Config, C, url(S)),
        ?assertEqual(?REUSED, keys(T)),
        ?assertMatch(#{reused := true}, T),
        check_order(T, S),
        ?assertEqual(1, erqwest_test_server:connections(S))
    end).

%% A request's `timings' overrides its client's, either way.
timings_asked_per_request_or_per_client(Config) ->
    with_server(fun ok_handler/1, fun(S) ->
        Plain = client(Config, #{}),
        {ok, R0} = get(Config, Plain, url(S)),
        ?assertNot(maps:is_key(timings, R0)),
        {ok, #{timings := T1}} = get(Config, Plain, url(S), #{timings => true}),
        ?assertEqual(?REUSED, keys(T1)),
        Timed = client(Config, #{timings => true}),
        {ok, R2} = get(Config, Timed, url(S), #{timings => false}),
        ?assertNot(maps:is_key(timings, R2)),
        %% (On the connection that the untimed request opened.)
        {ok, #{timings := T3}} = get(Config, Timed, url(S)),
        ?assertEqual(?REUSED, keys(T3))
    end).

%% A server answering from `Steps' in order (the last one repeated).
scripted(Steps) ->
    Counter = counters:new(1, []),
    Handler = fun(_Req) ->
        N = counters:get(Counter, 1),
        counters:add(Counter, 1, 1),
        lists:nth(min(N + 1, length(Steps)), Steps)
    end,
    {ok, S} = erqwest_test_server:start(Handler),
    S.

%% With retries the figures are the final attempt's: its connection was
%% the first one's (the 503's body was read), so no connect; `headers'
%% counts from the start of the request, over the wait between attempts.
retried_request_reports_its_last_attempt(Config) ->
    S = scripted([{503, [{"retry-after", "1"}], <<"down">>}, {200, [], <<"ok">>}]),
    try
        C = client(Config, #{timings => true, retry => #{base => 1, max => 2}}),
        {ok, #{status := 200, attempts := 2, timings := T}} = get(Config, C, url(S)),
        ?assertEqual(?REUSED, keys(T)),
        check_order(T, S),
        %% Retry-After: 1 s waited before the second attempt.
        ?assert(maps:get(headers, T) >= 1000000),
        ?assertEqual(1, erqwest_test_server:connections(S))
    after
        erqwest_test_server:stop(S)
    end.

%% The same when the first attempt's connection was closed: the final
%% attempt connected, and says so.
retried_on_a_new_connection_reports_its_connect(Config) ->
    S = scripted([{503, [{"connection", "close"}], <<"down">>}, {200, [], <<"ok">>}]),
    try
        C = client(Config, #{retry => #{base => 1, max => 2}}),
        {ok, #{status := 200, attempts := 2, timings := T}} =
            get(Config, C, url(S), #{timings => true}),
        ?assertEqual(?FRESH, keys(T)),
        ?assertMatch(#{reused := false}, T),
        check_order(T, S),
        ?assertEqual(2, erqwest_test_server:connections(S))
    after
        erqwest_test_server:stop(S)
    end.

%% Over TLS `connect' includes the handshake: a forwarder in front of the
%% server holds the client's first bytes (its ClientHello) for 200 ms,
%% after the TCP connect is done.
tls_connect_includes_the_handshake(Config) ->
    #{server_cert := Cert, server_key := Key} = ?config(certs, Config),
    {ok, S} = erqwest_test_server:start(fun ok_handler/1,
                                        #{tls => [{certfile, Cert}, {keyfile, Key}]}),
    {Fwd, Port} = slow_forwarder(erqwest_test_server:port(S), 200),
    try
        C = client(Config, #{timings => true,
                             additional_root_certs => [?config(ca_der, Config)]}),
        Url = iolist_to_binary(["https://127.0.0.1:", integer_to_list(Port), "/"]),
        {ok, #{status := 200, timings := T}} = get(Config, C, Url),
        ?assertEqual(?FRESH, keys(T)),
        #{connect := Connect, headers := H} = T,
        ?assert(Connect >= 200000),
        ?assert(Connect =< H),
        {ok, #{timings := T2}} = get(Config, C, Url),
        ?assertMatch(#{reused := true}, T2),
        ?assertNot(maps:is_key(connect, T2))
    after
        exit(Fwd, kill),
        erqwest_test_server:stop(S)
    end.

%% A TCP forwarder to `Port' that holds each connection's first bytes
%% from the client for `Ms'; returns its pid and port.
slow_forwarder(Port, Ms) ->
    Self = self(),
    Pid = spawn(fun() ->
        {ok, L} = gen_tcp:listen(0, [binary, {active, false}, {ip, {127, 0, 0, 1}}]),
        {ok, P} = inet:port(L),
        Self ! {forwarder, P},
        accept_loop(L, Port, Ms)
    end),
    receive {forwarder, P} -> {Pid, P} after 5000 -> error(no_forwarder) end.

accept_loop(L, Port, Ms) ->
    case gen_tcp:accept(L) of
        {ok, A} ->
            Pid = spawn(fun() ->
                receive go -> ok end,
                {ok, B} = gen_tcp:connect({127, 0, 0, 1}, Port, [binary, {active, false}]),
                {ok, First} = gen_tcp:recv(A, 0, 5000),
                timer:sleep(Ms),
                ok = gen_tcp:send(B, First),
                pipe(A, B)
            end),
            ok = gen_tcp:controlling_process(A, Pid),
            Pid ! go,
            accept_loop(L, Port, Ms);
        {error, _} -> ok
    end.

pipe(A, B) ->
    ok = inet:setopts(A, [{active, true}]),
    ok = inet:setopts(B, [{active, true}]),
    pipe_loop(A, B).

pipe_loop(A, B) ->
    receive
        {tcp, A, D} -> _ = gen_tcp:send(B, D), pipe_loop(A, B);
        {tcp, B, D} -> _ = gen_tcp:send(A, D), pipe_loop(A, B);
        {tcp_closed, _} -> gen_tcp:close(A), gen_tcp:close(B)
    end.

%% A body over a megabyte is read by a runtime task on the scheduler
%% engine (direct/bulk.rs): its answer has the same timings.
a_large_body_has_timings_too(Config) ->
    Big = binary:copy(<<"x">>, 3 * 1024 * 1024),
    with_server(fun(_) -> {200, [], Big} end, fun(S) ->
        C = client(Config, #{timings => true}),
        {ok, #{body := Big, timings := T}} = get(Config, C, url(S)),
        ?assertEqual(?FRESH, keys(T)),
        check_order(T, S)
    end).

%% A server that never answers: the timed request ends at its timeout,
%% as an untimed one does (no timings on an error).
a_stalled_server_still_answers(Config) ->
    Stall = fun(_) -> {custom, fun(_, _) -> timer:sleep(2000), close end} end,
    with_server(Stall, fun(S) ->
        C = client(Config, #{timings => true}),
        {error, #{code := timeout} = E} = get(Config, C, url(S), #{timeout => 200}),
        ?assertNot(maps:is_key(timings, E))
    end).

%% `/hop/N' redirects to `/hop/N-1', `/hop/0' answers.
hops(#{path := <<"/hop/0">>}) -> {200, [], <<"arrived">>};
hops(#{path := <<"/hop/", N/binary>>}) ->
    {302, [{"location", ["/hop/", integer_to_list(binary_to_integer(N) - 1)]}], <<"on">>};
hops(_) -> {404, [], <<>>}.

%% A chain counts as one request: `connect' is its last connect (the
%% first hop's, its connection carried the others), then none.
timings_over_a_redirect_chain(Config) ->
    with_server(fun hops/1, fun(S) ->
        C = client(Config, #{timings => true}),
        Url = erqwest_test_server:url(S, "/hop/2"),
        {ok, #{status := 200, timings := T1}} = get(Config, C, Url),
        ?assertEqual(?FRESH, keys(T1)),
        check_order(T1, S),
        {ok, #{status := 200, timings := T2}} = get(Config, C, Url),
        ?assertEqual(?REUSED, keys(T2)),
        ?assertEqual(1, erqwest_test_server:connections(S))
    end).

%% A hop the scheduler engine leaves to reqwest (to a URL with
%% credentials) keeps the request's timings: reqwest's connect to the
%% other origin is the one reported, and its pooled connection the next
%% time.
timings_of_a_hop_handed_to_reqwest(Config) ->
    {ok, Far} = erqwest_test_server:start(fun ok_handler/1),
    FarUrl = iolist_to_binary(["http://u:p@127.0.0.1:",
                               integer_to_list(erqwest_test_server:port(Far)), "/"]),
    Near = fun(_) -> {302, [{"location", FarUrl}], <<"there">>} end,
    {ok, S} = erqwest_test_server:start(Near),
    try
        C = client(Config, #{timings => true}),
        {ok, #{status := 200, timings := T1}} = get(Config, C, url(S)),
        ?assertEqual(?FRESH, keys(T1)),
        check_order(T1, Far),
        {ok, #{status := 200, timings := T2}} = get(Config, C, url(S)),
        ?assertEqual(?REUSED, keys(T2)),
        check_order(T2, Far)
    after
        erqwest_test_server:stop(S),
        erqwest_test_server:stop(Far)
    end.

%%% placement

%% A timed request is the caller's NIF calls: while the server holds its
%% answer, no runtime task or handle exists.
timings_requests_take_the_scheduler_engine(_Config) ->
    Self = self(),
    Hold = fun(_) -> {custom, fun(Sock, Req) ->
        Self ! {held, self()},
        receive go -> ok end,
        erqwest_test_server:send_response({gen_tcp, Sock}, {200, [], <<"ok">>}, Req),
        keep
    end} end,
    {ok, S} = erqwest_test_server:start(Hold),
    try
        lists:foreach(
          fun({ClientOpts, ReqOpts}) ->
              C = erqwest:make_client(ClientOpts),
              Caller = spawn_link(fun() ->
                  Self ! {done, erqwest:req(C, ReqOpts#{method => get, url => url(S)})}
              end),
              Conn = receive {held, P} -> P after 5000 -> error(not_held) end,
              ?assertEqual({0, 0}, erqwest_nif:live_resources()),
              Conn ! go,
              {ok, #{timings := #{reused := _}}} =
                  receive {done, A} -> A after 5000 -> error(no_answer) end,
              unlink(Caller)
          end,
          [{#{timings => true}, #{}},
           {#{}, #{timings => true}},
           {#{timings => true, retry => #{base => 1, max => 2}}, #{}}])
    after
        erqwest_test_server:stop(S)
    end.
