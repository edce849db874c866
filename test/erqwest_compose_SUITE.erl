%% Requests as people write them (native/src/compose/): JSON response
%% bodies decoded in the runtime; query strings, JSON, form and multipart
%% bodies, auth and base URLs checked byte for byte on the wire of the
%% in-BEAM test server.
-module(erqwest_compose_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, groups/0, suite/0, init_per_suite/1, end_per_suite/1]).
-export([decode_is_off_by_default/1, decode_json_always/1, decode_auto_by_content_type/1,
         decode_auto_skips_empty_bodies/1, decode_errors_carry_the_body/1,
         decode_hostile_bodies/1, decode_client_default_and_override/1, decode_json_null/1,
         decode_in_async_messages/1, decode_large_body/1, decode_not_for_streamed_bodies/1,
         decode_bad_options/1]).

suite() -> [{timetrap, {minutes, 5}}].

all() -> [{group, decode}].

groups() ->
    [{decode, [parallel],
      [decode_is_off_by_default, decode_json_always, decode_auto_by_content_type,
       decode_auto_skips_empty_bodies, decode_errors_carry_the_body, decode_hostile_bodies,
       decode_client_default_and_override, decode_json_null, decode_in_async_messages,
       decode_large_body, decode_not_for_streamed_bodies, decode_bad_options]}].

