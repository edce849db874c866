%% @doc One request, run on the engine a test names: the scheduler engine
%% (the "direct path": `erqwest:req/2' on a plain client, answered by NIF
%% calls on the caller's scheduler) or the runtime engine (reqwest on tokio,
%% reached through `erqwest_async:req/4').
%%
%% A Common Test suite that wants the same cases on both engines makes two
%% groups, `scheduler' and `runtime', over the same case list, puts the
%% group name in the config in `init_per_group/2' and calls
%% {@link client/2} and {@link req/3} with {@link engine/1} of the config:
%% ```
%% groups() -> [{scheduler, [], Cases}, {runtime, [], Cases}].
%% init_per_group(G, Config) -> [{engine, G} | Config].
%% a_case(Config) ->
%%     E = erqwest_engine:engine(Config),
%%     C = erqwest_engine:client(E, #{}),
%%     {error, #{code := body}} = erqwest_engine:req(E, C, #{method => get, url => Url}).
%% '''
%% Every call here is bounded: a request that neither answers nor fails
%% within its guard makes the calling test fail with `{hung, Engine, Ms}'
%% instead of hanging it, and leaves no message behind.
-module(erqwest_engine).

-export([engines/0, engine/1, client/2, req/3, req/4, guard/2]).

-type engine() :: scheduler | runtime.
-export_type([engine/0]).

%% How long a call may take, beyond its own `timeout', before it counts as hung.
-define(MARGIN, 5000).
%% The guard of a call without a `timeout' of its own.
-define(DEFAULT_GUARD, 10000).

%% @doc Both engines, as group names.
-spec engines() -> [engine()].
engines() -> [scheduler, runtime].

%% @doc The engine of a test's config (`{engine, E}', set per group).
-spec engine(list()) -> engine().
engine(Config) ->
    case lists:keyfind(engine, 1, Config) of
        {engine, E} when E =:= scheduler; E =:= runtime -> E;
        _ -> error(no_engine_in_config)
    end.

%% @doc A client for `Engine'. The runtime's client has a `resolve' entry
%% for a name nobody uses: such a client is always served by reqwest, so
%% that `erqwest:req/2' and the streaming calls on it take the runtime
%% engine too (tests of `send/2' and `read/2' need the blocking API).
-spec client(engine(), erqwest:client_opts()) -> erqwest:client().
client(scheduler, Opts) ->
    erqwest:make_client(Opts);
client(runtime, Opts) ->
    Resolve = [{<<"unused.invalid">>, {{127, 0, 0, 1}, 1}} | maps:get(resolve, Opts, [])],
    erqwest:make_client(Opts#{resolve => Resolve}).

%% @doc Runs one request with a complete response body on `Engine' and
%% returns its answer, or raises `{hung, Engine, Ms}' when it does not
%% come within the request's `timeout' plus 5 s (10 s without one).
-spec req(engine(), erqwest:client(), erqwest:req_opts()) ->
    {ok, erqwest:resp()} | {error, erqwest:err()}.
req(Engine, C, Opts) ->
    Guard = case maps:get(timeout, Opts, infinity) of
        T when is_integer(T) -> T + ?MARGIN;
        infinity -> ?DEFAULT_GUARD
    end,
    req(Engine, C, Opts, Guard).

%% @doc {@link req/3} with an explicit guard in ms.
-spec req(engine(), erqwest:client(), erqwest:req_opts(), pos_integer()) ->
    {ok, erqwest:resp()} | {error, erqwest:err()}.
req(scheduler, C, Opts, Guard) ->
    %% erqwest:req/2 blocks its caller: it runs in a process of its own so
    %% that a hang can be cut off.
    guard(fun() -> erqwest:req(C, Opts) end, Guard, scheduler);
req(runtime, C, Opts, Guard) ->
    Ref = make_ref(),
    H = erqwest_async:req(C, self(), Ref, Opts),
    receive
        {erqwest_response, Ref, reply, Resp} -> {ok, Resp};
        {erqwest_response, Ref, error, Err} -> {error, Err}
    after Guard ->
        ok = erqwest_async:cancel(H),
        %% The final message a cancel still brings.
        receive {erqwest_response, Ref, _, _} -> ok after 1000 -> ok end,
        error({hung, runtime, Guard})
    end.

%% @doc Runs `Fun' in a process of its own (which owns whatever handles it
%% makes) and returns its result, re-raising what it raises; raises
%% `{hung, guard, Ms}' and kills the process when it takes longer than `Ms'.
-spec guard(fun(() -> T), pos_integer()) -> T.
guard(Fun, Ms) -> guard(Fun, Ms, guard).

guard(Fun, Ms, Tag) ->
    Self = self(),
    Ref = make_ref(),
    {Pid, Mon} = spawn_monitor(fun() ->
        Self ! {Ref, try {ok, Fun()} catch C:R:St -> {raised, C, R, St} end}
    end),
    receive
        {Ref, {ok, Result}} ->
            demonitor(Mon, [flush]),
            Result;
        {Ref, {raised, Class, Reason, Stack}} ->
            demonitor(Mon, [flush]),
            erlang:raise(Class, Reason, Stack);
        {'DOWN', Mon, process, Pid, Reason} ->
            error({guarded_process_died, Reason})
    after Ms ->
        exit(Pid, kill),
        receive {'DOWN', Mon, process, Pid, _} -> ok end,
        receive {Ref, _} -> ok after 0 -> ok end,
        error({hung, Tag, Ms})
    end.
