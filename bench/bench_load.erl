%% @doc The client side of the benchmark, run in a peer VM of its own so
%% that its memory and scheduler time are erqwest's (and httpc's) alone.
%%
%% Request rates: N workers (processes) loop over one request until told
%% to stop; completions go to a `counters' array that the coordinator
%% reads at the start and at the end of the measured window, after every
%% worker has completed at least one request and a warm-up has passed.
%% <ul>
%% <li>`sync': N processes calling `erqwest:req/2' on one shared client
%% (one connection pool, as an application with a named client has);</li>
%% <li>`async': min(N, schedulers) processes, each keeping its share of
%% the N requests in flight with `erqwest_async:req/4' on the same shared
%% client, issuing a new request on each reply;</li>
%% <li>`httpc': N processes calling `httpc:request/5' on one profile with
%% `max_sessions' = N, so that every worker can have a connection.</li>
%% </ul>
-module(bench_load).

-export([setup/1, rps/1, download/1, upload/1, nif_times/1]).
-export([inflight_start/1, inflight_measure/0, inflight_stop/0, rss/0]).

-type proto() :: http | https | h2.
-type target() :: #{client := sync | async | httpc | bench_peers:kind(), proto := proto(), url := binary(),
                    method := get | post, body := binary(), expect := non_neg_integer(),
                    workers := pos_integer(), warmup_ms := non_neg_integer(),
                    duration_ms := pos_integer(), ca := file:filename()}.
-export_type([target/0]).

-define(CTR_DONE, 1).
-define(CTR_ERRORS, 2).
-define(CTR_READY, 3).
-define(READY_TIMEOUT, 60000).
-define(STOP_TIMEOUT, 30000).

%% @doc Starts erqwest (with `worker_threads' when given), inets and ssl,
%% and the peer client this VM is for (`peer').
-spec setup(#{worker_threads => pos_integer() | auto, tokio_policy => default | batch | other,
              peer => bench_peers:kind() | none}) -> ok.
setup(Opts) ->
    %% TLS notices from httpc's handshakes would clutter the output.
    ok = logger:set_primary_config(level, warning),
    ok = application:load(erqwest),
    case maps:get(worker_threads, Opts, auto) of
        auto -> ok;
        N -> ok = application:set_env(erqwest, worker_threads, N)
    end,
    {ok, _} = application:ensure_all_started(erqwest),
    {ok, _} = application:ensure_all_started(inets),
    {ok, _} = application:ensure_all_started(ssl),
    case maps:get(peer, Opts, none) of
        none -> ok;
        Peer -> ok = bench_peers:setup(Peer)
    end,
    tokio_policy(maps:get(tokio_policy, Opts, default)).

%% An experiment (BENCH_TOKIO_POLICY=batch|other): erqwest's threads under
%% SCHED_BATCH (erqwest's own choice) or SCHED_OTHER, set from outside with
%% chrt, to measure what the policy costs or saves without a rebuild.
tokio_policy(default) -> ok;
tokio_policy(Policy) ->
    Flag = case Policy of batch -> " -b"; other -> " -o" end,
    Dir = "/proc/self/task",
    {ok, Tids} = file:list_dir(Dir),
    [os:cmd("chrt" ++ Flag ++ " -p 0 " ++ T)
     || T <- Tids, {ok, <<"erqwest", _/binary>>} <- [file:read_file(filename:join([Dir, T, "comm"]))]],
    ok.

%%% Request rates

%% @doc Measures requests/s of one client kind against one target.
-spec rps(target()) -> #{rps => float(), errors => non_neg_integer(), requests => non_neg_integer(),
                         seconds => float(), first_error => term(), failed => term()}.
rps(#{client := Kind} = T) ->
    Ctx = prepare(Kind, T),
    try sanity(Kind, Ctx, T) of
        ok -> measure(Kind, Ctx, T);
        {error, Why} -> #{failed => Why}
    after
        cleanup(Kind, Ctx)
    end.

prepare(httpc, #{workers := N}) ->
    Profile = list_to_atom("bench_httpc_" ++ integer_to_list(erlang:unique_integer([positive]))),
    {ok, _} = inets:start(httpc, [{profile, Profile}]),
    ok = httpc:set_options([{max_sessions, N}, {max_keep_alive_length, 1},
                            {keep_alive_timeout, 600000}, {max_pipeline_length, 0}],
                           Profile),
    Profile;
prepare(Kind, T) when Kind =:= gun; Kind =:= finch; Kind =:= erqwest025 ->
    bench_peers:prepare(Kind, T);
prepare(_, #{proto := Proto, ca := Ca}) ->
    erqwest:make_client(client_opts(Proto, Ca)).

cleanup(httpc, Profile) -> _ = inets:stop(httpc, Profile), ok;
cleanup(Kind, Ctx) when Kind =:= gun; Kind =:= finch; Kind =:= erqwest025 ->
    bench_peers:cleanup(Kind, Ctx);
cleanup(_, Client) -> erqwest:close_client(Client).

%% BENCH_SYNC_PATH=reqwest keeps erqwest:req/2 off the direct path (a
%% `resolve' entry for a name never asked for: the client is reqwest's),
%% so that the same `sync' column measures both paths in A/B runs.
client_opts(Proto, Ca) ->
    Base = case os:getenv("BENCH_SYNC_PATH") of
        "reqwest" -> #{proxy => no_proxy, resolve => [{<<"unused.invalid">>, {{127, 0, 0, 1}, 1}}]};
        _ -> #{proxy => no_proxy}
    end,
    case Proto of
        http -> Base;
        _ -> Base#{additional_root_certs => [ca_der(Ca)], use_built_in_root_certs => false}
    end.

ca_der(Ca) ->
    {ok, Pem} = file:read_file(Ca),
    [{'Certificate', Der, not_encrypted}] = public_key:pem_decode(Pem),
    Der.

%% One request first: the right status, body and protocol version, so
%% that a misconfigured run fails loudly instead of measuring errors.
%% The peers' first responses are checked by the workers (errors are
%% counted and shown); gun opens its connections in the workers.
sanity(Kind, _, _) when Kind =:= gun; Kind =:= finch; Kind =:= erqwest025 ->
    ok;
sanity(Kind, Ctx, #{proto := Proto} = T) ->
    Want = case Proto of h2 -> 'HTTP/2'; _ -> 'HTTP/1.1' end,
    case {Kind, one(Kind, Ctx, T)} of
        {httpc, {ok, {{"HTTP/1.1", 200, _}, _, _}} = R} -> ok_if(check(httpc, R, T), R);
        {httpc, R} -> {error, R};
        {_, {ok, #{status := 200, version := Want}} = R} -> ok_if(check(Kind, R, T), R);
        {_, R} -> {error, {unexpected, Want, R}}
    end.

ok_if(true, _) -> ok;
ok_if(false, R) -> {error, R}.

one(httpc, Profile, T) -> httpc_req(Profile, T);
one(_, Client, T) -> erqwest:req(Client, req_opts(T)).

req_opts(#{url := Url, method := get}) -> #{method => get, url => Url};
req_opts(#{url := Url, method := post, body := Body}) -> #{method => post, url => Url, body => Body}.

httpc_req(Profile, #{url := Url, method := Method, body := Body, proto := Proto, ca := Ca}) ->
    U = binary_to_list(Url),
    Req = case Method of get -> {U, []}; post -> {U, [], "application/octet-stream", Body} end,
    Http = case Proto of
        http -> [{timeout, 60000}];
        %% The certificate names 127.0.0.1 too, but OTP's ssl checks an IP
        %% address only against a name: give it the name.
        _ -> [{timeout, 60000}, {ssl, [{verify, verify_peer}, {cacertfile, Ca},
                                       {server_name_indication, "localhost"}]}]
    end,
    httpc:request(Method, Req, Http, [{body_format, binary}], Profile).

check(httpc, {ok, {{_, 200, _}, _, B}}, #{expect := N}) -> byte_size(B) =:= N;
check(httpc, _, _) -> false;
check(peer, {ok, 200, B}, #{expect := N}) -> byte_size(B) =:= N;
check(peer, _, _) -> false;
check(_, {ok, #{status := 200, body := B}}, #{expect := N}) -> byte_size(B) =:= N;
check(_, _, _) -> false.

measure(Kind, Ctx, #{workers := N, warmup_ms := Warm, duration_ms := Dur} = T) ->
    Ctr = counters:new(3, [write_concurrency]),
    Stop = atomics:new(1, []),
    Errors = ets:new(bench_errors, [public]),
    Env = #{ctx => Ctx, target => T, ctr => Ctr, stop => Stop, errors => Errors},
    Pids = spawn_workers(Kind, N, Env),
    Ready = wait_ready(Ctr, N, erlang:monotonic_time(millisecond) + ?READY_TIMEOUT),
    timer:sleep(Warm),
    Perf = perf_open(),
    Cpu0 = cpu(),
    perf_control(Perf, "enable"),
    {D0, E0, T0} = snapshot(Ctr),
    timer:sleep(Dur),
    {D1, E1, T1} = snapshot(Ctr),
    perf_control(Perf, "disable"),
    Cpu = cpu_delta(Cpu0, cpu()),
    Counts = perf_close(Perf),
    atomics:put(Stop, 1, 1),
    Stuck = wait_down(Pids, erlang:monotonic_time(millisecond) + ?STOP_TIMEOUT),
    Secs = (T1 - T0) / 1.0e6,
    First = case ets:lookup(Errors, first) of [{first, E}] -> E; [] -> none end,
    ets:delete(Errors),
    R = #{rps => (D1 - D0) / Secs, requests => D1 - D0, errors => E1 - E0, seconds => Secs,
          first_error => First, cpu => Cpu, counts => Counts},
    case {Ready, Stuck} of
        {true, 0} -> R;
        {false, _} -> R#{failed => {not_all_workers_completed_a_request, First}};
        {_, S} -> R#{failed => {workers_did_not_stop, S}}
    end.

snapshot(Ctr) ->
    {counters:get(Ctr, ?CTR_DONE), counters:get(Ctr, ?CTR_ERRORS),
     erlang:monotonic_time(microsecond)}.

wait_ready(Ctr, N, Deadline) ->
    case counters:get(Ctr, ?CTR_READY) >= N of
        true -> true;
        false ->
            case erlang:monotonic_time(millisecond) > Deadline of
                true -> false;
                false -> timer:sleep(20), wait_ready(Ctr, N, Deadline)
            end
    end.

wait_down([], _) -> 0;
wait_down([{Pid, Mon} | Rest] = All, Deadline) ->
    Left = max(0, Deadline - erlang:monotonic_time(millisecond)),
    receive
        {'DOWN', Mon, process, Pid, _} -> wait_down(Rest, Deadline)
    after Left ->
        [exit(P, kill) || {P, _} <- All],
        length(All)
    end.

spawn_workers(async, N, Env) ->
    Drivers = min(N, erlang:system_info(schedulers_online)),
    Shares = [N div Drivers + (if I =< N rem Drivers -> 1; true -> 0 end) || I <- lists:seq(1, Drivers)],
    [spawn_monitor(fun() -> async_driver(K, Env) end) || K <- Shares];
spawn_workers(Kind, N, #{ctx := Ctx, target := T} = Env)
  when Kind =:= gun; Kind =:= finch; Kind =:= erqwest025 ->
    [spawn_monitor(fun() ->
                       W = bench_peers:init_worker(Kind, Ctx, T),
                       peer_worker(Kind, W, Env, false)
                   end) || _ <- lists:seq(1, N)];
spawn_workers(Kind, N, Env) ->
    [spawn_monitor(fun() -> worker(Kind, Env, false) end) || _ <- lists:seq(1, N)].

peer_worker(Kind, W, #{target := T, stop := Stop} = Env, Ready) ->
    Ok = count(peer, bench_peers:request(Kind, W, T), Env),
    Ready2 = Ready orelse (Ok andalso mark_ready(Env)),
    case atomics:get(Stop, 1) of
        0 -> peer_worker(Kind, W, Env, Ready2);
        _ -> ok
    end.

worker(Kind, #{ctx := Ctx, target := T, stop := Stop} = Env, Ready) ->
    R = case Kind of
        sync -> erqwest:req(Ctx, req_opts(T));
        httpc -> httpc_req(Ctx, T)
    end,
    Ok = count(Kind, R, Env),
    Ready2 = Ready orelse (Ok andalso mark_ready(Env)),
    case atomics:get(Stop, 1) of
        0 -> worker(Kind, Env, Ready2);
        _ -> ok
    end.

mark_ready(#{ctr := Ctr}) ->
    counters:add(Ctr, ?CTR_READY, 1),
    true.

count(Kind, R, #{ctr := Ctr, target := T, errors := Errors}) ->
    case check(Kind, R, T) of
        true ->
            counters:add(Ctr, ?CTR_DONE, 1),
            true;
        false ->
            counters:add(Ctr, ?CTR_ERRORS, 1),
            _ = ets:insert_new(Errors, {first, R}),
            false
    end.

%% Keeps K requests in flight; the handles are not kept: a complete-body
%% request runs to its reply without one.
async_driver(K, #{ctx := Client, target := T} = Env) ->
    Opts = req_opts(T),
    [_ = erqwest_async:req(Client, self(), make_ref(), Opts) || _ <- lists:seq(1, K)],
    async_loop(K, K, Client, Opts, Env).

async_loop(0, _, _, _, _) ->
    ok;
async_loop(InFlight, NotReady, Client, Opts, #{stop := Stop} = Env) ->
    R = receive
        {erqwest_response, _, reply, Resp} -> {ok, Resp};
        {erqwest_response, _, error, Err} -> {error, Err}
    end,
    Ok = count(async, R, Env),
    NotReady2 = case Ok andalso NotReady > 0 of
        true -> mark_ready(Env), NotReady - 1;
        false -> NotReady
    end,
    case atomics:get(Stop, 1) of
        0 ->
            _ = erqwest_async:req(Client, self(), make_ref(), Opts),
            async_loop(InFlight, NotReady2, Client, Opts, Env);
        _ ->
            async_loop(InFlight - 1, NotReady2, Client, Opts, Env)
    end.

%% CPU time of this VM's threads, by kind: `tokio' (erqwest's runtime),
%% `schedulers', `dirty' (dirty schedulers) and `other'; microseconds
%% from /proc (clock ticks, usually 10 ms each).
cpu() ->
    Dir = "/proc/self/task",
    case file:list_dir(Dir) of
        {ok, Tids} -> maps:from_list([{T, C} || T <- Tids, {ok, C} <- [thread_cpu(Dir, T)]]);
        _ -> #{}
    end.

