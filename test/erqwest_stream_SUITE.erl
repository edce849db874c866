%% Streaming and cancellation: request bodies (with backpressure and early
%% replies), response bodies (length, period, framing), both at once,
%% cancel at every stage, handle ownership, garbage-collected handles and
%% dead owners. Wire-level checks through erqwest_test_server.
-module(erqwest_stream_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-compile([export_all, nowarn_export_all]).

all() ->
    [{group, upload}, {group, download}, {group, both}, {group, cancel}, {group, ownership},
     {group, timeouts}].

groups() ->
    [{upload, [parallel], [chunked_framing_sync, chunked_framing_async, first_next_after_connect,
                           iolist_chunks, content_length_upload, backpressure_bounds_memory,
                           early_reply_sync, early_reply_async, server_closes_mid_upload]},
     {download, [parallel], [read_content_length, read_chunked, read_length_option,
                             read_period_returns_partial, read_period_empty,
                             server_closes_mid_body, read_after_fin_is_badarg,
                             read_on_complete_request_is_badarg, async_read_messages]},
     {both, [parallel], [upload_and_download_one_handle]},
     {cancel, [parallel], [cancel_while_connecting, cancel_before_next, cancel_blocked_in_send,
                           cancel_after_finish_send, cancel_while_reading, cancel_after_final,
                           cancel_twice, sync_cancel_leaves_no_message, sync_cancel_after_final_race,
                           cancelled_body_closes_connection]},
     {ownership, [parallel], [other_process_is_refused, gc_before_finish_send_aborts,
                              gc_while_reading_cancels, dead_owner_cancels_upload,
                              dead_owner_cancels_download, send_after_final_is_badarg]},
     {timeouts, [parallel], [timeout_while_uploading, read_timeout_while_reading,
                             timeout_while_reading]}].

init_per_suite(Config) ->
    {ok, _} = application:ensure_all_started(erqwest),
    [{client, erqwest:make_client()} | Config].

end_per_suite(_Config) ->
    application:stop(erqwest).

%%% helpers

client(Config) -> ?config(client, Config).

echo(#{body := B}) -> {200, [], B}.

with_server(Handler, Fun) -> with_server(Handler, #{}, Fun).
with_server(Handler, Opts, Fun) ->
    {ok, S} = erqwest_test_server:start(Handler, Opts),
    try Fun(S) after erqwest_test_server:stop(S) end.

url(S) -> erqwest_test_server:url(S, "/").

recv(Ref) -> recv(Ref, 5000).
recv(Ref, Timeout) ->
    receive
        {erqwest_response, Ref, next} -> next;
        {erqwest_response, Ref, Tag, Value} -> {Tag, Value}
    after Timeout -> timeout
    end.

no_message(Ref) ->
    receive {erqwest_response, Ref, _} = M -> ct:fail({unexpected, M});
            {erqwest_response, Ref, _, _} = M -> ct:fail({unexpected, M})
    after 300 -> ok
    end.

%% Waits until the server has recorded `N' requests; returns them.
wait_requests(S, N) -> wait_requests(S, N, 100).
wait_requests(S, N, 0) -> ct:fail({requests, N, erqwest_test_server:requests(S)});
wait_requests(S, N, Tries) ->
    case erqwest_test_server:requests(S) of
        Rs when length(Rs) >= N -> Rs;
        _ -> timer:sleep(50), wait_requests(S, N, Tries - 1)
    end.

%% A server that reads the head and then nothing: the request body piles
%% up in the socket buffers. It answers only when told.
stalled() ->
    Parent = self(),
    fun(_Req) -> {custom, fun(Sock, Req) ->
        Parent ! {stalled, self()},
        receive
            {answer, Status} ->
                erqwest_test_server:send_response({gen_tcp, Sock}, {Status, [], <<"early">>}, Req),
                receive stop -> close after 30000 -> close end;
            stop -> close;
            %% Reads everything until the client closes: how a test sees
            %% that a cancelled upload really closed its connection.
            drain -> drain(Sock)
        after 30000 -> close
        end
    end} end.

drain(Sock) ->
    case gen_tcp:recv(Sock, 0, 5000) of
        {ok, _} -> drain(Sock);
        {error, closed} -> close;
        {error, timeout} -> timer:sleep(30000), close
    end.

%% Holds the request unanswered until the client closes the connection.
hold_until_closed(_Req) ->
    {custom, fun(Sock, _) -> drain(Sock) end}.

stalled_pid() ->
    receive {stalled, P} -> P after 5000 -> ct:fail(no_server) end.

read_all(H) -> read_all(H, #{}, <<>>).
read_all(H, Opts, Acc) ->
    case erqwest:read(H, Opts) of
        {more, D} -> read_all(H, Opts, <<Acc/binary, D/binary>>);
        {ok, D} -> <<Acc/binary, D/binary>>
    end.

%%% upload

chunked_framing_sync(Config) ->
    with_server(fun echo/1, fun(S) ->
        {handle, H} = erqwest:post(client(Config), url(S), #{body => stream}),
        ok = erqwest:send(H, <<"hello ">>),
        ok = erqwest:send(H, <<"streamed ">>),
        ok = erqwest:send(H, <<"world">>),
        {ok, #{status := 200, body := <<"hello streamed world">>}} = erqwest:finish_send(H),
        [#{raw_body := Raw, complete := true, headers := Hs}] = erqwest_test_server:requests(S),
        ?assertEqual(<<"chunked">>, proplists:get_value(<<"transfer-encoding">>, Hs)),
        ?assertEqual(<<"6\r\nhello \r\n9\r\nstreamed \r\n5\r\nworld\r\n0\r\n\r\n">>, Raw)
    end).

chunked_framing_async(Config) ->
    with_server(fun echo/1, fun(S) ->
        Ref = make_ref(),
        H = erqwest_async:req(client(Config), self(), Ref, #{method => put, url => url(S), body => stream}),
        next = recv(Ref),
        ok = erqwest_async:send(H, <<"abc">>),
        next = recv(Ref),
        ok = erqwest_async:send(H, [<<"de">>, $f]),
        next = recv(Ref),
        ok = erqwest_async:finish_send(H),
        {reply, #{status := 200, body := <<"abcdef">>}} = recv(Ref),
        no_message(Ref),
        [#{raw_body := Raw}] = erqwest_test_server:requests(S),
        ?assertEqual(<<"3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n">>, Raw)
    end).

%% `next' comes once the connection is up; a refused connection gives an
%% error and no `next'.
first_next_after_connect(Config) ->
    Ref = make_ref(),
    Port = erqwest_test_peers:free_port(),
    U = iolist_to_binary(["http://127.0.0.1:", integer_to_list(Port), "/"]),
    _ = erqwest_async:req(client(Config), self(), Ref, #{method => post, url => U, body => stream}),
    {error, #{code := connect}} = recv(Ref),
    no_message(Ref),
    {error, #{code := connect}} = erqwest:post(client(Config), U, #{body => stream}).

iolist_chunks(Config) ->
    with_server(fun echo/1, fun(S) ->
        {handle, H} = erqwest:post(client(Config), url(S), #{body => stream}),
        ok = erqwest:send(H, [<<"a">>, [<<"b">>, "c"], <<>>]),
        ok = erqwest:send(H, <<>>),
        ok = erqwest:send(H, lists:duplicate(1000, <<"x">>)),
        {ok, #{body := Body}} = erqwest:finish_send(H),
        ?assertEqual(<<"abc", (binary:copy(<<"x">>, 1000))/binary>>, Body),
        ?assertError(badarg, erqwest_async:req(client(Config), self(), r,
                                               #{method => post, url => url(S), body => stream,
                                                 headers => bad}))
    end).

content_length_upload(Config) ->
    with_server(fun echo/1, fun(S) ->
        {handle, H} = erqwest:post(client(Config), url(S),
                                   #{body => stream, headers => [{<<"content-length">>, <<"6">>}]}),
        ok = erqwest:send(H, <<"abc">>),
        %% The last byte completes the body, so the answer may come first.
        case erqwest:send(H, <<"def">>) of
            ok -> {ok, #{body := <<"abcdef">>}} = erqwest:finish_send(H);
            {reply, #{body := <<"abcdef">>}} -> ok
        end,
        [#{raw_body := <<"abcdef">>, headers := Hs}] = erqwest_test_server:requests(S),
        ?assertEqual(undefined, proplists:get_value(<<"transfer-encoding">>, Hs))
    end).

%% Against a server that stops reading, `next' stops coming: the bytes
%% accepted are bounded by the socket buffers plus about two chunks.
backpressure_bounds_memory(Config) ->
    with_server(stalled(), #{read_body => false}, fun(S) ->
        Ref = make_ref(),
        H = erqwest_async:req(client(Config), self(), Ref, #{method => post, url => url(S), body => stream}),
        next = recv(Ref),
        Chunk = binary:copy(<<"z">>, 256 * 1024),
        Accepted = pump(H, Ref, Chunk, 0),
        ct:pal("accepted ~p MB before next stopped", [Accepted div (1024 * 1024)]),
        ?assert(Accepted < 64 * 1024 * 1024),
        ?assert(Accepted >= 256 * 1024),
        MemBefore = erlang:memory(total),
        %% No more `next' however long we wait.
        timeout = recv(Ref, 500),
        ?assert(erlang:memory(total) - MemBefore < 16 * 1024 * 1024),
        ok = erqwest_async:cancel(H),
        {error, #{code := cancelled}} = recv(Ref),
        no_message(Ref)
    end).

%% Sends until no `next' arrives within a second; returns the bytes sent.
pump(H, Ref, _Chunk, Sent) when Sent > 256 * 1024 * 1024 ->
    erqwest_async:cancel(H),
    ct:fail({no_backpressure, Sent, Ref});
pump(H, Ref, Chunk, Sent) ->
    ok = erqwest_async:send(H, Chunk),
    case recv(Ref, 1000) of
        next -> pump(H, Ref, Chunk, Sent + byte_size(Chunk));
        timeout -> Sent + byte_size(Chunk)
    end.

early_reply_sync(Config) ->
    with_server(stalled(), #{read_body => false}, fun(S) ->
        {handle, H} = erqwest:post(client(Config), url(S), #{body => stream}),
        ok = erqwest:send(H, <<"first">>),
        Server = stalled_pid(),
        Server ! {answer, 413},
        {reply, #{status := 413, body := <<"early">>}} = send_until_reply(H, 100),
        ?assertError(badarg, erqwest:send(H, <<"more">>)),
        ?assertError(badarg, erqwest:finish_send(H)),
        Server ! stop
    end).

send_until_reply(_H, 0) -> ct:fail(no_early_reply);
send_until_reply(H, N) ->
    case erqwest:send(H, <<"more">>) of
        ok -> timer:sleep(20), send_until_reply(H, N - 1);
        Other -> Other
    end.

early_reply_async(Config) ->
    with_server(stalled(), #{read_body => false}, fun(S) ->
        Ref = make_ref(),
        H = erqwest_async:req(client(Config), self(), Ref, #{method => post, url => url(S), body => stream}),
        next = recv(Ref),
        ok = erqwest_async:send(H, <<"first">>),
        next = recv(Ref),
        Server = stalled_pid(),
        Server ! {answer, 202},
        {reply, #{status := 202, body := <<"early">>}} = recv(Ref),
        %% After the final reply, sending does nothing and nothing comes.
        ok = erqwest_async:send(H, <<"ignored">>),
        ok = erqwest_async:finish_send(H),
        no_message(Ref),
        Server ! stop
    end).

server_closes_mid_upload(Config) ->
    Handler = fun(_) -> {custom, fun(_Sock, _Req) -> close end} end,
    with_server(Handler, #{read_body => false}, fun(S) ->
        Ref = make_ref(),
        H = erqwest_async:req(client(Config), self(), Ref, #{method => post, url => url(S), body => stream}),
        Final = upload_until_final(H, Ref, binary:copy(<<"q">>, 65536), 1000),
        ?assertMatch({error, #{code := _}}, Final),
        no_message(Ref)
    end).

upload_until_final(_H, _Ref, _Chunk, 0) -> ct:fail(no_final);
upload_until_final(H, Ref, Chunk, N) ->
    case recv(Ref) of
        next -> ok = erqwest_async:send(H, Chunk), upload_until_final(H, Ref, Chunk, N - 1);
        Final -> Final
    end.

%%% download

big() -> crypto:strong_rand_bytes(3 * 1024 * 1024 + 17).

read_content_length(Config) ->
    Body = big(),
    with_server(fun(_) -> {200, [], Body} end, fun(S) ->
        {ok, #{status := 200, body := H}} = erqwest:get(client(Config), url(S), #{response_body => stream}),
        ?assertEqual(Body, read_all(H, #{length => 100000}, <<>>))
    end).

read_chunked(Config) ->
    Parts = [crypto:strong_rand_bytes(N) || N <- [1, 10, 1000, 100000, 7]],
    Handler = fun(_) -> {raw, [<<"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n">>,
                               erqwest_test_server:chunked(Parts)]} end,
    with_server(Handler, fun(S) ->
        {ok, #{body := H}} = erqwest:get(client(Config), url(S), #{response_body => stream}),
        ?assertEqual(iolist_to_binary(Parts), read_all(H))
    end).

read_length_option(Config) ->
    Body = big(),
    with_server(fun(_) -> {200, [], Body} end, fun(S) ->
        {ok, #{body := H}} = erqwest:get(client(Config), url(S), #{response_body => stream}),
        {more, D1} = erqwest:read(H, #{length => 1000}),
        ?assert(byte_size(D1) >= 1000),
        {more, D2} = erqwest:read(H, #{length => 0}),
        Rest = read_all(H),
        ?assertEqual(Body, <<D1/binary, D2/binary, Rest/binary>>)
    end).

%% Headers and part of the body, then a pause: `period' returns what came.
slow_body() ->
    fun(_) -> {custom, fun(Sock, _) ->
        ok = gen_tcp:send(Sock, <<"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nfirst">>),
        timer:sleep(1500),
        ok = gen_tcp:send(Sock, <<"later">>),
        keep
    end} end.

read_period_returns_partial(Config) ->
    with_server(slow_body(), fun(S) ->
        {ok, #{body := H}} = erqwest:get(client(Config), url(S), #{response_body => stream}),
        T0 = erlang:monotonic_time(millisecond),
        {more, <<"first">>} = erqwest:read(H, #{period => 300}),
        ?assert(erlang:monotonic_time(millisecond) - T0 < 1400),
        {ok, <<"later">>} = erqwest:read(H)
    end).

read_period_empty(Config) ->
    with_server(slow_body(), fun(S) ->
        {ok, #{body := H}} = erqwest:get(client(Config), url(S), #{response_body => stream}),
        {more, <<"first">>} = erqwest:read(H, #{period => 300}),
        {more, <<>>} = erqwest:read(H, #{period => 100}),
        {ok, <<"later">>} = erqwest:read(H, #{period => 3000})
    end).

server_closes_mid_body(Config) ->
    Handler = fun(_) -> {raw_close, <<"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\npartial">>} end,
    with_server(Handler, fun(S) ->
        {ok, #{body := H}} = erqwest:get(client(Config), url(S), #{response_body => stream}),
        {error, #{code := body}} = erqwest:read(H),
        ?assertError(badarg, erqwest:read(H))
    end),
    Chunked = fun(_) -> {raw_close, <<"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n">>} end,
    with_server(Chunked, fun(S) ->
        {ok, #{body := H}} = erqwest:get(client(Config), url(S), #{response_body => stream}),
        {error, #{code := body}} = read_to_error(H)
    end).

read_to_error(H) ->
    case erqwest:read(H, #{length => 1}) of
        {more, _} -> read_to_error(H);
        Other -> Other
    end.

read_after_fin_is_badarg(Config) ->
    with_server(fun(_) -> {200, [], <<"small">>} end, fun(S) ->
        {ok, #{body := H}} = erqwest:get(client(Config), url(S), #{response_body => stream}),
        {ok, <<"small">>} = erqwest:read(H),
        ?assertError(badarg, erqwest:read(H)),
        ok = erqwest:cancel(H)
    end).

read_on_complete_request_is_badarg(Config) ->
    with_server(fun echo/1, fun(S) ->
        Ref = make_ref(),
        H = erqwest_async:req(client(Config), self(), Ref, #{method => get, url => url(S)}),
        ?assertError(badarg, erqwest_async:read(H, #{})),
        ?assertError(badarg, erqwest_async:send(H, <<"x">>)),
        ?assertError(badarg, erqwest_async:finish_send(H)),
        {reply, #{status := 200}} = recv(Ref),
        ?assertError(badarg, erqwest_async:read(H, #{length => -1})),
        ?assertError(badarg, erqwest_async:read(H, #{bogus => 1}))
    end).

async_read_messages(Config) ->
    Parts = [<<"one">>, <<"two">>],
    Handler = fun(_) -> {custom, fun(Sock, _) ->
        ok = gen_tcp:send(Sock, <<"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\none\r\n">>),
        timer:sleep(300),
        ok = gen_tcp:send(Sock, <<"3\r\ntwo\r\n0\r\n\r\n">>),
        keep
    end} end,
    with_server(Handler, fun(S) ->
        Ref = make_ref(),
        H = erqwest_async:req(client(Config), self(), Ref,
                              #{method => get, url => url(S), response_body => stream}),
        {reply, Resp} = recv(Ref),
        ?assertNot(maps:is_key(body, Resp)),
        ok = erqwest_async:read(H, #{length => 3}),
        {chunk, <<"one">>} = recv(Ref),
        ok = erqwest_async:read(H, #{}),
        {fin, <<"two">>} = recv(Ref),
        no_message(Ref),
        ok = erqwest_async:read(H, #{}),
        no_message(Ref),
        ?assertEqual(Parts, [<<"one">>, <<"two">>])
    end).

%%% both

upload_and_download_one_handle(Config) ->
    with_server(fun echo/1, fun(S) ->
        Chunks = [crypto:strong_rand_bytes(100000) || _ <- lists:seq(1, 20)],
        {handle, H} = erqwest:post(client(Config), url(S), #{body => stream, response_body => stream}),
        [ok = erqwest:send(H, C) || C <- Chunks],
        {ok, #{status := 200, body := RH}} = erqwest:finish_send(H),
        ?assertEqual(iolist_to_binary(Chunks), read_all(RH, #{length => 65536}, <<>>))
    end).

%%% cancel

cancel_while_connecting(Config) ->
    {ok, L} = gen_tcp:listen(0, [{ip, {127, 0, 0, 1}}, {backlog, 0}]),
    {ok, Port} = inet:port(L),
    Fill = [gen_tcp:connect({127, 0, 0, 1}, Port, [], 300) || _ <- lists:seq(1, 4)],
    U = iolist_to_binary(["http://127.0.0.1:", integer_to_list(Port), "/"]),
    Ref = make_ref(),
    H = erqwest_async:req(client(Config), self(), Ref, #{method => post, url => U, body => stream}),
    timeout = recv(Ref, 200),
    ok = erqwest_async:cancel(H),
    {error, #{code := cancelled}} = recv(Ref),
    no_message(Ref),
    [gen_tcp:close(So) || {ok, So} <- Fill],
    gen_tcp:close(L).

cancel_before_next(Config) ->
    with_server(fun echo/1, fun(S) ->
        Ref = make_ref(),
        H = erqwest_async:req(client(Config), self(), Ref, #{method => post, url => url(S), body => stream}),
        ok = erqwest_async:cancel(H),
        Final = first_final(Ref),
        ?assertMatch({error, #{code := cancelled}}, Final),
        no_message(Ref),
        %% The server never saw a complete body.
        [?assertNot(C) || #{complete := C} <- erqwest_test_server:requests(S)]
    end).

first_final(Ref) ->
    case recv(Ref) of
        next -> first_final(Ref);
        Final -> Final
    end.

cancel_blocked_in_send(Config) ->
    with_server(stalled(), #{read_body => false}, fun(S) ->
        Ref = make_ref(),
        H = erqwest_async:req(client(Config), self(), Ref, #{method => post, url => url(S), body => stream}),
        next = recv(Ref),
        _ = pump(H, Ref, binary:copy(<<"b">>, 1 bsl 20), 0),
        ok = erqwest_async:cancel(H),
        {error, #{code := cancelled}} = recv(Ref),
        no_message(Ref),
        stalled_pid() ! drain,
        ?assertEqual(ok, erqwest_test_server:wait_closed(S, 0))
    end).

cancel_after_finish_send(Config) ->
    with_server(fun hold_until_closed/1, fun(S) ->
        Ref = make_ref(),
        H = erqwest_async:req(client(Config), self(), Ref, #{method => post, url => url(S), body => stream}),
        next = recv(Ref),
        ok = erqwest_async:send(H, <<"all of it">>),
        next = recv(Ref),
        ok = erqwest_async:finish_send(H),
        [#{body := <<"all of it">>, complete := true}] = wait_requests(S, 1),
        ok = erqwest_async:cancel(H),
        {error, #{code := cancelled}} = recv(Ref),
        no_message(Ref),
        ?assertEqual(ok, erqwest_test_server:wait_closed(S, 0))
    end).

cancel_while_reading(Config) ->
    with_server(slow_body(), fun(S) ->
        Ref = make_ref(),
        H = erqwest_async:req(client(Config), self(), Ref,
                              #{method => get, url => url(S), response_body => stream}),
        {reply, #{status := 200}} = recv(Ref),
        ok = erqwest_async:read(H, #{}),
        timer:sleep(100),
        ok = erqwest_async:cancel(H),
        {error, #{code := cancelled}} = recv(Ref),
        no_message(Ref),
        ?assertEqual(ok, erqwest_test_server:wait_closed(S, 0))
    end).

cancel_after_final(Config) ->
    with_server(fun echo/1, fun(S) ->
        Ref = make_ref(),
        H = erqwest_async:req(client(Config), self(), Ref, #{method => get, url => url(S)}),
        {reply, _} = recv(Ref),
        ok = erqwest_async:cancel(H),
        no_message(Ref)
    end).

cancel_twice(Config) ->
    with_server(slow_body(), fun(S) ->
        Ref = make_ref(),
        H = erqwest_async:req(client(Config), self(), Ref,
                              #{method => get, url => url(S), response_body => stream}),
        {reply, _} = recv(Ref),
        ok = erqwest_async:cancel(H),
        ok = erqwest_async:cancel(H),
        {error, #{code := cancelled}} = recv(Ref),
        ok = erqwest_async:cancel(H),
        no_message(Ref)
    end).

%% The sync cancel consumes the final message itself.
sync_cancel_leaves_no_message(Config) ->
    with_server(slow_body(), fun(S) ->
        {ok, #{body := H}} = erqwest:get(client(Config), url(S), #{response_body => stream}),
        ok = erqwest:cancel(H),
        ok = erqwest:cancel(H),
        ?assertError(badarg, erqwest:read(H)),
        receive M -> ct:fail({stray, M}) after 300 -> ok end
    end),
    with_server(stalled(), #{read_body => false}, fun(S) ->
        {handle, H} = erqwest:post(client(Config), url(S), #{body => stream}),
        ok = erqwest:send(H, <<"x">>),
        ok = erqwest:cancel(H),
        ?assertError(badarg, erqwest:send(H, <<"y">>)),
        stalled_pid() ! stop,
        receive M -> ct:fail({stray, M}) after 300 -> ok end
    end).

%% cancel/1 right after the final message was consumed must see it as
%% delivered, not wait for another: a race between the task marking the
%% message sent and the owner receiving it. Many rounds to give it a chance.
sync_cancel_after_final_race(Config) ->
    Cut = fun(_) -> {raw_close, <<"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nshort">>} end,
    with_server(Cut, fun(S) ->
        Self = self(),
        Hung = [I || I <- lists:seq(1, 500), begin
            Pid = spawn(fun() ->
                {ok, #{body := H}} = erqwest:get(client(Config), url(S), #{response_body => stream}),
                {error, #{code := body}} = read_to_error(H),
                ok = erqwest:cancel(H),
                Self ! {done, self()}
            end),
            receive {done, Pid} -> false after 2000 -> exit(Pid, kill), true end
        end],
        ?assertEqual([], Hung)
    end).

%% A response abandoned half-way cannot go back to the pool: its
%% connection is closed, and the next request opens a new one.
cancelled_body_closes_connection(_Config) ->
    Body = binary:copy(<<"c">>, 4 * 1024 * 1024),
    with_server(fun(_) -> {200, [], Body} end, fun(S) ->
        C = erqwest:make_client(),
        {ok, #{body := H}} = erqwest:get(C, url(S), #{response_body => stream}),
        {more, _} = erqwest:read(H, #{length => 1000}),
        ok = erqwest:cancel(H),
        ?assertEqual(ok, erqwest_test_server:wait_closed(S, 0)),
        {ok, #{body := Body}} = erqwest:get(C, url(S)),
        ?assertEqual(2, erqwest_test_server:connections(S))
    end).

%%% ownership

other_process_is_refused(Config) ->
    with_server(slow_body(), fun(S) ->
        {ok, #{body := H}} = erqwest:get(client(Config), url(S), #{response_body => stream}),
        Self = self(),
        spawn(fun() ->
            Self ! {other, catch erqwest:read(H)},
            Self ! {other, catch erqwest:cancel(H)}
        end),
        [receive {other, {'EXIT', {{assertEqual, _}, _}}} -> ok after 5000 -> ct:fail(no_answer) end
         || _ <- [1, 2]],
        {ok, <<"firstlater">>} = erqwest:read(H)
    end).

%% The handle is dropped and collected before finish_send: the request is
%% aborted, the server never sees the final chunk, the caller gets its
%% final message.
gc_before_finish_send_aborts(Config) ->
    with_server(fun echo/1, fun(S) ->
        Ref = make_ref(),
        start_and_drop(client(Config), Ref, url(S)),
        next = recv(Ref),
        erlang:garbage_collect(),
        {error, #{code := cancelled}} = first_final(Ref),
        [#{complete := false, raw_body := Raw}] = wait_requests(S, 1),
        ?assertEqual(nomatch, binary:match(Raw, <<"0\r\n\r\n">>))
    end).

start_and_drop(Client, Ref, Url) ->
    H = erqwest_async:req(Client, self(), Ref, #{method => post, url => Url, body => stream}),
    next = recv(Ref),
    ok = erqwest_async:send(H, <<"partial body">>),
    ok.

gc_while_reading_cancels(Config) ->
    with_server(slow_body(), fun(S) ->
        Ref = make_ref(),
        read_and_drop(client(Config), Ref, url(S)),
        erlang:garbage_collect(),
        {error, #{code := cancelled}} = recv(Ref),
        ?assertEqual(ok, erqwest_test_server:wait_closed(S, 0))
    end).

read_and_drop(Client, Ref, Url) ->
    _ = erqwest_async:req(Client, self(), Ref, #{method => get, url => Url, response_body => stream}),
    {reply, _} = recv(Ref),
    ok.

dead_owner_cancels_upload(Config) ->
    with_server(fun echo/1, fun(S) ->
        Client = client(Config),
        Self = self(),
        Pid = spawn(fun() ->
            Ref = make_ref(),
            H = erqwest_async:req(Client, self(), Ref, #{method => post, url => url(S), body => stream}),
            next = recv(Ref),
            ok = erqwest_async:send(H, <<"never finished">>),
            next = recv(Ref),
            Self ! sent,
            receive after infinity -> ok end
        end),
        receive sent -> ok after 5000 -> ct:fail(not_sent) end,
        exit(Pid, kill),
        [#{complete := false}] = wait_requests(S, 1),
        ?assertEqual(ok, erqwest_test_server:wait_closed(S, 0)),
        wait_live_tasks_settle()
    end).

dead_owner_cancels_download(Config) ->
    with_server(slow_body(), fun(S) ->
        Client = client(Config),
        Self = self(),
        Pid = spawn(fun() ->
            {ok, #{body := H}} = erqwest:get(Client, url(S), #{response_body => stream}),
            Self ! {reading, H},
            erqwest:read(H)
        end),
        receive {reading, _} -> ok after 5000 -> ct:fail(not_reading) end,
        timer:sleep(100),
        exit(Pid, kill),
        ?assertEqual(ok, erqwest_test_server:wait_closed(S, 0))
    end).

%% Every task ends once its owner is gone (other parallel cases may hold
%% a few of their own, so this waits for the count to stop at a low value).
wait_live_tasks_settle() ->
    wait_live_tasks_settle(50).
wait_live_tasks_settle(0) -> ct:fail(tasks_left_running);
wait_live_tasks_settle(N) ->
    {_Handles, Tasks} = erqwest_nif:live_resources(),
    case Tasks < 20 of
        true -> ok;
        false -> timer:sleep(100), wait_live_tasks_settle(N - 1)
    end.

send_after_final_is_badarg(Config) ->
    Handler = fun(_) -> {raw_close, <<"HTTP/1.1 500 Oops\r\ncontent-length: 0\r\n\r\n">>} end,
    with_server(Handler, #{read_body => false}, fun(S) ->
        {handle, H} = erqwest:post(client(Config), url(S), #{body => stream}),
        Final = send_until_not_ok(H, 200),
        ?assertMatch({reply, #{status := 500}}, Final),
        ?assertError(badarg, erqwest:send(H, <<"x">>))
    end).

send_until_not_ok(_H, 0) -> ct:fail(no_final);
send_until_not_ok(H, N) ->
    case erqwest:send(H, <<"data">>) of
        ok -> timer:sleep(10), send_until_not_ok(H, N - 1);
        Other -> Other
    end.

%%% timeouts

timeout_while_uploading(Config) ->
    with_server(stalled(), #{read_body => false}, fun(S) ->
        Ref = make_ref(),
        H = erqwest_async:req(client(Config), self(), Ref,
                              #{method => post, url => url(S), body => stream, timeout => 500}),
        next = recv(Ref),
        ok = erqwest_async:send(H, <<"slow">>),
        {error, #{code := timeout}} = first_final(Ref),
        %% H stays live until the answer: a handle garbage-collected
        %% before it is a cancel ("handle dropped before finish_send").
        ok = erqwest_async:cancel(H),
        no_message(Ref)
    end).

read_timeout_while_reading(_Config) ->
    with_server(slow_body(), fun(S) ->
        C = erqwest:make_client(#{read_timeout => 300}),
        {ok, #{body := H}} = erqwest:get(C, url(S), #{response_body => stream}),
        {error, #{code := timeout}} = erqwest:read(H)
    end).

timeout_while_reading(Config) ->
    with_server(slow_body(), fun(S) ->
        {ok, #{body := H}} = erqwest:get(client(Config), url(S),
                                         #{response_body => stream, timeout => 500}),
        {error, #{code := timeout}} = erqwest:read(H)
    end).
