%% @private
%% @doc Synchronous requests answered on the caller's own scheduler.
%%
%% `erqwest:req/2' tries this path first. For HTTP/1.1 requests, plain
%% or over TLS, that need nothing of reqwest's that this path lacks (see
%% native/src/direct/mod.rs), the NIF writes the request on a pooled
%% keep-alive connection and the VM's poll set tells this process when
%% the socket is ready (`{select, _, Ref, _}'); the next NIF call reads the
%% response. No tokio thread takes part, unless a body must be decoded, a
%% name looked up or a TLS handshake done (then a runtime task wakes this
%% process), or the request is handed to reqwest after all (an HTTP/2
%% origin's connection is busy): then a runtime task answers with the usual
%% `{erqwest_response, Ref, ...}' message. Everything else answers
%% `fallback' and goes through `erqwest_async'.
%%
%% On a client with `max_in_flight' limits a request that finds no room
%% is queued in the NIF call, in the same FIFO queues as `erqwest_async's
%% requests, and answers `{wait, Call, infinity}': a runtime task waits
%% for the room (or the `queue_timeout') and sends the `select' message
%% this process waits for here, so no scheduler is held while it queues.
-module(erqwest_direct).

-export([req/2]).
-export_type([call/0]).

-opaque call() :: reference().

%% @doc The answer of `erqwest:req/2', or `fallback' when this path does
%% not take the request.
-spec req(erqwest:client(), erqwest:req_opts()) ->
    {ok, erqwest:resp()} | {error, erqwest:err()} | fallback.
req(Client, Opts) ->
    Ref = make_ref(),
    try erqwest_nif:direct_req(Client, Ref, Opts) of
        fallback -> fallback;
        Step -> next(Step, Ref)
    catch
        %% Bad options raise from erqwest_async, exactly as they always did.
        error:badarg -> fallback;
        error:{badarg, _} -> fallback
    end.

next({wait, Call, Ms}, Ref) ->
    receive
        {select, _, Ref, _} -> next(erqwest_nif:direct_poll(Call, Ref), Ref);
        %% From a runtime task: the request's place in its client's
        %% limits is given back before the caller has the answer.
        {erqwest_response, Ref, reply, Resp} -> erqwest_nif:direct_close(Call), {ok, Resp};
        {erqwest_response, Ref, error, Err} -> erqwest_nif:direct_close(Call), {error, Err}
    after Ms ->
        %% A deadline passed, or a retry is due (its wait is this one).
        case erqwest_nif:direct_expire(Call, Ref) of
            {error, _} = Err ->
                flush(Ref),
                Err;
            Step ->
                next(Step, Ref)
        end
    end;
next({again, Call}, Ref) ->
    next(erqwest_nif:direct_poll(Call, Ref), Ref);
next(Answer, _Ref) ->
    Answer.

%% A readiness message or an answer sent before the request was dropped
%% is not left behind (nothing can come after: see native/src/direct/tasks.rs).
flush(Ref) ->
    receive
        {select, _, Ref, _} -> flush(Ref);
        {erqwest_response, Ref, _, _} -> flush(Ref)
    after 0 -> ok
    end.
