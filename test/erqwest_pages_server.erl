%% @doc A paginated API for erqwest_pages_SUITE and the benchmark, on
%% erqwest_test_server: ten items, three per page (four pages), in every
%% pagination style. The path picks the style, the query the page:
%%
%% <ul>
%% <li>`/link?page=K': body `1,2,3', a relative `Link' (`link?page=2')</li>
%% <li>`/abs?page=K': absolute `Link' URLs</li>
%% <li>`/multi?page=K': two `Link' headers, several rels, commas and
%%   semicolons inside the targets</li>
%% <li>`/loop?page=K': page 2 links back to page 1</li>
%% <li>`/fail?page=K': page 3 is a 500</li>
%% <li>`/stall?page=K': page 2 takes 2 s</li>
%% <li>`/slow?page=K&ms=N': every page takes N ms</li>
%% <li>`/hold?page=K': page 2 is held until the client closes the
%%   connection; the test process gets `{held, Pid}' and `{dropped, Pid}'</li>
%% <li>`/cross?page=1&to=URL': page 1 links to URL (another server)</li>
%% <li>`/fun?page=K': header `x-next-page' with the next number</li>
%% <li>`/post': the page number is the request body; header `x-next-page'</li>
%% <li>`/jsonapi?page=K': `{"data": [...], "links": {"next": ...|null}}'</li>
%% <li>`/odata?page=K': `{"value": [...], "@odata.nextLink": absolute URL}'</li>
%% <li>`/hal?page=K': `{"_embedded": {"items": [...]}, "_links": {"next": {"href": ...}}}'</li>
%% <li>`/cursor?cursor=C': `{"items": [...], "response_metadata": {"next_cursor": C2}}',
%%   cursors with characters a query must escape, `""' on the last page</li>
%% <li>`/cursorloop': the same cursor every time</li>
%% <li>`/paged?p=K': `{"value": [...]}', empty after the last page</li>
%% <li>`/array?page=K': a top-level JSON array and a `Link' header</li>
%% </ul>
-module(erqwest_pages_server).

-export([start/0, start/1, handler/1, items/1, items/0, cursor/1]).

-define(PER_PAGE, 3).
-define(TOTAL, 10).
-define(PAGES, 4).

start() -> start(self()).

%% @doc Starts a server; `Notify' receives the `/hold' messages.
start(Notify) -> erqwest_test_server:start(handler(Notify)).

items() -> lists:seq(1, ?TOTAL).

%% @doc The items of page K (none past the last page).
items(K) when K >= 1 -> lists:sublist(items(), (K - 1) * ?PER_PAGE + 1, ?PER_PAGE);
items(_) -> [].

%% @doc The cursor that asks for page K: it needs escaping in a query.
cursor(K) -> iolist_to_binary(["p ", integer_to_list(K), "/+=&"]).

handler(Notify) ->
    fun(Req) -> handle(Notify, Req) end.

handle(Notify, #{path := Full, headers := Hs} = Req) ->
    {Path, Q} = case binary:split(Full, <<"?">>) of
        [P, Qs] -> {P, uri_string:dissect_query(Qs)};
        [P] -> {P, []}
    end,
    K = binary_to_integer(proplists:get_value(<<"page">>, Q, <<"1">>)),
    Host = proplists:get_value(<<"host">>, Hs),
    page(Path, K, Q, Host, Notify, Req).

page(<<"/link">>, K, _, _, _, _) ->
    {200, links(K, fun(N) -> ["link?page=", integer_to_list(N)] end), raw(K)};
page(<<"/abs">>, K, _, Host, _, _) ->
    {200, links(K, fun(N) -> ["http://", Host, "/abs?page=", integer_to_list(N)] end), raw(K)};
page(<<"/multi">>, K, _, _, _, _) ->
    Next = case K < ?PAGES of
        true -> [{"link", ["</multi?page=", integer_to_list(K + 1),
                           "&tag=a,b;c>; title=\"x, y; rel=next\"; rel=\"prefetch NEXT\""]}];
        false -> []
    end,
    {200, [{"link", "</multi?page=1>; rel=first, </multi?x=a,b;c>; rel=\"prev nextish\""}
           | Next], raw(K)};
page(<<"/loop">>, K, _, _, _, _) ->
    Next = case K of 1 -> "2"; _ -> "1" end,
    {200, [{"link", ["</loop?page=", Next, ">; rel=next"]}], raw(K)};
page(<<"/fail">>, 3, _, _, _, _) ->
    {500, [], <<"page three is broken">>};
page(<<"/fail">>, K, _, _, _, _) ->
    {200, links(K, fun(N) -> ["/fail?page=", integer_to_list(N)] end), raw(K)};
page(<<"/stall">>, K, _, _, _, _) ->
    K =:= 2 andalso timer:sleep(2000),
    {200, links(K, fun(N) -> ["/stall?page=", integer_to_list(N)] end), raw(K)};
page(<<"/slow">>, K, Q, _, _, _) ->
    Ms = proplists:get_value(<<"ms">>, Q),
    timer:sleep(binary_to_integer(Ms)),
    {200, links(K, fun(N) -> ["/slow?ms=", Ms, "&page=", integer_to_list(N)] end), raw(K)};
page(<<"/hold">>, 2, _, _, Notify, _) ->
    {custom, fun(Sock, _) ->
        Notify ! {held, self()},
        drain(Sock),
        Notify ! {dropped, self()},
        close
    end};
page(<<"/hold">>, K, _, _, _, _) ->
    {200, links(K, fun(N) -> ["/hold?page=", integer_to_list(N)] end), raw(K)};
page(<<"/cross">>, _, Q, _, _, _) ->
    {200, [{"link", ["<", proplists:get_value(<<"to">>, Q), ">; rel=next"]}], raw(1)};
page(<<"/fun">>, K, _, _, _, _) ->
    {200, next_header(K), raw(K)};
page(<<"/post">>, _, _, _, _, #{body := B}) ->
    K = binary_to_integer(B),
    {200, next_header(K), raw(K)};
page(<<"/jsonapi">>, K, _, _, _, _) ->
    Next = case K < ?PAGES of
        true -> iolist_to_binary(["/jsonapi?page=", integer_to_list(K + 1)]);
        false -> null
    end,
    json(#{<<"data">> => items(K), <<"links">> => #{<<"next">> => Next}});
page(<<"/odata">>, K, _, Host, _, _) ->
    Doc = #{<<"value">> => items(K)},
    json(case K < ?PAGES of
        true -> Doc#{<<"@odata.nextLink">> =>
                         iolist_to_binary(["http://", Host, "/odata?page=", integer_to_list(K + 1)])};
        false -> Doc
    end);
page(<<"/hal">>, K, _, _, _, _) ->
    Links = case K < ?PAGES of
        true -> #{<<"next">> => #{<<"href">> => iolist_to_binary(["hal?page=", integer_to_list(K + 1)])}};
        false -> #{}
    end,
    json(#{<<"_embedded">> => #{<<"items">> => items(K)}, <<"_links">> => Links});
page(<<"/cursor">>, _, Q, _, _, _) ->
    K = case proplists:get_value(<<"cursor">>, Q) of
        undefined -> 1;
        <<>> -> 1;
        C -> hd([N || N <- lists:seq(1, ?PAGES), cursor(N) =:= C])
    end,
    Next = case K < ?PAGES of true -> cursor(K + 1); false -> <<>> end,
    json(#{<<"items">> => items(K), <<"response_metadata">> => #{<<"next_cursor">> => Next}});
page(<<"/cursorloop">>, _, _, _, _, _) ->
    json(#{<<"items">> => [1], <<"next">> => <<"same">>});
page(<<"/paged">>, _, Q, _, _, _) ->
    json(#{<<"value">> => items(binary_to_integer(proplists:get_value(<<"p">>, Q)))});
page(<<"/array">>, K, _, _, _, _) ->
    {200, [{"content-type", "application/json"}
           | links(K, fun(N) -> ["/array?page=", integer_to_list(N)] end)],
     jiffy:encode(items(K))};
page(_, _, _, _, _, _) ->
    {404, [], <<"no such listing">>}.

%% `rel="next"' (and `first', `prev') links while there is a next page.
links(K, Url) ->
    Next = case K < ?PAGES of
        true -> [["<", Url(K + 1), ">; rel=\"next\", "]];
        false -> []
    end,
    [{"link", [Next, "<", Url(1), ">; rel=\"first\""]}].

next_header(K) when K < ?PAGES -> [{"x-next-page", integer_to_list(K + 1)}];
next_header(_) -> [].

raw(K) -> iolist_to_binary(lists:join(",", [integer_to_list(I) || I <- items(K)])).

json(Doc) -> {200, [{"content-type", "application/json"}], jiffy:encode(Doc)}.

drain(Sock) ->
    case gen_tcp:recv(Sock, 0, 10000) of
        {ok, _} -> drain(Sock);
        {error, _} -> ok
    end.
