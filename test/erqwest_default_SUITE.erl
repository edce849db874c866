%% The default client (src/erqwest_default.erl): the calls without a
%% client use the one the application starts, made from the application
%% environment, and made again when the application or its runtime
%% restarts. The 0.2.5 arities keep their meaning. Not parallel: the cases
%% restart the application.
-module(erqwest_default_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, suite/0, init_per_suite/1, end_per_suite/1,
         init_per_testcase/2, end_per_testcase/2]).
-export([calls_without_a_client_use_the_default/1, default_is_the_registered_one/1,
         env_map_options_applied/1, env_proplist_options_applied/1,
         made_again_after_application_restart/1, made_again_after_runtime_restart/1,
         bad_env_fails_the_start/1, client_first_calls_unchanged/1,
         stopped_application_is_badarg/1, url_first_needs_a_map/1]).

suite() -> [{timetrap, {minutes, 2}}].

all() ->
    [calls_without_a_client_use_the_default, default_is_the_registered_one,
     env_map_options_applied, env_proplist_options_applied,
     made_again_after_application_restart, made_again_after_runtime_restart,
     bad_env_fails_the_start, client_first_calls_unchanged,
     stopped_application_is_badarg, url_first_needs_a_map].

init_per_suite(Config) ->
    {ok, _} = application:ensure_all_started(erqwest),
    {ok, S} = erqwest_test_server:start(fun handle/1),
    [{server, S} | Config].

end_per_suite(Config) ->
    erqwest_test_server:stop(?config(server, Config)).

init_per_testcase(_, Config) ->
    {ok, _} = application:ensure_all_started(erqwest),
    Config.

end_per_testcase(_, _Config) ->
    %% Back to an unconfigured default client for the next case.
    application:unset_env(erqwest, default_client),
    _ = application:stop(erqwest),
    {ok, _} = application:ensure_all_started(erqwest),
    ok.

