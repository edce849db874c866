%% @doc The process that owns erqwest's tokio runtime.
%%
%% Started by the `erqwest' application. It creates the runtime through
%% `erqwest_nif:start_runtime(Pid, Threads)' and publishes it in a
%% `persistent_term' for {@link get/0}. When it stops, the runtime shuts
%% down and every in-flight request receives its final `error' message
%% before `terminate/2' returns. If the runtime stops without being asked,
%% this process exits with `erqwest_runtime_failure' so that its supervisor
%% sees it.
%%
%% The number of tokio worker threads comes from the application
%% environment key `worker_threads' (a positive integer, or `auto').
-module(erqwest_runtime).
-behaviour(gen_server).

-export([start_link/0, get/0]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2, terminate/2]).

-export_type([runtime/0]).

-opaque runtime() :: reference().
%% The tokio runtime, as {@link get/0} returns it.

-define(KEY, {?MODULE, runtime}).
%% How long terminate/2 waits for the runtime to finish shutting down.
-define(STOP_WAIT, 10000).

%% @doc Starts the runtime owner, registered as `erqwest_runtime'.
%%
%% ```
%% {ok, _} = application:ensure_all_started(erqwest),
%% Pid = whereis(erqwest_runtime).
%% '''
-spec start_link() -> {ok, pid()} | ignore | {error, term()}.
start_link() ->
    gen_server:start_link({local, ?MODULE}, ?MODULE, [], []).

%% @doc The running runtime. Raises `badarg' when the application is not
%% started.
%%
%% ```
%% Runtime = erqwest_runtime:get().
%% '''
-spec get() -> runtime().
get() ->
    persistent_term:get(?KEY).

%% @private
-spec init([]) -> {ok, runtime()}.
init([]) ->
    process_flag(trap_exit, true),
    Runtime = erqwest_nif:start_runtime(self(), #{worker_threads => worker_threads()}),
    persistent_term:put(?KEY, Runtime),
    {ok, Runtime}.

%% @private
-spec handle_call(term(), gen_server:from(), runtime()) -> {reply, {error, unknown_call}, runtime()}.
handle_call(_Request, _From, Runtime) ->
    {reply, {error, unknown_call}, Runtime}.

%% @private
-spec handle_cast(term(), runtime()) -> {noreply, runtime()}.
handle_cast(_Msg, Runtime) ->
    {noreply, Runtime}.

%% @private
-spec handle_info(term(), runtime() | stopped) ->
    {noreply, runtime()} | {stop, erqwest_runtime_failure, stopped}.
handle_info(erqwest_runtime_stopped, _Runtime) ->
    %% Nobody here asked it to stop.
    erase_key(),
    {stop, erqwest_runtime_failure, stopped};
handle_info(erqwest_runtime_failure, _Runtime) ->
    erase_key(),
    {stop, erqwest_runtime_failure, stopped};
handle_info(_Other, Runtime) ->
    {noreply, Runtime}.

%% @private
-spec terminate(term(), runtime() | stopped) -> ok.
terminate(_Reason, stopped) ->
    ok;
terminate(_Reason, Runtime) ->
    erase_key(),
    ok = erqwest_nif:stop_runtime(Runtime),
    receive
        erqwest_runtime_stopped -> ok;
        erqwest_runtime_failure -> ok
    after ?STOP_WAIT -> ok
    end.

erase_key() ->
    _ = persistent_term:erase(?KEY),
    ok.

worker_threads() ->
    case application:get_env(erqwest, worker_threads, auto) of
        N when is_integer(N), N > 0 -> N;
        %% Two at least: on a 2-core machine one thread was a bottleneck
        %% (bench/README.md: +40% requests/s with two).
        _ -> max(2, erlang:system_info(schedulers_online) div 2)
    end.
