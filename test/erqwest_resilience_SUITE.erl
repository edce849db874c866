%% Retries, hedging, concurrency limits and timings (native/src/resilience/),
%% against erqwest_script_server, which answers each path from a script and
%% counts what it saw.
-module(erqwest_resilience_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-compile([export_all, nowarn_export_all]).

all() ->
    [{group, retry}, {group, hedge}, {group, limits}, {group, cancel}, {group, timings},
     {group, options}].

groups() ->
    [{retry, [parallel], [off_by_default, status_then_ok, retry_after_seconds, retry_after_date,
                          retry_after_too_long, refused_then_accepted, post_not_retried,
                          post_retried_with_methods_all, streamed_upload_never_retried,
                          exhausted_response, exhausted_error, budget_holds_retries,
                          jittered_delays_within_bounds, client_default_request_override,
                          async_api_attempts, cancelled_is_never_retried]},
     {hedge, [], [hedge_wins_against_a_held_attempt, hedge_not_for_post]},
     %% The limits' cases on both engines (a client made for each), then
     %% the queue the two engines share.
     {limits, [], [{group, scheduler}, {group, runtime}, fifo_across_engines,
                   a_queued_scheduler_caller_is_woken_by_a_message,
                   a_stopped_runtime_ends_queued_callers_of_both_engines]},
     {scheduler, [], limit_cases()},
     {runtime, [], limit_cases()},
     {cancel, [], [cancel_while_queued, owner_dies_while_queued, cancel_between_retries,
                   owner_dies_between_retries]},
     {timings, [], [fresh_then_reused, timings_of_a_streamed_body, timings_off_by_default,
                    request_timings_report_connect_and_reused]},
     {options, [parallel], [bad_options_are_badarg]}].

%% Concurrency limits, the same on the scheduler engine (erqwest:req/2 on
%% a plain client) as on the runtime engine (a client with a `resolve'
%% entry, which reqwest always serves).
limit_cases() ->
    [per_host_limit_holds, queue_timeout, client_info_counts,
     a_queued_caller_killed_leaves_the_queue, a_server_that_never_answers_holds_the_slot,
     a_retry_keeps_its_place, an_answer_from_a_runtime_task_gives_the_slot_back,
     timeout_starts_once_in, queued_time_is_in_timings].

init_per_group(G, Config) when G =:= scheduler; G =:= runtime ->
    [{engine, G} | Config];
init_per_group(_, Config) ->
    Config.

end_per_group(_, _Config) ->
    ok.

init_per_suite(Config) ->
    {ok, _} = application:ensure_all_started(erqwest),
    {ok, S} = erqwest_script_server:start(),
    [{server, S}, {client, erqwest:make_client()} | Config].

end_per_suite(Config) ->
    erqwest_script_server:stop(?config(server, Config)),
    application:stop(erqwest).

%%% helpers

srv(Config) -> ?config(server, Config).
client(Config) -> ?config(client, Config).

%% A path of its own per test case, so that parallel cases do not mix.
path(Name) -> "/" ++ atom_to_list(Name).

script(Config, Name, Steps) ->
    ok = erqwest_script_server:script(srv(Config), path(Name), Steps),
    erqwest_script_server:url(srv(Config), path(Name)).

hits(Config, Name) -> erqwest_script_server:hits(srv(Config), path(Name)).

ms_since(T0) -> erlang:monotonic_time(millisecond) - T0.
now_ms() -> erlang:monotonic_time(millisecond).

fast() -> #{base => 1, max => 5}.

recv(Ref, Timeout) ->
    receive
        {erqwest_response, Ref, next} -> next;
        {erqwest_response, Ref, Tag, Value} -> {Tag, Value}
    after Timeout -> timeout
    end.

no_more(Ref) ->
    receive {erqwest_response, Ref, _, _} = M -> ct:fail({unexpected, M})
    after 300 -> ok
    end.

%% Live handles and tasks back to what they were (the GC frees handles).
await_live(Before) -> await_live(Before, 50).
await_live(Before, 0) -> ?assertEqual(Before, erqwest_nif:live_resources());
await_live(Before, N) ->
    erlang:garbage_collect(),
    case erqwest_nif:live_resources() of
        Before -> ok;
        _ -> timer:sleep(100), await_live(Before, N - 1)
    end.

%% A port that nothing listens on (yet).
free_port() ->
    {ok, L} = gen_tcp:listen(0, [{ip, {127, 0, 0, 1}}, {reuseaddr, true}]),
    {ok, P} = inet:port(L),
    ok = gen_tcp:close(L),
    P.

%%% retry

off_by_default(Config) ->
    Url = script(Config, ?FUNCTION_NAME, [{503, [], <<"down">>}, {200, [], <<"ok">>}]),
    {ok, Resp} = erqwest:get(client(Config), Url),
    ?assertMatch(#{status := 503, body := <<"down">>}, Resp),
    %% 0.2.5 code sees no new keys.
    ?assertNot(maps:is_key(attempts, Resp)),
    ?assertNot(maps:is_key(timings, Resp)),
    ?assertEqual(1, hits(Config, ?FUNCTION_NAME)).

status_then_ok(Config) ->
    Url = script(Config, ?FUNCTION_NAME, [{503, [], <<"down">>}, {200, [], <<"ok">>}]),
    {ok, Resp} = erqwest:get(client(Config), Url, #{retry => fast()}),
    ?assertMatch(#{status := 200, body := <<"ok">>, attempts := 2}, Resp),
    ?assertEqual(2, hits(Config, ?FUNCTION_NAME)).

retry_after_seconds(Config) ->
    Url = script(Config, ?FUNCTION_NAME,
                 [{429, [{"retry-after", "1"}], <<>>}, {200, [], <<"ok">>}]),
    T0 = now_ms(),
    {ok, Resp} = erqwest:get(client(Config), Url, #{retry => fast()}),
    ?assertMatch(#{status := 200, attempts := 2}, Resp),
    %% The 5 ms backoff cap would have been far shorter: Retry-After was obeyed.
    [A, B] = erqwest_script_server:arrivals(srv(Config), path(?FUNCTION_NAME)),
    ?assert(B - A >= 990),
    ?assert(ms_since(T0) >= 990).

retry_after_date(Config) ->
    %% An HTTP date 2 s ahead (whole seconds: the wait is over 1 s).
    Date = httpd_util:rfc1123_date(calendar:universal_time_to_local_time(
        calendar:gregorian_seconds_to_datetime(
            calendar:datetime_to_gregorian_seconds(calendar:universal_time()) + 2))),
    Url = script(Config, ?FUNCTION_NAME,
                 [{503, [{"retry-after", Date}], <<>>}, {200, [], <<"ok">>}]),
    {ok, Resp} = erqwest:get(client(Config), Url, #{retry => fast()}),
    ?assertMatch(#{status := 200, attempts := 2}, Resp),
    [A, B] = erqwest_script_server:arrivals(srv(Config), path(?FUNCTION_NAME)),
    ?assert(B - A >= 900).

retry_after_too_long(Config) ->
    Url = script(Config, ?FUNCTION_NAME,
                 [{503, [{"retry-after", "120"}], <<"later">>}, {200, [], <<"ok">>}]),
    {ok, Resp} = erqwest:get(client(Config), Url, #{retry => fast()}),
    %% Over max_retry_after (60 s): the answer comes back as it is.
    ?assertMatch(#{status := 503, body := <<"later">>, attempts := 1}, Resp),
    ?assertEqual(1, hits(Config, ?FUNCTION_NAME)).

refused_then_accepted(_Config) ->
    Port = free_port(),
    Self = self(),
    %% The listener starts 300 ms after the request.
    Server = spawn_link(fun() ->
        timer:sleep(300),
        {ok, L} = gen_tcp:listen(Port, [binary, {ip, {127, 0, 0, 1}}, {reuseaddr, true},
                                        {active, false}]),
        {ok, S} = gen_tcp:accept(L),
        {ok, _} = gen_tcp:recv(S, 0, 5000),
        ok = gen_tcp:send(S, "HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nlate"),
        Self ! {served, self()},
        receive stop -> ok end
    end),
    Url = iolist_to_binary(["http://127.0.0.1:", integer_to_list(Port), "/"]),
    C = erqwest:make_client(),
    {ok, Resp} = erqwest:get(C, Url, #{retry => #{base => 100, max => 200, max_retries => 10}}),
    ?assertMatch(#{status := 200, body := <<"late">>}, Resp),
    #{attempts := N} = Resp,
    ?assert(N >= 2),
    receive {served, Server} -> Server ! stop after 1000 -> ct:fail(not_served) end.

post_not_retried(Config) ->
    Url = script(Config, ?FUNCTION_NAME, [{503, [], <<>>}, {200, [], <<"ok">>}]),
    {ok, Resp} = erqwest:post(client(Config), Url, #{body => <<"x">>, retry => fast()}),
    ?assertMatch(#{status := 503, attempts := 1}, Resp),
    ?assertEqual(1, hits(Config, ?FUNCTION_NAME)).

post_retried_with_methods_all(Config) ->
    Url = script(Config, ?FUNCTION_NAME, [{503, [], <<>>}, {200, [], <<"ok">>}]),
    Retry = (fast())#{methods => all},
    {ok, Resp} = erqwest:post(client(Config), Url, #{body => <<"same body">>, retry => Retry}),
    ?assertMatch(#{status := 200, attempts := 2}, Resp),
    %% The complete body went out again unchanged.
    Reqs = [R || #{path := P} = R <- erqwest_test_server:requests(element(1, srv(Config))),
                 P =:= list_to_binary(path(?FUNCTION_NAME))],
    ?assertMatch([#{body := <<"same body">>}, #{body := <<"same body">>}], Reqs).

streamed_upload_never_retried(Config) ->
    Url = script(Config, ?FUNCTION_NAME, [{503, [], <<>>}, {200, [], <<"ok">>}]),
    Retry = (fast())#{methods => all},
    {handle, H} = erqwest:post(client(Config), Url, #{body => stream, retry => Retry}),
    ok = erqwest:send(H, <<"part">>),
    {ok, Resp} = erqwest:finish_send(H),
    ?assertMatch(#{status := 503, attempts := 1}, Resp),
    ?assertEqual(1, hits(Config, ?FUNCTION_NAME)).

exhausted_response(Config) ->
    Url = script(Config, ?FUNCTION_NAME, [{500, [], <<"last">>}]),
    {ok, Resp} = erqwest:get(client(Config), Url, #{retry => (fast())#{max_retries => 2}}),
    ?assertMatch(#{status := 500, body := <<"last">>, attempts := 3}, Resp),
    ?assertEqual(3, hits(Config, ?FUNCTION_NAME)).

exhausted_error(_Config) ->
    Url = iolist_to_binary(["http://127.0.0.1:", integer_to_list(free_port()), "/"]),
    C = erqwest:make_client(),
    {error, Err} = erqwest:get(C, Url, #{retry => (fast())#{max_retries => 2}}),
    ?assertMatch(#{code := connect, attempts := 3}, Err),
    %% Without retries an err() has only the two keys of 0.2.5.
    {error, Plain} = erqwest:get(C, Url),
    ?assertEqual([code, reason], lists:sort(maps:keys(Plain))).

budget_holds_retries(Config) ->
    Url = script(Config, ?FUNCTION_NAME, [{503, [], <<>>}]),
    %% A client of its own: the budget is per client and host.
    C = erqwest:make_client(#{retry => (fast())#{budget => #{ratio => 0.2, min_per_sec => 0}}}),
    N = 100,
    Statuses = [begin {ok, #{status := S}} = erqwest:get(C, Url), S end
                || _ <- lists:seq(1, N)],
    ?assertEqual(lists:duplicate(N, 503), Statuses),
    %% Without the budget there would be 4 x 100 requests; with it, 20% extra.
    Hits = hits(Config, ?FUNCTION_NAME),
    ct:pal("~p requests for ~p calls", [Hits, N]),
    ?assert(Hits >= 118 andalso Hits =< 121).

jittered_delays_within_bounds(Config) ->
    Url = script(Config, ?FUNCTION_NAME, [{503, [], <<>>}]),
    Retry = #{base => 40, max => 1000, max_retries => 4, budget => false},
    {ok, #{attempts := 5}} = erqwest:get(client(Config), Url, #{retry => Retry}),
    Arr = erqwest_script_server:arrivals(srv(Config), path(?FUNCTION_NAME)),
    Gaps = [B - A || {A, B} <- lists:zip(lists:droplast(Arr), tl(Arr))],
    ct:pal("gaps ~p ms", [Gaps]),
    %% Retry n waits at most 40 * 2^(n-1) ms; a request's own time is
    %% allowed for on top.
    Caps = [40, 80, 160, 320],
    [?assert(G =< Cap + 150) || {G, Cap} <- lists:zip(Gaps, Caps)].

client_default_request_override(Config) ->
    Url = script(Config, ?FUNCTION_NAME, [{503, [], <<>>}]),
    C = erqwest:make_client(#{retry => (fast())#{max_retries => 1}}),
    {ok, #{attempts := 2}} = erqwest:get(C, Url),
    {ok, Off} = erqwest:get(C, Url, #{retry => false}),
    ?assertNot(maps:is_key(attempts, Off)),
    ?assertEqual(3, hits(Config, ?FUNCTION_NAME)).

async_api_attempts(Config) ->
    Url = script(Config, ?FUNCTION_NAME, [{502, [], <<>>}, {200, [], <<"ok">>}]),
    Ref = make_ref(),
    _ = erqwest_async:req(client(Config), self(), Ref,
                          #{url => Url, method => get, retry => fast()}),
    ?assertMatch({reply, #{status := 200, attempts := 2}}, recv(Ref, 5000)),
    no_more(Ref).

cancelled_is_never_retried(Config) ->
    Url = script(Config, ?FUNCTION_NAME, [{hold, 5000, {200, [], <<>>}}]),
    Ref = make_ref(),
    H = erqwest_async:req(client(Config), self(), Ref,
                          #{url => Url, method => get, retry => fast()}),
    timer:sleep(100),
    ok = erqwest_async:cancel(H),
    ?assertMatch({error, #{code := cancelled, attempts := 1}}, recv(Ref, 2000)),
    no_more(Ref),
    ?assertEqual(1, hits(Config, ?FUNCTION_NAME)).

%%% hedge

hedge_wins_against_a_held_attempt(Config) ->
    Url = script(Config, ?FUNCTION_NAME,
                 [{hold, 2000, {200, [], <<"slow">>}}, {200, [], <<"fast">>}]),
    T0 = now_ms(),
    {ok, Resp} = erqwest:get(client(Config), Url, #{hedge => #{delay => 50}}),
    Took = ms_since(T0),
    ?assertMatch(#{status := 200, body := <<"fast">>, attempts := 2}, Resp),
    ?assert(Took < 1500),
    %% The losing attempt's connection was closed under the held reply.
    ok = wait_until(fun() -> erqwest_script_server:dropped(srv(Config), path(?FUNCTION_NAME)) =:= 1 end),
    %% Without hedging the same script takes the full 2 s.
    _ = script(Config, ?FUNCTION_NAME, [{hold, 2000, {200, [], <<"slow">>}}]),
    T1 = now_ms(),
    {ok, #{body := <<"slow">>}} = erqwest:get(client(Config), Url),
    ?assert(ms_since(T1) >= 1900).

hedge_not_for_post(Config) ->
    Url = script(Config, ?FUNCTION_NAME,
                 [{hold, 300, {200, [], <<"slow">>}}, {200, [], <<"fast">>}]),
    {ok, Resp} = erqwest:post(client(Config), Url, #{body => <<>>, hedge => #{delay => 20}}),
    ?assertMatch(#{body := <<"slow">>, attempts := 1}, Resp),
    ?assertEqual(1, hits(Config, ?FUNCTION_NAME)).

wait_until(F) -> wait_until(F, 50).
wait_until(_F, 0) -> timeout;
wait_until(F, N) ->
    case F() of
        true -> ok;
        false -> timer:sleep(50), wait_until(F, N - 1)
    end.

%%% limits

engine(Config) -> erqwest_engine:engine(Config).

%% A client of the group's engine.
limited(Config, Opts) -> erqwest_engine:client(engine(Config), Opts).

%% While a request of `Config's engine waits: on the scheduler engine no
%% runtime request task or handle exists for it (its caller is in
%% `receive'); the runtime engine's has one.
check_placement(Config) ->
    case engine(Config) of
        scheduler -> ?assertEqual({0, 0}, erqwest_nif:live_resources());
        runtime -> ?assertNotEqual({0, 0}, erqwest_nif:live_resources())
    end.

%% No task or handle left by an earlier case, before a placement check.
settled() -> await_live({0, 0}).

idle() -> #{in_flight => 0, queued => 0, hosts => #{}}.

queued(C, N) -> wait_until(fun() -> maps:get(queued, erqwest:client_info(C)) =:= N end).

%% `erqwest:get/2' in a process of its own, which sends `{Tag, Answer}'.
get_in(Tag, C, Url) ->
    Self = self(),
    spawn(fun() -> Self ! {Tag, erqwest:get(C, Url)} end).

answer(Tag) -> receive {Tag, R} -> R after 10000 -> ct:fail({no_answer, Tag}) end.

%% A server that tells the test of each request, `{arrived, Path, Conn}',
%% and holds its answer (the path as the body) until the test sends
%% `Conn ! go': never, for a server that never answers.
gate_server() ->
    Self = self(),
    {ok, S} = erqwest_test_server:start(fun(_) -> {custom, fun(Sock, #{path := P} = Req) ->
        Self ! {arrived, P, self()},
        receive go -> ok end,
        ok = erqwest_test_server:send_response({gen_tcp, Sock}, {200, [], P}, Req),
        keep
    end} end),
    S.

%% The next request to reach the gate server: `{Path, Conn}'.
next_arrival() ->
    receive {arrived, P, Conn} -> {P, Conn} after 5000 -> ct:fail(no_arrival) end.

no_arrival() ->
    receive {arrived, P, _} -> ct:fail({unexpected_arrival, P}) after 200 -> ok end.

host(Port) -> iolist_to_binary(["127.0.0.1:", integer_to_list(Port)]).

per_host_limit_holds(Config) ->
    {ok, S} = erqwest_script_server:start(),
    try
        ok = erqwest_script_server:script(S, "/hold", [{hold, 300, {200, [], <<"ok">>}}]),
        Url = erqwest_script_server:url(S, "/hold"),
        C = limited(Config, #{max_in_flight_per_host => 4}),
        settled(),
        Self = self(),
        Pids = [spawn_link(fun() -> Self ! {done, self(), erqwest:get(C, Url)} end)
                || _ <- lists:seq(1, 12)],
        ok = wait_until(fun() -> erqwest_script_server:active(S) =:= 4 end),
        ok = queued(C, 8),
        Info = erqwest:client_info(C),
        Host = host(erqwest_script_server:port(S)),
        ?assertMatch(#{in_flight := 4, queued := 8,
                       hosts := #{Host := #{in_flight := 4, queued := 8}}}, Info),
        check_placement(Config),
        Results = [receive {done, P, R} -> R after 5000 -> timeout end || P <- Pids],
        ?assertEqual(12, length([ok || {ok, #{status := 200}} <- Results])),
        %% The server never had more than four at once.
        ?assertEqual(4, erqwest_script_server:max_active(S)),
        ?assertEqual(idle(), erqwest:client_info(C))
    after
        erqwest_script_server:stop(S)
    end.

%% The same error, code and reason text, on both engines.
queue_timeout(Config) ->
    Name = list_to_atom("queue_timeout_" ++ atom_to_list(engine(Config))),
    Url = script(Config, Name, [{hold, 600, {200, [], <<"ok">>}}]),
    C = limited(Config, #{max_in_flight => 1, queue_timeout => 100}),
    _ = get_in(first, C, Url),
    ok = wait_until(fun() -> hits(Config, Name) =:= 1 end),
    T0 = now_ms(),
    Reason = iolist_to_binary(["still queued for ", host(erqwest_script_server:port(srv(Config))),
                               " after 100 ms"]),
    ?assertEqual({error, #{code => queue_timeout, reason => Reason}}, erqwest:get(C, Url)),
    Waited = ms_since(T0),
    ?assert(Waited >= 100 andalso Waited < 1000, Waited),
    %% A request may wait longer than the client's default.
    ?assertMatch({ok, #{status := 200}}, erqwest:get(C, Url, #{queue_timeout => 5000})),
    ?assertMatch({ok, #{status := 200}}, answer(first)),
    ?assertEqual(2, hits(Config, Name)),
    ?assertEqual(idle(), erqwest:client_info(C)).

%% Counted while in flight; gone from the counts by the time the caller
%% has its answer.
client_info_counts(Config) ->
    C = limited(Config, #{}),
    ?assertEqual(idle(), erqwest:client_info(C)),
    Name = list_to_atom("client_info_counts_" ++ atom_to_list(engine(Config))),
    Url = script(Config, Name, [{hold, 300, {200, [], <<"ok">>}}]),
    _ = get_in(done, C, Url),
    ok = wait_until(fun() -> hits(Config, Name) =:= 1 end),
    ?assertMatch(#{in_flight := 1, queued := 0}, erqwest:client_info(C)),
    {ok, _} = answer(done),
    ?assertEqual(idle(), erqwest:client_info(C)),
    ?assertError(badarg, erqwest:client_info(make_ref())).

%% A caller killed while queued leaves the queue at once (no task or
%% permit left behind) and the next in line gets the room.
a_queued_caller_killed_leaves_the_queue(Config) ->
    Before = erqwest_nif:live_resources(),
    S = gate_server(),
    try
        C = limited(Config, #{max_in_flight => 1}),
        _ = get_in(first, C, erqwest_test_server:url(S, "/first")),
        {<<"/first">>, First} = next_arrival(),
        Killed = get_in(killed, C, erqwest_test_server:url(S, "/killed")),
        ok = queued(C, 1),
        _ = get_in(next, C, erqwest_test_server:url(S, "/next")),
        ok = queued(C, 2),
        exit(Killed, kill),
        ok = queued(C, 1),
        First ! go,
        {ok, #{body := <<"/first">>}} = answer(first),
        %% The killed caller's place went to the next, never to it.
        {<<"/next">>, Next} = next_arrival(),
        ?assertMatch(#{in_flight := 1, queued := 0}, erqwest:client_info(C)),
        Next ! go,
        {ok, #{body := <<"/next">>}} = answer(next),
        no_arrival(),
        ?assertEqual(idle(), erqwest:client_info(C)),
        await_live(Before)
    after
        erqwest_test_server:stop(S)
    end.

%% A request whose server never answers keeps its slot (it has no
%% `timeout'); one queued behind it still returns, at its queue_timeout.
a_server_that_never_answers_holds_the_slot(Config) ->
    Before = erqwest_nif:live_resources(),
    S = gate_server(),
    try
        C = limited(Config, #{max_in_flight => 1}),
        Stuck = get_in(stuck, C, erqwest_test_server:url(S, "/stuck")),
        {<<"/stuck">>, _} = next_arrival(),
        T0 = now_ms(),
        {error, #{code := queue_timeout}} =
            erqwest:get(C, erqwest_test_server:url(S, "/queued"), #{queue_timeout => 150}),
        Waited = ms_since(T0),
        ?assert(Waited >= 150 andalso Waited < 1000, Waited),
        no_arrival(),
        ?assertMatch(#{in_flight := 1, queued := 0}, erqwest:client_info(C)),
        %% Its caller gone, the stuck request gives its slot back.
        exit(Stuck, kill),
        ok = wait_until(fun() -> erqwest:client_info(C) =:= idle() end),
        await_live(Before)
    after
        erqwest_test_server:stop(S)
    end.

%% Retries keep the request's place: a request queued behind one that is
%% retried goes out after its last attempt, not between two (as on the
%% runtime, where the slot is held across attempts).
a_retry_keeps_its_place(Config) ->
    Name = list_to_atom("a_retry_keeps_its_place_" ++ atom_to_list(engine(Config))),
    Url = script(Config, Name, [{hold, 100, {503, [], <<>>}}, {503, [], <<>>},
                                {200, [], <<"retried">>}, {200, [], <<"next">>}]),
    C = limited(Config, #{max_in_flight => 1, retry => #{base => 50, max => 50}}),
    _ = get_in(retried, C, Url),
    ok = wait_until(fun() -> hits(Config, Name) =:= 1 end),
    _ = get_in(next, C, Url),
    ok = queued(C, 1),
    ?assertMatch({ok, #{body := <<"retried">>, attempts := 3}}, answer(retried)),
    ?assertMatch({ok, #{body := <<"next">>, attempts := 1}}, answer(next)),
    ?assertEqual(4, hits(Config, Name)),
    ?assertEqual(idle(), erqwest:client_info(C)).

%% A JSON body over 32 KB is decoded on the runtime, which answers by
%% message: the slot is given back by the time the caller has the answer
%% (here the caller lives on, so its garbage collector would not do it).
an_answer_from_a_runtime_task_gives_the_slot_back(Config) ->
    Name = list_to_atom("an_answer_from_a_runtime_task_" ++ atom_to_list(engine(Config))),
    Big = iolist_to_binary(["[", lists:join(",", lists:duplicate(20000, "1")), "]"]),
    Url = script(Config, Name, [{200, [{"content-type", "application/json"}], Big}]),
    C = limited(Config, #{max_in_flight => 1, queue_timeout => 0}),
    {ok, #{body := L}} = erqwest:get(C, Url, #{decode => json}),
    ?assertEqual(20000, length(L)),
    ?assertEqual(idle(), erqwest:client_info(C)),
    %% No wait at all: the room is free at once.
    {ok, #{body := L}} = erqwest:get(C, Url, #{decode => json}),
    ?assertEqual(idle(), erqwest:client_info(C)).

%% The wait of a queued scheduler caller is a runtime task: when the
%% runtime stops, the caller is told, with the error a runtime-engine
%% request queued beside it gets, and does not wait for ever.
a_stopped_runtime_ends_queued_callers_of_both_engines(_Config) ->
    S = gate_server(),
    try
        R = erqwest_nif:start_runtime(self(), #{worker_threads => 1}),
        C = erqwest_nif:make_client(R, #{max_in_flight => 1}),
        Url = fun(P) -> erqwest_test_server:url(S, P) end,
        _ = get_in(first, C, Url("/first")),
        {<<"/first">>, First} = next_arrival(),
        _ = get_in(queued, C, Url("/queued")),
        ok = queued(C, 1),
        Ref = make_ref(),
        _ = erqwest_async:req(C, self(), Ref, #{method => get, url => Url("/async")}),
        ok = queued(C, 2),
        ok = erqwest_nif:stop_runtime(R),
        receive erqwest_runtime_stopped -> ok after 5000 -> ct:fail(not_stopped) end,
        {error, #{code := cancelled} = E} = answer(queued),
        ?assertEqual({error, E}, recv(Ref, 5000)),
        ?assertEqual(#{code => cancelled, reason => <<"runtime stopped">>}, E),
        First ! go,
        _ = answer(first),
        no_arrival()
    after
        erqwest_test_server:stop(S)
    end.

%% A request's `timeout' bounds its attempts, not its wait in the queue
%% (reqwest starts it when the request is sent): queued 400 ms with a
%% 200 ms timeout, it still gets its answer.
timeout_starts_once_in(Config) ->
    S = gate_server(),
    try
        C = limited(Config, #{max_in_flight => 1}),
        _ = get_in(first, C, erqwest_test_server:url(S, "/first")),
        {<<"/first">>, First} = next_arrival(),
        Self = self(),
        _ = spawn(fun() ->
            Self ! {queued, erqwest:get(C, erqwest_test_server:url(S, "/queued"),
                                        #{timeout => 200})}
        end),
        ok = queued(C, 1),
        timer:sleep(400),
        First ! go,
        {ok, _} = answer(first),
        {<<"/queued">>, Next} = next_arrival(),
        Next ! go,
        ?assertMatch({ok, #{status := 200, body := <<"/queued">>}}, answer(queued)),
        ?assertEqual(idle(), erqwest:client_info(C))
    after
        erqwest_test_server:stop(S)
    end.

%% A timed request that waited in the queue reports that wait as
%% `queued' (its `headers' and `total' count from before it), on both
%% engines; the one that found room at once reports about none.
queued_time_is_in_timings(Config) ->
    S = gate_server(),
    try
        C = limited(Config, #{max_in_flight => 1, timings => true}),
        _ = get_in(first, C, erqwest_test_server:url(S, "/first")),
        {<<"/first">>, First} = next_arrival(),
        _ = get_in(queued, C, erqwest_test_server:url(S, "/queued")),
        ok = queued(C, 1),
        timer:sleep(300),
        First ! go,
        {ok, #{timings := #{queued := Q1}}} = answer(first),
        {<<"/queued">>, Next} = next_arrival(),
        Next ! go,
        {ok, #{status := 200, timings := #{queued := Q2, headers := H2, total := T2}}} = answer(queued),
        ?assert(Q1 < 100000),
        ?assert(Q2 >= 300000),
        ?assert(Q2 =< H2),
        ?assert(H2 =< T2),
        ?assertEqual(idle(), erqwest:client_info(C))
    after
        erqwest_test_server:stop(S)
    end.

%% One FIFO queue per client for both engines: scheduler and runtime
%% requests queued on one host go out, and are answered, in the order
%% they queued.
fifo_across_engines(_Config) ->
    S = gate_server(),
    try
        C = erqwest:make_client(#{max_in_flight_per_host => 1}),
        Url = fun(P) -> erqwest_test_server:url(S, P) end,
        Async = fun(P) ->
            Ref = make_ref(),
            _ = erqwest_async:req(C, self(), Ref, #{method => get, url => Url(P)}),
            Ref
        end,
        _ = get_in(first, C, Url("/first")),
        {<<"/first">>, First} = next_arrival(),
        _ = get_in(s1, C, Url("/s1")),
        ok = queued(C, 1),
        R1 = Async("/r1"),
        ok = queued(C, 2),
        _ = get_in(s2, C, Url("/s2")),
        ok = queued(C, 3),
        R2 = Async("/r2"),
        ok = queued(C, 4),
        First ! go,
        {ok, _} = answer(first),
        Order = [begin
                     {P, Conn} = next_arrival(),
                     no_arrival(),
                     Conn ! go,
                     P
                 end || _ <- lists:seq(1, 4)],
        ?assertEqual([<<"/s1">>, <<"/r1">>, <<"/s2">>, <<"/r2">>], Order),
        ?assertMatch({ok, #{body := <<"/s1">>}}, answer(s1)),
        ?assertMatch({reply, #{body := <<"/r1">>}}, recv(R1, 5000)),
        ?assertMatch({ok, #{body := <<"/s2">>}}, answer(s2)),
        ?assertMatch({reply, #{body := <<"/r2">>}}, recv(R2, 5000)),
        ?assertEqual(idle(), erqwest:client_info(C))
    after
        erqwest_test_server:stop(S)
    end.

%% A scheduler-engine caller queued behind a held request waits in
%% `receive' (no runtime request task exists for it, it runs no code) and
%% is woken by a message when the slot is released; its request then goes
%% out on the scheduler engine too.
a_queued_scheduler_caller_is_woken_by_a_message(_Config) ->
    S = gate_server(),
    try
        C = erqwest:make_client(#{max_in_flight => 1}),
        settled(),
        _ = get_in(first, C, erqwest_test_server:url(S, "/first")),
        {<<"/first">>, First} = next_arrival(),
        Queued = get_in(queued, C, erqwest_test_server:url(S, "/queued")),
        ok = queued(C, 1),
        ?assertEqual({0, 0}, erqwest_nif:live_resources()),
        {reductions, R0} = process_info(Queued, reductions),
        timer:sleep(200),
        %% No busy loop: it sleeps in receive, with nothing run meanwhile.
        ?assertEqual({status, waiting}, process_info(Queued, status)),
        ?assertEqual({reductions, R0}, process_info(Queued, reductions)),
        ?assertEqual({messages, []}, process_info(Queued, messages)),
        First ! go,
        {ok, #{body := <<"/first">>}} = answer(first),
        {<<"/queued">>, Next} = next_arrival(),
        %% Held at the server: the request is its caller's NIF calls.
        ?assertEqual({0, 0}, erqwest_nif:live_resources()),
        ?assertMatch(#{in_flight := 1, queued := 0}, erqwest:client_info(C)),
        Next ! go,
        ?assertMatch({ok, #{status := 200, body := <<"/queued">>}}, answer(queued)),
        ?assertEqual(idle(), erqwest:client_info(C))
    after
        erqwest_test_server:stop(S)
    end.

%%% cancel and owner death

%% A client whose only slot is taken by a held request.
busy_client(Config, Name) ->
    Url = script(Config, Name, [{hold, 1000, {200, [], <<"ok">>}}]),
    C = erqwest:make_client(#{max_in_flight => 1}),
    Ref = make_ref(),
    _ = erqwest_async:req(C, self(), Ref, #{url => Url, method => get}),
    timer:sleep(100),
    {C, Url, Ref}.

cancel_while_queued(Config) ->
    Before = erqwest_nif:live_resources(),
    {C, Url, Busy} = busy_client(Config, ?FUNCTION_NAME),
    Ref = make_ref(),
    H = erqwest_async:req(C, self(), Ref, #{url => Url, method => get}),
    timer:sleep(50),
    ?assertMatch(#{queued := 1}, erqwest:client_info(C)),
    ok = erqwest_async:cancel(H),
    ?assertMatch({error, #{code := cancelled}}, recv(Ref, 1000)),
    ?assertMatch(#{queued := 0}, erqwest:client_info(C)),
    no_more(Ref),
    {reply, _} = recv(Busy, 3000),
    ?assertEqual(1, hits(Config, ?FUNCTION_NAME)),
    await_live(Before).

owner_dies_while_queued(Config) ->
    Before = erqwest_nif:live_resources(),
    {C, Url, Busy} = busy_client(Config, ?FUNCTION_NAME),
    Owner = spawn(fun() ->
        _ = erqwest_async:req(C, self(), make_ref(), #{url => Url, method => get}),
        receive never -> ok end
    end),
    timer:sleep(50),
    ?assertMatch(#{queued := 1}, erqwest:client_info(C)),
    exit(Owner, kill),
    ok = wait_until(fun() -> maps:get(queued, erqwest:client_info(C)) =:= 0 end),
    {reply, _} = recv(Busy, 3000),
    ?assertEqual(1, hits(Config, ?FUNCTION_NAME)),
    await_live(Before).

cancel_between_retries(Config) ->
    Before = erqwest_nif:live_resources(),
    Url = script(Config, ?FUNCTION_NAME, [{503, [{"retry-after", "30"}], <<>>}]),
    Ref = make_ref(),
    H = erqwest_async:req(client(Config), self(), Ref,
                          #{url => Url, method => get, retry => true}),
    ok = wait_until(fun() -> hits(Config, ?FUNCTION_NAME) =:= 1 end),
    timer:sleep(50),
    T0 = now_ms(),
    ok = erqwest_async:cancel(H),
    ?assertMatch({error, #{code := cancelled, attempts := 1}}, recv(Ref, 1000)),
    ?assert(ms_since(T0) < 1000),
    no_more(Ref),
    ?assertEqual(1, hits(Config, ?FUNCTION_NAME)),
    await_live(Before).

owner_dies_between_retries(Config) ->
    Before = erqwest_nif:live_resources(),
    Url = script(Config, ?FUNCTION_NAME, [{503, [{"retry-after", "30"}], <<>>}]),
    Owner = spawn(fun() ->
        _ = erqwest_async:req(client(Config), self(), make_ref(),
                              #{url => Url, method => get, retry => true}),
        receive never -> ok end
    end),
    ok = wait_until(fun() -> hits(Config, ?FUNCTION_NAME) =:= 1 end),
    exit(Owner, kill),
    await_live(Before),
    ?assertEqual(1, hits(Config, ?FUNCTION_NAME)).

%%% timings

fresh_then_reused(Config) ->
    Url = script(Config, ?FUNCTION_NAME, [{hold, 200, {200, [], <<"ok">>}}]),
    C = erqwest:make_client(#{timings => true}),
    Port = erqwest_script_server:port(srv(Config)),
    {ok, #{timings := T1}} = erqwest:get(C, Url),
    ct:pal("fresh ~p", [T1]),
    ?assertMatch(#{reused := false, connect := _, queued := _, headers := _, total := _,
                   remote_addr := {{127, 0, 0, 1}, Port}}, T1),
    #{connect := Connect, headers := Headers, total := Total, queued := Queued} = T1,
    %% The server held the answer 200 ms: headers came after that, the
    %% connect (a local TCP handshake) well before.
    ?assert(Headers >= 200000),
    ?assert(Connect < Headers),
    ?assert(Total >= Headers),
    ?assert(Queued =< Connect + Headers),
    {ok, #{timings := T2}} = erqwest:get(C, Url),
    ct:pal("reused ~p", [T2]),
    ?assertMatch(#{reused := true}, T2),
    ?assertNot(maps:is_key(connect, T2)),
    ?assert(maps:get(headers, T2) >= 200000).

timings_of_a_streamed_body(Config) ->
    Url = script(Config, ?FUNCTION_NAME, [{200, [], <<"streamed">>}]),
    {ok, #{body := H, timings := T}} =
        erqwest:get(client(Config), Url, #{response_body => stream, timings => true}),
    %% The reply goes before the body: no total yet.
    ?assertNot(maps:is_key(total, T)),
    ?assertMatch(#{headers := _, queued := _, remote_addr := {{127, 0, 0, 1}, _}}, T),
    %% Asked for by the request only: `reused' is there all the same.
    ?assert(is_boolean(maps:get(reused, T))),
    {ok, <<"streamed">>} = erqwest:read(H).

%% Issue 28, case 9: `timings => true' on a request of a client made
%% without timings gave neither `reused' nor `connect'. Through both
%% APIs (erqwest:req/2 and erqwest_async).
request_timings_report_connect_and_reused(Config) ->
    Url = script(Config, ?FUNCTION_NAME, [{200, [], <<"ok">>}, {200, [], <<"ok">>},
                                          {200, [], <<"ok">>}, {200, [], <<"ok">>}]),
    lists:foreach(
      fun(Send) ->
          C = erqwest:make_client(),
          {ok, #{timings := T1}} = Send(C, #{method => get, url => Url, timings => true}),
          ?assertMatch(#{reused := false, connect := _}, T1),
          {ok, #{timings := T2}} = Send(C, #{method => get, url => Url, timings => true}),
          ?assertMatch(#{reused := true}, T2),
          ?assertNot(maps:is_key(connect, T2)),
          erqwest:close_client(C)
      end,
      [fun erqwest:req/2, fun via_async/2]).

via_async(C, Opts) -> erqwest_engine:req(runtime, C, Opts, 10000).

timings_off_by_default(Config) ->
    Url = script(Config, ?FUNCTION_NAME, [{200, [], <<"ok">>}]),
    {ok, R} = erqwest:get(client(Config), Url),
    ?assertEqual([body, headers, status, url, version], lists:sort(maps:keys(R))).

%%% options

bad_options_are_badarg(Config) ->
    C = client(Config),
    Url = <<"http://127.0.0.1:1/">>,
    Bad = [#{retry => #{nope => 1}}, #{retry => #{max_retries => -1}},
           #{retry => #{statuses => [600]}}, #{retry => #{errors => [cancelled]}},
           #{retry => #{methods => [fetch]}}, #{retry => #{budget => #{ratio => -1.0}}},
           #{retry => #{base => infinity}}, #{retry => maybe},
           #{hedge => #{}}, #{hedge => #{delay => 10, max => 100}}, #{hedge => true},
           #{timings => yes}, #{queue_timeout => -5}],
    [?assertError(badarg, erqwest:get(C, Url, O)) || O <- Bad],
    [?assertError(badarg, erqwest:make_client(O))
     || O <- [#{max_in_flight => 0}, #{max_in_flight_per_host => many}, #{retry => #{x => 1}}]],
    %% An operation polls on its own terms: these options would be ignored.
    [?assertError(badarg, erqwest_operation:start(C, self(), make_ref(),
                                                  O#{url => Url, method => get}, #{}))
     || O <- [#{retry => true}, #{hedge => #{delay => 5}}, #{timings => true}]],
    %% The good shapes are accepted.
    _ = erqwest:make_client(#{max_in_flight => infinity, max_in_flight_per_host => 8,
                              queue_timeout => infinity, retry => true, timings => false,
                              hedge => #{delay => 10}}),
    ok.