thread_cpu(Dir, Tid) ->
    case file:read_file(filename:join([Dir, Tid, "stat"])) of
        {ok, Stat} ->
            {Open, _} = binary:match(Stat, <<"(">>),
            [{Close, _} | _] = lists:reverse(binary:matches(Stat, <<")">>)),
            Comm = binary:part(Stat, Open + 1, Close - Open - 1),
            Fields = binary:split(binary:part(Stat, Close + 2, byte_size(Stat) - Close - 2),
                                  <<" ">>, [global]),
            %% utime and stime are fields 14 and 15 of stat; 12 and 13 here.
            Ticks = binary_to_integer(lists:nth(12, Fields)) + binary_to_integer(lists:nth(13, Fields)),
            {ok, {thread_kind(Comm), Ticks}};
        _ -> error
    end.

thread_kind(<<"erqwest-", _/binary>>) -> tokio;
thread_kind(Comm) ->
    case re:run(Comm, "^[0-9]+_(scheduler|dirty)", [{capture, all_but_first, binary}]) of
        {match, [<<"scheduler">>]} -> schedulers;
        {match, [<<"dirty">>]} -> dirty;
        _ -> other
    end.

cpu_delta(C0, C1) ->
    Tick = 1.0e6 / clock_ticks(),
    maps:fold(fun(Tid, {Kind, T1}, Acc) ->
                  T0 = case maps:get(Tid, C0, undefined) of {_, T} -> T; undefined -> 0 end,
                  maps:update_with(Kind, fun(V) -> V + (T1 - T0) * Tick end, (T1 - T0) * Tick, Acc)
              end, #{}, C1).

clock_ticks() ->
    case string:to_integer(os:cmd("getconf CLK_TCK")) of
        {N, _} when is_integer(N), N > 0 -> N;
        _ -> 100
    end.

%% BENCH_INSTRUCTIONS=1: `perf stat' counts this VM's instructions and
%% cycles over exactly the measured window (it starts disabled and is
%% switched on and off through a pair of fifos). Instructions hardly move
%% with other load on the machine, so an A/B of a change can use them when
%% request rates are too noisy to compare.
%% BENCH_PERF_EVENTS names other events (e.g. `context-switches,task-clock':
%% software events, which work where a VM guest has no hardware counters).
perf_open() ->
    Events = case {os:getenv("BENCH_PERF_EVENTS"), os:getenv("BENCH_INSTRUCTIONS")} of
        {E, _} when is_list(E), E =/= "" -> E;
        {_, "1"} -> "instructions,cycles";
        _ -> none
    end,
    case Events of
        none -> none;
        _ ->
            Dir = string:trim(os:cmd("mktemp -d")),
            [Ctl, Ack, Out] = [filename:join(Dir, F) || F <- ["ctl", "ack", "out"]],
            "" = os:cmd("mkfifo " ++ Ctl ++ " " ++ Ack),
            Cmd = "perf stat -x, -e " ++ Events ++ " -D -1 --control fifo:" ++ Ctl
                ++ "," ++ Ack ++ " -p " ++ os:getpid() ++ " -o " ++ Out ++ " 2>/dev/null",
            Port = open_port({spawn, Cmd}, [exit_status]),
            {os_pid, OsPid} = erlang:port_info(Port, os_pid),
            %% Opening a fifo blocks until the other end is open: perf's.
            {ok, C} = file:open(Ctl, [write, raw]),
            {ok, A} = file:open(Ack, [read, raw, binary]),
            #{port => Port, os_pid => OsPid, ctl => C, ack => A, dir => Dir, out => Out,
              events => [list_to_binary(X) || X <- string:lexemes(Events, ",")]}
    end.

