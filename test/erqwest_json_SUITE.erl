%% The JSON codec (erqwest_json, native/src/json.rs): RFC 8259 edge cases
%% by hand, hostile input, and properties: random JSON-shaped terms
%% survive encode then decode, and agree with jiffy both ways; objects
%% with repeated keys decode as maps:from_list/1 makes them; long numbers
%% decode as binary_to_float/1 reads them written plainly.
%%
%% Properties run from a fixed seed (value I is picked with {Seed, I, 1}),
%% so that a failure names the case that reproduces it;
%% ERQWEST_PROP_NUMTESTS scales the number of cases.
-module(erqwest_json_SUITE).

-include_lib("proper/include/proper.hrl").
-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, groups/0, suite/0, init_per_suite/1, end_per_suite/1]).
-export([scalars/1, every_escape/1, surrogate_pairs/1, lone_surrogates/1,
         invalid_utf8_in_strings/1, control_characters/1, negative_zero/1,
         float_out_of_range/1, big_integers/1, long_integers/1, empty_and_duplicate_keys/1,
         deep_nesting/1, a_million_brackets/1, trailing_garbage/1, whitespace/1,
         grammar_errors_give_offsets/1, null_option/1, bad_arguments/1, repeated_keys_are_shared/1,
         repeated_keys_over_32_members_make_a_proper_map/1,
         long_mantissas_and_exponents_decode_exactly/1]).
-export([encode_values/1, encode_floats_shortest/1, encode_escapes/1, encode_keys/1,
         encode_errors_name_the_path/1, encode_deep_nesting/1, large_inputs_go_dirty/1,
         non_latin1_atoms_encode_as_utf8/1]).
-export([round_trip/1, jiffy_reads_our_encoding/1, we_read_jiffys_encoding/1,
         repeated_keys_decode_as_maps_from_list/1, long_numbers_decode_as_the_reference/1]).

-define(NUM_PROP, 400).
-define(DEFAULT_SEED, 20261201).

suite() -> [{timetrap, {minutes, 5}}].

all() -> [{group, decode}, {group, encode}, {group, properties}].

groups() ->
    [{decode, [parallel],
      [scalars, every_escape, surrogate_pairs, lone_surrogates, invalid_utf8_in_strings,
       control_characters, negative_zero, float_out_of_range, big_integers, long_integers,
       empty_and_duplicate_keys, deep_nesting, a_million_brackets, trailing_garbage, whitespace,
       grammar_errors_give_offsets, null_option, bad_arguments, repeated_keys_are_shared,
       repeated_keys_over_32_members_make_a_proper_map,
       long_mantissas_and_exponents_decode_exactly]},
     {encode, [parallel],
      [encode_values, encode_floats_shortest, encode_escapes, encode_keys,
       encode_errors_name_the_path, encode_deep_nesting, large_inputs_go_dirty,
       non_latin1_atoms_encode_as_utf8]},
     {properties, [], [round_trip, jiffy_reads_our_encoding, we_read_jiffys_encoding,
                       repeated_keys_decode_as_maps_from_list,
                       long_numbers_decode_as_the_reference]}].

init_per_suite(Config) ->
    {ok, _} = application:ensure_all_started(erqwest),
    Config.

end_per_suite(_Config) ->
    ok.

%%% Decoding

dec(Bin) ->
    {ok, T} = erqwest_json:decode(Bin),
    T.

