%% Load: many requests at once, and many requests with random cancels,
%% against an echo server running in a peer VM (so that 10,000 open
%% connections on each side stay within one process's file descriptor
%% limit). Every request must come back right, with exactly one final
%% message, and nothing may be left behind: no stray message, no live
%% handle or task, no connection the client forgot.
%%
%% Sizes: `rebar3 ct' runs 10,000 concurrent requests and 10,000 requests
%% with random cancels (100 processes x 100); ERQWEST_LOAD=full (used by
%% `make soak') runs the second at its full size, 100 processes x 1,000.
-module(erqwest_load_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, suite/0, init_per_suite/1, end_per_suite/1]).
-export([ten_thousand_concurrent_requests/1, random_cancels_leave_no_stray_messages/1]).
-export([start_server/0]).

suite() -> [{timetrap, {minutes, 10}}].

all() -> [ten_thousand_concurrent_requests, random_cancels_leave_no_stray_messages].

init_per_suite(Config) ->
    {ok, _} = application:ensure_all_started(erqwest),
    TestDir = filename:dirname(code:which(?MODULE)),
    {ok, Peer} = start_peer(["-pa", TestDir]),
    Port = peer:call(Peer, ?MODULE, start_server, []),
    Base = iolist_to_binary(["http://127.0.0.1:", integer_to_list(Port)]),
    [{peer, Peer}, {base, Base} | Config].

end_per_suite(Config) ->
    peer:stop(?config(peer, Config)).

