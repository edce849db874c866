%% @doc `make bench': starts nginx, measures erqwest against wrk, h2load,
%% curl and OTP's httpc, and writes one table (bench/README.md says how
%% to read it and which environment variables shape a run).
%%
%% This VM only orchestrates: it runs nginx and the reference tools as OS
%% processes and the Erlang clients in peer VMs started for each
%% measurement, so that no measurement inherits another's connections,
%% garbage or memory high-water mark.
-module(erqwest_bench).

-export([main/0, config/0]).

-type config() :: #{atom() => term()}.

%% Each request kind: its path, method and body.
-define(WORKLOADS, [{get, "GET small"}, {post10, "POST 10 B"}, {post64k, "POST 64 KB"}]).
-define(PROTOS, [http, https, h2]).
-define(CLIENTS, [wrk, httpc, sync, async]).

%% @doc Runs the benchmark and halts: status 0 when the table was
%% written, 1 when the run itself failed.
-spec main() -> no_return().
main() ->
    Cfg = config(),
    Run = case maps:get(profile, Cfg) of
        none -> fun run/1;
        _ -> fun profile/1
    end,
    try Run(Cfg) of
        ok -> erlang:halt(0)
    catch
        Class:Reason:Stack ->
            io:format(standard_error, "bench failed: ~p:~p~n~p~n", [Class, Reason, Stack]),
            erlang:halt(1)
    end.

%% @doc The run's settings, from the environment (see bench/README.md).
-spec config() -> config().
config() ->
    Quick = env("BENCH_QUICK", "0") =/= "0",
    #{quick => Quick,
      work => env("BENCH_WORK", "/tmp/erqwest-bench"),
      body_temp => env("BENCH_BODY_TEMP", filename:join(env("BENCH_WORK", "/tmp/erqwest-bench"), "body_temp")),
      out => env("BENCH_OUT", "bench/results"),
      duration => num(env("BENCH_DURATION", if Quick -> "1"; true -> "3" end)),
      warmup => num(env("BENCH_WARMUP", if Quick -> "0.5"; true -> "1" end)),
      workers => ints(env("BENCH_WORKERS", "1,50,500")),
      rounds => max(1, trunc(num(env("BENCH_ROUNDS", "1")))),
      protos => atoms(env("BENCH_PROTOS", "http,https,h2")),
      workloads => atoms(env("BENCH_WORKLOADS", "get,post10,post64k")),
      %% The peers (bench_peers) join when their code is given.
      clients => atoms(env("BENCH_CLIENTS", lists:join(",", ["wrk", "httpc", "sync", "async"]
                                                         ++ [atom_to_list(P) || P <- bench_peers:available()]))),
      sections => atoms(env("BENCH_SECTIONS", "rps,stream,nif,inflight")),
      stream_mb => ints(env("BENCH_STREAM_MB", if Quick -> "256"; true -> "256,1024" end)),
      upload_chunk => trunc(num(env("BENCH_UPLOAD_CHUNK_KB", "1024")) * 1024),
      read_length => case env("BENCH_READ_LENGTH_KB", "") of
                         "" -> default;
                         L -> trunc(num(L) * 1024)
                     end,
      nif_iters => trunc(num(env("BENCH_NIF_ITERS", if Quick -> "500"; true -> "2000" end))),
      nif_big_iters => trunc(num(env("BENCH_NIF_BIG_ITERS", if Quick -> "50"; true -> "200" end))),
      inflight => trunc(num(env("BENCH_INFLIGHT", "10000"))),
      wrk_threads => trunc(num(env("BENCH_WRK_THREADS", "1"))),
      worker_threads => case env("BENCH_WORKER_THREADS", "auto") of
                            "auto" -> auto;
                            N -> list_to_integer(N)
                        end,
      peer_args => string:lexemes(env("BENCH_PEER_ARGS", ""), " "),
      tokio_policy => list_to_atom(env("BENCH_TOKIO_POLICY", "default")),
      profile => case env("BENCH_PROFILE", "") of
                     "" -> none;
                     P -> atoms(P)
                 end}.

env(Name, Default) ->
    case os:getenv(Name) of
        false -> Default;
        "" -> Default;
        V -> V
    end.

num(S) ->
    case string:to_float(S) of
        {F, []} -> F;
        _ -> float(list_to_integer(S))
    end.

ints(S) -> [list_to_integer(X) || X <- string:lexemes(S, ", ")].
atoms(S) -> [list_to_atom(X) || X <- string:lexemes(S, ", ")].

run(Cfg) ->
    #{work := Work, body_temp := BodyTemp, sections := Sections, stream_mb := Mbs} = Cfg,
    Started = calendar:universal_time(),
    LoadBefore = loadavg(),
    Files = [Mb * 1024 * 1024 || Mb <- Mbs],
    Srv = bench_nginx:start(#{dir => filename:join(Work, "nginx"), files => Files,
                              body_temp => BodyTemp}),
    Scripts = write_scripts(Work),
    Ctx = Cfg#{server => Srv, scripts => Scripts},
    Results = try
        #{rps => when_on(rps, Sections, fun() -> rps_section(Ctx) end),
          stream => when_on(stream, Sections, fun() -> stream_section(Ctx) end),
          nif => when_on(nif, Sections, fun() -> nif_section(Ctx) end),
          inflight => when_on(inflight, Sections, fun() -> inflight_section(Ctx) end)}
    after
        bench_nginx:stop(Srv)
    end,
    Machine = (machine())#{started => Started, load_before => LoadBefore, load_after => loadavg()},
    bench_report:write(Machine, Cfg, Results).

when_on(Section, Sections, F) ->
    case lists:member(Section, Sections) of
        true ->
            progress("== ~s~n", [Section]),
            F();
        false -> skipped
    end.

progress(Fmt, Args) -> io:format(standard_error, Fmt, Args).

%%% Requests per second

workload(get, _Srv) -> #{path => "/small", method => get, body => <<>>, expect => byte_size(bench_nginx:small_body())};
workload(post10, _Srv) -> #{path => "/echo", method => post, body => body(10), expect => 10};
workload(post64k, _Srv) -> #{path => "/echo", method => post, body => body(65536), expect => 65536}.

body(N) -> binary:copy(<<"x">>, N).

%% wrk's Lua scripts and h2load's data files for the POST workloads.
write_scripts(Work) ->
    Dir = filename:join(Work, "scripts"),
    ok = filelib:ensure_dir(filename:join(Dir, "x")),
    maps:from_list(
      [{W, case workload(W, none) of
               #{method := get} -> #{lua => none, data => none};
               #{body := B} ->
                   Lua = filename:join(Dir, atom_to_list(W) ++ ".lua"),
                   Data = filename:join(Dir, atom_to_list(W) ++ ".data"),
                   ok = file:write_file(Lua, io_lib:format(
                       "wrk.method = \"POST\"\n"
                       "wrk.body = string.rep(\"x\", ~b)\n"
                       "wrk.headers[\"Content-Type\"] = \"application/octet-stream\"\n",
                       [byte_size(B)])),
                   ok = file:write_file(Data, B),
                   #{lua => Lua, data => Data}
           end} || W <- [get, post10, post64k]]).

rps_section(#{protos := Protos, workloads := Workloads, workers := Workers, clients := Clients} = Ctx) ->
    [rps_row(Ctx, P, W, N, Clients) || P <- Protos, W <- Workloads, N <- Workers].

%% One row: every client kind on the same target, one after the other, so
%% that changes in the machine's load touch them alike. With
%% BENCH_ROUNDS=K the clients take K turns, each turn starting one client
%% later, and each cell is the round with the median rate: a drift of the
%% host over the row then touches every client alike.
rps_row(#{server := Srv, scripts := Scripts, rounds := K} = Ctx, Proto, W, N, Clients) ->
    #{path := Path} = Spec = workload(W, Srv),
    Url = bench_nginx:url(Srv, Proto, Path),
    Cell = fun(C) -> counted(Srv, fun() -> rps_cell(Ctx, C, Proto, Spec#{url => Url}, maps:get(W, Scripts), N) end) end,
    Turns = [{C, Cell(C)} || R <- lists:seq(0, K - 1), C <- rotate(R, Clients)],
    Cells = [{C, median_cell([X || {C1, X} <- Turns, C1 =:= C])} || C <- Clients],
    Row = #{proto => Proto, workload => W, workers => N, cells => maps:from_list(Cells)},
    progress("~-5s ~-8s ~3b ~s~n", [Proto, W, N,
        [io_lib:format(" ~s=~s", [C, short(R)]) || {C, R} <- Cells]]),
    Row.

rotate(R, L) ->
    {A, B} = lists:split(R rem max(1, length(L)), L),
    B ++ A.

%% The round with the median rate (the lower of the two middle ones), its
%% CPU and connection counts with it, and every round's rate beside; a
%% round that failed or was not run stands for the cell.
median_cell([One]) ->
    One;
median_cell(Rounds) ->
    case [R || R <- Rounds, not is_map(R) orelse not is_map_key(rps, R)] of
        [Bad | _] -> Bad;
        [] ->
            Sorted = lists:sort(fun(#{rps := A}, #{rps := B}) -> A =< B end, Rounds),
            Mid = lists:nth((length(Sorted) + 1) div 2, Sorted),
            Mid#{rounds => [round(maps:get(rps, R)) || R <- Rounds]}
    end.

short(#{rps := R, conns := C, rounds := Rs}) ->
    io_lib:format("~b(~bc)~w", [round(R), C, Rs]);
short(#{rps := R, conns := C}) -> io_lib:format("~b(~bc)", [round(R), C]);
short(#{rps := R}) -> integer_to_list(round(R));
short(n_a) -> "n/a";
short(#{failed := _}) -> "FAILED".

%% The connections nginx accepted while a cell ran (the second status
%% request's own connection taken off).
counted(Srv, F) ->
    A0 = bench_nginx:accepts(Srv),
    R = F(),
    case R of
        #{rps := _} -> R#{conns => bench_nginx:accepts(Srv) - A0 - 1};
        _ -> R
    end.

%% wrk has no warm-up: it runs for the warm-up and the measurement, and
%% its rate includes connecting (a few % at 500 TLS connections).
rps_cell(#{duration := D, warmup := Wu, wrk_threads := T}, wrk, Proto, #{url := Url}, #{lua := Lua}, N)
  when Proto =/= h2 ->
    bench_tools:wrk(#{url => Url, conns => N, seconds => max(1, round(D + Wu)), threads => T,
                      script => Lua});
rps_cell(#{duration := D, warmup := Wu}, wrk, h2, #{url := Url}, #{data := Data}, N) ->
    bench_tools:h2load(#{url => Url, streams => N, seconds => max(1, round(D)),
                         warmup => max(1, round(Wu)), data => Data});
rps_cell(_, httpc, h2, _, _, _) ->
    n_a;
rps_cell(Ctx, Client, Proto, Spec, _, N) ->
    in_peer(Ctx, Client, fun(Peer) -> rps_cell(Ctx, Client, Proto, Spec, #{}, N, Peer) end).

rps_cell(#{duration := D, warmup := Wu, server := Srv}, Client, Proto, Spec, _, N, Peer) ->
    #{url := Url, method := M, body := B, expect := E} = Spec,
    Target = #{client => Client, proto => Proto, url => Url, method => M, body => B, expect => E,
               workers => N, warmup_ms => round(Wu * 1000), duration_ms => round(D * 1000),
               ca => maps:get(ca, Srv)},
    peer:call(Peer, bench_load, rps, [Target], 300000).

%%% Profiles

%% BENCH_PROFILE=Client,Proto,Workload,Workers: one request-rate
%% measurement of erqwest (sync or async) under `perf record', with the
%% JIT's symbols, written to profile-....txt in the output directory.
profile(#{profile := [Client, Proto, W, NAtom], work := Work, out := Out, body_temp := BodyTemp,
          duration := D, warmup := Wu, peer_args := Extra} = Cfg) ->
    N = list_to_integer(atom_to_list(NAtom)),
    Srv = bench_nginx:start(#{dir => filename:join(Work, "nginx"), files => [], body_temp => BodyTemp}),
    Name = lists:flatten(io_lib:format("profile-~s-~s-~s-~b", [Client, Proto, W, N])),
    %% BENCH_PERF_DATA keeps perf's data file for `perf report' by hand.
    Data = env("BENCH_PERF_DATA", filename:join(Work, Name ++ ".data")),
    Ctx = Cfg#{server => Srv, peer_args => ["+JPperf", "true" | Extra]},
    #{path := Path} = Spec = workload(W, Srv),
    Url = bench_nginx:url(Srv, Proto, Path),
    Result = try
        in_peer(Ctx, fun(Peer) ->
            OsPid = peer:call(Peer, os, getpid, []),
            Self = self(),
            Secs = integer_to_list(round(D + Wu + 2)),
            spawn_link(fun() ->
                Self ! {perf, bench_tools:run("perf", ["record", "-F", "1999", "-p", OsPid, "-o", Data]
                                                      ++ string:lexemes(env("BENCH_PERF_ARGS", ""), " ")
                                                      ++ ["--", "sleep", Secs], 600000)}
            end),
            R = rps_cell(Ctx, Client, Proto, Spec#{url => Url}, #{}, N, Peer),
            receive {perf, P} -> {R, P} end
        end)
    after
        bench_nginx:stop(Srv)
    end,
    Report = [element(2, bench_tools:run("perf", ["report", "-i", Data, "--stdio", "--no-children",
                                                  "--sort", Sort, "--percent-limit", Limit]
                                                 ++ string:lexemes(env("BENCH_PERF_REPORT_ARGS", ""), " "),
                                                 600000))
              || {Sort, Limit} <- [{"comm", "0.5"}, {"comm,dso", "0.5"}, {"comm,dso,sym", "0.3"}]],
    File = filename:join(Out, Name ++ ".txt"),
    ok = filelib:ensure_dir(File),
    ok = file:write_file(File, [io_lib:format("~0p~n~n", [Result]), Report]),
    io:format("~0p~nwrote ~s~n", [Result, File]).

%% Runs F in a fresh peer VM with erqwest, inets and ssl started. A peer
%% that dies or times out fails this measurement only.
in_peer(Ctx, F) ->
    in_peer(Ctx, none, F).

%% A peer client's VM gets its code path too; erqwest 0.2.5's replaces
%% erqwest's (same module names).
in_peer(#{worker_threads := Wt, peer_args := Extra, tokio_policy := Policy}, Client, F) ->
    Own = [filename:dirname(code:which(bench_load))],
    Erqwest = [filename:dirname(code:which(erqwest))],
    Paths = case Client =/= none andalso bench_peers:code_paths(Client) of
        {replace, Ps} -> Ps;
        {add, Ps} -> Erqwest ++ Ps;
        _ -> Erqwest
    end,
    %% bench's own ebin goes last: its directory (erqwest-bench.XXXXXX)
    %% looks like an erqwest release to code:priv_dir(erqwest).
    Args = lists:append([["-pa", P] || P <- lists:usort(Paths)]) ++ ["-pz" | Own] ++ Extra,
    {ok, Peer, _} = peer:start_link(#{connection => standard_io, args => Args, wait_boot => 60000}),
    PeerKind = case lists:member(Client, [gun, finch, erqwest025]) of true -> Client; false -> none end,
    try
        ok = peer:call(Peer, bench_load, setup, [#{worker_threads => Wt, tokio_policy => Policy,
                                                   peer => PeerKind}], 60000),
        F(Peer)
    catch
        Class:Reason -> #{failed => {Class, Reason}}
    after
        catch peer:stop(Peer)
    end.

%%% Streaming

stream_section(#{protos := Protos, stream_mb := Mbs} = Ctx) ->
    [stream_row(Ctx, Dir, P, Mb * 1024 * 1024) || Dir <- [download, upload], P <- Protos, Mb <- Mbs].

stream_row(#{server := Srv, read_length := RL, upload_chunk := Chunk} = Ctx, Dir, Proto, Bytes) ->
    #{ca := Ca, dir := SrvDir} = Srv,
    File = filename:join([SrvDir, "www", "files", bench_nginx:file_name(Bytes)]),
    {Url, Call} = case Dir of
        download ->
            U = bench_nginx:url(Srv, Proto, ["/files/", bench_nginx:file_name(Bytes)]),
            ReadOpts = case RL of default -> #{}; N -> #{length => N} end,
            {U, {download, [#{url => U, proto => Proto, ca => Ca, read_opts => ReadOpts}]}};
        upload ->
            U = bench_nginx:url(Srv, Proto, "/sink"),
            {U, {upload, [#{url => U, proto => Proto, ca => Ca, bytes => Bytes, chunk => Chunk}]}}
    end,
    Curl = bench_tools:curl(#{dir => Dir, url => Url, proto => Proto, ca => Ca, file => File}),
    {Fun, Args} = Call,
    Erq = in_peer(Ctx, fun(Peer) -> peer:call(Peer, bench_load, Fun, Args, 600000) end),
    progress("~-8s ~-5s ~5b MB curl ~s erqwest ~s~n",
             [Dir, Proto, Bytes div (1024 * 1024), mbps(Curl), mbps(Erq)]),
    #{dir => Dir, proto => Proto, bytes => Bytes, curl => Curl, erqwest => Erq}.

mbps(#{bytes := B, seconds := S}) -> io_lib:format("~.1f MB/s", [B / S / 1.0e6]);
mbps(#{failed := F}) -> io_lib:format("FAILED ~0p", [F]).

%%% NIF call times

nif_section(#{server := Srv, nif_iters := Iters, nif_big_iters := Big, stream_mb := [Mb | _]} = Ctx) ->
    Opts = #{base => bench_nginx:url(Srv, http, ""), iters => Iters, big_iters => Big,
             download => bench_nginx:url(Srv, http, ["/files/", bench_nginx:file_name(Mb * 1024 * 1024)]),
             tls_base => bench_nginx:url(Srv, https, ""), ca => maps:get(ca, Srv)},
    in_peer(Ctx, fun(Peer) -> peer:call(Peer, bench_load, nif_times, [Opts], 600000) end).

%%% Requests in flight

%% Over HTTP/1.1 against an in-BEAM server that counts the requests it
%% read (each request has its connection); over HTTP/2 against nginx's
%% /hold, counted by stub_status (all requests share one connection).
inflight_section(#{inflight := N, server := Srv} = Ctx) ->
    {Holder, Port} = bench_holder:start(),
    try
        HoldUrl = iolist_to_binary(["http://127.0.0.1:", integer_to_list(Port), "/hold"]),
        Count = fun() -> bench_holder:count(Holder) end,
        H1 = inflight(Ctx, http, HoldUrl, bench_nginx:url(Srv, http, "/small"), Count, N),
        %% stub_status counts its own request too.
        Writing = fun() -> bench_nginx:writing(Srv) - 1 end,
        H2 = inflight(Ctx, h2, bench_nginx:url(Srv, h2, "/hold"), bench_nginx:url(Srv, h2, "/small"),
                      Writing, N),
        [H1, H2]
    after
        bench_holder:stop(Holder)
    end.

inflight(#{server := Srv} = Ctx, Proto, Url, WarmUrl, Count, N) ->
    R = in_peer(Ctx, fun(Peer) ->
        Start = peer:call(Peer, bench_load, inflight_start,
                          [#{url => Url, n => N, warm_url => WarmUrl, proto => Proto,
                             ca => maps:get(ca, Srv)}], 120000),
        Held = wait_count(Count, N, erlang:monotonic_time(millisecond) + 60000),
        timer:sleep(1000),
        M = peer:call(Peer, bench_load, inflight_measure, [], 60000),
        Left = peer:call(Peer, bench_load, inflight_stop, [], 120000),
        maps:merge(Start, M#{n => N, held => Held, unanswered => Left})
    end),
    progress("in flight ~s: ~0p~n", [Proto, R]),
    R#{proto => Proto}.

wait_count(Count, N, Deadline) ->
    C = Count(),
    case C >= N orelse erlang:monotonic_time(millisecond) > Deadline of
        true -> C;
        false -> timer:sleep(100), wait_count(Count, N, Deadline)
    end.

%%% The machine

machine() ->
    Cpu = case file:read_file("/proc/cpuinfo") of
        {ok, Info} ->
            case re:run(Info, "model name\\s*:\\s*(.*)", [{capture, all_but_first, list}]) of
                {match, [M]} -> M;
                nomatch -> "?"
            end;
        _ -> "?"
    end,
    MemKb = case file:read_file("/proc/meminfo") of
        {ok, MI} ->
            {match, [K]} = re:run(MI, "MemTotal:\\s*([0-9]+)", [{capture, all_but_first, list}]),
            list_to_integer(K);
        _ -> 0
    end,
    #{nproc => string:trim(os:cmd("nproc")),
      cpu => Cpu,
      mem_gib => MemKb / (1024 * 1024),
      kernel => string:trim(os:cmd("uname -sr")),
      otp => erlang:system_info(otp_release) ++ " (erts " ++ erlang:system_info(version) ++ ")",
      schedulers => erlang:system_info(schedulers_online),
      nginx => bench_tools:version(["nginx", "-v"]),
      wrk => bench_tools:version(["wrk", "-v"]),
      h2load => bench_tools:version(["h2load", "--version"]),
      curl => bench_tools:version(["curl", "--version"]),
      commit => string:trim(os:cmd("git rev-parse --short HEAD 2>/dev/null")) ++
                case os:cmd("git status --porcelain -- src native 2>/dev/null") of
                    "" -> "";
                    _ -> " (with uncommitted changes in src/ or native/)"
                end}.

loadavg() ->
    case file:read_file("/proc/loadavg") of
        {ok, L} -> lists:join(" ", lists:sublist(string:lexemes(binary_to_list(L), " "), 3));
        _ -> "?"
    end.
