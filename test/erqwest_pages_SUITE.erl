%% Paginated listings (erqwest_pages) against erqwest_pages_server: every
%% strategy walks the whole listing in order; laziness and prefetch are
%% counted at the server; close/1 drops the prefetched request's
%% connection; loops, failing pages, timeouts and other hosts end with the
%% documented errors; the Link parser gets a property and hostile input.
-module(erqwest_pages_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").
-include_lib("proper/include/proper.hrl").

-compile([export_all, nowarn_export_all]).

suite() -> [{timetrap, {minutes, 3}}].

all() ->
    [{group, strategies}, {group, laziness}, {group, safety}, {group, options},
     {group, json}, {group, link_parser}, json_pointer_rfc6901_examples,
     json_pointer_misses_and_bad_pointers].

groups() ->
    [{strategies, [parallel], [link_relative, link_absolute, link_several_headers_and_rels,
                               fun_url, fun_request, fun_bad_return, base_url_path]},
     {laziness, [parallel], [new_sends_nothing, prefetch_one_page_ahead, no_prefetch_one_at_a_time,
                             close_cancels_prefetched_request, close_after_the_end,
                             fold_raising_cancels]},
     {safety, [parallel], [loop_detected_before_request, failing_page_in_the_middle,
                           cross_host_refused, cross_host_strips_credentials,
                           cross_host_strips_auth_option, cross_host_strips_client_auth,
                           non_http_next_url_refused]},
     {options, [parallel], [max_pages_ends_normally, timeout_is_per_page, timeout_of_one_page,
                            bad_options_are_badarg]},
     {json, [parallel], [json_api, fun_request_with_items_is_decoded, odata_absolute, hal_relative, cursor_in_query,
                         cursor_with_query_option, cursor_loop_detected, page_numbers, top_level_array_items,
                         items_not_an_array]},
     {link_parser, [], [prop_links_parse_back, prop_hostile_headers, large_header_dirty]}].

init_per_suite(Config) ->
    {ok, _} = application:ensure_all_started(erqwest),
    [{client, erqwest:make_client()} | Config].

end_per_suite(_Config) ->
    application:stop(erqwest).

init_per_group(json, Config) ->
    %% The JSON strategies need the runtime's JSON decoding (decode => json).
    C = ?config(client, Config),
    try erqwest_async:req(C, self(), probe, #{method => get, url => <<"http://127.0.0.1:1/">>,
                                             decode => json}) of
        _ -> receive {erqwest_response, probe, _, _} -> Config end
    catch
        error:badarg -> {skip, "the request option decode => json is not available"}
    end;
init_per_group(_, Config) ->
    Config.

end_per_group(_, _) -> ok.

%%% helpers

client(Config) -> ?config(client, Config).

with_server(Fun) ->
    {ok, S} = erqwest_pages_server:start(),
    try Fun(S) after erqwest_test_server:stop(S) end.

url(S, Path) -> erqwest_test_server:url(S, Path).

req(Url) -> #{method => get, url => Url}.

%% The items of raw `1,2,3' pages.
raw_items(#{body := <<>>}) -> [];
raw_items(#{body := B}) -> [binary_to_integer(I) || I <- binary:split(B, <<",">>, [global])].

walk(C, Req, Opts) ->
    erqwest_pages:fold(fun(Page, Acc) -> Acc ++ raw_items(Page) end, [],
                       erqwest_pages:new(C, Req, Opts)).

paths(S) -> [P || #{path := P} <- erqwest_test_server:requests(S)].

%% Waits until the server has recorded at least `N' requests.
wait_requests(S, N) -> wait_requests(S, N, 100).
wait_requests(S, N, 0) -> ct:fail({requests, N, paths(S)});
wait_requests(S, N, Tries) ->
    case length(erqwest_test_server:requests(S)) >= N of
        true -> ok;
        false -> timer:sleep(20), wait_requests(S, N, Tries - 1)
    end.

no_messages() ->
    receive M -> ct:fail({stray_message, M}) after 200 -> ok end.

%%% strategies