init_per_suite(Config) ->
    {ok, _} = application:ensure_all_started(erqwest),
    {ok, S} = erqwest_test_server:start(fun handle/1),
    [{server, S}, {client, erqwest:make_client(#{proxy => no_proxy})} | Config].

end_per_suite(Config) ->
    erqwest_test_server:stop(?config(server, Config)).

%% Answers `/ct/<content type>/<body>' with that content type and body
%% (both hex-encoded, so that any bytes fit); `-' is no content type.
handle(#{path := <<"/ct/", Rest/binary>>}) ->
    [Ct, Body] = binary:split(Rest, <<"/">>),
    Headers = case binary:decode_hex(Ct) of
        <<"-">> -> [];
        C -> [{"content-type", C}]
    end,
    {200, Headers, binary:decode_hex(Body)};
handle(#{path := <<"/big/", N/binary>>}) ->
    {200, [{"content-type", "application/json"}], big_json(binary_to_integer(N))};
handle(#{path := <<"/million">>}) ->
    {200, [{"content-type", "application/json"}], binary:copy(<<"[">>, 1000000)}.

url(Config, Ct, Body) ->
    erqwest_test_server:url(?config(server, Config),
                            ["/ct/", binary:encode_hex(Ct), "/", binary:encode_hex(Body)]).

get(Config, Ct, Body, Opts) ->
    erqwest:req(?config(client, Config), Opts#{method => get, url => url(Config, Ct, Body)}).

%% An array of API-like objects, about N bytes.
big_json(N) ->
    Item = <<"{\"id\":12345,\"name\":\"some name \\u00e9\",\"score\":3.25,\"ok\":true,"
             "\"tags\":[\"a\",\"b\",1,null]}">>,
    Count = max(1, N div (byte_size(Item) + 1)),
    iolist_to_binary(["[", lists:join(",", lists:duplicate(Count, Item)), "]"]).

%%% decode

decode_is_off_by_default(Config) ->
    %% erqwest 0.2.5 callers see the binary, whatever the content type.
    ?assertMatch({ok, #{status := 200, body := <<"{\"a\":1}">>}},
                 get(Config, <<"application/json">>, <<"{\"a\":1}">>, #{})),
    ?assertMatch({ok, #{body := <<"{\"a\":1}">>}},
                 get(Config, <<"application/json">>, <<"{\"a\":1}">>, #{decode => none})).

decode_json_always(Config) ->
    ?assertMatch({ok, #{status := 200, body := #{<<"a">> := [1, 2.5, null, <<"é"/utf8>>]}}},
                 get(Config, <<"text/plain">>, <<"{\"a\":[1,2.5,null,\"\\u00e9\"]}">>,
                     #{decode => json})),
    ?assertMatch({ok, #{body := [true]}}, get(Config, <<"-">>, <<"[true]">>, #{decode => json})).

decode_auto_by_content_type(Config) ->
    Json = <<"{\"k\":[1,{}]}">>,
    Decoded = #{<<"k">> => [1, #{}]},
    [?assertMatch({{ok, #{body := Decoded}}, _}, {get(Config, Ct, Json, #{decode => auto}), Ct})
     || Ct <- [<<"application/json">>, <<"application/json; charset=utf-8">>,
               <<"Application/JSON">>, <<"application/problem+json">>,
               <<"application/vnd.api+json">>]],
    [?assertMatch({{ok, #{body := Json}}, _}, {get(Config, Ct, Json, #{decode => auto}), Ct})
     || Ct <- [<<"text/plain">>, <<"text/html">>, <<"application/jsonp">>,
               <<"application/x-ndjson">>, <<"-">>]].

decode_auto_skips_empty_bodies(Config) ->
    ?assertMatch({ok, #{body := <<>>}}, get(Config, <<"application/json">>, <<>>, #{decode => auto})),
    %% With `json' an empty body is not JSON.
    ?assertMatch({error, #{code := decode, reason := <<"unexpected end of input at byte 0">>,
                           body := <<>>}},
                 get(Config, <<"application/json">>, <<>>, #{decode => json})).

decode_errors_carry_the_body(Config) ->
    Html = <<"<html>not json</html>">>,
    {error, Err} = get(Config, <<"application/json">>, Html, #{decode => auto}),
    ?assertMatch(#{code := decode, reason := <<"unexpected character '<' at byte 0">>,
                   body := Html, status := 200}, Err),
    ?assert(lists:member({<<"content-type">>, <<"application/json">>}, maps:get(headers, Err))),
    ?assertMatch({error, #{code := decode, reason := <<"unexpected data after the document at byte 4">>,
                           body := <<"[1] [2]">>}},
                 get(Config, <<"application/json">>, <<"[1] [2]">>, #{decode => json})).

decode_hostile_bodies(Config) ->
    ?assertMatch({error, #{code := decode, reason := <<"invalid UTF-8 in string at byte 3">>,
                           body := <<"[\"a", 255, "\"]">>}},
                 get(Config, <<"application/json">>, <<"[\"a", 255, "\"]">>, #{decode => json})),
    ?assertMatch({error, #{code := decode, reason := <<"lone surrogate in \\u escape at byte 2">>}},
                 get(Config, <<"application/json">>, <<"[\"\\udc00\"]">>, #{decode => json})),
    ?assertMatch({error, #{code := decode, reason := <<"number out of float range at byte 1">>}},
                 get(Config, <<"application/json">>, <<"[1e400]">>, #{decode => json})),
    ?assertMatch({ok, #{body := [1606938044258990275541962092341162602522202993782792835301376]}},
                 get(Config, <<"application/json">>,
                     <<"[1606938044258990275541962092341162602522202993782792835301376]">>,
                     #{decode => json})),
    %% A million '[': an error at the depth limit, not a crash.
    Url = erqwest_test_server:url(?config(server, Config), "/million"),
    {error, #{code := decode, reason := Reason, body := Body}} =
        erqwest:get(?config(client, Config), Url, #{decode => auto}),
    ?assertEqual(<<"nesting deeper than 512 at byte 512">>, Reason),
    ?assertEqual(1000000, byte_size(Body)).

decode_client_default_and_override(Config) ->
    C = erqwest:make_client(#{proxy => no_proxy, decode => auto}),
    Url = url(Config, <<"application/json">>, <<"{\"a\":null}">>),
    ?assertMatch({ok, #{body := #{<<"a">> := null}}}, erqwest:get(C, Url)),
    ?assertMatch({ok, #{body := <<"{\"a\":null}">>}}, erqwest:get(C, Url, #{decode => none})),
    Text = url(Config, <<"text/plain">>, <<"[1]">>),
    ?assertMatch({ok, #{body := <<"[1]">>}}, erqwest:get(C, Text)),
    ?assertMatch({ok, #{body := [1]}}, erqwest:get(C, Text, #{decode => json})).

decode_json_null(Config) ->
    Body = <<"[null,{\"a\":null}]">>,
    ?assertMatch({ok, #{body := [nil, #{<<"a">> := nil}]}},
                 get(Config, <<"application/json">>, Body, #{decode => json, json_null => nil})),
    C = erqwest:make_client(#{proxy => no_proxy, decode => json, json_null => undefined}),
    Url = url(Config, <<"application/json">>, Body),
    ?assertMatch({ok, #{body := [undefined, _]}}, erqwest:get(C, Url)),
    ?assertMatch({ok, #{body := [null, _]}}, erqwest:get(C, Url, #{json_null => null})).

decode_in_async_messages(Config) ->
    Url = url(Config, <<"application/json">>, <<"{\"x\":[1]}">>),
    _ = erqwest_async:req(?config(client, Config), self(), r1,
                          #{method => get, url => Url, decode => auto}),
    receive {erqwest_response, r1, reply, #{body := B}} -> ?assertEqual(#{<<"x">> => [1]}, B)
    after 5000 -> ct:fail(no_reply)
    end,
    Bad = url(Config, <<"application/json">>, <<"{">>),
    _ = erqwest_async:req(?config(client, Config), self(), r2,
                          #{method => get, url => Bad, decode => auto}),
    receive {erqwest_response, r2, error, E} ->
        ?assertMatch(#{code := decode, body := <<"{">>}, E)
    after 5000 -> ct:fail(no_reply)
    end,
    %% Exactly one final message each.
    receive {erqwest_response, _, _, _} = M -> ct:fail({unexpected, M}) after 200 -> ok end.

decode_large_body(Config) ->
    Url = erqwest_test_server:url(?config(server, Config), "/big/2000000"),
    {ok, #{body := Raw}} = erqwest:get(?config(client, Config), Url),
    {ok, #{body := Decoded}} = erqwest:get(?config(client, Config), Url, #{decode => json}),
    ?assertEqual(jiffy:decode(Raw, [return_maps]), Decoded),
    ?assert(length(Decoded) > 10000).

decode_not_for_streamed_bodies(Config) ->
    %% A streamed body is read as binaries, whatever `decode' says.
    Url = url(Config, <<"application/json">>, <<"[1]">>),
    {ok, #{body := H}} = erqwest:req(?config(client, Config),
                                     #{method => get, url => Url, decode => json,
                                       response_body => stream}),
    ?assertEqual({ok, <<"[1]">>}, erqwest:read(H)).

decode_bad_options(Config) ->
    Url = url(Config, <<"application/json">>, <<"[1]">>),
    C = ?config(client, Config),
    ?assertError(badarg, erqwest:get(C, Url, #{decode => yes})),
    ?assertError(badarg, erqwest:get(C, Url, #{decode => <<"json">>})),
    ?assertError(badarg, erqwest:get(C, Url, #{json_null => "nil"})),
    ?assertError(badarg, erqwest:make_client(#{decode => true})),
    ?assertError(badarg, erqwest:make_client(#{json_null => 1})).
