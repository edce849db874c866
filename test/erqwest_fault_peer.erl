%% @doc A peer VM running erqwest built with the `fault-injection' feature,
%% for the panic cases of erqwest_fault_SUITE.
%%
%% init/1 builds the NIF with `cargo build --features fault-injection'
%% (only the erqwest_nif crate is rebuilt; the dependencies are shared with
%% the normal build), compiles `erqwest_nif' with `FAULT_INJECTION' defined,
%% lays both out as an `erqwest' application under the suite's priv_dir,
%% and starts a peer VM on it. The panics then happen in the peer: if one
%% escaped, only the peer would die, and the case would say so.
-module(erqwest_fault_peer).

-include_lib("common_test/include/ct.hrl").

-export([init/1, stop/1, run/2]).
-export([panic_in_nif_call/0, panic_in_request_task/0]).

%% @doc For init_per_group: builds and starts the peer, or skips the group
%% when cargo is not there.
-spec init(list()) -> list() | {skip, term()}.
init(Config) ->
    Root = repo_root(),
    case os:find_executable("cargo") of
        false -> {skip, "cargo is needed to build the fault-injection NIF"};
        _ -> build_and_start(Root, Config)
    end.

build_and_start(Root, Config) ->
    Target = case os:getenv("CARGO_TARGET_DIR") of
        false -> filename:join([Root, "native", "target"]);
        Dir -> Dir
    end,
    Cmd = lists:flatten(io_lib:format(
        "cd '~s' && cargo build --quiet --release --features fault-injection "
        "--manifest-path native/Cargo.toml 2>&1; echo \"rc=$?\"", [Root])),
    Out = os:cmd(Cmd, #{max_size => 1000000}),
    case string:find(Out, "rc=0") of
        nomatch -> ct:fail({cargo_failed, Out});
        _ -> ok
    end,
    App = filename:join(?config(priv_dir, Config), "fault/erqwest"),
    Ebin = filename:join(App, "ebin"),
    Priv = filename:join(App, "priv"),
    ok = filelib:ensure_dir(filename:join(Ebin, "x")),
    ok = filelib:ensure_dir(filename:join(Priv, "x")),
    %% The application as built, except erqwest_nif, recompiled with the
    %% fault-injection stubs.
    Lib = code:lib_dir(erqwest),
    [{ok, _} = file:copy(F, filename:join(Ebin, filename:basename(F)))
     || F <- filelib:wildcard(filename:join([Lib, "ebin", "*"])),
        filename:basename(F) =/= "erqwest_nif.beam"],
    {ok, erqwest_nif} = compile:file(filename:join([Root, "src", "erqwest_nif.erl"]),
                                     [{d, 'FAULT_INJECTION'}, {outdir, Ebin}, report]),
    {ok, _} = file:copy(filename:join([Target, "release", "liberqwest_nif.so"]),
                        filename:join(Priv, "liberqwest_nif.so")),
    TestDir = filename:dirname(code:which(?MODULE)),
    %% The injected panics print a message; a backtrace each is just noise.
    {ok, Peer} = case peer:start(#{connection => standard_io,
                                   env => [{"RUST_BACKTRACE", "0"}],
                                   args => ["-pa", Ebin, "-pa", TestDir]}) of
        {ok, P} -> {ok, P};
        {ok, P, _} -> {ok, P}
    end,
    %% The peer's erqwest is the fault-injection build, not the one under test.
    Ebin = peer:call(Peer, filename, dirname, [code_which(Peer, erqwest_nif)]),
    {ok, _} = peer:call(Peer, application, ensure_all_started, [erqwest]),
    [{fault_peer, Peer} | Config].

code_which(Peer, Mod) ->
    peer:call(Peer, code, which, [Mod]).

-spec stop(list()) -> ok.
stop(Config) ->
    case ?config(fault_peer, Config) of
        undefined -> ok;
        Peer -> peer:stop(Peer)
    end.

%% @doc Runs a check in the peer; fails the case unless it returns `ok'.
%% The peer must still be alive afterwards.
-spec run(list(), fun(() -> ok)) -> ok.
run(Config, Fun) ->
    Peer = ?config(fault_peer, Config),
    {module, M} = erlang:fun_info(Fun, module),
    {name, F} = erlang:fun_info(Fun, name),
    case peer:call(Peer, M, F, [], 60000) of
        ok -> ok;
        Other -> ct:fail({in_peer, Other})
    end,
    %% Still alive, still answering.
    [_ | _] = peer:call(Peer, erlang, processes, []),
    ok.

%%% Run in the peer

%% @doc A panic in a NIF call is an exception in the caller; the VM and
%% erqwest go on.
-spec panic_in_nif_call() -> ok | term().
panic_in_nif_call() ->
    Runtime = whereis(erqwest_runtime),
    Result = try erqwest_nif:fault_panic_nif() of
        V -> {returned, V}
    catch Class:Reason -> {Class, Reason}
    end,
    case Result of
        {error, nif_panicked} -> still_works(Runtime);
        Other -> {unexpected, Other}
    end.

%% @doc A panic in a task holding a request's replier: the caller gets
%% exactly one final `error' with code `unknown'; the runtime goes on.
-spec panic_in_request_task() -> ok | term().
panic_in_request_task() ->
    Runtime = whereis(erqwest_runtime),
    C = erqwest:make_client(),
    Ref = make_ref(),
    ok = erqwest_nif:fault_panic_task(C, self(), Ref),
    receive
        {erqwest_response, Ref, error, #{code := unknown, reason := Reason}} ->
            receive
                {erqwest_response, Ref, _, _} = M -> {second_message, M}
            after 100 ->
                true = is_binary(Reason),
                still_works(Runtime)
            end;
        Other ->
            {unexpected, Other}
    after 10000 ->
        no_final_message
    end.

still_works(Runtime) ->
    {ok, S} = erqwest_fault_server:start(echo),
    C = erqwest:make_client(),
    Result = erqwest:post(C, erqwest_fault_server:url(S, "/after-panic"), #{body => <<"alive">>}),
    erqwest_fault_server:stop(S),
    case {Result, whereis(erqwest_runtime)} of
        {{ok, #{status := 200, body := <<"alive">>}}, Runtime} -> ok;
        Other -> {not_working_after_panic, Other}
    end.

%% The repository: rebar3 links _build/test/lib/erqwest/src to it.
repo_root() ->
    case os:getenv("ERQWEST_ROOT") of
        false ->
            Lib = code:lib_dir(erqwest),
            case file:read_link(filename:join(Lib, "src")) of
                {ok, Target} ->
                    filename:dirname(normalize(filename:absname(Target, Lib)));
                {error, _} ->
                    Lib
            end;
        Root ->
            Root
    end.

normalize(Path) ->
    normalize(filename:split(Path), []).
normalize([], Acc) -> filename:join(lists:reverse(Acc));
normalize([".." | T], [_ | Acc]) -> normalize(T, Acc);
normalize(["." | T], Acc) -> normalize(T, Acc);
normalize([H | T], Acc) -> normalize(T, [H | Acc]).
