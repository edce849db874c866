%% Long-running operations (erqwest_operation) against an in-BEAM
%% operation server (erqwest_operation_server) that follows both the
%% operation resource document and the OData/Azure poller document.
-module(erqwest_operation_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, groups/0, init_per_suite/1, end_per_suite/1,
         init_per_testcase/2, end_per_testcase/2]).
-export([go_inline_result/1, go_result_at_location/1, see_other_followed/1,
         see_other_not_followed/1, accepted_body_location/1, words_ignore_case/1,
         poll_headers_and_list_body/1,
         azure_resource_location/1, azure_async_operation_header/1,
         azure_final_status_document/1, odata_bare_202/1,
         retry_after_seconds/1, retry_after_http_date/1,
         progress_order_and_values/1,
         failed_with_problem/1, azure_failed_with_error/1, server_canceled/1, max_wait/1,
         status_url_http_error/1, status_url_garbage/1, status_url_truncated/1,
         status_url_unreachable/1, not_accepted_is_final/1, accepted_without_status_url/1,
         bad_options/1, bad_url_is_an_error_message/1,
         cancel_mid_wait/1, cancel_mid_poll/1, owner_death_stops_polling/1,
         manual_loop/1, manual_not_accepted/1, manual_failure/1, manual_cancel/1,
         manual_max_wait/1, manual_owner_only/1,
         wait_with_on_progress/1, wait_on_progress_raises/1,
         thousand_concurrent/1, no_operation_left/1]).

