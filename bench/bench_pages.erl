%% @doc `make bench-pages': a 100-page listing walked three ways, in one VM
%% against the in-BEAM test server (test/erqwest_test_server.erl).
%%
%% The server takes `BENCH_PAGE_MS' (default 20) ms per page and links to
%% the next one with an absolute `Link' URL; the caller spends as long on
%% each page (a `timer:sleep/1', standing for work on the items that waits
%% on something else, so that the two cores of a small machine are not
%% what is measured). Walks, in turn, `BENCH_PAGE_ROUNDS' (default 3)
%% times each, median reported:
%%
%% <ul>
%% <li>`hand loop': `erqwest:get/2', parse the Link header with `re',
%%   work, repeat: what users write today;</li>
%% <li>`pages, no prefetch': `erqwest_pages' with `prefetch => false';</li>
%% <li>`pages, prefetch': `erqwest_pages' as it comes.</li>
%% </ul>
%% The ratio of `pages, prefetch' to `hand loop' is the figure of merit:
%% about (server + caller) / max(server, caller) in the ideal, so 0.5.
-module(bench_pages).

-export([main/0]).

-define(PAGES, 100).

main() ->
    {ok, _} = application:ensure_all_started(erqwest),
    Ms = env_int("BENCH_PAGE_MS", 20),
    Rounds = env_int("BENCH_PAGE_ROUNDS", 3),
    {ok, S} = erqwest_test_server:start(handler(Ms)),
    First = erqwest_test_server:url(S, "/items?page=1"),
    C = erqwest:make_client(#{proxy => no_proxy}),
    Walks = [{"hand loop", fun() -> hand_loop(C, First, Ms, 0) end},
             {"pages, no prefetch", fun() -> pages(C, First, Ms, false) end},
             {"pages, prefetch", fun() -> pages(C, First, Ms, true) end}],
    %% One warm-up walk opens the connections.
    ?PAGES = hand_loop(C, First, Ms, 0),
    Times = [{Name, [time(Walk) || _ <- lists:seq(1, Rounds)]} || {Name, Walk} <- Walks],
    Medians = [{Name, median(Ts)} || {Name, Ts} <- Times],
    {_, Hand} = hd(Medians),
    io:format("~b pages, server ~b ms per page, caller ~b ms per page, ~b rounds "
              "(median; all rounds in ms)~n~n", [?PAGES, Ms, Ms, Rounds]),
    io:format("~-20s ~10s ~10s  ~s~n", ["walk", "ms", "vs hand", "rounds"]),
    [io:format("~-20s ~10b ~10.2f  ~w~n", [Name, Med, Med / Hand, proplists:get_value(Name, Times)])
     || {Name, Med} <- Medians],
    io:format("~ncores: ~b, load average: ~s~n",
              [erlang:system_info(logical_processors_available), loadavg()]),
    erqwest_test_server:stop(S),
    ok.

handler(Ms) ->
    fun(#{path := <<"/items?page=", N/binary>>, headers := Hs}) ->
        timer:sleep(Ms),
        K = binary_to_integer(N),
        Host = proplists:get_value(<<"host">>, Hs),
        Link = case K < ?PAGES of
            true -> [{"link", ["<http://", Host, "/items?page=", integer_to_list(K + 1),
                               ">; rel=\"next\""]}];
            false -> []
        end,
        {200, Link, binary:copy(<<"item,">>, 20)}
    end.

%% The loop people write by hand: one request after the other.
hand_loop(C, Url, Ms, N) ->
    {ok, #{status := 200, headers := Hs, body := Body}} = erqwest:get(C, Url),
    work(Body, Ms),
    Next = [U || {<<"link">>, V} <- Hs,
                 {match, [U]} <- [re:run(V, "<([^>]*)>\\s*;\\s*rel=\"?next\"?",
                                         [{capture, all_but_first, binary}])]],
    case Next of
        [U | _] -> hand_loop(C, U, Ms, N + 1);
        [] -> N + 1
    end.

pages(C, Url, Ms, Prefetch) ->
    P = erqwest_pages:new(C, #{method => get, url => Url}, #{prefetch => Prefetch}),
    {ok, N} = erqwest_pages:fold(fun(#{body := B}, N) -> work(B, Ms), N + 1 end, 0, P),
    N.

work(_Body, Ms) -> timer:sleep(Ms).

time(Walk) ->
    T0 = erlang:monotonic_time(millisecond),
    ?PAGES = Walk(),
    erlang:monotonic_time(millisecond) - T0.

median(L) -> lists:nth((length(L) + 1) div 2, lists:sort(L)).

loadavg() ->
    case file:read_file("/proc/loadavg") of
        {ok, B} -> string:trim(B);
        _ -> "?"
    end.

env_int(Var, Default) ->
    list_to_integer(os:getenv(Var, integer_to_list(Default))).
