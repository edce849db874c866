%% @private
-module(erqwest_sup).
-behaviour(supervisor).

-export([start_link/0, init/1]).

-spec start_link() -> supervisor:startlink_ret().
start_link() ->
    supervisor:start_link({local, ?MODULE}, ?MODULE, []).

-spec init([]) -> {ok, {supervisor:sup_flags(), [supervisor:child_spec()]}}.
init([]) ->
    Runtime = #{
        id => erqwest_runtime,
        start => {erqwest_runtime, start_link, []},
        restart => permanent,
        %% Stopping waits for in-flight requests to receive their final error.
        shutdown => 15000,
        type => worker,
        modules => [erqwest_runtime]
    },
    %% The default client (erqwest_default) is made on the runtime: when
    %% the runtime restarts, rest_for_one makes the client again.
    Default = #{
        id => erqwest_default,
        start => {erqwest_default, start_link, []},
        restart => permanent,
        shutdown => 5000,
        type => worker,
        modules => [erqwest_default]
    },
    {ok, {#{strategy => rest_for_one, intensity => 5, period => 10}, [Runtime, Default]}}.
