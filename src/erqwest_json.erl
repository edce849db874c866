%% @doc A JSON codec that works on Erlang terms directly, in the NIF.
%%
%% The same codec encodes `json' request bodies and decodes response
%% bodies with `decode => json | auto' (see {@link erqwest}); this module
%% is for JSON that is not in an HTTP body. Inputs too large for a normal
%% scheduler (more than 1 ms of work) go to a dirty one.
%%
%% ```
%% 1> erqwest_json:encode(#{<<"a">> => [1, 2.5, true, null]}).
%% {ok,<<"{\"a\":[1,2.5,true,null]}">>}
%% 2> erqwest_json:decode(<<"{\"a\": [1, 2.5, \"x\", null]}">>).
%% {ok,#{<<"a">> => [1,2.5,<<"x">>,null]}}
%% 3> erqwest_json:decode(<<"[1,">>).
%% {error,#{code => decode,offset => 3,
%%          reason => <<"unexpected end of input at byte 3">>}}
%% '''
%%
%% Objects decode to maps with binary keys (a repeated key: the last
%% wins, as with `maps:from_list/1'), arrays to lists, strings to
%% binaries, integers to integers of any size (up to 4096 digits), other
%% numbers to floats (correctly rounded, however many digits they have),
%% and `null' to the atom `null' (or the `null' option). Nesting is
%% limited to 512 levels, both ways. Encoding takes maps with binary, atom
%% (any Unicode name, written as UTF-8) or integer keys, lists, UTF-8
%% binaries, integers, floats, `true', `false', `null' and `nil'; floats
%% are written in the shortest form that reads back the same.
-module(erqwest_json).

-export([encode/1, decode/1, decode/2]).

-export_type([json/0, decode_opts/0, decode_error/0, encode_error/0]).

-type json() :: #{binary() | atom() | integer() => json()} | [json()] | binary()
              | integer() | float() | boolean() | null | nil.
%% A JSON term: `#{<<"a">> => [1, 2.5, <<"x">>, true, null]}'.
-type decode_opts() :: #{null => atom()}.
%% `null': the atom that JSON `null' becomes (default `null'; Elixir's
%% `Erqwest.JSON' passes `nil').
%%
%% For example `#{null => nil}'.
-type decode_error() :: #{code := decode, reason := binary(), offset := non_neg_integer()}.
%% `offset' is the byte where the problem was found; `reason' says what
%% it was and repeats the offset.
%%
%% For example `#{code => decode, reason => <<"expected value at byte 0">>, offset => 0}'.
-type encode_error() :: #{code := encode, reason := binary(), path := binary()}.
%% `path' is a JSON Pointer (RFC 6901) to the value that has no JSON form,
%% such as `<<"/users/3/name">>'; empty for the whole term.
%%
%% For example `#{code => encode, reason => <<"cannot encode a tuple as JSON">>, path => <<"/a">>}'.

%% Binaries longer than this are decoded on a dirty scheduler.
-define(DIRTY_DECODE_BYTES, 32768).

%% @doc Encodes a term as a JSON binary.
%%
%% ```
%% 1> erqwest_json:encode(#{users => [#{name => <<"a">>}, #{name => {x}}]}).
%% {error,#{code => encode,path => <<"/users/1/name">>,
%%          reason => <<"cannot encode a tuple as JSON at /users/1/name">>}}
%% '''
-spec encode(term()) -> {ok, binary()} | {error, encode_error()}.
encode(Term) ->
    Result = case erqwest_dirty:json(Term) of
        true -> erqwest_nif:json_encode_dirty(Term);
        false -> erqwest_nif:json_encode(Term)
    end,
    case Result of
        {ok, Json} -> {ok, Json};
        {error, {Path, Reason}} -> {error, #{code => encode, reason => Reason, path => Path}}
    end.

%% @doc Same as `decode(Json, #{})': `null' decodes to `null'.
%%
%% ```
%% {ok, #{<<"a">> := [1, null]}} = erqwest_json:decode(<<"{\"a\": [1, null]}">>),
%% {error, #{code := decode, offset := 1}} = erqwest_json:decode(<<"[x]">>).
%% '''
-spec decode(binary()) -> {ok, json()} | {error, decode_error()}.
decode(Json) ->
    decode(Json, #{}).

%% @doc Decodes one JSON document (whitespace around it is allowed, nothing
%% else). Raises `badarg' if `Json' is not a binary or an option is unknown.
%%
%% ```
%% 1> erqwest_json:decode(<<"[null]">>, #{null => nil}).
%% {ok,[nil]}
%% '''
-spec decode(binary(), decode_opts()) -> {ok, json()} | {error, decode_error()}.
decode(Json, Opts) when is_binary(Json), is_map(Opts) ->
    Null = null_option(Opts),
    Result = case byte_size(Json) > ?DIRTY_DECODE_BYTES of
        true -> erqwest_nif:json_decode_dirty(Json, Null);
        false -> erqwest_nif:json_decode(Json, Null)
    end,
    case Result of
        {ok, Term} -> {ok, Term};
        {error, {Offset, Reason}} -> {error, #{code => decode, reason => Reason, offset => Offset}}
    end;
decode(Json, Opts) ->
    erlang:error(badarg, [Json, Opts]).

null_option(Opts) ->
    case maps:fold(fun(K, V, Acc) -> [{K, V} | Acc] end, [], Opts) of
        [] -> null;
        [{null, A}] when is_atom(A) -> A;
        _ -> erlang:error(badarg, [Opts])
    end.
