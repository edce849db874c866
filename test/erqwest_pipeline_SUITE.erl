%% One pipeline over two engines (issue 31): everyday requests, composed
%% with `query', `json', `form', `auth' (the request's or the client's),
%% `base_url' and decoded with `decode => json | auto', are answered on
%% the scheduler engine, and the same request through the runtime engine
%% puts the same bytes on the wire and gets the same answer.
-module(erqwest_pipeline_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-compile([export_all, nowarn_export_all]).

all() ->
    [{group, parity}, {group, placement}].

groups() ->
    [{parity, [parallel], [query_pairs, json_body, form_body, basic_and_bearer_auth,
                           client_default_auth_and_auth_none, base_url_paths,
                           decode_json_small_and_large, decode_auto_by_content_type,
                           decode_error_is_the_same, json_with_content_type_of_its_own]},
     {placement, [], [composed_requests_take_the_scheduler_engine,
                      large_decoded_bodies_leave_the_scheduler]}].

suite() -> [{timetrap, {seconds, 60}}].

init_per_suite(Config) ->
    {ok, _} = application:ensure_all_started(erqwest),
    Config.

end_per_suite(_Config) ->
    application:stop(erqwest).

%%% helpers

handler(#{path := <<"/json/", N/binary>>}) ->
    {200, [{"content-type", "application/json"}], json_array(binary_to_integer(N))};
handler(#{path := <<"/text-json">>}) ->
    {200, [{"content-type", "text/plain"}], <<"[1,2]">>};
handler(#{path := <<"/broken">>}) ->
    {200, [{"content-type", "application/json"}], <<"{\"a\":">>};
handler(#{body := B, headers := Hs}) ->
    {200, [{"content-type", proplists:get_value(<<"content-type">>, Hs, <<"text/plain">>)}], B}.

%% A JSON array of N small objects.
json_array(N) ->
    Obj = <<"{\"id\":1,\"name\":\"n\",\"tags\":[\"a\",\"b\"],\"ok\":true}">>,
    iolist_to_binary(["[", lists:join(",", lists:duplicate(N, Obj)), "]"]).

with_server(Fun) ->
    {ok, S} = erqwest_test_server:start(fun handler/1),
    try Fun(S) after erqwest_test_server:stop(S) end.

url(S, Path) -> erqwest_test_server:url(S, Path).

via_runtime(C, Opts) ->
    Ref = make_ref(),
    _ = erqwest_async:req(C, self(), Ref, Opts),
    receive
        {erqwest_response, Ref, reply, Resp} -> {ok, Resp};
        {erqwest_response, Ref, error, Err} -> {error, Err}
    after 10000 -> error(no_answer)
    end.

%% Sends `Opts' through both engines on server `S' and checks the bytes
%% on the wire and the two answers; returns the scheduler engine's.
same(C, S, Opts0) ->
    Opts = maps:merge(#{method => get}, Opts0),
    Before = length(erqwest_test_server:requests(S)),
    Scheduler = erqwest:req(C, Opts),
    Mid = length(erqwest_test_server:requests(S)),
    Runtime = via_runtime(C, Opts),
    All = erqwest_test_server:requests(S),
    {Sched, Run} = lists:split(Mid - Before, lists:nthtail(Before, All)),
    ?assertEqual([Raw || #{raw := Raw} <- Run], [Raw || #{raw := Raw} <- Sched]),
    ?assertEqual(Runtime, Scheduler),
    Scheduler.

last_request(S) -> lists:last(erqwest_test_server:requests(S)).

header(Name, #{headers := Hs}) -> proplists:get_value(Name, Hs).

%%% parity

query_pairs(_Config) ->
    with_server(fun(S) ->
        C = erqwest:make_client(),
        {ok, _} = same(C, S, #{url => url(S, "/q?x=1"),
                                query => [{<<"a b">>, <<"c&d">>}, {k, 2}, {<<"é"/utf8>>, 1.5}]}),
        ?assertEqual(<<"/q?x=1&a+b=c%26d&k=2&%C3%A9=1.5">>, maps:get(path, last_request(S))),
        {ok, _} = same(C, S, #{url => url(S, "/q"), query => #{}})
    end).

json_body(_Config) ->
    with_server(fun(S) ->
        C = erqwest:make_client(),
        {ok, #{body := B}} = same(C, S, #{method => post, url => url(S, "/j"),
                                          json => #{<<"a">> => [1, 2.5, null, true]}}),
        ?assertEqual(<<"{\"a\":[1,2.5,null,true]}">>, B),
        ?assertEqual(<<"application/json">>, header(<<"content-type">>, last_request(S)))
    end).

json_with_content_type_of_its_own(_Config) ->
    with_server(fun(S) ->
        C = erqwest:make_client(),
        {ok, _} = same(C, S, #{method => put, url => url(S, "/j"),
                               headers => [{<<"content-type">>, <<"application/vnd.x+json">>}],
                               json => [1]}),
        ?assertEqual(<<"application/vnd.x+json">>, header(<<"content-type">>, last_request(S)))
    end).

form_body(_Config) ->
    with_server(fun(S) ->
        C = erqwest:make_client(),
        {ok, #{body := B}} = same(C, S, #{method => post, url => url(S, "/f"),
                                          form => [{<<"name">>, <<"a b">>}, {n, 3}]}),
        ?assertEqual(<<"name=a+b&n=3">>, B),
        ?assertEqual(<<"application/x-www-form-urlencoded">>,
                     header(<<"content-type">>, last_request(S)))
    end).

basic_and_bearer_auth(_Config) ->
    with_server(fun(S) ->
        C = erqwest:make_client(),
        {ok, _} = same(C, S, #{url => url(S, "/a"), auth => {basic, <<"user">>, <<"pa:ss">>}}),
        ?assertEqual(<<"Basic dXNlcjpwYTpzcw==">>, header(<<"authorization">>, last_request(S))),
        {ok, _} = same(C, S, #{url => url(S, "/a"), auth => {bearer, <<"tok">>},
                               headers => [{<<"authorization">>, <<"replaced">>}]}),
        ?assertEqual(<<"Bearer tok">>, header(<<"authorization">>, last_request(S)))
    end).

client_default_auth_and_auth_none(_Config) ->
    with_server(fun(S) ->
        C = erqwest:make_client(#{auth => {bearer, <<"client">>}}),
        {ok, _} = same(C, S, #{url => url(S, "/d")}),
        ?assertEqual(<<"Bearer client">>, header(<<"authorization">>, last_request(S))),
        {ok, _} = same(C, S, #{url => url(S, "/d"), auth => none}),
        ?assertEqual(undefined, header(<<"authorization">>, last_request(S))),
        %% A header of the request's own wins over the client's default.
        {ok, _} = same(C, S, #{url => url(S, "/d"),
                               headers => [{<<"authorization">>, <<"mine">>}]}),
        ?assertEqual(<<"mine">>, header(<<"authorization">>, last_request(S)))
    end).

base_url_paths(_Config) ->
    with_server(fun(S) ->
        C = erqwest:make_client(#{base_url => url(S, "/api/v1")}),
        {ok, #{url := U}} = same(C, S, #{url => <<"/users">>, query => [{p, 1}]}),
        ?assertEqual(url(S, "/api/v1/users?p=1"), U)
    end).

decode_json_small_and_large(_Config) ->
    with_server(fun(S) ->
        C = erqwest:make_client(),
        %% 1.8 KB decoded in the NIF call, 157 KB on the runtime.
        lists:foreach(
          fun(N) ->
              {ok, #{body := L}} = same(C, S, #{url => url(S, "/json/" ++ integer_to_list(N)),
                                                decode => json}),
              ?assertEqual(N, length(L)),
              ?assertMatch([#{<<"id">> := 1, <<"tags">> := [<<"a">>, <<"b">>]} | _], L)
          end, [40, 3500])
    end).

decode_auto_by_content_type(_Config) ->
    with_server(fun(S) ->
        C = erqwest:make_client(#{decode => auto}),
        {ok, #{body := [#{} | _]}} = same(C, S, #{url => url(S, "/json/3")}),
        {ok, #{body := <<"[1,2]">>}} = same(C, S, #{url => url(S, "/text-json")})
    end).

decode_error_is_the_same(_Config) ->
    with_server(fun(S) ->
        C = erqwest:make_client(),
        {error, #{code := decode, body := <<"{\"a\":">>, status := 200}} =
            same(C, S, #{url => url(S, "/broken"), decode => json})
    end).

%%% placement

%% While the server holds the answer, no reqwest task and no handle exist:
%% the request is the caller's NIF calls.
composed_requests_take_the_scheduler_engine(_Config) ->
    Self = self(),
    Hold = fun(_) -> {custom, fun(Sock, Req) ->
        Self ! {held, self()},
        receive go -> ok end,
        erqwest_test_server:send_response(
          {gen_tcp, Sock}, {200, [{"content-type", "application/json"}], <<"{\"ok\":true}">>}, Req),
        keep
    end} end,
    {ok, S} = erqwest_test_server:start(Hold),
    try
        C = erqwest:make_client(#{auth => {bearer, <<"t">>}, decode => auto,
                                  base_url => url(S, "/")}),
        lists:foreach(
          fun(Opts) ->
              Caller = spawn_link(fun() -> Self ! {done, erqwest:req(C, Opts)} end),
              Conn = receive {held, P} -> P after 5000 -> error(not_held) end,
              ?assertEqual({0, 0}, erqwest_nif:live_resources()),
              Conn ! go,
              receive {done, R} -> ?assertMatch({ok, #{body := #{<<"ok">> := true}}}, R)
              after 5000 -> error(no_answer)
              end,
              unlink(Caller)
          end,
          [#{method => get, url => <<"items">>, query => [{q, 1}]},
           #{method => post, url => <<"items">>, json => #{<<"a">> => 1}},
           #{method => post, url => <<"items">>, form => [{a, 1}]},
           #{method => get, url => <<"items">>, auth => {basic, <<"u">>, <<"p">>}}])
    after
        erqwest_test_server:stop(S)
    end.

%% A JSON body over 32 KB is decoded on the runtime, not in a NIF call:
%% a reply message comes from a runtime task (seen as a runtime-built
%% message in the mailbox of erqwest_direct's wait, so only the answer
%% can be checked here) and it is the same as the small path's.
large_decoded_bodies_leave_the_scheduler(_Config) ->
    with_server(fun(S) ->
        C = erqwest:make_client(),
        {ok, #{body := L}} = erqwest:get(C, url(S, "/json/3500"), #{decode => json}),
        ?assertEqual(3500, length(L)),
        {ok, #{body := Raw}} = erqwest:get(C, url(S, "/json/3500")),
        ?assert(byte_size(Raw) > 32 * 1024),
        {ok, Decoded} = erqwest_json:decode(Raw),
        ?assertEqual(Decoded, L)
    end).
