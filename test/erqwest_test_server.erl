%% @doc An HTTP/1.1 server in the BEAM for wire-level tests.
%%
%% It records every request exactly as it came off the socket and answers
%% with whatever the test's handler says, including answers no real server
%% would give (a stall, a close half-way, garbage). Each connection is a
%% process; the server counts connections and reports them.
%%
%% ```
%% {ok, S} = erqwest_test_server:start(fun(_Req) -> {200, [], <<"hi">>} end),
%% Url = erqwest_test_server:url(S, "/path"),
%% ...
%% [#{method := <<"GET">>, raw := Raw}] = erqwest_test_server:requests(S).
%% '''
-module(erqwest_test_server).

-export([start/1, start/2, stop/1, url/2, port/1, requests/1, connections/1,
         open_connections/1, wait_closed/2, set_handler/2]).
-export([read_request/2, send_response/3, chunked/1]).
%% Shared with erqwest_fault_server.
-export([listen/1, call/2]).

-type request() :: #{method := binary(), path := binary(), version := binary(),
                     headers := [{binary(), binary()}], body := binary(),
                     raw := binary(), raw_body := binary(), conn := pos_integer(),
                     peer := {inet:ip_address(), inet:port_number()},
                     complete := boolean()}.
-type reply() :: {non_neg_integer(), [{iodata(), iodata()}], iodata()}
               | {raw, iodata()}
               | {raw_close, iodata()}
               | close
               | {custom, fun((gen_tcp:socket() | ssl:sslsocket(), request()) -> keep | close)}.
-type handler() :: fun((request()) -> reply()).
-export_type([request/0, reply/0, handler/0]).

-record(st, {lsock, port, handler, requests = [], conns = 0, open = #{}, waiters = [],
             transport = gen_tcp, opts = #{}}).

%% @doc Starts a server on 127.0.0.1 with a random port.
start(Handler) -> start(Handler, #{}).

%% @doc Options: `tls => [ssl:tls_server_option()]' to serve HTTPS,
%% `read_body => false' to leave the body on the socket for the handler,
%% `head_only => true' not to wait for a body.
start(Handler, Opts) ->
    Parent = self(),
    Pid = spawn(fun() -> init(Parent, Handler, Opts) end),
    receive
        {Pid, started} -> {ok, Pid};
        {Pid, Error} -> {error, Error}
    after 5000 -> {error, timeout}
    end.

stop(S) -> call(S, stop).
port(S) -> call(S, port).
url(S, Path) ->
    Scheme = case call(S, scheme) of tls -> "https"; tcp -> "http" end,
    iolist_to_binary([Scheme, "://127.0.0.1:", integer_to_list(port(S)), Path]).
%% @doc Requests in arrival order.
requests(S) -> lists:reverse(call(S, requests)).
%% @doc How many connections were accepted so far.
connections(S) -> call(S, conns).
%% @doc How many are open now.
open_connections(S) -> call(S, open).
set_handler(S, H) -> call(S, {handler, H}).

%% @doc Waits until at most `N' connections are open; `ok' or `timeout'.
wait_closed(S, N) -> wait_closed(S, N, 50).
wait_closed(_S, _N, 0) -> timeout;
wait_closed(S, N, Tries) ->
    case open_connections(S) =< N of
        true -> ok;
        false -> timer:sleep(100), wait_closed(S, N, Tries - 1)
    end.

%% @doc A call to a server process that answers `{call, From, Ref, Msg}'
%% with `{Ref, Reply}'.
-spec call(pid() | atom(), term()) -> term().
call(S, Msg) ->
    Ref = monitor(process, S),
    S ! {call, self(), Ref, Msg},
    receive
        {Ref, Reply} -> demonitor(Ref, [flush]), Reply;
        {'DOWN', Ref, _, _, R} -> error({server_down, R})
    after 10000 -> error(server_timeout)
    end.

%% @doc A listening socket on 127.0.0.1 with a free port, plain or with
%% TLS (`tls' options); `backlog' defaults to 4096.
-spec listen(map()) -> {ok, gen_tcp | ssl, term(), inet:port_number()} | {error, term()}.
listen(Opts) ->
    Common = [binary, {active, false}, {ip, {127, 0, 0, 1}}, {reuseaddr, true},
              {backlog, maps:get(backlog, Opts, 4096)}, {nodelay, true}],
    {Transport, Listen} = case maps:get(tls, Opts, undefined) of
        undefined -> {gen_tcp, gen_tcp:listen(0, Common)};
        TlsOpts -> {ssl, ssl:listen(0, Common ++ TlsOpts)}
    end,
    case Listen of
        {ok, LSock} ->
            {ok, {_, Port}} = case Transport of
                gen_tcp -> inet:sockname(LSock);
                ssl -> ssl:sockname(LSock)
            end,
            {ok, Transport, LSock, Port};
        Error ->
            Error
    end.

init(Parent, Handler, Opts) ->
    process_flag(trap_exit, true),
    case listen(Opts) of
        {ok, Transport, LSock, Port} ->
            Self = self(),
            spawn_link(fun() -> acceptor(Self, Transport, LSock) end),
            Parent ! {self(), started},
            loop(#st{lsock = LSock, port = Port, handler = Handler, transport = Transport,
                     opts = Opts});
        Error ->
            Parent ! {self(), Error}
    end.

