%% @doc The server side of the benchmark: Debian's nginx, run in the
%% foreground from a temporary prefix, with a certificate authority and a
%% server certificate made on the spot by openssl.
%%
%% Three listeners on 127.0.0.1: plain HTTP/1.1 (`http'), TLS with
%% HTTP/1.1 (`https', no HTTP/2 offered in ALPN) and TLS with HTTP/2
%% (`h2'). Every listener serves the same locations:
%% <ul>
%% <li>`/small': a 13-byte body (GET);</li>
%% <li>`/echo': the request body back (POST, echo module);</li>
%% <li>`/sink': reads the request body and answers `ok' (uploads);</li>
%% <li>`/files/NAME': static files for downloads;</li>
%% <li>`/hold': never answers (an hour's `echo_sleep');</li>
%% <li>`/status': nginx's counters (stub_status).</li>
%% </ul>
-module(bench_nginx).

-export([start/1, stop/1, url/3, small_body/0, file_name/1, writing/1, accepts/1]).

-export_type([server/0, proto/0]).

-type proto() :: http | https | h2.
-type server() :: #{dir := file:filename(), ca := file:filename(),
                    ports := #{proto() => inet:port_number()},
                    port := port(), pid := string(), files := [non_neg_integer()]}.

-define(ECHO_MODULE, "/usr/lib/nginx/modules/ngx_http_echo_module.so").
-define(SMALL_BODY, "hello erqwest\n").

%% @doc The body `/small' answers with.
-spec small_body() -> binary().
small_body() -> <<?SMALL_BODY>>.

%% @doc The name under `/files/' of a file of `Bytes' bytes.
-spec file_name(non_neg_integer()) -> string().
file_name(Bytes) -> integer_to_list(Bytes) ++ ".bin".

%% @doc Starts nginx in `Dir' (a fresh directory of ours). `Opts':
%% `files' (sizes in bytes of the download files), `body_temp' (where
%% nginx spools request bodies; a tmpfs keeps uploads off the disk).
-spec start(#{dir := file:filename(), files := [non_neg_integer()],
              body_temp := file:filename()}) -> server().
