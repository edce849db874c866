%% @doc Helpers shared by the reliability suites: a driver that runs one
%% request through the message protocol of {@link erqwest_async} and checks
%% every message against it, and leak checks on live NIF resources.
%%
%% The driver fails (raises) on any protocol breach: a message that may not
%% come at that point, a second final message, a message after the final
%% one, or no message at all within the wait limit (a hang).
-module(erqwest_check).

-export([run/3, run/2, no_more/2, no_stray/1, flush_all/0]).
-export([baseline/0, wait_baseline/2, gc_all/0]).

-include_lib("stdlib/include/assert.hrl").

%% How long any single message may take before the request counts as hung.
-define(WAIT, 30000).

-type plan() :: #{
    %% For `body => stream': the chunks to send, in order.
    chunks => [iodata()],
    %% For `response_body => stream': read options, used in turn (cycled).
    reads => [erqwest:read_opts()],
    %% How long to watch for stray messages after the final one.
    linger => non_neg_integer(),
    %% Longest wait for one message.
    wait => timeout()
}.
-type outcome() :: {ok, #{status := integer(), headers := list(), body := binary(),
                          early := boolean(), atom() => term()}}
                 | {error, erqwest:err()}.
-export_type([plan/0, outcome/0]).

%% @equiv run(Client, ReqOpts, #{})
-spec run(erqwest:client(), erqwest:req_opts()) -> outcome().
run(C, Opts) -> run(C, Opts, #{}).

%% @doc Runs a request to its end through `erqwest_async', checking the
%% protocol on the way. The response body comes back whole, however it was
%% read; `early' says whether the server answered before the upload ended.
-spec run(erqwest:client(), erqwest:req_opts(), plan()) -> outcome().
run(C, Opts, Plan) ->
    Ref = make_ref(),
    H = erqwest_async:req(C, self(), Ref, Opts),
    Wait = maps:get(wait, Plan, ?WAIT),
    StreamResp = maps:get(response_body, Opts, complete) =:= stream,
    Result = case maps:get(body, Opts, none) of
        stream -> upload(H, Ref, maps:get(chunks, Plan, []), StreamResp, Plan, Wait);
        _ -> response(H, Ref, StreamResp, Plan, Wait, false)
    end,
    no_more(Ref, maps:get(linger, Plan, 0)),
    %% After the final message a cancel must change nothing.
    ok = erqwest_async:cancel(H),
    no_more(Ref, 0),
    Result.

upload(H, Ref, Chunks, StreamResp, Plan, Wait) ->
    case recv(Ref, Wait) of
        next -> upload_next(H, Ref, Chunks, StreamResp, Plan, Wait);
        {reply, Resp} -> after_reply(H, Ref, Resp, StreamResp, Plan, Wait, true);
        {error, Err} -> {error, Err};
        Other -> error({protocol, upload_start, Other})
    end.

upload_next(H, Ref, [], StreamResp, Plan, Wait) ->
    ok = erqwest_async:finish_send(H),
    case recv(Ref, Wait) of
        {reply, Resp} -> after_reply(H, Ref, Resp, StreamResp, Plan, Wait, false);
        {error, Err} -> {error, Err};
        Other -> error({protocol, after_finish_send, Other})
    end;
upload_next(H, Ref, [Chunk | Rest], StreamResp, Plan, Wait) ->
    ok = erqwest_async:send(H, Chunk),
    case recv(Ref, Wait) of
        next -> upload_next(H, Ref, Rest, StreamResp, Plan, Wait);
        {reply, Resp} -> after_reply(H, Ref, Resp, StreamResp, Plan, Wait, true);
        {error, Err} -> {error, Err};
        Other -> error({protocol, after_send, Other})
    end.

response(H, Ref, StreamResp, Plan, Wait, Early) ->
    case recv(Ref, Wait) of
        {reply, Resp} -> after_reply(H, Ref, Resp, StreamResp, Plan, Wait, Early);
        {error, Err} -> {error, Err};
        Other -> error({protocol, awaiting_reply, Other})
    end.

after_reply(_H, _Ref, Resp, false, _Plan, _Wait, Early) ->
    ?assert(is_binary(maps:get(body, Resp, undefined)), Resp),
    {ok, Resp#{early => Early}};
after_reply(H, Ref, Resp, true, Plan, Wait, Early) ->
    ?assertNot(maps:is_key(body, Resp), Resp),
    Reads = case maps:get(reads, Plan, []) of [] -> [#{}]; Rs -> Rs end,
    read_loop(H, Ref, Resp#{early => Early}, Reads, Reads, [], Wait).

read_loop(H, Ref, Resp, [], All, Acc, Wait) ->
    read_loop(H, Ref, Resp, All, All, Acc, Wait);
read_loop(H, Ref, Resp, [R | Rs], All, Acc, Wait) ->
    ok = erqwest_async:read(H, R),
    case recv(Ref, Wait) of
        {chunk, Data} ->
            ?assert(is_binary(Data)),
            read_loop(H, Ref, Resp, Rs, All, [Acc | Data], Wait);
        {fin, Data} ->
            ?assert(is_binary(Data)),
            {ok, Resp#{body => iolist_to_binary([Acc | Data])}};
        {error, Err} -> {error, Err};
        Other -> error({protocol, reading, Other})
    end.

recv(Ref, Wait) ->
    receive
        {erqwest_response, Ref, next} -> next;
        {erqwest_response, Ref, reply, Resp} -> check_resp(Resp), {reply, Resp};
        {erqwest_response, Ref, chunk, Data} -> {chunk, Data};
        {erqwest_response, Ref, fin, Data} -> {fin, Data};
        {erqwest_response, Ref, error, Err} -> check_err(Err), {error, Err};
        {erqwest_response, Ref, _, _} = M -> error({protocol, unknown_message, M})
    after Wait ->
        error({hung, Ref, Wait})
    end.

check_resp(#{status := S, headers := Hs} = Resp) when is_integer(S), S >= 100, S =< 599 ->
    ?assert(lists:all(fun({K, V}) -> is_binary(K) andalso is_binary(V); (_) -> false end, Hs),
            Resp);
check_resp(Resp) ->
    error({protocol, bad_resp, Resp}).

check_err(#{code := Code, reason := Reason} = Err) ->
    ?assert(lists:member(Code, [timeout, redirect, url, connect, request, body, cancelled,
                                unknown]), Err),
    ?assert(is_binary(Reason), Err);
check_err(Err) ->
    error({protocol, bad_err, Err}).

%% @doc Fails if another message of request `Ref' arrives within `Ms'.
-spec no_more(term(), non_neg_integer()) -> ok.
no_more(Ref, Ms) ->
    receive
        {erqwest_response, Ref, _} = M -> error({protocol, after_final, M});
        {erqwest_response, Ref, _, _} = M -> error({protocol, after_final, M})
    after Ms -> ok
    end.

%% @doc Fails if any erqwest message arrives within `Ms'.
-spec no_stray(non_neg_integer()) -> ok.
no_stray(Ms) ->
    receive
        {erqwest_response, _, _} = M -> error({stray, M});
        {erqwest_response, _, _, _} = M -> error({stray, M})
    after Ms -> ok
    end.

%% @doc Drops every message in the mailbox; returns how many there were.
-spec flush_all() -> non_neg_integer().
flush_all() -> flush_all(0).
flush_all(N) -> receive _ -> flush_all(N + 1) after 0 -> N end.

%%% Leak checks

%% @doc Garbage-collects every process, so that unreferenced handles are
%% freed, and returns the live `{Handles, Tasks}'.
-spec baseline() -> {non_neg_integer(), non_neg_integer()}.
baseline() ->
    gc_all(),
    erqwest_nif:live_resources().

-spec gc_all() -> ok.
gc_all() ->
    _ = [erlang:garbage_collect(P) || P <- processes()],
    ok.

%% @doc Waits up to `Ms' for the live resources to come back to `Base' (or
%% below); returns `ok' or the counts seen last.
-spec wait_baseline({non_neg_integer(), non_neg_integer()}, non_neg_integer()) ->
    ok | {leak, {non_neg_integer(), non_neg_integer()}}.
wait_baseline({BH, BT} = Base, Ms) ->
    {H, T} = Now = baseline(),
    if
        H =< BH, T =< BT -> ok;
        Ms =< 0 -> {leak, Now};
        true -> timer:sleep(50), wait_baseline(Base, Ms - 50)
    end.
