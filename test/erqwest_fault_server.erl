%% @doc An HTTP/1.1 server in the BEAM that misbehaves on purpose.
%%
%% Each connection is a process that reads one request at a time and
%% answers according to the server's current fault, which a test can switch
%% with {@link set_fault/2} (so the same host and port can be made healthy
%% again to check that a client recovers). The `echo' fault is the healthy
%% one: it answers exactly what it was sent, which the property and load
%% suites rely on.
%%
%% The server counts accepted, open and closed connections and the
%% requests it read, so that tests can see connections being closed or
%% kept ({@link stats/1}, {@link wait_open/3}).
%%
%% ```
%% {ok, S} = erqwest_fault_server:start(close_mid_body),
%% {error, #{code := body}} = erqwest:get(C, erqwest_fault_server:url(S, "/")),
%% ok = erqwest_fault_server:set_fault(S, echo),
%% {ok, #{status := 200}} = erqwest:get(C, erqwest_fault_server:url(S, "/")).
%% '''
-module(erqwest_fault_server).

-export([start/1, start/2, stop/1, port/1, url/2, set_fault/2, stats/1, wait_open/3]).
-export([make_certs/1]).

-type fault() ::
      echo                        % answer what was sent (see echo/3)
    | {reply, 100..599, [{iodata(), iodata()}], iodata()}
    | close_before_response       % read the request, close
    | close_mid_headers           % half a status line and header, close
    | close_mid_body              % content-length body cut short, close
    | close_mid_chunked           % chunked body cut short, close
    | garbage                     % bytes that are not HTTP, close
    | oversized_headers           % a header block far over any client limit
    | reset                       % read the request, close with RST (linger 0)
    | stall                       % read the request, never answer
    | {slowloris, pos_integer()}  % one header byte every N ms, never done
    | stall_body                  % headers and a few body bytes, then nothing
    | redirect_loop               % 302 to the same path, forever
    | proxy_refuse                % a proxy answering 403 to everything
    | proxy_close.                % a proxy closing every connection at once
-export_type([fault/0]).

-type stats() :: #{accepted := non_neg_integer(), open := non_neg_integer(),
                   closed := non_neg_integer(), requests := non_neg_integer()}.

-record(st, {lsock, port, transport, fault, accepted = 0, open = #{}, closed = 0,
             requests = 0, tls = false}).

%% Largest request head accepted (more is a broken client, not a test).
-define(MAX_HEAD, 1 bsl 20).

%%% API

%% @equiv start(Fault, #{})
-spec start(fault()) -> {ok, pid()} | {error, term()}.
start(Fault) -> start(Fault, #{}).

%% @doc Starts a server on 127.0.0.1 with a random port. Options:
%% `tls => [ssl:tls_server_option()]' serves HTTPS; `accept => false'
%% never accepts (with `backlog => N' a test can fill the queue so that
%% connecting stalls); `name => atom()' registers the server, so that a
%% test can reach it in a peer node by name.
-spec start(fault(), map()) -> {ok, pid()} | {error, term()}.
start(Fault, Opts) ->
    Parent = self(),
    Pid = spawn(fun() -> init(Parent, Fault, Opts) end),
    Ref = monitor(process, Pid),
    receive
        {Pid, started} -> demonitor(Ref, [flush]), {ok, Pid};
        {Pid, Error} -> demonitor(Ref, [flush]), {error, Error};
        {'DOWN', Ref, _, _, Reason} -> {error, Reason}
    after 5000 -> {error, timeout}
    end.

-spec stop(pid() | atom()) -> ok.
stop(S) -> call(S, stop).

-spec port(pid() | atom()) -> inet:port_number().
port(S) -> call(S, port).

-spec url(pid() | atom(), iodata()) -> binary().
url(S, Path) ->
    Scheme = case call(S, tls) of true -> "https"; false -> "http" end,
    iolist_to_binary([Scheme, "://127.0.0.1:", integer_to_list(port(S)), Path]).

%% @doc Changes how the next requests are answered.
-spec set_fault(pid() | atom(), fault()) -> ok.
set_fault(S, Fault) -> call(S, {fault, Fault}).

-spec stats(pid() | atom()) -> stats().
stats(S) -> call(S, stats).

%% @doc Waits up to `Ms' until at most `N' connections are open.
-spec wait_open(pid() | atom(), non_neg_integer(), non_neg_integer()) -> ok | {timeout, stats()}.
wait_open(S, N, Ms) ->
    Stats = #{open := Open} = stats(S),
    if
        Open =< N -> ok;
        Ms =< 0 -> {timeout, Stats};
        true -> timer:sleep(20), wait_open(S, N, Ms - 20)
    end.

%% @doc A test CA and two server certificates, from erqwest_test_certs
%% (which also keeps them out of the way of Erlang's PEM cache): one valid
%% for 127.0.0.1 and localhost, one for another name. Returns the CA as
%% DER (for `additional_root_certs') and the server options.
-spec make_certs(file:filename()) -> #{atom() => term()}.
make_certs(Dir) ->
    #{ca := Ca, server_cert := Good, server_key := GoodKey,
      other_cert := Wrong, other_key := WrongKey} = erqwest_test_certs:make(Dir),
    #{ca_der => erqwest_test_certs:der(Ca),
      good => [{certfile, Good}, {keyfile, GoodKey}],
      wrong => [{certfile, Wrong}, {keyfile, WrongKey}]}.

%%% Server process

call(S, Msg) -> erqwest_test_server:call(S, Msg).

init(Parent, Fault, Opts) ->
    process_flag(trap_exit, true),
    _ = [register(Name, self()) || Name <- [maps:get(name, Opts, undefined)], Name =/= undefined],
    case erqwest_test_server:listen(Opts) of
        {ok, Transport, LSock, Port} ->
            Self = self(),
            maps:get(accept, Opts, true) andalso
                spawn_link(fun() -> acceptor(Self, Transport, LSock) end),
            Parent ! {self(), started},
            loop(#st{lsock = LSock, port = Port, transport = Transport, fault = Fault,
                     tls = Transport =:= ssl});
        Error ->
            Parent ! {self(), Error}
    end.

loop(St) ->
    receive
        {accepted, Sock, Conn} ->
            Conn ! {go, Sock},
            loop(St#st{accepted = St#st.accepted + 1,
                       open = maps:put(Conn, true, St#st.open)});
        {fault, From} ->
            From ! {fault, St#st.fault},
            loop(St#st{requests = St#st.requests + 1});
        {'EXIT', Pid, _} ->
            case maps:is_key(Pid, St#st.open) of
                true -> loop(St#st{open = maps:remove(Pid, St#st.open),
                                   closed = St#st.closed + 1});
                false -> loop(St)
            end;
        {call, From, Ref, stop} ->
            From ! {Ref, ok},
            _ = (St#st.transport):close(St#st.lsock),
            [exit(P, kill) || P <- maps:keys(St#st.open)],
            ok;
        {call, From, Ref, Msg} ->
            {Reply, St2} = handle_call(Msg, St),
            From ! {Ref, Reply},
            loop(St2)
    end.

handle_call(port, St) -> {St#st.port, St};
handle_call(tls, St) -> {St#st.tls, St};
handle_call({fault, F}, St) -> {ok, St#st{fault = F}};
handle_call(stats, St) ->
    {#{accepted => St#st.accepted, open => maps:size(St#st.open), closed => St#st.closed,
       requests => St#st.requests}, St}.

%% The connection process is linked to the server before it gets the
%% socket, so that the server counts it as closed whatever way it ends.
acceptor(Server, Transport, LSock) ->
    Accepted = case Transport of
        gen_tcp -> gen_tcp:accept(LSock);
        ssl -> ssl:transport_accept(LSock)
    end,
    case Accepted of
        {ok, Sock} ->
            Conn = spawn(fun() -> conn_start(Server, Transport) end),
            link_via(Server, Conn),
            ok = Transport:controlling_process(Sock, Conn),
            Server ! {accepted, Sock, Conn},
            acceptor(Server, Transport, LSock);
        {error, closed} -> ok;
        {error, _} -> acceptor(Server, Transport, LSock)
    end.

link_via(Server, Conn) ->
    Conn ! {link_to, Server}.

conn_start(Server, Transport) ->
    receive {link_to, Server} -> link(Server) end,
    Sock0 = receive {go, S} -> S end,
    case Transport of
        gen_tcp ->
            conn_loop(Server, {gen_tcp, Sock0}, <<>>);
        ssl ->
            %% A failed handshake is one of the faults a test asks for.
            case ssl:handshake(Sock0, 10000) of
                {ok, Sock} -> conn_loop(Server, {ssl, Sock}, <<>>);
                {error, _} -> ok
            end
    end.

conn_loop(Server, Conn, Buf) ->
    case read_request(Conn, Buf) of
        {ok, Req, Rest} ->
            Server ! {fault, self()},
            Fault = receive {fault, F} -> F end,
            case answer(Fault, Conn, Req) of
                keep -> conn_loop(Server, Conn, Rest);
                close -> close(Conn)
            end;
        {error, _} ->
            close(Conn)
    end.

%%% Answers

answer(echo, Conn, Req) ->
    echo(Conn, Req);
answer({reply, Status, Headers, Body}, Conn, Req) ->
    send(Conn, response(Status, Headers, Body, Req)),
    keep;
answer(close_before_response, _Conn, _Req) ->
    close;
answer(close_mid_headers, Conn, _Req) ->
    send(Conn, <<"HTTP/1.1 200 OK\r\ncontent-type: te">>),
    close;
answer(close_mid_body, Conn, _Req) ->
    send(Conn, [<<"HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\n">>,
                binary:copy(<<"x">>, 1000)]),
    close;
answer(close_mid_chunked, Conn, _Req) ->
    send(Conn, [<<"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n">>,
                <<"3e8\r\n">>, binary:copy(<<"x">>, 1000), <<"\r\n">>,
                <<"3e8\r\n">>, binary:copy(<<"y">>, 10)]),
    close;
answer(garbage, Conn, _Req) ->
    send(Conn, [<<16#16, 3, 1, 0, 0, "\r\nthis is not HTTP at all\r\n\r\n">>,
                crypto:strong_rand_bytes(256)]),
    close;
answer(oversized_headers, Conn, _Req) ->
    %% 2,000 headers of 1 kB: far over hyper's header count and buffer limits.
    Value = binary:copy(<<"v">>, 1000),
    send(Conn, [<<"HTTP/1.1 200 OK\r\n">>,
                [[<<"x-big-">>, integer_to_binary(I), <<": ">>, Value, <<"\r\n">>]
                 || I <- lists:seq(1, 2000)],
                <<"content-length: 0\r\n\r\n">>]),
    close;
answer(reset, {gen_tcp, Sock}, _Req) ->
    ok = inet:setopts(Sock, [{linger, {true, 0}}]),
    close;
answer(stall, Conn, _Req) ->
    wait_peer_close(Conn);
answer({slowloris, Ms}, Conn, _Req) ->
    send(Conn, <<"HTTP/1.1 200 OK\r\n">>),
    slowloris(Conn, Ms);
answer(stall_body, Conn, _Req) ->
    send(Conn, <<"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n0123456789">>),
    wait_peer_close(Conn);
answer(redirect_loop, Conn, #{path := Path} = Req) ->
    send(Conn, response(302, [{<<"location">>, Path}], <<>>, Req)),
    keep;
answer(proxy_refuse, Conn, Req) ->
    send(Conn, response(403, [{<<"connection">>, <<"close">>}], <<"refused by proxy">>, Req)),
    close;
answer(proxy_close, _Conn, _Req) ->
    close.

%% The healthy server: status from `x-echo-status' (default 200), every
%% request header whose name starts with `x-p-' sent back as-is and in
%% order, `x-echo-method', `x-echo-length' (the request body's size) and
%% the request body as the response body.
%% `x-echo-chunk: N' sends the body chunked in pieces of N bytes;
%% `x-echo-delay: Ms' waits first.
echo(Conn, #{method := Method, headers := Headers, body := Body} = Req) ->
    Get = fun(K, Default) ->
        case lists:keyfind(K, 1, Headers) of
            {_, V} -> binary_to_integer(V);
            false -> Default
        end
    end,
    case Get(<<"x-echo-delay">>, 0) of
        0 -> ok;
        Delay -> timer:sleep(Delay)
    end,
    Status = Get(<<"x-echo-status">>, 200),
    Echoed = [{K, V} || {K, V} <- Headers, binary:longest_common_prefix([K, <<"x-p-">>]) =:= 4],
    Out = [{<<"x-echo-method">>, Method},
           {<<"x-echo-length">>, integer_to_binary(byte_size(Body))} | Echoed],
    Chunk = case Method =:= <<"HEAD">> orelse Status =:= 204 orelse Status =:= 304 of
        true -> 0;
        false -> Get(<<"x-echo-chunk">>, 0)
    end,
    case Chunk of
        0 ->
            send(Conn, response(Status, Out, Body, Req));
        Size ->
            send(Conn, [status_line(Status), headers(Out),
                        <<"transfer-encoding: chunked\r\n\r\n">>, chunks(Body, Size)])
    end,
    keep.

response(Status, Headers, Body, #{method := Method}) ->
    NoBody = Method =:= <<"HEAD">> orelse Status =:= 204 orelse Status =:= 304
        orelse (Status >= 100 andalso Status < 200),
    [status_line(Status), headers(Headers),
     case Status =:= 204 orelse Status =:= 304 orelse Status < 200 of
         true -> <<>>;
         false -> [<<"content-length: ">>, integer_to_binary(iolist_size(Body)), <<"\r\n">>]
     end,
     <<"\r\n">>,
     case NoBody of true -> <<>>; false -> Body end].

status_line(Status) ->
    [<<"HTTP/1.1 ">>, integer_to_binary(Status), <<" S\r\n">>].

headers(Headers) ->
    [[K, <<": ">>, V, <<"\r\n">>] || {K, V} <- Headers].

chunks(<<>>, _Size) ->
    <<"0\r\n\r\n">>;
chunks(Body, Size) when byte_size(Body) =< Size ->
    [integer_to_binary(byte_size(Body), 16), <<"\r\n">>, Body, <<"\r\n0\r\n\r\n">>];
chunks(Body, Size) ->
    <<C:Size/binary, Rest/binary>> = Body,
    [integer_to_binary(Size, 16), <<"\r\n">>, C, <<"\r\n">> | chunks(Rest, Size)].

slowloris(Conn, Ms) ->
    case recv(Conn, Ms) of
        {error, timeout} ->
            case send(Conn, <<"x">>) of
                ok -> slowloris(Conn, Ms);
                {error, _} -> close
            end;
        _ -> close
    end.

%% Waits until the client goes away, discarding whatever it sends.
wait_peer_close(Conn) ->
    case recv(Conn, infinity) of
        {ok, _} -> wait_peer_close(Conn);
        {error, _} -> close
    end.

%%% Reading requests

%% One request, exact bytes: header values are trimmed of surrounding
%% spaces and tabs only, never decoded.
read_request(Conn, Buf) ->
    case read_head(Conn, Buf) of
        {ok, Head, Rest} ->
            [RequestLine | Lines] = binary:split(Head, <<"\r\n">>, [global]),
            case binary:split(RequestLine, <<" ">>, [global]) of
                [Method, Path, _Version] ->
                    Headers = [header(L) || L <- Lines, L =/= <<>>],
                    case read_body(Conn, Headers, Rest) of
                        {ok, Body, Rest2} ->
                            {ok, #{method => Method, path => Path, headers => Headers,
                                   body => Body}, Rest2};
                        Error -> Error
                    end;
                _ -> {error, bad_request_line}
            end;
        Error -> Error
    end.

header(Line) ->
    case binary:split(Line, <<":">>) of
        [K, V] -> {lower(K), trim(V)};
        [K] -> {lower(K), <<>>}
    end.

lower(B) -> << <<(lower_char(C))>> || <<C>> <= B >>.
lower_char(C) when C >= $A, C =< $Z -> C + 32;
lower_char(C) -> C.

trim(B) -> trim_right(trim_left(B)).
trim_left(<<C, R/binary>>) when C =:= $\s; C =:= $\t -> trim_left(R);
trim_left(B) -> B.
trim_right(<<>>) -> <<>>;
trim_right(B) ->
    case binary:last(B) of
        C when C =:= $\s; C =:= $\t -> trim_right(binary:part(B, 0, byte_size(B) - 1));
        _ -> B
    end.

read_head(Conn, Buf) ->
    case binary:split(Buf, <<"\r\n\r\n">>) of
        [Head, Rest] -> {ok, Head, Rest};
        [_] when byte_size(Buf) > ?MAX_HEAD -> {error, head_too_large};
        [_] ->
            case recv(Conn, infinity) of
                {ok, More} -> read_head(Conn, <<Buf/binary, More/binary>>);
                Error -> Error
            end
    end.

read_body(Conn, Headers, Buf) ->
    case {lists:keyfind(<<"transfer-encoding">>, 1, Headers),
          lists:keyfind(<<"content-length">>, 1, Headers)} of
        {{_, <<"chunked">>}, _} -> read_chunked(Conn, Buf, []);
        {_, {_, Len}} -> read_exact(Conn, binary_to_integer(Len), Buf);
        _ -> {ok, <<>>, Buf}
    end.

read_exact(_Conn, Len, Buf) when byte_size(Buf) >= Len ->
    <<Body:Len/binary, Rest/binary>> = Buf,
    {ok, Body, Rest};
read_exact({T, Sock}, Len, Buf) ->
    case T:recv(Sock, Len - byte_size(Buf)) of
        {ok, More} -> {ok, <<Buf/binary, More/binary>>, <<>>};
        Error -> Error
    end.

read_chunked(Conn, Buf, Acc) ->
    case binary:split(Buf, <<"\r\n">>) of
        [SizeLine, Rest] ->
            Size = binary_to_integer(hd(binary:split(SizeLine, <<";">>)), 16),
            case Size of
                0 -> read_trailers(Conn, Rest, Acc);
                _ ->
                    case read_exact(Conn, Size + 2, Rest) of
                        {ok, <<Chunk:Size/binary, "\r\n">>, Rest2} ->
                            read_chunked(Conn, Rest2, [Acc | Chunk]);
                        {ok, _, _} -> {error, bad_chunk};
                        Error -> Error
                    end
            end;
        [_] ->
            case recv(Conn, infinity) of
                {ok, More} -> read_chunked(Conn, <<Buf/binary, More/binary>>, Acc);
                Error -> Error
            end
    end.

read_trailers(Conn, Buf, Acc) ->
    case Buf of
        <<"\r\n", Rest/binary>> -> {ok, iolist_to_binary(Acc), Rest};
        _ ->
            case binary:split(Buf, <<"\r\n\r\n">>) of
                [_Trailers, Rest] -> {ok, iolist_to_binary(Acc), Rest};
                [_] ->
                    case recv(Conn, infinity) of
                        {ok, More} -> read_trailers(Conn, <<Buf/binary, More/binary>>, Acc);
                        Error -> Error
                    end
            end
    end.

%%% Transport

recv({T, Sock}, Timeout) -> T:recv(Sock, 0, Timeout).

send({T, Sock}, Data) -> T:send(Sock, Data).

close({T, Sock}) -> _ = T:close(Sock), ok.
