%% `max_body': the most a complete response body may hold after
%% decompression. Every case runs on both engines: the scheduler engine
%% (erqwest:req/2 on a plain client) and the runtime engine (the same
%% request through erqwest_async), and both must give the same answer.
-module(erqwest_max_body_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-compile([export_all, nowarn_export_all]).

-define(MiB, (1 bsl 20)).
-define(GiB, (1 bsl 30)).

all() ->
    [{group, scheduler}, {group, runtime}, {group, options}].

groups() ->
    Cases = [at_the_limit_is_answered, one_byte_over_is_body_too_large,
             announced_length_over_the_limit_fails_unread,
             chunked_body_over_the_limit, request_option_overrides_client,
             infinity_lifts_the_limit, gzip_within_the_limit_is_decoded,
             gzip_bomb_stops_at_the_limit_with_bounded_memory,
             gzip_bomb_stops_at_the_default_limit,
             streamed_bodies_are_not_limited,
             the_connection_is_closed_not_reused],
    [{scheduler, [], Cases}, {runtime, [], Cases},
     {options, [], [bad_values_are_badarg, elixir_style_error_fields]}].

suite() -> [{timetrap, {seconds, 60}}].

init_per_suite(Config) ->
    {ok, _} = application:ensure_all_started(erqwest),
    [{bomb, bomb(?GiB + ?MiB)}, {small_bomb, bomb(256 * ?MiB)} | Config].

end_per_suite(_Config) ->
    application:stop(erqwest).

init_per_group(Engine, Config) when Engine =:= scheduler; Engine =:= runtime ->
    [{engine, Engine} | Config];
init_per_group(_, Config) ->
    Config.

end_per_group(_, _Config) ->
    ok.

%%% helpers

%% `Size' zero bytes, gzipped a mebibyte at a time (the test never holds
%% them whole): about a thousandth of `Size'.
bomb(Size) ->
    Z = zlib:open(),
    ok = zlib:deflateInit(Z, best_compression, deflated, 31, 8, default),
    Zeros = <<0:(?MiB * 8)>>,
    Parts = [zlib:deflate(Z, Zeros) || _ <- lists:seq(1, Size div ?MiB)],
    Last = zlib:deflate(Z, <<0:((Size rem ?MiB) * 8)>>, finish),
    ok = zlib:deflateEnd(Z),
    zlib:close(Z),
    iolist_to_binary([Parts, Last]).

handler(#{path := <<"/sized/", N/binary>>}) ->
    {200, [], binary:copy(<<"b">>, binary_to_integer(N))};
handler(#{path := <<"/chunked/", N/binary>>}) ->
    %% N chunks of 64 KB, no length.
    Chunk = binary:copy(<<"c">>, 65536),
    {raw, ["HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n",
           erqwest_test_server:chunked(lists:duplicate(binary_to_integer(N), Chunk))]};
handler(#{path := <<"/gzip">>}) ->
    {200, [{"content-encoding", "gzip"}], zlib:gzip(binary:copy(<<"z">>, 100000))};
handler(#{path := <<"/bomb">>}) ->
    {200, [{"content-encoding", "gzip"}], persistent_term:get({?MODULE, bomb})};
handler(#{path := <<"/small_bomb">>}) ->
    {200, [{"content-encoding", "gzip"}], persistent_term:get({?MODULE, small_bomb})};
handler(_) ->
    {200, [], <<"ok">>}.

with_server(Config, Fun) ->
    persistent_term:put({?MODULE, bomb}, ?config(bomb, Config)),
    persistent_term:put({?MODULE, small_bomb}, ?config(small_bomb, Config)),
    {ok, S} = erqwest_test_server:start(fun handler/1),
    try Fun(S) after erqwest_test_server:stop(S) end.

url(S, Path) -> erqwest_test_server:url(S, Path).

%% The answer of the group's engine; a hang fails the case instead of the
%% suite (each request also has a timeout).
req(Config, C, Opts0) ->
    Opts = maps:merge(#{method => get, timeout => 30000}, Opts0),
    case ?config(engine, Config) of
        scheduler ->
            erqwest:req(C, Opts);
        runtime ->
            Ref = make_ref(),
            _ = erqwest_async:req(C, self(), Ref, Opts),
            receive
                {erqwest_response, Ref, reply, Resp} -> {ok, Resp};
                {erqwest_response, Ref, error, Err} -> {error, Err}
            after 40000 -> error(no_answer)
            end
    end.

too_large(Limit, {error, #{code := body_too_large, limit := L, reason := R}}) ->
    ?assertEqual(Limit, L),
    ?assertMatch({match, _}, re:run(R, integer_to_binary(Limit))),
    ok;
too_large(Limit, Other) ->
    ct:fail({expected_body_too_large, Limit, Other}).

client(Opts) -> erqwest:make_client(Opts#{proxy => no_proxy}).

%%% cases

at_the_limit_is_answered(Config) ->
    with_server(Config, fun(S) ->
        C = client(#{max_body => 1000}),
        {ok, #{status := 200, body := B}} = req(Config, C, #{url => url(S, "/sized/1000")}),
        ?assertEqual(1000, byte_size(B))
    end).

one_byte_over_is_body_too_large(Config) ->
    with_server(Config, fun(S) ->
        C = client(#{max_body => 1000}),
        too_large(1000, req(Config, C, #{url => url(S, "/sized/1001")})),
        %% The client still works afterwards.
        {ok, #{body := <<"ok">>}} = req(Config, C, #{url => url(S, "/")})
    end).

announced_length_over_the_limit_fails_unread(Config) ->
    %% Announces 1 GiB, sends 3 MB and stalls: the answer comes at the
    %% head, not after a read timeout.
    Stall = fun(_) ->
        {custom, fun(Sock, _Req) ->
            _ = gen_tcp:send(Sock, ["HTTP/1.1 200 OK\r\ncontent-length: 1073741824\r\n\r\n",
                                    binary:copy(<<"x">>, 3 * ?MiB)]),
            timer:sleep(6000),
            close
        end}
    end,
    {ok, S} = erqwest_test_server:start(Stall),
    try
        C = client(#{max_body => ?MiB}),
        T0 = erlang:monotonic_time(millisecond),
        too_large(?MiB, req(Config, C, #{url => url(S, "/"), timeout => 10000})),
        ?assert(erlang:monotonic_time(millisecond) - T0 < 5000)
    after
        erqwest_test_server:stop(S)
    end.

chunked_body_over_the_limit(Config) ->
    with_server(Config, fun(S) ->
        C = client(#{max_body => 4 * ?MiB}),
        %% 4 MB exactly fits; 4 MB and 64 KB does not.
        {ok, #{body := B}} = req(Config, C, #{url => url(S, "/chunked/64")}),
        ?assertEqual(4 * ?MiB, byte_size(B)),
        too_large(4 * ?MiB, req(Config, C, #{url => url(S, "/chunked/65")}))
    end).

request_option_overrides_client(Config) ->
    with_server(Config, fun(S) ->
        C = client(#{max_body => 10}),
        {ok, #{body := B}} = req(Config, C, #{url => url(S, "/sized/500"), max_body => 500}),
        ?assertEqual(500, byte_size(B)),
        C2 = client(#{}),
        too_large(499, req(Config, C2, #{url => url(S, "/sized/500"), max_body => 499}))
    end).

infinity_lifts_the_limit(Config) ->
    with_server(Config, fun(S) ->
        C = client(#{max_body => 0}),
        too_large(0, req(Config, C, #{url => url(S, "/sized/1")})),
        {ok, #{body := <<>>}} = req(Config, C, #{url => url(S, "/sized/0")}),
        {ok, #{body := B}} = req(Config, C, #{url => url(S, "/sized/3000"), max_body => infinity}),
        ?assertEqual(3000, byte_size(B))
    end).

gzip_within_the_limit_is_decoded(Config) ->
    with_server(Config, fun(S) ->
        %% The limit counts decoded bytes: 100,000 of them fit in 100,000,
        %% not in 99,999, though the wire carries a few hundred.
        C = client(#{max_body => 100000}),
        {ok, #{body := B}} = req(Config, C, #{url => url(S, "/gzip")}),
        ?assertEqual(binary:copy(<<"z">>, 100000), B),
        too_large(99999, req(Config, C, #{url => url(S, "/gzip"), max_body => 99999}))
    end).

gzip_bomb_stops_at_the_limit_with_bounded_memory(Config) ->
    with_server(Config, fun(S) ->
        C = client(#{max_body => 16 * ?MiB}),
        Before = rss(),
        too_large(16 * ?MiB, req(Config, C, #{url => url(S, "/small_bomb")})),
        Grown = rss() - Before,
        ct:log("RSS grew by ~p MB", [Grown div ?MiB]),
        %% 256 MB inflated in full would show; the limit keeps it near 16.
        ?assert(Grown < 150 * ?MiB)
    end).

gzip_bomb_stops_at_the_default_limit(Config) ->
    with_server(Config, fun(S) ->
        C = client(#{}),
        too_large(?GiB, req(Config, C, #{url => url(S, "/bomb")}))
    end).

streamed_bodies_are_not_limited(Config) ->
    with_server(Config, fun(S) ->
        C = client(#{max_body => 10}),
        {ok, #{body := H}} = erqwest:get(C, url(S, "/sized/5000"), #{response_body => stream}),
        ?assertEqual(5000, byte_size(read_all(H, <<>>)))
    end).

read_all(H, Acc) ->
    case erqwest:read(H) of
        {more, B} -> read_all(H, <<Acc/binary, B/binary>>);
        {ok, B} -> <<Acc/binary, B/binary>>
    end.

the_connection_is_closed_not_reused(Config) ->
    with_server(Config, fun(S) ->
        C = client(#{max_body => 100}),
        {ok, _} = req(Config, C, #{url => url(S, "/sized/10")}),
        ?assertEqual(1, erqwest_test_server:connections(S)),
        too_large(100, req(Config, C, #{url => url(S, "/sized/200000")})),
        %% The body was left unread: its connection cannot be reused.
        ok = erqwest_test_server:wait_closed(S, 0),
        {ok, _} = req(Config, C, #{url => url(S, "/sized/10")}),
        ?assertEqual(2, erqwest_test_server:connections(S))
    end).

bad_values_are_badarg(_Config) ->
    ?assertError(badarg, erqwest:make_client(#{max_body => -1})),
    ?assertError(badarg, erqwest:make_client(#{max_body => lots})),
    C = erqwest:make_client(),
    ?assertError(badarg, erqwest:get(C, <<"http://127.0.0.1:1/">>, #{max_body => 1.5})),
    ?assertError(badarg, erqwest:get(C, <<"http://127.0.0.1:1/">>, #{max_body => -3})).

elixir_style_error_fields(Config) ->
    %% The err() map carries the limit beside code and reason, nothing else.
    with_server(Config, fun(S) ->
        C = client(#{max_body => 5}),
        {error, Err} = erqwest:get(C, url(S, "/sized/6")),
        ?assertEqual([code, limit, reason], lists:sort(maps:keys(Err)))
    end).

%% The VM's resident memory, in bytes.
rss() ->
    Out = os:cmd("ps -o rss= -p " ++ os:getpid()),
    list_to_integer(string:trim(Out)) * 1024.
