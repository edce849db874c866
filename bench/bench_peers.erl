%% @doc The other BEAM HTTP clients that `make bench' can set beside
%% erqwest: gun and Finch (from `PEERS_LIB', a directory of compiled OTP
%% applications) and erqwest 0.2.5 (from `ERQWEST_025_LIB'). Nothing of
%% theirs is in this repository: their paths come from the environment and
%% a client whose path is not given is left out of the run.
%%
%% Each runs in a peer VM of its own, as erqwest does; erqwest 0.2.5 has
%% the same module names as erqwest, so its VM has only its code path.
%% <ul>
%% <li>`gun': one connection per worker (gun has no pool), opened before
%% the measured window; over HTTP/2 one connection that every worker's
%% streams share.</li>
%% <li>`finch': one Finch instance, one pool of N connections for the
%% host (HTTP/1.1), or one HTTP/2 connection.</li>
%% <li>`erqwest025': erqwest 0.2.5's `erqwest:req/2' on one shared client,
%% as `sync' is measured.</li>
%% </ul>
%% TLS: the peers skip certificate verification (`verify_none'): it costs
%% at the handshake only, and the connections are kept for the run.
-module(bench_peers).

-export([available/0, code_paths/1, setup/1, prepare/2, init_worker/3, request/3, cleanup/2]).

-type kind() :: gun | finch | erqwest025.
-export_type([kind/0]).

%% @doc The peer clients whose code was given in the environment.
-spec available() -> [kind()].
available() ->
    [K || K <- [erqwest025, gun, finch], code_paths(K) =/= none].

%% @doc The code paths a peer VM for `Kind' needs beyond bench's own, and
%% whether it must leave erqwest's out (`replace').
-spec code_paths(atom()) -> {add | replace, [file:filename()]} | none.
code_paths(erqwest025) ->
    case os:getenv("ERQWEST_025_LIB") of
        false -> none;
        "" -> none;
        Dir ->
            %% The project directory, its _build lib dir, or an ebin.
            Found = [D || D <- [filename:join(Dir, "ebin"),
                                filename:join([Dir, "_build", "default", "lib", "erqwest", "ebin"]),
                                filename:join([Dir, "erqwest", "ebin"]), Dir],
                          filelib:is_regular(filename:join(D, "erqwest.app"))],
            case Found of
                [Ebin | _] -> {replace, [Ebin]};
                [] -> none
            end
    end;
code_paths(Kind) when Kind =:= gun; Kind =:= finch ->
    case os:getenv("PEERS_LIB") of
        false -> none;
        "" -> none;
        Lib ->
            Ebins = filelib:wildcard(filename:join([Lib, "*", "ebin"])),
            Need = case Kind of gun -> ["gun", "cowlib"]; finch -> ["finch", "mint"] end,
            Have = [filename:basename(filename:dirname(E)) || E <- Ebins],
            case Need -- Have of
                [] when Kind =:= finch -> {add, Ebins ++ elixir_ebins()};
                [] -> {add, Ebins};
                _ -> none
            end
    end;
code_paths(_) ->
    none.

%% Elixir's own applications, for Finch and Mint.
elixir_ebins() ->
    case code:lib_dir(elixir) of
        {error, _} ->
            Root = string:trim(os:cmd("elixir -e 'IO.write :code.lib_dir(:elixir)' 2>/dev/null")),
            filelib:wildcard(filename:join([filename:dirname(Root), "*", "ebin"]));
        Dir ->
            filelib:wildcard(filename:join([filename:dirname(Dir), "*", "ebin"]))
    end.

%% @doc Starts what `Kind' needs in this (peer) VM.
-spec setup(kind()) -> ok.
setup(gun) -> {ok, _} = application:ensure_all_started(gun), ok;
setup(finch) -> {ok, _} = application:ensure_all_started(finch), ok;
setup(erqwest025) -> ok.

%% @doc What the workers share: nothing for gun over HTTP/1.1, a
%% connection over HTTP/2, a Finch instance, or a client.
-spec prepare(kind(), map()) -> term().
prepare(gun, #{proto := h2} = T) ->
    gun_open(T);
prepare(gun, _) ->
    none;
prepare(finch, #{proto := Proto, workers := N, url := Url}) ->
    Name = list_to_atom("bench_finch_" ++ integer_to_list(erlang:unique_integer([positive]))),
    Pool = case Proto of
        http -> [{size, N}, {count, 1}];
        https -> [{size, N}, {count, 1}, {conn_opts, [{transport_opts, [{verify, verify_none}]}]}];
        h2 -> [{protocols, [http2]}, {count, 1},
               {conn_opts, [{transport_opts, [{verify, verify_none}]}]}]
    end,
    #{scheme := S, host := H, port := P} = uri_string:parse(Url),
    Origin = iolist_to_binary([S, "://", H, ":", integer_to_list(P)]),
    {ok, Sup} = 'Elixir.Finch':start_link([{name, Name}, {pools, #{Origin => Pool}}]),
    %% The caller (peer:call's process) ends; the instance must not.
    unlink(Sup),
    {Name, Sup};
prepare(erqwest025, #{proto := Proto, ca := Ca}) ->
    Base = #{proxy => no_proxy},
    erqwest:make_client(case Proto of
                            http -> Base;
                            _ -> Base#{additional_root_certs => [ca_der(Ca)],
                                       use_built_in_root_certs => false}
                        end).

%% @doc A worker's own state: its gun connection over HTTP/1.1.
-spec init_worker(kind(), term(), map()) -> term().
init_worker(gun, none, T) -> gun_open(T);
init_worker(_, Shared, _) -> Shared.

%% @doc One request: `{ok, Status, Body}' or `{error, Why}'.
-spec request(kind(), term(), map()) -> {ok, 100..599, binary()} | {error, term()}.
request(gun, Conn, #{url := Url, method := M, body := B}) ->
    #{path := Path} = uri_string:parse(Url),
    Ref = case M of
        get -> gun:get(Conn, Path);
        post -> gun:post(Conn, Path, [{<<"content-type">>, <<"application/octet-stream">>}], B)
    end,
    case gun:await(Conn, Ref, 60000) of
        {response, fin, S, _} -> {ok, S, <<>>};
        {response, nofin, S, _} ->
            case gun:await_body(Conn, Ref, 60000) of
                {ok, Body} -> {ok, S, Body};
                E -> {error, E}
            end;
        E -> {error, E}
    end;
request(finch, {Name, _}, #{url := Url, method := M, body := B}) ->
    Req = case M of
        get -> 'Elixir.Finch':build(get, Url);
        post -> 'Elixir.Finch':build(post, Url, [{<<"content-type">>, <<"application/octet-stream">>}], B)
    end,
    case 'Elixir.Finch':request(Req, Name) of
        {ok, #{status := S, body := Body}} -> {ok, S, Body};
        E -> {error, E}
    end;
request(erqwest025, Client, #{url := Url, method := M, body := B}) ->
    Opts = case M of get -> #{method => get, url => Url}; post -> #{method => post, url => Url, body => B} end,
    case erqwest:req(Client, Opts) of
        {ok, #{status := S, body := Body}} -> {ok, S, Body};
        E -> {error, E}
    end.

%% @doc Frees what `prepare/2' made.
-spec cleanup(kind(), term()) -> ok.
cleanup(gun, none) -> ok;
cleanup(gun, Conn) -> gun:close(Conn);
cleanup(finch, {_, Sup}) ->
    exit(Sup, shutdown),
    ok;
cleanup(erqwest025, _) -> ok.

gun_open(#{url := Url, proto := Proto}) ->
    #{host := H, port := P} = uri_string:parse(Url),
    Opts = case Proto of
        http -> #{protocols => [http], retry => 0};
        https -> #{protocols => [http], transport => tls, tls_opts => [{verify, verify_none}], retry => 0};
        h2 -> #{protocols => [http2], transport => tls, tls_opts => [{verify, verify_none}], retry => 0,
                http2_opts => #{}}
    end,
    {ok, Conn} = gun:open(binary_to_list(H), P, Opts),
    {ok, _} = gun:await_up(Conn, 10000),
    Conn.

ca_der(Ca) ->
    {ok, Pem} = file:read_file(Ca),
    [{'Certificate', Der, not_encrypted}] = public_key:pem_decode(Pem),
    Der.
