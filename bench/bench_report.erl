%% @doc The benchmark's table (printed and written to `latest.txt') and
%% its chart (`latest.png', drawn by gnuplot).
-module(bench_report).

-export([write/3]).

%% @doc Renders the results, prints them, writes `latest.txt' and
%% `latest.png' into the configured output directory.
-spec write(map(), map(), map()) -> ok.
write(Machine, Cfg, Results) ->
    #{out := Out, work := Work} = Cfg,
    Text = unicode:characters_to_binary(render(Machine, Cfg, Results)),
    ok = filelib:ensure_dir(filename:join(Out, "x")),
    ok = file:write_file(filename:join(Out, "latest.txt"), Text),
    ok = io:setopts([{encoding, unicode}]),
    io:put_chars(Text),
    Png = filename:join(Out, "latest.png"),
    case chart(Work, Png, Machine, Results) of
        ok -> io:format("~nwrote ~s and ~s~n", [filename:join(Out, "latest.txt"), Png]);
        {error, Why} -> io:format(standard_error, "no chart: ~s~n", [Why])
    end,
    ok.

render(M, Cfg, R) ->
    [header(M, Cfg),
     section(rps, maps:get(rps, R), fun(Rows) -> rps_table(Rows, Cfg) end),
     section(rps, maps:get(rps, R), fun peers_table/1),
     section(rps, maps:get(rps, R), fun latency_table/1),
     section(rps, maps:get(rps, R), fun cpu_table/1),
     section(stream, maps:get(stream, R), fun(Rows) -> stream_table(Rows, Cfg) end),
     section(nif, maps:get(nif, R), fun nif_table/1),
     section(inflight, maps:get(inflight, R), fun inflight_table/1),
     targets(R)].

section(_, skipped, _) -> [];
section(_, Data, F) -> ["\n", F(Data)].

header(M, Cfg) ->
    #{started := {{Y, Mo, D}, {H, Mi, _}}} = M,
    [io_lib:format("erqwest benchmark, ~4..0b-~2..0b-~2..0b ~2..0b:~2..0b UTC, erqwest ~s~n",
                   [Y, Mo, D, H, Mi, maps:get(commit, M)]),
     io_lib:format("machine: ~s CPUs (~s), ~.1f GiB, ~s~n",
                   [maps:get(nproc, M), maps:get(cpu, M), maps:get(mem_gib, M), maps:get(kernel, M)]),
     io_lib:format("software: OTP ~s, ~s (1 worker), ~s, ~s, ~s~n",
                   [maps:get(otp, M), strip(maps:get(nginx, M), "nginx version: "),
                    hd(string:split(maps:get(wrk, M), " Copyright")),
                    maps:get(h2load, M), hd(string:split(maps:get(curl, M), " ("))]),
     io_lib:format("load average: ~s before, ~s after~n",
                   [maps:get(load_before, M), maps:get(load_after, M)]),
     io_lib:format("settings: ~s s per rate after ~s s of warm-up~s; erqwest tokio worker threads: ~s; "
                   "peer VMs with ~b schedulers~s~s~s~s~n",
                   [fmt_num(maps:get(duration, Cfg)), fmt_num(maps:get(warmup, Cfg)),
                    case maps:get(quick, Cfg) of true -> " (QUICK)"; false -> "" end,
                    case maps:get(worker_threads, Cfg) of
                        auto -> "default (schedulers div 2, at least 2)";
                        N -> integer_to_list(N)
                    end,
                    maps:get(schedulers, M),
                    case maps:get(peer_args, Cfg) of [] -> ""; A -> [", flags ", lists:join(" ", A)] end,
                    case maps:get(tokio_policy, Cfg) of default -> ""; Pol -> [", tokio threads set to SCHED_", string:uppercase(atom_to_list(Pol))] end,
                    case os:getenv("BENCH_SYNC_PATH") of "reqwest" -> ", erqwest sync kept on reqwest (BENCH_SYNC_PATH)"; _ -> "" end,
                    case maps:get(rounds, Cfg, 1) of 1 -> ""; K -> io_lib:format(", ~b rounds per rate row (medians)", [K]) end])].

strip(S, Prefix) -> string:trim(string:replace(S, Prefix, "")).

fmt_num(F) when is_float(F), F == trunc(F) -> integer_to_list(trunc(F));
fmt_num(F) when is_float(F) -> float_to_list(F, [{decimals, 1}, compact]);
fmt_num(I) -> integer_to_list(I).

%%% Requests per second

rps_table(Rows, _Cfg) ->
    Head = ["proto", "request", "workers", "wrk/h2load", "httpc",
            "erqwest sync", "/wrk", "/httpc", "erqwest async", "/wrk", "/httpc"],
    {Lines, Notes} = lists:mapfoldl(fun rps_line/2, [], Rows),
    ["Requests per second (one shared erqwest client; /wrk: share of wrk's rate, /httpc: multiple of httpc's)\n",
     table(Head, Lines, [l, l, r, r, r, r, r, r, r, r, r]),
     "wrk for HTTP/1.1 (N connections); h2load for HTTP/2 (N streams, 1 connection per 100): wrk has no HTTP/2.\n"
     "httpc has no HTTP/2.\n",
     notes(lists:reverse(Notes))].

rps_line(#{proto := P, workload := W, workers := N, cells := Cells}, Notes0) ->
    Get = fun(K) -> maps:get(K, Cells, skipped) end,
    Label = io_lib:format("~s ~s ~b", [P, W, N]),
    {Wrk, Notes1} = cell(Get(wrk), Label ++ " wrk", Notes0),
    {Httpc, Notes2} = cell(Get(httpc), Label ++ " httpc", Notes1),
    {Sync, Notes3} = cell(Get(sync), Label ++ " erqwest sync", Notes2),
    {Async, Notes4} = cell(Get(async), Label ++ " erqwest async", Notes3),
    {[proto_name(P), workload_name(W), integer_to_list(N), Wrk, Httpc,
      Sync, share(Get(sync), Get(wrk)), times(Get(sync), Get(httpc)),
      Async, share(Get(async), Get(wrk)), times(Get(async), Get(httpc))], Notes4}.

cell(skipped, _, Notes) -> {"-", Notes};
cell(n_a, _, Notes) -> {"n/a", Notes};
cell(#{failed := Why}, Label, Notes) ->
    note("FAILED", Label, Why, Notes);
cell(#{rps := R, errors := E} = C, Label, Notes) when E > 0 ->
    note(fmt_rate(R) ++ "!", Label, {errors, E, maps:get(first_error, C, undefined)}, Notes);
cell(#{rps := R}, _, Notes) -> {fmt_rate(R), Notes}.

note(Text, Label, Why, Notes) ->
    Ref = "[" ++ integer_to_list(length(Notes) + 1) ++ "]",
    {Text ++ Ref, [{Ref, Label, Why} | Notes]}.

notes([]) -> [];
notes(Ns) ->
    [[Ref, " ", Label, ": ", truncate(io_lib:format("~0p", [Why]), 300), "\n"] || {Ref, Label, Why} <- Ns].

truncate(S, N) ->
    Flat = lists:flatten(S),
    case length(Flat) > N of
        true -> lists:sublist(Flat, N) ++ "...";
        false -> Flat
    end.

share(#{rps := A}, #{rps := B}) when B > 0 -> io_lib:format("~b%", [round(100 * A / B)]);
share(_, _) -> "".

times(#{rps := A}, #{rps := B}) when B > 0 -> io_lib:format("~.1fx", [A / B]);
times(_, _) -> "".

fmt_rate(R) -> integer_to_list(round(R)).

proto_name(http) -> "HTTP/1.1";
proto_name(https) -> "TLS+1.1";
proto_name(h2) -> "TLS+h2".

workload_name(get) -> "GET small";
workload_name(post10) -> "POST 10 B";
workload_name(post64k) -> "POST 64 KB".

%% Mean time per request at one worker: wrk's own mean latency beside
%% 1/rate of the Erlang clients.
latency_table(Rows) ->
    Ones = [R || #{workers := 1} = R <- Rows],
    case Ones of
        [] -> [];
        _ ->
            Lines = [[proto_name(P), workload_name(W), lat(maps:get(wrk, C, skipped), wrk),
                      lat(maps:get(httpc, C, skipped), rate), lat(maps:get(sync, C, skipped), rate),
                      lat_ratio(maps:get(sync, C, skipped), maps:get(wrk, C, skipped)),
                      lat(maps:get(async, C, skipped), rate),
                      lat_ratio(maps:get(async, C, skipped), maps:get(wrk, C, skipped))]
                     || #{proto := P, workload := W, cells := C} <- Ones],
            ["One worker: mean latency in µs (1/rate: one request at a time)\n",
             table(["proto", "request", "wrk/h2load", "httpc", "erqwest sync", "x wrk",
                    "erqwest async", "x wrk"], Lines, [l, l, r, r, r, r, r, r])]
    end.

latency_us(#{rps := R}) when R > 0 -> 1.0e6 / R;
latency_us(_) -> undefined.

lat(#{rps := _} = C, wrk) -> fmt_us(latency_us(C));
lat(#{rps := R}, rate) when R > 0 -> fmt_us(1.0e6 / R);
lat(n_a, _) -> "n/a";
lat(_, _) -> "-".

lat_ratio(#{rps := R}, #{rps := _} = W) when R > 0 ->
    case latency_us(W) of
        undefined -> "";
        L -> io_lib:format("~.2fx", [1.0e6 / R / L])
    end;
lat_ratio(_, _) -> "".

fmt_us(undefined) -> "-";
fmt_us(U) when U >= 100 -> integer_to_list(round(U));
fmt_us(U) -> float_to_list(U, [{decimals, 1}]).

%% Where the client's CPU goes, per request.
cpu_table(Rows) ->
    Lines = [[proto_name(P), workload_name(W), integer_to_list(N),
              cpu_cell(maps:get(httpc, C, skipped), all), cpu_cell(maps:get(sync, C, skipped), split),
              cpu_cell(maps:get(async, C, skipped), split)
              | [cpu_cell(maps:get(K, C, skipped), all) || K <- [erqwest025, gun, finch]]]
             || #{proto := P, workload := W, workers := N, cells := C} <- Rows],
    ["Client CPU per request in µs: the client VM's user+system time over the measured window\n"
     "divided by the requests completed; for erqwest split as (tokio threads / schedulers / other threads);\n"
     "with BENCH_INSTRUCTIONS=1, then the thousands of instructions per request (perf stat);\n"
     "with BENCH_PERF_EVENTS=context-switches,task-clock, the client VM's context switches (cs)\n"
     "and perf's task-clock in µs (tc) per request\n",
     table(["proto", "request", "workers", "httpc", "erqwest sync", "erqwest async", "0.2.5", "gun", "finch"],
           Lines, [l, l, r, r, r, r, r, r, r])].

cpu_cell(#{cpu := Cpu, requests := N} = R, Mode) when N > 0 ->
    Per = fun(K) -> maps:get(K, Cpu, 0.0) / N end,
    Total = lists:sum(maps:values(Cpu)) / N,
    Time = case Mode of
        all -> fmt_us(Total);
        split -> io_lib:format("~s (~s/~s/~s)", [fmt_us(Total), fmt_us(Per(tokio)), fmt_us(Per(schedulers)),
                                                 fmt_us(Per(dirty) + Per(other))])
    end,
    %% With BENCH_INSTRUCTIONS=1: thousands of instructions per request.
    [Time, counts_per_request(maps:get(counts, R, #{}), N)];
cpu_cell(n_a, _) -> "n/a";
cpu_cell(#{counts := Counts, requests := N}, _) when N > 0 -> counts_per_request(Counts, N);
cpu_cell(_, _) -> "-".

%% With BENCH_INSTRUCTIONS=1 or BENCH_PERF_EVENTS: per request,
%% thousands of instructions, context switches.
counts_per_request(Counts, N) ->
    [case Counts of
         #{instructions := I} -> io_lib:format(" ~bk", [round(I / N / 1000)]);
         _ -> ""
     end,
     case Counts of
         #{'context-switches' := Cs} -> io_lib:format(" ~.2fcs", [Cs / N]);
         _ -> ""
     end,
     %% perf prints task-clock in ms: CPU µs per request by perf's count.
     case Counts of
         #{'task-clock' := Ms} -> io_lib:format(" ~.1ftc", [Ms * 1000 / N]);
         _ -> ""
     end].

%%% Against the other BEAM clients

-define(PEERS, [erqwest025, gun, finch, httpc]).

%% erqwest's rates beside the other BEAM clients', its ratio to the best
%% of them in the same row, and the connections each opened in its run.
peers_table(Rows) ->
    {Lines, Notes} = lists:mapfoldl(fun peers_line/2, [], Rows),
    ["\nAgainst the other BEAM clients, requests/s; x best: erqwest's rate over the best peer's in the row\n"
     "(peers: erqwest 0.2.5, gun, Finch, httpc; '-' where one was not run)\n",
     table(["proto", "request", "workers", "erqwest sync", "x best", "erqwest async", "x best",
            "0.2.5", "gun", "finch", "httpc", "best peer"], Lines, [l, l, r, r, r, r, r, r, r, r, r, l]),
     notes(lists:reverse(Notes)),
     "\nConnections nginx accepted during each run (warm-up included)\n",
     table(["proto", "request", "workers", "wrk", "sync", "async", "0.2.5", "gun", "finch", "httpc"],
           client_lines(Rows, [wrk, sync, async | ?PEERS], fun conns/1),
           [l, l, r, r, r, r, r, r, r, r]),
     rounds_table(Rows)].

%% A line per row: its proto, workload and workers, then F of each
%% client's cell.
client_lines(Rows, Clients, F) ->
    [[proto_name(P), workload_name(W), integer_to_list(N)
      | [F(maps:get(C, Cells, skipped)) || C <- Clients]]
     || #{proto := P, workload := W, workers := N, cells := Cells} <- Rows].

%% BENCH_ROUNDS > 1: every round's rate, in the order the rounds ran (a
%% cell above is the median of these).
rounds_table(Rows) ->
    Has = [1 || #{cells := Cells} <- Rows, C <- maps:values(Cells), is_map(C), is_map_key(rounds, C)],
    case Has of
        [] -> [];
        _ ->
            Fmt = fun(#{rounds := Rs}) -> lists:join("/", [integer_to_list(R) || R <- Rs]);
                     (_) -> "-"
                  end,
            ["\nEach round's requests/s (the cells above are the medians)\n",
             table(["proto", "request", "workers", "sync", "async", "0.2.5", "gun", "finch", "httpc"],
                   client_lines(Rows, [sync, async | ?PEERS], Fmt),
                   [l, l, r, r, r, r, r, r, r])]
    end.

peers_line(#{proto := P, workload := W, workers := N, cells := Cells}, Notes0) ->
    Rate = fun(C) -> case maps:get(C, Cells, skipped) of #{rps := R, errors := 0} -> R; _ -> undefined end end,
    Rated = [{Rate(C), C} || C <- ?PEERS, Rate(C) =/= undefined],
    {Best, BestName} = case Rated of [] -> {undefined, "-"}; _ -> lists:max(Rated) end,
    Ratio = fun(C) -> case {Rate(C), Best} of
                          {R, B} when is_number(R), is_number(B), B > 0 -> io_lib:format("~.2fx", [R / B]);
                          _ -> ""
                      end end,
    Label = io_lib:format("~s ~s ~b", [P, W, N]),
    {Texts, Notes} = lists:mapfoldl(fun(C, Acc) -> cell(maps:get(C, Cells, skipped), [Label, " ", peer_name(C)], Acc) end,
                                    Notes0, [sync, async | ?PEERS]),
    [Sync, Async | Peers] = Texts,
    {[proto_name(P), workload_name(W), integer_to_list(N), Sync, Ratio(sync), Async, Ratio(async)
      | Peers] ++ [peer_name(BestName)], Notes}.

peer_name(erqwest025) -> "erqwest 0.2.5";
peer_name(A) when is_atom(A) -> atom_to_list(A);
peer_name(S) -> S.

conns(#{conns := C}) -> integer_to_list(C);
conns(_) -> "-".

%%% Streaming

stream_table(Rows, Cfg) ->
    Lines = [[atom_to_list(D), proto_name(P), integer_to_list(B div (1024 * 1024)) ++ " MB",
              mb_s(Curl), mb_s(Erq), ratio(Erq, Curl), mem(Erq, vm), mem(Erq, rss)]
             || #{dir := D, proto := P, bytes := B, curl := Curl, erqwest := Erq} <- Rows],
    Failed = [[atom_to_list(D), " ", atom_to_list(P), " ", Who, ": ",
               truncate(io_lib:format("~0p", [Why]), 300), "\n"]
              || #{dir := D, proto := P} = Row <- Rows, {Who, K} <- [{"curl", curl}, {"erqwest", erqwest}],
                 #{failed := Why} <- [maps:get(K, Row)]],
    Read = case maps:get(read_length, Cfg) of
        default -> "read/2 with its default length (8 MB)";
        L -> io_lib:format("read/2 with length ~b KB", [L div 1024])
    end,
    [io_lib:format("Streaming, MB/s (10^6 B/s): erqwest downloads with response_body => stream and ~s;~n"
                   "uploads with body => stream and send/2 of ~b KB chunks. Memory: erqwest's peer VM, "
                   "base -> peak, MB.~n", [Read, maps:get(upload_chunk, Cfg) div 1024]),
     table(["direction", "proto", "size", "curl", "erqwest", "ratio", "VM memory", "RSS"],
           Lines, [l, l, r, r, r, r, r, r]),
     Failed].

mb_s(#{bytes := B, seconds := S}) when S > 0 -> io_lib:format("~.1f", [B / S / 1.0e6]);
mb_s(_) -> "FAILED".

ratio(#{bytes := B1, seconds := S1}, #{bytes := B2, seconds := S2}) when S1 > 0, S2 > 0 ->
    io_lib:format("~b%", [round(100 * (B1 / S1) / (B2 / S2))]);
ratio(_, _) -> "".

mem(#{vm_base := Base, vm_peak := Peak}, vm) -> io_lib:format("~b -> ~b", [mb(Base), mb(Peak)]);
mem(#{rss_base := Base, rss_peak := Peak}, rss) -> io_lib:format("~b -> ~b", [mb(Base), mb(Peak)]);
mem(_, _) -> "".

mb(B) -> round(B / (1024 * 1024)).

%%% NIF call times

nif_table(#{failed := Why}) ->
    ["NIF call times: FAILED ", truncate(io_lib:format("~0p", [Why]), 500), "\n"];
nif_table(Cases) ->
    Lines = [begin
                 {Med, P99, Max} = stats(Ns),
                 [Name, atom_to_list(nif_kind(Name)), integer_to_list(length(Ns)), fmt_us(Med),
                  fmt_us(P99), fmt_us(Max)]
             end || {Name, Ns} <- Cases],
    ["NIF call times in µs (erlang:monotonic_time around the erqwest_nif call, HTTP/1.1;\n"
     "the floor rows time nothing, a trivial NIF and 1 s of clock reads in windows of 100:\n"
     "their maximum is what the machine adds; the last one's spans as long as a case;\n"
     "the gen_tcp row times the direct path's POST 10 B sent by gen_tcp instead, the same\n"
     "kernel work in a scheduler that gun and Finch do)\n",
     table(["call", "scheduler", "n", "median", "p99", "max"], Lines, [l, l, r, r, r, r])].

%% Which scheduler a NIF case runs on: the 1 ms rule is about `normal'.
nif_kind("(floor)" ++ _) -> floor;
nif_kind("(gen_tcp)" ++ _) -> gen_tcp;
nif_kind("req_dirty" ++ _) -> dirty;
nif_kind(_) -> normal.

%% Median, 99th percentile and maximum, in µs, of nanosecond samples.
stats(Ns) ->
    S = lists:sort(Ns),
    L = length(S),
    At = fun(Q) -> lists:nth(max(1, min(L, ceil(Q * L))), S) / 1000 end,
    {At(0.5), At(0.99), lists:last(S) / 1000}.

%%% In flight

inflight_table(Rows) ->
    Lines = [inflight_line(R) || R <- Rows],
    ["Requests in flight: GETs from one process on one client to a server that never answers;\n"
     "memory growth of the client VM (RSS includes the VM's own) per request.\n"
     "HTTP/1.1: an in-BEAM server, one connection per request; HTTP/2: nginx, one connection.\n",
     table(["proto", "requests", "reached server", "VM B/req", "RSS KB/req", "req/4 µs", "ended early",
            "unanswered after cancel"], Lines, [l, r, r, r, r, r, r, r])].

inflight_line(#{proto := P, failed := Why}) ->
    [proto_name(P), "FAILED", truncate(io_lib:format("~0p", [Why]), 200), "", "", "", "", ""];
inflight_line(#{proto := P, n := N, held := Held, vm := Vm, vm_base := VmBase, rss := Rss,
                rss_base := RssBase, issue_us := Us, early := Early, unanswered := Left}) ->
    [proto_name(P), integer_to_list(N), integer_to_list(Held), integer_to_list(round((Vm - VmBase) / N)),
     io_lib:format("~.1f", [(Rss - RssBase) / N / 1024]), io_lib:format("~.1f", [Us / N]),
     integer_to_list(Early), integer_to_list(Left)].

%%% Targets

targets(R) ->
    Rps = case maps:get(rps, R) of skipped -> []; Rows -> Rows end,
    At50 = [Row || #{workload := post10, workers := 50} = Row <- Rps],
    At1 = [Row || #{workload := post10, workers := 1} = Row <- Rps],
    L1 = [[proto_name(P), ": sync ", share(S, W), ", async ", share(A, W), "; "]
          || #{proto := P, cells := #{sync := S, async := A, wrk := W}} <- At50, P =/= h2],
    L2 = [[proto_name(P), ": sync ", times(S, H), ", async ", times(A, H), "; "]
          || #{proto := P, cells := #{sync := S, async := A, httpc := H}} <- At50, P =/= h2],
    L3 = [[proto_name(P), ": ", lat_ratio(S, W), "; "]
          || #{proto := P, cells := #{sync := S, wrk := W}} <- At1],
    Stream = case maps:get(stream, R) of
        skipped -> [];
        SRows -> [[atom_to_list(D), " ", proto_name(P), " ", integer_to_list(B div 1048576), " MB ",
                   ratio(E, C), "; "]
                  || #{dir := D, proto := P, bytes := B, curl := C, erqwest := E} <- SRows]
    end,
    Nif = case maps:get(nif, R) of
        Cases when is_list(Cases) ->
            Normal = [C || {Name, _} = C <- Cases, nif_kind(Name) =:= normal],
            {WP99, WMax} = lists:foldl(fun({Name, Ns}, {{P0, _} = A, {M0, _} = B}) ->
                                          {_, P, M} = stats(Ns),
                                          {if P > P0 -> {P, Name}; true -> A end,
                                           if M > M0 -> {M, Name}; true -> B end}
                                       end, {{0, ""}, {0, ""}}, Normal),
            FloorMax = lists:max([0 | [element(3, stats(Ns)) || {Name, Ns} <- Cases, nif_kind(Name) =:= floor]]),
            io_lib:format("normal-scheduler calls: worst p99 ~s µs (~s), worst max ~s µs (~s); "
                          "floor max ~s µs",
                          [fmt_us(element(1, WP99)), element(2, WP99), fmt_us(element(1, WMax)), element(2, WMax),
                           fmt_us(FloorMax)]);
        _ -> "-"
    end,
    Inflight = case maps:get(inflight, R) of
        IRows when is_list(IRows) ->
            [io_lib:format("~s ~.1f KB; ", [proto_name(P), (Rss - RB) / N / 1024])
             || #{proto := P, n := N, rss := Rss, rss_base := RB} <- IRows];
        _ -> "-"
    end,
    Best = fun(Cells) -> lists:max([0.0 | [Rate || C <- ?PEERS, #{rps := Rate, errors := 0} <- [maps:get(C, Cells, skipped)]]]) end,
    Vs = fun(#{rps := Rate}, B) when B > 0 -> io_lib:format("~.2fx", [Rate / B]); (_, _) -> "-" end,
    Peer = [[proto_name(P), " ", integer_to_list(N), ": sync ", Vs(maps:get(sync, Cells, skipped), Best(Cells)),
             " async ", Vs(maps:get(async, Cells, skipped), Best(Cells)), " (want ", peer_target(P, N), "); "]
            || #{proto := P, workload := post10, workers := N, cells := Cells} <- Rps],
    Conns = [[proto_name(P), " ", integer_to_list(N), ": ", conns(maps:get(sync, Cells, skipped)), "/",
              conns(maps:get(async, Cells, skipped)), "; "]
             || #{proto := P, workload := post10, workers := N, cells := Cells} <- Rps, P =/= h2],
    ["\nTargets (issue 12), measured above: erqwest over the best BEAM peer, POST 10 B\n",
     "  ", Peer, "\n",
     "  connections <= workers over HTTP/1.1 (sync/async): ", Conns, "\n",
     "\nTargets (issue 5), measured above\n",
     "  50 workers, POST 10 B, >= 45% of wrk: ", L1, "\n",
     "  50 workers, POST 10 B, >= 8x httpc:   ", L2, "\n",
     "  1 worker POST 10 B latency <= 1.5x wrk: ", L3, "\n",
     "  streaming >= 80% of curl: ", Stream, "\n",
     "  NIF calls p99 < 50 µs, max < 1000 µs: ", Nif, "\n",
     "  in flight < 16 KB per request (RSS): ", Inflight, "\n"].

peer_target(_, 1) -> "1.25x";
peer_target(http, _) -> "1.5x";
peer_target(_, _) -> "2x".

%%% Plain-text tables

table(Head, Lines, Align) ->
    Cols = [lists:flatten(C) || C <- Head],
    Rows = [[lists:flatten(C) || C <- L] || L <- Lines],
    Widths = [lists:max([string:length(C) || C <- Col])
              || Col <- transpose([Cols | Rows])],
    Fmt = fun(Cells) ->
        Padded = [pad(C, W, A) || {C, W, A} <- lists:zip3(Cells, Widths, Align)],
        [string:trim(lists:join("  ", Padded), trailing), "\n"]
    end,
    [Fmt(Cols), Fmt([lists:duplicate(W, $-) || W <- Widths]) | [Fmt(R) || R <- Rows]].

pad(C, W, l) -> string:pad(C, W, trailing);
pad(C, W, r) -> string:pad(C, W, leading).

transpose([[] | _]) -> [];
transpose(Rows) -> [[hd(R) || R <- Rows] | transpose([tl(R) || R <- Rows])].

%%% Chart

chart(Work, Png, M, R) ->
    case os:find_executable("gnuplot") of
        false -> {error, "gnuplot not found"};
        Gnuplot ->
            Dir = filename:join(Work, "chart"),
            ok = filelib:ensure_dir(filename:join(Dir, "x")),
            Rps = case maps:get(rps, R) of skipped -> []; Rows -> Rows end,
            Protos = [P || P <- [http, https, h2], lists:any(fun(#{proto := Q}) -> Q =:= P end, Rps)],
            [ok = file:write_file(filename:join(Dir, atom_to_list(P) ++ ".dat"), rps_data(P, Rps))
             || P <- Protos],
            Stream = case maps:get(stream, R) of skipped -> []; S -> S end,
            ok = file:write_file(filename:join(Dir, "stream.dat"), stream_data(Stream)),
            Script = filename:join(Dir, "chart.gp"),
            ok = file:write_file(Script, gnuplot(Dir, Png, M, Protos, Stream =/= [])),
            case bench_tools:run(Gnuplot, [Script], 60000) of
                {0, _} -> ok;
                {_, Out} -> {error, Out}
            end
    end.

rps_data(P, Rows) ->
    [[io_lib:format("\"~s ~b\"", [workload_name(W), N]),
      [[" ", dat(maps:get(C, Cells, skipped))] || C <- [wrk, httpc, sync, async]], "\n"]
     || #{proto := P2, workload := W, workers := N, cells := Cells} <- Rows, P2 =:= P].

dat(#{rps := R}) -> io_lib:format("~.1f", [R]);
dat(_) -> "?".

stream_data(Rows) ->
    [[io_lib:format("\"~s ~s ~bM\"", [D, P, B div 1048576]), " ", sdat(C), " ", sdat(E), "\n"]
     || #{dir := D, proto := P, bytes := B, curl := C, erqwest := E} <- Rows].

sdat(#{bytes := B, seconds := S}) when S > 0 -> io_lib:format("~.1f", [B / S / 1.0e6]);
sdat(_) -> "?".

gnuplot(Dir, Png, M, Protos, HasStream) ->
    Panels = length(Protos) + case HasStream of true -> 1; false -> 0 end,
    Layout = case Panels of 1 -> "1,1"; 2 -> "1,2"; _ -> "2,2" end,
    F = fun(Name) -> filename:join(Dir, Name) end,
    #{started := {{Y, Mo, D}, _}} = M,
    ["set terminal pngcairo size 1600,1100 font 'sans,10'\n"
     "set output '", Png, "'\n"
     "set datafile missing '?'\n"
     "set style data histograms\n"
     "set style histogram clustered gap 1\n"
     "set style fill solid 0.85 border -1\n"
     "set grid ytics\n"
     "set xtics rotate by -35 scale 0\n"
     "set yrange [0:*]\n"
     "set key top right\n"
     "set rmargin 6\n",
     io_lib:format("set multiplot layout ~s title 'erqwest benchmark ~4..0b-~2..0b-~2..0b, ~s CPUs, OTP ~s'~n",
                   [Layout, Y, Mo, D, maps:get(nproc, M), hd(string:split(maps:get(otp, M), " "))]),
     [["set title '", proto_name(P), " requests/s'\n",
       "plot '", F(atom_to_list(P) ++ ".dat"), "' using 2:xtic(1) title 'wrk/h2load', "
       "'' using 3 title 'httpc', '' using 4 title 'erqwest sync', '' using 5 title 'erqwest async'\n"]
      || P <- Protos],
     case HasStream of
         true -> ["set title 'streaming MB/s'\n",
                  "plot '", F("stream.dat"), "' using 2:xtic(1) title 'curl', '' using 3 title 'erqwest'\n"];
         false -> []
     end,
     "unset multiplot\n"].
