%% Telemetry events (erqwest_telemetry) and test stubs (erqwest_test),
%% the Erlang side of both.
%%
%% The telemetry group needs the telemetry library built from
%% ../shared/peers (PEERS_LIB, see scripts/peers.sh); without it the group
%% is skipped with one line saying why. The absent group runs a node with
%% no telemetry on its code path and checks that requests work and nothing
%% tries to emit. The stubs group needs nothing.
-module(erqwest_telemetry_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-compile([export_all, nowarn_export_all]).

-define(EVENTS, [[erqwest, request, start], [erqwest, request, stop],
                 [erqwest, request, exception], [erqwest, request, retry],
                 [erqwest, queue, stop], [erqwest, connect, stop]]).

all() ->
    [{group, telemetry}, {group, absent}, {group, stubs}].

groups() ->
    [{telemetry, [], [success_on_the_direct_path, success_on_the_runtime, http_error_status,
                      transport_error, retries, queue_and_connect_from_timings,
                      cancelled_upload, async_helper_and_cancel, exception_on_bad_option,
                      streamed_response_stops_at_the_head, stubbed_requests_emit_too,
                      metadata_of_urls, retries_that_end_in_an_error,
                      a_crashing_handler_does_not_break_requests,
                      stopped_telemetry_emits_nothing]},
     {absent, [], [absent_telemetry_node]},
     {stubs, [], [stub_answers_req_and_async, request_as_the_stub_sees_it, error_answers,
                  expect_counts_and_verify, unexpected_call_after_expectations,
                  unstubbed_process_fails_clearly, callers_chain_and_allow,
                  concurrent_owners_are_isolated, streamed_response_body,
                  streamed_request_body, cancel_a_stubbed_stream,
                  dead_owner_unstubs_the_client, bad_arguments_are_badarg]}].

init_per_suite(Config) ->
    {ok, _} = application:ensure_all_started(erqwest),
    Config.

end_per_suite(_Config) ->
    application:stop(erqwest).

init_per_group(telemetry, Config) ->
    case os:getenv("PEERS_LIB", "") of
        "" ->
            {skip, "no PEERS_LIB (scripts/peers.sh builds telemetry from ../shared/peers)"};
        Lib ->
            ok = code:add_pathsa(filelib:wildcard(Lib ++ "/*/ebin")),
            case application:ensure_all_started(telemetry) of
                {ok, _} -> [{peers_lib, Lib} | Config];
                {error, Why} -> {skip, io_lib:format("telemetry does not start: ~p", [Why])}
            end
    end;
init_per_group(_, Config) ->
    Config.

end_per_group(telemetry, _Config) ->
    _ = application:stop(telemetry),
    ok;
end_per_group(_, _Config) ->
    ok.

init_per_testcase(Case, Config) ->
    case ?config(peers_lib, Config) of
        undefined ->
            Config;
        _ ->
            %% An external fun: telemetry warns about local ones.
            ok = telemetry:attach_many({?MODULE, Case}, ?EVENTS, fun ?MODULE:relay/4, self()),
            Config
    end.

end_per_testcase(Case, Config) ->
    case ?config(peers_lib, Config) of
        undefined -> ok;
        _ -> _ = telemetry:detach({?MODULE, Case}), ok
    end.

%%% helpers

relay(Event, Measurements, Meta, Pid) ->
    Pid ! {event, Event, Measurements, Meta}.

%% Every event received so far, in order; waits `Ms' for late ones.
events() -> events(200).
events(Ms) ->
    receive {event, E, M, Meta} -> [{E, M, Meta} | events(Ms)]
    after Ms -> []
    end.

names(Events) -> [lists:last(E) || {E, _, _} <- Events].

server(Handler) ->
    {ok, S} = erqwest_test_server:start(Handler),
    S.

ok_server() -> server(fun(_) -> {200, [{"content-type", "text/plain"}], <<"hello">>} end).

%% A client whose requests reqwest answers (a `resolve' entry).
runtime_client(Opts) ->
    erqwest:make_client(Opts#{resolve => [{<<"unused.invalid">>, {{127, 0, 0, 1}, 1}}]}).

closed_port() ->
    {ok, L} = gen_tcp:listen(0, [{ip, {127, 0, 0, 1}}]),
    {ok, P} = inet:port(L),
    ok = gen_tcp:close(L),
    P.

flush_all() ->
    receive _ -> flush_all() after 0 -> ok end.

%%% telemetry

%% A request of erqwest:req/2 answered on the scheduler: start, then stop,
%% with the request's figures and the answer.
success_on_the_direct_path(_Config) ->
    S = ok_server(),
    ok = erqwest:start_client(tel_direct),
    Url = erqwest_test_server:url(S, "/path?q=1"),
    Before = erlang:monotonic_time(),
    {ok, #{status := 200} = Resp} = erqwest:get(tel_direct, Url),
    After = erlang:monotonic_time(),
    [{[erqwest, request, start], StartM, StartMeta},
     {[erqwest, request, stop], StopM, StopMeta}] = events(),
    Port = erqwest_test_server:port(S),
    Common = #{client => tel_direct, method => get, url => Url, scheme => <<"http">>,
               host => <<"127.0.0.1">>, port => Port, path => <<"/path">>},
    ?assertEqual(Common, StartMeta),
    ?assertMatch(#{system_time := T, monotonic_time := M} when is_integer(T) andalso
                 M >= Before andalso M =< After, StartM),
    #{duration := D, monotonic_time := StopT} = StopM,
    ?assertEqual(StopT - maps:get(monotonic_time, StartM), D),
    ?assert(D > 0 andalso D =< After - Before),
    ?assertEqual(Common#{status => 200, error => nil, attempts => 1,
                         result => {ok, Resp}}, StopMeta),
    erqwest:stop_client(tel_direct),
    erqwest_test_server:stop(S).

%% The same through reqwest: the same events, an unnamed client.
success_on_the_runtime(_Config) ->
    S = ok_server(),
    C = runtime_client(#{}),
    Url = erqwest_test_server:url(S, "/"),
    {ok, #{status := 200}} = erqwest:get(C, Url),
    [{[erqwest, request, start], _, #{client := nil, url := Url}},
     {[erqwest, request, stop], #{duration := D}, #{status := 200, error := nil}}] = events(),
    ?assert(D > 0),
    erqwest_test_server:stop(S).

%% An HTTP error status is an answer: stop with the status, no error.
http_error_status(_Config) ->
    S = server(fun(_) -> {503, [], <<"down">>} end),
    Url = erqwest_test_server:url(S, "/"),
    [begin
         {ok, #{status := 503}} = erqwest:get(C, Url),
         ?assertMatch([{[erqwest, request, start], _, _},
                       {[erqwest, request, stop], _, #{status := 503, error := nil,
                                                      result := {ok, #{status := 503}}}}],
                      events())
     end || C <- [erqwest:make_client(), runtime_client(#{})]],
    erqwest_test_server:stop(S).

%% A transport error is a stop with its code (not an exception).
transport_error(_Config) ->
    Url = iolist_to_binary(["http://127.0.0.1:", integer_to_list(closed_port()), "/x"]),
    [begin
         {error, #{code := connect} = Err} = erqwest:get(C, Url),
         ?assertMatch([{[erqwest, request, start], _, _},
                       {[erqwest, request, stop], #{duration := _},
                        #{status := nil, error := connect, path := <<"/x">>,
                          result := {error, Err}}}],
                      events())
     end || C <- [erqwest:make_client(), runtime_client(#{})]].

%% Two retries inside the runtime: two retry events (attempts 2 and 3)
%% before the stop, which carries attempts => 3.
retries(_Config) ->
    {ok, S} = erqwest_script_server:start(),
    ok = erqwest_script_server:script(S, "/flaky", [{503, [], <<>>}, {502, [], <<>>},
                                                    {200, [], <<"ok">>}]),
    Url = erqwest_script_server:url(S, "/flaky"),
    {ok, #{status := 200, attempts := 3}} =
        erqwest:get(erqwest:make_client(), Url, #{retry => #{base => 1, max => 5}}),
    Events = events(),
    ?assertEqual([start, retry, retry, stop], names(Events)),
    [_, {_, #{attempt := 2}, #{url := Url}}, {_, #{attempt := 3}, _},
     {_, _, #{status := 200, attempts := 3}}] = Events,
    %% Without retries there are none.
    {ok, #{status := 200}} = erqwest:get(erqwest:make_client(), Url),
    ?assertEqual([start, stop], names(events())),
    erqwest_script_server:stop(S).

%% With timings on, the queue and connect figures of the runtime become
%% events; a reused connection has no connect event.
queue_and_connect_from_timings(_Config) ->
    S = ok_server(),
    C = erqwest:make_client(#{timings => true}),
    Url = erqwest_test_server:url(S, "/"),
    {ok, #{timings := #{queued := Q, connect := Conn}}} = erqwest:get(C, Url),
    Events = events(),
    ?assertEqual([start, stop, stop, stop], names(Events)),
    [_, {[erqwest, queue, stop], #{duration := QD}, _},
     {[erqwest, connect, stop], #{duration := CD}, #{remote_addr := {{127, 0, 0, 1}, _}}},
     {[erqwest, request, stop], #{duration := Total}, _}] = Events,
    ?assertEqual(erlang:convert_time_unit(Q, microsecond, native), QD),
    ?assertEqual(erlang:convert_time_unit(Conn, microsecond, native), CD),
    ?assert(CD =< Total),
    {ok, #{timings := #{reused := true}}} = erqwest:get(C, Url),
    ?assertEqual([start, stop, stop], names(events())),
    erqwest_test_server:stop(S).

%% A streamed upload stays open until it ends; cancelling it stops it
%% with the cancelled error.
cancelled_upload(_Config) ->
    S = ok_server(),
    Url = erqwest_test_server:url(S, "/up"),
    [begin
         {handle, H} = erqwest:post(C, Url, #{body => stream}),
         ?assertEqual([start], names(events(50))),
         ok = erqwest:send(H, <<"part">>),
         ok = erqwest:cancel(H),
         ?assertMatch([{[erqwest, request, stop], _, #{error := cancelled, status := nil}}],
                      events())
     end || C <- [erqwest:make_client(), runtime_client(#{})]],
    %% And one that finishes stops with the answer.
    {handle, H2} = erqwest:post(erqwest:make_client(), Url, #{body => stream}),
    ok = erqwest:send(H2, <<"all">>),
    {ok, #{status := 200}} = erqwest:finish_send(H2),
    ?assertEqual([start, stop], names(events())),
    ?assertEqual({messages, []}, process_info(self(), messages)),
    erqwest_test_server:stop(S).

%% erqwest_async emits nothing by itself; async_req/async_stop make the
%% span in the process that gets the final message.
async_helper_and_cancel(_Config) ->
    Gate = self(),
    S = server(fun(_) -> Gate ! held, timer:sleep(3000), {200, [], <<>>} end),
    Url = erqwest_test_server:url(S, "/slow"),
    C = erqwest:make_client(),
    _ = erqwest_async:req(C, self(), plain, #{method => get, url => Url}),
    receive held -> ok after 5000 -> ct:fail(not_held) end,
    {H, Span} = erqwest_telemetry:async_req(C, self(), spanned, #{method => get, url => Url}),
    receive held -> ok after 5000 -> ct:fail(not_held) end,
    ?assertMatch([{[erqwest, request, start], _, #{url := Url}}], events(50)),
    ok = erqwest_async:cancel(H),
    Final = receive {erqwest_response, spanned, error, _} = M -> M after 5000 -> ct:fail(no_final) end,
    ?assertEqual(ok, erqwest_telemetry:async_stop(Span, Final)),
    ?assertMatch([{[erqwest, request, stop], #{duration := _}, #{error := cancelled}}], events()),
    %% The plain request's answer brings no event.
    receive {erqwest_response, plain, reply, _} -> ok after 5000 -> ct:fail(no_plain) end,
    ?assertEqual([], events()),
    %% Messages that are not final are ignored.
    ?assertEqual(ok, erqwest_telemetry:async_stop(Span, {erqwest_response, spanned, next})),
    ?assertEqual([], events(50)),
    erqwest_test_server:stop(S).

%% A call that raises: an exception event, then the same error.
exception_on_bad_option(_Config) ->
    C = erqwest:make_client(),
    ?assertError(badarg, erqwest:get(C, <<"http://127.0.0.1:1/">>, #{no_such_option => 1})),
    [{[erqwest, request, start], _, _},
     {[erqwest, request, exception], #{duration := D},
      #{kind := error, reason := badarg, stacktrace := [_ | _]}}] = events(),
    ?assert(D >= 0).

%% response_body => stream: the request stops when the head arrives;
%% reading and cancelling the body emit nothing more.
streamed_response_stops_at_the_head(_Config) ->
    S = server(fun(_) -> {200, [], binary:copy(<<"x">>, 100000)} end),
    Url = erqwest_test_server:url(S, "/"),
    {ok, #{status := 200, body := H}} = erqwest:get(erqwest:make_client(), Url,
                                                    #{response_body => stream}),
    ?assertMatch([{[erqwest, request, start], _, _}, {[erqwest, request, stop], _, #{status := 200}}],
                 events()),
    {more, _} = erqwest:read(H, #{length => 10}),
    ok = erqwest:cancel(H),
    ?assertEqual([], events()),
    erqwest_test_server:stop(S).

%% A stubbed client's answers are events like any other.
stubbed_requests_emit_too(_Config) ->
    ok = erqwest_test:stub(tel_stubbed, fun(_) -> #{status => 418} end),
    {ok, #{status := 418}} = erqwest:get(tel_stubbed, <<"http://stub.test/tea">>),
    ?assertMatch([{[erqwest, request, start], _, #{client := tel_stubbed, host := <<"stub.test">>,
                                                  port := 80}},
                  {[erqwest, request, stop], _, #{status := 418}}], events()).

%% Retried connects that all fail: the retries, then a stop with the
%% error and the attempts.
retries_that_end_in_an_error(_Config) ->
    Url = iolist_to_binary(["http://127.0.0.1:", integer_to_list(closed_port()), "/"]),
    {error, #{code := connect, attempts := 3}} =
        erqwest:get(erqwest:make_client(), Url, #{retry => #{base => 1, max => 5, max_retries => 2}}),
    Events = events(),
    ?assertEqual([start, retry, retry, stop], names(Events)),
    ?assertMatch({_, _, #{error := connect, status := nil, attempts := 3}}, lists:last(Events)).

%% A handler that raises is telemetry's business (it detaches it); the
%% request is not affected.
a_crashing_handler_does_not_break_requests(_Config) ->
    S = ok_server(),
    ok = telemetry:attach(crashing, [erqwest, request, start], fun ?MODULE:crash/4, nil),
    try
        {ok, #{status := 200}} = erqwest:get(erqwest:make_client(), erqwest_test_server:url(S, "/")),
        {ok, #{status := 200}} = erqwest:get(erqwest:make_client(), erqwest_test_server:url(S, "/")),
        ?assertEqual([start, stop, start, stop], names(events()))
    after
        _ = telemetry:detach(crashing)
    end,
    erqwest_test_server:stop(S).

crash(_, _, _, _) -> error(handler_bug).

%% The URL's parts in the metadata, as uri_string would give them.
metadata_of_urls(_Config) ->
    ok = erqwest_test:stub(tel_urls, fun(_) -> #{status => 200} end),
    Cases = [{<<"https://u:p@example.com/a/b?x=1#f">>, {<<"https">>, <<"example.com">>, 443, <<"/a/b">>}},
             {<<"http://[::1]:8443/v6?q">>, {<<"http">>, <<"::1">>, 8443, <<"/v6">>}},
             {<<"HTTP://H.TEST">>, {<<"HTTP">>, <<"H.TEST">>, 80, <<>>}},
             {<<"/only/a/path?x">>, {nil, nil, nil, <<"/only/a/path">>}}],
    [begin
         {ok, _} = erqwest:get(tel_urls, Url),
         [{_, _, #{scheme := S, host := H, port := P, path := Path, url := Url}}, _] = events(50),
         ?assertEqual(Expected, {S, H, P, Path})
     end || {Url, Expected} <- Cases].

%% telemetry loaded but not running: no event, no warning, no crash.
stopped_telemetry_emits_nothing(_Config) ->
    S = ok_server(),
    Url = erqwest_test_server:url(S, "/"),
    ok = application:stop(telemetry),
    try
        ?assert(code:is_loaded(telemetry) =/= false),
        ?assertNot(erqwest_telemetry:enabled()),
        {ok, #{status := 200}} = erqwest:get(erqwest:make_client(), Url),
        {H, undefined} = erqwest_telemetry:async_req(erqwest:make_client(), self(), r,
                                                     #{method => get, url => Url}),
        receive {erqwest_response, r, reply, _} = M ->
            ok = erqwest_telemetry:async_stop(undefined, M)
        after 5000 -> ct:fail(no_reply)
        end,
        _ = H,
        ?assertEqual([], events())
    after
        {ok, _} = application:ensure_all_started(telemetry)
    end,
    erqwest_test_server:stop(S).

%%% absent

%% A node whose code path has no telemetry at all: requests on both
%% engines, sync and async, work and nothing looks for telemetry.
absent_telemetry_node(_Config) ->
    %% PEERS_LIB may be set but empty (no peers): then no path is one.
    Paths = case os:getenv("PEERS_LIB", "") of
        "" -> code:get_path();
        Lib -> [P || P <- code:get_path(), not lists:prefix(Lib, P)]
    end,
    Peer = case peer:start_link(#{connection => standard_io,
                                  args => lists:append([["-pa", P] || P <- Paths])}) of
        {ok, P1} -> P1;
        {ok, P1, _Node} -> P1
    end,
    try
        S = ok_server(),
        Url = erqwest_test_server:url(S, "/"),
        Call = fun(M, F, A) -> peer:call(Peer, M, F, A, 10000) end,
        ?assertEqual(non_existing, Call(code, which, [telemetry])),
        {ok, _} = Call(application, ensure_all_started, [erqwest]),
        ?assertEqual(false, Call(erqwest_telemetry, enabled, [])),
        %% Clients do not cross nodes: made and used in one call.
        ?assertMatch([{ok, #{status := 200}}, {ok, #{status := 200}},
                      {error, #{code := connect}}, {reply, #{status := 200}}],
                     Call(?MODULE, absent_requests, [Url])),
        ?assertEqual(false, Call(code, is_loaded, [telemetry])),
        erqwest_test_server:stop(S)
    after
        peer:stop(Peer)
    end.

absent_requests(Url) ->
    Runtime = runtime_client(#{}),
    {H, undefined} = erqwest_telemetry:async_req(Runtime, self(), r, #{method => get, url => Url}),
    _ = H,
    Async = receive {erqwest_response, r, reply, R} -> {reply, R} after 5000 -> timeout end,
    [erqwest:get(erqwest:make_client(), Url), erqwest:get(Runtime, Url),
     erqwest:get(Runtime, <<"http://127.0.0.1:1/">>), Async].

%%% stubs

stub_answers_req_and_async(_Config) ->
    Self = self(),
    ok = erqwest_test:stub(st_basic, fun(Req) ->
        Self ! {seen, Req},
        #{status => 201, headers => [{<<"x-stub">>, <<"1">>}], body => <<"made">>}
    end),
    Url = <<"http://stub.test/items">>,
    {ok, Resp} = erqwest:post(st_basic, Url, #{body => <<"new">>}),
    ?assertEqual(#{status => 201, headers => [{<<"x-stub">>, <<"1">>}], body => <<"made">>},
                 Resp),
    receive {seen, #{method := post, url := Url, body := <<"new">>}} -> ok
    after 0 -> ct:fail(not_seen)
    end,
    %% erqwest_async: the usual message.
    _ = erqwest_async:req(st_basic, self(), my_ref, #{method => get, url => Url}),
    receive {erqwest_response, my_ref, reply, #{status := 201}} -> ok
    after 1000 -> ct:fail(no_message)
    end,
    ?assertMatch([{seen, #{method := get}}], drain()).

%% The stub sees the body as it would be sent: json, form and query
%% encoded, with their content types.
request_as_the_stub_sees_it(_Config) ->
    Self = self(),
    ok = erqwest_test:stub(st_req, fun(Req) -> Self ! Req, #{status => 204} end),
    {ok, #{status := 204, body := <<>>, headers := []}} =
        erqwest:post(st_req, <<"http://h/p?a=1">>,
                     #{json => #{<<"k">> => [1, 2]}, query => [{b, 2}],
                       headers => [{<<"x-a">>, <<"b">>}]}),
    receive R1 -> ?assertMatch(#{method := post, url := <<"http://h/p?a=1&b=2">>,
                                 headers := [{<<"x-a">>, <<"b">>},
                                             {<<"content-type">>, <<"application/json">>}],
                                 body := <<"{\"k\":[1,2]}">>,
                                 opts := #{json := _}}, R1)
    end,
    {ok, _} = erqwest:post(st_req, <<"http://h/f">>, #{form => #{x => <<"a b">>}}),
    receive R2 -> ?assertMatch(#{body := <<"x=a+b">>,
                                 headers := [{<<"content-type">>,
                                              <<"application/x-www-form-urlencoded">>}]}, R2)
    end.

error_answers(_Config) ->
    ok = erqwest_test:stub(st_err, fun(#{url := <<"http://h/a">>}) -> {error, timeout};
                                      (_) -> {error, #{code => connect, reason => <<"refused">>}}
                                   end),
    ?assertEqual({error, #{code => timeout, reason => <<"timeout">>}},
                 erqwest:get(st_err, <<"http://h/a">>)),
    ?assertEqual({error, #{code => connect, reason => <<"refused">>}},
                 erqwest:get(st_err, <<"http://h/b">>)),
    ok = erqwest_test:stub(st_err, fun(_) -> nonsense end),
    ?assertError(#{message := <<"erqwest_test: a stub returned nonsense", _/binary>>},
                 erqwest:get(st_err, <<"http://h/c">>)).

expect_counts_and_verify(_Config) ->
    ok = erqwest_test:expect(st_expect, 2, fun(_) -> #{status => 200} end),
    ok = erqwest_test:expect(st_expect, 1, fun(_) -> #{status => 202} end),
    {ok, #{status := 200}} = erqwest:get(st_expect, <<"http://h/">>),
    try erqwest_test:verify() of
        ok -> ct:fail(verify_passed)
    catch
        error:#{message := Msg} ->
            ?assertNotEqual(nomatch, string:find(Msg, "st_expect: expected 2 call(s), got 1")),
            ?assertNotEqual(nomatch, string:find(Msg, "st_expect: expected 1 call(s), got 0"))
    end,
    {ok, #{status := 200}} = erqwest:get(st_expect, <<"http://h/">>),
    {ok, #{status := 202}} = erqwest:get(st_expect, <<"http://h/">>),
    ?assertEqual(ok, erqwest_test:verify()).

unexpected_call_after_expectations(_Config) ->
    ok = erqwest_test:expect(st_used_up, 1, fun(_) -> #{status => 200} end),
    {ok, _} = erqwest:get(st_used_up, <<"http://h/">>),
    ?assertError(#{message := <<"erqwest_test: unexpected request on client st_used_up: "
                                "1 call(s) were expected", _/binary>>},
                 erqwest:get(st_used_up, <<"http://h/">>)),
    %% A stub takes what comes after the expectations.
    ok = erqwest_test:stub(st_used_up, fun(_) -> #{status => 299} end),
    {ok, #{status := 299}} = erqwest:get(st_used_up, <<"http://h/">>).

%% A process outside the test's tree gets an error naming the problem,
%% not a real request.
unstubbed_process_fails_clearly(_Config) ->
    ok = erqwest_test:stub(st_owned, fun(_) -> #{status => 200} end),
    Self = self(),
    spawn(fun() ->
        Self ! {result, catch erqwest:get(st_owned, <<"http://h/">>)}
    end),
    receive
        {result, {'EXIT', {#{message := Msg}, _}}} ->
            ?assertNotEqual(nomatch, string:find(Msg, "client st_owned is stubbed, but not for process"))
    after 5000 -> ct:fail(no_result)
    end.

callers_chain_and_allow(_Config) ->
    ok = erqwest_test:stub(st_chain, fun(_) -> #{status => 200, body => <<"mine">>} end),
    Self = self(),
    %% As Elixir's Task does: $callers names the test's process.
    spawn(fun() ->
        put('$callers', [Self]),
        Self ! {task, erqwest:get(st_chain, <<"http://h/">>)}
    end),
    receive {task, R} -> ?assertMatch({ok, #{body := <<"mine">>}}, R) after 5000 -> ct:fail(no_task) end,
    %% A process started elsewhere, allowed in.
    Other = spawn(fun() -> receive go -> Self ! {other, erqwest:get(st_chain, <<"http://h/">>)} end end),
    ok = erqwest_test:allow(st_chain, Self, Other),
    Other ! go,
    receive {other, R2} -> ?assertMatch({ok, #{body := <<"mine">>}}, R2) after 5000 -> ct:fail(no_other) end.

%% Two owners stub the same client at the same time, each sees only its
%% own answers.
concurrent_owners_are_isolated(_Config) ->
    Self = self(),
    Run = fun(Tag) ->
        spawn(fun() ->
            ok = erqwest_test:stub(st_shared, fun(_) -> #{status => 200, body => Tag} end),
            Self ! {ready, Tag},
            receive go -> ok end,
            Bodies = [begin
                          {ok, #{body := B}} = erqwest:get(st_shared, <<"http://h/">>),
                          B
                      end || _ <- lists:seq(1, 200)],
            Self ! {done, Tag, lists:usort(Bodies)}
        end)
    end,
    Pids = [Run(T) || T <- [<<"a">>, <<"b">>]],
    [receive {ready, T} -> ok end || T <- [<<"a">>, <<"b">>]],
    [P ! go || P <- Pids],
    Results = lists:sort([receive {done, T, Bs} -> {T, Bs} after 10000 -> ct:fail(slow) end
                          || _ <- Pids]),
    ?assertEqual([{<<"a">>, [<<"a">>]}, {<<"b">>, [<<"b">>]}], Results).

%% response_body => stream on a stub: a list body is read one element per
%% chunk, through erqwest:read/2 and erqwest_async:read/2.
streamed_response_body(_Config) ->
    ok = erqwest_test:stub(st_stream, fun(_) -> #{status => 200, body => [<<"a">>, <<"bc">>, <<"d">>]} end),
    {ok, #{status := 200, body := H}} = erqwest:get(st_stream, <<"http://h/">>,
                                                    #{response_body => stream}),
    ?assertEqual({more, <<"a">>}, erqwest:read(H)),
    ?assertEqual({more, <<"bc">>}, erqwest:read(H, #{length => 1})),
    ?assertEqual({ok, <<"d">>}, erqwest:read(H)),
    ?assertError(badarg, erqwest:read(H)),
    AH = erqwest_async:req(st_stream, self(), r, #{method => get, url => <<"http://h/">>,
                                                   response_body => stream}),
    receive {erqwest_response, r, reply, Resp} -> ?assertNot(maps:is_key(body, Resp)) end,
    ok = erqwest_async:read(AH, #{}),
    receive {erqwest_response, r, chunk, <<"a">>} -> ok after 1000 -> ct:fail(no_chunk) end,
    %% A binary body is one last chunk.
    ok = erqwest_test:stub(st_stream, fun(_) -> #{status => 200, body => <<"whole">>} end),
    {ok, #{body := H2}} = erqwest:get(st_stream, <<"http://h/">>, #{response_body => stream}),
    ?assertEqual({ok, <<"whole">>}, erqwest:read(H2)).

%% body => stream on a stub: the function sees the whole body at the end.
streamed_request_body(_Config) ->
    ok = erqwest_test:stub(st_up, fun(#{body := B}) -> #{status => 200, body => B} end),
    {handle, H} = erqwest:put(st_up, <<"http://h/up">>, #{body => stream}),
    ok = erqwest:send(H, <<"one ">>),
    ok = erqwest:send(H, [<<"two">>, " three"]),
    ?assertEqual({ok, #{status => 200, headers => [], body => <<"one two three">>}},
                 erqwest:finish_send(H)),
    ?assertError(badarg, erqwest:finish_send(H)),
    ?assertEqual({messages, []}, process_info(self(), messages)).

cancel_a_stubbed_stream(_Config) ->
    ok = erqwest_test:stub(st_cancel, fun(_) -> #{status => 200, body => [<<"a">>, <<"b">>]} end),
    {ok, #{body := H}} = erqwest:get(st_cancel, <<"http://h/">>, #{response_body => stream}),
    {more, <<"a">>} = erqwest:read(H),
    ok = erqwest:cancel(H),
    ?assertError(badarg, erqwest:read(H)),
    ?assertEqual({messages, []}, process_info(self(), messages)),
    {handle, U} = erqwest:post(st_cancel, <<"http://h/">>, #{body => stream}),
    ok = erqwest:cancel(U),
    ?assertEqual({messages, []}, process_info(self(), messages)),
    AH = erqwest_async:req(st_cancel, self(), c, #{method => post, url => <<"http://h/">>,
                                                   body => stream}),
    receive {erqwest_response, c, next} -> ok end,
    ok = erqwest_async:cancel(AH),
    receive {erqwest_response, c, error, #{code := cancelled}} -> ok after 1000 -> ct:fail(none) end,
    ok = erqwest_async:cancel(AH),
    receive M -> ct:fail({unexpected, M}) after 100 -> ok end.

%% When the owner exits its stubs go, and the client is real again.
dead_owner_unstubs_the_client(_Config) ->
    S = ok_server(),
    ok = erqwest:start_client(st_real),
    Url = erqwest_test_server:url(S, "/"),
    Self = self(),
    {Pid, Mon} = spawn_monitor(fun() ->
        ok = erqwest_test:stub(st_real, fun(_) -> #{status => 299, body => [<<"a">>, <<"b">>]} end),
        %% A streamed body left unread.
        {ok, _} = erqwest:get(st_real, Url, #{response_body => stream}),
        Self ! {stubbed, erqwest:get(st_real, Url)},
        receive exit -> ok end
    end),
    receive {stubbed, R} -> ?assertMatch({ok, #{status := 299}}, R) end,
    ?assertMatch([_], ets:match(erqwest_test, {{stream, {'_', Pid}}, '_'})),
    Pid ! exit,
    receive {'DOWN', Mon, process, Pid, _} -> ok end,
    wait_unstubbed(st_real, 50),
    ?assertEqual([], ets:match(erqwest_test, {{stream, {'_', Pid}}, '_'})),
    {ok, #{status := 200, body := <<"hello">>}} = erqwest:get(st_real, Url),
    erqwest:stop_client(st_real),
    erqwest_test_server:stop(S).

bad_arguments_are_badarg(_Config) ->
    ?assertError(badarg, erqwest_test:stub(c, not_a_fun)),
    ?assertError(badarg, erqwest_test:stub(c, fun(_, _) -> ok end)),
    ?assertError(badarg, erqwest_test:expect(c, 0, fun(_) -> ok end)),
    ?assertError(badarg, erqwest_test:expect(c, one, fun(_) -> ok end)),
    ?assertError(badarg, erqwest_test:allow(c, self(), not_a_pid)),
    ?assertError(badarg, erqwest_test:verify(not_a_pid)),
    ?assertError(badarg, erqwest_test:keep_until_verified(not_a_pid)),
    %% A streamed upload's chunk that is not iodata, as with a real request.
    ok = erqwest_test:stub(st_bad, fun(_) -> #{status => 200} end),
    {handle, H} = erqwest:post(st_bad, <<"http://h/">>, #{body => stream}),
    ?assertError(badarg, erqwest:send(H, [an_atom])).

wait_unstubbed(_Client, 0) -> ct:fail(still_stubbed);
wait_unstubbed(Client, N) ->
    case erqwest_test:stubbed(Client) of
        false -> ok;
        true -> timer:sleep(20), wait_unstubbed(Client, N - 1)
    end.

drain() ->
    receive M -> [M | drain()] after 0 -> [] end.
