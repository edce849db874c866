%% Property tests for the Erlang entry points.
%%
%% - `garbage_in_every_argument': every exported function of `erqwest' and
%%   `erqwest_async' called with garbage in each argument answers with a
%%   badarg-class exception or an err(), within a time limit, and leaks
%%   nothing.
%% - `requests_round_trip': random valid requests (methods, headers with
%%   every legal byte, bodies from 0 B to 16 MB sent whole, as iolists or
%%   streamed in random chunks, responses read whole or with random read
%%   lengths and periods, through the synchronous and the message API)
%%   against an echo server: status, headers and body come back exactly,
%%   and every request gets exactly one final message.
%% - `cancel_anywhere': a cancel at any step of a streamed request still
%%   leaves exactly one final message and nothing after it.
%%
%% In `rebar3 ct' each property runs a modest number of cases from a fixed
%% seed, so a failure reproduces; the case number and its value are
%% printed. `make soak' runs them longer with PropEr's own random seeds
%% and shrinking (ERQWEST_PROP=random). Environment:
%% ERQWEST_PROP_NUMTESTS scales the number of cases, ERQWEST_PROP_SEED
%% changes the fixed seed.
%%
%% Note: Debian's PropEr 1.2 calls erlang:get_stacktrace/0, which OTP 23+
%% no longer has, so an exception escaping a property crashes PropEr
%% itself. Every property here therefore catches everything and returns a
%% boolean.
-module(erqwest_prop_SUITE).

-include_lib("proper/include/proper.hrl").
-include_lib("common_test/include/ct.hrl").

-export([all/0, suite/0, init_per_suite/1, end_per_suite/1]).
-export([garbage_in_every_argument/1, requests_round_trip/1, cancel_anywhere/1,
         sync_calls_after_the_final_message_never_wait/1,
         streamed_bodies_are_sent_for_every_method/1, no_leaks_after_properties/1]).
-export([prop_garbage/1, prop_round_trip/1, prop_cancel/1, run_props/1]).

%% Cases per property in `rebar3 ct' (multiplied by ERQWEST_PROP_NUMTESTS/100).
-define(NUM_GARBAGE, 600).
-define(NUM_ROUND_TRIP, 150).
-define(NUM_CANCEL, 200).
-define(DEFAULT_SEED, 20261121).
%% A call that takes longer than this counts as a hang.
-define(CALL_LIMIT, 15000).

-define(MB, (1024 * 1024)).

suite() -> [{timetrap, {minutes, 10}}].

all() -> [garbage_in_every_argument, requests_round_trip, cancel_anywhere,
          sync_calls_after_the_final_message_never_wait, streamed_bodies_are_sent_for_every_method,
          no_leaks_after_properties].

init_per_suite(Config) ->
    {ok, _} = application:ensure_all_started(erqwest),
    %% The environment stays out of Config: Common Test prints Config, and
    %% it holds a 16 MB binary.
    _ = env(),
    [{baseline, erqwest_check:baseline()} | Config].

end_per_suite(_Config) ->
    #{server := S} = env(),
    erqwest_fault_server:stop(S),
    _ = persistent_term:erase({?MODULE, env}),
    ok.

