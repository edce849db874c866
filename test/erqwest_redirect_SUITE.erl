%% The connections a followed redirect uses, the same on both engines
%% (issue 31: the scheduler engine dropped every redirect's connection, 4
%% TCP connections for 3 hops where reqwest used 1). A 3xx whose body is
%% read and whose connection may be kept carries the next hop to its
%% origin; one that says `connection: close', or whose body is not all
%% read, does not; another origin has connections of its own; and a
%% server that closes after the 3xx without saying so still gets the next
%% hop on a new connection. Every case runs in the `scheduler' and the
%% `runtime' group (erqwest_engine), with the server counting accepts.
-module(erqwest_redirect_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-compile([export_all, nowarn_export_all]).

all() ->
    [{group, scheduler}, {group, runtime}].

groups() ->
    [{scheduler, [], cases()},
     {runtime, [], cases()}].

cases() ->
    [followed_redirect_keeps_its_connection, a_redirect_saying_close_takes_a_new_connection,
     a_redirect_body_left_unread_takes_a_new_connection,
     a_large_redirect_body_takes_a_new_connection,
     a_redirect_to_another_port_uses_its_own_connection,
     a_server_closing_after_the_redirect_still_answers].

suite() -> [{timetrap, {seconds, 60}}].

init_per_suite(Config) ->
    {ok, _} = application:ensure_all_started(erqwest),
    Config.

end_per_suite(_Config) ->
    application:stop(erqwest).

init_per_group(G, Config) ->
    [{engine, G} | Config].

end_per_group(_, _Config) ->
    ok.

%%% helpers

%% `/hop/N' redirects to `/hop/N-1' (with a short body), `/hop/0' answers.
handler(#{path := <<"/hop/0">>}) ->
    {200, [], <<"arrived">>};
handler(#{path := <<"/hop/", N/binary>>}) ->
    Next = integer_to_binary(binary_to_integer(N) - 1),
    {302, [{"location", <<"/hop/", Next/binary>>}], <<"moved on">>};
handler(#{path := <<"/close">>}) ->
    {302, [{"location", "/hop/0"}, {"connection", "close"}], <<"moved">>};
handler(#{path := <<"/large">>}) ->
    {302, [{"location", "/hop/0"}], binary:copy(<<"m">>, 256 * 1024)};
handler(#{path := <<"/partial">>}) ->
    %% Announces 100 bytes, sends 7, then holds the rest back.
    {custom, fun(Sock, _) ->
        ok = gen_tcp:send(Sock, <<"HTTP/1.1 302 Found\r\nlocation: /hop/0\r\n"
                                  "content-length: 100\r\n\r\npartial">>),
        timer:sleep(3000),
        close
    end};
handler(#{path := <<"/silent">>}) ->
    %% Closes right after the 3xx, without `connection: close'.
    {raw_close, <<"HTTP/1.1 302 Found\r\nlocation: /hop/0\r\ncontent-length: 0\r\n\r\n">>};
handler(_) ->
    {404, [], <<>>}.

with_server(Fun) ->
    {ok, S} = erqwest_test_server:start(fun handler/1),
    try Fun(S) after erqwest_test_server:stop(S) end.

