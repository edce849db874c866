%% @doc An HTTP/1.1 server that reads each request's head and never
%% answers: the requests stay in flight for as long as the client wants.
%% It counts the requests it has read, so that the benchmark knows when
%% all of them reached it.
-module(bench_holder).

-export([start/0, count/1, stop/1]).

-opaque holder() :: #{pid := pid(), port := inet:port_number(), ctr := counters:counters_ref()}.
-export_type([holder/0]).

%% @doc Listens on 127.0.0.1 on a port of the kernel's choice.
-spec start() -> {holder(), inet:port_number()}.
start() ->
    Ctr = counters:new(1, [write_concurrency]),
    Self = self(),
    Pid = spawn(fun() ->
        {ok, L} = gen_tcp:listen(0, [binary, {ip, {127, 0, 0, 1}}, {packet, http_bin},
                                     {active, false}, {backlog, 4096}, {reuseaddr, true}]),
        {ok, Port} = inet:port(L),
        Self ! {self(), Port},
        process_flag(trap_exit, false),
        accept(L, Ctr)
    end),
    receive {Pid, Port} -> {#{pid => Pid, port => Port, ctr => Ctr}, Port} end.

%% @doc How many request heads were read so far.
-spec count(holder()) -> non_neg_integer().
count(#{ctr := Ctr}) -> counters:get(Ctr, 1).

%% @doc Closes the listener and every connection.
-spec stop(holder()) -> ok.
stop(#{pid := Pid}) ->
    Mon = monitor(process, Pid),
    exit(Pid, kill),
    receive {'DOWN', Mon, _, _, _} -> ok end.

accept(L, Ctr) ->
    case gen_tcp:accept(L) of
        {ok, S} ->
            Conn = spawn_link(fun() -> receive go -> hold(S, Ctr) end end),
            ok = gen_tcp:controlling_process(S, Conn),
            Conn ! go;
        {error, emfile} ->
            %% Out of file descriptors: the client's connections wait in
            %% the backlog and the count shows the shortfall.
            timer:sleep(100)
    end,
    accept(L, Ctr).

%% Reads the request line and headers, counts the request, then waits
%% for the client to go away.
hold(S, Ctr) ->
    case gen_tcp:recv(S, 0) of
        {ok, http_eoh} ->
            counters:add(Ctr, 1, 1),
            ok = inet:setopts(S, [{active, once}, {packet, raw}]),
            receive {tcp_closed, S} -> ok; {tcp, S, _} -> ok end,
            gen_tcp:close(S);
        {ok, _RequestLineOrHeader} -> hold(S, Ctr);
        {error, _} -> gen_tcp:close(S)
    end.
