%% The runtime's life cycle: stopping with requests in flight, what old
%% clients do afterwards, a runtime dying underneath its owner, several
%% runtimes at once.
-module(erqwest_runtime_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-compile([export_all, nowarn_export_all]).

all() ->
    [stop_with_requests_in_flight, restart_and_work_again, failure_restarts_runtime,
     several_runtimes, worker_threads_setting, stopped_runtime_refuses_clients].

init_per_testcase(_, Config) ->
    {ok, _} = application:ensure_all_started(erqwest),
    {ok, S} = erqwest_test_server:start(fun hold/1),
    [{server, S} | Config].

end_per_testcase(_, Config) ->
    erqwest_test_server:stop(?config(server, Config)),
    application:stop(erqwest),
    application:unset_env(erqwest, worker_threads),
    ok.

%% /hold never answers; anything else answers at once.
hold(#{path := <<"/hold">>}) -> {custom, fun(_, _) -> timer:sleep(60000), close end};
hold(_) -> {200, [], <<"ok">>}.

url(Config, Path) -> erqwest_test_server:url(?config(server, Config), Path).

stop_with_requests_in_flight(Config) ->
    C = erqwest:make_client(),
    N = 200,
    [erqwest_async:req(C, self(), {held, I}, #{method => get, url => url(Config, "/hold")})
     || I <- lists:seq(1, N)],
    %% Let them reach the server.
    wait_until(fun() -> length(erqwest_test_server:requests(?config(server, Config))) >= N end),
    ok = application:stop(erqwest),
    Finals = [receive {erqwest_response, {held, I}, error, #{code := Code}} -> Code
              after 5000 -> missing end || I <- lists:seq(1, N)],
    ?assertEqual(lists:duplicate(N, cancelled), Finals),
    receive {erqwest_response, _, _, _} = M -> ct:fail({extra, M}) after 100 -> ok end,
    %% An old client now raises bad_runtime; new clients cannot be made.
    ?assertError(bad_runtime, erqwest:get(C, url(Config, "/"))),
    ?assertError(badarg, erqwest:make_client()).

restart_and_work_again(Config) ->
    ok = application:stop(erqwest),
    {ok, _} = application:ensure_all_started(erqwest),
    {ok, #{status := 200}} = erqwest:get(erqwest:make_client(), url(Config, "/")).

%% A runtime stopped behind its owner's back: the owner exits with
%% erqwest_runtime_failure, the supervisor starts a new one.
failure_restarts_runtime(Config) ->
    Old = whereis(erqwest_runtime),
    Ref = monitor(process, Old),
    ok = erqwest_nif:stop_runtime(erqwest_runtime:get()),
    receive {'DOWN', Ref, process, Old, Reason} -> ?assertEqual(erqwest_runtime_failure, Reason)
    after 5000 -> ct:fail(owner_did_not_exit) end,
    wait_until(fun() -> is_pid(whereis(erqwest_runtime)) andalso whereis(erqwest_runtime) =/= Old end),
    wait_until(fun() -> try erqwest_runtime:get(), true catch error:badarg -> false end end),
    {ok, #{status := 200}} = erqwest:get(erqwest:make_client(), url(Config, "/")).

several_runtimes(Config) ->
    R = erqwest_nif:start_runtime(self(), #{worker_threads => 2}),
    C = erqwest_nif:make_client(R, #{}),
    {ok, #{status := 200}} = erqwest:get(C, url(Config, "/")),
    {ok, #{status := 200}} = erqwest:get(erqwest:make_client(), url(Config, "/")),
    ok = erqwest_nif:stop_runtime(R),
    receive erqwest_runtime_stopped -> ok after 5000 -> ct:fail(not_stopped) end,
    ?assertError(bad_runtime, erqwest:get(C, url(Config, "/"))),
    %% The application's runtime is unaffected.
    {ok, #{status := 200}} = erqwest:get(erqwest:make_client(), url(Config, "/")).

worker_threads_setting(Config) ->
    ok = application:stop(erqwest),
    ok = application:set_env(erqwest, worker_threads, 3),
    {ok, _} = application:ensure_all_started(erqwest),
    {ok, #{status := 200}} = erqwest:get(erqwest:make_client(), url(Config, "/")),
    ?assertError(badarg, erqwest_nif:start_runtime(self(), #{worker_threads => 0})),
    ?assertError(badarg, erqwest_nif:start_runtime(self(), #{threads => 1})).

stopped_runtime_refuses_clients(_Config) ->
    R = erqwest_nif:start_runtime(self()),
    ok = erqwest_nif:stop_runtime(R),
    receive erqwest_runtime_stopped -> ok after 5000 -> ct:fail(not_stopped) end,
    ?assertError(badarg, erqwest_nif:make_client(R, #{})).

wait_until(F) -> wait_until(F, 100).
wait_until(_F, 0) -> ct:fail(timeout);
wait_until(F, N) ->
    case F() of
        true -> ok;
        false -> timer:sleep(50), wait_until(F, N - 1)
    end.
