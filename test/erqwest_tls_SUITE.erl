%% TLS and HTTP/2: trust roots, hostname checks, client certificates
%% (PKCS#12 and PEM), TLS versions, ALPN and h2c against nginx.
%% Certificates are made at test time (erqwest_test_certs).
-module(erqwest_tls_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-compile([export_all, nowarn_export_all]).

all() ->
    [{group, trust}, {group, identity}, {group, http2}].

groups() ->
    [{trust, [parallel], [trusted_with_additional_root, rejected_without_root,
                          safe_transient_does_not_retry_a_refused_certificate,
                          accepted_with_invalid_certs_allowed, only_given_roots,
                          wrong_hostname, wrong_hostname_allowed, min_tls_version]},
     {identity, [parallel], [client_cert_missing, client_cert_pkcs12, client_cert_pem,
                             client_cert_pem_separate, wrong_pkcs12_password]},
     {http2, [], [h2_over_tls_alpn, h2_on_the_direct_path, h2_direct_parity,
                  h2_request_in_one_segment,
                  h2_busy_origin_goes_to_reqwest, h2_burst_to_a_new_origin,
                  h2_goaway_opens_another,
                  h2_large_body_on_the_runtime,
                  http1_only_over_tls, h2c_prior_knowledge,
                  h2_post_body, h2_streamed_upload_and_download]}].

init_per_suite(Config) ->
    {ok, _} = application:ensure_all_started(erqwest),
    {ok, _} = application:ensure_all_started(ssl),
    Certs = erqwest_test_certs:make(filename:join(?config(priv_dir, Config), "certs")),
    [{certs, Certs}, {ca_der, erqwest_test_certs:der(maps:get(ca, Certs))} | Config].

end_per_suite(_Config) ->
    application:stop(erqwest).

init_per_group(http2, Config) ->
    #{server_cert := Cert, server_key := Key} = ?config(certs, Config),
    Dir = filename:join(?config(priv_dir, Config), "nginx"),
    Files = filename:join(?config(priv_dir, Config), "files"),
    ok = filelib:ensure_dir(filename:join(Files, "x")),
    Big = binary:copy(<<"0123456789abcdef">>, 1 bsl 18),
    ok = file:write_file(filename:join(Files, "4mb"), Big),
    Tls = erqwest_test_peers:free_port(),
    H2c = erqwest_test_peers:free_port(),
    Short = erqwest_test_peers:free_port(),
    %% /conn names the connection and counts its requests; /seen shows
    %% what nginx made of the request's pseudo-headers and headers.
    Echo = "location /echo { echo_read_request_body; echo_request_body; }\n"
           "      location /big { return 200 $request_uri; }\n"
           "      location /files/ { alias " ++ Files ++ "/; }\n"
           "      location /conn { return 200 \"$connection $connection_requests\"; }\n"
           "      location /port { return 200 $remote_port; }\n"
           "      location /seen { return 200 \"$request_method $host|$http_host|$request_uri|"
           "$http_accept|$http_user_agent|$http_x_mine|$content_length|$server_protocol\"; }\n"
           "      location / { return 200 \"proto=$server_protocol\"; }\n",
    Servers = [
        "  load_module_placeholder;\n",
        "  server { listen 127.0.0.1:", integer_to_list(Tls), " ssl http2;\n",
        "      ssl_certificate ", Cert, ";\n      ssl_certificate_key ", Key, ";\n",
        "      client_max_body_size 64m;\n      ", Echo, "  }\n",
        "  server { listen 127.0.0.1:", integer_to_list(H2c), " http2;\n",
        "      client_max_body_size 64m;\n      ", Echo, "  }\n",
        %% A GOAWAY after every third request.
        "  server { listen 127.0.0.1:", integer_to_list(Short), " ssl http2;\n",
        "      keepalive_requests 3;\n",
        "      ssl_certificate ", Cert, ";\n      ssl_certificate_key ", Key, ";\n",
        "      ", Echo, "  }\n"],
    Peer = erqwest_test_peers:start_nginx(Dir, #{servers => Servers, ports => [Tls, H2c, Short],
                                                 modules => [echo]}),
    [{nginx, Peer}, {tls_port, Tls}, {h2c_port, H2c}, {short_port, Short}, {big, Big} | Config];
init_per_group(_, Config) ->
    Config.

end_per_group(http2, Config) ->
    erqwest_test_peers:stop(?config(nginx, Config));
end_per_group(_, _Config) ->
    ok.

%% Helpers

tls_server(Config, Extra) ->
    tls_server(Config, Extra, fun(_) -> {200, [], <<"secure">>} end).

tls_server(Config, Extra, Handler) ->
    #{server_cert := Cert, server_key := Key} = ?config(certs, Config),
    {ok, S} = erqwest_test_server:start(Handler, #{tls => [{certfile, Cert}, {keyfile, Key} | Extra]}),
    S.

with_tls_server(Config, Extra, Fun) ->
    S = tls_server(Config, Extra),
    try Fun(S) after erqwest_test_server:stop(S) end.

roots(Config) -> #{additional_root_certs => [?config(ca_der, Config)]}.

localhost_url(S) ->
    iolist_to_binary(["https://localhost:", integer_to_list(erqwest_test_server:port(S)), "/"]).

%%% trust

trusted_with_additional_root(Config) ->
    with_tls_server(Config, [], fun(S) ->
        C = erqwest:make_client(roots(Config)),
        {ok, #{status := 200, body := <<"secure">>}} = erqwest:get(C, erqwest_test_server:url(S, "/")),
        {ok, #{status := 200}} = erqwest:get(C, localhost_url(S))
    end).

rejected_without_root(Config) ->
    with_tls_server(Config, [], fun(S) ->
        {error, #{code := connect, reason := R}} =
            erqwest:get(erqwest:make_client(), erqwest_test_server:url(S, "/")),
        ct:pal("reason: ~s", [R])
    end).

%% Issue 31: the Elixir default (Req's :safe_transient) retries a refused
%% or closed connection, never a certificate that does not verify.
safe_transient_does_not_retry_a_refused_certificate(Config) ->
    with_tls_server(Config, [], fun(S) ->
        C = erqwest:make_client(#{retry => #{methods => [get, head], base => 1,
                                             errors => [timeout, refused, closed]}}),
        {error, #{code := connect, attempts := 1}} =
            erqwest:get(C, erqwest_test_server:url(S, "/")),
        %% With `connect' it is retried (erqwest's Erlang default).
        C2 = erqwest:make_client(#{retry => #{base => 1, max_retries => 2}}),
        {error, #{code := connect, attempts := 3}} =
            erqwest:get(C2, erqwest_test_server:url(S, "/"))
    end).

accepted_with_invalid_certs_allowed(Config) ->
    with_tls_server(Config, [], fun(S) ->
        C = erqwest:make_client(#{danger_accept_invalid_certs => true}),
        {ok, #{status := 200}} = erqwest:get(C, erqwest_test_server:url(S, "/"))
    end).

only_given_roots(Config) ->
    with_tls_server(Config, [], fun(S) ->
        U = erqwest_test_server:url(S, "/"),
        Only = erqwest:make_client((roots(Config))#{use_built_in_root_certs => false}),
        {ok, #{status := 200}} = erqwest:get(Only, U),
        None = erqwest:make_client(#{use_built_in_root_certs => false}),
        {error, #{code := connect}} = erqwest:get(None, U)
    end).

other_name_server(Config) ->
    #{other_cert := Cert, other_key := Key} = ?config(certs, Config),
    {ok, S} = erqwest_test_server:start(fun(_) -> {200, [], <<"other">>} end,
                                        #{tls => [{certfile, Cert}, {keyfile, Key}]}),
    S.

wrong_hostname(Config) ->
    S = other_name_server(Config),
    try
        {error, #{code := connect}} =
            erqwest:get(erqwest:make_client(roots(Config)), erqwest_test_server:url(S, "/"))
    after erqwest_test_server:stop(S) end.

wrong_hostname_allowed(Config) ->
    S = other_name_server(Config),
    try
        U = erqwest_test_server:url(S, "/"),
        Opts = (roots(Config))#{danger_accept_invalid_hostnames => true},
        {ok, #{body := <<"other">>}} = erqwest:get(erqwest:make_client(Opts), U),
        %% Also without the system roots.
        {ok, _} = erqwest:get(erqwest:make_client(Opts#{use_built_in_root_certs => false}), U),
        %% The chain is still checked: an unknown issuer is refused.
        {error, #{code := connect}} =
            erqwest:get(erqwest:make_client(#{danger_accept_invalid_hostnames => true}), U)
    after erqwest_test_server:stop(S) end.

min_tls_version(Config) ->
    with_tls_server(Config, [{versions, ['tlsv1.2']}], fun(S) ->
        U = erqwest_test_server:url(S, "/"),
        {ok, _} = erqwest:get(erqwest:make_client((roots(Config))#{min_tls_version => 'tlsv1.2'}), U),
        {error, #{code := connect}} =
            erqwest:get(erqwest:make_client((roots(Config))#{min_tls_version => 'tlsv1.3'}), U)
    end).

%%% identity

mtls_server(Config) ->
    #{ca := Ca} = ?config(certs, Config),
    Handler = fun(_) -> {custom, fun(Sock, Req) ->
        %% Answers with the client certificate's common name.
        {ok, Der} = ssl:peercert(Sock),
        erqwest_test_server:send_response({ssl, Sock}, {200, [], subject_cn(Der)}, Req),
        keep
    end} end,
    %% TLS 1.2 so that a refused client certificate fails the handshake itself.
    tls_server(Config, [{verify, verify_peer}, {fail_if_no_peer_cert, true},
                        {cacertfile, Ca}, {versions, ['tlsv1.2']}], Handler).

subject_cn(Der) ->
    {'OTPCertificate', Tbs, _, _} = public_key:pkix_decode_cert(Der, otp),
    {rdnSequence, Rdns} = element(7, Tbs),
    hd([iolist_to_binary(V) || [{'AttributeTypeAndValue', {2, 5, 4, 3}, {_, V}}] <- Rdns]).

with_mtls(Config, Fun) ->
    S = mtls_server(Config),
    try Fun(erqwest_test_server:url(S, "/")) after erqwest_test_server:stop(S) end.

client_cert_missing(Config) ->
    with_mtls(Config, fun(U) ->
        {error, #{code := Code}} = erqwest:get(erqwest:make_client(roots(Config)), U),
        ?assert(lists:member(Code, [connect, request]))
    end).

client_cert_pkcs12(Config) ->
    with_mtls(Config, fun(U) ->
        {ok, P12} = file:read_file(maps:get(client_p12, ?config(certs, Config))),
        C = erqwest:make_client((roots(Config))#{identity => {P12, <<"p12pass">>}}),
        {ok, #{status := 200, body := <<"erqwest-client">>}} = erqwest:get(C, U)
    end).

client_cert_pem(Config) ->
    with_mtls(Config, fun(U) ->
        #{client_cert := CertF, client_key := KeyF} = ?config(certs, Config),
        {ok, Cert} = file:read_file(CertF),
        {ok, Key} = file:read_file(KeyF),
        C = erqwest:make_client((roots(Config))#{identity => {pem, <<Cert/binary, Key/binary>>}}),
        {ok, #{status := 200, body := <<"erqwest-client">>}} = erqwest:get(C, U)
    end).

client_cert_pem_separate(Config) ->
    with_mtls(Config, fun(U) ->
        #{client_cert := CertF, client_key := KeyF} = ?config(certs, Config),
        {ok, Cert} = file:read_file(CertF),
        {ok, Key} = file:read_file(KeyF),
        C = erqwest:make_client((roots(Config))#{identity => {pem, Cert, Key}}),
        {ok, #{status := 200, body := <<"erqwest-client">>}} = erqwest:get(C, U)
    end).

wrong_pkcs12_password(Config) ->
    {ok, P12} = file:read_file(maps:get(client_p12, ?config(certs, Config))),
    ?assertError(badarg, erqwest:make_client(#{identity => {P12, <<"wrong">>}})).

%%% http2 (nginx)

tls_url(Config, Path) ->
    iolist_to_binary(["https://localhost:", integer_to_list(?config(tls_port, Config)), Path]).

h2c_url(Config, Path) ->
    iolist_to_binary(["http://127.0.0.1:", integer_to_list(?config(h2c_port, Config)), Path]).

h2_over_tls_alpn(Config) ->
    C = erqwest:make_client(roots(Config)),
    {ok, #{status := 200, version := 'HTTP/2', body := <<"proto=HTTP/2.0">>}} =
        erqwest:get(C, tls_url(Config, "/")).

%% erqwest:req/2's direct path offers h2 and http/1.1 as reqwest does, and
%% speaks whichever the server picks: over HTTP/2 the answer comes from
%% the NIF calls (no message, no task), and the connection is kept.
h2_on_the_direct_path(Config) ->
    C = erqwest:make_client(roots(Config)),
    Opts = #{method => get, url => tls_url(Config, "/conn")},
    Ref = make_ref(),
    {wait, Call, _} = erqwest_nif:direct_req(C, Ref, Opts),
    receive {select, _, Ref, _} -> ok after 5000 -> error(no_handshake) end,
    {ok, #{status := 200, version := 'HTTP/2', body := First}} = drive_direct(Call, Ref),
    [Conn, <<"1">>] = binary:split(First, <<" ">>),
    Rest = [begin
                {ok, #{version := 'HTTP/2', body := B}} = erqwest:get(C, tls_url(Config, "/conn")),
                B
            end || _ <- lists:seq(1, 5)],
    ?assertEqual([<<Conn/binary, " ", (integer_to_binary(N))/binary>> || N <- lists:seq(2, 6)],
                 Rest),
    ?assertEqual({0, 0}, erqwest_nif:live_resources()),
    ?assertEqual(none, any_message(100)).

%% Runs a direct call on until it answers, as erqwest_direct does.
drive_direct(Call, Ref) ->
    case erqwest_nif:direct_poll(Call, Ref) of
        {wait, Call2, _} ->
            receive {select, _, Ref, _} -> drive_direct(Call2, Ref)
            after 5000 -> error(no_select)
            end;
        {again, Call2} -> drive_direct(Call2, Ref);
        Answer -> Answer
    end.

any_message(After) ->
    receive M -> {message, M} after After -> none end.

%% The same requests (headers, a body, a query, a `host' given) on the
%% direct path and through reqwest, as nginx saw them and as the answers
%% say: the same method, authority, path, headers and protocol.
h2_direct_parity(Config) ->
    Base = erqwest_check:baseline(),
    C = erqwest:make_client(roots(Config)),
    {ok, #{version := 'HTTP/2'}} = erqwest:get(C, tls_url(Config, "/")),
    Reqs = [#{method => get, url => tls_url(Config, "/seen?a=1&b=%20")},
            #{method => post, url => tls_url(Config, "/seen"), body => <<"ten bytes!">>,
              headers => [{<<"x-mine">>, <<"mine">>}, {<<"content-type">>, <<"text/plain">>}]},
            #{method => head, url => tls_url(Config, "/seen")},
            #{method => post, url => tls_url(Config, "/echo"), body => binary:copy(<<"e">>, 60000)},
            #{method => get, url => tls_url(Config, "/seen"),
              headers => [{<<"host">>, <<"given.example">>}]}],
    [begin
         {ok, Direct} = erqwest:req(C, Opts),
         {ok, Reqwest} = via_reqwest(C, Opts),
         ?assertEqual(without_date(Reqwest), without_date(Direct))
     end || Opts <- Reqs],
    {ok, #{body := Seen}} = erqwest:get(C, tls_url(Config, "/seen")),
    Port = integer_to_binary(?config(tls_port, Config)),
    ?assertEqual(<<"GET localhost|localhost:", Port/binary, "|/seen|*/*|erqwest/",
                   (version())/binary, "|||HTTP/2.0">>, Seen),
    ok = erqwest_check:wait_baseline(Base, 5000).

version() ->
    {ok, V} = application:get_key(erqwest, vsn),
    list_to_binary(V).

via_reqwest(C, Opts) -> erqwest_engine:req(runtime, C, Opts, 5000).

without_date(#{headers := H} = Resp) ->
    Resp#{headers := [KV || {K, _} = KV <- H, K =/= <<"date">>]}.

%% A POST's HEADERS and DATA frames, which hyper writes from two tasks,
%% leave the direct connection in one TCP segment (the kernel's
%% data_segs_out of the client's socket, from `ss'): one per request, where
%% each frame in a send of its own would make two.
h2_request_in_one_segment(Config) ->
    C = erqwest:make_client(roots(Config)),
    Port = fun() ->
               {ok, #{version := 'HTTP/2', body := P}} = erqwest:get(C, tls_url(Config, "/port")),
               binary_to_integer(P)
           end,
    Local = Port(),
    Before = data_segs_out(Local),
    N = 40,
    [{ok, #{status := 200, body := <<"0123456789">>}} =
         erqwest:req(C, #{method => post, url => tls_url(Config, "/echo"), body => <<"0123456789">>})
     || _ <- lists:seq(1, N)],
    %% Still the same connection (and the direct one: /port's GET is one
    %% more segment).
    ?assertEqual(Local, Port()),
    Sent = data_segs_out(Local) - Before,
    ct:pal("~p requests: ~p data segments", [N, Sent]),
    ?assert(Sent >= N + 1),
    ?assert(Sent =< N + 4).

%% The segments with data that the socket bound to 127.0.0.1:Local sent.
data_segs_out(Local) ->
    Out = os:cmd("ss -Htin state established '( sport = :" ++ integer_to_list(Local) ++ " )'"),
    case re:run(Out, "data_segs_out:([0-9]+)", [{capture, all_but_first, list}]) of
        {match, [N]} -> list_to_integer(N);
        nomatch -> error({no_socket, Local, Out})
    end.

%% One direct HTTP/2 connection per origin, taken by one request at a
%% time: while it is busy, other callers share reqwest's connection (two
%% in all), and the next caller finds the direct one idle again.
h2_busy_origin_goes_to_reqwest(Config) ->
    C = erqwest:make_client(roots(Config)),
    Url = tls_url(Config, "/conn"),
    {ok, #{body := B0}} = erqwest:get(C, Url),
    [Direct, _] = binary:split(B0, <<" ">>),
    Ref = make_ref(),
    %% Sent on the idle direct connection; its answer not read yet.
    {wait, Call, _} = erqwest_nif:direct_req(C, Ref, #{method => get, url => Url}),
    Others = [begin
                  {ok, #{version := 'HTTP/2', body := B}} = erqwest:get(C, Url),
                  hd(binary:split(B, <<" ">>))
              end || _ <- lists:seq(1, 3)],
    [Shared] = lists:usort(Others),
    ?assertNotEqual(Direct, Shared),
    receive {select, _, Ref, _} -> ok after 5000 -> error(no_answer) end,
    {ok, #{body := B1}} = drive_direct(Call, Ref),
    ?assertEqual(<<Direct/binary, " 2">>, B1),
    {ok, #{body := B2}} = erqwest:get(C, Url),
    ?assertEqual(<<Direct/binary, " 3">>, B2),
    ?assertEqual(none, any_message(100)).

%% A body over 1 MB is read by a runtime task, over HTTP/2 too (where
%% the connection task would read up to the flow-control windows): a
%% 4 MB body takes a few NIF calls, arrives whole by message, and the
%% direct connection is back in the pool for the next request.
h2_large_body_on_the_runtime(Config) ->
    C = erqwest:make_client(roots(Config)),
    {ok, #{version := 'HTTP/2'}} = erqwest:get(C, tls_url(Config, "/")),
    Conn = tls_url(Config, "/conn"),
    {ok, #{body := B0}} = erqwest:get(C, Conn),
    [Direct, _] = binary:split(B0, <<" ">>),
    Big = ?config(big, Config),
    Ref = make_ref(),
    Opts = #{method => get, url => tls_url(Config, "/files/4mb")},
    {{ok, #{status := 200, version := 'HTTP/2', body := Body}}, Times} =
        timed_direct(erqwest_nif:direct_req(C, Ref, Opts), Ref, []),
    ?assert(Body =:= Big),
    ct:pal("4 MB over HTTP/2: ~p NIF calls after the first, ~p us max",
           [length(Times), lists:max([0 | Times])]),
    ?assert(length(Times) =< 2, Times),
    {ok, #{body := B1}} = erqwest:get(C, Conn),
    ?assertMatch([Direct, _], binary:split(B1, <<" ">>)),
    ?assertEqual(none, any_message(100)).

timed_direct({wait, Call, _}, Ref, Acc) ->
    receive
        {select, _, Ref, _} ->
            timed_direct(timed(fun() -> erqwest_nif:direct_poll(Call, Ref) end), Ref, Acc);
        %% Bodies over 1 MB are read on the runtime.
        {erqwest_response, Ref, reply, Resp} -> {{ok, Resp}, Acc}
    after 5000 -> error(no_select)
    end;
timed_direct({again, Call}, Ref, Acc) ->
    timed_direct(timed(fun() -> erqwest_nif:direct_poll(Call, Ref) end), Ref, Acc);
timed_direct({{T, Us}}, Ref, Acc) ->
    timed_direct(T, Ref, [Us | Acc]);
timed_direct(Answer, _Ref, Acc) ->
    {Answer, Acc}.

timed(F) ->
    T0 = erlang:monotonic_time(microsecond),
    R = F(),
    {{R, erlang:monotonic_time(microsecond) - T0}}.

%% Twenty callers at once to an origin the client has not met: one
%% handshake learns that it speaks h2 while the others wait for it, and
%% then they share two connections (the direct one and reqwest's).
h2_burst_to_a_new_origin(Config) ->
    C = erqwest:make_client(roots(Config)),
    Url = tls_url(Config, "/conn"),
    Self = self(),
    Pids = [spawn_link(fun() ->
                           Bodies = [begin
                                         {ok, #{version := 'HTTP/2', body := B}} = erqwest:get(C, Url),
                                         hd(binary:split(B, <<" ">>))
                                     end || _ <- lists:seq(1, 5)],
                           Self ! {conns, self(), Bodies}
                       end) || _ <- lists:seq(1, 20)],
    Conns = lists:append([receive {conns, P, Cs} -> Cs after 10000 -> error(no_answer) end
                          || P <- Pids]),
    ?assertEqual(100, length(Conns)),
    ?assert(length(lists:usort(Conns)) =< 2, lists:usort(Conns)),
    ?assertEqual(none, any_message(100)).

%% nginx ends the connection (GOAWAY) after three requests: the direct
%% path sees it, opens another, and no request fails.
h2_goaway_opens_another(Config) ->
    C = erqwest:make_client(roots(Config)),
    Url = iolist_to_binary(["https://localhost:", integer_to_list(?config(short_port, Config)),
                            "/conn"]),
    Bodies = [begin
                  {ok, #{status := 200, version := 'HTTP/2', body := B}} = erqwest:get(C, Url),
                  binary:split(B, <<" ">>)
              end || _ <- lists:seq(1, 9)],
    Conns = [Conn || [Conn, _] <- Bodies],
    ?assertEqual([<<"1">>, <<"2">>, <<"3">>], lists:usort([N || [_, N] <- Bodies])),
    ?assertEqual(3, length(lists:usort(Conns))),
    ?assertEqual({0, 0}, erqwest_nif:live_resources()),
    ?assertEqual(none, any_message(100)).

http1_only_over_tls(Config) ->
    C = erqwest:make_client((roots(Config))#{http1_only => true}),
    {ok, #{status := 200, version := 'HTTP/1.1', body := <<"proto=HTTP/1.1">>}} =
        erqwest:get(C, tls_url(Config, "/")).

h2c_prior_knowledge(Config) ->
    C = erqwest:make_client(#{http2_prior_knowledge => true}),
    {ok, #{status := 200, version := 'HTTP/2', body := <<"proto=HTTP/2.0">>}} =
        erqwest:get(C, h2c_url(Config, "/")).

h2_post_body(Config) ->
    Body = crypto:strong_rand_bytes(300000),
    [begin
         {ok, #{status := 200, version := 'HTTP/2', body := Body}} =
             erqwest:post(C, U, #{body => Body})
     end || {C, U} <- [{erqwest:make_client(roots(Config)), tls_url(Config, "/echo")},
                       {erqwest:make_client(#{http2_prior_knowledge => true}), h2c_url(Config, "/echo")}]].

h2_streamed_upload_and_download(Config) ->
    C = erqwest:make_client(roots(Config)),
    Chunks = [crypto:strong_rand_bytes(50000) || _ <- lists:seq(1, 10)],
    {handle, H} = erqwest:post(C, tls_url(Config, "/echo"),
                               #{body => stream, response_body => stream}),
    [ok = erqwest:send(H, Chunk) || Chunk <- Chunks],
    {ok, #{status := 200, version := 'HTTP/2', body := RH}} = erqwest:finish_send(H),
    ?assertEqual(iolist_to_binary(Chunks), read_all(RH, <<>>)).

read_all(H, Acc) ->
    case erqwest:read(H, #{length => 65536}) of
        {more, D} -> read_all(H, <<Acc/binary, D/binary>>);
        {ok, D} -> <<Acc/binary, D/binary>>
    end.
