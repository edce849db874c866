%% @doc The soak run behind `make soak': a million requests (or ten
%% minutes, whichever comes first) of every kind, faults included, while a
%% sampler records VM memory, RSS, open file descriptors and live NIF
%% resources. At the end it prints the series, the totals (requests sent,
%% final messages counted, faults tried, stray messages) and first-minute
%% versus last-minute figures, and writes the series for gnuplot.
%%
%% The servers run in a peer VM, so that the figures are the client's own.
%%
%% Environment: SOAK_REQUESTS (1000000), SOAK_SECONDS (600),
%% SOAK_INTERVAL (10 s between samples), SOAK_WORKERS (50), SOAK_OUT (the
%% directory for soak.dat).
-module(erqwest_soak).

-export([main/0]).

-define(MB, (1024 * 1024)).

main() ->
    Requests = env("SOAK_REQUESTS", 1000000),
    Seconds = env("SOAK_SECONDS", 600),
    Interval = env("SOAK_INTERVAL", 10),
    Workers = env("SOAK_WORKERS", 50),
    Out = os:getenv("SOAK_OUT", "_build/soak"),
    {ok, _} = application:ensure_all_started(erqwest),
    Servers = start_servers(),
    io:format("soak: up to ~p requests or ~p s, ~p workers, a sample every ~p s~n",
              [Requests, Seconds, Workers, Interval]),
    Counter = counters:new(1, [write_concurrency]),
    Deadline = erlang:monotonic_time(millisecond) + Seconds * 1000,
    Self = self(),
    C = erqwest:make_client(#{proxy => no_proxy}),
    Start = erlang:monotonic_time(millisecond),
    %% Monitored, not linked: -eval runs in init, which traps exits.
    Pids = [element(1, spawn_monitor(fun() ->
                worker(Self, C, Servers, Counter, Requests, Deadline, W)
            end)) || W <- lists:seq(1, Workers)],
    Samples = sample_loop(Pids, Counter, Start, Interval * 1000, []),
    Totals = collect(Pids, #{crashed => 0}),
    erqwest:close_client(C),
    %% Once the workers are done, everything they made must be gone.
    Idle = settle(20),
    Final = sample(Counter, Start),
    report(Samples, Final, Totals, Idle, Out).

env(Name, Default) ->
    case os:getenv(Name) of
        false -> Default;
        V -> list_to_integer(V)
    end.

%%% Servers, in a peer VM

start_servers() ->
    Dir = filename:dirname(code:which(erqwest_fault_server)),
    {ok, Peer} = case peer:start(#{connection => standard_io, args => ["-pa", Dir]}) of
        {ok, P} -> {ok, P};
        {ok, P, _} -> {ok, P}
    end,
    Start = fun(Name, Fault) ->
        {ok, _} = peer:call(Peer, erqwest_fault_server, start, [Fault, #{name => Name}]),
        Port = peer:call(Peer, erqwest_fault_server, port, [Name]),
        iolist_to_binary(["http://127.0.0.1:", integer_to_list(Port)])
    end,
    {ok, L} = gen_tcp:listen(0, [{ip, {127, 0, 0, 1}}]),
    {ok, Closed} = inet:port(L),
    ok = gen_tcp:close(L),
    #{peer => Peer,
      echo => Start(soak_echo, echo),
      faults => [{F, Start(list_to_atom("soak_" ++ atom_to_list(F)), F)}
                 || F <- [close_before_response, close_mid_headers, close_mid_body,
                          close_mid_chunked, garbage, oversized_headers, reset, stall,
                          stall_body, redirect_loop]]
                ++ [{refused, iolist_to_binary(["http://127.0.0.1:", integer_to_list(Closed)])}]}.

%%% Workers

worker(Parent, C, Servers, Counter, Max, Deadline, Seed) ->
    rand:seed(exsss, {Seed, 99, 12345}),
    Totals = work(C, Servers, Counter, Max, Deadline, #{sent => 0, finals => 0}),
    timer:sleep(200),
    Stray = erqwest_check:flush_all(),
    Parent ! {done, self(), Totals#{stray => Stray}}.

work(C, Servers, Counter, Max, Deadline, Acc) ->
    case counters:get(Counter, 1) >= Max orelse erlang:monotonic_time(millisecond) >= Deadline of
        true ->
            Acc;
        false ->
            counters:add(Counter, 1, 1),
            {Kind, Finals} = one(C, Servers),
            Acc2 = maps:update_with(Kind, fun(N) -> N + 1 end, 1, Acc),
            work(C, Servers, Counter, Max, Deadline,
                 Acc2#{sent := maps:get(sent, Acc2) + 1,
                       finals := maps:get(finals, Acc2) + Finals})
    end.

%% One request of a random kind; returns its kind and how many final
%% messages it got (the protocol checks raise on anything else).
one(C, #{echo := Echo, faults := Faults}) ->
    Url = <<Echo/binary, "/soak">>,
    case rand:uniform(100) of
        N when N =< 40 ->
            Body = body(),
            {ok, #{status := 200, body := Body}} =
                erqwest_check:run(C, #{method => post, url => Url, body => Body}),
            {complete, 1};
        N when N =< 55 ->
            Body = body(),
            Chunks = [binary:part(Body, 0, byte_size(Body) div 2),
                      binary:part(Body, byte_size(Body) div 2, byte_size(Body) - byte_size(Body) div 2)],
            {ok, #{status := 200, body := Body}} =
                erqwest_check:run(C, #{method => put, url => Url, body => stream,
                                       response_body => stream},
                                  #{chunks => Chunks,
                                    reads => [#{length => rand:uniform(64 * 1024)}]}),
            {streamed, 1};
        N when N =< 70 ->
            {cancelled, cancel(C, Url)};
        N when N =< 85 ->
            {ok, #{status := 200}} = erqwest:get(C, Url, #{headers => [{<<"x-p-a">>, <<"b">>}]}),
            erqwest_check:no_stray(0),
            {sync, 1};
        _ ->
            {Fault, Base} = lists:nth(rand:uniform(length(Faults)), Faults),
            {error, #{code := _}} = erqwest_check:run(C, #{method => get,
                                                           url => <<Base/binary, "/f">>,
                                                           timeout => 200}),
            {{fault, Fault}, 1}
    end.

body() ->
    Size = case rand:uniform(10) of
        10 -> rand:uniform(?MB);
        _ -> rand:uniform(4096) - 1
    end,
    binary:copy(<<"s">>, Size).

cancel(C, Url) ->
    Ref = make_ref(),
    {Opts, Stream} = case rand:uniform(3) of
        1 -> {#{method => get, url => Url}, false};
        2 -> {#{method => post, url => Url, body => stream}, false};
        3 -> {#{method => post, url => Url, body => body(), response_body => stream}, true}
    end,
    H = erqwest_async:req(C, self(), Ref, Opts),
    %% Half of them wait a little first: the first message may come, and
    %% for a complete body it is the final one.
    Seen = case rand:uniform(2) of
        1 -> 0;
        2 -> receive
                 {erqwest_response, Ref, next} -> 0;
                 {erqwest_response, Ref, reply, _} when Stream -> 0;
                 {erqwest_response, Ref, _, _} -> 1
             after 5 -> 0
             end
    end,
    ok = erqwest_async:cancel(H),
    case Seen of
        1 -> finals_after(Ref, 1);
        0 -> finals(Ref, Stream, 0)
    end.

finals(Ref, Stream, N) ->
    receive
        {erqwest_response, Ref, error, _} -> finals_after(Ref, N + 1);
        {erqwest_response, Ref, fin, _} -> finals_after(Ref, N + 1);
        {erqwest_response, Ref, reply, _} when not Stream -> finals_after(Ref, N + 1);
        {erqwest_response, Ref, _, _} -> finals(Ref, Stream, N);
        {erqwest_response, Ref, _} -> finals(Ref, Stream, N)
    after 30000 -> error({no_final, Ref})
    end.

finals_after(Ref, N) ->
    receive
        {erqwest_response, Ref, _, _} -> N + 1;
        {erqwest_response, Ref, _} -> N + 1
    after 0 -> N
    end.

collect([], Acc) ->
    Acc;
collect([P | Ps], Acc) ->
    receive
        {done, P, Totals} ->
            collect(Ps, maps:merge_with(fun(_, A, B) -> A + B end, Totals, Acc));
        {'DOWN', _, process, P, Reason} when Reason =/= normal ->
            io:format("worker ~p crashed: ~p~n", [P, Reason]),
            collect(Ps, maps:update_with(crashed, fun(N) -> N + 1 end, Acc))
    end.

%%% Sampling

sample_loop(Pids, Counter, Start, Interval, Acc) ->
    S = sample(Counter, Start),
    print(S),
    case lists:any(fun erlang:is_process_alive/1, Pids) of
        false -> lists:reverse([S | Acc]);
        true ->
            receive after Interval -> ok end,
            sample_loop(Pids, Counter, Start, Interval, [S | Acc])
    end.

sample(Counter, Start) ->
    {Handles, Tasks} = erqwest_nif:live_resources(),
    {ok, Fds} = file:list_dir("/proc/self/fd"),
    #{t => (erlang:monotonic_time(millisecond) - Start) / 1000,
      requests => counters:get(Counter, 1),
      memory => erlang:memory(total),
      rss => rss(),
      fds => length(Fds),
      handles => Handles,
      tasks => Tasks}.

rss() ->
    {ok, Status} = file:read_file("/proc/self/status"),
    [Line] = [L || L <- binary:split(Status, <<"\n">>, [global]),
                   binary:longest_common_prefix([L, <<"VmRSS:">>]) =:= 6],
    [_, Kb | _] = binary:split(Line, [<<" ">>, <<"\t">>], [global, trim_all]),
    binary_to_integer(Kb) * 1024.

print(#{t := T, requests := R, memory := M, rss := Rss, fds := F, handles := H,
        tasks := Ts}) ->
    io:format("~8.1f s ~9b requests  vm ~7.1f MB  rss ~7.1f MB  fds ~5b  handles ~6b  "
              "tasks ~6b~n", [T, R, M / ?MB, Rss / ?MB, F, H, Ts]).

%% Waits (up to N tries) until no request task is alive.
settle(0) ->
    erqwest_nif:live_resources();
settle(N) ->
    _ = [erlang:garbage_collect(P) || P <- processes()],
    case erqwest_nif:live_resources() of
        {0, 0} = Idle -> Idle;
        _ -> timer:sleep(100), settle(N - 1)
    end.

%%% Report

report(Loaded, Final, Totals, Idle, Out) ->
    Samples = Loaded ++ [Final],
    ok = filelib:ensure_dir(filename:join(Out, "x")),
    Dat = filename:join(Out, "soak.dat"),
    ok = file:write_file(Dat, [
        "# t_s requests vm_mb rss_mb fds handles tasks\n",
        [io_lib:format("~.1f ~b ~.2f ~.2f ~b ~b ~b~n",
                       [T, R, M / ?MB, Rss / ?MB, F, H, Ts])
         || #{t := T, requests := R, memory := M, rss := Rss, fds := F, handles := H,
              tasks := Ts} <- Samples]]),
    #{sent := Sent, finals := Finals, crashed := Crashed} = Totals,
    Stray = maps:get(stray, Totals, 0),
    Faults = lists:sort([{F, N} || {{fault, F}, N} <- maps:to_list(Totals)]),
    Kinds = lists:sort([{K, N} || {K, N} <- maps:to_list(Totals), is_atom(K),
                                  not lists:member(K, [sent, finals, stray, crashed])]),
    %% The first sample at or after one minute (or the second, for a
    %% short run), the last one under load, and the one once idle.
    Warm = case [S || #{t := T} = S <- Loaded, T >= 60] of
        [W | _] -> W;
        [] -> lists:nth(min(2, length(Loaded)), Loaded)
    end,
    Last = case [S || #{handles := H} = S <- Loaded, H > 0] of
        [] -> lists:last(Loaded);
        Busy -> lists:last(Busy)
    end,
    Steady = [S || #{t := T} = S <- Loaded, T >= maps:get(t, Warm), T =< maps:get(t, Last)],
    io:format("~nrequests sent ~b, final messages ~b, stray messages ~b, crashed workers ~b~n",
              [Sent, Finals, Stray, Crashed]),
    io:format("kinds: ~p~nfaults tried: ~p~n", [Kinds, Faults]),
    io:format("live {handles, tasks} once idle: ~p~n", [Idle]),
    io:format("~-7s ~10s ~12s ~12s ~12s ~16s~n",
              ["", "start", "first minute", "last loaded", "idle at end", "range, loaded"]),
    [io:format("~-7s ~10.1f ~12.1f ~12.1f ~12.1f ~7.1f..~.1f~n",
               [Name, F(hd(Loaded)), F(Warm), F(Last), F(Final),
                lists:min([F(S) || S <- Steady]), lists:max([F(S) || S <- Steady])])
     || {Name, F} <- [{"vm MB", fun(S) -> maps:get(memory, S) / ?MB end},
                      {"rss MB", fun(S) -> maps:get(rss, S) / ?MB end},
                      {"fds", fun(S) -> float(maps:get(fds, S)) end}]],
    io:format("(first minute at ~.1f s, last loaded at ~.1f s)~n",
              [maps:get(t, Warm), maps:get(t, Last)]),
    io:format("series: ~s~n", [Dat]),
    Ok = Sent =:= Finals andalso Stray =:= 0 andalso Crashed =:= 0 andalso Idle =:= {0, 0},
    io:format("~s~n", [case Ok of true -> "soak: PASS"; false -> "soak: FAIL" end]),
    halt(case Ok of true -> 0; false -> 1 end).
