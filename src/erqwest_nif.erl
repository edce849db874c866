%% @private The NIF stubs, internal: use {@link erqwest} and
%% {@link erqwest_async}. `start_runtime/1' and `stop_runtime/1' stay
%% callable for code written against erqwest 0.2.5 (see
%% {@link erqwest_runtime}).
-module(erqwest_nif).

-export([start_runtime/1, start_runtime/2, stop_runtime/1]).
-export([make_client/2, close_client/1, feature/1]).
-export([req/4, req_dirty/4, send/2, send_dirty/2, finish_send/1, read/2, cancel/1]).
-export([live_resources/0]).
%% Plain HTTP/1.1 on the caller's scheduler (native/src/direct/).
-export([direct_req/3, direct_poll/2, direct_expire/2, direct_close/1]).
-nifs([direct_req/3, direct_poll/2, direct_expire/2, direct_close/1]).
%% Concurrency limits (native/src/resilience/).
-export([client_info/1]).
-nifs([client_info/1]).

-nifs([start_runtime/1, start_runtime/2, stop_runtime/1, make_client/2, close_client/1,
       feature/1, req/4, req_dirty/4, send/2, send_dirty/2, finish_send/1, read/2,
       cancel/1, live_resources/0]).

%% Long-running operations (erqwest_operation).
-export([start_operation/6, start_operation_dirty/6, operation_poll/1, operation_cancel/1,
         operation_info/1, live_operations/0]).
-nifs([start_operation/6, start_operation_dirty/6, operation_poll/1, operation_cancel/1,
       operation_info/1, live_operations/0]).
%% Event streams (erqwest_events).
-export([events_open/5, events_open_dirty/5, events_active/2, events_close/1, live_events/0,
         events_parse/3]).
-nifs([events_open/5, events_open_dirty/5, events_active/2, events_close/1, live_events/0,
       events_parse/3]).
