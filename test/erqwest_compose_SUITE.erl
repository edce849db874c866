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
-export([query_appended_and_encoded/1, query_values/1, query_from_a_map/1, query_bad_values/1,
         json_body/1, json_body_keeps_a_content_type/1, json_body_bad_terms/1,
         json_body_large_goes_dirty/1, body_options_exclude_each_other/1,
         form_body/1, form_keeps_a_content_type/1,
         multipart_body/1, multipart_file_part/1, multipart_missing_file/1, multipart_bad_parts/1,
         auth_basic_and_bearer/1, auth_client_default/1, auth_not_sent_across_origins/1,
         auth_kept_on_same_origin_redirects/1, auth_bad/1,
         base_url_joins_paths/1, base_url_keeps_absolute_urls/1, base_url_bad/1,
         composed_in_async_requests/1, multipart_1gb_file_in_bounded_memory/1,
         composed_operations/1, non_latin1_atoms_in_query_form_multipart_and_json/1]).

suite() -> [{timetrap, {minutes, 5}}].

all() -> [{group, decode}, {group, query}, {group, bodies}, {group, auth}, {group, base_url},
          {group, large}].

groups() ->
    [{decode, [parallel],
      [decode_is_off_by_default, decode_json_always, decode_auto_by_content_type,
       decode_auto_skips_empty_bodies, decode_errors_carry_the_body, decode_hostile_bodies,
       decode_client_default_and_override, decode_json_null, decode_in_async_messages,
       decode_large_body, decode_not_for_streamed_bodies, decode_bad_options]},
     {query, [parallel],
      [query_appended_and_encoded, query_values, query_from_a_map, query_bad_values]},
     {bodies, [parallel],
      [json_body, json_body_keeps_a_content_type, json_body_bad_terms, json_body_large_goes_dirty,
       body_options_exclude_each_other, form_body, form_keeps_a_content_type, multipart_body,
       multipart_file_part, multipart_missing_file, multipart_bad_parts,
       composed_in_async_requests, composed_operations,
       non_latin1_atoms_in_query_form_multipart_and_json]},
     {auth, [parallel],
      [auth_basic_and_bearer, auth_client_default, auth_not_sent_across_origins,
       auth_kept_on_same_origin_redirects, auth_bad]},
     {base_url, [parallel], [base_url_joins_paths, base_url_keeps_absolute_urls, base_url_bad]},
     {large, [], [multipart_1gb_file_in_bounded_memory]}].

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
    {200, [{"content-type", "application/json"}], binary:copy(<<"[">>, 1000000)};
handle(_) ->
    {200, [], <<"ok">>}.

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

%%% Wire-level helpers

%% Runs `Fun(Server)' against a fresh recording server; returns the
%% requests it saw.
with_server(Fun) ->
    {ok, S} = erqwest_test_server:start(fun(_) -> {200, [], <<"ok">>} end),
    try Fun(S), erqwest_test_server:requests(S)
    after erqwest_test_server:stop(S)
    end.

%% The one request `Opts' sends, as the server saw it.
wire(Config, Opts) ->
    wire(?config(client, Config), Opts, "/p").

