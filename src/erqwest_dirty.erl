%% @private
%% @doc Which arguments are too large for a NIF call on a normal scheduler.
%%
%% Decoding is proportional to the size of what it decodes: a list body
%% must be flattened, a URL parsed, header bytes checked, the caller's
%% reference copied. Each check here looks at a bounded part of its
%% argument (never the whole of a long list), so that it is cheap itself;
%% anything that might be large goes to the NIF's dirty-scheduler variant.
-module(erqwest_dirty).

-export([request/2, headers/1, json/1]).

%% Longer header lists, or more header bytes, go to a dirty scheduler.
-define(MAX_HEADERS, 256).
-define(MAX_BYTES, 65536).
%% JSON terms with more nodes than this are encoded on a dirty scheduler.
-define(MAX_JSON_NODES, 2000).

%% @doc Whether a request with this `Ref' and these options should be
%% started on a dirty scheduler.
-spec request(term(), term()) -> boolean().
request(Ref, #{} = Opts) ->
    not small_term(Ref) orelse is_list(maps:get(body, Opts, undefined))
        orelse large_url(maps:get(url, Opts, undefined))
        orelse headers(maps:get(headers, Opts, []))
        orelse composed(Opts);
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

%% Composing options whose values are encoded in the NIF call: JSON
%% bodies, query and form pairs, multipart parts (iodata is flattened).
composed(Opts) ->
    lists:any(fun(K) -> json(maps:get(K, Opts, [])) end, [json, query, form, multipart]).

%% @doc Whether encoding `Term' as JSON may take more than a normal
%% scheduler's share: it has many nodes or many bytes. The walk stops as
%% soon as the budget is spent, so it costs at most that much itself.
-spec json(term()) -> boolean().
json(Term) ->
    json_budget([Term], ?MAX_JSON_NODES, ?MAX_BYTES) =< 0.

%% The budget left after walking, counting nodes and binary bytes.
json_budget(_, Nodes, Bytes) when Nodes =< 0; Bytes =< 0 -> 0;
json_budget([], Nodes, _) -> Nodes;
json_budget([H | T], Nodes, Bytes) when is_binary(H) ->
    json_budget(T, Nodes - 1, Bytes - byte_size(H));
json_budget([H | T], Nodes, Bytes) when is_map(H) ->
    case map_size(H) >= Nodes of
        true -> 0;
        false -> json_budget(maps:keys(H) ++ maps:values(H) ++ T, Nodes - 1, Bytes)
    end;
json_budget([H | T], Nodes, Bytes) when is_list(H) ->
    json_prefix(H, T, Nodes - 1, Bytes);
json_budget([H | T], Nodes, Bytes) when is_tuple(H) ->
    %% Query and form pairs, multipart parts.
    case tuple_size(H) >= Nodes of
        true -> 0;
        false -> json_budget(tuple_to_list(H) ++ T, Nodes - 1, Bytes)
    end;
json_budget([H | T], Nodes, Bytes) when is_integer(H), abs(H) > 1 bsl 64 ->
    %% Writing a bignum's digits is quadratic in its size.
    json_budget(T, Nodes - 1, Bytes - erlang:external_size(H));
json_budget([_ | T], Nodes, Bytes) ->
    json_budget(T, Nodes - 1, Bytes).

%% A list's elements are taken one by one (never the whole list at once).
json_prefix(_, _, Nodes, _) when Nodes =< 0 -> 0;
json_prefix([E | Es], Rest, Nodes, Bytes) -> json_prefix(Es, [E | Rest], Nodes - 1, Bytes);
json_prefix(_, Rest, Nodes, Bytes) -> json_budget(Rest, Nodes, Bytes).

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