%% Everything the generators and properties need, made once: an echo
%% server, a shared client (also registered under a name), big binaries.
env() ->
    case persistent_term:get({?MODULE, env}, undefined) of
        undefined ->
            {ok, S} = erqwest_fault_server:start(echo),
            C = erqwest:make_client(#{proxy => no_proxy}),
            ok = erqwest:start_client(erqwest_prop_client, #{proxy => no_proxy}),
            {ok, L} = gen_tcp:listen(0, [{ip, {127, 0, 0, 1}}]),
            {ok, Closed} = inet:port(L),
            ok = gen_tcp:close(L),
            Env = #{server => S, client => C, base => erqwest_fault_server:url(S, ""),
                    closed_port => Closed,
                    big => binary:copy(<<"0123456789abcdef">>, ?MB),  % 16 MB
                    deep => deep_iolist(100000)},
            persistent_term:put({?MODULE, env}, Env),
            Env;
        Env ->
            Env
    end.

%%% Test cases

garbage_in_every_argument(_Config) ->
    run(garbage, prop_garbage(fixed), ?NUM_GARBAGE).

requests_round_trip(_Config) ->
    run(round_trip, prop_round_trip(fixed), ?NUM_ROUND_TRIP).

cancel_anywhere(_Config) ->
    run(cancel, prop_cancel(fixed), ?NUM_CANCEL).

%% Found by `garbage_in_every_argument': a sync `cancel' (or `read')
%% right after the call that consumed the final message could be told
%% "final still to come" while the final message's send was returning, and
%% then waited forever. Several processes at once make the window likely.
sync_calls_after_the_final_message_never_wait(_Config) ->
    #{client := C, base := Base} = env(),
    Url = <<Base/binary, "/final">>,
    Loop = fun(Kind) ->
        lists:foreach(fun(_) ->
            case Kind of
                upload ->
                    {handle, H} = erqwest:req(C, #{method => post, url => Url, body => stream}),
                    {ok, #{status := 200}} = erqwest:finish_send(H),
                    ok = erqwest:cancel(H);
                download ->
                    {ok, #{body := H}} = erqwest:req(C, #{method => get, url => Url,
                                                         response_body => stream}),
                    {ok, <<>>} = erqwest:read(H),
                    {'EXIT', {badarg, _}} = (catch erqwest:read(H)),
                    ok = erqwest:cancel(H)
            end,
            erqwest_check:no_stray(0)
        end, lists:seq(1, 300)),
        true
    end,
    Outcomes = pmap(fun(I) -> isolated(fun() -> Loop(lists:nth(I rem 2 + 1, [upload, download]))
                                       end)
                    end, lists:seq(1, 8)),
    [{return, true}] = lists:usort(Outcomes).

%% Found by `requests_round_trip': hyper sends no body for a GET, HEAD or
%% CONNECT of unknown length, so a streamed GET body was silently dropped
%% (and the reply looked early). Every method must send what was streamed.
streamed_bodies_are_sent_for_every_method(_Config) ->
    #{client := C, base := Base} = env(),
    [begin
         {handle, H} = erqwest:req(C, #{method => M, url => <<Base/binary, "/streamed">>,
                                        body => stream}),
         ok = erqwest:send(H, <<"hello ">>),
         ok = erqwest:send(H, [<<"wor">>, "ld"]),
         {ok, #{status := 200, headers := Hs}} = erqwest:finish_send(H),
         {M, {_, <<"11">>}} = {M, lists:keyfind(<<"x-echo-length">>, 1, Hs)}
     end || M <- [get, head, post, put, patch, delete, options]],
    ok.

pmap(F, Xs) ->
    Self = self(),
    Pids = [spawn_link(fun() -> Self ! {self(), F(X)} end) || X <- Xs],
    [receive {P, R} -> R end || P <- Pids].

no_leaks_after_properties(Config) ->
    erqwest_check:no_stray(100),
    ok = erqwest_check:wait_baseline(?config(baseline, Config), 20000).

%% @doc Entry point for `make soak': runs every property `NumTests' times
%% with PropEr's random seeds and shrinking. Returns `true' when all pass.
run_props(NumTests) ->
    {ok, _} = application:ensure_all_started(erqwest),
    _ = env(),
    Results = [{Name, proper:quickcheck(Prop, [{numtests, NumTests}, long_result,
                                               {to_file, user}])}
               || {Name, Prop} <- [{garbage, prop_garbage(random)},
                                   {round_trip, prop_round_trip(random)},
                                   {cancel, prop_cancel(random)}]],
    io:format("properties: ~p~n", [Results]),
    lists:all(fun({_, R}) -> R =:= true end, Results).

%%% The runner

%% Runs a property from a fixed seed: value I is picked with seed
%% {Seed, I, 1} at a size that grows with I, then checked. Deterministic,
%% so a failure names the case that reproduces it.
run(Name, {forall, Type, Fun}, Default) ->
    N = max(1, Default * env_int("ERQWEST_PROP_NUMTESTS", 100) div 100),
    Seed = env_int("ERQWEST_PROP_SEED", ?DEFAULT_SEED),
    Failures = lists:filtermap(fun(I) ->
        Size = 1 + (I * 40) div N,
        {ok, Value} = proper_gen:pick(Type, Size, {Seed, I, 1}),
        case Fun(Value) of
            true -> false;
            false -> {true, {I, summary(Value)}}
        end
    end, lists:seq(1, N)),
    log("~p: ~p cases from seed ~p, ~p failed", [Name, N, Seed, length(Failures)]),
    case Failures of
        [] -> ok;
        _ -> ct:fail({Name, seed, Seed, failures, lists:sublist(Failures, 5)})
    end.

env_int(Var, Default) ->
    case os:getenv(Var) of
        false -> Default;
        V -> list_to_integer(V)
    end.

%% Values can hold 16 MB binaries; print their size instead.
summary(B) when is_binary(B), byte_size(B) > 200 ->
    {binary, byte_size(B), binary:part(B, 0, 32)};
summary(L) when is_list(L) ->
    try length(L) of
        Len when Len > 50 -> {list, Len, [summary(X) || X <- lists:sublist(L, 10)]};
        _ -> [summary(X) || X <- L]
    catch error:badarg -> improper_list
    end;
summary(T) when is_tuple(T) -> list_to_tuple([summary(X) || X <- tuple_to_list(T)]);
summary(M) when is_map(M) -> maps:map(fun(_, V) -> summary(V) end, M);
summary(X) -> X.

%% Runs `Fun' in a process of its own: its outcome, or `hang'.
isolated(Fun) ->
    {Pid, Mon} = spawn_monitor(fun() ->
        Outcome = try {return, Fun()}
                  catch Class:Reason:St -> {raised, Class, Reason, St}
                  end,
        exit({outcome, Outcome})
    end),
    receive
        {'DOWN', Mon, process, Pid, {outcome, Outcome}} -> Outcome;
        {'DOWN', Mon, process, Pid, Other} -> {died, Other}
    after ?CALL_LIMIT ->
        exit(Pid, kill),
        receive {'DOWN', Mon, process, Pid, _} -> ok end,
        hang
    end.

report(Name, Value, Why) ->
    log("~p failed: ~p~nvalue: ~p", [Name, Why, summary(Value)]),
    false.

%% ct:pal inside Common Test; plain output under `make soak'.
log(Fmt, Args) ->
    case whereis(ct_util_server) of
        undefined -> io:format(Fmt ++ "~n", Args);
        _ -> ct:pal(Fmt, Args)
    end.

%%% Property 1: garbage in every argument

%% A call is {Module, Function, ArgSpecs}: each argument is a term or a
%% placeholder made real inside the calling process (clients and handles
%% in known states), because handles belong to the process that made them.
prop_garbage(_Mode) ->
    ?FORALL(Call, call(),
            begin
                Outcome = isolated(fun() -> perform(Call) end),
                case acceptable(Call, Outcome) of
                    true -> true;
                    false -> report(garbage, Call, Outcome)
                end
            end).

targets() ->
    [{M, F, A} || M <- [erqwest, erqwest_async],
                  {F, A} <- M:module_info(exports), F =/= module_info]
    ++ elixir_targets().

%% TODO(elixir): when the Elixir modules land (Erqwest, Erqwest.Async,
%% ...), list their exports here as {Module, Function, Arity} and give
%% their argument roles in roles/3; acceptable/2 already admits
%% ArgumentError. They are not in the `rebar3 ct' code path, so this
%% property would run them from `mix test' through ERQWEST_PROP_ELIXIR=1.
elixir_targets() ->
    [].

call() ->
    ?LET({M, F, A}, elements(targets()),
         ?LET(Args, arg_list(roles(M, F, A)), {M, F, Args})).

arg_list(Roles) ->
    [frequency([{3, plausible(R)}, {1, garbage()}]) || R <- Roles].

%% What each argument is meant to be.
roles(erqwest, make_client, 0) -> [];
roles(erqwest, make_client, 1) -> [client_opts];
roles(erqwest, close_client, 1) -> [own_client];
roles(erqwest, start_client, 1) -> [name];
roles(erqwest, start_client, 2) -> [name, client_opts];
roles(erqwest, stop_client, 1) -> [name];
roles(erqwest, get_client, 1) -> [client];
roles(erqwest, feature, 1) -> [feature];
roles(erqwest, client_info, 1) -> [client];
roles(erqwest, req, 2) -> [client, req_opts];
%% The calls without a client (the default one, erqwest_default).
roles(erqwest, req, 1) -> [req_opts];
roles(erqwest, F, 1) when F =:= get; F =:= head; F =:= options; F =:= delete -> [url];
roles(erqwest, F, 2) when F =:= post; F =:= put; F =:= patch -> [url, partial_opts];
roles(erqwest, F, 2) when F =:= get; F =:= head; F =:= options; F =:= delete -> [client, url];
roles(erqwest, _, 3) -> [client, url, partial_opts];
roles(erqwest, send, 2) -> [sync_handle, iodata];
roles(erqwest, finish_send, 1) -> [sync_handle];
roles(erqwest, read, 1) -> [sync_handle];
roles(erqwest, read, 2) -> [sync_handle, read_opts];
roles(erqwest, cancel, 1) -> [sync_handle];
roles(erqwest, format_error, 2) -> [any, stacktrace];
roles(erqwest_async, req, 4) -> [client, pid, any, req_opts];
roles(erqwest_async, send, 2) -> [async_handle, iodata];
roles(erqwest_async, finish_send, 1) -> [async_handle];
roles(erqwest_async, read, 2) -> [async_handle, read_opts];
roles(erqwest_async, cancel, 1) -> [async_handle];
%% The NIF calls on a handle, or a stub's (erqwest_test), behind the above.
roles(erqwest_async, nif_send, 2) -> [async_handle, iodata];
roles(erqwest_async, nif_finish_send, 1) -> [async_handle];
roles(erqwest_async, nif_read, 2) -> [async_handle, read_opts];
roles(erqwest_async, nif_cancel, 1) -> [async_handle];
roles(M, F, A) -> error({no_roles, M, F, A}).

plausible(client) -> oneof([{'$client', shared}, {'$client', name}, {'$client', closed},
                            {'$client', fresh}]);
plausible(own_client) -> oneof([{'$client', fresh}, {'$client', closed}, {'$client', fresh_name}]);
plausible(name) -> oneof([{'$name', registered}, {'$name', unknown}, atom()]);
plausible(feature) -> elements([cookies, gzip, brotli, deflate, zstd, http2, http3, nope]);
plausible(client_opts) -> client_opts();
plausible(req_opts) -> req_opts();
plausible(partial_opts) -> ?LET(M, req_opts(), maps:without([url, method], M));
plausible(url) -> url();
plausible(iodata) -> iodata();
plausible(read_opts) -> read_opts();
plausible(pid) -> oneof([{'$pid', self}, {'$pid', dead}]);
plausible(sync_handle) -> {'$sync', handle_state()};
plausible(async_handle) -> {'$async', handle_state()};
plausible(stacktrace) -> oneof([[], [{erqwest, req, 2, []}],
                                [{erqwest, make_client, [#{}], [{error_info, #{cause => <<"x">>}}]}],
                                [{erqwest, make_client, 1, [{error_info, garbage()}]}]]);
plausible(any) -> garbage().

handle_state() ->
    elements([upload_open, upload_done, download_open, download_done, complete, cancelled]).

%% Terms of every type, and the nasty ones in particular.
garbage() ->
    frequency([{6, any()},
               {2, elements([<<>>, [], 0, -1, -1000000, 1 bsl 64, 1 bsl 200, 1.5, infinity,
                             stream, complete, true, nil, undefined, {}, #{}])},
               {2, invalid_utf8()},
               {1, {'$big'}},
               {1, {'$deep'}},
               {1, improper_iolist()},
               {1, ?LET(L, list({atom(), any()}), maps:from_list(L))},
               {1, #{unknown_key => 1}}]).

invalid_utf8() ->
    ?LET(B, binary(), <<B/binary, 16#ff, 16#c0, 16#80>>).

improper_iolist() ->
    oneof([[<<"a">> | <<"b">>], [[<<"a">>, $b] | <<"c">>], [<<"a">> | c], [$a | 1],
           [[[[<<"x">>]]] | <<"y">>], [256], [-1], [<<"a">>, 1.0], [self()]]).

url() ->
    frequency([{4, ?LET(P, path(), {'$url', P})},
               {1, {'$url_closed'}},
               {1, <<"http://erqwest-garbage.invalid/">>},
               {1, elements([<<"ftp://127.0.0.1/">>, <<"http://[::1">>, <<"http://">>,
                             <<"/relative">>, <<"http://127.0.0.1:99999/">>, <<"mailto:x@y">>,
                             <<"http://h/\xff">>, <<"http://127.0.0.1:1/\0">>])},
               {1, binary()},
               {1, invalid_utf8()}]).

path() ->
    ?LET(Cs, list(oneof([range($a, $z), elements("/?=&%#~ \t\x7f"), range(128, 255)])),
         list_to_binary([$/ | Cs])).

iodata() ->
    frequency([{3, binary()}, {2, list(oneof([binary(), range(0, 255)]))},
               {1, {'$big'}}, {1, {'$deep'}}, {1, improper_iolist()}, {1, garbage()}]).

read_opts() ->
    ?LET(Pairs, list(oneof([{length, oneof([range(0, 100000), garbage()])},
                            {period, oneof([range(0, 50), infinity, garbage()])},
                            {garbage(), garbage()}])),
         maps:from_list(Pairs)).

method() ->
    elements([options, get, post, put, delete, head, trace, connect, patch]).

req_opts() ->
    ?LET({Base, Mutation}, {valid_req_opts(), mutation(req_keys())}, mutate(Base, Mutation)).

valid_req_opts() ->
    ?LET({Url, Method, Headers, Body, Resp, Timeout},
         {url(), method(), header_list(), oneof([none, binary(), iodata(), stream]),
          elements([none, complete, stream]), elements([none, 0, 100, 5000, infinity])},
         maps:from_list([{url, Url}, {method, Method}, {headers, Headers}]
                        ++ [{body, Body} || Body =/= none]
                        ++ [{response_body, Resp} || Resp =/= none]
                        ++ [{timeout, Timeout} || Timeout =/= none])).

req_keys() -> [url, method, headers, body, response_body, timeout].

client_opts() ->
    ?LET(Mutation, mutation(client_keys()), mutate(#{proxy => no_proxy}, Mutation)).

client_keys() ->
    [identity, follow_redirects, additional_root_certs, use_built_in_root_certs,
     danger_accept_invalid_hostnames, danger_accept_invalid_certs, proxy, connect_timeout,
     timeout, read_timeout, pool_idle_timeout, pool_max_idle_per_host, https_only,
     cookie_store, gzip, brotli, deflate, zstd, http2_prior_knowledge, http1_only,
     tcp_nodelay, tcp_keepalive, local_address, user_agent, default_headers, resolve,
     min_tls_version].

%% One change to an otherwise valid map: a key set to garbage, a key
%% removed, an unknown key added, or nothing.
mutation(Keys) ->
    frequency([{4, {set, elements(Keys), garbage()}},
               {1, {remove, elements(Keys)}},
               {1, {add, garbage(), garbage()}},
               {1, none}]).

mutate(M, {set, K, V}) -> M#{K => V};
mutate(M, {remove, K}) -> maps:remove(K, M);
mutate(M, {add, K, V}) -> M#{K => V};
mutate(M, none) -> M.

header_list() ->
    frequency([{4, list({header_name(), header_value()})},
               {1, list({oneof([binary(), garbage()]), oneof([binary(), garbage()])})},
               {1, garbage()}]).

%% Makes placeholders real in the calling process, then calls.
perform({M, F, Args0}) ->
    Env = env(),
    Real = [realize(A, Env) || A <- Args0],
    try apply(M, F, Real)
    after tidy(F, Real)
    end.

realize({'$client', shared}, #{client := C}) -> C;
realize({'$client', name}, _) -> erqwest_prop_client;
realize({'$client', fresh}, _) -> erqwest:make_client(#{proxy => no_proxy});
realize({'$client', fresh_name}, _) ->
    ok = erqwest:start_client(erqwest_prop_fresh, #{proxy => no_proxy}),
    erqwest_prop_fresh;
realize({'$client', closed}, _) ->
    C = erqwest:make_client(#{proxy => no_proxy}),
    ok = erqwest:close_client(C),
    C;
realize({'$name', registered}, _) ->
    ok = erqwest:start_client(erqwest_prop_named, #{proxy => no_proxy}),
    erqwest_prop_named;
realize({'$name', unknown}, _) -> erqwest_prop_no_such_client;
realize({'$pid', self}, _) -> self();
realize({'$pid', dead}, _) -> dead_pid();
realize({'$url', Path}, #{base := Base}) -> <<Base/binary, Path/binary>>;
realize({'$url_closed'}, #{closed_port := P}) ->
    iolist_to_binary(["http://127.0.0.1:", integer_to_list(P), "/"]);
realize({'$big'}, #{big := Big}) -> Big;
realize({'$deep'}, #{deep := Deep}) -> Deep;
realize({'$sync', State}, Env) -> sync_handle(State, Env);
realize({'$async', State}, Env) -> async_handle(State, Env);
realize(L, Env) when is_list(L) ->
    try [realize(X, Env) || X <- L] catch error:_ -> L end;
realize(M, Env) when is_map(M) -> maps:map(fun(_, V) -> realize(V, Env) end, M);
realize(T, Env) when is_tuple(T), tuple_size(T) > 0, tuple_size(T) < 5 ->
    list_to_tuple([realize(X, Env) || X <- tuple_to_list(T)]);
realize(X, _) -> X.

%% Registered names made for a call are removed after it.
tidy(F, Args) ->
    Garbage = case {F, Args} of
        {start_client, [Name | _]} when is_atom(Name), Name =/= erqwest_prop_client -> [Name];
        _ -> []
    end,
    [catch erqwest:stop_client(N) || N <- [erqwest_prop_fresh, erqwest_prop_named | Garbage]],
    ok.

dead_pid() ->
    {P, M} = spawn_monitor(fun() -> ok end),
    receive {'DOWN', M, _, _, _} -> P end.

echo_url(#{base := Base}) -> <<Base/binary, "/h">>.

sync_handle(State, #{client := C} = Env) ->
    Url = echo_url(Env),
    case State of
        upload_open ->
            {handle, H} = erqwest:req(C, #{method => post, url => Url, body => stream}),
            H;
        upload_done ->
            {handle, H} = erqwest:req(C, #{method => post, url => Url, body => stream}),
            {ok, _} = erqwest:finish_send(H),
            H;
        download_open ->
            {ok, #{body := H}} = erqwest:req(C, #{method => get, url => Url,
                                                 response_body => stream}),
            H;
        download_done ->
            {ok, #{body := H}} = erqwest:req(C, #{method => get, url => Url,
                                                 response_body => stream}),
            {ok, _} = erqwest:read(H),
            H;
        complete ->
            {handle, H} = erqwest:req(C, #{method => post, url => Url, body => stream,
                                           response_body => stream}),
            {ok, _} = erqwest:finish_send(H),
            {ok, _} = erqwest:read(H),
            H;
        cancelled ->
            {handle, H} = erqwest:req(C, #{method => post, url => Url, body => stream}),
            ok = erqwest:cancel(H),
            H
    end.

async_handle(State, #{client := C} = Env) ->
    Url = echo_url(Env),
    R = make_ref(),
    Req = fun(Opts) -> erqwest_async:req(C, self(), R, Opts#{url => Url}) end,
    Wait = fun(Tag) -> receive {erqwest_response, R, Tag} -> ok;
                               {erqwest_response, R, Tag, _} -> ok
                       after 10000 -> error({no, Tag})
                       end
           end,
    case State of
        upload_open ->
            H = Req(#{method => post, body => stream}), Wait(next), H;
        upload_done ->
            H = Req(#{method => post, body => stream}), Wait(next),
            ok = erqwest_async:finish_send(H), Wait(reply), H;
        download_open ->
            H = Req(#{method => get, response_body => stream}), Wait(reply), H;
        download_done ->
            H = Req(#{method => get, response_body => stream}), Wait(reply),
            ok = erqwest_async:read(H, #{}), Wait(fin), H;
        complete ->
            H = Req(#{method => get}), Wait(reply), H;
        cancelled ->
            H = Req(#{method => get, response_body => stream}), Wait(reply),
            ok = erqwest_async:cancel(H), Wait(error), H
    end.

%% badarg-class exceptions, err() maps and the values the spec allows.
acceptable(_Call, hang) -> false;
acceptable(_Call, {died, _}) -> false;
acceptable(_Call, {raised, error, Reason, _}) -> badarg_class(Reason);
acceptable(_Call, {raised, _, _, _}) -> false;
acceptable({M, F, _}, {return, V}) -> valid_return(M, F, V).

badarg_class(badarg) -> true;
badarg_class(function_clause) -> true;
badarg_class({badmap, _}) -> true;
%% A handle used from a process that does not own it (the contract's error).
badarg_class({assertEqual, _}) -> true;
badarg_class(#{'__struct__' := 'Elixir.ArgumentError'}) -> true;
badarg_class(_) -> false.

valid_return(erqwest, make_client, C) -> is_reference(C);
valid_return(erqwest, F, ok) when F =:= close_client; F =:= start_client; F =:= stop_client;
                                  F =:= cancel -> true;
valid_return(erqwest, get_client, _) -> true;
valid_return(erqwest, feature, B) -> is_boolean(B);
valid_return(erqwest, format_error, M) -> is_map(M);
valid_return(erqwest, client_info, #{in_flight := F, queued := Q, hosts := H}) ->
    is_integer(F) andalso is_integer(Q) andalso is_map(H);
valid_return(erqwest, F, R) when F =:= req; F =:= get; F =:= head; F =:= options; F =:= post;
                                 F =:= put; F =:= delete; F =:= patch ->
    case R of
        {ok, Resp} -> is_resp(Resp);
        {handle, _} -> true;
        {error, E} -> is_err(E);
        _ -> false
    end;
valid_return(erqwest, send, R) ->
    R =:= ok orelse reply_or_error(R);
valid_return(erqwest, finish_send, {ok, Resp}) -> is_resp(Resp);
valid_return(erqwest, finish_send, {error, E}) -> is_err(E);
valid_return(erqwest, read, {more, B}) -> is_binary(B);
valid_return(erqwest, read, {ok, B}) -> is_binary(B);
valid_return(erqwest, read, {error, E}) -> is_err(E);
valid_return(erqwest_async, req, H) -> is_reference(H);
valid_return(erqwest_async, _, ok) -> true;
%% The NIF calls behind send/read/cancel say when the request is over.
valid_return(erqwest_async, F, finished)
  when F =:= nif_send; F =:= nif_finish_send; F =:= nif_read; F =:= nif_cancel -> true;
valid_return(_, _, _) -> false.

reply_or_error({reply, Resp}) -> is_resp(Resp);
reply_or_error({error, E}) -> is_err(E);
reply_or_error(_) -> false.

is_resp(#{status := S, headers := H}) -> is_integer(S) andalso is_list(H);
is_resp(_) -> false.

is_err(#{code := C, reason := R}) ->
    is_binary(R) andalso lists:member(C, [timeout, redirect, url, connect, request, body,
                                          cancelled, unknown, body_too_large]);
is_err(_) -> false.

deep_iolist(0) -> <<"end">>;
deep_iolist(N) -> [deep_iolist(N - 1) | <<"x">>].

%%% Property 2: requests round-trip through the echo server

%% A request plan: what to send and how, and how to read the answer.
-record(rt, {api, method, status, headers, body, send, resp, echo_chunk}).

prop_round_trip(_Mode) ->
    ?FORALL(Plan, round_trip_plan(),
            case isolated(fun() -> round_trip(Plan) end) of
                {return, true} -> true;
                Other -> report(round_trip, Plan, Other)
            end).

round_trip_plan() ->
    ?LET({Api, Method, Status, Headers, Body, Send, Resp, EchoChunk},
         {elements([sync, async]),
          elements([get, post, put, patch, delete, options, head]),
          range(200, 599),
          list({header_name(), header_value()}),
          body_spec(),
          send_mode(),
          resp_mode(),
          frequency([{2, 0}, {1, range(1, 100000)}])},
         #rt{api = Api, method = Method, status = Status, headers = Headers, body = Body,
             send = Send, resp = Resp, echo_chunk = EchoChunk}).

%% Header names are tokens under a prefix the echo server sends back; any
%% case (they come back lower-case).
header_name() ->
    ?LET({Prefix, Cs}, {elements([<<"x-p-">>, <<"X-P-">>, <<"x-P-">>]), non_empty(list(tchar()))},
         <<Prefix/binary, (list_to_binary(Cs))/binary>>).

tchar() ->
    elements("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ").

%% Every byte allowed in a field value: HTAB, visible ASCII, space, and
%% obs-text (128..255).
header_value() ->
    ?LET(Bytes, list(frequency([{6, range(16#20, 16#7e)}, {1, 9}, {3, range(16#80, 16#ff)}])),
         list_to_binary(Bytes)).

%% {Size, Pattern}: the body is Pattern repeated to Size bytes, made in the
%% property (not the generator) so that failures print small.
body_spec() ->
    {frequency([{30, range(0, 100)}, {20, range(101, 70000)}, {6, range(70001, ?MB)},
                {2, range(?MB + 1, 16 * ?MB)}]),
     non_empty(binary())}.

send_mode() ->
    frequency([{3, whole}, {2, {iolist, list(range(0, 70000))}},
               {3, {stream, non_empty(list(frequency([{1, 0}, {6, range(1, 70000)},
                                                      {1, range(70001, 2 * ?MB)}])))}}]).

resp_mode() ->
    frequency([{3, whole},
               {3, {stream, non_empty(list({frequency([{1, default}, {3, range(1, 100)},
                                                      {3, range(101, 2 * ?MB)}]),
                                           elements([infinity, infinity, 0, 1, 5, 20])}))}}]).

make_body({Size, Pattern}) ->
    P = byte_size(Pattern),
    Whole = binary:copy(Pattern, Size div P),
    <<Whole/binary, (binary:part(Pattern, 0, Size rem P))/binary>>.

%% Cuts Body into pieces of the given sizes, cycling; zero-size pieces
%% included. Ends with what is left.
cut(Body, Sizes) ->
    case lists:all(fun(S) -> S =:= 0 end, Sizes) of
        true -> [<<>>, Body];  % only empty pieces: they would never end
        false -> cut(Body, Sizes, Sizes, [])
    end.
cut(<<>>, _, _, Acc) -> lists:reverse(Acc);
cut(Body, [], All, Acc) -> cut(Body, All, All, Acc);
cut(Body, [S | Ss], All, Acc) when byte_size(Body) =< S -> cut(<<>>, Ss, All, [Body | Acc]);
cut(Body, [S | Ss], All, Acc) ->
    <<C:S/binary, Rest/binary>> = Body,
    cut(Rest, Ss, All, [C | Acc]).

%% Pieces as a nested, improper iolist.
nest([]) -> [];
nest([A]) -> [A];
nest([A, B | Rest]) -> [[A] | [B | nest_tail(Rest)]].
nest_tail([]) -> [];
nest_tail(Rest) -> [nest(Rest)].

round_trip(#rt{} = P) ->
    #{client := C, base := Base} = env(),
    Body = make_body(P#rt.body),
    Control = [{<<"x-echo-status">>, integer_to_binary(P#rt.status)}]
        ++ [{<<"x-echo-chunk">>, integer_to_binary(P#rt.echo_chunk)} || P#rt.echo_chunk > 0],
    Opts0 = #{method => P#rt.method, url => <<Base/binary, "/rt">>,
              headers => P#rt.headers ++ Control},
    {Opts1, Chunks} = case P#rt.send of
        whole when Body =:= <<>> -> {Opts0, []};
        whole -> {Opts0#{body => Body}, []};
        {iolist, Sizes} -> {Opts0#{body => nest(cut(Body, [max(1, S) || S <- Sizes]))}, []};
        {stream, Sizes} -> {Opts0#{body => stream}, cut(Body, Sizes)}
    end,
    {Opts, Reads} = case P#rt.resp of
        whole -> {Opts1, []};
        {stream, Rs} -> {Opts1#{response_body => stream}, [read_opts(R) || R <- Rs]}
    end,
    Result = case P#rt.api of
        async -> erqwest_check:run(C, Opts, #{chunks => Chunks, reads => Reads});
        sync -> sync_run(C, Opts, Chunks, Reads)
    end,
    erqwest_check:no_stray(0),
    expect(P, Body, Result).

read_opts({default, Period}) -> maps:from_list([{period, Period} || Period =/= infinity]);
read_opts({Length, Period}) -> #{length => Length, period => Period}.

expect(P, Body, {ok, #{status := Status, headers := Hs, body := Got}}) ->
    NoBody = P#rt.method =:= head orelse Status =:= 204 orelse Status =:= 304,
    Want = case NoBody of true -> <<>>; false -> Body end,
    Echoed = [{K, V} || {K, V} <- Hs, binary:longest_common_prefix([K, <<"x-p-">>]) =:= 4],
    Checks = [{status, Status =:= P#rt.status},
              {method, lists:keyfind(<<"x-echo-method">>, 1, Hs) =:=
                           {<<"x-echo-method">>, string:uppercase(atom_to_binary(P#rt.method))}},
              {headers, Echoed =:= expected_headers(P#rt.headers)},
              {body, Got =:= Want}],
    case [C || {C, false} <- Checks] of
        [] -> true;
        Failed -> {mismatch, Failed, #{status => Status, headers => Echoed,
                                       body => summary(Got), want_body => summary(Want),
                                       want_headers => expected_headers(P#rt.headers)}}
    end;
expect(_P, _Body, Other) ->
    {unexpected, Other}.

%% What comes back: names lower-case, values without surrounding blanks,
%% values of one name together in the order sent, names in order of first
%% appearance.
expected_headers(Sent) ->
    Norm = [{string:lowercase(K), strip(V)} || {K, V} <- Sent],
    Names = lists:usort(fun(A, B) -> first(A, Norm) =< first(B, Norm) end,
                        [K || {K, _} <- Norm]),
    [{K, V} || K <- Names, {K2, V} <- Norm, K2 =:= K].

first(K, L) -> first(K, L, 1).
first(K, [{K, _} | _], I) -> I;
first(K, [_ | T], I) -> first(K, T, I + 1).

strip(B) -> strip_right(strip_left(B)).
strip_left(<<C, R/binary>>) when C =:= $\s; C =:= $\t -> strip_left(R);
strip_left(B) -> B.
strip_right(B) ->
    case B of
        <<>> -> <<>>;
        _ ->
            case binary:last(B) of
                C when C =:= $\s; C =:= $\t -> strip_right(binary:part(B, 0, byte_size(B) - 1));
                _ -> B
            end
    end.

%% The same request through the synchronous API.
sync_run(C, Opts, Chunks, Reads) ->
    First = erqwest:req(C, Opts),
    Resp = case First of
        {handle, H} -> sync_upload(H, Chunks);
        Other -> Other
    end,
    case {Resp, maps:get(response_body, Opts, complete)} of
        {{ok, #{body := RH} = R}, stream} ->
            case sync_read(RH, Reads, Reads, []) of
                {ok, B} -> {ok, R#{body => B}};
                Error -> Error
            end;
        _ -> Resp
    end.

sync_upload(H, []) ->
    erqwest:finish_send(H);
sync_upload(H, [C | Cs]) ->
    case erqwest:send(H, C) of
        ok -> sync_upload(H, Cs);
        {reply, R} -> {ok, R};
        {error, _} = E -> E
    end.

sync_read(H, [], All, Acc) ->
    sync_read(H, case All of [] -> [#{}]; _ -> All end, All, Acc);
sync_read(H, [R | Rs], All, Acc) ->
    case erqwest:read(H, R) of
        {more, D} -> sync_read(H, Rs, All, [Acc | D]);
        {ok, D} -> {ok, iolist_to_binary([Acc | D])};
        {error, _} = E -> E
    end.

%%% Property 3: cancel at any step

prop_cancel(_Mode) ->
    ?FORALL(Plan, cancel_plan(),
            case isolated(fun() -> cancel_run(Plan) end) of
                {return, true} -> true;
                Other -> report(cancel, Plan, Other)
            end).

%% {Api, Upload, Download, Step}: cancel after Step protocol steps.
cancel_plan() ->
    {elements([sync, async]), boolean(), boolean(), range(0, 6), range(0, 3)}.

cancel_run({async, Upload, Download, Step, Delay}) ->
    #{client := C, base := Base} = env(),
    Ref = make_ref(),
    Opts = #{method => post, url => <<Base/binary, "/cancel">>,
             headers => [{<<"x-echo-delay">>, integer_to_binary(Delay)}]},
    H = erqwest_async:req(C, self(), Ref, Opts#{body => case Upload of
                                                          true -> stream;
                                                          false -> <<"whole body">>
                                                      end,
                                                response_body => case Download of
                                                                     true -> stream;
                                                                     false -> complete
                                                                 end}),
    %% Walk the protocol Step steps, then cancel and count final messages.
    State = walk(H, Ref, Upload, Download, Step),
    ok = erqwest_async:cancel(H),
    Finals = case State of
        final -> 1;
        _ -> drain_to_final(Ref, Download, State)
    end,
    erqwest_check:no_more(Ref, 30),
    ok = erqwest_async:cancel(H),
    erqwest_check:no_more(Ref, 0),
    Finals =:= 1;
cancel_run({sync, Upload, Download, Step, _Delay}) ->
    #{client := C, base := Base} = env(),
    Opts = #{method => post, url => <<Base/binary, "/cancel">>,
             body => case Upload of true -> stream; false -> <<"whole">> end,
             response_body => case Download of true -> stream; false -> complete end},
    case erqwest:req(C, Opts) of
        {handle, H} ->
            _ = [erqwest:send(H, <<"chunk">>) || _ <- lists:seq(1, Step)],
            ok = erqwest:cancel(H);
        {ok, #{body := H}} when Download ->
            _ = [erqwest:read(H, #{length => 1}) || _ <- lists:seq(1, min(Step, 1))],
            ok = erqwest:cancel(H);
        {ok, _} -> ok
    end,
    erqwest_check:no_stray(30),
    true.

%% Steps: each consumes one message and answers it the way a client would.
%% Returns `final' if the final message came, or what is awaited.
walk(_H, _Ref, _Up, _Down, 0) ->
    pending;
walk(H, Ref, Up, Down, N) ->
    receive
        {erqwest_response, Ref, next} ->
            case N rem 2 of
                0 -> ok = erqwest_async:send(H, <<"chunk">>);
                1 -> ok = erqwest_async:finish_send(H)
            end,
            walk(H, Ref, Up, Down, N - 1);
        {erqwest_response, Ref, reply, _} when Down ->
            ok = erqwest_async:read(H, #{length => 1}),
            walk(H, Ref, Up, Down, N - 1);
        {erqwest_response, Ref, reply, _} -> final;
        {erqwest_response, Ref, chunk, _} ->
            ok = erqwest_async:read(H, #{length => 1}),
            walk(H, Ref, Up, Down, N - 1);
        {erqwest_response, Ref, fin, _} -> final;
        {erqwest_response, Ref, error, _} -> final
    after 10000 ->
        error({hung, walking, N})
    end.

drain_to_final(Ref, Down, _State) ->
    receive
        {erqwest_response, Ref, next} -> drain_to_final(Ref, Down, pending);
        {erqwest_response, Ref, reply, _} when Down -> drain_to_final(Ref, Down, pending);
        {erqwest_response, Ref, reply, _} -> 1;
        {erqwest_response, Ref, chunk, _} -> drain_to_final(Ref, Down, pending);
        {erqwest_response, Ref, fin, _} -> 1;
        {erqwest_response, Ref, error, _} -> 1
    after 10000 -> 0
    end.
