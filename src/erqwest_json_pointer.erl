%% @doc JSON Pointers (RFC 6901) over decoded JSON terms: objects as maps
%% with binary keys, arrays as lists.
%%
%% A pointer is parsed once ({@link parse/1}) and then looked up in each
%% document ({@link get/2}); the work is proportional to the pointer's
%% length, never to the document's size (apart from walking a list to an
%% index).
%%
%% ```
%% {ok, P} = erqwest_json_pointer:parse(<<"/links/next">>),
%% {ok, <<"/items?page=2">>} =
%%     erqwest_json_pointer:get(P, #{<<"links">> => #{<<"next">> => <<"/items?page=2">>}}),
%% {ok, P2} = erqwest_json_pointer:parse(<<"/a~1b/0">>),   % key "a/b", then index 0
%% {ok, 1} = erqwest_json_pointer:get(P2, #{<<"a/b">> => [1, 2]}),
%% error = erqwest_json_pointer:get(P2, #{}).
%% '''
-module(erqwest_json_pointer).

-export([parse/1, get/2]).

-export_type([pointer/0]).

-opaque pointer() :: [binary()].
%% A parsed JSON Pointer (RFC 6901), from {@link parse/1}.

%% @doc Splits a pointer into its reference tokens, undoing `~1' (`/')
%% and `~0' (`~'). The empty pointer is the whole document. Anything that
%% is not a UTF-8 binary, does not start with `/', or has a `~' not
%% followed by `0' or `1' is an error.
%%
%% ```
%% {ok, P} = erqwest_json_pointer:parse(<<"/links/next">>),
%% {error, _} = erqwest_json_pointer:parse(<<"links">>).
%% '''
-spec parse(term()) -> {ok, pointer()} | {error, binary()}.
parse(<<>>) ->
    {ok, []};
parse(<<"/", Rest/binary>> = P) ->
    case unicode:characters_to_binary(P) of
        P ->
            try
                {ok, [unescape(T, <<>>) || T <- binary:split(Rest, <<"/">>, [global])]}
            catch
                throw:bad_escape ->
                    {error, <<"a '~' in a JSON Pointer must be followed by 0 or 1">>}
            end;
        _ ->
            {error, <<"a JSON Pointer must be UTF-8">>}
    end;
parse(P) when is_binary(P) ->
    {error, <<"a JSON Pointer is empty or starts with '/'">>};
parse(_) ->
    {error, <<"a JSON Pointer is a binary">>}.

%% @doc The value the pointer refers to, or `error' when there is none (a
%% missing key, an index past the end or not a valid index, `-', or a
%% step into a scalar).
%%
%% ```
%% {ok, P} = erqwest_json_pointer:parse(<<"/data/0/id">>),
%% {ok, 7} = erqwest_json_pointer:get(P, #{<<"data">> => [#{<<"id">> => 7}]}),
%% error = erqwest_json_pointer:get(P, #{}).
%% '''
-spec get(pointer(), term()) -> {ok, term()} | error.
get([], Doc) ->
    {ok, Doc};
get([Key | Rest], Doc) when is_map(Doc) ->
    case Doc of
        #{Key := V} -> get(Rest, V);
        #{} -> error
    end;
get([Token | Rest], Doc) when is_list(Doc) ->
    case index(Token) of
        {ok, I} ->
            case drop(I, Doc) of
                [V | _] -> get(Rest, V);
                [] -> error
            end;
        error ->
            error
    end;
get(_, _) ->
    error.

unescape(<<"~0", R/binary>>, Acc) -> unescape(R, <<Acc/binary, "~">>);
unescape(<<"~1", R/binary>>, Acc) -> unescape(R, <<Acc/binary, "/">>);
unescape(<<"~", _/binary>>, _) -> throw(bad_escape);
unescape(<<C, R/binary>>, Acc) -> unescape(R, <<Acc/binary, C>>);
unescape(<<>>, Acc) -> Acc.

%% An array index is `0' or digits without a leading zero.
index(<<"0">>) -> {ok, 0};
index(<<D, _/binary>> = T) when D >= $1, D =< $9 ->
    case lists:all(fun(C) -> C >= $0 andalso C =< $9 end, binary_to_list(T)) of
        true -> {ok, binary_to_integer(T)};
        false -> error
    end;
index(_) -> error.

drop(0, L) -> L;
drop(_, []) -> [];
drop(N, [_ | T]) -> drop(N - 1, T).
