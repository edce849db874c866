%% @doc `make bench-events': event streams (erqwest_events) against reading
%% the same stream with `erqwest:read/2' and splitting it in Erlang.
%%
%% A peer VM serves the stream (so its work is not on this VM's
%% schedulers): `text/event-stream', one `data:' line of about 100 bytes of
%% JSON per event, written in 64 KB blocks as fast as the socket takes
%% them. This VM consumes it in one process, in each of these ways:
%% <ul>
%% <li>`read/2 + split': `erqwest:read/2' of whole chunks, split at blank
%%     lines with `binary:split/3', the `data: ' prefix cut off (the least
%%     an Erlang SSE reader does; no WHATWG rules);</li>
%% <li>the same, each event's data then decoded with jiffy (when installed);</li>
%% <li>`erqwest_events', `data => binary' and `data => json', with credit
%%     given 1,000 events at a time, and with `once' (a credit message per
%%     event);</li>
%% <li>the same with `batch => true' (lists of events), credit 1,000 at a
%%     time, 10,000 at a time and credit that never runs out;</li>
%% <li>`Erqwest.Events.stream/3' counted by `Enum.count/1', when the VM has
%%     Elixir and the mix build on its code path (`make bench-events' adds
%%     them when `mix' is installed).</li>
%% </ul>
%% For each: events/s, the normal schedulers' busy time per event, and the
%% runtime threads' CPU time per event (from /proc). Then the NIF's memory
%% while a consumer holds back: the VM's RSS and the bytes the server
%% managed to write, over 3 s with no credit.
%%
%% Settings (environment): EVENTS_BENCH_EVENTS (default 400000),
%% EVENTS_BENCH_ROUNDS (default 3; the best round is reported),
%% EVENTS_BENCH_ONLY (only the consumers whose name holds this string, and
%% read/2 + split).
-module(erqwest_events_bench).

-export([main/0]).
%% Run in the server peer.
-export([serve/1, sent/1]).

-define(BLOCK_EVENTS, 600).

-spec main() -> ok.
main() ->
    {ok, _} = application:ensure_all_started(erqwest),
    N = env_int("EVENTS_BENCH_EVENTS", 400000),
    Rounds = env_int("EVENTS_BENCH_ROUNDS", 3),
    Ebin = filename:dirname(code:which(?MODULE)),
    {ok, Peer, _} = peer:start_link(#{connection => standard_io, args => ["-pa", Ebin],
                                      wait_boot => 60000}),
    Port = peer:call(Peer, ?MODULE, serve, [N]),
    Url = iolist_to_binary(["http://127.0.0.1:", integer_to_list(Port), "/"]),
    Client = erqwest:make_client(#{proxy => no_proxy}),
    io:format("erqwest event streams: ~b events of ~b bytes each (~.1f MB), best of ~b~n",
              [N, byte_size(event(1)), N * byte_size(event(1)) / 1.0e6, Rounds]),
    io:format("machine: ~s, ~b schedulers, OTP ~s~n~n",
              [cpu_model(), erlang:system_info(schedulers), erlang:system_info(otp_release)]),
    _ = erlang:system_flag(scheduler_wall_time, true),
    Jiffy = code:which(jiffy) =/= non_existing,
    Elixir = code:which('Elixir.Erqwest.Events') =/= non_existing
        andalso code:which('Elixir.Enum') =/= non_existing,
    Elixir orelse io:format("(no Elixir on the code path: no Erqwest.Events.stream rows)~n~n"),
    Ways = [{"read/2 + split in Erlang", fun(C, U) -> raw(C, U, false) end}]
        ++ [{"read/2 + split + jiffy:decode", fun(C, U) -> raw(C, U, true) end} || Jiffy]
        ++ [{"erqwest_events, data => binary", fun(C, U) -> events(C, U, #{active => 1000}) end},
            {"erqwest_events, data => json",
             fun(C, U) -> events(C, U, #{active => 1000, data => json}) end},
            {"erqwest_events, binary, active once", fun(C, U) -> events(C, U, #{}) end},
            {"erqwest_events, binary, active 10^9", fun(C, U) -> events(C, U, #{active => 1000000000}) end},
            {"erqwest_events, batch, data => binary",
             fun(C, U) -> events(C, U, #{active => 1000, batch => true}) end},
            {"erqwest_events, batch, data => json",
             fun(C, U) -> events(C, U, #{active => 1000, batch => true, data => json}) end},
            {"erqwest_events, batch, binary, 10^4",
             fun(C, U) -> events(C, U, #{active => 10000, batch => true}) end},
            {"erqwest_events, batch, binary, 10^9",
             fun(C, U) -> events(C, U, #{active => 1000000000, batch => true}) end}]
        ++ [{"Erqwest.Events.stream |> Enum.count", fun(C, U) -> elixir_stream(C, U, []) end}
            || Elixir]
        ++ [{"Erqwest.Events.stream, credit: 10^4",
             fun(C, U) -> elixir_stream(C, U, [{credit, 10000}]) end} || Elixir]
        ++ [{"Erqwest.Events.stream, data: :json",
             fun(C, U) -> elixir_stream(C, U, [{data, json}]) end} || Elixir],
    Only = os:getenv("EVENTS_BENCH_ONLY", ""),
    Results = [{Name, best([measure(Fun, Client, Url, N) || _ <- lists:seq(1, Rounds)])}
               || {Name, Fun} <- Ways,
                  lists:prefix("read/2 + split in", Name) orelse string:find(Name, Only) =/= nomatch],
    io:format("~-38s ~12s ~14s ~14s ~10s~n",
              ["consumer", "events/s", "sched us/ev", "tokio us/ev", "ev/msg"]),
    [io:format("~-38s ~12b ~14.2f ~14.2f ~10s~n",
               [Name, round(Rate), Sched, Tokio, per_msg(PerMsg)])
     || {Name, #{rate := Rate, sched_us := Sched, tokio_us := Tokio, per_msg := PerMsg}}
            <- Results],
    #{rate := Raw} = proplists:get_value("read/2 + split in Erlang", Results),
    io:format("~n"),
    [io:format("~-38s ~5.1f% of read/2 + split~n", [Name, 100 * R / Raw])
     || {Name, #{rate := R}} <- Results, not lists:prefix("read/2", Name)],
    case proplists:get_value("read/2 + split + jiffy:decode", Results) of
        #{rate := RawJson} ->
            [io:format("~-38s ~5.1f% of read/2 + split + jiffy~n", [Name, 100 * R / RawJson])
             || {Name, #{rate := R}} <- Results, lists:suffix("json", Name)];
        undefined -> ok
    end,
    hold(Client, Peer),
    peer:stop(Peer),
    ok.

best(Rs) ->
    hd(lists:sort(fun(#{rate := A}, #{rate := B}) -> A >= B end, Rs)).

%% Runs one consumer; returns its rate and costs.
measure(Fun, Client, Url, N) ->
    erlang:garbage_collect(),
    S0 = sched(),
    T0 = tokio_ticks(),
    W0 = erlang:monotonic_time(microsecond),
    erase(messages),
    Got = Fun(Client, Url),
    Msgs = get(messages),
    W1 = erlang:monotonic_time(microsecond),
    S1 = sched(),
    T1 = tokio_ticks(),
    Got =:= N orelse error({events, Got, expected, N}),
    Wall = W1 - W0,
    #{rate => N / (Wall / 1.0e6),
      sched_us => busy_us(S0, S1, Wall) / N,
      tokio_us => (T1 - T0) * (1.0e6 / ticks_per_second()) / N,
      per_msg => case Msgs of undefined -> undefined; _ -> N / max(Msgs, 1) end}.

per_msg(undefined) -> "-";
per_msg(X) -> io_lib:format("~.1f", [X]).

%%% Consumers

raw(Client, Url, Json) ->
    {ok, #{status := 200, body := H}} =
        erqwest:get(Client, Url, #{response_body => stream}),
    raw_loop(H, <<>>, 0, Json).

raw_loop(H, Rest, N, Json) ->
    case erqwest:read(H, #{length => 65536}) of
        {more, Data} ->
            {Rest1, N1} = split(<<Rest/binary, Data/binary>>, N, Json),
            raw_loop(H, Rest1, N1, Json);
        {ok, Data} ->
            {_, N1} = split(<<Rest/binary, Data/binary>>, N, Json),
            N1
    end.

split(Buf, N, Json) ->
    Parts = binary:split(Buf, <<"\n\n">>, [global]),
    {Events, [Rest]} = lists:split(length(Parts) - 1, Parts),
    lists:foreach(fun(<<"data: ", D/binary>>) when Json -> _ = jiffy:decode(D, [return_maps]);
                     (<<"data: ", _/binary>>) -> ok
                  end, Events),
    {Rest, N + length(Events)}.

events(Client, Url, Opts) ->
    Ref = make_ref(),
    H = erqwest_events:open(Client, self(), Ref, #{method => get, url => Url},
                            Opts#{reconnect => false}),
    Credit = maps:get(active, Opts, once),
    events_loop(H, Ref, Credit, 0, 0).

%% Counts events and the messages that carried them (ev/msg).
events_loop(H, Ref, Credit, N, M) ->
    receive
        {erqwest_events, Ref, event, _} -> events_loop(H, Ref, Credit, N + 1, M + 1);
        {erqwest_events, Ref, events, Es} -> events_loop(H, Ref, Credit, N + length(Es), M + 1);
        {erqwest_events, Ref, passive} ->
            ok = erqwest_events:active(H, Credit),
            events_loop(H, Ref, Credit, N, M);
        {erqwest_events, Ref, open, _} -> events_loop(H, Ref, Credit, N, M);
        {erqwest_events, Ref, closed, eof} -> put(messages, M), N;
        {erqwest_events, Ref, error, E} -> error(E)
    end.

%% The Elixir layer: a lazy stream (batches, credit 1,000 at a time inside)
%% counted one element at a time.
elixir_stream(Client, Url, Opts) ->
    'Elixir.Enum':count('Elixir.Erqwest.Events':stream(Client, Url, [{reconnect, false} | Opts])).

%% A consumer that takes one event and then holds back for 3 s.
hold(Client, Peer) ->
    Ref = make_ref(),
    H = erqwest_events:open(Client, self(), Ref,
                            #{method => get, url => peer:call(Peer, ?MODULE, sent, [endless])},
                            #{active => once, data => json}),
    receive {erqwest_events, Ref, event, _} -> ok after 10000 -> error(no_event) end,
    timer:sleep(500),
    {Rss0, Mem0, Sent0} = {rss(), erlang:memory(total), peer:call(Peer, ?MODULE, sent, [bytes])},
    timer:sleep(3000),
    {Rss1, Mem1, Sent1} = {rss(), erlang:memory(total), peer:call(Peer, ?MODULE, sent, [bytes])},
    ok = erqwest_events:close(H),
    receive {erqwest_events, Ref, closed, normal} -> ok after 10000 -> error(no_close) end,
    io:format("~nconsumer holding back (no credit) for 3 s, server writing as fast as it can:~n"
              "  server wrote ~.1f MB before the hold, ~.1f KB more during it~n"
              "  client VM RSS ~.1f -> ~.1f MB; erlang:memory(total) ~.1f -> ~.1f MB~n",
              [Sent0 / 1.0e6, (Sent1 - Sent0) / 1.0e3, Rss0 / 1.0e6, Rss1 / 1.0e6,
               Mem0 / 1.0e6, Mem1 / 1.0e6]).

%%% Costs

sched() ->
    lists:sort([S || {Id, _, _} = S <- erlang:statistics(scheduler_wall_time),
                     Id =< erlang:system_info(schedulers)]).

%% Busy time of the normal schedulers in µs: each one's busy share of its
%% own total, times the wall time (the units of the counters cancel out).
busy_us(S0, S1, Wall) ->
    lists:sum([case T1 - T0 of
                   0 -> 0;
                   DT -> (A1 - A0) / DT * Wall
               end || {{Id, A0, T0}, {Id, A1, T1}} <- lists:zip(S0, S1)]).

%% utime + stime of the runtime's worker threads, in clock ticks.
tokio_ticks() ->
    {ok, Tids} = file:list_dir("/proc/self/task"),
    lists:sum([ticks(T) || T <- Tids]).

ticks(Tid) ->
    Dir = "/proc/self/task/" ++ Tid,
    case file:read_file(Dir ++ "/comm") of
        {ok, <<"erqwest-worker", _/binary>>} ->
            {ok, Stat} = file:read_file(Dir ++ "/stat"),
            [_, AfterName] = binary:split(Stat, <<") ">>),
            Fields = binary:split(AfterName, <<" ">>, [global]),
            binary_to_integer(lists:nth(12, Fields)) + binary_to_integer(lists:nth(13, Fields));
        _ -> 0
    end.

ticks_per_second() -> 100.

rss() ->
    {ok, Statm} = file:read_file("/proc/self/statm"),
    [_, Resident | _] = binary:split(Statm, <<" ">>, [global]),
    binary_to_integer(Resident) * 4096.

cpu_model() ->
    case file:read_file("/proc/cpuinfo") of
        {ok, Info} ->
            case re:run(Info, "model name\\s*:\\s*(.*)", [{capture, all_but_first, binary}]) of
                {match, [M]} -> M;
                nomatch -> "unknown CPU"
            end;
        _ -> "unknown CPU"
    end.

env_int(Var, Default) ->
    case os:getenv(Var) of
        false -> Default;
        V -> list_to_integer(V)
    end.

%%% The server (in the peer VM)

event(I) ->
    iolist_to_binary(["data: {\"id\":", integer_to_list(100000 + I rem 900000),
                      ",\"type\":\"delta\",\"text\":\"lorem ipsum dolor sit amet, consectetur\",",
                      "\"ts\":1733090000}\n\n"]).

%% @doc Listens on 127.0.0.1; `GET /' sends `N' events then closes,
%% `GET /endless' sends until the client goes away, counting bytes.
-spec serve(pos_integer()) -> inet:port_number().
serve(N) ->
    Counter = counters:new(1, []),
    persistent_term:put({?MODULE, sent}, Counter),
    Parent = self(),
    spawn(fun() ->
        {ok, L} = gen_tcp:listen(0, [binary, {active, false}, {ip, {127, 0, 0, 1}},
                                     {reuseaddr, true}, {nodelay, true}]),
        {ok, Port} = inet:port(L),
        Parent ! {port, Port},
        accept(L, N, Counter)
    end),
    receive {port, Port} -> ok end,
    persistent_term:put({?MODULE, port}, Port),
    Port.

%% @doc The URL of the endless stream, or the bytes written to it so far.
-spec sent(endless | bytes) -> binary() | non_neg_integer().
sent(endless) ->
    iolist_to_binary(["http://127.0.0.1:",
                      integer_to_list(persistent_term:get({?MODULE, port})), "/endless"]);
sent(bytes) ->
    counters:get(persistent_term:get({?MODULE, sent}), 1).

accept(L, N, Counter) ->
    {ok, S} = gen_tcp:accept(L),
    Pid = spawn(fun() -> receive go -> conn(S, N, Counter) end end),
    ok = gen_tcp:controlling_process(S, Pid),
    Pid ! go,
    accept(L, N, Counter).

conn(S, N, Counter) ->
    {ok, Req} = gen_tcp:recv(S, 0),
    Head = <<"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n">>,
    ok = gen_tcp:send(S, Head),
    Block = iolist_to_binary([event(I) || I <- lists:seq(1, ?BLOCK_EVENTS)]),
    case binary:match(Req, <<"/endless">>) of
        nomatch ->
            Full = N div ?BLOCK_EVENTS,
            Last = iolist_to_binary([event(I) || I <- lists:seq(1, N rem ?BLOCK_EVENTS)]),
            _ = [gen_tcp:send(S, Block) || _ <- lists:seq(1, Full)],
            _ = gen_tcp:send(S, Last);
        _ ->
            endless(S, Block, Counter)
    end,
    gen_tcp:close(S).

endless(S, Block, Counter) ->
    case gen_tcp:send(S, Block) of
        ok -> counters:add(Counter, 1, byte_size(Block)), endless(S, Block, Counter);
        {error, _} -> ok
    end.