-define(SERVER, erqwest_operation_server).
-define(FAST, #{poll_interval => 10}).

all() ->
    [{group, go_style}, {group, azure_style}, {group, retry_after}, {group, progress},
     {group, failures}, {group, cancel}, {group, manual}, {group, wait}, {group, load},
     no_operation_left].

groups() ->
    [{go_style, [parallel], [go_inline_result, go_result_at_location, see_other_followed,
                             see_other_not_followed, accepted_body_location, words_ignore_case,
                             poll_headers_and_list_body]},
     {azure_style, [parallel], [azure_resource_location, azure_async_operation_header,
                                azure_final_status_document, odata_bare_202]},
     {retry_after, [parallel], [retry_after_seconds, retry_after_http_date]},
     {progress, [], [progress_order_and_values]},
     {failures, [parallel], [failed_with_problem, azure_failed_with_error, server_canceled,
                             max_wait, status_url_http_error, status_url_garbage,
                             status_url_truncated, status_url_unreachable,
                             not_accepted_is_final, accepted_without_status_url, bad_options,
                             bad_url_is_an_error_message]},
     {cancel, [], [cancel_mid_wait, cancel_mid_poll, owner_death_stops_polling]},
     {manual, [], [manual_loop, manual_not_accepted, manual_failure, manual_cancel,
                   manual_max_wait, manual_owner_only]},
     {wait, [], [wait_with_on_progress, wait_on_progress_raises]},
     {load, [], [thousand_concurrent]}].

init_per_suite(Config) ->
    {ok, _} = application:ensure_all_started(erqwest),
    {ok, S} = ?SERVER:start(),
    [{server, S}, {client, erqwest:make_client()} | Config].

end_per_suite(Config) ->
    ?SERVER:stop(?config(server, Config)),
    ok.

init_per_testcase(_Case, Config) ->
    Config.

%% Every operation task has ended once its case is over: none leaks.
%% (Cases of a parallel group overlap; no_operation_left checks them.)
end_per_testcase(_Case, Config) ->
    case proplists:get_bool(parallel, proplists:get_value(tc_group_properties, Config, [])) of
        true -> ok;
        false -> check_no_operation_left()
    end.

check_no_operation_left() ->
    case wait_until(fun() -> erqwest_nif:live_operations() =:= 0 end, 3000) of
        ok -> ok;
        timeout -> {fail, {operations_left, erqwest_nif:live_operations()}}
    end.

no_operation_left(_Config) ->
    ok = check_no_operation_left().

%%% The operation resource style

go_inline_result(Config) ->
    Result = #{n => 1, list => [1, 2], name => <<"caf", 16#c3, 16#a9>>},
    {Id, Ref, _H} = start(Config, #{polls => [{go, pending}, {go, running},
                                              {go, succeeded, #{result => Result}}]}),
    {Progress, {reply, Resp}} = collect(Ref),
    ?assertMatch([#{state := pending, status := <<"pending">>, percent_complete := undefined},
                  #{state := running, status := <<"running">>}], Progress),
    %% The inline result, byte for byte, as a JSON response of its own.
    Body = ?SERVER:json(Result),
    ?assertMatch(#{status := 200, body := Body}, Resp),
    #{headers := Headers} = Resp,
    ?assertEqual(<<"application/json">>, proplists:get_value(<<"content-type">>, Headers)),
    ?assertEqual(integer_to_binary(byte_size(Body)),
                 proplists:get_value(<<"content-length">>, Headers)),
    %% The POST, three polls, nothing else.
    ?assertEqual([{<<"POST">>, path(Id, "")}, {<<"GET">>, path(Id, "/status")},
                  {<<"GET">>, path(Id, "/status")}, {<<"GET">>, path(Id, "/status")}],
                 requests(Config, Id)).

go_result_at_location(Config) ->
    {Id, Ref, _H} = start(Config, #{polls => [{go, running},
                                              {go, succeeded, #{}, [{<<"location">>, <<"/ops/$ID/result">>}]}]}),
    {[#{state := running}], {reply, Resp}} = collect(Ref),
    ?assertMatch(#{status := 200, body := <<"{\"answer\": 42}">>}, Resp),
    ?assertEqual({<<"GET">>, path(Id, "/result")}, lists:last(requests(Config, Id))).

%% reqwest follows the 303 itself: what it leads to is the result.
see_other_followed(Config) ->
    {Id, Ref, _H} = start(Config, #{polls => [{go, running},
                                              {303, [{<<"location">>, <<"/ops/$ID/result">>}], <<>>}]}),
    {[_], {reply, Resp}} = collect(Ref),
    ResultUrl = url(Config, Id, "/result"),
    ?assertMatch(#{status := 200, body := <<"{\"answer\": 42}">>, url := ResultUrl}, Resp).

%% A client that does not follow redirects: the poller fetches the
%% Location of the 303 itself.
see_other_not_followed(Config) ->
    Client = erqwest:make_client(#{follow_redirects => false}),
    {Id, Ref, _H} = start(Config, Client,
                          #{polls => [{303, [{<<"location">>, <<"/ops/$ID/result">>}], <<>>}]}, ?FAST),
    {[], {reply, Resp}} = collect(Ref),
    ?assertMatch(#{status := 200, body := <<"{\"answer\": 42}">>}, Resp),
    ?assertEqual([{<<"POST">>, path(Id, "")}, {<<"GET">>, path(Id, "/status")},
                  {<<"GET">>, path(Id, "/result")}], requests(Config, Id)).

%% No Location header: the Accepted body's `location' names the monitor.
accepted_body_location(Config) ->
    Accepted = {202, [{<<"content-type">>, <<"application/json">>}],
                ?SERVER:json(#{id => x, state => pending, location => <<"$BASE/ops/$ID/status">>})},
    {Id, Ref, _H} = start(Config, #{accepted => Accepted,
                                    polls => [{go, succeeded, #{result => true}}]}),
    {[], {reply, #{body := <<"true">>}}} = collect(Ref),
    ?assertEqual({<<"GET">>, path(Id, "/status")}, lists:nth(2, requests(Config, Id))).

words_ignore_case(Config) ->
    Done = ?SERVER:json(#{<<"STATUS">> => <<"SUCCEEDED">>, <<"Result">> => #{ok => true}}),
    {_Id, Ref, _H} = start(Config, #{polls => [{go, <<"RUNNING">>},
                                               {azure, <<"not_started">>, 5},
                                               {200, [], Done}]}),
    {Progress, {reply, Resp}} = collect(Ref),
    ?assertMatch([#{state := running, status := <<"RUNNING">>},
                  #{state := pending, status := <<"not_started">>, percent_complete := 5}],
                 Progress),
    ?assertMatch(#{body := <<"{\"ok\":true}">>}, Resp).

%% poll_headers go with every poll and the result fetch, not with the
%% first request; a list body takes the dirty path and arrives whole.
poll_headers_and_list_body(Config) ->
    S = ?config(server, Config),
    Id = ?SERVER:new(S, #{polls => [{go, running},
                                    {go, succeeded, #{}, [{<<"location">>, <<"/ops/$ID/result">>}]}]}),
    Ref = make_ref(),
    Req = #{method => put, url => ?SERVER:url(S, Id), body => [<<"{\"a\":">>, ["1", $}]]},
    _ = erqwest_operation:start(?config(client, Config), self(), Ref, Req,
                                ?FAST#{poll_headers => [{<<"authorization">>, <<"Bearer t0k">>}]}),
    {[_], {reply, #{status := 200}}} = collect(Ref),
    [{_, <<"PUT">>, _, PutHeaders} | Gets] = ?SERVER:log(S, Id),
    ?assertEqual(undefined, proplists:get_value(<<"authorization">>, PutHeaders)),
    ?assertEqual(<<"7">>, proplists:get_value(<<"content-length">>, PutHeaders)),
    ?assertEqual([<<"Bearer t0k">>, <<"Bearer t0k">>, <<"Bearer t0k">>],
                 [proplists:get_value(<<"authorization">>, H) || {_, <<"GET">>, _, H} <- Gets]),
    ?assertEqual(3, length(Gets)).

%%% The OData/Azure style

azure_resource_location(Config) ->
    %% Operation-Location names the monitor; Location the final resource.
    Accepted = {202, [{<<"operation-location">>, <<"/ops/$ID/status">>},
                      {<<"location">>, <<"/ops/$ID/result">>}], <<>>},
    Done = {azure, <<"Succeeded">>, 100, #{resourceLocation => <<"$BASE/ops/$ID/result">>}, []},
    {Id, Ref, H} = start(Config, #{accepted => Accepted,
                                   polls => [{azure, <<"NotStarted">>, undefined},
                                             {azure, <<"Running">>, 40}, Done]}),
    {Progress, {reply, Resp}} = collect(Ref),
    ?assertMatch([#{state := pending, status := <<"NotStarted">>, percent_complete := undefined},
                  #{state := running, status := <<"Running">>, percent_complete := 40}], Progress),
    ?assertMatch(#{status := 200, body := <<"{\"answer\": 42}">>}, Resp),
    ?assertEqual([path(Id, ""), path(Id, "/status"), path(Id, "/status"), path(Id, "/status"),
                  path(Id, "/result")], [P || {_, P} <- requests(Config, Id)]),
    StatusUrl = url(Config, Id, "/status"),
    ?assertMatch(#{state := succeeded, status := <<"Succeeded">>, percent_complete := 100,
                   status_url := StatusUrl}, erqwest_operation:info(H)).

%% Azure-AsyncOperation wins over Location, which then names the result
%% (Azure's rule for a long-running POST).
azure_async_operation_header(Config) ->
    Accepted = {202, [{<<"location">>, <<"/ops/$ID/result">>},
                      {<<"azure-asyncoperation">>, <<"$BASE/ops/$ID/status">>}], <<>>},
    {Id, Ref, _H} = start(Config, #{accepted => Accepted,
                                    polls => [{azure, <<"InProgress">>, 10},
                                              {azure, <<"Succeeded">>, 100}]}),
    {[#{state := running, status := <<"InProgress">>, percent_complete := 10}],
     {reply, #{status := 200, body := <<"{\"answer\": 42}">>}}} = collect(Ref),
    ?assertEqual([path(Id, ""), path(Id, "/status"), path(Id, "/status"), path(Id, "/result")],
                 [P || {_, P} <- requests(Config, Id)]).

%% No result location anywhere: the final status document is the answer.
azure_final_status_document(Config) ->
    Accepted = {202, [{<<"azure-asyncoperation">>, <<"/ops/$ID/status">>}], <<>>},
    {Id, Ref, _H} = start(Config, #{accepted => Accepted,
                                    polls => [{azure, <<"Succeeded">>, 100}]}),
    {[], {reply, #{status := 200, body := Body}}} = collect(Ref),
    ?assertEqual(?SERVER:json(#{id => Id, status => <<"Succeeded">>, percentComplete => 100}), Body),
    ?assertNot(lists:member({<<"GET">>, path(Id, "/result")}, requests(Config, Id))).

%% An OData status monitor: bare 202s while running, then 201 + Location.
odata_bare_202(Config) ->
    {Id, Ref, _H} = start(Config, #{polls => [{202, [], <<>>}, {202, [], <<>>},
                                              {201, [{<<"location">>, <<"/ops/$ID/result">>}], <<>>}]}),
    {Progress, {reply, Resp}} = collect(Ref),
    ?assertEqual([#{state => running, status => <<>>, percent_complete => undefined,
                    retry_after => 10}, #{state => running, status => <<>>,
                                          percent_complete => undefined, retry_after => 10}],
                 Progress),
    ?assertMatch(#{status := 200, body := <<"{\"answer\": 42}">>}, Resp),
    ?assertEqual({<<"GET">>, path(Id, "/result")}, lists:last(requests(Config, Id))).

%%% Retry-After

retry_after_seconds(Config) ->
    Accepted = {202, [{<<"location">>, <<"/ops/$ID/status">>}, {<<"retry-after">>, <<"1">>}], <<>>},
    {Id, Ref, _H} = start(Config, #{accepted => Accepted,
                                    polls => [{go, running, #{}, [{<<"retry-after">>, <<"1">>}]},
                                              {go, running},
                                              {go, succeeded}]}),
    {Progress, {reply, _}} = collect(Ref),
    ?assertMatch([#{retry_after := 1000}, #{retry_after := 10}], Progress),
    [Post | Polls] = [T || {T, _, _, _} <- ?SERVER:log(?config(server, Config), Id)],
    [P1, P2, _P3] = Polls,
    %% Both waits were the server's second, not the 10 ms poll_interval.
    ?assert(P1 - Post >= 990),
    ?assert(P2 - P1 >= 990).

retry_after_http_date(Config) ->
    %% A date two seconds ahead, truncated to the second: 1 to 2 s away.
    Date = http_date(erlang:system_time(second) + 2),
    Accepted = {202, [{<<"location">>, <<"/ops/$ID/status">>}, {<<"retry-after">>, Date}], <<>>},
    %% The same date on the first poll is past by then: no hint.
    {Id, Ref, _H} = start(Config, #{accepted => Accepted,
                                    polls => [{go, running, #{}, [{<<"retry-after">>, Date}]},
                                              {go, succeeded}]}),
    {[#{retry_after := 10}], {reply, _}} = collect(Ref),
    [Post, P1, P2] = [T || {T, _, _, _} <- ?SERVER:log(?config(server, Config), Id)],
    ?assert(P1 - Post >= 900),
    ?assert(P2 - P1 < 900).

%%% Progress

progress_order_and_values(Config) ->
    Polls = [{go, pending, #{percentComplete => 0}},
             {go, running, #{percent_complete => 25}},
             {go, running, #{'PercentComplete' => 75.4}},
             {go, running, #{percentComplete => 250}},
             {go, succeeded, #{result => 1, percentComplete => 100}}],
    {_Id, Ref, H} = start(Config, #{polls => Polls}),
    {Progress, {reply, #{body := <<"1">>}}} = collect(Ref),
    ?assertEqual([{pending, <<"pending">>, 0}, {running, <<"running">>, 25},
                  {running, <<"running">>, 75}, {running, <<"running">>, 100}],
                 [{S, W, P} || #{state := S, status := W, percent_complete := P} <- Progress]),
    ?assertEqual(<<"succeeded">>, erqwest_operation:status(H)),
    ?assertEqual(100, erqwest_operation:percent_complete(H)).

%%% Failures

failed_with_problem(Config) ->
    Problem = #{type => <<"https://example.com/probs/out-of-credit">>,
                title => <<"You do not have enough credit.">>,
                detail => <<"Your current balance is 30, but that costs 50.">>,
                status => 403, balance => 30, accounts => [<<"/account/12345">>], ok => null},
    {_Id, Ref, H} = start(Config, #{polls => [{go, running}, {go, failed, #{problem => Problem}}]}),
    {[_], {error, Err}} = collect(Ref),
    ?assertEqual(#{code => operation_failed,
                   reason => <<"operation failed: You do not have enough credit.: "
                               "Your current balance is 30, but that costs 50.">>,
                   problem => #{<<"type">> => <<"https://example.com/probs/out-of-credit">>,
                                <<"title">> => <<"You do not have enough credit.">>,
                                <<"detail">> => <<"Your current balance is 30, but that costs 50.">>,
                                <<"status">> => 403, <<"balance">> => 30,
                                <<"accounts">> => [<<"/account/12345">>], <<"ok">> => null}},
                 Err),
    ?assertMatch(#{state := failed}, erqwest_operation:info(H)).

azure_failed_with_error(Config) ->
    Failed = {azure, <<"Failed">>, 50, #{error => #{code => <<"QuotaExceeded">>,
                                                    message => <<"Too many exports">>}}, []},
    {_Id, Ref, _H} = start(Config, #{polls => [Failed]}),
    {[], {error, Err}} = collect(Ref),
    ?assertMatch(#{code := operation_failed,
                   reason := <<"operation failed: QuotaExceeded: Too many exports">>,
                   problem := #{<<"code">> := <<"QuotaExceeded">>}}, Err).

server_canceled(Config) ->
    {_, Ref1, _} = start(Config, #{polls => [{go, running}, {go, canceled}]}),
    {[_], {error, Err1}} = collect(Ref1),
    ?assertEqual(#{code => operation_canceled, reason => <<"operation canceled by the server">>}, Err1),
    {_, Ref2, _} = start(Config, #{polls => [{azure, <<"Cancelled">>, 10,
                                              #{error => #{message => <<"by admin">>}}, []}]}),
    {[], {error, Err2}} = collect(Ref2),
    ?assertMatch(#{code := operation_canceled, reason := <<"operation canceled by the server: by admin">>,
                   problem := #{<<"message">> := <<"by admin">>}}, Err2).

%% max_wait ends it with `timeout', and polling stops.
max_wait(Config) ->
    {Id, Ref, _H} = start(Config, #{polls => [{go, running}]},
                          #{poll_interval => 20, max_wait => 300}),
    {Progress, {error, Err}} = collect(Ref),
    ?assertMatch(#{code := timeout, reason := <<"operation did not finish within max_wait (300 ms)">>}, Err),
    ?assert(length(Progress) >= 3),
    assert_polling_stopped(Config, Id).

%% A status URL answering 4xx/5xx: operation_failed with the HTTP status,
%% and its problem when the body is one.
status_url_http_error(Config) ->
    Problem = ?SERVER:json(#{title => <<"Store down">>, status => 500}),
    {Id1, Ref1, _} = start(Config, #{polls => [{go, running},
                                               {500, [{<<"content-type">>, <<"application/problem+json">>}], Problem}]}),
    {[_], {error, Err1}} = collect(Ref1),
    Reason1 = <<"status URL ", (url(Config, Id1, "/status"))/binary,
                " answered 500 Internal Server Error: Store down">>,
    ?assertEqual(#{code => operation_failed, reason => Reason1, http_status => 500,
                   problem => #{<<"title">> => <<"Store down">>, <<"status">> => 500}}, Err1),
    {_, Ref2, _} = start(Config, #{polls => [{404, [], <<"no such operation">>}]}),
    {[], {error, Err2}} = collect(Ref2),
    ?assertMatch(#{code := operation_failed, http_status := 404}, Err2),
    ?assertNot(maps:is_key(problem, Err2)).

%% Garbage where a status document should be: `body', saying so.
status_url_garbage(Config) ->
    {_, Ref1, _} = start(Config, #{polls => [{200, [{<<"content-type">>, <<"text/html">>}], <<"<html>oops</html>">>}]}),
    {[], {error, #{code := body, reason := R1}}} = collect(Ref1),
    ?assertMatch({match, _}, re:run(R1, "answered 200 OK without an operation status: \"<html>oops</html>\"")),
    {_, Ref2, _} = start(Config, #{polls => [{200, [], <<"{\"hello\": 1}">>}]}),
    {[], {error, #{code := body}}} = collect(Ref2),
    {_, Ref3, _} = start(Config, #{polls => [{200, [], binary:copy(<<"x">>, 2 * 1024 * 1024)}]}),
    {[], {error, #{code := body, reason := R3}}} = collect(Ref3),
    ?assertMatch({match, _}, re:run(R3, "larger than 1048576 bytes")).

%% The connection drops half-way through a status document.
status_url_truncated(Config) ->
    Cut = {raw_close, <<"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n{\"sta">>},
    {Id, Ref, _} = start(Config, #{polls => [Cut]}),
    {[], {error, #{code := Code, reason := R}}} = collect(Ref),
    ?assertEqual(body, Code),
    Prefix = <<"reading the status from ", (url(Config, Id, "/status"))/binary>>,
    ?assertMatch(<<Prefix:(byte_size(Prefix))/binary, _/binary>>, R).

status_url_unreachable(Config) ->
    {ok, L} = gen_tcp:listen(0, [{ip, {127, 0, 0, 1}}]),
    {ok, Port} = inet:port(L),
    ok = gen_tcp:close(L),
    Dead = iolist_to_binary(["http://127.0.0.1:", integer_to_list(Port), "/status"]),
    {_, Ref, _} = start(Config, #{accepted => {202, [{<<"location">>, Dead}], <<>>}}),
    {[], {error, #{code := connect, reason := R}}} = collect(Ref),
    ?assertMatch(<<"polling ", _/binary>>, R).

not_accepted_is_final(Config) ->
    {Id, Ref, _} = start(Config, #{accepted => {200, [{<<"x-a">>, <<"b">>}], <<"done">>}}),
    {[], {reply, Resp}} = collect(Ref),
    ?assertMatch(#{status := 200, body := <<"done">>}, Resp),
    ?assertEqual([{<<"POST">>, path(Id, "")}], requests(Config, Id)).

accepted_without_status_url(Config) ->
    {Id, Ref, _} = start(Config, #{accepted => {202, [], <<"queued">>}}),
    {[], {reply, #{status := 202, body := <<"queued">>}}} = collect(Ref),
    ?assertEqual([{<<"POST">>, path(Id, "")}], requests(Config, Id)).

bad_options(Config) ->
    C = ?config(client, Config),
    Req = #{method => get, url => <<"http://127.0.0.1:1/">>},
    Bad = [{Req, #{on_progress => fun(_) -> ok end}},
           {Req, #{poll_interval => 0}},
           {Req, #{poll_interval => -1}},
           {Req, #{max_wait => soon}},
           {Req, #{poll_headers => [{<<"bad name">>, <<"v">>}]}},
           {Req, #{unknown => 1}},
           {Req, not_a_map},
           {Req#{body => stream}, #{}},
           {Req#{response_body => stream}, #{}},
           {maps:remove(url, Req), #{}}],
    [?assertError(badarg, erqwest_operation:start(C, self(), r, R, O)) || {R, O} <- Bad],
    ?assertError(badarg, erqwest_operation:wait(C, Req, #{on_progress => not_a_fun})),
    ?assertError(badarg, erqwest_operation:create(C, Req, #{poll_interval => 0})).

bad_url_is_an_error_message(Config) ->
    Ref = make_ref(),
    _ = erqwest_operation:start(?config(client, Config), self(), Ref,
                                #{method => get, url => <<"not a url">>}, #{}),
    {[], {error, #{code := url}}} = collect(Ref).

%%% Cancelling

%% Cancel while waiting a 30 s Retry-After: the error comes at once and
%% no poll follows.
cancel_mid_wait(Config) ->
    {Id, Ref, H} = start(Config, #{polls => [{go, running, #{}, [{<<"retry-after">>, <<"30">>}]}]}),
    receive {erqwest_operation, Ref, progress, #{retry_after := 30000}} -> ok
    after 5000 -> ct:fail(no_progress)
    end,
    ok = erqwest_operation:cancel(H),
    receive {erqwest_response, Ref, error, Err} ->
        ?assertEqual(#{code => cancelled, reason => <<"cancelled">>}, Err)
    after 2000 -> ct:fail(cancel_not_at_once)
    end,
    %% Cancelling again after the final message does nothing.
    ok = erqwest_operation:cancel(H),
    no_more(Ref),
    ?assertEqual(1, length(?SERVER:polls(?config(server, Config), Id))).

%% Cancel while a poll is in flight (the server holds it for 10 s).
cancel_mid_poll(Config) ->
    {Id, Ref, H} = start(Config, #{polls => [{delay, 10000, {go, running}}]}),
    S = ?config(server, Config),
    ok = wait_until(fun() -> ?SERVER:polls(S, Id) =/= [] end, 5000),
    ok = erqwest_operation:cancel(H),
    receive {erqwest_response, Ref, error, #{code := cancelled}} -> ok
    after 2000 -> ct:fail(cancel_not_at_once)
    end,
    no_more(Ref).

%% The receiving process dies: polling stops.
owner_death_stops_polling(Config) ->
    S = ?config(server, Config),
    Id = ?SERVER:new(S, #{polls => [{go, running}]}),
    Client = ?config(client, Config),
    Owner = spawn(fun() ->
        _ = erqwest_operation:start(Client, self(), r, post(?SERVER:url(S, Id)), #{poll_interval => 20}),
        receive stop -> ok end
    end),
    ok = wait_until(fun() -> length(?SERVER:polls(S, Id)) >= 3 end, 5000),
    exit(Owner, kill),
    ok = wait_until(fun() -> erqwest_nif:live_operations() =:= 0 end, 2000),
    assert_polling_stopped(Config, Id).

%%% A poll loop of one's own

manual_loop(Config) ->
    S = ?config(server, Config),
    Id = ?SERVER:new(S, #{accepted => {202, [{<<"location">>, <<"/ops/$ID/status">>},
                                             {<<"retry-after">>, <<"7">>}], <<>>},
                          polls => [{azure, <<"Running">>, 30}, {azure, <<"Running">>, 60},
                                    {azure, <<"Succeeded">>, 100, #{result => #{url => <<"x">>}}, []}]}),
    {ok, Op0} = erqwest_operation:create(?config(client, Config), post(?SERVER:url(S, Id)), #{}),
    ?assertEqual(<<>>, erqwest_operation:status(Op0)),
    ?assertEqual(7000, erqwest_operation:retry_after(Op0)),
    ?assertEqual([], ?SERVER:polls(S, Id)),
    ?assertError(badarg, erqwest_operation:result(Op0)),
    {running, Op1} = erqwest_operation:poll(Op0),
    ?assertEqual({<<"Running">>, 30, 2000},
                 {erqwest_operation:status(Op1), erqwest_operation:percent_complete(Op1),
                  erqwest_operation:retry_after(Op1)}),
    {running, Op2} = erqwest_operation:poll(Op1),
    ?assertEqual(60, erqwest_operation:percent_complete(Op2)),
    {done, Op3} = erqwest_operation:poll(Op2),
    ?assertEqual(<<"Succeeded">>, erqwest_operation:status(Op3)),
    ?assertMatch({ok, #{status := 200, body := <<"{\"url\":\"x\"}">>}}, erqwest_operation:result(Op3)),
    %% Done: polling again makes no request.
    {done, Op3} = erqwest_operation:poll(Op3),
    ?assertEqual(3, length(?SERVER:polls(S, Id))),
    no_more_messages().

manual_not_accepted(Config) ->
    S = ?config(server, Config),
    Id = ?SERVER:new(S, #{accepted => {201, [], <<"made">>}}),
    {ok, Op} = erqwest_operation:create(?config(client, Config), post(?SERVER:url(S, Id)), #{}),
    {done, Op} = erqwest_operation:poll(Op),
    ?assertMatch({ok, #{status := 201, body := <<"made">>}}, erqwest_operation:result(Op)).

manual_failure(Config) ->
    S = ?config(server, Config),
    Id = ?SERVER:new(S, #{polls => [{go, failed, #{problem => #{title => <<"No">>}}}]}),
    {ok, Op} = erqwest_operation:create(?config(client, Config), post(?SERVER:url(S, Id)), #{}),
    {error, #{code := operation_failed, reason := <<"operation failed: No">>}} = erqwest_operation:poll(Op),
    %% Over: polling again is a caller's mistake.
    ?assertError(badarg, erqwest_operation:poll(Op)),
    ?assertEqual(1, length(?SERVER:polls(S, Id))).

manual_cancel(Config) ->
    S = ?config(server, Config),
    Id = ?SERVER:new(S, #{polls => [{go, running}]}),
    {ok, Op} = erqwest_operation:create(?config(client, Config), post(?SERVER:url(S, Id)), #{}),
    {running, Op} = erqwest_operation:poll(Op),
    ok = erqwest_operation:cancel(Op),
    %% cancel/1 consumed the final message.
    no_more_messages(),
    ok = erqwest_operation:cancel(Op),
    ?assertError(badarg, erqwest_operation:poll(Op)).

%% max_wait passes between polls: the next poll answers it.
manual_max_wait(Config) ->
    S = ?config(server, Config),
    Id = ?SERVER:new(S, #{polls => [{go, running}]}),
    {ok, Op} = erqwest_operation:create(?config(client, Config), post(?SERVER:url(S, Id)),
                                        #{max_wait => 100}),
    timer:sleep(300),
    ?assertMatch({error, #{code := timeout}}, erqwest_operation:poll(Op)),
    ?assertEqual([], ?SERVER:polls(S, Id)).

manual_owner_only(Config) ->
    S = ?config(server, Config),
    Id = ?SERVER:new(S, #{polls => [{go, running}]}),
    {ok, Op} = erqwest_operation:create(?config(client, Config), post(?SERVER:url(S, Id)), #{}),
    Self = self(),
    spawn(fun() ->
        Self ! {other, catch erqwest_operation:poll(Op), erqwest_operation:status(Op)}
    end),
    receive {other, Caught, Status} ->
        ?assertMatch({'EXIT', {{assertEqual, _}, _}}, Caught),
        %% Reading what was seen works from anywhere.
        ?assertEqual(<<"pending">>, Status)
    end,
    ok = erqwest_operation:cancel(Op).

%%% wait/3

wait_with_on_progress(Config) ->
    S = ?config(server, Config),
    Id = ?SERVER:new(S, #{polls => [{azure, <<"Running">>, 10}, {azure, <<"Running">>, 90},
                                    {azure, <<"Succeeded">>, 100, #{result => [1, 2]}, []}]}),
    Self = self(),
    Tag = make_ref(),
    {ok, Resp} = erqwest_operation:wait(?config(client, Config), post(?SERVER:url(S, Id)),
                                        ?FAST#{on_progress => fun(P) -> Self ! {Tag, P} end}),
    ?assertMatch(#{status := 200, body := <<"[1,2]">>}, Resp),
    Seen = [receive {Tag, P} -> P after 0 -> none end || _ <- [1, 2, 3]],
    ?assertMatch([#{percent_complete := 10}, #{percent_complete := 90}, none], Seen),
    no_more_messages().

%% on_progress raises: the operation is cancelled, the exception goes on,
%% and nothing is left in the mailbox.
wait_on_progress_raises(Config) ->
    S = ?config(server, Config),
    Id = ?SERVER:new(S, #{polls => [{go, running}]}),
    Fun = fun(#{state := running}) -> throw(enough) end,
    ?assertThrow(enough, erqwest_operation:wait(?config(client, Config), post(?SERVER:url(S, Id)),
                                                ?FAST#{on_progress => Fun})),
    no_more_messages(),
    assert_polling_stopped(Config, Id).

%%% Load

%% 1,000 operations at once, each accepted, polled three times at 300 ms
%% intervals and answered inline. The server runs in a peer node so that
%% what is measured here is the client: memory while all of them wait,
%% Erlang processes (none per operation), scheduler time and CPU time.
thousand_concurrent(_Config) ->
    N = 1000,
    Dir = filename:dirname(code:which(?SERVER)),
    {ok, Peer, _} = peer:start_link(#{connection => standard_io, args => ["-pa", Dir]}),
    try
        {ok, S} = peer:call(Peer, ?SERVER, start, []),
        Base = peer:call(Peer, ?SERVER, base, [S]),
        Script = #{polls => [{go, running, #{percentComplete => 30}},
                             {go, running, #{percentComplete => 70}},
                             {go, succeeded, #{result => #{ok => true}}}]},
        Urls = [<<Base/binary, "/ops/", (peer:call(Peer, ?SERVER, new, [S, Script]))/binary>>
                || _ <- lists:seq(1, N)],
        Client = erqwest:make_client(),
        erlang:system_flag(scheduler_wall_time, true),
        garbage_collect(),
        Before = sample(),
        Ops = [begin
                   Ref = make_ref(),
                   {Ref, erqwest_operation:start(Client, self(), Ref, post(Url),
                                                 #{poll_interval => 300, max_wait => 60000})}
               end || Url <- Urls],
        %% Every operation has been accepted and polled once; all wait.
        [receive {erqwest_operation, Ref, progress, #{percent_complete := 30}} -> ok
         after 30000 -> ct:fail(no_first_progress)
         end || {Ref, _} <- Ops],
        During = sample(),
        [receive {erqwest_operation, Ref, progress, #{percent_complete := 70}} -> ok
         after 30000 -> ct:fail(no_second_progress)
         end || {Ref, _} <- Ops],
        [receive {erqwest_response, Ref, reply, #{status := 200, body := <<"{\"ok\":true}">>}} -> ok;
                 {erqwest_response, Ref, error, Err} -> ct:fail({failed, Err})
         after 30000 -> ct:fail(no_reply)
         end || {Ref, _} <- Ops],
        After = sample(),
        ok = wait_until(fun() -> erqwest_nif:live_operations() =:= 0 end, 3000),
        erlang:system_flag(scheduler_wall_time, false),
        Report = report(N, Before, During, After),
        ct:pal("~s", [Report]),
        io:format(user, "~n~s~n", [Report]),
        ct:comment("~s", [Report]),
        %% No Erlang process per operation.
        ?assert(maps:get(procs, During) - maps:get(procs, Before) < 10),
        %% Modest memory: well under 100 KB per waiting operation, all in all.
        ?assert(maps:get(rss, During) - maps:get(rss, Before) < N * 100 * 1024)
    after
        peer:stop(Peer)
    end.

sample() ->
    #{t => erlang:monotonic_time(millisecond),
      rss => rss(),
      erl => erlang:memory(total),
      procs => erlang:system_info(process_count),
      sched => erlang:statistics(scheduler_wall_time),
      cpu => element(1, erlang:statistics(runtime))}.

report(N, Before, During, After) ->
    Wall = maps:get(t, After) - maps:get(t, Before),
    Sched = sched_active_ms(maps:get(sched, Before), maps:get(sched, After)),
    Cpu = maps:get(cpu, After) - maps:get(cpu, Before),
    Kb = fun(B) -> B div 1024 end,
    io_lib:format(
        "~b operations, 3 polls each, 300 ms apart: ~b ms wall~n"
        "  while all wait: RSS +~b KB (~b bytes per operation), Erlang memory +~b KB, "
        "processes +~b~n"
        "  normal schedulers busy ~b ms in all (~.2f ms per operation, ~.1f% of ~b schedulers)~n"
        "  VM CPU time (schedulers and tokio) ~b ms (~.2f ms per operation)",
        [N, Wall,
         Kb(maps:get(rss, During) - maps:get(rss, Before)),
         (maps:get(rss, During) - maps:get(rss, Before)) div N,
         Kb(maps:get(erl, During) - maps:get(erl, Before)),
         maps:get(procs, During) - maps:get(procs, Before),
         Sched, Sched / N, 100 * Sched / (Wall * erlang:system_info(schedulers)),
         erlang:system_info(schedulers), Cpu, Cpu / N]).

%% Active time of the normal schedulers between two samples, in ms.
sched_active_ms(S0, S1) ->
    Normal = erlang:system_info(schedulers),
    Active = lists:sum([A1 - A0 || {I, A1, _} <- S1, I =< Normal,
                                   {J, A0, _} <- S0, J =:= I]),
    erlang:convert_time_unit(Active, perf_counter, millisecond).

rss() ->
    {ok, Status} = file:read_file("/proc/self/status"),
    {match, [Kb]} = re:run(Status, "VmRSS:\\s+(\\d+) kB", [{capture, all_but_first, binary}]),
    binary_to_integer(Kb) * 1024.

%%% Helpers

start(Config, Script) ->
    start(Config, Script, ?FAST).

start(Config, Script, OpOpts) ->
    start(Config, ?config(client, Config), Script, OpOpts).

start(Config, Client, Script, OpOpts) ->
    S = ?config(server, Config),
    Id = ?SERVER:new(S, Script),
    Ref = make_ref(),
    H = erqwest_operation:start(Client, self(), Ref, post(?SERVER:url(S, Id)), OpOpts),
    {Id, Ref, H}.

post(Url) ->
    #{method => post, url => Url, body => <<"{\"export\": true}">>,
      headers => [{<<"content-type">>, <<"application/json">>}]}.

%% The progress messages, then the final one; then checks that nothing
%% else comes for this operation.
collect(Ref) -> collect(Ref, []).

collect(Ref, Acc) ->
    receive
        {erqwest_operation, Ref, progress, P} -> collect(Ref, [P | Acc]);
        {erqwest_response, Ref, Kind, X} ->
            no_more(Ref),
            {lists:reverse(Acc), {Kind, X}}
    after 15000 -> ct:fail({no_final_message, lists:reverse(Acc)})
    end.

no_more(Ref) ->
    receive
        {erqwest_operation, Ref, _, _} = M -> ct:fail({after_final, M});
        {erqwest_response, Ref, _, _} = M -> ct:fail({after_final, M})
    after 100 -> ok
    end.

no_more_messages() ->
    receive M -> ct:fail({unexpected, M})
    after 100 -> ok
    end.

%% No poll arrives after the operation ended.
assert_polling_stopped(Config, Id) ->
    S = ?config(server, Config),
    N = length(?SERVER:polls(S, Id)),
    timer:sleep(200),
    ?assertEqual(N, length(?SERVER:polls(S, Id))).

requests(Config, Id) ->
    [{M, P} || {_, M, P, _} <- ?SERVER:log(?config(server, Config), Id)].

path(Id, Suffix) -> iolist_to_binary(["/ops/", Id, Suffix]).

url(Config, Id, Suffix) ->
    iolist_to_binary([?SERVER:base(?config(server, Config)), path(Id, Suffix)]).

wait_until(Fun, Ms) when Ms =< 0 ->
    case Fun() of true -> ok; false -> timeout end;
wait_until(Fun, Ms) ->
    case Fun() of
        true -> ok;
        false -> timer:sleep(20), wait_until(Fun, Ms - 20)
    end.

%% IMF-fixdate, as in `Retry-After: Sun, 06 Nov 1994 08:49:37 GMT'.
http_date(UnixSeconds) ->
    {{Y, Mo, D}, {H, Mi, S}} = calendar:system_time_to_universal_time(UnixSeconds, second),
    Day = element(calendar:day_of_the_week(Y, Mo, D), {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"}),
    Month = element(Mo, {"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct",
                         "Nov", "Dec"}),
    iolist_to_binary(io_lib:format("~s, ~2..0b ~s ~4..0b ~2..0b:~2..0b:~2..0b GMT",
                                   [Day, D, Month, Y, H, Mi, S])).
