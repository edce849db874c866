%% @doc The default client: the one `erqwest:get(Url)', `erqwest:req(Opts)'
%% and the other calls without a client use.
%%
%% The `erqwest' application starts it, registered under the name
%% `erqwest_default' (so `erqwest:get(erqwest_default, Url)' is the same
%% call as `erqwest:get(Url)'), and makes it again whenever the
%% application starts again. Its options come from the application
%% environment key `default_client':
%%
%% ```
%% %% sys.config
%% [{erqwest, [{default_client, #{timeout => 30000, proxy => no_proxy}}]}].
%% '''
%%
%% ```
%% # config/config.exs
%% config :erqwest, default_client: [timeout: 30_000, retry: [max_retries: 2]]
%% '''
%%
%% A map is taken as {@link erqwest:client_opts()} as they are. A list is
%% taken as the keyword options of `Erqwest.make_client/1' when erqwest's
%% Elixir layer is loaded (so Elixir's defaults apply: retries on, JSON
%% bodies decoded), and as a proplist of `client_opts()' otherwise. With
%% nothing set the client has erqwest's defaults: the system proxy
%% settings, redirects followed (up to 10), no timeout, no retries, bodies
%% left as binaries.
%%
%% Options that do not make a client stop the application from starting,
%% with `{bad_default_client, Opts}' as the reason. To change the client
%% at run time, register another one under the same name:
%% `erqwest:start_client(erqwest_default, Opts)'.
%%
%% ```
%% 1> application:ensure_all_started(erqwest).
%% 2> {ok, #{status := 200}} = erqwest:get(<<"http://127.0.0.1:8080/">>).
%% 3> erqwest_default:options().
%% #{}
%% '''
-module(erqwest_default).
-behaviour(gen_server).

-export([name/0, options/0, start_link/0]).
-export([init/1, handle_call/3, handle_cast/2, terminate/2]).

-define(NAME, erqwest_default).

%% @doc The name the default client is registered under: `erqwest_default'.
%%
%% ```
%% 1> erqwest:client_info(erqwest_default:name()).
%% #{hosts => #{},in_flight => 0,queued => 0}
%% '''
-spec name() -> erqwest_default.
name() -> ?NAME.

%% @doc The options the default client is made with, read from the
%% application environment (`default_client') as described above.
%%
%% ```
%% 1> application:set_env(erqwest, default_client, #{timeout => 5000}).
%% 2> erqwest_default:options().
%% #{timeout => 5000}
%% '''
-spec options() -> erqwest:client_opts().
options() ->
    case application:get_env(erqwest, default_client, #{}) of
        Opts when is_map(Opts) -> Opts;
        Opts when is_list(Opts) -> from_list(Opts);
        Opts -> erlang:error({bad_default_client, Opts})
    end.

%% A keyword list from Elixir's config goes through Elixir's option
%% checks, so that `config :erqwest, default_client: [...]' reads like
%% `Erqwest.make_client/1'. The module is called through a variable:
%% Dialyzer does not know the Elixir layer.
from_list(Opts) ->
    Elixir = 'Elixir.Erqwest.Options',
    case code:ensure_loaded(Elixir) of
        {module, Elixir} -> Elixir:client(Opts);
        _ -> maps:from_list(Opts)
    end.

%% @private The supervisor's child: it registers the client when it
%% starts and unregisters it when it stops.
-spec start_link() -> {ok, pid()} | {error, term()}.
start_link() ->
    gen_server:start_link({local, ?NAME}, ?MODULE, [], []).

%% @private
-spec init([]) -> {ok, atom()} | {stop, term()}.
init([]) ->
    %% Trapping exits makes the supervisor's shutdown run terminate/2.
    process_flag(trap_exit, true),
    Env = application:get_env(erqwest, default_client, #{}),
    try erqwest:start_client(?NAME, options()) of
        ok -> {ok, ?NAME}
    catch
        error:_ -> {stop, {bad_default_client, Env}}
    end.

%% @private
-spec handle_call(term(), gen_server:from(), atom()) -> {reply, {error, unknown_call}, atom()}.
handle_call(_Request, _From, State) -> {reply, {error, unknown_call}, State}.

%% @private
-spec handle_cast(term(), atom()) -> {noreply, atom()}.
handle_cast(_Msg, State) -> {noreply, State}.

%% @private
-spec terminate(term(), atom()) -> ok.
terminate(_Reason, Name) ->
    %% Someone may have stopped it by hand already.
    try erqwest:stop_client(Name) catch error:badarg -> ok end,
    ok.
