%% @doc What telemetry and test stubs cost a request that does not use
%% them (README: "Telemetry", "Stubbing erqwest in tests").
%%
%% Sequential erqwest:get/2 of nginx's `/small' from one process, on both
%% engines (the scheduler's direct path and reqwest on the runtime), in
%% rounds that alternate the configurations so that drift on a shared
%% machine hits them all alike:
%%
%% <ul>
%% <li>`before': erqwest.erl and erqwest_async.erl as they were before the
%%   hooks (BENCH_HOOKS_BEFORE, a directory with their .beam files, built
%%   from `git show 52ac014:src/...'); telemetry not running;</li>
%% <li>`absent': telemetry stopped and its module unloaded, as in a node
%%   that never had it;</li>
%% <li>`running': telemetry running, no handler for erqwest's events;</li>
%% <li>`handler': a no-op handler attached to start and stop;</li>
%% <li>`stubs_on': telemetry unloaded, the node's stub flag set (a stub on
%%   another client), so every request looks the client up in the stub
%%   table. erqwest_test never clears the flag; this bench does, so that
%%   the rounds can alternate.</li>
%% </ul>
%%
%% ```
%% make nif && rebar3 compile
%% mkdir -p _build/bench-hooks && erlc -o _build/bench-hooks bench/bench_nginx.erl bench/bench_hooks.erl
%% mkdir -p _build/bench-hooks/before && for m in erqwest erqwest_async; do
%%     git show 52ac014:src/$m.erl > _build/bench-hooks/before/$m.erl; done
%% erlc -o _build/bench-hooks/before _build/bench-hooks/before/*.erl
%% BENCH_HOOKS_BEFORE=_build/bench-hooks/before erl -noshell -pa _build/default/lib/erqwest/ebin _build/bench-hooks \
%%     $(bash scripts/peers.sh)/telemetry/ebin -eval 'bench_hooks:main(), halt().'
%% '''
%% BENCH_HOOKS_N (default 4000) requests per round, BENCH_HOOKS_ROUNDS
%% (default 25) rounds; the table gives the median and the fastest round
%% per configuration. Then the hooks alone, without I/O, in ns per call
%% (the fastest of 20 batches; `empty' is the loop alone): the checks a
%% request makes, and the span (start and stop events, metadata) around
%% an instant answer.
-module(bench_hooks).

-export([main/0, noop/4]).

-spec main() -> ok.
main() ->
    N = list_to_integer(os:getenv("BENCH_HOOKS_N", "4000")),
    Rounds = list_to_integer(os:getenv("BENCH_HOOKS_ROUNDS", "25")),
    {ok, _} = application:ensure_all_started(erqwest),
    %% Stopping and starting telemetry each round is not news.
    ok = logger:set_primary_config(level, warning),
    code:ensure_loaded(telemetry) =:= {module, telemetry}
        orelse error("telemetry is not on the code path (PEERS_LIB, scripts/peers.sh)"),
    Dir = string:trim(os:cmd("mktemp -d")),
    Srv = bench_nginx:start(#{dir => Dir, files => [], body_temp => filename:join(Dir, "tmp")}),
    try
        Url = bench_nginx:url(Srv, http, "/small"),
        Engines = [{direct, erqwest:make_client()},
                   {runtime, erqwest:make_client(
                                 #{resolve => [{<<"unused.invalid">>, {{127, 0, 0, 1}, 1}}]})}],
        Configs = case os:getenv("BENCH_HOOKS_BEFORE", "") of
            "" -> [absent, running, handler, stubs_on];
            _ -> [before, absent, running, handler, stubs_on]
        end,
        %% A stub on another client; the flag it sets is toggled per round.
        ok = erqwest_test:stub(bench_hooks_other_client, fun(_) -> #{status => 200} end),
        _ = [loop(C, Url, 2000) || {_, C} <- Engines],
        Samples = [{Engine, Config, per_request(C, Url, N, Config)}
                   || _ <- lists:seq(1, Rounds), {Engine, C} <- Engines, Config <- Configs],
        Direct = proplists:get_value(direct, Engines),
        Micro = micro(Direct, Url, [absent, running, handler, stubs_on]),
        report(N, Rounds, Samples),
        report_micro(Micro)
    after
        bench_nginx:stop(Srv)
    end.

%% Microseconds per request under `Config'.
per_request(C, Url, N, Config) ->
    setup(Config),
    T0 = erlang:monotonic_time(),
    loop(C, Url, N),
    T1 = erlang:monotonic_time(),
    Config =:= before andalso swap(code:lib_dir(erqwest, ebin)),
    erlang:convert_time_unit(T1 - T0, native, nanosecond) / N / 1000.

%% Loads erqwest and erqwest_async from `Dir'.
swap(Dir) ->
    [begin
         _ = code:purge(M),
         {module, M} = code:load_abs(filename:join(Dir, atom_to_list(M)))
     end || M <- [erqwest, erqwest_async]],
    true.

setup(before) ->
    stub_flag(false),
    unload_telemetry(),
    swap(os:getenv("BENCH_HOOKS_BEFORE")),
    ok;
setup(absent) ->
    stub_flag(false),
    unload_telemetry();
setup(running) ->
    stub_flag(false),
    {module, telemetry} = code:ensure_loaded(telemetry),
    {ok, _} = application:ensure_all_started(telemetry),
    _ = telemetry:detach(bench_hooks),
    ok;
setup(handler) ->
    stub_flag(false),
    {module, telemetry} = code:ensure_loaded(telemetry),
    {ok, _} = application:ensure_all_started(telemetry),
    _ = telemetry:detach(bench_hooks),
    ok = telemetry:attach_many(bench_hooks, [[erqwest, request, start], [erqwest, request, stop]],
                               fun ?MODULE:noop/4, []);
setup(stubs_on) ->
    unload_telemetry(),
    stub_flag(true).

%% erqwest_test's node-wide flag, which it never clears itself.
stub_flag(true) -> persistent_term:put({erqwest_test, active}, true);
stub_flag(false) -> _ = persistent_term:erase({erqwest_test, active}), ok.

%% ns per call of the request path's checks and of a span.
micro(C, Url, Configs) ->
    Opts = #{method => get, url => Url},
    Answer = fun(_, _, _) -> {ok, #{status => 200, headers => []}} end,
    M = 1000000,
    [{none, empty, ns(M, fun() -> ok end)} || lists:member(absent, Configs)] ++
    lists:append(
      [begin
           setup(Config),
           [{Config, checks, ns(M, fun() -> erqwest_telemetry:enabled(),
                                            erqwest_test:stubbed(C) end)}]
           ++ [{Config, span, ns(M div 10, fun() -> erqwest_telemetry:sync(C, Opts, Answer) end)}
               || Config =/= absent, Config =/= stubs_on]
       end || Config <- Configs]).

%% The fastest of 20 batches: other work on the machine only ever adds.
ns(M, F) ->
    Batch = M div 20,
    lists:min([begin
                   T0 = erlang:monotonic_time(),
                   times(Batch, F),
                   erlang:convert_time_unit(erlang:monotonic_time() - T0, native, nanosecond) / Batch
               end || _ <- lists:seq(1, 20)]).

times(0, _F) -> ok;
times(M, F) -> _ = F(), times(M - 1, F).

report_micro(Micro) ->
    io:format("~nthe hooks alone, ns per call~n"),
    [io:format("~-8s ~-7s ~8.1f~n", [Config, What, Ns]) || {Config, What, Ns} <- Micro],
    ok.

%% As in a node that never had telemetry: the module is not loaded.
unload_telemetry() ->
    _ = application:stop(telemetry),
    _ = code:purge(telemetry),
    _ = code:delete(telemetry),
    _ = code:purge(telemetry),
    false = erlang:module_loaded(telemetry),
    ok.

-spec noop(term(), term(), term(), term()) -> ok.
noop(_, _, _, _) -> ok.

loop(_C, _Url, 0) ->
    ok;
loop(C, Url, N) ->
    {ok, #{status := 200}} = erqwest:get(C, Url),
    loop(C, Url, N - 1).

report(N, Rounds, Samples) ->
    io:format("~b sequential erqwest:get/2 of nginx /small per round, ~b rounds, "
              "us/request: median (fastest round)~n", [N, Rounds]),
    io:format("~-8s ~14s ~14s ~14s ~14s ~14s~n", [engine, before, absent, running, handler, stubs_on]),
    [begin
         Med = fun(Config) ->
             case lists:sort([V || {E, C, V} <- Samples, E =:= Engine, C =:= Config]) of
                 [] -> "-";
                 Vs -> io_lib:format("~.1f (~.1f)", [lists:nth((length(Vs) + 1) div 2, Vs), hd(Vs)])
             end
         end,
         io:format("~-8s ~14s ~14s ~14s ~14s ~14s~n",
                   [Engine, Med(before), Med(absent), Med(running), Med(handler), Med(stubs_on)])
     end || Engine <- [direct, runtime]],
    ok.
