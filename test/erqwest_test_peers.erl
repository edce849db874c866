%% @doc Real peers for the tests: nginx (HTTP/2 over TLS with ALPN, h2c
%% with prior knowledge, HTTP/1.1) and tinyproxy, each run in the
%% foreground from a configuration written to a test directory.
-module(erqwest_test_peers).

-export([free_port/0, start_nginx/2, start_tinyproxy/2, stop/1]).

-type peer() :: #{port := port(), os_pid := integer(), name := string()}.
-export_type([peer/0]).

%% @doc A port nobody listens on right now.
-spec free_port() -> inet:port_number().
free_port() ->
    {ok, S} = gen_tcp:listen(0, [{ip, {127, 0, 0, 1}}, {reuseaddr, true}]),
    {ok, Port} = inet:port(S),
    ok = gen_tcp:close(S),
    Port.

%% @doc Starts nginx with the `http { }' body `Servers' (iodata) in `Dir'.
%% Waits until every `Ports' listens.
-spec start_nginx(file:filename(), #{servers := iodata(), ports := [inet:port_number()],
                                     modules => [echo]}) -> peer().
start_nginx(Dir, #{servers := Servers0, ports := Ports} = Opts) ->
    Servers = [S || S <- Servers0, S =/= "  load_module_placeholder;\n"],
    Modules = [["load_module ", module_path(M), ";\n"] || M <- maps:get(modules, Opts, [])],
    ok = filelib:ensure_dir(filename:join([Dir, "logs", "x"])),
    Conf = filename:join(Dir, "nginx.conf"),
    ok = file:write_file(Conf, [
        Modules,
        "daemon off;\nmaster_process off;\nworker_processes 1;\nuser root;\n",
        "error_log ", filename:join(Dir, "error.log"), " warn;\n",
        "pid ", filename:join(Dir, "nginx.pid"), ";\n",
        "events { worker_connections 1024; }\n",
        "http {\n  access_log off;\n",
        "  client_body_temp_path ", filename:join(Dir, "body"), ";\n",
        "  proxy_temp_path ", filename:join(Dir, "proxy"), ";\n",
        "  fastcgi_temp_path ", filename:join(Dir, "fastcgi"), ";\n",
        "  uwsgi_temp_path ", filename:join(Dir, "uwsgi"), ";\n",
        "  scgi_temp_path ", filename:join(Dir, "scgi"), ";\n",
        Servers, "\n}\n"]),
    start(Dir, "nginx", find_exe(["/usr/sbin/nginx", "nginx"]),
          ["-e", filename:join(Dir, "error.log"), "-p", Dir, "-c", Conf], Ports).

%% @doc Starts tinyproxy on `Port'; `Auth' is `none' or `{User, Pass}'.
-spec start_tinyproxy(file:filename(), #{port := inet:port_number(),
                                          auth := none | {string(), string()}}) -> peer().
start_tinyproxy(Dir, #{port := Port, auth := Auth}) ->
    ok = filelib:ensure_dir(filename:join(Dir, "x")),
    Conf = filename:join(Dir, "tinyproxy.conf"),
    AuthLine = case Auth of
        none -> "";
        {User, Pass} -> ["BasicAuth ", User, " ", Pass, "\n"]
    end,
    ok = file:write_file(Conf, [
        "User nobody\nGroup nogroup\n",
        "Port ", integer_to_list(Port), "\nListen 127.0.0.1\nTimeout 30\n",
        "MaxClients 50\nAllow 127.0.0.1\nLogLevel Info\n",
        "DisableViaHeader No\n", AuthLine]),
    start(Dir, "tinyproxy", find_exe(["/usr/bin/tinyproxy", "/usr/sbin/tinyproxy", "tinyproxy"]),
          ["-d", "-c", Conf], [Port]).

%% @doc Stops a peer and waits for it to exit.
-spec stop(peer()) -> ok.
stop(#{port := Port, os_pid := OsPid}) ->
    _ = os:cmd("kill " ++ integer_to_list(OsPid)),
    receive {Port, {exit_status, _}} -> ok after 5000 -> ok end,
    catch port_close(Port),
    ok.

start(Dir, Name, Exe, Args, Ports) ->
    Log = filename:join(Dir, Name ++ ".out"),
    %% A shell wrapper so that the peer's output goes to a file and its pid
    %% is known; exec keeps the pid.
    Cmd = lists:flatten(io_lib:format("echo $$; exec ~s ~s >~s 2>&1",
                                      [Exe, string:join([quote(A) || A <- Args], " "), Log])),
    Port = open_port({spawn_executable, "/bin/sh"},
                     [{args, ["-c", Cmd]}, exit_status, {line, 256}]),
    OsPid = receive {Port, {data, {eol, Line}}} -> list_to_integer(Line)
            after 5000 -> error({no_pid, Name}) end,
    Peer = #{port => Port, os_pid => OsPid, name => Name},
    case wait_listening(Ports, 100) of
        ok -> Peer;
        timeout ->
            {ok, Out} = file:read_file(Log),
            stop(Peer),
            error({peer_did_not_start, Name, Out})
    end.

wait_listening(_Ports, 0) -> timeout;
wait_listening(Ports, N) ->
    Up = lists:all(fun(P) ->
        case gen_tcp:connect({127, 0, 0, 1}, P, [], 200) of
            {ok, S} -> gen_tcp:close(S), true;
            _ -> false
        end
    end, Ports),
    case Up of
        true -> ok;
        false -> timer:sleep(50), wait_listening(Ports, N - 1)
    end.

module_path(echo) ->
    find_exe(["/usr/lib/nginx/modules/ngx_http_echo_module.so",
              "/usr/lib64/nginx/modules/ngx_http_echo_module.so"]).

find_exe([Path]) -> Path;
find_exe([Path | Rest]) ->
    case filelib:is_regular(Path) of
        true -> Path;
        false -> find_exe(Rest)
    end.

quote(A) -> "'" ++ A ++ "'".
