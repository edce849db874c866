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
    [{group, parity}, {group, placement}, {group, scheduler}, {group, runtime},
     {group, divergences}, {group, reason_texts}, {group, cookies}].

groups() ->
    [{parity, [parallel], [query_pairs, json_body, form_body, basic_and_bearer_auth,
                           client_default_auth_and_auth_none, base_url_paths,
                           decode_json_small_and_large, decode_auto_by_content_type,
                           decode_error_is_the_same, json_with_content_type_of_its_own]},
     {placement, [], [composed_requests_take_the_scheduler_engine,
                      large_decoded_bodies_leave_the_scheduler,
                      retried_requests_take_the_scheduler_engine,
                      client_info_counts_scheduler_requests]},
     %% Where the two engines answered differently (issue 31, "Why").
     {divergences, [], [https_proxy_from_the_environment_is_honoured,
                        connect_goes_out_in_authority_form,
                        timeout_zero_fails_at_once_on_both_engines,
                        read_timeout_after_the_head_is_the_same]},
     %% Issue 31: an error's reason is the same text whichever engine
     %% answered (reqwest's, which 0.2.5 code saw).
     {reason_texts, [parallel], reason_text_cases()},
     %% One cookie jar per client, shared by both engines.
     {cookies, [], [a_cookie_set_on_either_engine_is_sent_by_both,
                    cookies_go_out_the_same_on_both_engines,
                    cookies_of_a_redirect_hop_are_kept,
                    a_cookie_header_of_the_request_wins,
                    cookie_clients_take_the_scheduler_engine]},
     {scheduler, [], retry_cases()},
     {runtime, [], retry_cases()}].

%% Retries, the same on both engines (issue 31: the decision in Rust, the
%% wait in the calling process on the scheduler engine).
retry_cases() ->
    [transient_statuses_are_retried, retry_after_is_waited, refused_is_retried,
     post_is_not_retried, timeout_bounds_each_attempt, safe_transient_skips_put,
     redirect_then_retry_starts_over].

init_per_group(reason_texts, Config) ->
    {ok, _} = application:ensure_all_started(ssl),
    Certs = erqwest_test_certs:make(filename:join(?config(priv_dir, Config), "certs")),
    [{certs, Certs}, {ca_der, erqwest_test_certs:der(maps:get(ca, Certs))} | Config];
init_per_group(G, Config) when G =:= scheduler; G =:= runtime ->
    [{engine, G} | Config];
init_per_group(_, Config) ->
    Config.

end_per_group(_, _Config) ->
    ok.

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

via_runtime(C, Opts) -> erqwest_engine:req(runtime, C, Opts, 10000).

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

%% A server that holds each answer until told: while it holds one, the
%% test sees whether a runtime task or handle exists (none on the
%% scheduler engine, whose request is the caller's NIF calls).
with_held_server(Body, Fun) ->
    Self = self(),
    Hold = fun(_) -> {custom, fun(Sock, Req) ->
        Self ! {held, self()},
        receive go -> ok end,
        erqwest_test_server:send_response({gen_tcp, Sock}, {200, [{"content-type", "application/json"}], Body}, Req),
        keep
    end} end,
    {ok, S} = erqwest_test_server:start(Hold),
    try Fun(S) after erqwest_test_server:stop(S) end.

%% Runs `erqwest:req(C, Opts)' in a process of its own against a held
%% server; `While' runs while the answer is held; returns the answer.
while_held(C, Opts, While) ->
    Self = self(),
    Caller = spawn_link(fun() -> Self ! {done, erqwest:req(C, Opts)} end),
    Conn = receive {held, P} -> P after 5000 -> error(not_held) end,
    ?assertEqual({0, 0}, erqwest_nif:live_resources()),
    While(),
    Conn ! go,
    R = receive {done, Answer} -> Answer after 5000 -> error(no_answer) end,
    unlink(Caller),
    R.

root_get(S) -> #{method => get, url => url(S, "/")}.

%% Composed requests are the caller's NIF calls.
composed_requests_take_the_scheduler_engine(_Config) ->
    with_held_server(<<"{\"ok\":true}">>, fun(S) ->
        C = erqwest:make_client(#{auth => {bearer, <<"t">>}, decode => auto,
                                  base_url => url(S, "/")}),
        lists:foreach(
          fun(Opts) ->
              ?assertMatch({ok, #{body := #{<<"ok">> := true}}},
                           while_held(C, Opts, fun() -> ok end))
          end,
          [#{method => get, url => <<"items">>, query => [{q, 1}]},
           #{method => post, url => <<"items">>, json => #{<<"a">> => 1}},
           #{method => post, url => <<"items">>, form => [{a, 1}]},
           #{method => get, url => <<"items">>, auth => {basic, <<"u">>, <<"p">>}}])
    end).

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

%%% retries

%% A server answering its requests from `Steps' in order (the last one
%% repeated); returns it and a fun counting its requests.
scripted(Steps) ->
    Counter = counters:new(1, []),
    Handler = fun(_Req) ->
        N = counters:get(Counter, 1),
        counters:add(Counter, 1, 1),
        case lists:nth(min(N + 1, length(Steps)), Steps) of
            {stall, Ms} -> {custom, fun(_, _) -> timer:sleep(Ms), close end};
            Reply -> Reply
        end
    end,
    {ok, S} = erqwest_test_server:start(Handler),
    {S, fun() -> counters:get(Counter, 1) end}.

engine_req(Config, C, Opts) ->
    erqwest_engine:req(?config(engine, Config), C, maps:merge(#{method => get}, Opts)).

fast() -> #{base => 1, max => 2}.

transient_statuses_are_retried(Config) ->
    {S, Hits} = scripted([{503, [], <<"down">>}, {502, [], <<"bad">>}, {200, [], <<"ok">>}]),
    try
        C = erqwest:make_client(#{retry => fast()}),
        {ok, #{status := 200, body := <<"ok">>, attempts := 3}} =
            engine_req(Config, C, #{url => url(S, "/")}),
        ?assertEqual(3, Hits()),
        %% The retried answers' connections were kept (their bodies read).
        ?assert(erqwest_test_server:connections(S) =< 2)
    after erqwest_test_server:stop(S)
    end.

retry_after_is_waited(Config) ->
    {S, Hits} = scripted([{429, [{"retry-after", "1"}], <<>>}, {200, [], <<"ok">>}]),
    try
        C = erqwest:make_client(#{retry => fast()}),
        T0 = erlang:monotonic_time(millisecond),
        {ok, #{status := 200, attempts := 2}} = engine_req(Config, C, #{url => url(S, "/")}),
        ?assert(erlang:monotonic_time(millisecond) - T0 >= 1000),
        ?assertEqual(2, Hits())
    after erqwest_test_server:stop(S)
    end.

refused_is_retried(Config) ->
    {ok, L} = gen_tcp:listen(0, [{ip, {127, 0, 0, 1}}]),
    {ok, Port} = inet:port(L),
    ok = gen_tcp:close(L),
    Url = iolist_to_binary(["http://127.0.0.1:", integer_to_list(Port), "/"]),
    C = erqwest:make_client(#{retry => (fast())#{max_retries => 2}}),
    {error, #{code := connect, attempts := 3}} = engine_req(Config, C, #{url => Url}),
    %% Req's :safe_transient: refused is retried, by cause.
    C2 = erqwest:make_client(#{retry => (fast())#{errors => [refused]}}),
    {error, #{code := connect, attempts := 4}} = engine_req(Config, C2, #{url => Url}).

post_is_not_retried(Config) ->
    {S, Hits} = scripted([{503, [], <<"down">>}, {200, [], <<"ok">>}]),
    try
        C = erqwest:make_client(#{retry => fast()}),
        {ok, #{status := 503, attempts := 1}} =
            engine_req(Config, C, #{method => post, url => url(S, "/"), body => <<"x">>}),
        ?assertEqual(1, Hits())
    after erqwest_test_server:stop(S)
    end.

timeout_bounds_each_attempt(Config) ->
    {S, Hits} = scripted([{stall, 2000}, {200, [], <<"second">>}]),
    try
        C = erqwest:make_client(#{retry => fast()}),
        T0 = erlang:monotonic_time(millisecond),
        {ok, #{body := <<"second">>, attempts := 2}} =
            engine_req(Config, C, #{url => url(S, "/"), timeout => 300}),
        ?assert(erlang:monotonic_time(millisecond) - T0 < 1500),
        ?assertEqual(2, Hits())
    after erqwest_test_server:stop(S)
    end.

safe_transient_skips_put(Config) ->
    {S, Hits} = scripted([{503, [], <<>>}, {503, [], <<>>}, {200, [], <<"ok">>}]),
    try
        C = erqwest:make_client(#{retry => #{methods => [get, head], base => 1,
                                             errors => [timeout, refused, closed]}}),
        {ok, #{status := 503, attempts := 1}} =
            engine_req(Config, C, #{method => put, url => url(S, "/"), body => <<>>}),
        {ok, #{status := 200, attempts := 2}} = engine_req(Config, C, #{url => url(S, "/")}),
        ?assertEqual(3, Hits())
    after erqwest_test_server:stop(S)
    end.

redirect_then_retry_starts_over(Config) ->
    %% /start redirects to /next, which fails once: the retry starts again
    %% from /start, as reqwest's does.
    Counter = counters:new(1, []),
    Handler = fun(#{path := <<"/start">>}) -> {302, [{"location", "/next"}], <<>>};
                 (#{path := <<"/next">>}) ->
                      counters:add(Counter, 1, 1),
                      case counters:get(Counter, 1) of
                          1 -> {500, [], <<"once">>};
                          _ -> {200, [], <<"ok">>}
                      end
              end,
    {ok, S} = erqwest_test_server:start(Handler),
    try
        C = erqwest:make_client(#{retry => fast()}),
        {ok, #{status := 200, attempts := 2, url := U}} =
            engine_req(Config, C, #{url => url(S, "/start")}),
        ?assertEqual(url(S, "/next"), U),
        ?assertEqual([<<"/start">>, <<"/next">>, <<"/start">>, <<"/next">>],
                     [P || #{path := P} <- erqwest_test_server:requests(S)])
    after erqwest_test_server:stop(S)
    end.

%% Elixir clients retry by default: their requests must not leave the
%% scheduler engine for it.
retried_requests_take_the_scheduler_engine(_Config) ->
    with_held_server(<<"ok">>, fun(S) ->
        C = erqwest:make_client(#{retry => #{methods => [get, head],
                                             errors => [timeout, refused, closed]}}),
        ?assertMatch({ok, #{status := 200, attempts := 1}}, while_held(C, root_get(S), fun() -> ok end))
    end).

%% Issue 31: client_info/1 counted no request of the scheduler engine.
client_info_counts_scheduler_requests(_Config) ->
    with_held_server(<<"ok">>, fun(S) ->
        C = erqwest:make_client(),
        Host = iolist_to_binary(["127.0.0.1:", integer_to_list(erqwest_test_server:port(S))]),
        Counted = fun() ->
            ?assertMatch(#{in_flight := 1, hosts := #{Host := #{in_flight := 1}}},
                         erqwest:client_info(C))
        end,
        ?assertMatch({ok, _}, while_held(C, root_get(S), Counted)),
        ?assertMatch(#{in_flight := 0}, erqwest:client_info(C))
    end).

%%% divergences

https_proxy_from_the_environment_is_honoured(_Config) ->
    %% A "proxy" that records the CONNECT and refuses it: both engines
    %% must go through it for an HTTPS URL when HTTPS_PROXY says so. The
    %% variable is read from the OS environment (os:putenv does not reach
    %% it), so the requests run in a VM started with it.
    {ok, P} = erqwest_test_server:start(fun(_) -> {403, [], <<"no">>} end),
    try
        Paths = lists:append([["-pa", D] || D <- code:get_path()]),
        {ok, Peer, _} = peer:start_link(#{connection => standard_io, args => Paths,
                                       env => [{"HTTPS_PROXY", binary_to_list(url(P, ""))}]}),
        try
            {Scheduler, Runtime} = peer:call(Peer, ?MODULE, proxied_requests, [], 20000),
            ?assertMatch({error, #{code := _}}, Scheduler),
            ?assertEqual(Runtime, Scheduler)
        after
            peer:stop(Peer)
        end,
        ?assertMatch([#{method := <<"CONNECT">>, path := <<"127.0.0.1:9">>},
                      #{method := <<"CONNECT">>, path := <<"127.0.0.1:9">>}],
                     erqwest_test_server:requests(P))
    after
        erqwest_test_server:stop(P)
    end.

%% Run in the peer VM of the case above.
proxied_requests() ->
    {ok, _} = application:ensure_all_started(erqwest),
    C = erqwest:make_client(#{retry => false}),
    Target = <<"https://127.0.0.1:9/">>,
    {erqwest:get(C, Target), via_runtime(C, #{method => get, url => Target})}.

connect_goes_out_in_authority_form(_Config) ->
    with_server(fun(S) ->
        C = erqwest:make_client(),
        Port = integer_to_binary(erqwest_test_server:port(S)),
        _ = same(C, S, #{method => connect, url => url(S, "/some/path")}),
        [#{method := <<"CONNECT">>, path := Path} | _] =
            lists:reverse(erqwest_test_server:requests(S)),
        ?assertEqual(<<"127.0.0.1:", Port/binary>>, Path)
    end).

timeout_zero_fails_at_once_on_both_engines(_Config) ->
    with_server(fun(S) ->
        Reason = <<"error sending request for url (", (url(S, "/z"))/binary,
                   "): operation timed out">>,
        Want = {error, #{code => timeout, reason => Reason}},
        C = erqwest:make_client(),
        [?assertEqual(Want, R) || _ <- lists:seq(1, 20),
                                  R <- [erqwest:get(C, url(S, "/z"), #{timeout => 0}),
                                        via_runtime(C, #{method => get, url => url(S, "/z"),
                                                         timeout => 0})]],
        %% A client's timeout of 0 too.
        C0 = erqwest:make_client(#{timeout => 0}),
        ?assertEqual(Want, erqwest:get(C0, url(S, "/z#frag"))),
        ?assertEqual(Want, via_runtime(C0, #{method => get, url => url(S, "/z")})),
        ?assertEqual([], erqwest_test_server:requests(S))
    end).

read_timeout_after_the_head_is_the_same(_Config) ->
    %% The head and 3 bytes of a 10-byte body, then nothing.
    Stall = fun(_) -> {custom, fun(Sock, _Req) ->
        ok = gen_tcp:send(Sock, "HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc"),
        timer:sleep(1500),
        close
    end} end,
    {ok, S} = erqwest_test_server:start(Stall),
    try
        C = erqwest:make_client(#{read_timeout => 200}),
        Scheduler = erqwest:get(C, url(S, "/r")),
        Runtime = via_runtime(C, #{method => get, url => url(S, "/r")}),
        ct:log("~p~n~p", [Scheduler, Runtime]),
        ?assertMatch({error, #{code := timeout}}, Scheduler),
        ?assertEqual(Runtime, Scheduler)
    after
        erqwest_test_server:stop(S)
    end.

%%% cookies

cookie_handler(#{path := <<"/set/", Rest/binary>>}) ->
    {200, [{"set-cookie", <<Rest/binary, "; Path=/">>}], <<"set">>};
cookie_handler(#{path := <<"/hop/", Rest/binary>>}) ->
    {302, [{"set-cookie", <<Rest/binary, "; Path=/">>}, {"location", "/check"}], <<>>};
cookie_handler(#{headers := Hs}) ->
    {200, [], proplists:get_value(<<"cookie">>, Hs, <<"none">>)}.

with_cookie_server(Fun) ->
    {ok, S} = erqwest_test_server:start(fun cookie_handler/1),
    try Fun(S) after erqwest_test_server:stop(S) end.

a_cookie_set_on_either_engine_is_sent_by_both(_Config) ->
    with_cookie_server(fun(S) ->
        C = erqwest:make_client(#{cookie_store => true}),
        {ok, #{body := <<"set">>}} = erqwest:get(C, url(S, "/set/a=1")),
        {ok, #{body := <<"a=1">>}} = via_runtime(C, #{method => get, url => url(S, "/check")}),
        {ok, _} = via_runtime(C, #{method => get, url => url(S, "/set/b=2")}),
        {ok, #{body := B}} = erqwest:get(C, url(S, "/check")),
        ?assertEqual([<<"a=1">>, <<"b=2">>], lists:sort(binary:split(B, <<"; ">>, [global]))),
        %% Another client has its own jar.
        {ok, #{body := <<"none">>}} = erqwest:get(erqwest:make_client(#{cookie_store => true}),
                                                  url(S, "/check"))
    end).

cookies_go_out_the_same_on_both_engines(_Config) ->
    with_cookie_server(fun(S) ->
        C = erqwest:make_client(#{cookie_store => true}),
        {ok, _} = erqwest:get(C, url(S, "/set/k=v")),
        {ok, #{body := <<"k=v">>}} = same(C, S, #{url => url(S, "/check"),
                                                  headers => [{<<"x-a">>, <<"1">>}]})
    end).

cookies_of_a_redirect_hop_are_kept(_Config) ->
    with_cookie_server(fun(S) ->
        lists:foreach(
          fun(Send) ->
              C = erqwest:make_client(#{cookie_store => true}),
              %% The 302 sets it, the hop it leads to sends it.
              {ok, #{body := <<"h=1">>}} = Send(C, #{method => get, url => url(S, "/hop/h=1")})
          end, [fun erqwest:req/2, fun via_runtime/2])
    end).

a_cookie_header_of_the_request_wins(_Config) ->
    with_cookie_server(fun(S) ->
        C = erqwest:make_client(#{cookie_store => true}),
        {ok, _} = erqwest:get(C, url(S, "/set/jar=1")),
        Mine = #{method => get, url => url(S, "/check"),
                 headers => [{<<"cookie">>, <<"mine=2">>}]},
        {ok, #{body := <<"mine=2">>}} = erqwest:req(C, Mine),
        {ok, #{body := <<"mine=2">>}} = via_runtime(C, Mine)
    end).

cookie_clients_take_the_scheduler_engine(_Config) ->
    with_held_server(<<"ok">>, fun(S) ->
        C = erqwest:make_client(#{cookie_store => true}),
        ?assertMatch({ok, #{status := 200}}, while_held(C, root_get(S), fun() -> ok end))
    end).

%%% reason texts

reason_text_cases() ->
    %% These differed before (the scheduler engine's own words).
    [reason_text_of_a_name_that_does_not_exist_is_the_same_on_both_engines,
     reason_text_of_a_connect_timeout_is_the_same_on_both_engines,
     reason_text_of_a_tls_connect_timeout_is_the_same_on_both_engines,
     reason_text_of_a_timeout_in_the_body_is_the_same_on_both_engines,
     reason_text_of_a_corrupt_gzip_body_is_the_same_on_both_engines,
     reason_text_of_a_close_before_the_answer_is_the_same_on_both_engines,
     reason_text_of_a_close_in_the_head_is_the_same_on_both_engines,
     reason_text_of_a_close_in_the_body_is_the_same_on_both_engines,
     reason_text_of_a_close_in_a_large_body_is_the_same_on_both_engines,
     reason_text_of_a_malformed_status_line_is_the_same_on_both_engines,
     reason_text_of_a_malformed_header_is_the_same_on_both_engines,
     reason_text_of_an_invalid_chunk_is_the_same_on_both_engines,
     reason_text_of_a_head_too_large_is_the_same_on_both_engines,
     reason_text_of_too_many_headers_is_the_same_on_both_engines,
     %% These were the same already; kept so that they stay so.
     reason_text_of_a_refused_connect_is_the_same_on_both_engines,
     reason_text_of_a_stalled_handshake_is_the_same_on_both_engines,
     reason_text_of_a_timeout_before_the_head_is_the_same_on_both_engines,
     reason_text_of_a_read_timeout_before_the_head_is_the_same_on_both_engines,
     reason_text_of_too_many_redirects_is_the_same_on_both_engines,
     reason_text_of_a_redirect_loop_is_the_same_on_both_engines,
     reason_text_of_a_redirect_to_another_scheme_is_the_same_on_both_engines,
     an_invalid_location_is_not_followed_on_both_engines,
     reason_text_of_an_unknown_ca_is_the_same_on_both_engines,
     reason_text_of_a_wrong_host_name_is_the_same_on_both_engines,
     reason_text_of_an_expired_certificate_is_the_same_on_both_engines,
     reason_text_of_a_server_not_speaking_tls_is_the_same_on_both_engines,
     reason_text_of_body_too_large_is_the_same_on_both_engines,
     reason_text_of_an_invalid_url_is_the_same_on_both_engines,
     reason_text_of_an_unsupported_scheme_is_the_same_on_both_engines,
     reason_text_of_https_only_is_the_same_on_both_engines,
     %% The cause under the text, which retries of `closed' read.
     a_cut_body_and_a_closed_handshake_are_retried_alike_on_both_engines].

%% Sends `Opts' through both engines (the scheduler engine first) and
%% asserts the same error with code `Code'; returns its reason. Every
%% call is bounded: the runtime's by via_runtime/2, the scheduler's by
%% the timeouts each case sets.
same_error(C, Opts0, Code) ->
    Opts = maps:merge(#{method => get}, Opts0),
    T0 = erlang:monotonic_time(millisecond),
    Scheduler = erqwest:req(C, Opts),
    T1 = erlang:monotonic_time(millisecond),
    Runtime = via_runtime(C, Opts),
    ct:log("~p ms~nSCHED ~ts~nRUNTIME ~ts", [T1 - T0, show(Scheduler), show(Runtime)]),
    %% Ended by the failure, well before the client's 5 s timeout.
    ?assert(T1 - T0 < 3000),
    ?assertMatch({error, #{code := Code}}, Runtime),
    ?assertEqual(Runtime, Scheduler),
    {error, #{reason := Reason}} = Runtime,
    Reason.

show({error, #{code := Code, reason := R}}) -> io_lib:format("~p: ~ts", [Code, R]);
show(Other) -> io_lib:format("~0p", [Other]).

%% A client that neither retries nor waits long.
quick(Extra) ->
    erqwest:make_client(maps:merge(#{retry => false, timeout => 5000}, Extra)).

%% A hostile server running `Script' on each connection, for `Fun(S)'.
with_hostile(Script, Fun) ->
    {ok, S} = erqwest_hostile_server:start(Script),
    try Fun(S) after erqwest_hostile_server:stop(S) end.

%% A server that reads a request and answers it with `Bytes', then
%% closes; asked by a client with a timeout, one with none, and with a
%% request's own timeout (reqwest words a body error differently under a
%% timeout). The server always closes, so each call is bounded.
answering(Bytes, Code) ->
    with_hostile(erqwest_hostile_server:reply_close(Bytes), fun(S) ->
        Url = erqwest_hostile_server:url(S, "/x"),
        same_error(quick(#{}), #{url => Url}, Code),
        Untimed = erqwest:make_client(#{retry => false}),
        same_error(Untimed, #{url => Url}, Code),
        same_error(Untimed, #{url => Url, timeout => 5000}, Code)
    end).

closed_port_url() ->
    {ok, L} = gen_tcp:listen(0, [{ip, {127, 0, 0, 1}}]),
    {ok, Port} = inet:port(L),
    ok = gen_tcp:close(L),
    iolist_to_binary(["http://127.0.0.1:", integer_to_list(Port), "/x"]).

reason_text_of_a_refused_connect_is_the_same_on_both_engines(_Config) ->
    same_error(quick(#{}), #{url => closed_port_url()}, connect).

reason_text_of_a_name_that_does_not_exist_is_the_same_on_both_engines(_Config) ->
    same_error(quick(#{}), #{url => <<"http://no-such-host.invalid/x">>}, connect).

%% A listener whose accept queue is full and that never accepts: a
%% further SYN is dropped, so a connect to it never completes.
reason_text_of_a_connect_timeout_is_the_same_on_both_engines(_Config) ->
    with_full_backlog(fun(Port) ->
        connect_timed_out(iolist_to_binary(["http://127.0.0.1:", integer_to_list(Port), "/x"]))
    end).

%% The same over HTTPS: the connect is made on the runtime there.
reason_text_of_a_tls_connect_timeout_is_the_same_on_both_engines(_Config) ->
    with_full_backlog(fun(Port) ->
        connect_timed_out(iolist_to_binary(["https://127.0.0.1:", integer_to_list(Port), "/x"]))
    end).

%% reqwest times a connect twice with the same `connect_timeout': its own
%% timer around the whole connect ("operation timed out") and hyper-util's
%% around the TCP connect ("tcp connect error: deadline has elapsed").
%% Both fire in the same tick as a rule, and then hyper-util's is the one
%% seen, but when they fall in two ticks reqwest's wins (1 run in 40 on a
%% quiet machine). The scheduler engine gives hyper-util's every time:
%% the runtime engine must give that text too, or the other one of the
%% race and then that text on one of the next few tries.
connect_timed_out(Url) ->
    C = quick(#{connect_timeout => 200}),
    Reason = same_text_as_a_race(C, #{method => get, url => Url}, 5),
    ?assertEqual(<<"error sending request for url (", Url/binary,
                   "): client error (Connect): tcp connect error: deadline has elapsed">>,
                 Reason).

same_text_as_a_race(C, Opts, Tries) ->
    {error, #{code := timeout, reason := Reason}} = Scheduler = erqwest:req(C, Opts),
    Runtime = [via_runtime(C, Opts) || _ <- lists:seq(1, Tries)],
    ct:log("SCHED ~ts~nRUNTIME ~ts", [show(Scheduler), [[show(R), "\n"] || R <- Runtime]]),
    Other = binary:replace(Reason, <<"tcp connect error: deadline has elapsed">>,
                           <<"operation timed out">>),
    [?assert(lists:member(R, [Scheduler, {error, #{code => timeout, reason => Other}}]))
     || R <- Runtime],
    ?assert(lists:member(Scheduler, Runtime)),
    Reason.

with_full_backlog(Fun) ->
    {ok, L} = gen_tcp:listen(0, [{ip, {127, 0, 0, 1}}, {backlog, 0}]),
    {ok, Port} = inet:port(L),
    Fill = fun Fill(Acc) ->
        case gen_tcp:connect({127, 0, 0, 1}, Port, [], 200) of
            {ok, Sock} when length(Acc) < 16 -> Fill([Sock | Acc]);
            {ok, Sock} -> [Sock | Acc];
            {error, timeout} -> Acc
        end
    end,
    Socks = Fill([]),
    try
        Fun(Port)
    after
        [gen_tcp:close(S) || S <- Socks],
        gen_tcp:close(L)
    end.

reason_text_of_a_timeout_before_the_head_is_the_same_on_both_engines(_Config) ->
    Silent = fun(Conn) -> _ = erqwest_hostile_server:recv_request(Conn), timer:sleep(3000) end,
    with_hostile(Silent, fun(S) ->
        same_error(quick(#{}), #{url => erqwest_hostile_server:url(S, "/x"), timeout => 200},
                   timeout)
    end).

reason_text_of_a_read_timeout_before_the_head_is_the_same_on_both_engines(_Config) ->
    Silent = fun(Conn) -> _ = erqwest_hostile_server:recv_request(Conn), timer:sleep(3000) end,
    with_hostile(Silent, fun(S) ->
        same_error(quick(#{read_timeout => 200}), #{url => erqwest_hostile_server:url(S, "/x")},
                   timeout)
    end).

%% The request's own timeout, passed while the body is still coming.
reason_text_of_a_timeout_in_the_body_is_the_same_on_both_engines(_Config) ->
    Stall = fun(Conn) ->
        {ok, _, Conn1} = erqwest_hostile_server:recv_request(Conn),
        erqwest_hostile_server:send(Conn1, <<"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc">>),
        timer:sleep(3000)
    end,
    with_hostile(Stall, fun(S) ->
        same_error(quick(#{}), #{url => erqwest_hostile_server:url(S, "/x"), timeout => 300},
                   timeout)
    end).

reason_text_of_a_corrupt_gzip_body_is_the_same_on_both_engines(_Config) ->
    answering(<<"HTTP/1.1 200 OK\r\ncontent-encoding: gzip\r\ncontent-length: 9\r\n\r\n",
                "not gzip!">>, body).

reason_text_of_a_close_before_the_answer_is_the_same_on_both_engines(_Config) ->
    answering(<<>>, request).

reason_text_of_a_close_in_the_head_is_the_same_on_both_engines(_Config) ->
    answering(<<"HTTP/1.1 200 OK\r\ncontent-le">>, request).

reason_text_of_a_close_in_the_body_is_the_same_on_both_engines(_Config) ->
    answering(<<"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc">>, body).

%% Over 1 MB announced: the body is read by a runtime task (bulk.rs).
reason_text_of_a_close_in_a_large_body_is_the_same_on_both_engines(_Config) ->
    answering([<<"HTTP/1.1 200 OK\r\ncontent-length: 2000000\r\n\r\n">>,
               binary:copy(<<"x">>, 1500000)], body).

reason_text_of_a_malformed_status_line_is_the_same_on_both_engines(_Config) ->
    answering(<<"HTTP/1.1 abc OK\r\ncontent-length: 0\r\n\r\n">>, request).

reason_text_of_a_malformed_header_is_the_same_on_both_engines(_Config) ->
    answering(<<"HTTP/1.1 200 OK\r\nno colon here\r\ncontent-length: 0\r\n\r\n">>, request).

reason_text_of_an_invalid_chunk_is_the_same_on_both_engines(_Config) ->
    answering(<<"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n">>,
              body).

reason_text_of_a_head_too_large_is_the_same_on_both_engines(_Config) ->
    Big = binary:copy(<<"a">>, 1 bsl 20),
    answering(<<"HTTP/1.1 200 OK\r\nx-big: ", Big/binary, "\r\ncontent-length: 0\r\n\r\n">>,
              request).

reason_text_of_too_many_headers_is_the_same_on_both_engines(_Config) ->
    Hs = [["x-h", integer_to_list(I), ": v\r\n"] || I <- lists:seq(1, 200)],
    answering(iolist_to_binary(["HTTP/1.1 200 OK\r\n", Hs, "content-length: 0\r\n\r\n"]),
              request).

%% /r/N redirects to /r/N+1 for ever.
redirecting(Location, Fun) ->
    Script = erqwest_hostile_server:reply_each(fun(#{target := T}) ->
        ["HTTP/1.1 302 Found\r\nlocation: ", Location(T), "\r\ncontent-length: 0\r\n\r\n"]
    end),
    with_hostile(Script, Fun).

reason_text_of_too_many_redirects_is_the_same_on_both_engines(_Config) ->
    Next = fun(<<"/r/", N/binary>>) -> ["/r/", integer_to_list(binary_to_integer(N) + 1)] end,
    redirecting(Next, fun(S) ->
        same_error(quick(#{follow_redirects => 3}),
                   #{url => erqwest_hostile_server:url(S, "/r/0")}, redirect)
    end).

reason_text_of_a_redirect_loop_is_the_same_on_both_engines(_Config) ->
    Loop = fun(<<"/a">>) -> "/b"; (_) -> "/a" end,
    redirecting(Loop, fun(S) ->
        same_error(quick(#{}), #{url => erqwest_hostile_server:url(S, "/a")}, redirect)
    end).

reason_text_of_a_redirect_to_another_scheme_is_the_same_on_both_engines(_Config) ->
    redirecting(fun(_) -> "ftp://127.0.0.1:1/x" end, fun(S) ->
        same_error(quick(#{}), #{url => erqwest_hostile_server:url(S, "/a")}, unknown)
    end).

%% Not an error: the 302 itself is the answer.
an_invalid_location_is_not_followed_on_both_engines(_Config) ->
    redirecting(fun(_) -> "http://[::1/x" end, fun(S) ->
        C = quick(#{}),
        Opts = #{method => get, url => erqwest_hostile_server:url(S, "/a")},
        Scheduler = erqwest:req(C, Opts),
        Runtime = via_runtime(C, Opts),
        ct:log("SCHED ~ts~nRUNTIME ~ts", [show(Scheduler), show(Runtime)]),
        ?assertMatch({ok, #{status := 302}}, Runtime),
        ?assertEqual(Runtime, Scheduler)
    end).

tls_url(Config, Cert, Key, Fun) ->
    Certs = ?config(certs, Config),
    {ok, S} = erqwest_test_server:start(fun(_) -> {200, [], <<"secure">>} end,
                                        #{tls => [{certfile, maps:get(Cert, Certs)},
                                                  {keyfile, maps:get(Key, Certs)}]}),
    try Fun(S) after erqwest_test_server:stop(S) end.

reason_text_of_an_unknown_ca_is_the_same_on_both_engines(Config) ->
    tls_url(Config, server_cert, server_key, fun(S) ->
        same_error(quick(#{}), #{url => url(S, "/x")}, connect)
    end).

reason_text_of_a_wrong_host_name_is_the_same_on_both_engines(Config) ->
    tls_url(Config, other_cert, other_key, fun(S) ->
        C = quick(#{additional_root_certs => [?config(ca_der, Config)]}),
        same_error(C, #{url => url(S, "/x")}, connect)
    end).

%% A certificate that expired, from a CA the client trusts.
reason_text_of_an_expired_certificate_is_the_same_on_both_engines(Config) ->
    tls_url(Config, expired_cert, expired_key, fun(S) ->
        C = quick(#{additional_root_certs => [?config(ca_der, Config)]}),
        Reason = same_error(C, #{url => url(S, "/x")}, connect),
        ?assertNotEqual(nomatch, binary:match(Reason, <<"Expired">>))
    end).

reason_text_of_a_server_not_speaking_tls_is_the_same_on_both_engines(_Config) ->
    with_hostile(erqwest_hostile_server:after_hello(fun(Conn) ->
        erqwest_hostile_server:send(Conn, <<"HTTP/1.1 400 Bad Request\r\n\r\n">>)
    end), fun(S) ->
        same_error(quick(#{}), #{url => erqwest_hostile_server:url(S, "https", "/x")}, connect)
    end).

reason_text_of_body_too_large_is_the_same_on_both_engines(_Config) ->
    Body = binary:copy(<<"x">>, 5000),
    with_hostile(erqwest_hostile_server:reply(
                   [<<"HTTP/1.1 200 OK\r\ncontent-length: 5000\r\n\r\n">>, Body]), fun(S) ->
        same_error(quick(#{max_body => 100}), #{url => erqwest_hostile_server:url(S, "/x")},
                   body_too_large)
    end).

reason_text_of_an_invalid_url_is_the_same_on_both_engines(_Config) ->
    C = quick(#{}),
    lists:foreach(fun(U) -> same_error(C, #{url => U}, url) end,
                  [<<"not a url">>, <<"http://">>, <<"http://exa mple.com/">>,
                   <<"http://host:99999/">>]).

reason_text_of_an_unsupported_scheme_is_the_same_on_both_engines(_Config) ->
    same_error(quick(#{}), #{url => <<"ftp://127.0.0.1:1/x">>}, url).

reason_text_of_https_only_is_the_same_on_both_engines(_Config) ->
    same_error(quick(#{https_only => true}), #{url => closed_port_url()}, unknown).

%% Req's `:safe_transient' retries a closed connection: neither engine
%% counts a body cut off or a TLS handshake the server closed as one (the
%% scheduler engine's texts are built apart from its causes, reasons.rs).
a_cut_body_and_a_closed_handshake_are_retried_alike_on_both_engines(_Config) ->
    C = erqwest:make_client(#{retry => #{methods => [get], base => 1, errors => [closed]},
                              timeout => 5000}),
    with_hostile(erqwest_hostile_server:reply_close(
                   <<"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc">>), fun(S) ->
        same_error(C, #{url => erqwest_hostile_server:url(S, "/x")}, body)
    end),
    with_hostile(erqwest_hostile_server:after_hello(fun erqwest_hostile_server:close/1), fun(S) ->
        same_error(C, #{url => erqwest_hostile_server:url(S, "https", "/x")}, connect)
    end).

%% A server that takes the ClientHello and says nothing: the request's
%% timeout, then the connect timeout, passes in the handshake.
reason_text_of_a_stalled_handshake_is_the_same_on_both_engines(_Config) ->
    Mute = erqwest_hostile_server:after_hello(fun(_) -> timer:sleep(3000) end),
    with_hostile(Mute, fun(S) ->
        Url = erqwest_hostile_server:url(S, "https", "/x"),
        same_error(quick(#{}), #{url => Url, timeout => 200}, timeout),
        same_error(quick(#{connect_timeout => 200}), #{url => Url}, timeout)
    end).