wire(Client, Opts, Path) ->
    [Req] = with_server(fun(S) ->
        Url = maps:get(url, Opts, erqwest_test_server:url(S, Path)),
        {ok, #{status := 200}} = erqwest:req(Client, maps:merge(#{method => post}, Opts#{url => Url}))
    end),
    Req.

header(Name, #{headers := Hs}) ->
    [V || {K, V} <- Hs, string:lowercase(K) =:= Name].

%% The error info of a badarg from a composing option.
cause(Fun) ->
    try Fun() of
        Other -> ct:fail({no_badarg, Other})
    catch
        error:badarg:St ->
            [{_, _, _, Info} | _] = St,
            #{cause := Cause} = proplists:get_value(error_info, Info),
            Cause
    end.

%%% query

query_appended_and_encoded(Config) ->
    #{path := P} = wire(Config, #{method => get, query => [{<<"q">>, <<"a b&c=d/é"/utf8>>},
                                                            {<<"k">>, <<"1">>}, {<<"k">>, <<"2">>}]}),
    ?assertEqual(<<"/p?q=a+b%26c%3Dd%2F%C3%A9&k=1&k=2">>, P),
    %% After a query the URL already has.
    Req = with_server(fun(S) ->
        {ok, _} = erqwest:get(?config(client, Config), erqwest_test_server:url(S, "/x?a=1&b"),
                              #{query => [{c, <<"3">>}]}),
        {ok, _} = erqwest:get(?config(client, Config), erqwest_test_server:url(S, "/y"),
                              #{query => []})
    end),
    ?assertMatch([#{path := <<"/x?a=1&b&c=3">>}, #{path := <<"/y">>}], Req).

query_values(Config) ->
    #{path := P} = wire(Config, #{method => get,
                                  query => [{a, 1.5}, {b, 0.1}, {c, -7}, {d, 1 bsl 70}, {e, true},
                                            {f, <<>>}, {'g h', atom_value}, {<<"i">>, 1.0e300}]}),
    ?assertEqual(<<"/p?a=1.5&b=0.1&c=-7&d=1180591620717411303424&e=true&f=&g+h=atom_value"
                   "&i=1e%2B300">>, P).

query_from_a_map(Config) ->
    #{path := P} = wire(Config, #{method => get, query => #{b => <<"2">>, a => <<"1">>}}),
    ?assertEqual(<<"/p?a=1&b=2">>, P).

query_bad_values(Config) ->
    C = ?config(client, Config),
    Url = <<"http://127.0.0.1:1/">>,
    ?assertEqual(<<"query: the value of \"a\" must be a UTF-8 binary, an atom, an integer or a float">>,
                 cause(fun() -> erqwest:get(C, Url, #{query => [{a, {x}}]}) end)),
    ?assertMatch(<<"query: the value of \"a\"", _/binary>>,
                 cause(fun() -> erqwest:get(C, Url, #{query => [{a, <<255>>}]}) end)),
    ?assertMatch(<<"query: a key must be", _/binary>>,
                 cause(fun() -> erqwest:get(C, Url, #{query => [{1, <<"x">>}]}) end)),
    ?assertMatch(<<"query: expected a list", _/binary>>,
                 cause(fun() -> erqwest:get(C, Url, #{query => <<"a=1">>}) end)),
    ?assertMatch(<<"query: expected a list", _/binary>>,
                 cause(fun() -> erqwest:get(C, Url, #{query => [{a, <<"1">>} | b]}) end)),
    ?assertError(badarg, erqwest:get(C, Url, #{query => [a]})).

%%% bodies

json_body(Config) ->
    Req = wire(Config, #{json => #{<<"name">> => <<"é"/utf8>>, list => [1, 2.5, null, true],
                                   big => 1 bsl 100}}),
    ?assertEqual([<<"application/json">>], header(<<"content-type">>, Req)),
    #{body := Body} = Req,
    ?assertEqual(#{<<"name">> => <<"é"/utf8>>, <<"list">> => [1, 2.5, null, true],
                   <<"big">> => 1 bsl 100}, jiffy:decode(Body, [return_maps])),
    ?assertEqual([integer_to_binary(byte_size(Body))], header(<<"content-length">>, Req)),
    %% nil is null too (Elixir).
    #{body := B2} = wire(Config, #{json => [nil]}),
    ?assertEqual(<<"[null]">>, B2).

json_body_keeps_a_content_type(Config) ->
    Req = wire(Config, #{json => [1], headers => [{<<"Content-Type">>, <<"application/vnd.x+json">>}]}),
    ?assertEqual([<<"application/vnd.x+json">>], header(<<"content-type">>, Req)),
    ?assertMatch(#{body := <<"[1]">>}, Req).

json_body_bad_terms(Config) ->
    C = ?config(client, Config),
    Url = <<"http://127.0.0.1:1/">>,
    ?assertEqual(<<"json: cannot encode a tuple as JSON at /users/1/name">>,
                 cause(fun() -> erqwest:post(C, Url, #{json => #{users => [#{name => <<"a">>},
                                                                          #{name => {x}}]}}) end)),
    ?assertMatch(<<"json: cannot encode a pid as JSON at /0">>,
                 cause(fun() -> erqwest:post(C, Url, #{json => [self()]}) end)),
    ?assertMatch(<<"json: cannot encode a binary that is not UTF-8 as JSON at /a">>,
                 cause(fun() -> erqwest:post(C, Url, #{json => #{a => <<255>>}}) end)),
    ?assertMatch(<<"json: cannot encode the atom 'undefined'", _/binary>>,
                 cause(fun() -> erqwest:post(C, Url, #{json => undefined}) end)),
    %% From the async API too, and erqwest:format_error/2 shows it.
    try erqwest_async:req(C, self(), r, #{method => post, url => Url, json => {}}) of
        _ -> ct:fail(no_badarg)
    catch error:badarg:St ->
        ?assertEqual(#{1 => <<"json: cannot encode a tuple as JSON (the whole term)">>},
                     erqwest:format_error(badarg, St))
    end.

json_body_large_goes_dirty(Config) ->
    Term = [#{<<"id">> => I, <<"name">> => <<"item">>, <<"tags">> => [<<"a">>, I * 1.5]}
            || I <- lists:seq(1, 50000)],
    ?assert(erqwest_dirty:request(make_ref(), #{json => Term})),
    ?assertNot(erqwest_dirty:request(make_ref(), #{json => #{a => 1}})),
    ?assert(erqwest_dirty:request(make_ref(), #{query => [{a, I} || I <- lists:seq(1, 10000)]})),
    ?assert(erqwest_dirty:request(make_ref(), #{multipart => [{a, binary:copy(<<"x">>, 100000)}]})),
    #{body := Body} = wire(Config, #{json => Term}),
    ?assertEqual(Term, jiffy:decode(Body, [return_maps])).

body_options_exclude_each_other(Config) ->
    C = ?config(client, Config),
    Url = <<"http://127.0.0.1:1/">>,
    ?assertEqual(<<"only one of json, form and multipart may be given">>,
                 cause(fun() -> erqwest:post(C, Url, #{json => 1, form => []}) end)),
    ?assertEqual(<<"body cannot be combined with json, form or multipart">>,
                 cause(fun() -> erqwest:post(C, Url, #{json => 1, body => <<"x">>}) end)),
    ?assertEqual(<<"body cannot be combined with json, form or multipart">>,
                 cause(fun() -> erqwest:req(C, #{method => post, url => Url, body => stream,
                                                 multipart => []}) end)).

form_body(Config) ->
    Req = wire(Config, #{form => [{<<"a">>, <<"x y&z">>}, {b, 2}, {b, 3.5}, {<<"é"/utf8>>, true}]}),
    ?assertEqual([<<"application/x-www-form-urlencoded">>], header(<<"content-type">>, Req)),
    ?assertMatch(#{body := <<"a=x+y%26z&b=2&b=3.5&%C3%A9=true">>, path := <<"/p">>}, Req),
    ?assertMatch(#{body := <<"a=1&b=2">>}, wire(Config, #{form => #{b => 2, a => 1}})).

form_keeps_a_content_type(Config) ->
    Req = wire(Config, #{form => [{a, 1}],
                         headers => [{<<"content-type">>, <<"application/x-www-form-urlencoded; charset=utf-8">>}]}),
    ?assertEqual([<<"application/x-www-form-urlencoded; charset=utf-8">>], header(<<"content-type">>, Req)).

%% The boundary of a multipart request, from its content type.
boundary(Req) ->
    [Ct] = header(<<"content-type">>, Req),
    <<"multipart/form-data; boundary=", B/binary>> = Ct,
    B.

multipart_body(Config) ->
    Req = wire(Config, #{multipart => [{<<"a">>, <<"1">>},
                                       {b, [<<"io">>, "list", $!]},
                                       #{name => <<"c">>, data => <<"text">>, filename => <<"c.txt">>,
                                         content_type => <<"text/plain">>,
                                         headers => [{<<"x-part">>, <<"yes">>}]}],
                         headers => [{<<"content-type">>, <<"text/plain">>}]}),
    B = boundary(Req),
    Expected = iolist_to_binary(
        ["--", B, "\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n",
         "--", B, "\r\nContent-Disposition: form-data; name=\"b\"\r\n\r\niolist!\r\n",
         "--", B, "\r\nContent-Disposition: form-data; name=\"c\"; filename=\"c.txt\"\r\n"
         "Content-Type: text/plain\r\nx-part: yes\r\n\r\ntext\r\n",
         "--", B, "--\r\n"]),
    ?assertMatch(#{body := Expected}, Req),
    ?assertEqual([integer_to_binary(byte_size(Expected))], header(<<"content-length">>, Req)).

multipart_file_part(Config) ->
    Path = filename:join(?config(priv_dir, Config), "upload.bin"),
    Data = crypto:strong_rand_bytes(100000),
    ok = file:write_file(Path, Data),
    Req = wire(Config, #{multipart => [#{name => f, file => Path},
                                       #{name => g, file => list_to_binary(Path),
                                         filename => <<"other.json">>,
                                         content_type => <<"application/json">>}]}),
    B = boundary(Req),
    Expected = iolist_to_binary(
        ["--", B, "\r\nContent-Disposition: form-data; name=\"f\"; filename=\"upload.bin\"\r\n"
         "Content-Type: application/octet-stream\r\n\r\n", Data, "\r\n",
         "--", B, "\r\nContent-Disposition: form-data; name=\"g\"; filename=\"other.json\"\r\n"
         "Content-Type: application/json\r\n\r\n", Data, "\r\n",
         "--", B, "--\r\n"]),
    ?assertMatch(#{body := Expected}, Req).

multipart_missing_file(Config) ->
    Missing = filename:join(?config(priv_dir, Config), "missing.bin"),
    ?assertMatch({error, #{code := request,
                           reason := <<"multipart part \"f\": cannot read file ", _/binary>>}},
                 erqwest:post(?config(client, Config), <<"http://127.0.0.1:1/">>,
                              #{multipart => [#{name => f, file => Missing}]})),
    {error, #{reason := R}} = erqwest:post(?config(client, Config), <<"http://127.0.0.1:1/">>,
                                           #{multipart => [#{name => f, file => Missing}]}),
    ?assertNotEqual(nomatch, binary:match(R, <<"No such file or directory">>)),
    %% A directory is not a file either.
    {error, #{code := request, reason := Dir}} =
        erqwest:post(?config(client, Config), <<"http://127.0.0.1:1/">>,
                     #{multipart => [#{name => f, file => ?config(priv_dir, Config)}]}),
    ?assertMatch({_, _}, binary:match(Dir, <<"not a regular file">>)).

multipart_bad_parts(Config) ->
    C = ?config(client, Config),
    Url = <<"http://127.0.0.1:1/">>,
    Cause = fun(Parts) -> cause(fun() -> erqwest:post(C, Url, #{multipart => Parts}) end) end,
    ?assertEqual(<<"multipart: part 0: exactly one of data and file is needed">>,
                 Cause([#{name => a, data => <<>>, file => <<"/x">>}])),
    ?assertEqual(<<"multipart: part 1: name is required">>, Cause([{a, <<>>}, #{data => <<>>}])),
    ?assertEqual(<<"multipart: part 0: the value must be iodata">>, Cause([{a, 1}])),
    ?assertMatch(<<"multipart: part 0: unknown key", _/binary>>, Cause([#{name => a, data => <<>>, x => 1}])),
    ?assertEqual(<<"multipart: expected a list of parts">>, Cause(#{})),
    ?assertMatch({error, #{code := request, reason := <<"multipart part \"a\": content_type", _/binary>>}},
                 erqwest:post(C, Url, #{multipart => [#{name => a, data => <<>>,
                                                         content_type => <<"not a type">>}]})).

composed_in_async_requests(Config) ->
    [Req] = with_server(fun(S) ->
        _ = erqwest_async:req(?config(client, Config), self(), ar,
                              #{method => put, url => erqwest_test_server:url(S, "/a"),
                                query => [{x, 1}], json => #{k => <<"v">>}, auth => {bearer, <<"t">>}}),
        receive {erqwest_response, ar, reply, #{status := 200}} -> ok
        after 5000 -> ct:fail(no_reply)
        end
    end),
    ?assertMatch(#{method := <<"PUT">>, path := <<"/a?x=1">>, body := <<"{\"k\":\"v\"}">>}, Req),
    ?assertEqual([<<"Bearer t">>], header(<<"authorization">>, Req)).

%% Issue 28, case 8: atoms are UTF-8 since OTP 20, and every option that
%% takes an atom's name takes one beyond Latin-1, as its UTF-8 bytes.
non_latin1_atoms_in_query_form_multipart_and_json(Config) ->
    #{path := P} = wire(Config, #{method => get, query => [{'α', 1}, {k, 'β'}, {'é', 'ü'}]}),
    ?assertEqual(<<"/p?%CE%B1=1&k=%CE%B2&%C3%A9=%C3%BC">>, P),
    ?assertMatch(#{path := <<"/p?%CE%B1=1">>}, wire(Config, #{method => get, query => #{'α' => 1}})),
    ?assertMatch(#{body := <<"%CE%B1=%F0%9F%98%80">>}, wire(Config, #{form => [{'α', '😀'}]})),
    ?assertMatch(#{body := <<"{\"α\":[\"x\"]}"/utf8>>}, wire(Config, #{json => #{'α' => [<<"x">>]}})),
    %% A multipart name given as an atom is sent as the same binary is.
    AsBinary = wire(Config, #{multipart => [{<<"α"/utf8>>, <<"1">>},
                                            #{name => <<"日本"/utf8>>, data => <<"2">>}]}),
    AsAtom = wire(Config, #{multipart => [{'α', <<"1">>}, #{name => '日本', data => <<"2">>}]}),
    Parts = fun(Req) -> binary:replace(maps:get(body, Req), boundary(Req), <<"B">>, [global]) end,
    ?assertEqual(Parts(AsBinary), Parts(AsAtom)),
    ?assertEqual(<<"--B\r\nContent-Disposition: form-data; name*=utf-8''%CE%B1\r\n\r\n1\r\n"
                   "--B\r\nContent-Disposition: form-data; name*=utf-8''%E6%97%A5%E6%9C%AC\r\n"
                   "\r\n2\r\n--B--\r\n">>, Parts(AsAtom)),
    %% On the runtime's message API too.
    [Req] = with_server(fun(S) ->
        _ = erqwest_async:req(?config(client, Config), self(), au,
                              #{method => get, url => erqwest_test_server:url(S, "/a"),
                                query => [{'α', 'β'}]}),
        receive {erqwest_response, au, reply, #{status := 200}} -> ok
        after 5000 -> ct:fail(no_reply)
        end
    end),
    ?assertMatch(#{path := <<"/a?%CE%B1=%CE%B2">>}, Req).

%% Long-running operations (erqwest_operation) take the same options for
%% their first request, and decode their result.
composed_operations(Config) ->
    [Req] = with_server(fun(S) ->
        {ok, #{status := 200, body := <<"ok">>}} =
            erqwest_operation:wait(?config(client, Config),
                                   #{method => post, url => erqwest_test_server:url(S, "/op"),
                                     query => [{x, 1}], json => #{a => 1}, auth => {bearer, <<"t">>}},
                                   #{})
    end),
    ?assertMatch(#{path := <<"/op?x=1">>, body := <<"{\"a\":1}">>}, Req),
    ?assertEqual([<<"application/json">>], header(<<"content-type">>, Req)),
    ?assertEqual([<<"Bearer t">>], header(<<"authorization">>, Req)),
    ?assertMatch({ok, #{body := #{<<"done">> := true}}},
                 erqwest_operation:wait(?config(client, Config),
                                        #{method => get, decode => auto,
                                          url => url(Config, <<"application/json">>, <<"{\"done\":true}">>)},
                                        #{})),
    ?assertError(badarg, erqwest_operation:wait(?config(client, Config),
                                                #{method => post, url => <<"http://127.0.0.1:1/">>,
                                                  json => {x}}, #{})).

%%% auth

auth_basic_and_bearer(Config) ->
    Basic = wire(Config, #{auth => {basic, <<"Aladdin">>, <<"open sesame">>}}),
    ?assertEqual([<<"Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==">>], header(<<"authorization">>, Basic)),
    Utf8 = wire(Config, #{auth => {basic, <<"ü"/utf8>>, <<>>}}),
    ?assertEqual([<<"Basic ", (base64:encode(<<"ü:"/utf8>>))/binary>>], header(<<"authorization">>, Utf8)),
    Bearer = wire(Config, #{auth => {bearer, <<"abc.def">>}}),
    ?assertEqual([<<"Bearer abc.def">>], header(<<"authorization">>, Bearer)),
    %% The option replaces a header of the request's own.
    Both = wire(Config, #{auth => {bearer, <<"new">>},
                          headers => [{<<"authorization">>, <<"Bearer old">>}]}),
    ?assertEqual([<<"Bearer new">>], header(<<"authorization">>, Both)).

auth_client_default(_Config) ->
    C = erqwest:make_client(#{proxy => no_proxy, auth => {basic, <<"u">>, <<"p">>}}),
    ?assertEqual([<<"Basic dTpw">>], header(<<"authorization">>, wire(C, #{}, "/"))),
    %% A request's own auth or header wins over the client's.
    ?assertEqual([<<"Bearer r">>], header(<<"authorization">>, wire(C, #{auth => {bearer, <<"r">>}}, "/"))),
    ?assertEqual([<<"Token x">>],
                 header(<<"authorization">>, wire(C, #{headers => [{<<"Authorization">>, <<"Token x">>}]}, "/"))),
    %% `auth => none': no credentials at all, not even the client's.
    ?assertEqual([], header(<<"authorization">>, wire(C, #{auth => none}, "/"))),
    ?assertEqual([<<"Token y">>],
                 header(<<"authorization">>,
                        wire(C, #{auth => none, headers => [{<<"authorization">>, <<"Token y">>}]}, "/"))).

auth_not_sent_across_origins(Config) ->
    %% Another port is another origin: the redirect target sees no credentials.
    {ok, Target} = erqwest_test_server:start(fun(_) -> {200, [], <<"target">>} end),
    To = erqwest_test_server:url(Target, "/landed"),
    {ok, Origin} = erqwest_test_server:start(fun(_) -> {302, [{"location", To}], <<>>} end),
    try
        C = erqwest:make_client(#{proxy => no_proxy, auth => {bearer, <<"client">>}}),
        {ok, #{status := 200, body := <<"target">>}} =
            erqwest:get(?config(client, Config), erqwest_test_server:url(Origin, "/start"),
                        #{auth => {basic, <<"u">>, <<"p">>}}),
        {ok, #{status := 200}} = erqwest:get(C, erqwest_test_server:url(Origin, "/start")),
        [O1, O2] = erqwest_test_server:requests(Origin),
        ?assertEqual([<<"Basic dTpw">>], header(<<"authorization">>, O1)),
        ?assertEqual([<<"Bearer client">>], header(<<"authorization">>, O2)),
        [T1, T2] = erqwest_test_server:requests(Target),
        ?assertMatch(#{path := <<"/landed">>}, T1),
        ?assertEqual([], header(<<"authorization">>, T1)),
        ?assertEqual([], header(<<"authorization">>, T2)),
        ?assertEqual(nomatch, binary:match(maps:get(raw, T1), [<<"dTpw">>, <<"client">>]))
    after
        erqwest_test_server:stop(Origin),
        erqwest_test_server:stop(Target)
    end.

auth_kept_on_same_origin_redirects(Config) ->
    {ok, S} = erqwest_test_server:start(fun(#{path := <<"/start">>}) -> {302, [{"location", "/next"}], <<>>};
                                           (_) -> {200, [], <<"ok">>} end),
    try
        {ok, #{status := 200}} = erqwest:get(?config(client, Config), erqwest_test_server:url(S, "/start"),
                                             #{auth => {bearer, <<"t">>}}),
        [R1, R2] = erqwest_test_server:requests(S),
        ?assertEqual([<<"Bearer t">>], header(<<"authorization">>, R1)),
        ?assertMatch(#{path := <<"/next">>}, R2),
        ?assertEqual([<<"Bearer t">>], header(<<"authorization">>, R2))
    after
        erqwest_test_server:stop(S)
    end.

auth_bad(Config) ->
    C = ?config(client, Config),
    Url = <<"http://127.0.0.1:1/">>,
    Shape = <<"auth: expected {basic, User, Password} or {bearer, Token} with UTF-8 binaries">>,
    [?assertEqual(Shape, cause(fun() -> erqwest:get(C, Url, #{auth => A}) end))
     || A <- [{basic, <<"u">>}, {bearer, "t"}, {digest, <<"a">>, <<"b">>}, <<"Bearer x">>,
              {bearer, <<255>>}]],
    ?assertError(badarg, erqwest:make_client(#{auth => {bearer, 1}})),
    %% A token with a byte that no header may hold is the request's err().
    ?assertMatch({error, #{code := request}}, erqwest:get(C, Url, #{auth => {bearer, <<"a\nb">>}})).

%%% base_url

base_url_joins_paths(_Config) ->
    [R1, R2, R3, R4] = with_server(fun(S) ->
        C = erqwest:make_client(#{proxy => no_proxy, base_url => erqwest_test_server:url(S, "/api/v1")}),
        {ok, _} = erqwest:get(C, <<"/users">>),
        {ok, _} = erqwest:get(C, <<"users?x=1">>, #{query => [{y, 2}]}),
        {ok, _} = erqwest:get(C, <<>>),
        C2 = erqwest:make_client(#{proxy => no_proxy, base_url => erqwest_test_server:url(S, "/api/")}),
        {ok, _} = erqwest:get(C2, <<"/items/1">>)
    end),
    ?assertMatch(#{path := <<"/api/v1/users">>}, R1),
    ?assertMatch(#{path := <<"/api/v1/users?x=1&y=2">>}, R2),
    ?assertMatch(#{path := <<"/api/v1">>}, R3),
    ?assertMatch(#{path := <<"/api/items/1">>}, R4).

base_url_keeps_absolute_urls(_Config) ->
    [R] = with_server(fun(S) ->
        C = erqwest:make_client(#{proxy => no_proxy, base_url => <<"http://127.0.0.1:1/api">>}),
        {ok, _} = erqwest:get(C, erqwest_test_server:url(S, "/direct"))
    end),
    ?assertMatch(#{path := <<"/direct">>}, R).

base_url_bad(Config) ->
    ?assertError(badarg, erqwest:make_client(#{base_url => <<"not a url">>})),
    ?assertError(badarg, erqwest:make_client(#{base_url => <<"ftp://h/">>})),
    ?assertError(badarg, erqwest:make_client(#{base_url => "http://h/"})),
    %% Without a base, a path is still a `url' error.
    ?assertMatch({error, #{code := url}}, erqwest:get(?config(client, Config), <<"/users">>)).

%%% large

%% A 1 GB file part streamed from disk: neither the VM's memory nor the
%% process's RSS grows by more than a few MB while it is sent.
multipart_1gb_file_in_bounded_memory(Config) ->
    Size = 1024 * 1024 * 1024,
    Path = filename:join(?config(priv_dir, Config), "sparse-1g.bin"),
    {ok, F} = file:open(Path, [write, raw, binary]),
    ok = file:pwrite(F, 0, <<"HEAD">>),
    ok = file:pwrite(F, Size - 4, <<"TAIL">>),
    ok = file:close(F),
    {ok, S} = erqwest_test_server:start(fun(_) -> {custom, fun count_body/2} end, #{read_body => false}),
    try
        garbage_collect(),
        Before = {erlang:memory(total), rss()},
        Sampler = spawn_link(fun() -> sample(Before) end),
        {ok, #{status := 200, body := Summary}} =
            erqwest:post(?config(client, Config), erqwest_test_server:url(S, "/up"),
                         #{multipart => [#{name => big, file => Path}], timeout => 240000}),
        Sampler ! {stop, self()},
        {MaxMem, MaxRss} = receive {peak, P} -> P end,
        {Count, First, Last} = binary_to_term(Summary),
        ct:pal("1 GB multipart upload: body ~b bytes; peak growth: VM memory ~b KB, RSS ~b KB",
               [Count, (MaxMem - element(1, Before)) div 1024, (MaxRss - element(2, Before)) div 1024]),
        ?assert(Count > Size),
        ?assertNotEqual(nomatch, binary:match(First, <<"filename=\"sparse-1g.bin\"\r\n"
                                                       "Content-Type: application/octet-stream\r\n\r\nHEAD">>)),
        ?assertNotEqual(nomatch, binary:match(Last, <<"TAIL\r\n--">>)),
        ?assertEqual(<<"--\r\n">>, binary:part(Last, byte_size(Last), -4)),
        ?assert(MaxMem - element(1, Before) < 16 * 1024 * 1024),
        ?assert(MaxRss - element(2, Before) < 24 * 1024 * 1024)
    after
        erqwest_test_server:stop(S),
        file:delete(Path)
    end.

%% Reads a content-length body off the socket keeping only its size and
%% its first and last 4 KB; answers them as a term.
count_body(Sock, #{headers := Hs} = Req) ->
    [Len] = [binary_to_integer(V) || {K, V} <- Hs, string:lowercase(K) =:= <<"content-length">>],
    Rest = maps:get(rest, Req, <<>>),
    {Count, First, Last} = count_body(Sock, Len - byte_size(Rest), {byte_size(Rest), Rest, Rest}),
    Summary = term_to_binary({Count, binary:part(First, 0, min(4096, byte_size(First))), Last}),
    erqwest_test_server:send_response({gen_tcp, Sock}, {200, [], Summary}, Req),
    keep.

count_body(_Sock, 0, Acc) -> Acc;
count_body(Sock, Left, {Count, First, Last}) ->
    {ok, Data} = gen_tcp:recv(Sock, 0, 30000),
    First2 = case byte_size(First) < 4096 of
        true -> <<First/binary, Data/binary>>;
        false -> First
    end,
    Both = <<Last/binary, Data/binary>>,
    Last2 = binary:copy(binary:part(Both, byte_size(Both), -min(4096, byte_size(Both)))),
    count_body(Sock, Left - byte_size(Data), {Count + byte_size(Data), First2, Last2}).

sample({Mem0, Rss0}) -> sample(Mem0, Rss0).
sample(Mem, Rss) ->
    receive {stop, From} -> From ! {peak, {Mem, Rss}}
    after 50 -> sample(max(Mem, erlang:memory(total)), max(Rss, rss()))
    end.

rss() ->
    {ok, Status} = file:read_file("/proc/self/status"),
    {match, [Kb]} = re:run(Status, "VmRSS:\\s+(\\d+) kB", [{capture, all_but_first, binary}]),
    binary_to_integer(Kb) * 1024.
