%% @doc `make bench-resilience': what retries and hedging cost and buy
%% (issue 16), against an nginx of its own on 127.0.0.1.
%%
%% 1. requests/s (and the VM's CPU time per request) of 50 workers making
%%    GETs in a loop with `retry' off and on, when nothing fails: the cost
%%    of the machinery. The two are run
%%    in alternation, `BENCH_ROUNDS' times each (default 3), for
%%    `BENCH_SECONDS' each (default 5), and the medians compared.
%% 2. latency percentiles of 20 workers against a location where 5% of
%%    requests (nginx's split_clients on $request_id) sleep 200 ms, with
%%    and without `hedge => #{delay => 20}'.
-module(bench_resilience).

-export([main/0]).

-define(ECHO_MODULE, "/usr/lib/nginx/modules/ngx_http_echo_module.so").

-spec main() -> no_return().
main() ->
    {ok, _} = application:ensure_all_started(erqwest),
    Dir = os:getenv("BENCH_WORK"),
    {Port, Nginx} = start_nginx(Dir),
    try
        Rounds = env_int("BENCH_ROUNDS", 3),
        Seconds = env_int("BENCH_SECONDS", 5),
        io:format("machine: ~s, ~s cores; OTP ~s~n",
                  [string:trim(os:cmd("uname -srm")), string:trim(os:cmd("nproc")),
                   erlang:system_info(otp_release)]),
        Fast = url(Port, "/fast"),
        throughput(Fast, Rounds, Seconds),
        Mixed = url(Port, "/mixed"),
        latency(Mixed, env_int("BENCH_LATENCY_REQUESTS", 4000))
    after
        stop_nginx(Nginx, Dir)
    end,
    halt(0).

env_int(Name, Default) ->
    case os:getenv(Name) of
        false -> Default;
        V -> list_to_integer(V)
    end.

url(Port, Path) -> iolist_to_binary(["http://127.0.0.1:", integer_to_list(Port), Path]).

%%% 1. throughput with and without retries

throughput(Url, Rounds, Seconds) ->
    Off = erqwest:make_client(#{}),
    On = erqwest:make_client(#{retry => true}),
    %% Warm both pools up.
    _ = rps(Off, Url, 1),
    _ = rps(On, Url, 1),
    Runs = lists:append([[{off, rps(Off, Url, Seconds)}, {on, rps(On, Url, Seconds)}]
                         || _ <- lists:seq(1, Rounds)]),
    OffRps = [R || {off, {R, _}} <- Runs],
    OnRps = [R || {on, {R, _}} <- Runs],
    OffCpu = [C || {off, {_, C}} <- Runs],
    OnCpu = [C || {on, {_, C}} <- Runs],
    io:format("~nGET /fast, 50 workers, HTTP/1.1, ~b s x ~b rounds each, alternating~n",
              [Seconds, Rounds]),
    io:format("  retry off: ~s req/s, ~.1f us CPU/req (runs ~s)~n",
              [fmt(median(OffRps)), median(OffCpu), fmts(OffRps)]),
    io:format("  retry on:  ~s req/s, ~.1f us CPU/req (runs ~s)~n",
              [fmt(median(OnRps)), median(OnCpu), fmts(OnRps)]),
    io:format("  on / off:  ~.3f req/s, ~.3f CPU/req~n",
              [median(OnRps) / median(OffRps), median(OnCpu) / median(OffCpu)]).

rps(Client, Url, Seconds) ->
    Parent = self(),
    Deadline = erlang:monotonic_time(millisecond) + Seconds * 1000,
    Pids = [spawn_link(fun() -> Parent ! {count, self(), loop(Client, Url, Deadline, 0)} end)
            || _ <- lists:seq(1, 50)],
    T0 = erlang:monotonic_time(microsecond),
    Cpu0 = cpu_us(),
    Total = lists:sum([receive {count, P, N} -> N end || P <- Pids]),
    {Total / ((erlang:monotonic_time(microsecond) - T0) / 1.0e6), (cpu_us() - Cpu0) / Total}.

%% User + system time of this VM (all its threads, tokio's included), in
%% µs; less disturbed than a rate by other load on the machine.
cpu_us() ->
    {ok, Stat} = file:read_file("/proc/" ++ os:getpid() ++ "/stat"),
    [_, AfterName] = binary:split(Stat, <<") ">>),
    Fields = binary:split(AfterName, <<" ">>, [global]),
    Ticks = binary_to_integer(lists:nth(12, Fields)) + binary_to_integer(lists:nth(13, Fields)),
    Ticks * 1.0e6 / list_to_integer(string:trim(os:cmd("getconf CLK_TCK"))).

loop(Client, Url, Deadline, N) ->
    case erlang:monotonic_time(millisecond) >= Deadline of
        true -> N;
        false ->
            {ok, #{status := 200}} = erqwest:get(Client, Url),
            loop(Client, Url, Deadline, N + 1)
    end.

%%% 2. tail latency with and without hedging

latency(Url, Requests) ->
    Plain = erqwest:make_client(#{}),
    Hedged = erqwest:make_client(#{hedge => #{delay => 20}}),
    io:format("~nGET /mixed (5% of requests sleep 200 ms), 20 workers, ~b requests each run~n",
              [Requests]),
    [report(Name, latencies(C, Url, Requests)) || {Name, C} <- [{"no hedge", Plain},
                                                             {"hedge 20 ms", Hedged},
                                                             {"no hedge", Plain},
                                                             {"hedge 20 ms", Hedged}]],
    ok.

latencies(Client, Url, Requests) ->
    Parent = self(),
    Per = Requests div 20,
    Pids = [spawn_link(fun() -> Parent ! {lat, self(), timed(Client, Url, Per, [])} end)
            || _ <- lists:seq(1, 20)],
    lists:sort(lists:append([receive {lat, P, L} -> L end || P <- Pids])).

timed(_Client, _Url, 0, Acc) -> Acc;
timed(Client, Url, N, Acc) ->
    T0 = erlang:monotonic_time(microsecond),
    {ok, #{status := 200}} = erqwest:get(Client, Url),
    timed(Client, Url, N - 1, [erlang:monotonic_time(microsecond) - T0 | Acc]).

report(Name, Sorted) ->
    P = fun(Q) -> lists:nth(max(1, round(Q * length(Sorted))), Sorted) / 1000 end,
    io:format("  ~-12s p50 ~7.2f ms  p90 ~7.2f ms  p99 ~7.2f ms  max ~7.2f ms~n",
              [Name, P(0.5), P(0.9), P(0.99), lists:last(Sorted) / 1000]).

median(L) -> lists:nth((length(L) + 1) div 2, lists:sort(L)).
fmt(X) -> integer_to_list(round(X)).
fmts(L) -> lists:join(", ", [fmt(X) || X <- L]).

%%% nginx

start_nginx(Dir) ->
    {ok, L} = gen_tcp:listen(0, [{ip, {127, 0, 0, 1}}, {reuseaddr, true}]),
    {ok, Port} = inet:port(L),
    ok = gen_tcp:close(L),
    Conf = filename:join(Dir, "nginx.conf"),
    User = case os:cmd("id -u") of "0\n" -> "user root;\n"; _ -> "" end,
    ok = file:write_file(Conf, [
        "load_module ", ?ECHO_MODULE, ";\n", User,
        "worker_processes 1;\ndaemon off;\npid ", Dir, "/nginx.pid;\nerror_log stderr error;\n"
        "events { worker_connections 8192; }\n"
        "http {\n"
        "  access_log off;\n"
        "  client_body_temp_path ", Dir, "/body;\n"
        "  keepalive_requests 100000000;\n  keepalive_timeout 300s;\n"
        "  split_clients \"${request_id}\" $slow { 5% 1; * \"\"; }\n"
        "  server {\n"
        "    listen 127.0.0.1:", integer_to_list(Port), ";\n"
        "    location = /fast { echo \"hello erqwest\"; }\n"
        "    location = /mixed { if ($slow) { rewrite ^ /slow last; } echo \"hello erqwest\"; }\n"
        "    location = /slow { internal; echo_sleep 0.2; echo \"hello erqwest\"; }\n"
        "  }\n"
        "}\n"]),
    Nginx = os:find_executable("nginx"),
    P = open_port({spawn_executable, Nginx},
                  [{args, ["-p", Dir, "-c", Conf, "-e", "stderr"]}, exit_status,
                   stderr_to_stdout, binary]),
    ok = wait_up(Port, 100),
    {Port, P}.

wait_up(_Port, 0) -> error(nginx_did_not_start);
wait_up(Port, N) ->
    case gen_tcp:connect({127, 0, 0, 1}, Port, [], 500) of
        {ok, S} -> gen_tcp:close(S), ok;
        {error, _} -> timer:sleep(100), wait_up(Port, N - 1)
    end.

stop_nginx(P, Dir) ->
    {ok, Pid} = file:read_file(filename:join(Dir, "nginx.pid")),
    _ = os:cmd("kill -TERM " ++ string:trim(binary_to_list(Pid))),
    receive {P, {exit_status, _}} -> ok after 10000 -> ok end.