link_relative(Config) ->
    with_server(fun(S) ->
        ?assertEqual({ok, erqwest_pages_server:items()},
                     walk(client(Config), req(url(S, "/link")), #{})),
        %% `link?page=2' resolved against `/link?page=1'.
        ?assertEqual([<<"/link">>, <<"/link?page=2">>, <<"/link?page=3">>, <<"/link?page=4">>],
                     paths(S))
    end).

link_absolute(Config) ->
    with_server(fun(S) ->
        ?assertEqual({ok, erqwest_pages_server:items()},
                     walk(client(Config), req(url(S, "/abs?page=1")), #{next => link})),
        ?assertEqual(4, length(paths(S)))
    end).

link_several_headers_and_rels(Config) ->
    with_server(fun(S) ->
        ?assertEqual({ok, erqwest_pages_server:items()},
                     walk(client(Config), req(url(S, "/multi")), #{})),
        ?assertEqual([<<"/multi">>, <<"/multi?page=2&tag=a,b;c">>, <<"/multi?page=3&tag=a,b;c">>,
                      <<"/multi?page=4&tag=a,b;c">>], paths(S))
    end).

fun_url(Config) ->
    Next = fun(#{headers := Hs}) ->
        case lists:keyfind(<<"x-next-page">>, 1, Hs) of
            {_, N} -> {url, <<"fun?page=", N/binary>>};
            false -> done
        end
    end,
    with_server(fun(S) ->
        ?assertEqual({ok, erqwest_pages_server:items()},
                     walk(client(Config), req(url(S, "/fun")), #{next => Next})),
        ?assertEqual([<<"/fun">>, <<"/fun?page=2">>, <<"/fun?page=3">>, <<"/fun?page=4">>], paths(S))
    end).

fun_request(Config) ->
    with_server(fun(S) ->
        Url = url(S, "/post"),
        Next = fun(#{headers := Hs}) ->
            case lists:keyfind(<<"x-next-page">>, 1, Hs) of
                {_, N} -> {request, #{method => post, url => Url, body => N}};
                false -> done
            end
        end,
        ?assertEqual({ok, erqwest_pages_server:items()},
                     walk(client(Config), #{method => post, url => Url, body => <<"1">>},
                          #{next => Next})),
        ?assertEqual([<<"1">>, <<"2">>, <<"3">>, <<"4">>],
                     [B || #{method := <<"POST">>, body := B} <- erqwest_test_server:requests(S)])
    end).

fun_bad_return(Config) ->
    with_server(fun(S) ->
        P = erqwest_pages:new(client(Config), req(url(S, "/fun")), #{next => fun(_) -> maybe end}),
        {ok, #{status := 200}, P2} = erqwest_pages:next(P),
        ?assertMatch({error, #{code := pagination, reason := <<"the next fun returned maybe", _/binary>>}},
                     erqwest_pages:next(P2))
    end).

%% A first URL that is only a path, joined to the client's base_url:
%% next links resolve against the page's final URL and count as the
%% same host.
base_url_path(_Config) ->
    with_server(fun(S) ->
        C = erqwest:make_client(#{base_url => url(S, "/")}),
        ?assertEqual({ok, erqwest_pages_server:items()}, walk(C, req(<<"/link">>), #{})),
        ?assertEqual(4, length(paths(S)))
    end).

%%% laziness

new_sends_nothing(Config) ->
    with_server(fun(S) ->
        P = erqwest_pages:new(client(Config), req(url(S, "/link")), #{}),
        timer:sleep(200),
        ?assertEqual(0, erqwest_test_server:connections(S)),
        ?assertEqual([], paths(S)),
        ok = erqwest_pages:close(P)
    end).

prefetch_one_page_ahead(Config) ->
    with_server(fun(S) ->
        P = erqwest_pages:new(client(Config), req(url(S, "/link")), #{}),
        {ok, Page1, P2} = erqwest_pages:next(P),
        ?assertEqual([1, 2, 3], raw_items(Page1)),
        %% Page 2 was asked for when page 1 arrived; page 3 is not.
        wait_requests(S, 2),
        timer:sleep(200),
        ?assertEqual([<<"/link">>, <<"/link?page=2">>], paths(S)),
        {ok, Page2, P3} = erqwest_pages:next(P2),
        ?assertEqual([4, 5, 6], raw_items(Page2)),
        wait_requests(S, 3),
        ok = erqwest_pages:close(P3),
        no_messages()
    end).

no_prefetch_one_at_a_time(Config) ->
    with_server(fun(S) ->
        P = erqwest_pages:new(client(Config), req(url(S, "/link")), #{prefetch => false}),
        {ok, _, P2} = erqwest_pages:next(P),
        timer:sleep(200),
        ?assertEqual([<<"/link">>], paths(S)),
        {ok, Page2, P3} = erqwest_pages:next(P2),
        ?assertEqual([4, 5, 6], raw_items(Page2)),
        ?assertEqual(2, length(paths(S))),
        ok = erqwest_pages:close(P3),
        no_messages()
    end).

close_cancels_prefetched_request(Config) ->
    with_server(fun(S) ->
        P = erqwest_pages:new(client(Config), req(url(S, "/hold")), #{}),
        {ok, _, P2} = erqwest_pages:next(P),
        Held = receive {held, H} -> H after 5000 -> ct:fail(page_two_not_requested) end,
        ok = erqwest_pages:close(P2),
        %% The connection of the prefetched request is closed by the client.
        receive {dropped, Held} -> ok after 5000 -> ct:fail(connection_kept) end,
        ?assertEqual(ok, erqwest_test_server:wait_closed(S, 0)),
        no_messages()
    end).

close_after_the_end(Config) ->
    with_server(fun(S) ->
        P = erqwest_pages:new(client(Config), req(url(S, "/link?page=4")), #{}),
        {ok, _, P2} = erqwest_pages:next(P),
        ?assertEqual(done, erqwest_pages:next(P2)),
        ?assertEqual(ok, erqwest_pages:close(P2)),
        ?assertEqual(ok, erqwest_pages:close(P2)),
        no_messages()
    end).

fold_raising_cancels(Config) ->
    with_server(fun(S) ->
        P = erqwest_pages:new(client(Config), req(url(S, "/hold")), #{}),
        ?assertError(stop_here, erqwest_pages:fold(fun(_, _) -> error(stop_here) end, [], P)),
        %% The prefetched request may be cancelled before it reaches the
        %% server; if it did reach it, its connection is dropped.
        receive
            {held, H} -> receive {dropped, H} -> ok after 5000 -> ct:fail(connection_kept) end
        after 500 -> ok
        end,
        ?assert(length(paths(S)) =< 2),
        no_messages()
    end).

%%% safety

loop_detected_before_request(Config) ->
    with_server(fun(S) ->
        P = erqwest_pages:new(client(Config), req(url(S, "/loop?page=1")), #{}),
        {ok, _, P2} = erqwest_pages:next(P),
        {ok, Page2, P3} = erqwest_pages:next(P2),
        ?assertEqual([4, 5, 6], raw_items(Page2)),
        Back = url(S, "/loop?page=1"),
        ?assertMatch({error, #{code := pagination, url := Back}}, erqwest_pages:next(P3)),
        %% Page 1 was not requested a second time.
        ?assertEqual([<<"/loop?page=1">>, <<"/loop?page=2">>], paths(S)),
        ?assertMatch({error, #{code := pagination}, [1, 2, 3, 4, 5, 6]},
                     walk(client(Config), req(url(S, "/loop?page=1")), #{}))
    end).

failing_page_in_the_middle(Config) ->
    with_server(fun(S) ->
        ?assertMatch({error, #{code := http_status, status := 500,
                               response := #{status := 500, body := <<"page three is broken">>}},
                      [1, 2, 3, 4, 5, 6]},
                     walk(client(Config), req(url(S, "/fail")), #{})),
        ?assertMatch({error, #{code := http_status, status := 500}},
                     erqwest_pages:to_list(erqwest_pages:new(client(Config), req(url(S, "/fail")),
                                                             #{}))),
        %% Nothing after the failing page.
        ?assertEqual(6, length(paths(S)))
    end).

cross_host_refused(Config) ->
    with_server(fun(A) -> with_server(fun(B) ->
        To = url(B, "/link?page=2"),
        Req = req(url(A, ["/cross?to=", uri_string:quote(To)])),
        ?assertMatch({error, #{code := pagination, url := To}, [1, 2, 3]},
                     walk(client(Config), Req, #{})),
        ?assertEqual([], paths(B))
    end) end).

cross_host_strips_credentials(Config) ->
    with_server(fun(A) -> with_server(fun(B) ->
        To = url(B, "/link?page=2"),
        Req = #{method => get, url => url(A, ["/cross?to=", uri_string:quote(To)]),
                headers => [{<<"Authorization">>, <<"Bearer secret">>},
                            {<<"cookie">>, <<"session=1">>}, {<<"x-keep">>, <<"yes">>}]},
        ?assertEqual({ok, erqwest_pages_server:items()},
                     walk(client(Config), Req, #{cross_host => true})),
        [#{headers := HA}] = erqwest_test_server:requests(A),
        ?assertEqual(<<"Bearer secret">>, proplists:get_value(<<"authorization">>, HA)),
        RB = erqwest_test_server:requests(B),
        ?assertEqual(3, length(RB)),
        [begin
             ?assertEqual(nomatch, binary:match(Raw, [<<"secret">>, <<"session=1">>])),
             ?assertEqual(<<"yes">>, proplists:get_value(<<"x-keep">>, Hs))
         end || #{raw := Raw, headers := Hs} <- RB]
    end) end).

cross_host_strips_auth_option(Config) ->
    with_server(fun(A) -> with_server(fun(B) ->
        To = url(B, "/link?page=2"),
        Req = #{method => get, url => url(A, ["/cross?to=", uri_string:quote(To)]),
                auth => {bearer, <<"secret-token">>}},
        ?assertEqual({ok, erqwest_pages_server:items()},
                     walk(client(Config), Req, #{cross_host => true})),
        [#{headers := HA}] = erqwest_test_server:requests(A),
        ?assertEqual(<<"Bearer secret-token">>, proplists:get_value(<<"authorization">>, HA)),
        RB = erqwest_test_server:requests(B),
        ?assertEqual(3, length(RB)),
        [?assertEqual(nomatch, binary:match(Raw, [<<"secret-token">>, <<"authorization">>]))
         || #{raw := Raw} <- RB]
    end) end).

%% A client's default `auth' goes to the first host only: pages on
%% another host are requested with `auth => none'.
cross_host_strips_client_auth(_Config) ->
    C = erqwest:make_client(#{auth => {basic, <<"user">>, <<"client-secret">>}}),
    with_server(fun(A) -> with_server(fun(B) ->
        To = url(B, "/link?page=2"),
        Req = #{method => get, url => url(A, ["/cross?to=", uri_string:quote(To)])},
        ?assertEqual({ok, erqwest_pages_server:items()},
                     walk(C, Req, #{cross_host => true})),
        [#{headers := HA}] = erqwest_test_server:requests(A),
        ?assertEqual(<<"Basic ", (base64:encode(<<"user:client-secret">>))/binary>>,
                     proplists:get_value(<<"authorization">>, HA)),
        RB = erqwest_test_server:requests(B),
        ?assertEqual(3, length(RB)),
        [?assertEqual(nomatch, binary:match(string:lowercase(Raw), <<"authorization">>))
         || #{raw := Raw} <- RB]
    end) end).

non_http_next_url_refused(Config) ->
    with_server(fun(S) ->
        P = erqwest_pages:new(client(Config), req(url(S, "/fun")),
                              #{next => fun(_) -> {url, <<"file:///etc/passwd">>} end}),
        {ok, _, P2} = erqwest_pages:next(P),
        ?assertMatch({error, #{code := pagination, reason := <<"next URL has scheme file", _/binary>>}},
                     erqwest_pages:next(P2))
    end).

%%% options

max_pages_ends_normally(Config) ->
    with_server(fun(S) ->
        ?assertEqual({ok, [1, 2, 3, 4, 5, 6]},
                     walk(client(Config), req(url(S, "/link")), #{max_pages => 2})),
        %% Prefetch does not go past the limit.
        timer:sleep(200),
        ?assertEqual(2, length(paths(S)))
    end).

%% The seed's semantics: the timeout is for each page's request, not for
%% the whole walk (four pages of 300 ms under a 1 s timeout).
timeout_is_per_page(Config) ->
    with_server(fun(S) ->
        ?assertEqual({ok, erqwest_pages_server:items()},
                     walk(client(Config), req(url(S, "/slow?ms=300&page=1")),
                          #{timeout => 1000, prefetch => false}))
    end).

timeout_of_one_page(Config) ->
    with_server(fun(S) ->
        ?assertMatch({error, #{code := timeout}, [1, 2, 3]},
                     walk(client(Config), req(url(S, "/stall")), #{timeout => 500}))
    end).

bad_options_are_badarg(Config) ->
    C = client(Config),
    Req = req(<<"http://127.0.0.1:1/">>),
    [?assertError(badarg, erqwest_pages:new(C, Req, Opts))
     || Opts <- [#{nope => 1}, #{next => {json, <<"no-slash">>}}, #{next => {json, <<"/a~2">>}},
                 #{next => sideways}, #{next => {page, <<"p">>, 1}}, #{items => 7},
                 #{max_pages => 0}, #{prefetch => maybe}, #{timeout => -1},
                 #{cross_host => 1}, #{next => {cursor, <<>>, <<"/c">>}}, not_a_map]],
    ?assertError(badarg, erqwest_pages:new(C, Req#{response_body => stream}, #{})),
    ?assertError(badarg, erqwest_pages:new(C, #{method => get}, #{})).

%%% JSON strategies (decode => json)

items_walk(C, Req, Opts) ->
    erqwest_pages:to_list(erqwest_pages:new(C, Req, Opts)).

json_api(Config) ->
    with_server(fun(S) ->
        ?assertEqual({ok, erqwest_pages_server:items()},
                     items_walk(client(Config), req(url(S, "/jsonapi")),
                                #{next => {json, <<"/links/next">>}, items => <<"/data">>})),
        %% Without `items', pages come back with their bodies decoded.
        {ok, Pages} = items_walk(client(Config), req(url(S, "/jsonapi")),
                                 #{next => {json, <<"/links/next">>}}),
        ?assertEqual([[1, 2, 3], [4, 5, 6], [7, 8, 9], [10]],
                     [D || #{body := #{<<"data">> := D}} <- Pages])
    end).

%% Issue 28, case 9: a next fun's `{request, ReqOpts}' page was not
%% decoded, so `items' said "its items are not a JSON array".
fun_request_with_items_is_decoded(Config) ->
    with_server(fun(S) ->
        Next = fun(#{body := #{<<"links">> := #{<<"next">> := N}}}) when is_binary(N) ->
                       {request, #{method => get, url => url(S, binary_to_list(N))}};
                  (_) -> done
               end,
        ?assertEqual({ok, erqwest_pages_server:items()},
                     items_walk(client(Config), req(url(S, "/jsonapi")),
                                #{next => Next, items => <<"/data">>}))
    end).

odata_absolute(Config) ->
    with_server(fun(S) ->
        ?assertEqual({ok, erqwest_pages_server:items()},
                     items_walk(client(Config), req(url(S, "/odata")),
                                #{next => {json, <<"/@odata.nextLink">>}, items => <<"/value">>}))
    end).

hal_relative(Config) ->
    with_server(fun(S) ->
        ?assertEqual({ok, erqwest_pages_server:items()},
                     items_walk(client(Config), req(url(S, "/hal")),
                                #{next => {json, <<"/_links/next/href">>},
                                  items => <<"/_embedded/items">>})),
        ?assertEqual([<<"/hal">>, <<"/hal?page=2">>, <<"/hal?page=3">>, <<"/hal?page=4">>],
                     paths(S))
    end).

cursor_in_query(Config) ->
    with_server(fun(S) ->
        ?assertEqual({ok, erqwest_pages_server:items()},
                     items_walk(client(Config), req(url(S, "/cursor?limit=3&cursor=&x=%7E")),
                                #{next => {cursor, <<"cursor">>, <<"/response_metadata/next_cursor">>},
                                  items => <<"/items">>})),
        %% The cursor replaces the previous one; the rest of the query stays
        %% as written; the value is form-urlencoded.
        [_, P2 | _] = paths(S),
        ?assertEqual(<<"/cursor?limit=3&x=%7E&cursor=p+2%2F%2B%3D%26">>, P2),
        ?assertEqual(4, length(paths(S)))
    end).

%% With the `query' option, the cursor replaces the query's own cursor
%% and the other parameters carry over.
cursor_with_query_option(Config) ->
    with_server(fun(S) ->
        ?assertEqual({ok, erqwest_pages_server:items()},
                     items_walk(client(Config),
                                #{method => get, url => url(S, "/cursor"),
                                  query => [{<<"limit">>, 3}, {cursor, <<>>}]},
                                #{next => {cursor, <<"cursor">>, <<"/response_metadata/next_cursor">>},
                                  items => <<"/items">>})),
        [P1, P2 | _] = paths(S),
        ?assertEqual(<<"/cursor?limit=3&cursor=">>, P1),
        ?assertEqual(<<"/cursor?cursor=p+2%2F%2B%3D%26&limit=3">>, P2)
    end).

cursor_loop_detected(Config) ->
    with_server(fun(S) ->
        ?assertMatch({error, #{code := pagination}, [1, 1]},
                     erqwest_pages:fold(fun(I, Acc) -> Acc ++ [I] end, [],
                                        erqwest_pages:new(client(Config), req(url(S, "/cursorloop")),
                                                          #{next => {cursor, <<"c">>, <<"/next">>},
                                                            items => <<"/items">>}))),
        ?assertEqual([<<"/cursorloop">>, <<"/cursorloop?c=same">>], paths(S))
    end).

page_numbers(Config) ->
    with_server(fun(S) ->
        ?assertEqual({ok, erqwest_pages_server:items()},
                     items_walk(client(Config), req(url(S, "/paged?p=9")),
                                #{next => {page, <<"p">>, 1}, items => <<"/value">>})),
        ?assertEqual([<<"/paged?p=1">>, <<"/paged?p=2">>, <<"/paged?p=3">>, <<"/paged?p=4">>,
                      <<"/paged?p=5">>], paths(S))
    end).

top_level_array_items(Config) ->
    with_server(fun(S) ->
        ?assertEqual({ok, erqwest_pages_server:items()},
                     items_walk(client(Config), req(url(S, "/array")), #{items => <<>>}))
    end).

items_not_an_array(Config) ->
    with_server(fun(S) ->
        ?assertMatch({error, #{code := pagination}},
                     items_walk(client(Config), req(url(S, "/jsonapi")),
                                #{next => {json, <<"/links/next">>}, items => <<"/links">>}))
    end).

%%% JSON Pointer (erqwest_json_pointer)

%% RFC 6901 section 5, over the document as decode => json gives it.
json_pointer_rfc6901_examples(_Config) ->
    Doc = #{<<"foo">> => [<<"bar">>, <<"baz">>], <<>> => 0, <<"a/b">> => 1, <<"c%d">> => 2,
            <<"e^f">> => 3, <<"g|h">> => 4, <<"i\\j">> => 5, <<"k\"l">> => 6, <<" ">> => 7,
            <<"m~n">> => 8},
    Cases = [{<<>>, Doc}, {<<"/foo">>, [<<"bar">>, <<"baz">>]}, {<<"/foo/0">>, <<"bar">>},
             {<<"/">>, 0}, {<<"/a~1b">>, 1}, {<<"/c%d">>, 2}, {<<"/e^f">>, 3}, {<<"/g|h">>, 4},
             {<<"/i\\j">>, 5}, {<<"/k\"l">>, 6}, {<<"/ ">>, 7}, {<<"/m~0n">>, 8}],
    [?assertEqual({P, {ok, V}}, {P, get_pointer(P, Doc)}) || {P, V} <- Cases],
    %% `~01' is `~1', not `/'.
    ?assertEqual({ok, x}, get_pointer(<<"/~01">>, #{<<"~1">> => x, <<"/">> => y})).

json_pointer_misses_and_bad_pointers(_Config) ->
    Doc = #{<<"foo">> => [<<"bar">>, <<"baz">>], <<"n">> => null},
    [?assertEqual({P, error}, {P, get_pointer(P, Doc)})
     || P <- [<<"/foo/2">>, <<"/foo/-">>, <<"/foo/01">>, <<"/foo/-1">>, <<"/foo/1x">>,
              <<"/foo/0/x">>, <<"/bar">>, <<"/n/x">>]],
    ?assertEqual({ok, null}, get_pointer(<<"/n">>, Doc)),
    [?assertMatch({error, _}, erqwest_json_pointer:parse(P))
     || P <- [<<"foo">>, <<"/a~">>, <<"/a~2">>, <<"/", 255>>, "/list", 7]].

get_pointer(P, Doc) ->
    {ok, Tokens} = erqwest_json_pointer:parse(P),
    erqwest_json_pointer:get(Tokens, Doc).

%%% The Link parser (native/src/link.rs)

-define(BASE, <<"http://127.0.0.1:8080/a/b?c=1">>).

%% Random link lists rendered as one or more Link headers (random
%% whitespace, quoting, parameter order, case) parse back: the first link
%% whose rels include `next' is found, resolved against the base.
prop_links_parse_back(_Config) ->
    Prop = ?FORALL({Links, Splits}, {list(link()), list(range(1, 3))},
        try
            Values = render(Links, Splits),
            Expected = case [T || {T, Rels, _, _} <- Links,
                                  lists:member("next", [string:lowercase(R) || R <- Rels])] of
                [] -> none;
                [T | _] -> erqwest_nif:url_resolve(?BASE, list_to_binary(T))
            end,
            case erqwest_nif:link_next(Values, ?BASE) of
                Expected -> true;
                Got -> ct:pal("~p~nexpected ~p~ngot ~p", [Values, Expected, Got]), false
            end
        catch C:R:St -> ct:pal("~p:~p ~p", [C, R, St]), false
        end),
    true = proper:quickcheck(Prop, [{numtests, 500}, {to_file, user}]).

%% Random bytes, rich in the grammar's punctuation, never crash the NIF.
prop_hostile_headers(_Config) ->
    Byte = frequency([{6, elements(" \t<>;,=\"\\/?#&rnextREL")}, {1, range(0, 255)}]),
    Prop = ?FORALL(Vs, list(list(Byte)),
        try
            case erqwest_nif:link_next([list_to_binary(V) || V <- Vs], ?BASE) of
                none -> true;
                {ok, U, O} when is_binary(U), is_binary(O) -> true;
                {error, E} when is_binary(E) -> true
            end
        catch C:R:St -> ct:pal("~p:~p ~p", [C, R, St]), false
        end),
    true = proper:quickcheck(Prop, [{numtests, 1000}, {to_file, user}]).

%% A long header goes through the dirty variant and still finds its link.
large_header_dirty(Config) ->
    Prev = binary:copy(<<"</p?x=1,2;3>; rel=\"prev\"; title=\"a, b\", ">>, 2000),
    Value = <<Prev/binary, "<http://127.0.0.1:1/z>; rel=next">>,
    ?assertEqual({ok, <<"http://127.0.0.1:1/z">>, <<"http://127.0.0.1:1">>},
                 erqwest_nif:link_next_dirty([Value], ?BASE)),
    {ok, S} = erqwest_test_server:start(fun(_) -> {200, [{"link", Value}], <<"x">>} end),
    try
        P = erqwest_pages:new(client(Config), req(erqwest_test_server:url(S, "/")),
                              #{cross_host => true}),
        {ok, _, P2} = erqwest_pages:next(P),
        %% The next page is on port 1 (nobody listens): a connect error.
        ?assertMatch({error, #{code := connect}}, erqwest_pages:next(P2))
    after
        erqwest_test_server:stop(S)
    end.

%% {Target, Rels, OtherParams, RelQuoted}
link() ->
    {target(), list(rel()), list({param_name(), param_value()}), boolean()}.

target() ->
    list(oneof([range($a, $z), range($0, $9), elements("/?&=,;:@!$'()*+-._~")])).

rel() -> elements(["next", "NEXT", "Next", "prev", "last", "first", "nexT", "alternate",
                   "nextpage", "next-ish"]).

param_name() -> elements(["title", "type", "hreflang", "media", "anchor2"]).

param_value() -> list(elements("ab ,;=<>\"\\rel next")).

render(Links, Splits) ->
    Rendered = [render_link(L) || L <- Links],
    [iolist_to_binary(lists:join(", ", Group)) || Group <- split(Rendered, Splits)].

render_link({Target, Rels, Params, Quoted}) ->
    RelParam = case Rels of
        [] -> [];
        [One] when not Quoted -> [["rel=", One]];
        _ -> [["rel=\"", lists:join(" ", Rels), "\""]]
    end,
    Others = [[N, "=", quote(V)] || {N, V} <- Params],
    ["<", Target, ">", [[" ;  ", P] || P <- Others ++ RelParam]].

quote(V) ->
    ["\"", [case C of $" -> "\\\""; $\\ -> "\\\\"; _ -> C end || C <- V], "\""].

%% Splits a list into groups of the given sizes (the rest in the last).
split([], _) -> [];
split(L, []) -> [L];
split(L, [N | _]) when N >= length(L) -> [L];
split(L, [N | Ns]) ->
    {A, B} = lists:split(N, L),
    [A | split(B, Ns)].