%% The offset and the reason of a failed decode.
err(Bin) ->
    {error, #{code := decode, offset := Offset, reason := Reason}} = erqwest_json:decode(Bin),
    %% The reason repeats the offset.
    Suffix = iolist_to_binary([" at byte ", integer_to_list(Offset)]),
    ?assertEqual(Suffix, binary:part(Reason, byte_size(Reason), -byte_size(Suffix))),
    {Offset, Reason}.

scalars(_) ->
    ?assertEqual(true, dec(<<"true">>)),
    ?assertEqual(false, dec(<<"false">>)),
    ?assertEqual(null, dec(<<"null">>)),
    ?assertEqual(0, dec(<<"0">>)),
    ?assertEqual(-12, dec(<<"-12">>)),
    ?assertEqual(1.5, dec(<<"1.5">>)),
    ?assertEqual(1500.0, dec(<<"1.5e3">>)),
    ?assertEqual(0.015, dec(<<"1.5E-2">>)),
    ?assertEqual(100.0, dec(<<"1e+2">>)),
    ?assertEqual(<<>>, dec(<<"\"\"">>)),
    ?assertEqual([], dec(<<"[]">>)),
    ?assertEqual(#{}, dec(<<"{}">>)),
    ?assertEqual(#{<<"a">> => [1, 2.5, <<"x">>, null, true, #{}]},
                 dec(<<"{\"a\":[1,2.5,\"x\",null,true,{}]}">>)).

every_escape(_) ->
    ?assertEqual(<<"\"\\/\b\f\n\r\t">>, dec(<<"\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"">>)),
    ?assertEqual(<<"A", 0, 16#1f, "é€"/utf8>>, dec(<<"\"\\u0041\\u0000\\u001F\\u00e9\\u20AC\"">>)),
    %% Escapes between raw UTF-8 runs.
    ?assertEqual(<<"é\nü"/utf8>>, dec(<<"\"é\\nü\""/utf8>>)),
    ?assertMatch({1, <<"invalid escape in string", _/binary>>}, err(<<"\"\\x\"">>)),
    ?assertMatch({5, <<"invalid escape in string", _/binary>>}, err(<<"\"\\u12G4\"">>)),
    ?assertMatch({5, <<"unexpected end of input", _/binary>>}, err(<<"\"\\u12">>)).

surrogate_pairs(_) ->
    ?assertEqual(<<"😀"/utf8>>, dec(<<"\"\\ud83d\\ude00\"">>)),
    ?assertEqual(<<"x𝄞y"/utf8>>, dec(<<"\"x\\uD834\\uDD1Ey\"">>)),
    %% The same characters raw.
    ?assertEqual(<<"😀𝄞"/utf8>>, dec(<<"\"😀𝄞\""/utf8>>)).

lone_surrogates(_) ->
    ?assertMatch({1, <<"lone surrogate", _/binary>>}, err(<<"\"\\ud83d\"">>)),
    ?assertMatch({1, <<"lone surrogate", _/binary>>}, err(<<"\"\\ude00\"">>)),
    ?assertMatch({3, <<"lone surrogate", _/binary>>}, err(<<"\"ab\\ud83d\\u0041\"">>)),
    ?assertMatch({1, <<"lone surrogate", _/binary>>}, err(<<"\"\\ud83dx\"">>)),
    %% CESU-8 style surrogates as raw bytes are invalid UTF-8.
    ?assertMatch({1, <<"invalid UTF-8", _/binary>>}, err(<<"\"", 16#ed, 16#a0, 16#80, "\"">>)).

invalid_utf8_in_strings(_) ->
    ?assertMatch({3, <<"invalid UTF-8 in string", _/binary>>}, err(<<"\"ab", 255, "\"">>)),
    ?assertMatch({1, <<"invalid UTF-8", _/binary>>}, err(<<"\"", 16#c3, "\"">>)),
    %% Overlong encoding of '/'.
    ?assertMatch({2, <<"invalid UTF-8", _/binary>>}, err(<<"[\"", 16#c0, 16#af, "\"]">>)),
    %% Past U+10FFFF.
    ?assertMatch({1, <<"invalid UTF-8", _/binary>>}, err(<<"\"", 16#f4, 16#90, 16#80, 16#80, "\"">>)),
    %% In a key, after an escape.
    ?assertMatch({4, <<"invalid UTF-8", _/binary>>}, err(<<"{\"\\n", 16#ff, "\":1}">>)),
    %% Outside strings a high byte is just unexpected.
    ?assertMatch({0, <<"unexpected byte 0xff", _/binary>>}, err(<<255>>)).

control_characters(_) ->
    ?assertMatch({2, <<"unescaped control character", _/binary>>}, err(<<"\"a\nb\"">>)),
    ?assertMatch({1, <<"unescaped control character", _/binary>>}, err(<<"\"", 0, "\"">>)),
    %% DEL is not a control character in JSON.
    ?assertEqual(<<127>>, dec(<<"\"", 127, "\"">>)).

negative_zero(_) ->
    %% An integer minus zero is the integer 0; a float keeps its sign.
    ?assertEqual(0, dec(<<"-0">>)),
    ?assert(is_integer(dec(<<"-0">>))),
    ?assertEqual(<<128, 0, 0, 0, 0, 0, 0, 0>>, <<(dec(<<"-0.0">>)):64/float>>),
    ?assertEqual(<<128, 0, 0, 0, 0, 0, 0, 0>>, <<(dec(<<"-0e0">>)):64/float>>).

float_out_of_range(_) ->
    ?assertMatch({0, <<"number out of float range", _/binary>>}, err(<<"1e400">>)),
    ?assertMatch({1, <<"number out of float range", _/binary>>}, err(<<"[-1.5e309]">>)),
    %% Underflow is not an error: it rounds to zero, as any reader does.
    ?assertEqual(0.0, dec(<<"1e-400">>)),
    ?assertEqual(1.7976931348623157e308, dec(<<"1.7976931348623157e308">>)),
    ?assertEqual(5.0e-324, dec(<<"5e-324">>)).

big_integers(_) ->
    ?assertEqual(1 bsl 200, dec(<<"1606938044258990275541962092341162602522202993782792835301376">>)),
    ?assertEqual(-(1 bsl 200), dec(<<"-1606938044258990275541962092341162602522202993782792835301376">>)),
    ?assertEqual(1 bsl 63, dec(integer_to_binary(1 bsl 63))),
    ?assertEqual(-(1 bsl 63), dec(integer_to_binary(-(1 bsl 63)))),
    ?assertEqual(-(1 bsl 63) - 1, dec(integer_to_binary(-(1 bsl 63) - 1))),
    ?assertEqual((1 bsl 64) - 1, dec(integer_to_binary((1 bsl 64) - 1))),
    Big = binary:copy(<<"9">>, 4096),
    ?assertEqual(binary_to_integer(Big), dec(Big)).

long_integers(_) ->
    ?assertMatch({0, <<"integer longer than 4096 digits", _/binary>>},
                 err(binary:copy(<<"9">>, 4097))),
    %% A long number with a fraction is a float, and this one is too big.
    ?assertMatch({0, <<"number out of float range", _/binary>>},
                 err(<<(binary:copy(<<"9">>, 400))/binary, ".5">>)).

empty_and_duplicate_keys(_) ->
    ?assertEqual(#{<<>> => 1}, dec(<<"{\"\":1}">>)),
    ?assertEqual(#{<<"a">> => 3, <<"b">> => 2}, dec(<<"{\"a\":1,\"b\":2,\"a\":3}">>)),
    %% Large objects (hash maps) keep the last value too.
    Pairs = [[$", integer_to_list(I rem 50), "\":", integer_to_list(I)] || I <- lists:seq(0, 99)],
    Obj = dec(iolist_to_binary(["{", lists:join(",", Pairs), "}"])),
    ?assertEqual(50, map_size(Obj)),
    ?assertEqual(99, maps:get(<<"49">>, Obj)),
    ?assertEqual(50, maps:get(<<"0">>, Obj)).

deep_nesting(_) ->
    Ok = <<(binary:copy(<<"[">>, 512))/binary, (binary:copy(<<"]">>, 512))/binary>>,
    ?assertEqual(nest(511, []), dec(Ok)),
    TooDeep = <<(binary:copy(<<"[">>, 513))/binary, (binary:copy(<<"]">>, 513))/binary>>,
    ?assertMatch({512, <<"nesting deeper than 512", _/binary>>}, err(TooDeep)),
    Objs = iolist_to_binary([binary:copy(<<"{\"a\":">>, 600), "1", binary:copy(<<"}">>, 600)]),
    ?assertMatch({2560, <<"nesting deeper than 512", _/binary>>}, err(Objs)).

a_million_brackets(_) ->
    ?assertMatch({512, <<"nesting deeper", _/binary>>}, err(binary:copy(<<"[">>, 1000000))),
    ?assertMatch({_, <<"nesting deeper", _/binary>>}, err(binary:copy(<<"{\"\":">>, 1000000))),
    ?assertMatch({_, <<"nesting deeper", _/binary>>}, err(binary:copy(<<"[{\"a\":">>, 1000000))),
    %% The VM is still here and the codec still works.
    ?assertEqual([1], dec(<<"[1]">>)).

trailing_garbage(_) ->
    ?assertMatch({3, <<"unexpected data after the document", _/binary>>}, err(<<"[] x">>)),
    ?assertMatch({1, <<"unexpected data after", _/binary>>}, err(<<"01">>)),
    ?assertMatch({5, <<"unexpected data after", _/binary>>}, err(<<"true false">>)),
    ?assertMatch({2, <<"unexpected data after", _/binary>>}, err(<<"{}}">>)),
    ?assertMatch({1, <<"unexpected data after", _/binary>>}, err(<<"1", 0>>)).

whitespace(_) ->
    ?assertEqual(#{<<"a">> => [1, 2]}, dec(<<" \t\r\n{ \"a\" :\n[ 1 ,\t2 ] } \n">>)),
    %% Only the four JSON whitespace bytes count.
    ?assertMatch({0, <<"unexpected byte 0x0b", _/binary>>}, err(<<11, "1">>)),
    ?assertMatch({0, <<"unexpected byte 0xc2", _/binary>>}, err(<<"\x{a0}1"/utf8>>)).

grammar_errors_give_offsets(_) ->
    ?assertMatch({0, <<"unexpected end of input", _/binary>>}, err(<<>>)),
    ?assertMatch({2, <<"unexpected end of input", _/binary>>}, err(<<"  ">>)),
    ?assertMatch({3, <<"unexpected character ']'", _/binary>>}, err(<<"[1,]">>)),
    ?assertMatch({3, <<"unexpected character '2'", _/binary>>}, err(<<"[1 2]">>)),
    ?assertMatch({5, <<"unexpected character '1'", _/binary>>}, err(<<"{\"a\" 1}">>)),
    ?assertMatch({1, <<"unexpected character '1'", _/binary>>}, err(<<"{1:2}">>)),
    ?assertMatch({7, <<"unexpected character '}'", _/binary>>}, err(<<"{\"a\":1,}">>)),
    ?assertMatch({0, <<"unexpected character '''", _/binary>>}, err(<<"'a'">>)),
    ?assertMatch({0, <<"unexpected character '+'", _/binary>>}, err(<<"+1">>)),
    ?assertMatch({2, <<"unexpected character 'e'", _/binary>>}, err(<<"1.e5">>)),
    ?assertMatch({0, <<"unexpected character '.'", _/binary>>}, err(<<".5">>)),
    ?assertMatch({3, <<"unexpected end of input", _/binary>>}, err(<<"nul">>)),
    ?assertMatch({0, <<"unexpected character 'N'", _/binary>>}, err(<<"NULL">>)),
    ?assertMatch({1, <<"unexpected character 'U'", _/binary>>}, err(<<"nUll">>)),
    ?assertMatch({0, <<"unexpected character 'N'", _/binary>>}, err(<<"NaN">>)),
    ?assertMatch({1, <<"unexpected character 'I'", _/binary>>}, err(<<"-Infinity">>)),
    ?assertMatch({0, <<"unexpected end of input", _/binary>>}, err(<<"\"abc">>)),
    ?assertMatch({6, <<"unexpected end of input", _/binary>>}, err(<<"{\"a\":1">>)),
    ?assertMatch({0, <<"unexpected character '/'", _/binary>>}, err(<<"// c\n1">>)).

null_option(_) ->
    ?assertEqual({ok, [nil, #{<<"a">> => nil}]}, erqwest_json:decode(<<"[null,{\"a\":null}]">>, #{null => nil})),
    ?assertEqual({ok, undefined}, erqwest_json:decode(<<"null">>, #{null => undefined})),
    ?assertEqual({ok, null}, erqwest_json:decode(<<"null">>, #{})).

bad_arguments(_) ->
    ?assertError(badarg, erqwest_json:decode("[]")),
    ?assertError(badarg, erqwest_json:decode(<<"[]">>, #{null => "nil"})),
    ?assertError(badarg, erqwest_json:decode(<<"[]">>, #{nul => nil})),
    ?assertError(badarg, erqwest_json:decode(<<"[]">>, [])),
    ?assertError(badarg, erqwest_json:decode(<<1:1>>)).

repeated_keys_are_shared(_) ->
    Doc = iolist_to_binary(["[", lists:join(",", lists:duplicate(1000, <<"{\"name\":1,\"k\\u00e9y\":2}">>)), "]"]),
    [A, B | _] = T = dec(Doc),
    ?assertEqual(#{<<"name">> => 1, <<"kéy"/utf8>> => 2}, A),
    [KA1, KA2] = maps:keys(A),
    [KB1, KB2] = maps:keys(B),
    %% The same binary, escaped or not, in every object.
    ?assert(erts_debug:same(KA1, KB1)),
    ?assert(erts_debug:same(KA2, KB2)),
    ?assert(erts_debug:size(T) < erts_debug:flat_size(T)),
    %% Values are not shared.
    [#{<<"v">> := V1}, #{<<"v">> := V2}] = dec(<<"[{\"v\":\"same\"},{\"v\":\"same\"}]">>),
    ?assertNot(erts_debug:same(V1, V2)).

%% Issue 28, case 4: over 32 members whose repeated keys leave 32 or
%% fewer distinct ones made a map in the hash-map layout, which the VM
%% never builds for so few keys: it compared unequal to its equal and was
%% not found in ets.
repeated_keys_over_32_members_make_a_proper_map(_) ->
    Tab = ets:new(proper_maps, [set]),
    Cases = [{N, D} || N <- [33, 40, 41, 63, 64, 65, 100, 1000],
                       D <- [1, 2, 20, 31, 32, 33, 63, 64, 65], D =< N],
    lists:foreach(fun({N, D}) ->
        %% Keys cycle, so the last occurrence of each is the highest I.
        Pairs = [{integer_to_binary(I rem D), I} || I <- lists:seq(1, N)],
        Expected = maps:from_list(Pairs),
        Got = dec(object(Pairs)),
        same_map(Expected, Got, {N, D}),
        true = ets:insert(Tab, {Expected, {N, D}}),
        ?assertEqual([{Expected, {N, D}}], ets:lookup(Tab, Got), {N, D}),
        ?assertEqual({N, D}, maps:get(Got, #{Expected => {N, D}}, missing), {N, D})
    end, Cases),
    %% The issue's own: {"k":1,"k":2,...} 41 times.
    K41 = dec(object([{<<"k">>, I} || I <- lists:seq(1, 41)])),
    same_map(#{<<"k">> => 41}, K41, k41),
    ?assertMatch(#{<<"k">> := 41}, K41),
    %% On a dirty scheduler, and nested, as well.
    Pairs40 = [{integer_to_binary(I rem 20), I} || I <- lists:seq(1, 40)],
    {ok, [Nested]} = erqwest_nif:json_decode_dirty(iolist_to_binary(["[", object(Pairs40), "]"]), null),
    same_map(maps:from_list(Pairs40), Nested, dirty),
    ets:delete(Tab).

%% `Got' is `Expected' in every way the VM can tell: equal, matching,
%% the same size in words.
same_map(Expected, Got, Case) ->
    ?assertEqual(map_size(Expected), map_size(Got), Case),
    ?assert(Expected =:= Got, Case),
    ?assert(Expected == Got, Case),
    ?assertEqual(erts_debug:size(Expected), erts_debug:size(Got), Case),
    ?assertEqual(lists:sort(maps:to_list(Expected)), lists:sort(maps:to_list(Got)), Case),
    ?assert(case Got of Expected -> true; _ -> false end, Case),
    ?assertEqual(erlang:phash2(Expected), erlang:phash2(Got), Case).

%% A JSON object of the pairs, in their order, repeated keys kept.
object(Pairs) ->
    iolist_to_binary(["{", lists:join(",", [[enc(K), ":", enc(V)] || {K, V} <- Pairs]), "}"]).

%% Issue 28, case 7: a number whose exponent is long enough to be cut by
%% the float reader (over 655,359) came out wrong ("0." 700,000 zeros
%% "1e700001" is 1.0 and was 0.0).
long_mantissas_and_exponents_decode_exactly(_) ->
    Zeros = fun(N) -> binary:copy(<<"0">>, N) end,
    [?assertEqual(1.0, dec(<<"0.", (Zeros(Z))/binary, "1e", (integer_to_binary(Z + 1))/binary>>), Z)
     || Z <- [600000, 655358, 655359, 655360, 700000, 1000000]],
    ?assertEqual(-1.0, dec(<<"-0.", (Zeros(700000))/binary, "1E+700001">>)),
    %% Digits before the point, and a negative exponent to match.
    ?assertEqual(1.0, dec(<<"1", (Zeros(700000))/binary, "e-700000">>)),
    ?assertEqual(1.5, dec(<<"15", (Zeros(700000))/binary, ".000e-700001">>)),
    ?assertEqual(0.1, dec(<<"1", (Zeros(700000))/binary, "e-700001">>)),
    %% Leading zeros in the exponent do not count.
    ?assertEqual(1.0e-5, dec(<<"1e-", (Zeros(700000))/binary, "5">>)),
    ?assertEqual(100.0, dec(<<"1e", (Zeros(700000))/binary, "2">>)),
    %% Long mantissas round correctly: just under, at and above a tie.
    Half = <<"9007199254740993">>,  % 2^53 + 1, halfway between two floats
    ?assertEqual(9007199254740992.0, dec(<<Half/binary, ".0">>)),
    ?assertEqual(9007199254740994.0, dec(<<Half/binary, ".", (Zeros(700000))/binary, "1">>)),
    ?assertEqual(9007199254740992.0,
                 dec(<<"9007199254740992.", (binary:copy(<<"9">>, 700000))/binary>>)),
    ?assertEqual(9007199254740994.0,
                 dec(<<"9007199254740993", (Zeros(700000))/binary, "1e-700001">>)),
    %% Out of range stays an error, under range is zero, however written.
    ?assertMatch({0, <<"number out of float range", _/binary>>},
                 err(<<"1", (Zeros(700000))/binary, "e-699690">>)),
    ?assertEqual(1.0e308, dec(<<"1", (Zeros(700000))/binary, "e-699692">>)),
    ?assertEqual(0.0, dec(<<"0.", (Zeros(700000))/binary, "1e400">>)),
    ?assertMatch({0, <<"number out of float range", _/binary>>}, err(<<"1e99999999999999999999999">>)),
    ?assertEqual(0.0, dec(<<"1e-99999999999999999999999">>)),
    ?assertEqual(0.0, dec(<<"0e99999999999999999999999">>)),
    ?assertEqual(0.0, dec(<<"0.", (Zeros(700000))/binary, "e99999999999999999999999">>)),
    %% The smallest subnormal, and the largest float, with 700,000 zeros.
    ?assertEqual(5.0e-324, dec(<<"0.", (Zeros(700000))/binary, "5e699677">>)),
    ?assertEqual(0.0, dec(<<"0.", (Zeros(700000))/binary, "2e699677">>)),
    ?assertEqual(1.7976931348623157e308,
                 dec(<<"0.", (Zeros(700000))/binary, "17976931348623157e700309">>)).

%%% Encoding

enc(T) ->
    {ok, B} = erqwest_json:encode(T),
    B.

enc_err(T) ->
    {error, #{code := encode, path := Path, reason := Reason}} = erqwest_json:encode(T),
    {Path, Reason}.

encode_values(_) ->
    ?assertEqual(<<"[1,-2,true,false,null,null,\"x\",[],{}]">>,
                 enc([1, -2, true, false, null, nil, <<"x">>, [], #{}])),
    ?assertEqual(<<"1606938044258990275541962092341162602522202993782792835301376">>, enc(1 bsl 200)),
    ?assertEqual(<<"-1180591620717411303424">>, enc(-(1 bsl 70))),
    ?assertEqual(integer_to_binary(-(1 bsl 63)), enc(-(1 bsl 63))),
    ?assertEqual(integer_to_binary(1 bsl 63), enc(1 bsl 63)),
    Big = binary_to_integer(binary:copy(<<"12345678">>, 200)),
    ?assertEqual(integer_to_binary(Big), enc(Big)),
    ?assertEqual(integer_to_binary(-Big), enc(-Big)),
    ?assertEqual(<<"\"é😀\""/utf8>>, enc(<<"é😀"/utf8>>)).

encode_floats_shortest(_) ->
    ?assertEqual(<<"1.5">>, enc(1.5)),
    ?assertEqual(<<"0.1">>, enc(0.1)),
    ?assertEqual(<<"1.0">>, enc(1.0)),
    ?assertEqual(<<"-0.0">>, enc(-0.0)),
    ?assertEqual(<<"0.30000000000000004">>, enc(0.1 + 0.2)),
    ?assertEqual(<<"1e+300">>, enc(1.0e300)),
    ?assertEqual(<<"5e-324">>, enc(5.0e-324)),
    ?assertEqual(<<"1.7976931348623157e+308">>, enc(1.7976931348623157e308)),
    %% Every one reads back as the same float.
    [?assertEqual(F, dec(enc(F))) || F <- [1.5, 0.1, 1.0, 0.1 + 0.2, 1.0e300, 5.0e-324,
                                           123456.789, 1.0e-7, 1.0e16, 1.0e15]].

encode_escapes(_) ->
    ?assertEqual(<<"\"\\\"\\\\/\\b\\f\\n\\r\\t\\u0000\\u001f\x7f\"">>,
                 enc(<<"\"\\/\b\f\n\r\t", 0, 16#1f, 127>>)),
    All = list_to_binary(lists:seq(0, 127)),
    ?assertEqual(All, dec(enc(All))).

encode_keys(_) ->
    ?assertEqual(<<"{\"a\":1}">>, enc(#{a => 1})),
    ?assertEqual(<<"{\"a\":1}">>, enc(#{<<"a">> => 1})),
    ?assertEqual(<<"{\"7\":1}">>, enc(#{7 => 1})),
    ?assertEqual(<<"{\"-1180591620717411303424\":1}">>, enc(#{-(1 bsl 70) => 1})),
    ?assertEqual(<<"{\"\":1}">>, enc(#{<<>> => 1})),
    ?assertEqual(<<"{\"a\\\"b\":1}">>, enc(#{<<"a\"b">> => 1})),
    ?assertEqual(<<"{\"é\":1}"/utf8>>, enc(#{'é' => 1})).

encode_errors_name_the_path(_) ->
    ?assertEqual({<<"/users/1/name">>, <<"cannot encode a tuple as JSON at /users/1/name">>},
                 enc_err(#{users => [#{name => <<"a">>}, #{name => {x}}]})),
    ?assertEqual({<<>>, <<"cannot encode a pid as JSON (the whole term)">>}, enc_err(self())),
    ?assertMatch({<<"/0">>, <<"cannot encode a reference", _/binary>>}, enc_err([make_ref()])),
    ?assertMatch({<<"/0">>, <<"cannot encode a fun", _/binary>>}, enc_err([fun() -> ok end])),
    ?assertMatch({<<"/a">>, <<"cannot encode a binary that is not UTF-8", _/binary>>},
                 enc_err(#{a => <<255>>})),
    ?assertMatch({<<"/a">>, <<"cannot encode a bitstring", _/binary>>}, enc_err(#{a => <<1:3>>})),
    ?assertMatch({<<"/2">>, <<"cannot encode the atom 'undefined'", _/binary>>},
                 enc_err([1, 2, undefined])),
    ?assertMatch({<<"/1">>, <<"cannot encode an improper list", _/binary>>}, enc_err([1, [2 | 3]])),
    ?assertMatch({<<"/k">>, <<"cannot encode a key that is a tuple", _/binary>>},
                 enc_err(#{k => #{{a} => 1}})),
    ?assertMatch({<<>>, <<"cannot encode a key that is not UTF-8", _/binary>>},
                 enc_err(#{<<255>> => 1})),
    %% JSON Pointer escapes.
    ?assertMatch({<<"/a~1b~0c">>, _}, enc_err(#{<<"a/b~c">> => {}})),
    ?assertMatch({<<"/3">>, _}, enc_err(#{3 => {}})).

encode_deep_nesting(_) ->
    Ok = nest(511, []),
    ?assertEqual(Ok, dec(enc(Ok))),
    %% On a dirty scheduler (small stack) too: the encoder does not recurse.
    {ok, B} = erqwest_nif:json_encode_dirty(Ok),
    ?assertEqual(Ok, dec(B)),
    Maps = lists:foldl(fun(_, A) -> #{<<"k">> => [A]} end, 1, lists:seq(1, 256)),
    {ok, B2} = erqwest_nif:json_encode_dirty(Maps),
    ?assertEqual(Maps, dec(B2)),
    {Path, Reason} = enc_err(nest(1000000, [])),
    ?assertEqual(512 * 2, byte_size(Path)),
    ?assertMatch(<<"cannot encode a term nested deeper than 512", _/binary>>, Reason).

large_inputs_go_dirty(_) ->
    ?assertNot(erqwest_dirty:json(#{<<"a">> => [1, 2, 3]})),
    ?assert(erqwest_dirty:json(lists:seq(1, 100000))),
    ?assert(erqwest_dirty:json([binary:copy(<<"x">>, 100000)])),
    ?assert(erqwest_dirty:json(maps:from_list([{I, I} || I <- lists:seq(1, 5000)]))),
    ?assert(erqwest_dirty:json(nest(3000, []))),
    %% The check itself is bounded: a 10-million-element list is rejected
    %% after its first few thousand elements.
    Long = lists:seq(1, 10000000),
    {Time, true} = timer:tc(erqwest_dirty, json, [Long]),
    ct:log("check of a 10M list: ~p us", [Time]),
    ?assertEqual(10000000, length(dec(enc(Long)))).

%% Issue 28, case 8: atoms are UTF-8 since OTP 20; a name beyond Latin-1
%% was refused as a key and as a value's error path.
non_latin1_atoms_encode_as_utf8(_) ->
    ?assertEqual(<<"{\"α\":1}"/utf8>>, enc(#{'α' => 1})),
    ?assertEqual(<<"{\"日本\":{\"😀\":[]}}"/utf8>>, enc(#{'日本' => #{'😀' => []}})),
    %% Mixed with Latin-1 and ASCII keys in one map.
    ?assertEqual(#{<<"α"/utf8>> => 1, <<"é"/utf8>> => 2, <<"a">> => 3},
                 dec(enc(#{'α' => 1, 'é' => 2, a => 3}))),
    %% The longest atom (255 characters, 1,020 bytes).
    Long = list_to_atom(lists:duplicate(255, 16#1F600)),
    ?assertEqual(#{atom_to_binary(Long) => true}, dec(enc(#{Long => true}))),
    %% In an error's path, and as a value it is refused by name.
    ?assertEqual({<<"/α"/utf8>>, <<"cannot encode a tuple as JSON at /α"/utf8>>},
                 enc_err(#{'α' => {x}})),
    ?assertMatch({<<"/0">>, <<"cannot encode the atom 'β'"/utf8, _/binary>>}, enc_err(['β'])).

%%% Properties

round_trip(_) ->
    run(round_trip, json_term(), fun(T) -> dec(enc(T)) =:= T end).

jiffy_reads_our_encoding(_) ->
    run(jiffy_reads, json_term(), fun(T) -> jiffy:decode(enc(T), [return_maps]) =:= T end).

we_read_jiffys_encoding(_) ->
    run(we_read, json_term(), fun(T) -> dec(iolist_to_binary(jiffy:encode(T))) =:= T end).

%% Issue 28, case 4 as a property: objects with repeated keys, of every
%% size around the flat map limit (32) and the first hash map levels
%% (64), nested, decode to exactly the map `maps:from_list/1' makes of
%% their pairs (the last value of a key wins), and to jiffy's.
repeated_keys_decode_as_maps_from_list(_) ->
    Tab = ets:new(repeated_keys, [set, public]),
    run(repeated_keys, pairs_object(2), fun(Pairs) ->
        Doc = iolist_to_binary(pairs_json(Pairs)),
        Expected = pairs_map(Pairs),
        {ok, Got} = erqwest_json:decode(Doc),
        true = ets:insert(Tab, {Expected, found}),
        Checks = [Got =:= Expected,
                  %% The same words: the same layout (term_to_binary and
                  %% back makes every binary as the decoder does).
                  erts_debug:flat_size(Got)
                      =:= erts_debug:flat_size(binary_to_term(term_to_binary(Expected))),
                  erlang:phash2(Got) =:= erlang:phash2(Expected),
                  ets:lookup(Tab, Got) =:= [{Expected, found}],
                  maps:get(Got, #{Expected => found}, missing) =:= found,
                  jiffy:decode(Doc, [return_maps]) =:= Got],
        true = ets:delete(Tab, Expected),
        lists:all(fun(C) -> C end, Checks) orelse {failed, Checks}
    end).

%% Issue 28, case 7 as a property: numbers whose significant digits are
%% shifted by long runs of zeros (before or after them, or in the
%% exponent) decode to what `binary_to_float/1' reads from the same value
%% written plainly (`0.DIGITSeK'), or to a range error where it has none.
long_numbers_decode_as_the_reference(_) ->
    run(long_numbers, long_number(), fun({Json, Plain}) ->
        Expected = try binary_to_float(Plain) of
            F -> {ok, <<F:64/float>>}
        catch error:badarg -> out_of_range
        end,
        Got = case erqwest_json:decode(Json) of
            {ok, G} when is_float(G) -> {ok, <<G:64/float>>};
            {error, #{reason := <<"number out of float range", _/binary>>}} -> out_of_range;
            Other -> Other
        end,
        Got =:= Expected orelse {Plain, byte_size(Json), Expected, Got}
    end).

%% A list of {Key, Value} with repeated keys; a value may be such a list
%% again (an object within), `Depth' levels deep.
pairs_object(Depth) ->
    ?LET({Members, Distinct}, {around_limits(Depth), around_limits(Depth)},
         ?LET(Strings, vector(Distinct, json_string()),
              %% Exactly `Distinct' keys: any string, made unique.
              case [<<S/binary, (integer_to_binary(I))/binary>>
                    || {I, S} <- lists:zip(lists:seq(1, Distinct), Strings)] of
                  [] -> [];
                  Keys -> vector(Members, {elements(Keys), member_value(Depth)})
              end)).

%% Sizes around the limits; 1000 only at the top, to keep cases quick.
around_limits(Depth) ->
    Large = if Depth >= 2 -> [1000]; true -> [] end,
    frequency([{6, elements([1, 2, 31, 32, 33, 63, 64, 65])}, {2, range(1, 140)},
               {1, elements([0, 3, 129 | Large])}]).

member_value(0) ->
    oneof([integer(), json_string(), null, true]);
member_value(Depth) ->
    frequency([{8, member_value(0)},
               {1, ?LAZY(?LET(P, pairs_object(Depth - 1), {object, P}))},
               {1, ?LAZY(list(member_value(Depth - 1)))}]).

pairs_json(Pairs) when is_list(Pairs) ->
    ["{", lists:join(",", [[enc(K), ":", value_json(V)] || {K, V} <- Pairs]), "}"].

value_json({object, Pairs}) -> pairs_json(Pairs);
value_json(L) when is_list(L) -> ["[", lists:join(",", [value_json(V) || V <- L]), "]"];
value_json(V) -> enc(V).

pairs_map(Pairs) -> maps:from_list([{K, value_term(V)} || {K, V} <- Pairs]).

value_term({object, Pairs}) -> pairs_map(Pairs);
value_term(L) when is_list(L) -> [value_term(V) || V <- L];
value_term(V) -> V.

%% {Json, Plain}: the same number with its digits shifted by zeros, and
%% written plainly for binary_to_float/1.
long_number() ->
    ?LET({Sign, Digits, K, Shift, Shape},
         {elements(["", "-"]), significant_digits(), range(-345, 312),
          frequency([{4, elements([0, 1, 20])}, {3, elements([400, 5000, 70000])},
                     {1, elements([655360, 700000])}]),
          elements([leading_zeros, trailing_zeros, split, exponent_zeros])},
         {iolist_to_binary([Sign, shaped(Shape, Digits, K, Shift)]),
          iolist_to_binary([Sign, "0.", Digits, "e", integer_to_list(K)])}).

%% A nonzero first digit, then up to ~40 (now and then ~900) more.
significant_digits() ->
    ?LET({First, Rest}, {range($1, $9), frequency([{6, list(range($0, $9))},
                                                   {1, vector(900, range($0, $9))}])},
         [First | Rest]).

%% Every shape has the value 0.Digits x 10^K.
shaped(leading_zeros, Digits, K, Shift) ->
    ["0.", lists:duplicate(Shift, $0), Digits, "e", integer_to_list(K + Shift)];
shaped(trailing_zeros, Digits, K, Shift) ->
    [Digits, lists:duplicate(Shift, $0), "E", integer_to_list(K - length(Digits) - Shift)];
shaped(split, Digits, K, Shift) ->
    %% One digit before the point, the rest and the zeros after it.
    Exp = if K >= 1 -> ["e+", integer_to_list(K - 1)]; true -> ["e", integer_to_list(K - 1)] end,
    [hd(Digits), ".", tl(Digits), lists:duplicate(Shift, $0), "0", Exp];
shaped(exponent_zeros, Digits, K, Shift) ->
    Sign = if K < 0 -> "-"; true -> "" end,
    ["0.", Digits, "e", Sign, lists:duplicate(Shift, $0), integer_to_list(abs(K))].

run(Name, Type, Check) ->
    N = max(1, ?NUM_PROP * env_int("ERQWEST_PROP_NUMTESTS", 100) div 100),
    Seed = env_int("ERQWEST_PROP_SEED", ?DEFAULT_SEED),
    Failures = lists:filtermap(fun(I) ->
        {ok, T} = proper_gen:pick(Type, 1 + (I * 30) div N, {Seed, I, 1}),
        case catch Check(T) of
            true -> false;
            Other -> {true, {I, T, Other}}
        end
    end, lists:seq(1, N)),
    ct:log("~p: ~p cases from seed ~p, ~p failed", [Name, N, Seed, length(Failures)]),
    ?assertEqual([], lists:sublist(Failures, 3)).

env_int(Var, Default) ->
    case os:getenv(Var) of
        false -> Default;
        V -> list_to_integer(V)
    end.

%% Terms that JSON represents exactly: maps with binary keys, lists,
%% UTF-8 binaries, integers (bignums included), floats, booleans, null.
json_term() ->
    ?SIZED(S, json_term(S)).

json_term(S) when S =< 1 ->
    scalar();
json_term(S) ->
    frequency([{4, scalar()},
               {1, ?LAZY(list(json_term(S div 3)))},
               {1, ?LAZY(?LET(Pairs, list({json_string(), json_term(S div 3)}), maps:from_list(Pairs)))}]).

scalar() ->
    oneof([integer(), ?LET(I, integer(), I * (1 bsl 64) + I), ?LET(I, pos_integer(), -(1 bsl (60 + I))),
           float(), ?LET({M, E}, {float(), range(-300, 300)}, M * math:pow(10, E)),
           json_string(), true, false, null]).

json_string() ->
    ?LET(Cs, list(frequency([{5, range($a, $z)}, {2, range(0, 127)}, {1, range(16#80, 16#7ff)},
                             {1, range(16#800, 16#d7ff)}, {1, range(16#e000, 16#fffd)},
                             {1, range(16#10000, 16#10ffff)}])),
         unicode:characters_to_binary(Cs)).

nest(0, Inner) -> Inner;
nest(N, Inner) -> nest(N - 1, [Inner]).
