%% @doc The message-based API: every function returns at once and the
%% replies arrive as messages.
%%
%% They go to the `Pid' given to {@link req/4}, tagged with its `Ref'
%% (any term).
%%
%% Complete bodies get exactly one message:
%% ```
%% {erqwest_response, Ref, reply, erqwest:resp()}
%% {erqwest_response, Ref, error, erqwest:err()}
%% '''
%% With `body => stream' the first message is `{erqwest_response, Ref, next}'
%% (or an `error'). Answer each `next' with {@link send/2} (answered by
%% `next' when the connection can take more, `reply' when the server
%% answered early, or `error') and end with {@link finish_send/1}
%% (answered by `reply' or `error').
%%
%% With `response_body => stream' the `reply' carries no `body'; each
%% {@link read/2} is answered by `{erqwest_response, Ref, chunk, Data}',
%% by the final `{erqwest_response, Ref, fin, Data}', or by an `error'.
%%
%% An `error' is always the last message of a request, and {@link cancel/1}
%% at any stage still leaves exactly one final message.
%%
%% These functions emit no `telemetry' events: start a request with
%% {@link erqwest_telemetry:async_req/4} and end it with
%% {@link erqwest_telemetry:async_stop/2} for them. A client stubbed with
%% {@link erqwest_test:stub/2} answers with the same messages.
%%
%% Example:
%% ```
%% H = erqwest_async:req(Client, self(), my_ref,
%%                       #{method => get, url => <<"http://127.0.0.1:8080/">>}),
%% receive {erqwest_response, my_ref, reply, #{status := 200}} -> ok end.
%% '''
-module(erqwest_async).

-export([req/4, send/2, finish_send/1, read/2, cancel/1]).
-export([nif_send/2, nif_finish_send/1, nif_read/2, nif_cancel/1]).

-export_type([handle/0]).

%% A NIF resource, or a stub's handle (erqwest_test).
-opaque handle() :: reference() | erqwest_test:handle().
%% A request in flight, for {@link send/2}, {@link read/2} and {@link cancel/1}:
%% `H = erqwest_async:req(C, self(), Ref, Req)'.


%% @doc Starts a request. Raises `badarg' for an unknown option key or an
%% ill-typed value; problems with the contents (a URL that does not parse,
%% a header name that is not a token, a body that is not iodata) arrive as
%% the `error' message.
%%
%% ```
%% Ref = make_ref(),
%% _ = erqwest_async:req(C, self(), Ref, #{method => get, url => <<"http://127.0.0.1:8080/">>}),
%% receive
%%     {erqwest_response, Ref, reply, #{status := Status}} -> Status;
%%     {erqwest_response, Ref, error, #{code := Code}} -> Code
%% end.
%% '''
-spec req(erqwest:client() | atom(), pid(), term(), erqwest:req_opts()) -> handle().
req(Client, Pid, Ref, Opts) ->
    case erqwest_test:stubbed(Client) of
        false -> start(Client, Pid, Ref, Opts);
        true -> erqwest_test:req(Client, Pid, Ref, Opts)
    end.

start(Client, Pid, Ref, Opts) ->
    C = erqwest:get_client(Client),
    try
        case erqwest_dirty:request(Ref, Opts) of
            true -> erqwest_nif:req_dirty(C, Pid, Ref, Opts);
            false -> erqwest_nif:req(C, Pid, Ref, Opts)
        end
    catch
        %% A composing option (json, query, multipart ...) says what was
        %% wrong with it: still `badarg', with the reason as error info.
        error:{badarg, Cause} when is_binary(Cause) ->
            erlang:error(badarg, [Client, Pid, Ref, Opts],
                         [{error_info, #{module => erqwest, cause => Cause}}])
    end.

%% @doc Streams a chunk of the request body; see the module doc for the
%% messages that answer it. Raises `badarg' after {@link finish_send/1}
%% (and for a request made without `body => stream').
%% messages that answer it.
%%
%% ```
%% H = erqwest_async:req(C, self(), Ref, #{method => post, url => Url, body => stream}),
%% receive {erqwest_response, Ref, next} -> ok end,
%% ok = erqwest_async:send(H, <<"chunk">>),
%% receive {erqwest_response, Ref, next} -> ok end.
%% '''
-spec send(handle(), iodata()) -> ok.
send(Handle, Data) ->
    _ = nif_send(Handle, Data),
    ok.

%% @doc Completes the request body; the next message is `reply' or `error'.
%% Raises `badarg' when called a second time.
%%
%% ```
%% ok = erqwest_async:finish_send(H),
%% receive {erqwest_response, Ref, reply, Resp} -> Resp end.
%% '''
-spec finish_send(handle()) -> ok.
finish_send(Handle) ->
    _ = nif_finish_send(Handle),
    ok.

%% @doc Reads a chunk of the response body, waiting until at least `length'
%% bytes arrived (default 8 MB; more may be returned) or `period' ms passed
%% (default `infinity'). Answered by `chunk', the final `fin', or `error'.
%%
%% ```
%% H = erqwest_async:req(C, self(), Ref, #{method => get, url => Url, response_body => stream}),
%% receive {erqwest_response, Ref, reply, _Head} -> ok end,
%% ok = erqwest_async:read(H, #{length => 65536}),
%% receive
%%     {erqwest_response, Ref, chunk, Data} -> {more, Data};
%%     {erqwest_response, Ref, fin, Data} -> {done, Data}
%% end.
%% '''
-spec read(handle(), erqwest:read_opts()) -> ok.
read(Handle, Opts) ->
    _ = nif_read(Handle, Opts),
    ok.

%% @doc Cancels the request at any stage. A final message still always
%% comes: `error' with code `cancelled', another error, or a reply that was
%% already on its way. Does nothing after the final message.
%%
%% ```
%% ok = erqwest_async:cancel(H),
%% receive {erqwest_response, Ref, error, #{code := cancelled}} -> ok end.
%% '''
-spec cancel(handle()) -> ok.
cancel(Handle) ->
    _ = nif_cancel(Handle),
    ok.

%%% The NIF's answers (`ok' or `finished'), for erqwest's synchronous API;
%%% a stub's handle is answered by erqwest_test.

%% @private
-spec nif_send(handle(), iodata()) -> ok | finished.
nif_send(Handle, Data) when is_reference(Handle), is_binary(Data) ->
    erqwest_nif:send(Handle, Data);
nif_send(Handle, Data) when is_reference(Handle) ->
    erqwest_nif:send_dirty(Handle, Data);
nif_send(Handle, Data) ->
    erqwest_test:send(Handle, Data).

%% @private
-spec nif_finish_send(handle()) -> ok | finished.
nif_finish_send(Handle) when is_reference(Handle) -> erqwest_nif:finish_send(Handle);
nif_finish_send(Handle) -> erqwest_test:finish_send(Handle).

%% @private
-spec nif_read(handle(), erqwest:read_opts()) -> ok | finished.
nif_read(Handle, Opts) when is_reference(Handle) -> erqwest_nif:read(Handle, Opts);
nif_read(Handle, Opts) -> erqwest_test:read(Handle, Opts).

%% @private
-spec nif_cancel(handle()) -> ok | finished.
nif_cancel(Handle) when is_reference(Handle) -> erqwest_nif:cancel(Handle);
nif_cancel(Handle) -> erqwest_test:cancel(Handle).