perf_control(none, _) -> ok;
perf_control(#{ctl := C, ack := A}, Cmd) ->
    ok = file:write(C, Cmd ++ "\n"),
    %% perf acknowledges with "ack\n\0"; a raw read waits for all it asks.
    {ok, <<"ack\n", _>>} = file:read(A, 5),
    ok.

perf_close(none) -> #{};
perf_close(#{port := Port, os_pid := OsPid, ctl := C, ack := A, dir := Dir, out := Out, events := Evs}) ->
    _ = os:cmd("kill -INT " ++ integer_to_list(OsPid)),
    receive {Port, {exit_status, _}} -> ok after 10000 -> ok end,
    _ = [file:close(F) || F <- [C, A]],
    {ok, Text} = file:read_file(Out),
    _ = os:cmd("rm -rf " ++ Dir),
    %% task-clock is printed in ms with decimals; the rest are counts.
    maps:from_list([{binary_to_atom(Event), binary_to_float(to_float(N))}
                    || Line <- binary:split(Text, <<"\n">>, [global]),
                       [N, _, Event | _] <- [binary:split(Line, <<",">>, [global])],
                       lists:member(Event, Evs),
                       is_float(catch binary_to_float(to_float(N)))]).

to_float(N) ->
    case binary:match(N, <<".">>) of
        nomatch -> <<N/binary, ".0">>;
        _ -> N
    end.

%%% Streaming

-type stream_result() :: #{bytes := non_neg_integer(), seconds := float(),
                           vm_base := non_neg_integer(), vm_peak := non_neg_integer(),
                           rss_base := non_neg_integer(), rss_peak := non_neg_integer()}
                       | #{failed := term()}.

%% @doc Downloads `url' with `response_body => stream', reading with
%% `erqwest:read/2' (`read_opts'), and reports time and memory.
-spec download(#{url := binary(), proto := proto(), ca := file:filename(),
                 read_opts := erqwest:read_opts()}) -> stream_result().
