%% @doc The reference clients, run as OS processes: wrk (HTTP/1.1 load),
%% h2load (HTTP/2 load; wrk has no HTTP/2) and curl (streaming).
-module(bench_tools).

-export([wrk/1, h2load/1, curl/1, run/3, version/1]).

-type result() :: #{rps => float(), latency_us => float(), errors => non_neg_integer(),
                    failed => term()}.

%% @doc wrk against `url' with `conns' connections for `seconds' (whole
%% seconds: wrk takes no fractions). `script' is a Lua file for POSTs.
-spec wrk(#{url := binary(), conns := pos_integer(), seconds := pos_integer(),
            threads := pos_integer(), script := file:filename() | none}) -> result().
wrk(#{url := Url, conns := C, seconds := S, threads := T, script := Script}) ->
    Args = ["-t", integer_to_list(min(T, C)), "-c", integer_to_list(C),
            "-d", integer_to_list(S) ++ "s", "--timeout", "30s"]
        ++ case Script of none -> []; _ -> ["-s", Script] end
        ++ [binary_to_list(Url)],
    case run("wrk", Args, (S + 60) * 1000) of
        {0, Out} -> parse_wrk(Out);
        {Status, Out} -> #{failed => {wrk_exit, Status, Out}}
    end.

parse_wrk(Out) ->
    case re:run(Out, "Requests/sec:\\s+([0-9.]+)", [{capture, all_but_first, list}]) of
        {match, [Rps]} ->
            Errors = sum_matches(Out, "Non-2xx or 3xx responses: ([0-9]+)")
                   + sum_matches(Out, "(?:connect|read|write|timeout) ([0-9]+)"),
            #{rps => to_float(Rps), latency_us => wrk_latency(Out), errors => Errors};
        nomatch ->
            #{failed => {wrk_output, Out}}
    end.

wrk_latency(Out) ->
    case re:run(Out, "Latency\\s+([0-9.]+)(us|ms|s)\\b", [{capture, all_but_first, list}]) of
        {match, [V, "us"]} -> to_float(V);
        {match, [V, "ms"]} -> to_float(V) * 1000;
        {match, [V, "s"]} -> to_float(V) * 1.0e6;
        nomatch -> undefined
    end.

%% @doc h2load with `streams' concurrent streams over as few connections
%% as carry at most 100 streams each: one connection up to 100 (erqwest's
%% pool also keeps one), more above, because h2load over nginx falls to a
%% third of its rate with 500 POST streams on one connection.
-spec h2load(#{url := binary(), streams := pos_integer(), seconds := pos_integer(),
               warmup := pos_integer(), data := file:filename() | none}) -> result().
h2load(#{url := Url, streams := N, seconds := S, warmup := W, data := Data}) ->
    Conns = (N + 99) div 100,
    Args = ["-c", integer_to_list(Conns), "-m", integer_to_list((N + Conns - 1) div Conns),
            "-D", integer_to_list(S),
            "--warm-up-time=" ++ integer_to_list(W)]
        ++ case Data of none -> []; _ -> ["-d", Data] end
        ++ [binary_to_list(Url)],
    case run("h2load", Args, (S + W + 60) * 1000) of
        {0, Out} ->
            case re:run(Out, "finished in [0-9.]+m?s, ([0-9.]+) req/s", [{capture, all_but_first, list}]) of
                {match, [Rps]} ->
                    Errors = sum_matches(Out, "([0-9]+) failed") + sum_matches(Out, "([0-9]+) errored")
                           + sum_matches(Out, "([0-9]+) timeout")
                           + sum_matches(Out, "([0-9]+) [345]xx"),
                    Proto = re:run(Out, "Application protocol: h2", [{capture, none}]),
                    case Proto of
                        match -> #{rps => to_float(Rps), errors => Errors};
                        nomatch -> #{failed => {not_h2, Out}}
                    end;
                nomatch -> #{failed => {h2load_output, Out}}
            end;
        {Status, Out} -> #{failed => {h2load_exit, Status, Out}}
    end.

%% @doc One curl transfer: a download of `url' to /dev/null, or an upload
%% of `file' with POST. Returns bytes and seconds from curl's own timers.
-spec curl(#{dir := download | upload, url := binary(), proto := http | https | h2,
             ca := file:filename(), file => file:filename()}) ->
    #{bytes := non_neg_integer(), seconds := float()} | #{failed := term()}.
curl(#{dir := Dir, url := Url, proto := Proto, ca := Ca} = Opts) ->
    Version = case Proto of h2 -> "--http2"; _ -> "--http1.1" end,
    {Write, Extra} = case Dir of
        download -> {"%{http_code} %{size_download} %{time_total}", []};
        upload -> {"%{http_code} %{size_upload} %{time_total}",
                   ["-X", "POST", "-H", "Expect:", "-T", maps:get(file, Opts)]}
    end,
    Args = ["-sS", "-o", "/dev/null", "--noproxy", "*", "--cacert", Ca, Version,
            "-w", Write] ++ Extra ++ [binary_to_list(Url)],
    case run("curl", Args, 600000) of
        {0, Out} ->
            case string:lexemes(string:trim(Out), " ") of
                ["200", Bytes, Secs] ->
                    #{bytes => list_to_integer(Bytes), seconds => to_float(Secs)};
                _ -> #{failed => {curl_output, Out}}
            end;
        {Status, Out} -> #{failed => {curl_exit, Status, Out}}
    end.

%% @doc The first line a tool prints about its version.
-spec version([string()]) -> string().
version([Exe | Args]) ->
    try run(Exe, Args, 10000) of
        {_, Out} -> string:trim(hd(string:split(Out, "\n")))
    catch
        error:{not_found, _} -> "?"
    end.

%% @doc Runs `Exe' with `Args'; its exit status and output (stdout and
%% stderr). Killed after `Timeout' ms.
-spec run(string(), [string()], timeout()) -> {integer() | timeout, string()}.
run(Exe, Args, Timeout) ->
    Path = case os:find_executable(Exe) of
        false -> error({not_found, Exe});
        P -> P
    end,
    Port = open_port({spawn_executable, Path},
                     [{args, Args}, exit_status, stderr_to_stdout, binary, hide]),
    Deadline = erlang:monotonic_time(millisecond) + Timeout,
    collect(Port, Deadline, []).

collect(Port, Deadline, Acc) ->
    Left = max(0, Deadline - erlang:monotonic_time(millisecond)),
    receive
        {Port, {data, D}} -> collect(Port, Deadline, [D | Acc]);
        {Port, {exit_status, S}} -> {S, binary_to_list(iolist_to_binary(lists:reverse(Acc)))}
    after Left ->
        case erlang:port_info(Port, os_pid) of
            {os_pid, Pid} -> _ = os:cmd("kill -KILL " ++ integer_to_list(Pid));
            undefined -> ok
        end,
        {timeout, binary_to_list(iolist_to_binary(lists:reverse(Acc)))}
    end.

sum_matches(Out, Re) ->
    case re:run(Out, Re, [global, {capture, all_but_first, list}]) of
        {match, Ms} -> lists:sum([list_to_integer(N) || [N] <- Ms]);
        nomatch -> 0
    end.

to_float(S) ->
    case string:to_float(S) of
        {F, _} when is_float(F) -> F;
        _ -> float(list_to_integer(S))
    end.