%% Next-page URLs (erqwest_pages; native/src/link.rs).
-export([link_next/2, link_next_dirty/2, url_resolve/2, url_resolve_dirty/2]).
-nifs([link_next/2, link_next_dirty/2, url_resolve/2, url_resolve_dirty/2]).
%% The JSON codec (erqwest_json).
-export([json_encode/1, json_encode_dirty/1, json_decode/2, json_decode_dirty/2]).
-nifs([json_encode/1, json_encode_dirty/1, json_decode/2, json_decode_dirty/2]).
-ifdef(FAULT_INJECTION).
%% Test builds only (native/src/testing.rs, feature `fault-injection').
-export([fault_panic_nif/0, fault_panic_task/3]).
-nifs([fault_panic_nif/0, fault_panic_task/3]).
-endif.

-on_load(init/0).

-type runtime() :: erqwest_runtime:runtime().
-type client() :: erqwest:client().
-type handle() :: erqwest_async:handle().
-type direct_call() :: erqwest_direct:call().
-type direct_step() :: {ok, erqwest:resp()} | {error, erqwest:err()}
                     | {wait, direct_call(), timeout()} | {again, direct_call()}.

-define(NOT_LOADED, erlang:nif_error({not_loaded, ?MODULE})).

init() ->
    Priv = case code:priv_dir(erqwest) of
        {error, bad_name} ->
            %% Loaded from a bare ebin directory: priv is its sibling.
            filename:join(filename:dirname(filename:dirname(code:which(?MODULE))), "priv");
        Dir ->
            Dir
    end,
    erlang:load_nif(filename:join(Priv, "liberqwest_nif"), 0).

%% @doc Starts a runtime with one worker thread; `Owner' receives
%% `erqwest_runtime_stopped' (or `erqwest_runtime_failure') when it ends.
-spec start_runtime(pid()) -> runtime().
start_runtime(_Owner) -> ?NOT_LOADED.

%% @doc Starts a runtime: `#{worker_threads => pos_integer()}'.
-spec start_runtime(pid(), #{worker_threads => pos_integer()}) -> runtime().
start_runtime(_Owner, _Opts) -> ?NOT_LOADED.

-spec stop_runtime(runtime()) -> ok.
stop_runtime(_Runtime) -> ?NOT_LOADED.

-spec make_client(runtime(), erqwest:client_opts()) -> client() | {error, binary()}.
make_client(_Runtime, _Opts) -> ?NOT_LOADED.

-spec close_client(client()) -> ok.
close_client(_Client) -> ?NOT_LOADED.

-spec feature(atom()) -> boolean().
feature(_Name) -> ?NOT_LOADED.

-spec req(client(), pid(), term(), erqwest:req_opts()) -> handle().
req(_Client, _Pid, _Ref, _Opts) -> ?NOT_LOADED.

%% @doc {@link req/4} on a dirty scheduler, for list bodies and long header lists.
-spec req_dirty(client(), pid(), term(), erqwest:req_opts()) -> handle().
req_dirty(_Client, _Pid, _Ref, _Opts) -> ?NOT_LOADED.

%% @private Starts a request on the direct path (erqwest_direct), or answers
%% `fallback' when the request is not for it.
-spec direct_req(client(), reference(), erqwest:req_opts()) -> direct_step() | fallback.
direct_req(_Client, _Ref, _Opts) -> ?NOT_LOADED.

%% @private Moves a direct request on after a message for it came.
-spec direct_poll(direct_call(), reference()) -> direct_step().
direct_poll(_Call, _Ref) -> ?NOT_LOADED.

%% @private The wait of a direct request ran out: its timeout error, or more waiting.
-spec direct_expire(direct_call(), reference()) -> direct_step().
direct_expire(_Call, _Ref) -> ?NOT_LOADED.

%% @private Ends a direct request answered by message (its place in the limits back now).
-spec direct_close(direct_call()) -> ok.
direct_close(_Call) -> ?NOT_LOADED.

-spec send(handle(), iodata()) -> ok | finished.
send(_Handle, _Data) -> ?NOT_LOADED.

-spec send_dirty(handle(), iodata()) -> ok | finished.
send_dirty(_Handle, _Data) -> ?NOT_LOADED.

-spec finish_send(handle()) -> ok | finished.
finish_send(_Handle) -> ?NOT_LOADED.

-spec read(handle(), erqwest:read_opts()) -> ok | finished.
read(_Handle, _Opts) -> ?NOT_LOADED.

%% @doc `ok' when a final message is still to come, `finished' once it was delivered.
-spec cancel(handle()) -> ok | finished.
cancel(_Handle) -> ?NOT_LOADED.

%% @doc `{LiveHandles, LiveRequestTasks}', for leak checks.
-spec live_resources() -> {non_neg_integer(), non_neg_integer()}.
live_resources() -> ?NOT_LOADED.

%%% Long-running operations (erqwest_operation).

-type op_handle() :: erqwest_operation:handle().

%% @doc Starts an operation; `auto' polls on timers, `manual' on {@link operation_poll/1}.
-spec start_operation(client(), pid(), term(), erqwest:req_opts(), erqwest_operation:op_opts(),
                      auto | manual) -> op_handle().
start_operation(_Client, _Pid, _Ref, _ReqOpts, _OpOpts, _Mode) -> ?NOT_LOADED.

%% @doc {@link start_operation/6} on a dirty scheduler, for list bodies and long header lists.
-spec start_operation_dirty(client(), pid(), term(), erqwest:req_opts(),
                            erqwest_operation:op_opts(), auto | manual) -> op_handle().
start_operation_dirty(_Client, _Pid, _Ref, _ReqOpts, _OpOpts, _Mode) -> ?NOT_LOADED.

%% @doc One poll of a manual operation; `finished' once its final message was sent.
-spec operation_poll(op_handle()) -> ok | finished.
operation_poll(_Op) -> ?NOT_LOADED.

-spec operation_cancel(op_handle()) -> ok | finished.
operation_cancel(_Op) -> ?NOT_LOADED.

-spec operation_info(op_handle()) -> erqwest_operation:info().
operation_info(_Op) -> ?NOT_LOADED.

%% @doc Operation tasks alive, for leak checks.
-spec live_operations() -> non_neg_integer().
live_operations() -> ?NOT_LOADED.

%%% Event streams (erqwest_events).

-type ev_handle() :: erqwest_events:handle().

-spec events_open(client(), pid(), term(), erqwest:req_opts(), erqwest_events:opts()) ->
          ev_handle().
events_open(_Client, _Pid, _Ref, _ReqOpts, _Opts) -> ?NOT_LOADED.

%% @doc {@link events_open/5} on a dirty scheduler, for list bodies and long header lists.
-spec events_open_dirty(client(), pid(), term(), erqwest:req_opts(), erqwest_events:opts()) ->
          ev_handle().
events_open_dirty(_Client, _Pid, _Ref, _ReqOpts, _Opts) -> ?NOT_LOADED.

-spec events_active(ev_handle(), erqwest_events:credit()) -> ok | finished.
events_active(_Handle, _Credit) -> ?NOT_LOADED.

-spec events_close(ev_handle()) -> ok | finished.
events_close(_Handle) -> ?NOT_LOADED.

%% @doc `{LiveHandles, LiveTasks}' of event streams, for leak checks.
-spec live_events() -> {non_neg_integer(), non_neg_integer()}.
live_events() -> ?NOT_LOADED.

%% @doc Runs the stream parser over chunks at once (for property tests).
-spec events_parse(sse | ndjson | lines, [binary()], pos_integer()) ->
          [{binary(), binary(), binary() | undefined}] | [binary()]
          | {error, line_too_long | event_too_long}.
events_parse(_Format, _Chunks, _MaxLine) -> ?NOT_LOADED.
%%% Next-page URLs (erqwest_pages).

-type resolved() :: {ok, Url :: binary(), Origin :: binary()} | {error, binary()}.

%% @doc The target of the first `rel="next"' link in these `Link' header
%% values, resolved against the page's URL; `none' without one.
-spec link_next([binary()], binary()) -> resolved() | none.
link_next(_Values, _Base) -> ?NOT_LOADED.

%% @doc {@link link_next/2} on a dirty scheduler, for long headers.
-spec link_next_dirty([binary()], binary()) -> resolved() | none.
link_next_dirty(_Values, _Base) -> ?NOT_LOADED.

%% @doc A reference resolved against a page's URL (RFC 3986 section 5).
-spec url_resolve(binary(), binary()) -> resolved().
url_resolve(_Base, _Ref) -> ?NOT_LOADED.

%% @doc {@link url_resolve/2} on a dirty scheduler, for long URLs.
-spec url_resolve_dirty(binary(), binary()) -> resolved().
url_resolve_dirty(_Base, _Ref) -> ?NOT_LOADED.

%%% The JSON codec (erqwest_json).

%% @doc `{ok, Json}', or `{error, {Path, Reason}}' for a term with no JSON form.
-spec json_encode(term()) -> {ok, binary()} | {error, {binary(), binary()}}.
json_encode(_Term) -> ?NOT_LOADED.

-spec json_encode_dirty(term()) -> {ok, binary()} | {error, {binary(), binary()}}.
json_encode_dirty(_Term) -> ?NOT_LOADED.

%% @doc `{ok, Term}', or `{error, {Offset, Reason}}'; JSON `null' becomes `Null'.
-spec json_decode(binary(), atom()) ->
    {ok, erqwest_json:json()} | {error, {non_neg_integer(), binary()}}.
json_decode(_Json, _Null) -> ?NOT_LOADED.

-spec json_decode_dirty(binary(), atom()) ->
    {ok, erqwest_json:json()} | {error, {non_neg_integer(), binary()}}.
json_decode_dirty(_Json, _Null) -> ?NOT_LOADED.
-ifdef(FAULT_INJECTION).
-spec fault_panic_nif() -> no_return().
fault_panic_nif() -> ?NOT_LOADED.

-spec fault_panic_task(client(), pid(), term()) -> ok.
fault_panic_task(_Client, _Pid, _Ref) -> ?NOT_LOADED.
-endif.

-spec client_info(client()) -> erqwest:client_info().
client_info(_Client) -> ?NOT_LOADED.