download(#{url := Url, proto := Proto, ca := Ca, read_opts := ReadOpts}) ->
    C = erqwest:make_client(client_opts(Proto, Ca)),
    timed(fun() ->
        case erqwest:get(C, Url, #{response_body => stream}) of
            {ok, #{status := 200, body := H}} -> read_all(H, ReadOpts, 0);
            Other -> {error, Other}
        end
    end).

read_all(H, Opts, N) ->
    case erqwest:read(H, Opts) of
        {more, B} -> read_all(H, Opts, N + byte_size(B));
        {ok, B} -> {ok, N + byte_size(B)};
        {error, _} = E -> E
    end.

%% @doc Uploads `bytes' to `url' with `body => stream', in `chunk'-byte
%% `erqwest:send/2' calls (one binary, sent again and again).
-spec upload(#{url := binary(), proto := proto(), ca := file:filename(),
               bytes := pos_integer(), chunk := pos_integer()}) -> stream_result().
upload(#{url := Url, proto := Proto, ca := Ca, bytes := Bytes, chunk := ChunkSize}) ->
    C = erqwest:make_client(client_opts(Proto, Ca)),
    Chunk = binary:copy(<<"erqwest!">>, ChunkSize div 8),
    timed(fun() ->
        case erqwest:req(C, #{method => post, url => Url, body => stream}) of
            {handle, H} -> send_all(H, Chunk, Bytes, 0);
            Other -> {error, Other}
        end
    end).

send_all(H, Chunk, Bytes, Sent) when Sent + byte_size(Chunk) =< Bytes ->
    case erqwest:send(H, Chunk) of
        ok -> send_all(H, Chunk, Bytes, Sent + byte_size(Chunk));
        Other -> {error, {early, Other}}
    end;
send_all(H, Chunk, Bytes, Sent) ->
    Last = binary:part(Chunk, 0, Bytes - Sent),
    ok = case Last of <<>> -> ok; _ -> erqwest:send(H, Last) end,
    case erqwest:finish_send(H) of
        {ok, #{status := 200}} -> {ok, Bytes};
        Other -> {error, Other}
    end.

%% Runs F with memory sampled every 5 ms (VM total and RSS) and the
%% kernel's RSS high-water mark reset before.
timed(F) ->
    erlang:garbage_collect(),
    VmBase = erlang:memory(total),
    RssBase = rss(),
    _ = file:write_file("/proc/self/clear_refs", "5"),
    Sampler = spawn_link(fun() -> sampler(VmBase, RssBase) end),
    T0 = erlang:monotonic_time(microsecond),
    R = F(),
    T1 = erlang:monotonic_time(microsecond),
    Sampler ! {stop, self()},
    {VmPeak, RssPeak} = receive {Sampler, Peaks} -> Peaks end,
    Hwm = hwm(),
    case R of
        {ok, N} ->
            #{bytes => N, seconds => (T1 - T0) / 1.0e6, vm_base => VmBase, vm_peak => VmPeak,
              rss_base => RssBase, rss_peak => max(RssPeak, Hwm)};
        {error, Why} ->
            #{failed => Why}
    end.

sampler(Vm, Rss) ->
    receive
        {stop, From} -> From ! {self(), {max(Vm, erlang:memory(total)), max(Rss, rss())}}
    after 5 ->
        sampler(max(Vm, erlang:memory(total)), max(Rss, rss()))
    end.

%% @doc This VM's resident set size in bytes.
-spec rss() -> non_neg_integer().
rss() -> status_kb(<<"VmRSS:">>) * 1024.

hwm() -> status_kb(<<"VmHWM:">>) * 1024.

status_kb(Key) ->
    {ok, S} = file:read_file("/proc/self/status"),
    [Line] = [L || L <- binary:split(S, <<"\n">>, [global]), binary:match(L, Key) =:= {0, byte_size(Key)}],
    [_, Kb | _] = binary:split(Line, [<<" ">>, <<"\t">>], [global, trim_all]),
    binary_to_integer(Kb).

%%% NIF call times

%% @doc Times individual `erqwest_nif' calls with `erlang:monotonic_time'
%% around the call (nanoseconds). `base' is the plain HTTP/1.1 listener's
%% URL; `iters' the number of calls for cheap cases, `big_iters' for the
%% 8 MB ones. With `tls_base' (nginx's HTTPS listener with HTTP/1.1, and
%% `ca' its CA file) the direct path's calls over TLS are timed too.
-spec nif_times(#{base := binary(), iters := pos_integer(), big_iters := pos_integer(),
                  download := binary(), tls_base => binary(), ca => file:filename()}) ->
    [{string(), [non_neg_integer()]}].
nif_times(#{base := Base, iters := Iters, big_iters := Big, download := Download} = Opts) ->
    C = erqwest:make_client(client_opts(http, none)),
    Echo = <<Base/binary, "/echo">>,
    Sink = <<Base/binary, "/sink">>,
    Small = <<Base/binary, "/small">>,
    Body8M = binary:copy(<<"erqwest!">>, 1024 * 1024),
    Iolist8M = [binary:part(Body8M, I * 65536, 65536) || I <- lists:seq(0, 127)],
    Headers = [{<<"x-bench-", (integer_to_binary(I))/binary>>, <<"value-", (integer_to_binary(I))/binary>>}
               || I <- lists:seq(1, 1000)],
    Req = fun(Fun, Opts) -> fun() -> time_req(Fun, C, Opts) end end,
    Cases = [
        {"req, 10 B body", Iters, Req(req, #{method => post, url => Echo, body => <<"0123456789">>})},
        {"req, 8 MB binary body", Big, Req(req, #{method => post, url => Sink, body => Body8M})},
        {"req_dirty, 8 MB iolist body", Big, Req(req_dirty, #{method => post, url => Sink, body => Iolist8M})},
        {"req_dirty, 1,000 headers (API's choice)", Iters, Req(req_dirty, #{method => get, url => Small, headers => Headers})},
        {"req, 1,000 headers (normal scheduler)", Iters, Req(req, #{method => get, url => Small, headers => Headers})}
    ],
    lists:foreach(fun({_, _, F}) -> F() end, Cases),
    Reqs = [{Name, [F() || _ <- lists:seq(1, N)]} || {Name, N, F} <- Cases],
    %% The noise floor: the same timing around nothing, and around the
    %% cheapest NIF there is; their maxima show what the machine adds.
    Floor = [{"(floor) nothing", [time_call(fun() -> ok end) || _ <- lists:seq(1, Iters)]},
             {"(floor) feature/1, a trivial NIF", [time_call(fun() -> erqwest_nif:feature(gzip) end)
                                                   || _ <- lists:seq(1, Iters)]},
             {"(floor) 100 clock reads, for 1 s", clock_windows(1000)},
             {"(gen_tcp) send of the same POST 10 B to nginx", time_tcp_sends(Echo, Iters)}],
    Body64K = binary:part(Body8M, 0, 64 * 1024),
    Direct = [{"direct path, every call: POST 10 B", time_direct(C, #{method => post, url => Echo, body => <<"0123456789">>}, Iters)},
              {"direct path, every call: POST 64 KB", time_direct(C, #{method => post, url => Sink, body => Body64K}, Big)},
              {"direct path, every call: GET " ++ file_label(Download), time_direct(C, #{method => get, url => Download}, 2)}]
             ++ direct_tls_times(Opts, Body64K),
    Floor ++ Reqs ++ Direct ++ [{"send, 64 KB binary", time_sends(C, Sink, binary:part(Body8M, 0, 65536), Iters)},
             {"send, 8 MB binary", time_sends(C, Sink, Body8M, Big)},
             {"read", time_reads(C, Download, Iters)},
             {"cancel", [time_cancel(C, Download) || _ <- lists:seq(1, Iters div 4)]}].

%% The direct path's calls over HTTPS (records decrypted and encrypted
%% inside them); the handshake is on the runtime, before the first.
direct_tls_times(#{tls_base := TlsBase, ca := Ca, iters := Iters, big_iters := Big}, Body64K) ->
    C = erqwest:make_client(client_opts(https, Ca)),
    Echo = <<TlsBase/binary, "/echo">>,
    Sink = <<TlsBase/binary, "/sink">>,
    _ = time_direct(C, #{method => get, url => Echo}, 1),
    [{"direct path over TLS, every call: POST 10 B",
      time_direct(C, #{method => post, url => Echo, body => <<"0123456789">>}, Iters)},
     {"direct path over TLS, every call: POST 64 KB",
      time_direct(C, #{method => post, url => Sink, body => Body64K}, Big)}];
direct_tls_times(_, _) ->
    [].

%% Every NIF call of N requests on erqwest:req/2's direct path, as
%% erqwest_direct makes them: the start, then a poll per readiness message
%% or `again'. A body decoded or joined on the runtime answers by message.
time_direct(C, Opts, N) ->
    lists:append([direct_calls(C, Opts) || _ <- lists:seq(1, N)]).

direct_calls(C, Opts) ->
    Ref = make_ref(),
    {T, Step} = timed_call(fun() -> erqwest_nif:direct_req(C, Ref, Opts) end),
    direct_steps(Step, Ref, [T]).

direct_steps({wait, Call, _}, Ref, Acc) ->
    receive
        {select, _, Ref, _} -> direct_poll(Call, Ref, Acc);
        {erqwest_response, Ref, reply, #{status := 200}} -> Acc;
        {erqwest_response, Ref, Tag, What} -> error({direct_case_failed, Tag, What})
    after 60000 -> error(direct_case_timeout)
    end;
direct_steps({again, Call}, Ref, Acc) ->
    direct_poll(Call, Ref, Acc);
direct_steps({ok, #{status := 200}}, _Ref, Acc) ->
    Acc;
direct_steps(Other, _Ref, _Acc) ->
    error({direct_case_failed, Other}).

direct_poll(Call, Ref, Acc) ->
    {T, Step} = timed_call(fun() -> erqwest_nif:direct_poll(Call, Ref) end),
    direct_steps(Step, Ref, [T | Acc]).

%% The same request as the direct path's POST 10 B, written with
%% gen_tcp on a keep-alive connection: only the send is timed. A send on
%% loopback runs the server's side of TCP in the sending thread and wakes
%% the server, whatever client makes it; gun and Finch send this way, from
%% the calling scheduler too.
time_tcp_sends(Url, N) ->
    #{host := Host, port := Port, path := Path} = uri_string:parse(Url),
    {ok, S} = gen_tcp:connect(binary_to_list(Host), Port,
                              [binary, {active, false}, {nodelay, true}]),
    Req = [<<"POST ">>, Path, <<" HTTP/1.1\r\nhost: ">>, Host, $:, integer_to_binary(Port),
           <<"\r\naccept: */*\r\ncontent-length: 10\r\n\r\n0123456789">>],
    Bin = iolist_to_binary(Req),
    Times = [begin
                 T = time_call(fun() -> ok = gen_tcp:send(S, Bin) end),
                 ok = read_response(S, <<>>),
                 T
             end || _ <- lists:seq(1, N)],
    gen_tcp:close(S),
    Times.

%% Reads one response with a content-length or chunked body.
read_response(S, Buf) ->
    case binary:split(Buf, <<"\r\n\r\n">>) of
        [Head, Body] ->
            case re:run(Head, <<"(?i)content-length: *([0-9]+)">>, [{capture, all_but_first, binary}]) of
                {match, [Len]} ->
                    read_exactly(S, binary_to_integer(Len) - byte_size(Body));
                nomatch ->
                    read_until_last_chunk(S, Body)
            end;
        [_] ->
            {ok, More} = gen_tcp:recv(S, 0, 5000),
            read_response(S, <<Buf/binary, More/binary>>)
    end.

read_exactly(_S, Left) when Left =< 0 -> ok;
read_exactly(S, Left) ->
    {ok, More} = gen_tcp:recv(S, 0, 5000),
    read_exactly(S, Left - byte_size(More)).

read_until_last_chunk(S, Body) ->
    case binary:match(Body, <<"\r\n0\r\n\r\n">>) of
        nomatch ->
            {ok, More} = gen_tcp:recv(S, 0, 5000),
            read_until_last_chunk(S, <<Body/binary, More/binary>>);
        _ -> ok
    end.

%% Back-to-back windows of 100 clock reads for `Ms' milliseconds: a
%% window takes a few microseconds, and its maximum is the longest the
%% machine took this thread away over a span as long as a case's (on a
%% VM, the host's too: 2-4 ms here, with no context switch in the guest).
clock_windows(Ms) ->
    End = erlang:monotonic_time(nanosecond) + Ms * 1000000,
    clock_windows(End, []).

clock_windows(End, Acc) ->
    T0 = erlang:monotonic_time(nanosecond),
    T1 = clock_reads(100, T0),
    case T1 > End of
        true -> Acc;
        false -> clock_windows(End, [T1 - T0 | Acc])
    end.

clock_reads(0, T) -> T;
clock_reads(N, _) -> clock_reads(N - 1, erlang:monotonic_time(nanosecond)).

%% ".../files/268435456.bin" -> "256 MB file"
file_label(Url) ->
    [Bytes | _] = string:split(lists:last(string:split(binary_to_list(Url), "/", all)), "."),
    integer_to_list(list_to_integer(Bytes) div (1024 * 1024)) ++ " MB file".

timed_call(F) ->
    T0 = erlang:monotonic_time(nanosecond),
    R = F(),
    {erlang:monotonic_time(nanosecond) - T0, R}.

time_call(F) ->
    element(1, timed_call(F)).

time_req(Fun, C, Opts) ->
    Ref = make_ref(),
    T0 = erlang:monotonic_time(nanosecond),
    _ = erqwest_nif:Fun(C, self(), Ref, Opts),
    T1 = erlang:monotonic_time(nanosecond),
    receive
        %% nginx answers 1,000 headers with 400 (too many header lines):
        %% the request was still sent, which is what is timed here.
        {erqwest_response, Ref, reply, #{status := S}} when S < 300; S =:= 400 -> ok;
        {erqwest_response, Ref, Tag, What} -> error({nif_case_failed, Tag, What, maps:without([headers, body], Opts)})
    after 60000 -> error({nif_case_timeout, Opts})
    end,
    T1 - T0.

time_sends(C, Url, Chunk, N) ->
    Ref = make_ref(),
    H = erqwest_nif:req(C, self(), Ref, #{method => post, url => Url, body => stream}),
    next = await(Ref),
    Times = [begin
                 T0 = erlang:monotonic_time(nanosecond),
                 ok = erqwest_nif:send(H, Chunk),
                 T1 = erlang:monotonic_time(nanosecond),
                 next = await(Ref),
                 T1 - T0
             end || _ <- lists:seq(1, N)],
    ok = erqwest_nif:finish_send(H),
    {reply, #{status := 200}} = await(Ref),
    Times.

%% Reads may return more than asked for, so a download can end before N
%% reads: then another one starts.
time_reads(C, Url, N) ->
    time_reads(C, Url, N, []).

time_reads(_, _, 0, Acc) ->
    Acc;
time_reads(C, Url, N, Acc) ->
    Ref = make_ref(),
    H = erqwest_nif:req(C, self(), Ref, #{method => get, url => Url, response_body => stream}),
    {reply, #{status := 200}} = await(Ref),
    read_loop(C, Url, H, Ref, N, Acc).

read_loop(_, _, H, Ref, 0, Acc) ->
    ok = erqwest_nif:cancel(H),
    _ = await(Ref),
    Acc;
read_loop(C, Url, H, Ref, N, Acc) ->
    T0 = erlang:monotonic_time(nanosecond),
    ok = erqwest_nif:read(H, #{length => 65536}),
    T1 = erlang:monotonic_time(nanosecond),
    case await(Ref) of
        {chunk, _} -> read_loop(C, Url, H, Ref, N - 1, [T1 - T0 | Acc]);
        {fin, _} -> time_reads(C, Url, N - 1, [T1 - T0 | Acc])
    end.

time_cancel(C, Url) ->
    Ref = make_ref(),
    H = erqwest_nif:req(C, self(), Ref, #{method => get, url => Url, response_body => stream}),
    {reply, #{status := 200}} = await(Ref),
    T0 = erlang:monotonic_time(nanosecond),
    ok = erqwest_nif:cancel(H),
    T1 = erlang:monotonic_time(nanosecond),
    {error, #{code := cancelled}} = await(Ref),
    T1 - T0.

await(Ref) ->
    receive
        {erqwest_response, Ref, next} -> next;
        {erqwest_response, Ref, Tag, What} -> {Tag, What}
    after 60000 -> error({timeout, Ref})
    end.

%%% Requests in flight

%% @doc Starts `n' GETs to `url' (a server that holds them) from one
%% process, which keeps their handles; returns the memory before and the
%% time it took to issue them.
-spec inflight_start(#{url := binary(), n := pos_integer(), warm_url := binary(),
                       proto := proto(), ca := file:filename()}) ->
    #{vm_base := non_neg_integer(), rss_base := non_neg_integer(), issue_us := non_neg_integer()}.
inflight_start(Opts) ->
    Self = self(),
    Pid = spawn(fun() -> inflight_holder(Self, Opts) end),
    receive {Pid, Started} -> Started end.

inflight_holder(From, #{url := Url, n := N, warm_url := Warm, proto := Proto, ca := Ca}) ->
    register(bench_inflight, self()),
    C = erqwest:make_client(client_opts(Proto, Ca)),
    %% One request first so that the runtime and the client are warm (and,
    %% over HTTP/2, the one connection is open).
    {ok, _} = erqwest:get(C, Warm),
    erlang:garbage_collect(),
    VmBase = erlang:memory(total),
    RssBase = rss(),
    Opts = #{method => get, url => Url},
    T0 = erlang:monotonic_time(microsecond),
    Handles = [erqwest_async:req(C, self(), I, Opts) || I <- lists:seq(1, N)],
    T1 = erlang:monotonic_time(microsecond),
    From ! {self(), #{vm_base => VmBase, rss_base => RssBase, issue_us => T1 - T0}},
    inflight_loop(C, Handles).

inflight_loop(C, Handles) ->
    receive
        {measure, From} ->
            erlang:garbage_collect(),
            From ! {bench_inflight, #{vm => erlang:memory(total), rss => rss(),
                                      early => early_replies()}},
            inflight_loop(C, Handles);
        {stop, From} ->
            [erqwest_async:cancel(H) || H <- Handles],
            Left = drain_finals(length(Handles), erlang:monotonic_time(millisecond) + 30000),
            erqwest:close_client(C),
            From ! {bench_inflight, Left}
    end.

%% Requests that ended before being measured (they should all be held).
early_replies() ->
    {message_queue_len, Q} = process_info(self(), message_queue_len),
    Q.

drain_finals(0, _) -> 0;
drain_finals(N, Deadline) ->
    receive
        {erqwest_response, _, _, _} -> drain_finals(N - 1, Deadline)
    after max(0, Deadline - erlang:monotonic_time(millisecond)) -> N
    end.

%% @doc Memory now, with the requests in flight.
-spec inflight_measure() -> #{vm := non_neg_integer(), rss := non_neg_integer(),
                              early := non_neg_integer()}.
inflight_measure() -> inflight_call(measure).

%% @doc Cancels the requests; the number whose final message did not come.
-spec inflight_stop() -> non_neg_integer().
inflight_stop() -> inflight_call(stop).

inflight_call(What) ->
    bench_inflight ! {What, self()},
    receive {bench_inflight, R} -> R after 60000 -> error({inflight, What, timeout}) end.
