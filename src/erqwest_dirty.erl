%% @private
%% @doc Which arguments are too large for a NIF call on a normal scheduler.
%%
%% Decoding is proportional to the size of what it decodes: a list body
%% must be flattened, a URL parsed, header bytes checked, the caller's
%% reference copied. Each check here looks at a bounded part of its
%% argument (never the whole of a long list), so that it is cheap itself;
%% anything that might be large goes to the NIF's dirty-scheduler variant.
-module(erqwest_dirty).

-export([request/2, headers/1]).

%% Longer header lists, or more header bytes, go to a dirty scheduler.
-define(MAX_HEADERS, 256).
-define(MAX_BYTES, 65536).

%% @doc Whether a request with this `Ref' and these options should be
%% started on a dirty scheduler.
-spec request(term(), term()) -> boolean().
request(Ref, #{} = Opts) ->
    not small_term(Ref) orelse is_list(maps:get(body, Opts, undefined))
        orelse large_url(maps:get(url, Opts, undefined))
        orelse headers(maps:get(headers, Opts, []));
request(Ref, _Opts) ->
    not small_term(Ref).

%% @doc Whether a header list is long, or its first entries hold many
%% bytes.
-spec headers(term()) -> boolean().
headers(Headers) ->
    large_headers(Headers, ?MAX_HEADERS, 0).

large_headers(_, _, Bytes) when Bytes > ?MAX_BYTES -> true;
large_headers([_ | _], 0, _) -> true;
large_headers([{N, V} | T], Left, Bytes) when is_binary(N), is_binary(V) ->
    large_headers(T, Left - 1, Bytes + byte_size(N) + byte_size(V));
large_headers([_ | T], Left, Bytes) -> large_headers(T, Left - 1, Bytes);
large_headers(_, _, _) -> false.

large_url(Url) when is_binary(Url) -> byte_size(Url) > ?MAX_BYTES;
large_url(_) -> false.

%% A reference that copies in constant time: the usual kinds, or a tuple
%% of them (`{Tag, Ref}` and the like).
small_term(T) when is_tuple(T), tuple_size(T) =< 8 ->
    lists:all(fun scalar/1, tuple_to_list(T));
small_term(T) ->
    scalar(T).

scalar(T) ->
    is_reference(T) orelse is_atom(T) orelse is_integer(T) orelse is_pid(T)
        orelse is_port(T) orelse is_float(T) orelse is_binary(T).