loop(St = #st{}) ->
    receive
        {accepted, Sock} ->
            N = St#st.conns + 1,
            Self = self(),
            Pid = spawn_link(fun() -> conn(Self, St#st.transport, Sock, N, St#st.opts) end),
            ok = controlling(St#st.transport, Sock, Pid),
            Pid ! go,
            loop(St#st{conns = N, open = maps:put(Pid, N, St#st.open)});
        {request, From, Req} ->
            From ! {handler, St#st.handler},
            loop(St#st{requests = [Req | St#st.requests]});
        {'EXIT', Pid, _} ->
            loop(St#st{open = maps:remove(Pid, St#st.open)});
        {call, From, Ref, Msg} ->
            case Msg of
                stop ->
                    From ! {Ref, ok},
                    close(St#st.transport, St#st.lsock),
                    [exit(P, kill) || P <- maps:keys(St#st.open)],
                    ok;
                port -> From ! {Ref, St#st.port}, loop(St);
                scheme ->
                    From ! {Ref, case St#st.transport of ssl -> tls; gen_tcp -> tcp end},
                    loop(St);
                requests -> From ! {Ref, St#st.requests}, loop(St);
                conns -> From ! {Ref, St#st.conns}, loop(St);
                open -> From ! {Ref, maps:size(St#st.open)}, loop(St);
                {handler, H} -> From ! {Ref, ok}, loop(St#st{handler = H})
            end
    end.

controlling(gen_tcp, Sock, Pid) -> gen_tcp:controlling_process(Sock, Pid);
controlling(ssl, Sock, Pid) -> ssl:controlling_process(Sock, Pid).

close(gen_tcp, S) -> gen_tcp:close(S);
close(ssl, S) -> ssl:close(S).

acceptor(Server, gen_tcp, LSock) ->
    case gen_tcp:accept(LSock) of
        {ok, Sock} ->
            ok = gen_tcp:controlling_process(Sock, Server),
            Server ! {accepted, Sock},
            acceptor(Server, gen_tcp, LSock);
        {error, _} -> ok
    end;
acceptor(Server, ssl, LSock) ->
    case ssl:transport_accept(LSock) of
        {ok, TSock} ->
            Self = self(),
            %% Handshakes run apart so that a failing one does not block others.
            spawn(fun() ->
                case ssl:handshake(TSock, 10000) of
                    {ok, Sock} ->
                        ok = ssl:controlling_process(Sock, Server),
                        Server ! {accepted, Sock};
                    {error, _} -> ok
                end,
                unlink(Self)
            end),
            acceptor(Server, ssl, LSock);
        {error, closed} -> ok;
        {error, _} -> acceptor(Server, ssl, LSock)
    end.

conn(Server, T, Sock, N, Opts) ->
    receive go -> ok end,
    Peer = case T of
        gen_tcp -> inet:peername(Sock);
        ssl -> ssl:peername(Sock)
    end,
    conn_loop(Server, T, Sock, N, Opts#{peer => Peer}, <<>>).

conn_loop(Server, T, Sock, N, Opts, Buf) ->
    case read_request({T, Sock}, Buf, Opts) of
        {ok, Req0, Rest} ->
            {ok, Peer} = maps:get(peer, Opts),
            Req = Req0#{conn => N, peer => Peer},
            Server ! {request, self(), Req},
            Handler = receive {handler, H} -> H end,
            case respond(T, Sock, Req, Handler(Req)) of
                keep -> conn_loop(Server, T, Sock, N, Opts, Rest);
                close -> T:close(Sock)
            end;
        {error, _} ->
            T:close(Sock)
    end.

respond(T, Sock, Req, {Status, Headers, Body}) ->
    send_response({T, Sock}, {Status, Headers, Body}, Req),
    keep;
respond(T, Sock, _Req, {raw, Data}) ->
    _ = T:send(Sock, Data),
    keep;
respond(T, Sock, _Req, {raw_close, Data}) ->
    _ = T:send(Sock, Data),
    close;
respond(_T, _Sock, _Req, close) ->
    close;
respond(_T, Sock, Req, {custom, Fun}) ->
    Fun(Sock, Req).

%% @doc Writes a response with a content-length (unless the headers give
%% a transfer-encoding).
send_response({T, Sock}, {Status, Headers, Body}, Req) ->
    HasLength = lists:any(fun({K, _}) ->
        lists:member(string:lowercase(iolist_to_binary(K)),
                     [<<"content-length">>, <<"transfer-encoding">>])
    end, Headers),
    Len = case HasLength orelse maps:get(method, Req, <<>>) =:= <<"HEAD">> of
        true -> [];
        false -> [["content-length: ", integer_to_list(iolist_size(Body)), "\r\n"]]
    end,
    Data = [<<"HTTP/1.1 ">>, integer_to_list(Status), " ", reason(Status), "\r\n",
            [[K, ": ", V, "\r\n"] || {K, V} <- Headers], Len, "\r\n",
            case maps:get(method, Req, <<>>) of <<"HEAD">> -> <<>>; _ -> Body end],
    T:send(Sock, Data).

reason(200) -> "OK";
reason(Code) when Code >= 300, Code < 400 -> "Redirect";
reason(_) -> "Status".

%% @doc Encodes a body as chunked transfer-encoding.
chunked(Chunks) ->
    [[[integer_to_list(iolist_size(C), 16), "\r\n", C, "\r\n"] || C <- Chunks,
      iolist_size(C) > 0], "0\r\n\r\n"].

%% @doc Reads one request: head and body (content-length or chunked).
read_request(Conn, Buf) -> read_request(Conn, Buf, #{}).

read_request(Conn, Buf, Opts) ->
    case read_head(Conn, Buf) of
        {ok, Head, Rest} ->
            [RequestLine | HeaderLines] = binary:split(Head, <<"\r\n">>, [global]),
            [Method, Path, Version] = binary:split(RequestLine, <<" ">>, [global]),
            Headers = [header(L) || L <- HeaderLines, L =/= <<>>],
            Req = #{method => Method, path => Path, version => Version, headers => Headers},
            case maps:get(read_body, Opts, true) of
                false ->
                    {ok, Req#{body => <<>>, raw_body => <<>>, raw => Head, complete => false,
                              rest => Rest}, <<>>};
                true ->
                    case read_body(Conn, Headers, Rest) of
                        {ok, Body, RawBody, Complete, Rest2} ->
                            {ok, Req#{body => Body, raw_body => RawBody, complete => Complete,
                                      raw => <<Head/binary, "\r\n\r\n", RawBody/binary>>},
                             Rest2};
                        Error -> Error
                    end
            end;
        Error -> Error
    end.

%% Bytes, not text: values may hold Latin-1.
header(Line) ->
    [K, V] = binary:split(Line, <<":">>),
    {lower(K), trim(V)}.

lower(B) -> << <<(if C >= $A, C =< $Z -> C + 32; true -> C end)>> || <<C>> <= B >>.

trim(<<" ", R/binary>>) -> trim(R);
trim(<<"\t", R/binary>>) -> trim(R);
trim(B) -> B.

read_head(Conn, Buf) ->
    case binary:split(Buf, <<"\r\n\r\n">>) of
        [Head, Rest] -> {ok, Head, Rest};
        [_] ->
            case recv(Conn) of
                {ok, More} -> read_head(Conn, <<Buf/binary, More/binary>>);
                Error -> Error
            end
    end.

read_body(Conn, Headers, Buf) ->
    case {proplists:get_value(<<"content-length">>, Headers),
          proplists:get_value(<<"transfer-encoding">>, Headers)} of
        {undefined, undefined} -> {ok, <<>>, <<>>, true, Buf};
        {_, <<"chunked">>} -> read_chunked(Conn, Buf, <<>>, <<>>);
        {Len, _} -> read_exact(Conn, binary_to_integer(Len), Buf)
    end.

read_exact(_Conn, Len, Buf) when byte_size(Buf) >= Len ->
    <<Body:Len/binary, Rest/binary>> = Buf,
    {ok, Body, Body, true, Rest};
read_exact(Conn, Len, Buf) ->
    case recv(Conn) of
        {ok, More} -> read_exact(Conn, Len, <<Buf/binary, More/binary>>);
        {error, _} -> {ok, Buf, Buf, false, <<>>}
    end.

%% Reads chunks, keeping the raw framing; a connection closed before the
%% final chunk gives `complete => false'.
read_chunked(Conn, Buf, Body, Raw) ->
    case binary:split(Buf, <<"\r\n">>) of
        [SizeLine, Rest] ->
            Size = binary_to_integer(hd(binary:split(SizeLine, <<";">>)), 16),
            Need = Size + 2,
            case Rest of
                <<Chunk:Size/binary, "\r\n", Rest2/binary>> when Size > 0 ->
                    read_chunked(Conn, Rest2, <<Body/binary, Chunk/binary>>,
                                 <<Raw/binary, SizeLine/binary, "\r\n", Chunk/binary, "\r\n">>);
                <<"\r\n", Rest2/binary>> when Size =:= 0 ->
                    {ok, Body, <<Raw/binary, "0\r\n\r\n">>, true, Rest2};
                _ when byte_size(Rest) < Need ->
                    more_chunked(Conn, Buf, Body, Raw)
            end;
        [_] ->
            more_chunked(Conn, Buf, Body, Raw)
    end.

more_chunked(Conn, Buf, Body, Raw) ->
    case recv(Conn) of
        {ok, More} -> read_chunked(Conn, <<Buf/binary, More/binary>>, Body, Raw);
        {error, _} -> {ok, Body, <<Raw/binary, Buf/binary>>, false, <<>>}
    end.

recv({gen_tcp, Sock}) -> gen_tcp:recv(Sock, 0);
recv({ssl, Sock}) -> ssl:recv(Sock, 0).