start(#{dir := Dir, files := Sizes, body_temp := BodyTemp}) ->
    ok = filelib:ensure_dir(filename:join([Dir, "www", "files", "x"])),
    Ca = make_certs(Dir),
    [make_file(filename:join([Dir, "www", "files", file_name(S)]), S) || S <- Sizes],
    start_nginx(Dir, BodyTemp, Ca, Sizes, 3).

%% @doc Stops nginx (it is our child) and waits for it to go.
-spec stop(server()) -> ok.
stop(#{pid := Pid, port := Port}) ->
    _ = os:cmd("kill -TERM " ++ Pid),
    receive
        {Port, {exit_status, _}} -> ok
    after 10000 -> ok
    end.

%% @doc A URL on the listener of `Proto'.
-spec url(server(), proto(), iodata()) -> binary().
url(#{ports := Ports}, Proto, Path) ->
    Scheme = case Proto of http -> "http"; _ -> "https" end,
    iolist_to_binary([Scheme, "://127.0.0.1:", integer_to_list(maps:get(Proto, Ports)), Path]).

%% @doc How many requests nginx is working on now (stub_status's
%% `Writing', which counts the status request itself).
-spec writing(server()) -> non_neg_integer().
writing(Srv) ->
    {match, [N]} = re:run(status(Srv), "Writing: ([0-9]+)", [{capture, all_but_first, list}]),
    list_to_integer(N).

%% @doc How many connections nginx has accepted since it started, the
%% status request's own included.
-spec accepts(server()) -> non_neg_integer().
accepts(Srv) ->
    %% "Active connections: N\nserver accepts handled requests\n A H R".
    {match, [N]} = re:run(status(Srv), "requests\\s+([0-9]+)", [{capture, all_but_first, list}]),
    list_to_integer(N).

status(Srv) ->
    {ok, S} = gen_tcp:connect({127, 0, 0, 1}, maps:get(http, maps:get(ports, Srv)),
                              [binary, {active, false}], 5000),
    ok = gen_tcp:send(S, "GET /status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
    recv_all(S, <<>>).

recv_all(S, Acc) ->
    case gen_tcp:recv(S, 0, 5000) of
        {ok, D} -> recv_all(S, <<Acc/binary, D/binary>>);
        {error, _} -> gen_tcp:close(S), Acc
    end.

%%% Internals

%% Ports are picked by the kernel, released, then given to nginx; another
%% process may take one in between, so a failed start is retried.
start_nginx(_Dir, _BodyTemp, _Ca, _Sizes, 0) ->
    error(nginx_did_not_start);
start_nginx(Dir, BodyTemp, Ca, Sizes, Tries) ->
    Ports = maps:from_list([{P, free_port()} || P <- [http, https, h2]]),
    Conf = filename:join(Dir, "nginx.conf"),
    ok = file:write_file(Conf, config(Dir, BodyTemp, Ports)),
    _ = file:delete(filename:join(Dir, "nginx.pid")),
    Nginx = case os:find_executable("nginx") of
        false -> error(nginx_not_found);
        Path -> Path
    end,
    Port = open_port({spawn_executable, Nginx},
                     [{args, ["-p", Dir, "-c", Conf, "-e", "stderr"]},
                      exit_status, stderr_to_stdout, binary]),
    case wait_listening(Port, maps:values(Ports), 100) of
        ok ->
            {ok, PidText} = file:read_file(filename:join(Dir, "nginx.pid")),
            #{dir => Dir, ca => Ca, ports => Ports, port => Port,
              pid => string:trim(binary_to_list(PidText)), files => Sizes};
        {exited, Output} ->
            io:format(standard_error, "nginx failed to start, retrying:~n~s~n", [Output]),
            start_nginx(Dir, BodyTemp, Ca, Sizes, Tries - 1)
    end.

free_port() ->
    {ok, L} = gen_tcp:listen(0, [{ip, {127, 0, 0, 1}}, {reuseaddr, true}]),
    {ok, P} = inet:port(L),
    ok = gen_tcp:close(L),
    P.

wait_listening(Port, _Ports, 0) ->
    {exited, drain(Port, <<"nginx did not listen within 10 s">>)};
wait_listening(Port, Ports, N) ->
    receive
        {Port, {exit_status, _}} -> {exited, drain(Port, <<>>)};
        {Port, {data, D}} -> io:format(standard_error, "nginx: ~s", [D]),
                             wait_listening(Port, Ports, N)
    after 100 ->
        case lists:all(fun connectable/1, Ports) of
            true -> ok;
            false -> wait_listening(Port, Ports, N - 1)
        end
    end.

drain(Port, Acc) ->
    receive {Port, {data, D}} -> drain(Port, <<Acc/binary, D/binary>>)
    after 0 -> Acc
    end.

connectable(P) ->
    case gen_tcp:connect({127, 0, 0, 1}, P, [], 1000) of
        {ok, S} -> gen_tcp:close(S), true;
        {error, _} -> false
    end.

%% A sparse file: reads come from zero pages, so no disk is involved.
make_file(Path, Size) ->
    {ok, F} = file:open(Path, [write, raw]),
    {ok, _} = file:position(F, Size),
    ok = file:truncate(F),
    ok = file:close(F).

%% A CA and a server certificate for 127.0.0.1 and localhost, signed by
%% it: rustls refuses a self-signed CA certificate used as the server's.
make_certs(Dir) ->
    F = fun(Name) -> filename:join(Dir, Name) end,
    ok = file:write_file(F("server.ext"),
                         "basicConstraints=CA:FALSE\n"
                         "keyUsage=critical,digitalSignature\n"
                         "extendedKeyUsage=serverAuth\n"
                         "subjectAltName=IP:127.0.0.1,DNS:localhost\n"),
    Ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes",
    openssl(["req -x509 ", Ec, " -keyout ", F("ca.key"), " -out ", F("ca.pem"),
             " -days 2 -subj /CN=erqwest-bench-ca",
             " -addext basicConstraints=critical,CA:TRUE",
             " -addext keyUsage=critical,keyCertSign"]),
    openssl(["req ", Ec, " -keyout ", F("server.key"), " -out ", F("server.csr"),
             " -subj /CN=localhost"]),
    openssl(["x509 -req -in ", F("server.csr"), " -CA ", F("ca.pem"), " -CAkey ", F("ca.key"),
             " -set_serial 2 -days 2 -out ", F("server.pem"), " -extfile ", F("server.ext")]),
    F("ca.pem").

openssl(Args) ->
    Cmd = lists:flatten(["openssl ", Args, " 2>&1; echo \"exit=$?\""]),
    Out = os:cmd(Cmd),
    case string:find(Out, "exit=0") of
        nomatch -> error({openssl_failed, Cmd, Out});
        _ -> ok
    end.

config(Dir, BodyTemp, Ports) ->
    User = case os:cmd("id -u") of "0\n" -> "user root;\n"; _ -> "" end,
    Listen = fun(Proto, Extra) ->
        io_lib:format("listen 127.0.0.1:~b~s;", [maps:get(Proto, Ports), Extra])
    end,
    Server = fun(ListenLine) ->
        ["    server {\n"
         "        ", ListenLine, "\n"
         "        root ", Dir, "/www;\n"
         "        location = /small { return 200 \"", escape(?SMALL_BODY), "\"; }\n"
         "        location = /echo { echo_read_request_body; echo_request_body; }\n"
         "        location = /sink { client_body_buffer_size 1m; echo_read_request_body; echo ok; }\n"
         "        location /files/ { }\n"
         "        location = /hold { echo_sleep 3600; }\n"
         "        location = /status { stub_status; }\n"
         "    }\n"]
    end,
    T = fun(Name) -> filename:join(Dir, Name) end,
    ["load_module ", ?ECHO_MODULE, ";\n",
     User,
     "daemon off;\n"
     "worker_processes 1;\n"
     "worker_rlimit_nofile 20000;\n"
     "pid ", T("nginx.pid"), ";\n"
     "error_log stderr warn;\n"
     "events { worker_connections 16384; }\n"
     "http {\n"
     "    access_log off;\n"
     "    default_type text/plain;\n"
     "    sendfile on;\n"
     "    tcp_nopush on;\n"
     "    tcp_nodelay on;\n"
     %% Connections stay open for the whole run, as for a real client
     %% pool; nginx's default closes them every 1,000 requests.
     "    keepalive_requests 100000000;\n"
     "    keepalive_timeout 600s;\n"
     "    client_max_body_size 0;\n"
     "    client_body_buffer_size 128k;\n"
     "    large_client_header_buffers 16 64k;\n"
     %% Enough for the 10,000 requests held in flight on one connection.
     "    http2_max_concurrent_streams 16384;\n"
     "    client_body_temp_path ", BodyTemp, ";\n"
     "    proxy_temp_path ", T("proxy_temp"), ";\n"
     "    fastcgi_temp_path ", T("fastcgi_temp"), ";\n"
     "    uwsgi_temp_path ", T("uwsgi_temp"), ";\n"
     "    scgi_temp_path ", T("scgi_temp"), ";\n"
     "    ssl_certificate ", T("server.pem"), ";\n"
     "    ssl_certificate_key ", T("server.key"), ";\n"
     "    ssl_protocols TLSv1.2 TLSv1.3;\n",
     Server(Listen(http, "")),
     Server(Listen(https, " ssl")),
     Server(Listen(h2, " ssl http2")),
     "}\n"].

escape(S) -> string:replace(S, "\n", "\\n", all).
