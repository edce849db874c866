%% Proxies through tinyproxy: explicit rules with and without basic auth,
%% CONNECT for https, the system proxy read from the environment (in a
%% fresh OS process) and no_proxy.
-module(erqwest_proxy_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-compile([export_all, nowarn_export_all]).

all() ->
    [plain_proxy, proxy_rules_by_scheme, proxy_auth_required, proxy_basic_auth,
     https_through_proxy, system_proxy_from_env, no_proxy_ignores_env, proxy_refused].

init_per_suite(Config) ->
    {ok, _} = application:ensure_all_started(erqwest),
    Dir = ?config(priv_dir, Config),
    Open = erqwest_test_peers:free_port(),
    Auth = erqwest_test_peers:free_port(),
    P1 = erqwest_test_peers:start_tinyproxy(filename:join(Dir, "open"), #{port => Open, auth => none}),
    P2 = erqwest_test_peers:start_tinyproxy(filename:join(Dir, "auth"),
                                            #{port => Auth, auth => {"erq", "s3cret"}}),
    {ok, S} = erqwest_test_server:start(fun(_) -> {200, [], <<"origin">>} end),
    [{proxies, [P1, P2]}, {open, proxy_url(Open)}, {auth, proxy_url(Auth)}, {server, S} | Config].

end_per_suite(Config) ->
    [erqwest_test_peers:stop(P) || P <- ?config(proxies, Config)],
    erqwest_test_server:stop(?config(server, Config)),
    application:stop(erqwest).

proxy_url(Port) -> iolist_to_binary(["http://127.0.0.1:", integer_to_list(Port)]).

origin(Config) -> erqwest_test_server:url(?config(server, Config), "/via").

%% tinyproxy adds a Via header naming itself.
last_via(Config) ->
    #{headers := H} = lists:last(erqwest_test_server:requests(?config(server, Config))),
    proplists:get_value(<<"via">>, H).

via_tinyproxy(Via) ->
    is_binary(Via) andalso binary:match(Via, <<"tinyproxy">>) =/= nomatch.

plain_proxy(Config) ->
    C = erqwest:make_client(#{proxy => [{all, #{url => ?config(open, Config)}}]}),
    {ok, #{status := 200, body := <<"origin">>}} = erqwest:get(C, origin(Config)),
    ?assert(via_tinyproxy(last_via(Config))).

%% Rules are tried in order; an https-only rule leaves http requests direct.
proxy_rules_by_scheme(Config) ->
    HttpsOnly = erqwest:make_client(#{proxy => [{https, #{url => ?config(open, Config)}}]}),
    {ok, #{status := 200}} = erqwest:get(HttpsOnly, origin(Config)),
    ?assertEqual(undefined, last_via(Config)),
    Http = erqwest:make_client(#{proxy => [{http, #{url => ?config(open, Config)}},
                                           {all, #{url => <<"http://127.0.0.1:1">>}}]}),
    {ok, #{status := 200}} = erqwest:get(Http, origin(Config)),
    ?assert(via_tinyproxy(last_via(Config))).

proxy_auth_required(Config) ->
    C = erqwest:make_client(#{proxy => [{all, #{url => ?config(auth, Config)}}]}),
    {ok, #{status := 407}} = erqwest:get(C, origin(Config)).

proxy_basic_auth(Config) ->
    Rule = #{url => ?config(auth, Config), basic_auth => {<<"erq">>, <<"s3cret">>}},
    C = erqwest:make_client(#{proxy => [{all, Rule}]}),
    {ok, #{status := 200, body := <<"origin">>}} = erqwest:get(C, origin(Config)),
    ?assert(via_tinyproxy(last_via(Config))),
    Wrong = erqwest:make_client(#{proxy => [{all, Rule#{basic_auth => {<<"erq">>, <<"nope">>}}}]}),
    %% tinyproxy answers wrong credentials with 401 rather than 407.
    {ok, #{status := Refused}} = erqwest:get(Wrong, origin(Config)),
    ?assert(lists:member(Refused, [401, 407])).

https_through_proxy(Config) ->
    Certs = erqwest_test_certs:make(filename:join(?config(priv_dir, Config), "certs")),
    #{server_cert := Cert, server_key := Key, ca := Ca} = Certs,
    {ok, S} = erqwest_test_server:start(fun(_) -> {200, [], <<"tunnelled">>} end,
                                        #{tls => [{certfile, Cert}, {keyfile, Key}]}),
    try
        C = erqwest:make_client(#{proxy => [{https, #{url => ?config(open, Config)}}],
                                  additional_root_certs => [erqwest_test_certs:der(Ca)]}),
        {ok, #{status := 200, body := <<"tunnelled">>}} =
            erqwest:get(C, erqwest_test_server:url(S, "/")),
        %% Through a tunnel the origin sees no Via header...
        #{headers := H} = lists:last(erqwest_test_server:requests(S)),
        ?assertEqual(undefined, proplists:get_value(<<"via">>, H)),
        %% ...and without the proxy rule the client still reaches it directly.
        {ok, _} = erqwest:get(erqwest:make_client(#{additional_root_certs => [erqwest_test_certs:der(Ca)],
                                                    proxy => no_proxy}),
                              erqwest_test_server:url(S, "/"))
    after erqwest_test_server:stop(S) end.

%% The environment is read when a client is made, in the OS process: a
%% fresh node started with HTTP_PROXY set shows the default `system'.
system_proxy_from_env(Config) ->
    in_proxied_node(Config, #{}, fun(Result) ->
        {ok, #{status := 200}} = Result,
        ?assert(via_tinyproxy(last_via(Config)))
    end).

no_proxy_ignores_env(Config) ->
    in_proxied_node(Config, #{proxy => no_proxy}, fun(Result) ->
        {ok, #{status := 200}} = Result,
        ?assertEqual(undefined, last_via(Config))
    end).

proxy_refused(Config) ->
    Port = erqwest_test_peers:free_port(),
    C = erqwest:make_client(#{proxy => [{all, #{url => proxy_url(Port)}}]}),
    {error, #{code := connect}} = erqwest:get(C, origin(Config)).

%% Runs in the other node: a client cannot leave the VM it was made in.
remote_get(ClientOpts, Url) ->
    erqwest:get(erqwest:make_client(ClientOpts), Url).

in_proxied_node(Config, ClientOpts, Check) ->
    Paths = lists:append([["-pa", P] || P <- code:get_path(), string:find(P, "erqwest") =/= nomatch]),
    Env = [{"HTTP_PROXY", binary_to_list(?config(open, Config))},
           {"http_proxy", binary_to_list(?config(open, Config))},
           {"NO_PROXY", ""}, {"no_proxy", ""}],
    {ok, Peer, _Node} = peer:start_link(#{connection => standard_io, env => Env, args => Paths}),
    try
        {ok, _} = peer:call(Peer, application, ensure_all_started, [erqwest]),
        Check(peer:call(Peer, ?MODULE, remote_get, [ClientOpts, origin(Config)], 15000))
    after
        peer:stop(Peer)
    end.
