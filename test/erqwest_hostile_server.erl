%% @doc Misbehaving servers for erqwest_hostile_SUITE: plain `gen_tcp'
%% listeners on 127.0.0.1 whose every connection runs a script, a fun of
%% the connection written by the test. The server records each request a
%% script reads (method, target, headers, body), so that a test can check
%% what the client asked for, not only what it answered.
%%
%% There is no `ssl' here on purpose: the "TLS" servers answer a
%% ClientHello with bytes chosen by the test (garbage, an alert, a record
%% header and nothing more), which a real TLS stack would never send.
%%
%% ```
%% {ok, S} = erqwest_hostile_server:start(
%%     erqwest_hostile_server:reply(<<"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nhi">>)),
%% {ok, #{body := <<"hi">>}} = erqwest:get(C, erqwest_hostile_server:url(S, "/")),
%% [#{target := <<"/">>}] = erqwest_hostile_server:requests(S),
%% ok = erqwest_hostile_server:stop(S).
%% '''
-module(erqwest_hostile_server).

-export([start/1, start/2, stop/1, port/1, url/2, url/3, requests/1, connections/1]).
-export([recv_request/1, recv_head/1, send/2, close/1, sock/1]).
-export([reply/1, reply_close/1, reply_each/1, after_hello/1, chunked/1]).

-type conn() :: #{sock := gen_tcp:socket(), server := pid(), buf := binary()}.
-type request() :: #{method := binary(), target := binary(), version := binary(),
                     headers := [{binary(), binary()}], body := binary()}.
-type script() :: fun((conn()) -> term()).
-export_type([conn/0, request/0, script/0]).

%% A request head larger than this is a broken client, not a test.
-define(MAX_HEAD, 1 bsl 20).
%% How long a script waits for the client before giving up on it.
-define(RECV_WAIT, 20000).

%%% Server

%% @doc Starts a server on a random port of 127.0.0.1; each accepted
%% connection runs `Script' in a process of its own, which closes the
%% socket when the script returns (unless the script closed it already).
-spec start(script()) -> {ok, pid()}.
start(Script) -> start(Script, #{}).

%% @doc {@link start/1} with options: `accept => N' accepts only the first
%% N connections; later ones stay in the listen queue, connected but never
%% answered (as with a server that serves one client and stops).
-spec start(script(), #{accept => pos_integer() | infinity}) -> {ok, pid()}.
start(Script, Opts) when is_function(Script, 1), is_map(Opts) ->
    Parent = self(),
    Accept = maps:get(accept, Opts, infinity),
    Pid = spawn(fun() -> init(Parent, Script, Accept) end),
    receive
        {Pid, started} -> {ok, Pid}
    after 5000 -> error(hostile_server_start_timeout)
    end.

%% @doc Stops the server and every connection it still has open.
-spec stop(pid()) -> ok.
stop(S) -> call(S, stop).

-spec port(pid()) -> inet:port_number().
port(S) -> call(S, port).

%% @equiv url(S, "http", Path)
-spec url(pid(), iodata()) -> binary().
url(S, Path) -> url(S, "http", Path).

%% @doc `Scheme://127.0.0.1:Port/Path' (`Path' starts with `/').
-spec url(pid(), iodata(), iodata()) -> binary().
url(S, Scheme, Path) ->
    iolist_to_binary([Scheme, "://127.0.0.1:", integer_to_list(port(S)), Path]).

%% @doc The requests scripts read so far, in arrival order.
-spec requests(pid()) -> [request()].
requests(S) -> lists:reverse(call(S, requests)).

%% @doc How many connections were accepted so far.
-spec connections(pid()) -> non_neg_integer().
connections(S) -> call(S, connections).

call(S, Msg) ->
    Ref = monitor(process, S),
    S ! {call, self(), Ref, Msg},
    receive
        {Ref, Reply} -> demonitor(Ref, [flush]), Reply;
        {'DOWN', Ref, _, _, Reason} -> error({hostile_server_down, Reason})
    after 5000 -> error(hostile_server_call_timeout)
    end.

init(Parent, Script, Accept) ->
    process_flag(trap_exit, true),
    {ok, L} = gen_tcp:listen(0, [binary, {ip, {127, 0, 0, 1}}, {active, false},
                                 {reuseaddr, true}, {backlog, 128}, {nodelay, true}]),
    {ok, Port} = inet:port(L),
    Self = self(),
    spawn_link(fun() -> accept_loop(Self, L, Script, Accept) end),
    Parent ! {self(), started},
    loop(#{lsock => L, port => Port, requests => [], conns => 0, open => []}).

loop(#{requests := Reqs, conns := N, open := Open} = St) ->
    receive
        {request, Req} ->
            loop(St#{requests := [Req | Reqs]});
        {accepted, Pid} ->
            loop(St#{conns := N + 1, open := [Pid | Open]});
        {'EXIT', Pid, _} ->
            loop(St#{open := lists:delete(Pid, Open)});
        {call, From, Ref, stop} ->
            _ = gen_tcp:close(maps:get(lsock, St)),
            _ = [exit(P, kill) || P <- Open],
            From ! {Ref, ok};
        {call, From, Ref, port} ->
            From ! {Ref, maps:get(port, St)}, loop(St);
        {call, From, Ref, requests} ->
            From ! {Ref, Reqs}, loop(St);
        {call, From, Ref, connections} ->
            From ! {Ref, N}, loop(St)
    end.

accept_loop(_Server, _L, _Script, 0) ->
    ok;
accept_loop(Server, L, Script, Left) ->
    case gen_tcp:accept(L) of
        {ok, Sock} ->
            Pid = spawn(fun() -> conn_start(Server, Script) end),
            Server ! {accepted, Pid},
            ok = gen_tcp:controlling_process(Sock, Pid),
            Pid ! {go, Sock},
            accept_loop(Server, L, Script, case Left of infinity -> infinity; _ -> Left - 1 end);
        {error, _} ->
            ok
    end.

conn_start(Server, Script) ->
    link(Server),
    receive
        {go, Sock} ->
            _ = (catch Script(#{sock => Sock, server => Server, buf => <<>>})),
            gen_tcp:close(Sock)
    end.

%%% What scripts use

%% @doc The connection's socket, for scripts that read raw bytes.
-spec sock(conn()) -> gen_tcp:socket().
sock(#{sock := Sock}) -> Sock.

-spec send(conn(), iodata()) -> ok | {error, term()}.
send(#{sock := Sock}, Data) -> gen_tcp:send(Sock, Data).

-spec close(conn()) -> ok.
close(#{sock := Sock}) -> gen_tcp:close(Sock).

%% @doc Reads a request's head (not its body) and records the request with
%% an empty body: for scripts that answer before the body, or never read it.
-spec recv_head(conn()) -> {ok, request(), conn()} | closed.
recv_head(Conn) ->
    case head(Conn) of
        {ok, Req, Conn1} -> record(Conn1, Req), {ok, Req, Conn1};
        closed -> closed
    end.

%% @doc Reads one request, its `content-length' or chunked body included,
%% and records it.
-spec recv_request(conn()) -> {ok, request(), conn()} | closed.
recv_request(Conn) ->
    case head(Conn) of
        {ok, #{headers := Hs} = Req, Conn1} ->
            Result = case {header(<<"transfer-encoding">>, Hs), header(<<"content-length">>, Hs)} of
                {undefined, undefined} -> {ok, <<>>, Conn1};
                {undefined, Len} -> bytes(Conn1, binary_to_integer(Len));
                {_, _} -> dechunk(Conn1, [])
            end,
            case Result of
                {ok, Body, Conn2} ->
                    Full = Req#{body := Body},
                    record(Conn2, Full),
                    {ok, Full, Conn2};
                closed ->
                    closed
            end;
        closed ->
            closed
    end.

record(#{server := Server}, Req) -> Server ! {request, Req}.

head(#{buf := Buf} = Conn) ->
    case binary:match(Buf, <<"\r\n\r\n">>) of
        {Pos, 4} ->
            <<Head:Pos/binary, _:4/binary, Rest/binary>> = Buf,
            {ok, parse_head(Head), Conn#{buf := Rest}};
        nomatch when byte_size(Buf) > ?MAX_HEAD ->
            closed;
        nomatch ->
            case more(Conn) of
                {ok, Conn1} -> head(Conn1);
                closed -> closed
            end
    end.

parse_head(Head) ->
    [Line | HeaderLines] = binary:split(Head, <<"\r\n">>, [global]),
    [Method, Target, Version] = binary:split(Line, <<" ">>, [global]),
    Headers = [begin
                   [K, V] = binary:split(H, <<":">>),
                   {string:lowercase(K), string:trim(V)}
               end || H <- HeaderLines],
    #{method => Method, target => Target, version => Version, headers => Headers,
      body => <<>>}.

header(Name, Hs) ->
    case lists:keyfind(Name, 1, Hs) of
        {_, V} -> V;
        false -> undefined
    end.

bytes(#{buf := Buf} = Conn, N) when byte_size(Buf) >= N ->
    <<Body:N/binary, Rest/binary>> = Buf,
    {ok, Body, Conn#{buf := Rest}};
bytes(Conn, N) ->
    case more(Conn) of
        {ok, Conn1} -> bytes(Conn1, N);
        closed -> closed
    end.

line(#{buf := Buf} = Conn) ->
    case binary:match(Buf, <<"\r\n">>) of
        {Pos, 2} ->
            <<Line:Pos/binary, _:2/binary, Rest/binary>> = Buf,
            {ok, Line, Conn#{buf := Rest}};
        nomatch ->
            case more(Conn) of
                {ok, Conn1} -> line(Conn1);
                closed -> closed
            end
    end.

dechunk(Conn, Acc) ->
    case line(Conn) of
        {ok, SizeLine, Conn1} ->
            [Hex | _] = binary:split(SizeLine, <<";">>),
            case binary_to_integer(string:trim(Hex), 16) of
                0 -> trailers(Conn1, iolist_to_binary(lists:reverse(Acc)));
                N ->
                    case bytes(Conn1, N + 2) of
                        {ok, <<Data:N/binary, "\r\n">>, Conn2} -> dechunk(Conn2, [Data | Acc]);
                        _ -> closed
                    end
            end;
        closed ->
            closed
    end.

trailers(Conn, Body) ->
    case line(Conn) of
        {ok, <<>>, Conn1} -> {ok, Body, Conn1};
        {ok, _Trailer, Conn1} -> trailers(Conn1, Body);
        closed -> closed
    end.

more(#{sock := Sock, buf := Buf} = Conn) ->
    case gen_tcp:recv(Sock, 0, ?RECV_WAIT) of
        {ok, Data} -> {ok, Conn#{buf := <<Buf/binary, Data/binary>>}};
        {error, _} -> closed
    end.

%%% Ready-made scripts

%% @doc Answers every request on the connection with the same bytes, and
%% keeps the connection open for the next one.
-spec reply(iodata()) -> script().
reply(Bytes) ->
    fun Loop(Conn) ->
        case recv_request(Conn) of
            {ok, _, Conn1} -> ok = send(Conn1, Bytes), Loop(Conn1);
            closed -> ok
        end
    end.

%% @doc Answers the first request with `Bytes' and closes the connection.
-spec reply_close(iodata()) -> script().
reply_close(Bytes) ->
    fun(Conn) ->
        case recv_request(Conn) of
            {ok, _, Conn1} -> _ = send(Conn1, Bytes), close(Conn1);
            closed -> ok
        end
    end.

%% @doc Answers each request with `Fun(Request)': bytes to send (the
%% connection stays open), `{close, Bytes}' (send, then close) or `close'.
-spec reply_each(fun((request()) -> iodata() | {close, iodata()} | close)) -> script().
reply_each(Fun) ->
    fun Loop(Conn) ->
        case recv_request(Conn) of
            {ok, Req, Conn1} ->
                case Fun(Req) of
                    close -> close(Conn1);
                    {close, Bytes} -> _ = send(Conn1, Bytes), close(Conn1);
                    Bytes -> ok = send(Conn1, Bytes), Loop(Conn1)
                end;
            closed -> ok
        end
    end.

%% @doc A "TLS server" for handshake faults: waits for the first bytes of
%% the client (its ClientHello), then runs `Then(Conn)'.
-spec after_hello(fun((conn()) -> term())) -> script().
after_hello(Then) ->
    fun(Conn) ->
        case gen_tcp:recv(sock(Conn), 0, ?RECV_WAIT) of
            {ok, _Hello} -> Then(Conn);
            {error, _} -> ok
        end
    end.

%% @doc The bytes of a chunked body: one chunk per element (empty ones
%% skipped), then the last chunk and the end of the (empty) trailer.
-spec chunked([iodata()]) -> iodata().
chunked(Chunks) ->
    [[[integer_to_list(iolist_size(C), 16), "\r\n", C, "\r\n"] || C <- Chunks,
      iolist_size(C) > 0],
     "0\r\n\r\n"].