start_peer(Args) ->
    %% Not linked: init_per_suite runs in a process that ends at once.
    case peer:start(#{connection => standard_io, args => Args}) of
        {ok, Peer} -> {ok, Peer};
        {ok, Peer, _Node} -> {ok, Peer}
    end.

%% @private Runs in the peer: an echo server named `load_echo'.
start_server() ->
    {ok, _} = erqwest_fault_server:start(echo, #{name => load_echo}),
    erqwest_fault_server:port(load_echo).

server_stats(Config) ->
    peer:call(?config(peer, Config), erqwest_fault_server, stats, [load_echo]).

%% 10,000 requests in flight at once (the server holds each for 300 ms):
%% each answer is the right one, each request gets one final message, and
%% the server read each request exactly once.
ten_thousand_concurrent_requests(Config) ->
    N = 10000,
    Base = ?config(base, Config),
    Baseline = erqwest_check:baseline(),
    #{requests := Before} = server_stats(Config),
    C = erqwest:make_client(),
    Handles = [erqwest_async:req(C, self(), {load, I},
                                 #{method => post,
                                   url => <<Base/binary, "/load/", (integer_to_binary(I))/binary>>,
                                   headers => [{<<"x-p-id">>, integer_to_binary(I)},
                                               {<<"x-echo-delay">>, <<"300">>}],
                                   body => integer_to_binary(I)})
               || I <- lists:seq(1, N)],
    ?assertEqual(N, length(Handles)),
    Done = collect_replies(N, #{}),
    ?assertEqual(N, map_size(Done)),
    erqwest_check:no_stray(200),
    #{requests := After, accepted := Accepted} = server_stats(Config),
    ?assertEqual(N, After - Before),
    ct:pal("10,000 concurrent requests: the server accepted ~p connections in all", [Accepted]),
    ok = erqwest:close_client(C),
    ok = erqwest_check:wait_baseline(Baseline, 20000).

collect_replies(0, Done) ->
    Done;
collect_replies(Left, Done) ->
    receive
        {erqwest_response, {load, I}, reply, #{status := 200, body := Body, headers := Hs}} ->
            Id = integer_to_binary(I),
            ?assertEqual(Id, Body),
            ?assertEqual({<<"x-p-id">>, Id}, lists:keyfind(<<"x-p-id">>, 1, Hs)),
            ?assertNot(maps:is_key(I, Done), {second_final, I}),
            collect_replies(Left - 1, Done#{I => true});
        {erqwest_response, {load, I}, error, Err} ->
            ct:fail({request_failed, I, Err})
    after 120000 ->
        ct:fail({missing_replies, Left})
    end.

%% Processes each make requests one after another, each in a random way:
%% complete, streamed either way, cancelled at once, after the head, in
%% the middle of an upload or after a random delay. Each request gets
%% exactly one final message and no process finds a stray message.
random_cancels_leave_no_stray_messages(Config) ->
    {Procs, PerProc} = case os:getenv("ERQWEST_LOAD") of
        "full" -> {100, 1000};
        _ -> {100, 100}
    end,
    Base = ?config(base, Config),
    Baseline = erqwest_check:baseline(),
    C = erqwest:make_client(),
    Self = self(),
    Pids = [spawn_link(fun() -> worker(Self, C, Base, P, PerProc) end)
            || P <- lists:seq(1, Procs)],
    Results = [receive {done, P, R} -> R after 600000 -> ct:fail({worker_stuck, P}) end
               || P <- Pids],
    Total = lists:foldl(fun(R, Acc) -> maps:merge_with(fun(_, A, B) -> A + B end, R, Acc) end,
                        #{}, Results),
    ct:pal("~p requests through ~p processes: ~p", [Procs * PerProc, Procs, Total]),
    #{sent := Sent, finals := Finals, stray := Stray} = Total,
    ?assertEqual(Procs * PerProc, Sent),
    ?assertEqual(Sent, Finals),
    ?assertEqual(0, Stray),
    ok = erqwest:close_client(C),
    ok = erqwest_check:wait_baseline(Baseline, 20000).

worker(Parent, C, Base, Seed, N) ->
    rand:seed(exsss, {Seed, 17, 4711}),
    Url = <<Base/binary, "/cancel/", (integer_to_binary(Seed))/binary>>,
    Counts = lists:foldl(fun(_, Acc) ->
        Kind = lists:nth(rand:uniform(7), [complete, stream_both, cancel_at_once,
                                          cancel_after_head, cancel_mid_upload,
                                          cancel_after_delay, cancel_mid_read]),
        Finals = one(Kind, C, Url),
        maps:update_with(finals, fun(F) -> F + Finals end,
                         maps:update_with(sent, fun(S) -> S + 1 end,
                                          maps:update_with(Kind, fun(K) -> K + 1 end, 1, Acc)))
    end, #{sent => 0, finals => 0}, lists:seq(1, N)),
    %% Anything arriving now is a message after a final one.
    timer:sleep(300),
    Stray = erqwest_check:flush_all(),
    Parent ! {done, self(), Counts#{stray => Stray}}.

%% Runs one request; returns how many final messages it got.
one(complete, C, Url) ->
    Body = rand_body(),
    {ok, #{status := 200, body := Body}} =
        erqwest_check:run(C, #{method => post, url => Url, body => Body}),
    1;
one(stream_both, C, Url) ->
    {ok, #{status := 200, body := <<"abcdef">>}} =
        erqwest_check:run(C, #{method => put, url => Url, body => stream,
                               response_body => stream},
                          #{chunks => [<<"abc">>, <<"def">>], reads => [#{length => 2}]}),
    1;
one(cancel_at_once, C, Url) ->
    Ref = make_ref(),
    H = erqwest_async:req(C, self(), Ref, #{method => get, url => Url}),
    ok = erqwest_async:cancel(H),
    finals(Ref, false);
one(cancel_after_head, C, Url) ->
    Ref = make_ref(),
    H = erqwest_async:req(C, self(), Ref, #{method => post, url => Url, body => rand_body(),
                                            response_body => stream}),
    receive {erqwest_response, Ref, reply, #{status := 200}} -> ok end,
    ok = erqwest_async:cancel(H),
    finals(Ref, true);
one(cancel_mid_upload, C, Url) ->
    Ref = make_ref(),
    H = erqwest_async:req(C, self(), Ref, #{method => post, url => Url, body => stream}),
    receive {erqwest_response, Ref, next} -> ok end,
    ok = erqwest_async:send(H, <<"some">>),
    ok = erqwest_async:cancel(H),
    finals(Ref, false);
one(cancel_after_delay, C, Url) ->
    Ref = make_ref(),
    H = erqwest_async:req(C, self(), Ref, #{method => get, url => Url,
                                            headers => [{<<"x-echo-delay">>, <<"2">>}]}),
    timer:sleep(rand:uniform(4) - 1),
    ok = erqwest_async:cancel(H),
    finals(Ref, false);
one(cancel_mid_read, C, Url) ->
    Ref = make_ref(),
    H = erqwest_async:req(C, self(), Ref, #{method => post, url => Url,
                                            body => binary:copy(<<"z">>, 200000),
                                            headers => [{<<"x-echo-chunk">>, <<"1000">>}],
                                            response_body => stream}),
    receive {erqwest_response, Ref, reply, #{status := 200}} -> ok end,
    ok = erqwest_async:read(H, #{length => 1000}),
    ok = erqwest_async:cancel(H),
    finals(Ref, true).

%% Counts final messages of `Ref' until the first, then checks for a
%% second during a short wait.
finals(Ref, Streamed) ->
    receive
        {erqwest_response, Ref, error, #{code := _}} -> 1 + extra(Ref);
        {erqwest_response, Ref, fin, _} -> 1 + extra(Ref);
        {erqwest_response, Ref, reply, _} when not Streamed -> 1 + extra(Ref);
        {erqwest_response, Ref, reply, _} -> finals(Ref, Streamed);
        {erqwest_response, Ref, chunk, _} -> finals(Ref, Streamed);
        {erqwest_response, Ref, next} -> finals(Ref, Streamed)
    after 30000 ->
        ct:fail({no_final, Ref})
    end.

extra(Ref) ->
    receive
        {erqwest_response, Ref, _} -> 1;
        {erqwest_response, Ref, _, _} -> 1
    after 0 -> 0
    end.

rand_body() ->
    binary:copy(<<"b">>, rand:uniform(5000) - 1).
