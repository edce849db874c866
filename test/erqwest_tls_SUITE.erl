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
                          accepted_with_invalid_certs_allowed, only_given_roots,
                          wrong_hostname, wrong_hostname_allowed, min_tls_version]},
     {identity, [parallel], [client_cert_missing, client_cert_pkcs12, client_cert_pem,
                             client_cert_pem_separate, wrong_pkcs12_password]},
     {http2, [], [h2_over_tls_alpn, h2_origin_left_to_reqwest, http1_only_over_tls, h2c_prior_knowledge,
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
    Tls = erqwest_test_peers:free_port(),
    H2c = erqwest_test_peers:free_port(),
    Echo = "location /echo { echo_read_request_body; echo_request_body; }\n"
           "      location /big { return 200 $request_uri; }\n"
           "      location / { return 200 \"proto=$server_protocol\"; }\n",
    Servers = [
        "  load_module_placeholder;\n",
        "  server { listen 127.0.0.1:", integer_to_list(Tls), " ssl http2;\n",
        "      ssl_certificate ", Cert, ";\n      ssl_certificate_key ", Key, ";\n",
        "      client_max_body_size 64m;\n      ", Echo, "  }\n",
        "  server { listen 127.0.0.1:", integer_to_list(H2c), " http2;\n",
        "      client_max_body_size 64m;\n      ", Echo, "  }\n"],
    Peer = erqwest_test_peers:start_nginx(Dir, #{servers => Servers, ports => [Tls, H2c],
                                                 modules => [echo]}),
    [{nginx, Peer}, {tls_port, Tls}, {h2c_port, H2c} | Config];
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

%% erqwest:req/2's direct path offers h2 and http/1.1 as reqwest does; a
%% server that picks h2 gets the request through reqwest (its answer comes
%% by message), and the origin goes straight to reqwest from then on.
h2_origin_left_to_reqwest(Config) ->
    C = erqwest:make_client(roots(Config)),
    Opts = #{method => get, url => tls_url(Config, "/")},
    Ref = make_ref(),
    {wait, Call, _} = erqwest_nif:direct_req(C, Ref, Opts),
    receive {select, _, Ref, _} -> ok after 5000 -> error(no_handshake) end,
    {wait, _, _} = erqwest_nif:direct_poll(Call, Ref),
    receive
        {erqwest_response, Ref, reply, Resp} ->
            #{status := 200, version := 'HTTP/2', body := <<"proto=HTTP/2.0">>} = Resp
    after 5000 -> error(no_answer)
    end,
    fallback = erqwest_nif:direct_req(C, make_ref(), Opts),
    {ok, #{version := 'HTTP/2'}} = erqwest:get(C, tls_url(Config, "/")),
    %% Another client has not learnt it yet.
    {wait, _, _} = erqwest_nif:direct_req(erqwest:make_client(roots(Config)), make_ref(), Opts).

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
