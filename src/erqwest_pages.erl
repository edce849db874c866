%% @doc Paginated resources as a lazy sequence of pages: follows the next
%% page on demand, with the following one already on its way.
%%
%% {@link new/3} describes the listing and sends nothing. Each {@link
%% next/1} returns a page (a `resp()') and a new `pages()' value; by
%% default (`prefetch => true') the request for the page after it is sent
%% as soon as the page arrives, so it runs in erqwest's runtime while the
%% caller works on the current one. At most one page is ahead, so memory
%% stays bounded. {@link close/1} cancels that request when the caller
%% stops early. {@link fold/3} and {@link to_list/1} walk the whole listing.
%%
%% The waiting is a `receive' on {@link erqwest_async} messages: the calling
%% process waits, never a scheduler. A `pages()' value belongs to the
%% process that made it, and is used once: call `next/1' on the value
%% the previous call returned.
%%
%% == Strategies (`next') ==
%% <ul>
%% <li>`link' (the default): the `rel="next"' link of the `Link' headers
%%   (RFC 8288; parsed in the NIF).</li>
%% <li>`{json, Pointer}': the next URL is at a JSON Pointer (RFC 6901) in
%%   the decoded body: `<<"/links/next">>' (JSON:API),
%%   `<<"/@odata.nextLink">>' (OData), `<<"/_links/next/href">>' (HAL);
%%   `null' or absent means last page.</li>
%% <li>`{cursor, Param, Pointer}': the value at Pointer goes into query
%%   parameter Param of the first request's URL (replacing the previous
%%   cursor); an empty string, `null' or absence ends.</li>
%% <li>`{page, Param, First}': query parameter Param counts up from First
%%   until a page has no items (needs `items'); that empty page is not
%%   returned.</li>
%% <li>a fun of the page's `resp()' returning `{url, Url}', `{request,
%%   ReqOpts}' (used as it is, with the per-page `timeout', and decoded
%%   as JSON in the runtime when `items' is set, as the first page is) or
%%   `done'.</li>
%% </ul>
%% Next URLs may be relative: they are resolved against the page's final
%% URL (RFC 3986 section 5). A next URL replaces the whole URL, query
%% included; every other request option carries over to every page.
%%
%% == Options ==
%% <ul>
%% <li>`items => Pointer': where a page's items are (`<<"/data">>',
%%   `<<"/value">>', `<<>>' for a top-level array). Each page's `resp()'
%%   then has an extra key `items', and fold/to_list go over items.</li>
%% <li>`max_pages => pos_integer() | infinity' (default `infinity'):
%%   reaching it ends the listing normally.</li>
%% <li>`prefetch => boolean()' (default `true').</li>
%% <li>`timeout => ms | infinity': for each page's request (from when it
%%   is sent until its body is in), as the request option `timeout'.</li>
%% <li>`cross_host => boolean()' (default `false'): whether a next URL on
%%   another origin (scheme, host or port) is followed. When it is, the
%%   `auth' option and the `authorization', `proxy-authorization' and
%%   `cookie' headers of the first request are not sent there, nor the
%%   client's default `auth' (those pages are requested with
%%   `auth => none').</li>
%% </ul>
%% JSON strategies and `items' decode bodies in the runtime (request option
%% `decode => json'), so a page's `body' is then the decoded term.
%%
%% == Errors ==
%% Besides a request's own `err()': a page with a status outside 200..299
%% is `#{code := http_status, status := Status, response := resp()}'; a
%% next URL (or cursor) already requested, a next URL on another host
%% without `cross_host', or a body where the pointers find the wrong kind
%% of value is `#{code := pagination}'. The page before such an error is
%% still returned; the error comes with the following `next/1'.
%%
%% ```
%% Pages = erqwest_pages:new(Client, #{method => get, url => <<"https://api.example/issues">>},
%%                           #{next => link, max_pages => 10}),
%% {ok, Bodies} = erqwest_pages:fold(fun(#{body := B}, Acc) -> [B | Acc] end, [], Pages).
%%
%% Items = erqwest_pages:new(Client, #{method => get, url => Url},
%%                           #{next => {json, <<"/links/next">>}, items => <<"/data">>}),
%% {ok, All} = erqwest_pages:to_list(Items).
%% '''
-module(erqwest_pages).

-export([new/3, next/1, close/1, fold/3, to_list/1]).

-export_type([pages/0, page/0, page_opts/0, strategy/0, err/0]).

-type pointer() :: binary().
%% A JSON Pointer (RFC 6901) as a binary: `<<"/links/next">>'.
-type strategy() :: link
                  | {json, pointer()}
                  | {cursor, Param :: binary(), pointer()}
                  | {page, Param :: binary(), First :: integer()}
                  | fun((page()) -> {url, binary()} | {request, erqwest:req_opts()} | done).
%% Where the next page is: `link', `{json, <<"/links/next">>}',
%% `{cursor, <<"cursor">>, <<"/next_cursor">>}', `{page, <<"page">>, 1}' or a fun.
-type page_opts() :: #{next => strategy(),
                       items => pointer(),
                       max_pages => pos_integer() | infinity,
                       prefetch => boolean(),
                       timeout => erqwest:timeout_ms(),
                       cross_host => boolean()}.
%% Options of {@link new/3}: `#{next => {json, <<"/links/next">>}, items => <<"/data">>, max_pages => 10}'.
-type page() :: #{status := 100..599,
                  headers := [erqwest:header()],
                  body => term(),
                  items => [term()],
                  version => 'HTTP/0.9' | 'HTTP/1.0' | 'HTTP/1.1' | 'HTTP/2' | 'HTTP/3',
                  url => binary()}.
%% A page: a `resp()' whose `body' is the decoded term when the strategy
%% or `items' needs JSON, and with the page's `items' when asked for:
%% `#{status => 200, headers => [], body => #{<<"data">> => [1]}, items => [1]}'.
-type err() :: erqwest:err()
             | #{code := http_status, reason := binary(), status := 100..599,
                 response := page()}
             | #{code := pagination, reason := binary(), url => binary()}.
%% Why a walk stopped: an `erqwest:err()', a page outside 2xx
%% (`#{code => http_status, status => 404, ...}') or a loop
%% (`#{code => pagination, reason => <<"...">>}').

%% What comes next: a request to send, one in flight, or the end.
-type upcoming() :: {request, erqwest:req_opts()}
                  | {in_flight, erqwest_async:handle(), reference(), erqwest:req_opts()}
                  | done
                  | {error, err()}.

-record(pages, {
    client :: erqwest:client(),
    first :: erqwest:req_opts(),
    next :: link | {json, erqwest_json_pointer:pointer()}
          | {cursor, binary(), erqwest_json_pointer:pointer()}
          | {page, binary(), integer()} | fun(),
    items :: erqwest_json_pointer:pointer() | undefined,
    max_pages :: pos_integer() | infinity,
    prefetch :: boolean(),
    cross_host :: boolean(),
    timeout :: erqwest:timeout_ms() | undefined,
    %% The first request's origin; `undefined' until the first page came
    %% when its URL is not absolute (a path joined to the client's
    %% `base_url').
    origin :: binary() | undefined,
    %% URLs and cursors requested so far, for loop detection.
    seen = #{} :: #{term() => true},
    sent = 0 :: non_neg_integer(),
    upcoming :: upcoming()
}).

-opaque pages() :: #pages{}.
%% A listing being walked, from {@link new/3}.

-define(OPT_KEYS, [next, items, max_pages, prefetch, timeout, cross_host]).
%% Longer inputs go to the dirty variants of the URL NIFs.
-define(DIRTY_BYTES, 16384).
-define(DIRTY_VALUES, 64).

%% @doc Describes a listing that starts with the request `ReqOpts'. Sends
%% nothing. Raises `badarg' for an unknown option, a value of the wrong
%% type, a pointer that is not one, `{page, _, _}' without `items', or a
%% streamed request or response body.
%%
%% ```
%% Pages = erqwest_pages:new(C, #{method => get, url => <<"http://127.0.0.1:8080/pages">>},
%%                           #{next => link, max_pages => 5}).
%% '''
-spec new(erqwest:client() | atom(), erqwest:req_opts(), page_opts()) -> pages().
new(Client, #{url := Url} = ReqOpts, Opts) when is_binary(Url), is_map(Opts) ->
    check_request(ReqOpts, Client, Opts),
    [badarg([Client, ReqOpts, Opts], io_lib:format("unknown option ~0p", [K]))
     || K <- maps:keys(Opts), not lists:member(K, ?OPT_KEYS)],
    Args = [Client, ReqOpts, Opts],
    Next = strategy(maps:get(next, Opts, link), Args),
    Items = case maps:find(items, Opts) of
        {ok, P} -> pointer(P, Args);
        error -> undefined
    end,
    case {Next, Items} of
        {{page, _, _}, undefined} -> badarg(Args, "the page strategy needs the items option");
        _ -> ok
    end,
    MaxPages = check(max_pages, Opts, infinity,
                     fun(N) -> N =:= infinity orelse (is_integer(N) andalso N > 0) end, Args),
    Prefetch = check(prefetch, Opts, true, fun is_boolean/1, Args),
    CrossHost = check(cross_host, Opts, false, fun is_boolean/1, Args),
    Timeout = check(timeout, Opts, undefined,
                    fun(T) -> T =:= infinity orelse (is_integer(T) andalso T >= 0) end, Args),
    First0 = with_timeout(Timeout, with_decode(Next, Items, ReqOpts)),
    First = case Next of
        {page, Param, N0} -> set_param(First0, Param, integer_to_binary(N0));
        _ -> First0
    end,
    {Origin, Seen} = case resolve(Url, <<>>) of
        {ok, Normal, O} -> {O, #{Normal => true}};
        {error, _} -> {undefined, #{}}
    end,
    #pages{client = erqwest:get_client(Client), first = First, next = Next, items = Items,
           max_pages = MaxPages, prefetch = Prefetch, cross_host = CrossHost,
           timeout = Timeout, origin = Origin, seen = Seen, upcoming = {request, First}};
new(Client, ReqOpts, Opts) ->
    badarg([Client, ReqOpts, Opts], "expected request options with a binary url and a map of options").

%% @doc The next page, the end of the listing, or why it stopped. With
%% `prefetch', the request for the page after this one is already sent
%% when this returns. Blocks the calling process (in a `receive') while
%% the page is on its way.
%%
%% ```
%% {ok, #{status := 200, body := Body}, Pages1} = erqwest_pages:next(Pages),
%% done = erqwest_pages:next(LastPages).
%% '''
-spec next(pages()) -> {ok, page(), pages()} | done | {error, err()}.
next(#pages{upcoming = done}) ->
    done;
next(#pages{upcoming = {error, _} = Error}) ->
    Error;
next(#pages{upcoming = {request, Req}} = P) ->
    next(send(Req, P));
next(#pages{upcoming = {in_flight, _, Ref, Req}} = P) ->
    receive
        {erqwest_response, Ref, reply, Resp} -> page(Resp, Req, P#pages{upcoming = done});
        {erqwest_response, Ref, error, Err} -> {error, Err}
    end.

%% @doc Cancels the request for the following page, if one is in flight,
%% and drops its final message, so that nothing is left in the mailbox.
%%
%% ```
%% {ok, _Page1, Pages1} = erqwest_pages:next(Pages),
%% ok = erqwest_pages:close(Pages1).
%% '''
-spec close(pages()) -> ok.
close(#pages{upcoming = {in_flight, Handle, Ref, _}}) ->
    case erqwest_nif:cancel(Handle) of
        ok -> receive {erqwest_response, Ref, _, _} -> ok end;
        finished -> flush(Ref)
    end;
close(#pages{}) ->
    ok.

%% @doc Folds `Fun(ItemOrPage, Acc)' over every page, or with `items' over
%% every item, in order, as `lists:foldl/3' does. If `Fun' raises, the
%% request in flight is cancelled first.
%%
%% ```
%% {ok, Count} = erqwest_pages:fold(fun(_Item, N) -> N + 1 end, 0, Pages).
%% '''
-spec fold(fun((term(), Acc) -> Acc), Acc, pages()) -> {ok, Acc} | {error, err(), Acc}.
fold(Fun, Acc, #pages{items = Items} = P) when is_function(Fun, 2) ->
    case next(P) of
        {ok, Resp, P2} ->
            Acc2 = try
                case Items of
                    undefined -> Fun(Resp, Acc);
                    _ -> lists:foldl(Fun, Acc, maps:get(items, Resp))
                end
            catch
                Class:Reason:Stack ->
                    close(P2),
                    erlang:raise(Class, Reason, Stack)
            end,
            fold(Fun, Acc2, P2);
        done ->
            {ok, Acc};
        {error, Err} ->
            {error, Err, Acc}
    end.

%% @doc Every page (or with `items' every item), in order.
%%
%% ```
%% {ok, [#{status := 200} | _]} = erqwest_pages:to_list(Pages).
%% '''
-spec to_list(pages()) -> {ok, [term()]} | {error, err()}.
to_list(P) ->
    case fold(fun(X, Acc) -> [X | Acc] end, [], P) of
        {ok, L} -> {ok, lists:reverse(L)};
        {error, Err, _} -> {error, Err}
    end.

%%% Internals

send(Req, #pages{client = C, sent = Sent} = P) ->
    Ref = make_ref(),
    Handle = erqwest_async:req(C, self(), Ref, Req),
    P#pages{upcoming = {in_flight, Handle, Ref, Req}, sent = Sent + 1}.

%% A page arrived: check it, work out what follows, and send that at once
%% with prefetch.
page(#{status := Status} = Resp, _Req, #pages{sent = N}) when Status < 200; Status > 299 ->
    {error, #{code => http_status, status => Status, response => Resp,
              reason => iolist_to_binary(io_lib:format("page ~b: HTTP status ~b", [N, Status]))}};
page(Resp0, Req, #pages{origin = undefined} = P) ->
    case resolve(page_url(Resp0, P), <<>>) of
        {ok, Url, Origin} -> page(Resp0, Req, P#pages{origin = Origin, seen = #{Url => true}});
        {error, Reason} -> pagination(Reason)
    end;
page(Resp0, Req, #pages{} = P) ->
    case items(Resp0, P) of
        {error, _} = Error ->
            Error;
        {ok, Resp} ->
            case {P#pages.next, Resp} of
                {{page, _, _}, #{items := []}} ->
                    done;
                _ ->
                    P2 = following(Resp, Req, P),
                    {ok, Resp, prefetch(P2)}
            end
    end.

prefetch(#pages{prefetch = true, upcoming = {request, Req}} = P) -> send(Req, P);
prefetch(P) -> P.

items(Resp, #pages{items = undefined}) ->
    {ok, Resp};
items(Resp, #pages{items = Pointer, sent = N}) ->
    case erqwest_json_pointer:get(Pointer, maps:get(body, Resp, undefined)) of
        {ok, L} when is_list(L) -> {ok, Resp#{items => L}};
        {ok, Null} when Null =:= null; Null =:= nil -> {ok, Resp#{items => []}};
        error -> {ok, Resp#{items => []}};
        {ok, _} -> pagination(io_lib:format("page ~b: its items are not a JSON array", [N]))
    end.

%% What comes after this page.
following(_Resp, _Req, #pages{max_pages = Max, sent = Sent} = P) when Sent >= Max ->
    P#pages{upcoming = done};
following(Resp, _Req, #pages{next = link} = P) ->
    Values = [V || {<<"link">>, V} <- maps:get(headers, Resp)],
    Base = page_url(Resp, P),
    Found = case length(Values) > ?DIRTY_VALUES orelse
                 lists:sum([byte_size(V) || V <- Values]) + byte_size(Base) > ?DIRTY_BYTES of
        true -> erqwest_nif:link_next_dirty(Values, Base);
        false -> erqwest_nif:link_next(Values, Base)
    end,
    case Found of
        none -> P#pages{upcoming = done};
        Resolved -> next_url(Resolved, P)
    end;
following(Resp, _Req, #pages{next = {json, Pointer}} = P) ->
    case erqwest_json_pointer:get(Pointer, maps:get(body, Resp, undefined)) of
        {ok, Url} when is_binary(Url) -> next_url(resolve(page_url(Resp, P), Url), P);
        {ok, Null} when Null =:= null; Null =:= nil -> P#pages{upcoming = done};
        error -> P#pages{upcoming = done};
        {ok, _} -> fail(P, "the next URL in the body is not a string")
    end;
following(Resp, _Req, #pages{next = {cursor, Param, Pointer}, first = First, seen = Seen} = P) ->
    case erqwest_json_pointer:get(Pointer, maps:get(body, Resp, undefined)) of
        {ok, <<>>} -> P#pages{upcoming = done};
        {ok, Null} when Null =:= null; Null =:= nil -> P#pages{upcoming = done};
        error -> P#pages{upcoming = done};
        {ok, C} when is_binary(C); is_integer(C) ->
            Cursor = case C of _ when is_integer(C) -> integer_to_binary(C); _ -> C end,
            case Seen of
                #{{cursor, Cursor} := _} ->
                    fail(P, io_lib:format("the cursor ~0p came back a second time", [Cursor]));
                #{} ->
                    P#pages{upcoming = {request, set_param(First, Param, Cursor)},
                            seen = Seen#{{cursor, Cursor} => true}}
            end;
        {ok, _} -> fail(P, "the cursor in the body is not a string or an integer")
    end;
following(_Resp, _Req, #pages{next = {page, Param, First}, first = Req, sent = Sent} = P) ->
    %% Pages First .. First + Sent - 1 were requested.
    P#pages{upcoming = {request, set_param(Req, Param, integer_to_binary(First + Sent))}};
following(Resp, _Req, #pages{next = Fun} = P) when is_function(Fun, 1) ->
    case Fun(Resp) of
        done -> P#pages{upcoming = done};
        {url, Url} when is_binary(Url) -> next_url(resolve(page_url(Resp, P), Url), P);
        {request, #{url := Url} = Req} when is_binary(Url) ->
            case resolve(Url, <<>>) of
                {ok, _, Origin} when Origin =/= P#pages.origin, not P#pages.cross_host ->
                    fail(P, cross_host_reason(Url), Url);
                _ ->
                    %% Decoded as the first page was, so that `items'
                    %% finds a JSON body on every page.
                    Next = with_decode(P#pages.next, P#pages.items, Req),
                    P#pages{upcoming = {request, with_timeout(P#pages.timeout, Next)}}
            end;
        Other ->
            fail(P, io_lib:format("the next fun returned ~0P, not {url, Url}, {request, ReqOpts} "
                                  "or done", [Other, 8]))
    end.

%% A next URL, resolved: refused if seen before or on another host
%% (unless allowed), else the first request with this URL.
next_url({error, Reason}, P) ->
    fail(P, Reason);
next_url({ok, Url, Origin}, #pages{seen = Seen, first = First} = P) ->
    case Seen of
        #{Url := _} ->
            fail(P, <<"the next URL was requested already: ", Url/binary>>, Url);
        #{} when Origin =:= P#pages.origin ->
            P#pages{upcoming = {request, next_request(First, Url)}, seen = Seen#{Url => true}};
        #{} when P#pages.cross_host ->
            P#pages{upcoming = {request, without_credentials(next_request(First, Url))},
                    seen = Seen#{Url => true}};
        #{} ->
            fail(P, cross_host_reason(Url), Url)
    end.

cross_host_reason(Url) ->
    <<"the next URL is on another host (cross_host => true follows it): ", Url/binary>>.

%% A next URL replaces the whole URL, so a `query' option does not carry over.
next_request(First, Url) ->
    maps:remove(query, First#{url => Url}).

without_credentials(Req) ->
    Strip = [<<"authorization">>, <<"proxy-authorization">>, <<"cookie">>],
    Headers = [H || {K, _} = H <- maps:get(headers, Req, []),
                    not lists:member(string:lowercase(K), Strip)],
    %% `auth => none': not the client's default credentials either.
    Req#{headers => Headers, auth => none}.

page_url(Resp, #pages{first = #{url := Url}}) ->
    maps:get(url, Resp, Url).

fail(P, Reason) ->
    P#pages{upcoming = {error, #{code => pagination,
                                 reason => iolist_to_binary(Reason)}}}.

fail(P, Reason, Url) ->
    P#pages{upcoming = {error, #{code => pagination, url => Url,
                                 reason => iolist_to_binary(Reason)}}}.

pagination(Reason) ->
    {error, #{code => pagination, reason => iolist_to_binary(Reason)}}.

resolve(Base, Ref) when byte_size(Base) + byte_size(Ref) > ?DIRTY_BYTES ->
    erqwest_nif:url_resolve_dirty(Base, Ref);
resolve(Base, Ref) ->
    erqwest_nif:url_resolve(Base, Ref).

flush(Ref) ->
    receive {erqwest_response, Ref, _, _} -> ok after 0 -> ok end.

%%% Request options

%% Bodies that pointers look into are decoded in the runtime.
with_decode(Next, Items, Req) ->
    Json = Items =/= undefined orelse case Next of
        {json, _} -> true;
        {cursor, _, _} -> true;
        _ -> false
    end,
    case Json of
        true -> Req#{decode => json};
        false -> Req
    end.

with_timeout(undefined, Req) -> Req;
with_timeout(T, Req) -> Req#{timeout => T}.

%%% Query parameters, edited in the URL itself so that the rest of the
%%% query stays byte for byte as the caller wrote it.

%% Sets `Param' to `Value' in the request's URL (dropping earlier values
%% of it, from the URL and from a `query' option).
set_param(#{url := Url} = Req, Param, Value) ->
    {Base, Query, Fragment} = split_url(Url),
    Kept = [Pair || Pair <- Query, decoded_key(Pair) =/= Param],
    New = <<(form_encode(Param))/binary, "=", (form_encode(Value))/binary>>,
    NewUrl = iolist_to_binary([Base, "?", lists:join(<<"&">>, Kept ++ [New]), Fragment]),
    drop_query_option(Req#{url => NewUrl}, Param).

drop_query_option(#{query := Q} = Req, Param) when is_list(Q) ->
    Req#{query => [KV || {K, _} = KV <- Q, key_bin(K) =/= Param]};
drop_query_option(#{query := Q} = Req, Param) when is_map(Q) ->
    Req#{query => maps:filter(fun(K, _) -> key_bin(K) =/= Param end, Q)};
drop_query_option(Req, _) ->
    Req.

key_bin(K) when is_atom(K) -> atom_to_binary(K);
key_bin(K) -> K.

split_url(Url) ->
    {NoFrag, Fragment} = case binary:split(Url, <<"#">>) of
        [U, F] -> {U, <<"#", F/binary>>};
        [U] -> {U, <<>>}
    end,
    case binary:split(NoFrag, <<"?">>) of
        [Base, <<>>] -> {Base, [], Fragment};
        [Base, Q] -> {Base, [P || P <- binary:split(Q, <<"&">>, [global]), P =/= <<>>], Fragment};
        [Base] -> {Base, [], Fragment}
    end.

decoded_key(Pair) ->
    form_decode(hd(binary:split(Pair, <<"=">>))).

%% application/x-www-form-urlencoded, as the WHATWG URL standard has it:
%% alphanumerics and `*-._' stay, a space is `+', every other byte `%XX'.
form_encode(B) ->
    << <<(encode_byte(C))/binary>> || <<C>> <= B >>.

encode_byte($\s) -> <<"+">>;
encode_byte(C) when C >= $a, C =< $z; C >= $A, C =< $Z; C >= $0, C =< $9;
                    C =:= $*; C =:= $-; C =:= $.; C =:= $_ -> <<C>>;
encode_byte(C) -> list_to_binary(io_lib:format("%~2.16.0B", [C])).

form_decode(B) -> form_decode(B, <<>>).
form_decode(<<"+", R/binary>>, Acc) -> form_decode(R, <<Acc/binary, " ">>);
form_decode(<<"%", H, L, R/binary>> = All, Acc) ->
    case {hex(H), hex(L)} of
        {Hi, Lo} when is_integer(Hi), is_integer(Lo) ->
            form_decode(R, <<Acc/binary, (Hi * 16 + Lo)>>);
        _ ->
            <<C, R2/binary>> = All,
            form_decode(R2, <<Acc/binary, C>>)
    end;
form_decode(<<C, R/binary>>, Acc) -> form_decode(R, <<Acc/binary, C>>);
form_decode(<<>>, Acc) -> Acc.

hex(C) when C >= $0, C =< $9 -> C - $0;
hex(C) when C >= $a, C =< $f -> C - $a + 10;
hex(C) when C >= $A, C =< $F -> C - $A + 10;
hex(_) -> error.

%%% Option checks

check_request(Req, Client, Opts) ->
    Streamed = maps:get(body, Req, undefined) =:= stream
        orelse maps:get(response_body, Req, complete) =:= stream,
    case Streamed of
        true -> badarg([Client, Req, Opts], "pages need complete request and response bodies");
        false -> ok
    end.

strategy(link, _) -> link;
strategy({json, P}, Args) -> {json, pointer(P, Args)};
strategy({cursor, Param, P}, Args) -> {cursor, param(Param, Args), pointer(P, Args)};
strategy({page, Param, First}, Args) when is_integer(First) -> {page, param(Param, Args), First};
strategy(F, _) when is_function(F, 1) -> F;
strategy(Other, Args) -> badarg(Args, io_lib:format("unknown next strategy ~0p", [Other])).

param(P, _) when is_binary(P), P =/= <<>> -> P;
param(P, Args) -> badarg(Args, io_lib:format("a query parameter name is a non-empty binary, not ~0p",
                                             [P])).

pointer(P, Args) ->
    case erqwest_json_pointer:parse(P) of
        {ok, Tokens} -> Tokens;
        {error, Reason} -> badarg(Args, io_lib:format("~s: ~0p", [Reason, P]))
    end.

check(Key, Opts, Default, Valid, Args) ->
    V = maps:get(Key, Opts, Default),
    case V =:= Default orelse Valid(V) of
        true -> V;
        false -> badarg(Args, io_lib:format("invalid value for ~s: ~0p", [Key, V]))
    end.

-spec badarg(list(), iodata()) -> no_return().
badarg(Args, Cause) ->
    erlang:error(badarg, Args, [{error_info, #{module => erqwest,
                                               cause => iolist_to_binary(Cause)}}]).
