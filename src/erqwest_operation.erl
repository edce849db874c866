%% @doc Long-running operations: a request answered `202 Accepted',
%% followed to completion inside erqwest's runtime.
%%
%% The request is sent as usual. Any answer other than 202 is the final
%% reply. On 202 the runtime polls the status URL (`Operation-Location' or
%% `Azure-AsyncOperation' when present, else `Location', else a `location'
%% in the JSON body) with GET through the same client, waiting
%% `Retry-After' (seconds or an HTTP date) when the server sends one and
%% `poll_interval' otherwise, until the operation ends or `max_wait'
%% passes. The waits are tokio timers: no Erlang process and no thread per
%% operation.
%%
%% Status documents are understood in both common styles, with names and
%% values matched case-insensitively:
%% <ul>
%% <li>`state': `pending', `running', `succeeded', `failed', `canceled',
%%     with an inline `result' and an RFC 9457 `problem';</li>
%% <li>`status': `NotStarted', `Running', `Succeeded', `Failed', `Canceled',
%%     with `percentComplete' (and an `error' object or `resourceLocation').</li>
%% </ul>
%% Any other state word means "still running". A poll answered `202'
%% without a status document is still running too.
%%
%% == Messages ==
%% Sent by an operation begun with {@link start/5}.
%% After each poll that finds the operation unfinished:
%% ```
%% {erqwest_operation, Ref, progress, #{state := pending | running,
%%                                      status := binary(),
%%                                      percent_complete := 0..100 | undefined,
%%                                      retry_after := Ms}}
%% '''
%% (`status' is the server's own word, `<<>>' when it gave none;
%% `retry_after' is the wait before the next poll.) Then exactly one final
%% message, as for any erqwest request:
%% <ul>
%% <li>`{erqwest_response, Ref, reply, Resp}' on success. `Resp' is the
%%     inline `result' (its JSON text as the body, `content-type:
%%     application/json'), or the resource fetched from where the finished
%%     operation points (a `303 See Other', a `Location' on a 200/201,
%%     `resourceLocation', or the 202's own `Location' when another header
%%     named the status monitor), or else the final status response itself.
%%     A first answer other than 202, or a 202 with no status URL, is
%%     the reply as it came.</li>
%% <li>`{erqwest_response, Ref, error, Err}' otherwise, with `code':
%%     `operation_failed' (the server says it failed; `problem' holds its
%%     RFC 9457 problem or Azure `error' as a map with binary keys; also
%%     when the status URL answers 4xx/5xx, then with `http_status'),
%%     `operation_canceled' (canceled by the server), `timeout' (`max_wait'
%%     passed), `cancelled' ({@link cancel/1}, or the receiving process
%%     died), `body' (the status URL answered something that is not an
%%     operation status), or the usual transport codes.</li>
%% </ul>
%%
%% == Example ==
%% ```
%% Ref = make_ref(),
%% H = erqwest_operation:start(Client, self(), Ref,
%%                             #{method => post, url => <<"http://127.0.0.1:8080/exports">>},
%%                             #{poll_interval => 1000}),
%% Loop = fun Loop() ->
%%            receive
%%                {erqwest_operation, Ref, progress, #{percent_complete := P}} ->
%%                    io:format("~p%~n", [P]), Loop();
%%                {erqwest_response, Ref, reply, Resp} -> {ok, Resp};
%%                {erqwest_response, Ref, error, Err} -> {error, Err}
%%            end
%%        end,
%% Loop().
%% '''
%% {@link wait/3} does the same in one call. For a poll loop of your own,
%% see {@link create/3} and {@link poll/1}.
%%
%% The requests of an operation take complete bodies only: `body => stream'
%% and `response_body => stream' raise `badarg'. The `timeout' of the
%% request options applies to each exchange (the first request, each poll,
%% the result fetch); `poll_headers' are sent with each poll and the result
%% fetch (say, an `authorization'), besides the client's default headers.
-module(erqwest_operation).

-include_lib("stdlib/include/assert.hrl").

-export([start/5, cancel/1, wait/3]).
-export([create/3, poll/1, result/1]).
-export([status/1, percent_complete/1, retry_after/1, info/1]).

-export_type([handle/0, op/0, op_opts/0, wait_opts/0, progress/0, info/0, state/0,
              code/0, err/0]).

-opaque handle() :: reference().
%% An operation followed by the runtime ({@link start/5}), for {@link cancel/1}.

-record(op, {
    handle :: handle(),
    ref :: reference(),
    owner :: pid(),
    %% The final reply, once poll/1 saw it.
    result = undefined :: undefined | {ok, erqwest:resp()}
}).
-opaque op() :: #op{}.
%% An operation polled by the caller ({@link create/3}, {@link poll/1}).

-type op_opts() :: #{
    poll_interval => pos_integer(),
    max_wait => erqwest:timeout_ms(),
    poll_headers => [erqwest:header()]
}.
%% For example `#{poll_interval => 1000, max_wait => 60000}'.
-type wait_opts() :: #{
    poll_interval => pos_integer(),
    max_wait => erqwest:timeout_ms(),
    poll_headers => [erqwest:header()],
    on_progress => fun((progress()) -> term())
}.
%% {@link op_opts()} and `on_progress', a fun called with each
%% {@link progress()}: `#{poll_interval => 500, on_progress => fun(P) -> io:format("~p~n", [P]) end}'.
-type progress() :: #{
    state := pending | running,
    status := binary(),
    percent_complete := 0..100 | undefined,
    retry_after := non_neg_integer()
}.
%% For example `#{state => running, status => <<"Running">>, percent_complete => 50, retry_after => 1000}'.
-type state() :: pending | running | succeeded | failed | canceled.
%% Where the operation is: `running'.
-type info() :: #{
    state := state(),
    status := binary(),
    percent_complete := 0..100 | undefined,
    retry_after := non_neg_integer(),
    status_url := binary() | undefined
}.
%% What the last poll found: {@link progress()} and the `status_url'.
-type code() :: erqwest:code() | operation_failed | operation_canceled.
%% The error codes of an operation: `operation_failed'.
-type err() :: #{
    code := code(),
    reason := binary(),
    problem => #{binary() => term()},
    http_status => 100..599
}.
%% For example `#{code => operation_failed, reason => <<"...">>, problem => #{<<"title">> => <<"quota">>}}'.


%%% Following an operation from the runtime

%% @doc Starts an operation; messages go to `Pid', tagged with `Ref'
%% (see the module doc). `OpOpts': `poll_interval' (ms, default 2000),
%% `max_wait' (ms or `infinity', default 600000: the whole operation,
%% first request included) and `poll_headers'.
%% Raises `badarg' for an unknown key or an ill-typed value; problems with
%% the request's contents arrive as the `error' message.
%%
%% ```
%% Ref = make_ref(),
%% _ = erqwest_operation:start(C, self(), Ref, #{method => post, url => Url}, #{poll_interval => 500}),
%% receive {erqwest_response, Ref, reply, #{status := 200, body := Result}} -> Result end.
%% '''
-spec start(erqwest:client() | atom(), pid(), term(), erqwest:req_opts(), op_opts()) -> handle().
start(Client, Pid, Ref, ReqOpts, OpOpts) ->
    nif_start(Client, Pid, Ref, ReqOpts, OpOpts, auto).

%% @doc Cancels at once: an in-flight poll is dropped and no more are
%% made. A final message still comes (`error' with code `cancelled', or a
%% reply already on its way). For an {@link op()} the final message is
%% consumed here. Does nothing after the final message.
%%
%% ```
%% H = erqwest_operation:start(C, self(), Ref, Req, #{}),
%% ok = erqwest_operation:cancel(H),
%% receive {erqwest_response, Ref, error, #{code := cancelled}} -> ok end.
%% '''
-spec cancel(handle() | op()) -> ok.
cancel(#op{handle = H, ref = Ref} = Op) ->
    owner(Op),
    case erqwest_nif:operation_cancel(H) of
        ok -> await_final(Ref);
        finished -> flush(Ref)
    end;
cancel(Handle) ->
    _ = erqwest_nif:operation_cancel(Handle),
    ok.

%% @doc Runs an operation to its end in the calling process (which
%% blocks; no scheduler does). `on_progress' is called with each
%% {@link progress()}; if it raises, the operation is cancelled and the
%% exception goes on.
%%
%% ```
%% {ok, #{status := 200, body := Json}} =
%%     erqwest_operation:wait(Client, #{method => post, url => Url},
%%                            #{on_progress => fun(#{status := S}) -> io:format("~s~n", [S]) end}).
%% '''
-spec wait(erqwest:client() | atom(), erqwest:req_opts(), wait_opts()) ->
    {ok, erqwest:resp()} | {error, err()}.
wait(Client, ReqOpts, WaitOpts) when is_map(WaitOpts) ->
    {OnProgress, OpOpts} = case maps:take(on_progress, WaitOpts) of
        {F, Rest} when is_function(F, 1) -> {F, Rest};
        {_, _} -> erlang:error(badarg, [Client, ReqOpts, WaitOpts]);
        error -> {fun(_) -> ok end, WaitOpts}
    end,
    Ref = make_ref(),
    H = start(Client, self(), Ref, ReqOpts, OpOpts),
    await(H, Ref, OnProgress);
wait(Client, ReqOpts, WaitOpts) ->
    erlang:error(badarg, [Client, ReqOpts, WaitOpts]).

await(H, Ref, OnProgress) ->
    receive
        {erqwest_operation, Ref, progress, Progress} ->
            try OnProgress(Progress) of
                _ -> await(H, Ref, OnProgress)
            catch
                Class:Reason:Stack ->
                    _ = erqwest_nif:operation_cancel(H),
                    await_final(Ref),
                    erlang:raise(Class, Reason, Stack)
            end;
        {erqwest_response, Ref, reply, Resp} -> {ok, Resp};
        {erqwest_response, Ref, error, Err} -> {error, Err}
    end.

%%% A poll loop of your own

%% @doc Sends the request and waits for its answer, for a poll loop of
%% your own with {@link poll/1}. `{ok, Op}' once the operation is accepted
%% (or already done: a first answer other than 202); `OpOpts' as in
%% {@link start/5}, where `poll_interval' is only the {@link retry_after/1}
%% suggested when the server gives none. `max_wait' still applies: past
%% it, the next poll answers `{error, #{code := timeout}}'.
%%
%% ```
%% {ok, Op0} = erqwest_operation:create(Client, #{method => post, url => Url}, #{}),
%% Loop = fun Loop(Op) ->
%%            case erqwest_operation:poll(Op) of
%%                {running, Op1} ->
%%                    io:format("~s (~p%)~n", [erqwest_operation:status(Op1),
%%                                            erqwest_operation:percent_complete(Op1)]),
%%                    timer:sleep(erqwest_operation:retry_after(Op1)),
%%                    Loop(Op1);
%%                {done, Op1} -> erqwest_operation:result(Op1);
%%                {error, _} = Error -> Error
%%            end
%%        end,
%% {ok, #{status := 200}} = Loop(Op0).
%% '''
%% The op belongs to the process that created it: {@link poll/1} and
%% {@link cancel/1} from another process fail with an `{assertEqual, _}'
%% error. Dropping an unfinished op ends it (its final `error' message,
%% code `cancelled', then reaches the owner).
-spec create(erqwest:client() | atom(), erqwest:req_opts(), op_opts()) ->
    {ok, op()} | {error, err()}.
create(Client, ReqOpts, OpOpts) ->
    Ref = make_ref(),
    Op = #op{handle = nif_start(Client, self(), Ref, ReqOpts, OpOpts, manual),
             ref = Ref, owner = self()},
    case next(Ref) of
        running -> {ok, Op};
        {done, Resp} -> {ok, Op#op{result = {ok, Resp}}};
        {error, _} = Error -> Error
    end.

%% @doc Polls the status URL once, now, and waits for the answer:
%% `{running, Op}' while unfinished, `{done, Op}' once it succeeded (then
%% {@link result/1} has the answer; polling again makes no request), or
%% the operation's final `{error, Err}'. Raises `badarg' after an error.
%%
%% ```
%% {ok, Op0} = erqwest_operation:create(C, Req, #{}),
%% {running, Op1} = erqwest_operation:poll(Op0).
%% '''
-spec poll(op()) -> {running, op()} | {done, op()} | {error, err()}.
poll(#op{result = {ok, _}} = Op) ->
    owner(Op),
    {done, Op};
poll(#op{handle = H, ref = Ref} = Op) ->
    owner(Op),
    Answer = case erqwest_nif:operation_poll(H) of
        ok -> next(Ref);
        finished ->
            %% Over already (max_wait): its final message may be queued.
            receive
                {erqwest_response, Ref, reply, Resp} -> {done, Resp};
                {erqwest_response, Ref, error, Err} -> {error, Err}
            after 0 -> erlang:error(badarg, [Op])
            end
    end,
    case Answer of
        running -> {running, Op};
        {done, R} -> {done, Op#op{result = {ok, R}}};
        {error, _} = Error -> Error
    end.

%% @doc The operation's answer, once {@link poll/1} (or {@link create/3})
%% returned `done'. Raises `badarg' before that.
%%
%% ```
%% {done, Op} = erqwest_operation:poll(Op1),
%% {ok, #{status := 200, body := Result}} = erqwest_operation:result(Op).
%% '''
-spec result(op()) -> {ok, erqwest:resp()}.
result(#op{result = {ok, _} = Result}) -> Result;
result(Op) -> erlang:error(badarg, [Op]).

next(Ref) ->
    receive
        {erqwest_operation, Ref, progress, _} -> running;
        {erqwest_response, Ref, reply, Resp} -> {done, Resp};
        {erqwest_response, Ref, error, Err} -> {error, Err}
    end.

%%% What the last poll said (any process, either kind of handle)

%% @doc The status word of the last poll (`<<"Running">>',
%% `<<"succeeded">>'...), `<<>>' when the server gave none.
%%
%% ```
%% <<"Running">> = erqwest_operation:status(Op).
%% '''
-spec status(handle() | op()) -> binary().
status(H) -> maps:get(status, info(H)).

%% @doc The completion percentage of the last poll, `undefined' when the
%% server did not report one.
%%
%% ```
%% 50 = erqwest_operation:percent_complete(Op).
%% '''
-spec percent_complete(handle() | op()) -> 0..100 | undefined.
percent_complete(H) -> maps:get(percent_complete, info(H)).

%% @doc The wait before the next poll, in ms: the server's `Retry-After'
%% when it sent one, else `poll_interval'.
%%
%% ```
%% timer:sleep(erqwest_operation:retry_after(Op)).
%% '''
-spec retry_after(handle() | op()) -> non_neg_integer().
retry_after(H) -> maps:get(retry_after, info(H)).

%% @doc All of it, with the last `state' (terminal ones included) and the
%% `status_url' being polled.
%%
%% ```
%% #{state := running, status_url := StatusUrl} = erqwest_operation:info(Op).
%% '''
-spec info(handle() | op()) -> info().
info(#op{handle = H}) -> erqwest_nif:operation_info(H);
info(H) -> erqwest_nif:operation_info(H).

%%% Internals

nif_start(Client, Pid, Ref, ReqOpts, OpOpts, Mode) ->
    C = erqwest:get_client(Client),
    try
        case erqwest_dirty:request(Ref, ReqOpts) orelse long_poll_headers(OpOpts) of
            true -> erqwest_nif:start_operation_dirty(C, Pid, Ref, ReqOpts, OpOpts, Mode);
            false -> erqwest_nif:start_operation(C, Pid, Ref, ReqOpts, OpOpts, Mode)
        end
    catch
        %% A composing option (json, query ...) says what was wrong with it.
        error:{badarg, Cause} when is_binary(Cause) ->
            erlang:error(badarg, [Client, Pid, Ref, ReqOpts, OpOpts, Mode],
                         [{error_info, #{module => erqwest, cause => Cause}}])
    end.

owner(#op{owner = Owner}) ->
    ?assertEqual(Owner, self()).

%% Skips to the operation's final message.
await_final(Ref) ->
    receive
        {erqwest_operation, Ref, progress, _} -> await_final(Ref);
        {erqwest_response, Ref, _, _} -> ok
    end.

%% The final message was delivered already; drop what is still queued.
flush(Ref) ->
    receive
        {erqwest_operation, Ref, progress, _} -> flush(Ref);
        {erqwest_response, Ref, _, _} -> flush(Ref)
    after 0 -> ok
    end.

long_poll_headers(#{poll_headers := Headers}) -> erqwest_dirty:headers(Headers);
long_poll_headers(_) -> false.
