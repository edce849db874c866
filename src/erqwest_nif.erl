%% @doc The NIF stubs. Use {@link erqwest} and {@link erqwest_async}
%% instead; `start_runtime/1' and `stop_runtime/1' stay callable for code
%% written against erqwest 0.2.5.
-module(erqwest_nif).

-export([start_runtime/1, start_runtime/2, stop_runtime/1]).
-export([make_client/2, close_client/1, feature/1]).
-export([req/4, req_dirty/4, send/2, send_dirty/2, finish_send/1, read/2, cancel/1]).
-export([live_resources/0]).
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
-ifdef(FAULT_INJECTION).
%% Test builds only (native/src/testing.rs, feature `fault-injection').
-export([fault_panic_nif/0, fault_panic_task/3]).
-nifs([fault_panic_nif/0, fault_panic_task/3]).
-endif.

-on_load(init/0).

-type runtime() :: erqwest_runtime:runtime().
-type client() :: erqwest:client().
-type handle() :: erqwest_async:handle().

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
-ifdef(FAULT_INJECTION).
-spec fault_panic_nif() -> no_return().
fault_panic_nif() -> ?NOT_LOADED.

-spec fault_panic_task(client(), pid(), term()) -> ok.
fault_panic_task(_Client, _Pid, _Ref) -> ?NOT_LOADED.
-endif.

-spec client_info(client()) -> erqwest:client_info().
client_info(_Client) -> ?NOT_LOADED.