%% Answers "METHOD path body" as text.
handle(#{method := M, path := P, body := B}) ->
    {200, [{"content-type", "text/plain"}], [M, " ", P, " ", B]}.

url(Config, Path) -> erqwest_test_server:url(?config(server, Config), Path).

%% The headers of the last request the server saw.
last_headers(Config) ->
    #{headers := Headers} = lists:last(erqwest_test_server:requests(?config(server, Config))),
    Headers.

restart_with(Env) ->
    ok = application:stop(erqwest),
    ok = application:set_env(erqwest, default_client, Env),
    {ok, _} = application:ensure_all_started(erqwest).

calls_without_a_client_use_the_default(Config) ->
    ?assertEqual(#{}, erqwest_default:options()),
    U = url(Config, "/x"),
    ?assertMatch({ok, #{status := 200, body := <<"GET /x ">>}}, erqwest:get(U)),
    ?assertMatch({ok, #{status := 200, body := <<"GET /x ">>}},
                 erqwest:get(U, #{headers => [{<<"x-a">>, <<"1">>}]})),
    ?assert(lists:member({<<"x-a">>, <<"1">>}, last_headers(Config))),
    ?assertMatch({ok, #{status := 200, body := <<"POST /x {\"k\":1}">>}},
                 erqwest:post(U, #{json => #{<<"k">> => 1}})),
    ?assertMatch({ok, #{body := <<"PUT /x b">>}}, erqwest:put(U, #{body => <<"b">>})),
    ?assertMatch({ok, #{body := <<"PATCH /x p">>}}, erqwest:patch(U, #{body => <<"p">>})),
    ?assertMatch({ok, #{body := <<"DELETE /x ">>}}, erqwest:delete(U)),
    ?assertMatch({ok, #{body := <<"DELETE /x ">>}}, erqwest:delete(U, #{})),
    ?assertMatch({ok, #{body := <<"OPTIONS /x ">>}}, erqwest:options(U)),
    ?assertMatch({ok, #{body := <<"OPTIONS /x ">>}}, erqwest:options(U, #{})),
    ?assertMatch({ok, #{status := 200, body := <<>>}}, erqwest:head(U)),
    ?assertMatch({ok, #{status := 200}}, erqwest:head(U, #{})),
    ?assertMatch({ok, #{body := <<"GET /x ">>}}, erqwest:req(#{method => get, url => U})),
    %% Streaming works on it too (the runtime engine).
    {handle, H} = erqwest:post(U, #{body => stream}),
    ok = erqwest:send(H, <<"up">>),
    ?assertMatch({ok, #{body := <<"POST /x up">>}}, erqwest:finish_send(H)),
    Methods = [M || #{method := M} <- erqwest_test_server:requests(?config(server, Config))],
    ?assertEqual([<<"GET">>, <<"GET">>, <<"POST">>, <<"PUT">>, <<"PATCH">>, <<"DELETE">>,
                  <<"DELETE">>, <<"OPTIONS">>, <<"OPTIONS">>, <<"HEAD">>, <<"HEAD">>, <<"GET">>,
                  <<"POST">>], Methods).

%% The calls go through the client registered as erqwest_default: replacing
%% it by hand changes what goes on the wire.
default_is_the_registered_one(Config) ->
    ?assertEqual(erqwest_default, erqwest_default:name()),
    ok = erqwest:start_client(erqwest_default,
                              #{default_headers => [{<<"x-which">>, <<"replaced">>}]}),
    {ok, _} = erqwest:get(url(Config, "/r")),
    ?assert(lists:member({<<"x-which">>, <<"replaced">>}, last_headers(Config))),
    ?assertMatch(#{in_flight := 0}, erqwest:client_info(erqwest_default)).

env_map_options_applied(Config) ->
    restart_with(#{user_agent => <<"from-env/1">>,
                   default_headers => [{<<"x-env">>, <<"map">>}], timeout => 2000}),
    ?assertMatch(#{user_agent := <<"from-env/1">>}, erqwest_default:options()),
    {ok, #{status := 200}} = erqwest:get(url(Config, "/env")),
    Headers = last_headers(Config),
    ?assert(lists:member({<<"user-agent">>, <<"from-env/1">>}, Headers)),
    ?assert(lists:member({<<"x-env">>, <<"map">>}, Headers)).

%% A proplist of client_opts() (no Elixir layer loaded in this suite).
env_proplist_options_applied(Config) ->
    false = code:is_loaded('Elixir.Erqwest.Options'),
    restart_with([{user_agent, <<"from-list/1">>}]),
    {ok, #{status := 200}} = erqwest:get(url(Config, "/env")),
    ?assert(lists:member({<<"user-agent">>, <<"from-list/1">>}, last_headers(Config))).

made_again_after_application_restart(Config) ->
    Before = erqwest:get_client(erqwest_default),
    {ok, #{status := 200}} = erqwest:get(url(Config, "/1")),
    ok = application:stop(erqwest),
    {ok, _} = application:ensure_all_started(erqwest),
    After = erqwest:get_client(erqwest_default),
    ?assertNotEqual(Before, After),
    ?assertMatch({ok, #{status := 200, body := <<"GET /2 ">>}}, erqwest:get(url(Config, "/2"))).

%% rest_for_one: the runtime dies, the default client is made again on
%% the new one.
made_again_after_runtime_restart(Config) ->
    Before = erqwest:get_client(erqwest_default),
    Runtime = whereis(erqwest_runtime),
    Default = whereis(erqwest_default),
    exit(Runtime, kill),
    ok = wait(fun() ->
        N = whereis(erqwest_default),
        is_pid(N) andalso N =/= Default
    end, 100),
    ?assertNotEqual(Before, erqwest:get_client(erqwest_default)),
    ?assertMatch({ok, #{status := 200, body := <<"GET /3 ">>}}, erqwest:get(url(Config, "/3"))).

bad_env_fails_the_start(_Config) ->
    ok = application:stop(erqwest),
    [begin
         ok = application:set_env(erqwest, default_client, Bad),
         ?assertMatch({error, {{shutdown, {failed_to_start_child, erqwest_default,
                                           {bad_default_client, Bad}}}, _}},
                      application:start(erqwest))
     end || Bad <- [#{timeout => soon}, #{no_such_option => 1}, not_options, [{proxy, 42}]]],
    application:unset_env(erqwest, default_client),
    ?assertEqual(ok, application:start(erqwest)).

%% erqwest 0.2.5's calls, client first, still go to that client.
client_first_calls_unchanged(Config) ->
    U = url(Config, "/mine"),
    C = erqwest:make_client(#{default_headers => [{<<"x-which">>, <<"mine">>}]}),
    ok = erqwest:start_client(mine, #{default_headers => [{<<"x-which">>, <<"named">>}]}),
    [begin
         {ok, #{status := 200}} = Call(),
         ?assert(lists:member({<<"x-which">>, Which}, last_headers(Config)))
     end || {Call, Which} <- [{fun() -> erqwest:get(C, U) end, <<"mine">>},
                              {fun() -> erqwest:get(mine, U) end, <<"named">>},
                              {fun() -> erqwest:head(mine, U) end, <<"named">>},
                              {fun() -> erqwest:options(C, U) end, <<"mine">>},
                              {fun() -> erqwest:delete(mine, U) end, <<"named">>},
                              {fun() -> erqwest:req(C, #{method => get, url => U}) end, <<"mine">>}]],
    ok = erqwest:stop_client(mine).

stopped_application_is_badarg(Config) ->
    ok = application:stop(erqwest),
    ?assertError(badarg, erqwest:get(url(Config, "/stopped"))),
    ?assertError(badarg, erqwest:req(#{method => get, url => url(Config, "/stopped")})).

%% A URL first and something other than a map is not a default-client
%% call: it is read as 0.2.5 read it (a client that is not one).
url_first_needs_a_map(Config) ->
    U = url(Config, "/u"),
    ?assertError(_, erqwest:get(U, U)),
    ?assertError(_, erqwest:post(U, not_a_map)).

wait(_Fun, 0) -> timeout;
wait(Fun, N) ->
    case Fun() of
        true -> ok;
        false -> timer:sleep(20), wait(Fun, N - 1)
    end.
