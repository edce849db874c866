%% @doc Certificates made at test time with the openssl command: a CA, a
%% server certificate for localhost and 127.0.0.1, a second server
%% certificate for another name only, a server certificate for 127.0.0.1
%% that expired the day it was made, and a client certificate (PEM and
%% PKCS#12).
-module(erqwest_test_certs).

-export([make/1, der/1]).

%% @doc Writes everything under `Dir' and returns the file names:
%% `ca', `server_cert', `server_key', `other_cert', `other_key',
%% `expired_cert', `expired_key', `client_cert', `client_key', `client_p12'
%% (password `p12pass').
-spec make(file:filename()) -> #{atom() => file:filename()}.
make(Dir0) ->
    %% A fresh directory each time: Erlang's ssl caches PEM files by name,
    %% so new certificates at an old path would meet stale cached ones.
    Dir = filename:join(Dir0, integer_to_list(erlang:unique_integer([positive]))),
    ok = filelib:ensure_dir(filename:join(Dir, "x")),
    F = fun(Name) -> filename:join(Dir, Name) end,
    run(["openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=erqwest-test-ca",
         " -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign",
         " -keyout ", F("ca.key"), " -out ", F("ca.pem")]),
    leaf(F, "server", "/CN=localhost", "subjectAltName=DNS:localhost,IP:127.0.0.1", "serverAuth"),
    leaf(F, "other", "/CN=other.test", "subjectAltName=DNS:other.test", "serverAuth"),
    leaf(F, "client", "/CN=erqwest-client", "subjectAltName=DNS:erqwest-client", "clientAuth"),
    %% Its validity ends a day before it starts: expired whenever checked.
    leaf(F, "expired", "/CN=expired", "subjectAltName=IP:127.0.0.1", "serverAuth", "-1"),
    run(["openssl pkcs12 -export -passout pass:p12pass -inkey ", F("client.key"),
         " -in ", F("client.pem"), " -certfile ", F("ca.pem"), " -out ", F("client.p12")]),
    #{ca => F("ca.pem"), ca_key => F("ca.key"),
      server_cert => F("server.pem"), server_key => F("server.key"),
      other_cert => F("other.pem"), other_key => F("other.key"),
      expired_cert => F("expired.pem"), expired_key => F("expired.key"),
      client_cert => F("client.pem"), client_key => F("client.key"),
      client_p12 => F("client.p12")}.

leaf(F, Name, Subject, San, Usage) ->
    leaf(F, Name, Subject, San, Usage, "2").

leaf(F, Name, Subject, San, Usage, Days) ->
    Ext = F(Name ++ ".ext"),
    ok = file:write_file(Ext, ["basicConstraints=CA:FALSE\n", San, "\n",
                               "extendedKeyUsage=", Usage, "\n"]),
    run(["openssl req -newkey rsa:2048 -nodes -subj ", Subject, " -keyout ", F(Name ++ ".key"),
         " -out ", F(Name ++ ".csr")]),
    run(["openssl x509 -req -days ", Days, " -in ", F(Name ++ ".csr"), " -CA ", F("ca.pem"),
         " -CAkey ", F("ca.key"), " -CAcreateserial -extfile ", Ext, " -out ", F(Name ++ ".pem")]).

%% @doc The DER bytes of the first certificate in a PEM file.
-spec der(file:filename()) -> binary().
der(PemFile) ->
    {ok, Pem} = file:read_file(PemFile),
    [{'Certificate', Der, not_encrypted} | _] = public_key:pem_decode(Pem),
    Der.

run(Cmd) ->
    Out = os:cmd(lists:flatten([Cmd, " 2>&1; echo \"rc=$?\""])),
    case string:find(Out, "rc=0") of
        nomatch -> error({openssl_failed, lists:flatten(Cmd), Out});
        _ -> ok
    end.