get(Config, C, Url) ->
    erqwest_engine:req(erqwest_engine:engine(Config), C, #{method => get, url => Url}).

client(Config) -> erqwest_engine:client(erqwest_engine:engine(Config), #{}).

url(S, Path) -> erqwest_test_server:url(S, Path).

%% The connection numbers the server's requests came on, in order.
conns(S) -> [N || #{conn := N} <- erqwest_test_server:requests(S)].

%%% cases

followed_redirect_keeps_its_connection(Config) ->
    with_server(fun(S) ->
        C = client(Config),
        {ok, #{status := 200, body := <<"arrived">>, url := Final}} =
            get(Config, C, url(S, "/hop/2")),
        ?assertEqual(url(S, "/hop/0"), Final),
        ?assertEqual(3, length(erqwest_test_server:requests(S))),
        ?assertEqual(1, erqwest_test_server:connections(S)),
        %% And the next request finds it in the pool.
        {ok, #{status := 200}} = get(Config, C, url(S, "/hop/1")),
        ?assertEqual(1, erqwest_test_server:connections(S))
    end).

a_redirect_saying_close_takes_a_new_connection(Config) ->
    with_server(fun(S) ->
        {ok, #{status := 200}} = get(Config, client(Config), url(S, "/close")),
        [A, B] = conns(S),
        ?assertNotEqual(A, B),
        ?assertEqual(2, erqwest_test_server:connections(S))
    end).

%% Only part of the 3xx's body has come: its connection is never reused,
%% and the next hop does not wait for the rest.
a_redirect_body_left_unread_takes_a_new_connection(Config) ->
    with_server(fun(S) ->
        T0 = erlang:monotonic_time(millisecond),
        {ok, #{status := 200}} = get(Config, client(Config), url(S, "/partial")),
        ?assert(erlang:monotonic_time(millisecond) - T0 < 2500),
        [A, B] = conns(S),
        ?assertNotEqual(A, B)
    end).

%% A 256 KB body is more than either engine reads to keep a connection.
a_large_redirect_body_takes_a_new_connection(Config) ->
    with_server(fun(S) ->
        {ok, #{status := 200}} = get(Config, client(Config), url(S, "/large")),
        [A, B] = conns(S),
        ?assertNotEqual(A, B)
    end).

%% A hop to another origin goes on that origin's connection; each
%% origin's connection is pooled for the next request to it.
a_redirect_to_another_port_uses_its_own_connection(Config) ->
    {ok, Far} = erqwest_test_server:start(fun handler/1),
    FarUrl = url(Far, "/hop/1"),
    Near = fun(#{path := <<"/away">>}) -> {302, [{"location", FarUrl}], <<"there">>};
              (R) -> handler(R)
           end,
    {ok, S} = erqwest_test_server:start(Near),
    try
        C = client(Config),
        {ok, #{status := 200, url := U1}} = get(Config, C, url(S, "/away")),
        ?assertEqual(url(Far, "/hop/0"), U1),
        {ok, #{status := 200}} = get(Config, C, url(S, "/away")),
        ?assertEqual([1, 1], conns(S)),
        ?assertEqual(4, length(erqwest_test_server:requests(Far))),
        ?assertEqual(1, erqwest_test_server:connections(Far)),
        ?assertEqual(1, erqwest_test_server:connections(S))
    after
        erqwest_test_server:stop(S),
        erqwest_test_server:stop(Far)
    end.

%% The server closes after the 3xx without saying so. The scheduler
%% engine reads an idle connection before it reuses it, sees the close,
%% and sends the next hop on a new connection: it answers. reqwest's pool
%% may hand the closing connection to the hop at once, which then fails
%% ("connection reset by peer", or "closed before message completed":
%% hyper-util resends only a request it had not written), so on the
%% runtime engine the answer is the 200 or that `request' error; on both
%% it comes in bounded time, and nothing hangs.
a_server_closing_after_the_redirect_still_answers(Config) ->
    E = erqwest_engine:engine(Config),
    with_server(fun(S) ->
        Answers = [erqwest_engine:req(E, client(Config),
                                      #{method => get, url => url(S, "/silent"), timeout => 3000},
                                      4000)
                   || _ <- lists:seq(1, 5)],
        lists:foreach(fun(A) -> silent_answer(E, A) end, Answers),
        %% Every 3xx came on a connection of its own: none was reused
        %% after the server closed it.
        Silent = [N || #{conn := N, path := <<"/silent">>} <- erqwest_test_server:requests(S)],
        ?assertEqual(5, length(lists:usort(Silent)))
    end).

silent_answer(_, {ok, #{status := 200, body := <<"arrived">>}}) -> ok;
silent_answer(runtime, {error, #{code := request}}) -> ok;
silent_answer(E, Other) -> ct:fail({E, unexpected, Other}).
