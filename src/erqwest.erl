%% @doc erqwest: an HTTP client backed by Rust's reqwest.
%%
%% This module holds the clients and the synchronous API, which blocks the
%% calling process (never a scheduler) until the answer arrives. The
%% message-based API is {@link erqwest_async}. The `erqwest' application
%% must be started first; it starts a default client, which the calls
%% without a client use ({@link erqwest_default}).
%%
%% ```
%% 1> application:ensure_all_started(erqwest).
%% 2> {ok, #{status := 200}} = erqwest:get(<<"http://127.0.0.1:8080/">>).
%% 3> C = erqwest:make_client(#{timeout => 5000}).
%% 4> {ok, #{status := 200, body := Body}} = erqwest:get(C, <<"http://127.0.0.1:8080/">>).
%% '''
%%
%% Requests that stream their body (`body => stream') return
%% `{handle, H}'; feed it with {@link send/2} and end with
%% {@link finish_send/1}. Responses read with `response_body => stream'
%% carry a handle as `body'; read it with {@link read/2}. Such a handle
%% belongs to the process that made it.
%%
%% Requests emit `telemetry' events from the calling process when the
%% `telemetry' application runs ({@link erqwest_telemetry}), and a test
%% can replace a client's answers ({@link erqwest_test}).
-module(erqwest).

-include_lib("stdlib/include/assert.hrl").

-export([make_client/0, make_client/1, close_client/1]).
-export([start_client/1, start_client/2, stop_client/1, get_client/1, feature/1]).
-export([req/2, get/2, get/3, head/2, head/3, options/2, options/3]).
-export([post/3, put/3, delete/2, delete/3, patch/3]).
-export([send/2, finish_send/1, read/1, read/2, cancel/1]).
-export([format_error/2]).
%% Without a client: the default one (erqwest_default).
-export([req/1, get/1, head/1, options/1, delete/1, post/2, put/2, patch/2]).
-export([client_info/1]).

-export_type([client/0, handle/0, client_opts/0, req_opts/0, read_opts/0, method/0,
              header/0, resp/0, err/0, code/0, proxy_spec/0, timeout_ms/0, decode/0,
              pairs/0, part/0, auth/0, max_body/0]).
-export_type([retry_opts/0, hedge_opts/0, timings/0, client_info/0]).

-opaque client() :: reference().
%% A client: a connection pool and its settings, from {@link make_client/1}.
%% Freed when no longer referenced. `C = erqwest:make_client()'.

-record(sync_handle, {
    ref :: reference(),
    handle :: erqwest_async:handle(),
    owner :: pid(),
    %% Whether the response body is streamed (then a reply is not final).
    stream_response :: boolean(),
    %% The telemetry span a streamed request body leaves open.
    span = undefined :: erqwest_telemetry:span() | undefined
}).
-opaque handle() :: #sync_handle{}.
%% A streamed request or response body in progress, owned by the process
%% that made the request: `{handle, H} = erqwest:post(C, Url, #{body => stream})'.

-type timeout_ms() :: non_neg_integer() | infinity.
%% Milliseconds, or `infinity' for no limit: `5000'.
-type header() :: {binary(), binary()}.
%% A header: name and value as binaries. Names come back lower-case:
%% `{<<"content-type">>, <<"application/json">>}'.
-type method() :: options | get | post | put | delete | head | trace | connect | patch.
%% The request method: `get'.
-type proxy_spec() :: system | no_proxy
                    | [{http | https | all, #{url := binary(), basic_auth => {binary(), binary()}}}].
%% `system' (the environment's `HTTP_PROXY', `HTTPS_PROXY', `NO_PROXY'),
%% `no_proxy', or rules tried in order:
%% `[{all, #{url => <<"http://proxy:3128">>, basic_auth => {<<"u">>, <<"p">>}}}]'.

-type client_opts() :: #{
    identity => {Pkcs12Der :: binary(), Password :: binary()}
              | {pem, CertsAndKey :: binary()}
              | {pem, Certs :: binary(), Key :: binary()},
    follow_redirects => boolean() | non_neg_integer(),
    additional_root_certs => [CertDer :: binary()],
    use_built_in_root_certs => boolean(),
    danger_accept_invalid_hostnames => boolean(),
    danger_accept_invalid_certs => boolean(),
    proxy => proxy_spec(),
    connect_timeout => timeout_ms(),
    timeout => timeout_ms(),
    read_timeout => timeout_ms(),
    pool_idle_timeout => timeout_ms(),
    pool_max_idle_per_host => non_neg_integer(),
    https_only => boolean(),
    cookie_store => boolean(),
    gzip => boolean(),
    brotli => boolean(),
    deflate => boolean(),
    zstd => boolean(),
    http2_prior_knowledge => boolean(),
    http1_only => boolean(),
    tcp_nodelay => boolean(),
    tcp_keepalive => timeout_ms(),
    local_address => inet:ip_address(),
    user_agent => binary(),
    default_headers => [header()],
    resolve => [{Host :: binary(), {inet:ip_address(), inet:port_number()}}],
    min_tls_version => tlsv1 | 'tlsv1.1' | 'tlsv1.2' | 'tlsv1.3',
    decode => decode(),
    json_null => atom(),
    auth => auth(),
    base_url => binary(),
    retry => false | true | retry_opts(),
    hedge => false | hedge_opts(),
    timings => boolean(),
    queue_timeout => timeout_ms(),
    max_in_flight => pos_integer() | infinity,
    max_in_flight_per_host => pos_integer() | infinity,
    max_body => max_body()
}.
%% Options for {@link make_client/1}; an unknown key raises `badarg'. The
%% guide "Composing requests and JSON" lists each with its default, and
%% the request defaults (`decode' ... `base_url'); "Retries, hedging and
%% limits" the defaults for requests (`retry' ... `max_in_flight_per_host'):
%% `#{timeout => 5000, follow_redirects => false, proxy => no_proxy}'.

-type max_body() :: non_neg_integer() | infinity.
%% The most a complete response body may hold after decompression, in
%% bytes, or `infinity' (default 1 GiB; guide "Retries, hedging and
%% limits"): `#{max_body => 10485760}'.

-type retry_opts() :: #{
    max_retries => non_neg_integer(),
    methods => idempotent | all | [method()],
    statuses => [100..599],
    errors => [connect | timeout | refused | closed],
    base => non_neg_integer(),
    max => non_neg_integer(),
    max_retry_after => non_neg_integer(),
    budget => false | #{ratio => number(), min_per_sec => non_neg_integer()}
}.
%% Retry settings; `retry => true' takes every default (3 retries of
%% idempotent requests on 408, 429, 500, 502-504, connect errors and
%% timeouts, full-jitter backoff from 500 ms): `#{max_retries => 5, base => 100}'.
-type hedge_opts() :: #{delay := non_neg_integer(), max => pos_integer()}.
%% Hedging: another copy of an idempotent request when no response head
%% came `delay' ms after the last attempt started, at most `max' copies
%% (default 1): `#{delay => 50}'.
-type timings() :: #{queued := non_neg_integer(), headers := non_neg_integer(),
                     reused => boolean(), connect => non_neg_integer(),
                     total => non_neg_integer(),
                     remote_addr => {inet:ip_address(), inet:port_number()}}.
%% Microseconds from the start of the request (`timings => true'):
%% `#{queued => 3, connect => 410, headers => 900, total => 950, reused => false}'.
-type client_info() :: #{in_flight := non_neg_integer(), queued := non_neg_integer(),
                         hosts := #{binary() => #{in_flight := non_neg_integer(),
                                                  queued := non_neg_integer()}}}.
%% What a client has in flight and queued, in total and per host:
%% `#{in_flight => 1, queued => 0, hosts => #{<<"127.0.0.1:8080">> => #{in_flight => 1, queued => 0}}}'.

-type req_opts() :: #{
    url := binary(),
    method := method(),
    headers => [header()],
    body => iodata() | stream,
    response_body => complete | stream,
    timeout => timeout_ms(),
    decode => decode(),
    json_null => atom(),
    query => pairs(),
    json => erqwest_json:json(),
    form => pairs(),
    multipart => [part()],
    auth => auth() | none,
    retry => false | true | retry_opts(),
    hedge => false | hedge_opts(),
    timings => boolean(),
    queue_timeout => timeout_ms(),
    max_body => max_body()
}.
%% A request; `url' and `method' are required, and an unknown key raises
%% `badarg'. The guide "Composing requests and JSON" explains `decode'
%% ... `auth': `#{method => get, url => <<"http://127.0.0.1:8080/">>, timeout => 5000}'.

-type pairs() :: [{binary() | atom(), pair_value()}] | #{binary() | atom() => pair_value()}.
%% Query or form pairs, in order, repeated keys kept:
%% `[{page, 2}, {q, <<"a b">>}]' or `#{page => 2}'.
-type pair_value() :: binary() | atom() | integer() | float().
-type part() :: {binary() | atom(), iodata()}
              | #{name := binary() | atom(), data => iodata(), file => file:filename_all(),
                  filename => binary(), content_type => binary(), headers => [header()]}.
%% A multipart part: `{<<"kind">>, <<"avatar">>}' or
%% `#{name => file, file => "/tmp/a.png", content_type => <<"image/png">>}'.
-type auth() :: {basic, User :: binary(), Password :: binary()} | {bearer, Token :: binary()}.
%% Credentials for the `authorization' header: `{bearer, <<"token">>}' or
%% `{basic, <<"user">>, <<"pass">>}'.

-type decode() :: none | json | auto.
%% `none': the body stays a binary (the default); `json': always decoded
%% from JSON; `auto': decoded when the content type is `application/json'
%% or `*/*+json' and the body is not empty. See {@link erqwest_json}.
%%
%% For example `decode => auto'.

-type read_opts() :: #{length => non_neg_integer(), period => timeout_ms()}.
%% How much {@link read/2} waits for: at least `length' bytes (default
%% 8 MB) or `period' ms (default `infinity'): `#{length => 65536, period => 100}'.

-type resp() :: #{
    status := 100..599,
    headers := [header()],
    body => binary() | handle() | erqwest_json:json(),
    version => 'HTTP/0.9' | 'HTTP/1.0' | 'HTTP/1.1' | 'HTTP/2' | 'HTTP/3',
    url => binary(),
    attempts => pos_integer(),
    timings => timings()
}.
%% A response. Header names are lower-case, repeated headers stay in
%% order; `version' and the final `url' are always there:
%% ```#{status => 200, headers => [{<<"content-type">>, <<"text/plain">>}], body => <<"hi">>,
%%   version => 'HTTP/1.1', url => <<"http://127.0.0.1:8080/">>}'''.

-type code() :: timeout | redirect | url | connect | request | body | cancelled | unknown
              | decode | queue_timeout | body_too_large.
%% What went wrong (the `code' of an `err()'): `connect'.
-type err() :: #{code := code(), reason := binary(), body => binary(),
                 status => 100..599, headers => [header()],
                 attempts => non_neg_integer(), limit => non_neg_integer()}.
%% `decode': the body did not decode with `decode => json | auto'; the
%% reason names the byte offset, `body', `status' and `headers' are the
%% response's. `attempts' is there when the request asked for retries.
%% `body_too_large': a complete body would hold more than `max_body'
%% bytes after decompression; `limit' is that `max_body', and the
%% connection was closed.
%%
%% For example `#{code => connect, reason => <<"error sending request ...">>}'.

%%% Clients

%% @doc Same as `make_client(#{})': a client with the defaults.
%%
%% ```
%% C = erqwest:make_client(),
%% {ok, #{status := 200}} = erqwest:get(C, <<"http://127.0.0.1:8080/">>).
%% '''
-spec make_client() -> client().
make_client() ->
    make_client(#{}).

%% @doc Makes a client with its own connection pool, freed when garbage
%% collected. Raises `badarg' for an unknown key or a bad value; when the
%% value's content is the problem (a PKCS#12 that does not open) the
%% error's extended info says why.
%%
%% ```
%% C = erqwest:make_client(#{timeout => 5000, follow_redirects => false}),
%% {'EXIT', {badarg, _}} = catch erqwest:make_client(#{timeout => soon}).
%% '''
-spec make_client(client_opts()) -> client().
make_client(Opts) ->
    Runtime = erqwest_runtime:get(),
    %% Composing options (base_url, auth ...) raise {badarg, Reason}.
    Made = try erqwest_nif:make_client(Runtime, Opts)
           catch error:{badarg, Cause} when is_binary(Cause) -> {error, Cause}
           end,
    case Made of
        {error, Reason} ->
            erlang:error(badarg, [Opts], [{error_info, #{module => ?MODULE, cause => Reason}}]);
        Client ->
            Client
    end.

%% @doc Closes the client's idle connections now; in-flight requests
%% finish. Raises `badarg' when the client is already closed.
%%
%% ```
%% C = erqwest:make_client(),
%% ok = erqwest:close_client(C).
%% '''
-spec close_client(client() | atom()) -> ok.
close_client(Client) ->
    erqwest_nif:close_client(get_client(Client)).

%% @doc Same as `start_client(Name, #{})'.
%%
%% ```
%% ok = erqwest:start_client(my_api),
%% {ok, _} = erqwest:get(my_api, <<"http://127.0.0.1:8080/">>).
%% '''
-spec start_client(atom()) -> ok.
start_client(Name) ->
    start_client(Name, #{}).

%% @doc Makes a client and registers it under `Name', so that every
%% function taking a client also takes `Name'.
%%
%% ```
%% ok = erqwest:start_client(my_api, #{timeout => 5000, cookie_store => true}),
%% {ok, _} = erqwest:get(my_api, <<"http://127.0.0.1:8080/">>).
%% '''
-spec start_client(atom(), client_opts()) -> ok.
start_client(Name, Opts) when is_atom(Name) ->
    persistent_term:put({?MODULE, client, Name}, make_client(Opts)).

%% @doc Closes and unregisters a named client.
%%
%% ```
%% ok = erqwest:start_client(my_api),
%% ok = erqwest:stop_client(my_api).
%% '''
-spec stop_client(atom()) -> ok.
stop_client(Name) when is_atom(Name) ->
    Client = get_client(Name),
    _ = persistent_term:erase({?MODULE, client, Name}),
    try close_client(Client) catch error:badarg -> ok end,
    ok.

%% @doc The client registered under `Name', or the client itself. Raises
%% `badarg' for an unknown name.
%%
%% ```
%% ok = erqwest:start_client(my_api),
%% C = erqwest:get_client(my_api),
%% C = erqwest:get_client(C).
%% '''
-spec get_client(client() | atom()) -> client().
get_client(Name) when is_atom(Name) ->
    persistent_term:get({?MODULE, client, Name});
get_client(Client) ->
    Client.

%% @doc What a client has in flight and queued, in total and per
%% `<<"host:port">>' (hosts with nothing in flight or queued are left out).
%%
%% ```
%% #{in_flight := 0, queued := 0, hosts := #{}} = erqwest:client_info(erqwest_default).
%% '''
-spec client_info(client() | atom()) -> client_info().
client_info(Client) ->
    erqwest_nif:client_info(get_client(Client)).

%% @doc Whether a feature was compiled in: `cookies', `gzip', `brotli',
%% `deflate', `zstd' and `http2' all are.
%%
%% ```
%% true = erqwest:feature(gzip).
%% '''
-spec feature(atom()) -> boolean().
feature(Name) when is_atom(Name) ->
    erqwest_nif:feature(Name).

%%% Requests

%% @doc Makes a request and waits for the answer.
%%
%% `{ok, Resp}' for a complete response; with `response_body => stream'
%% its `body' is a handle for {@link read/2}. With `body => stream' the
%% answer is `{handle, H}' once the request body can be sent (or `{ok, _}'
%% if the server answered at once).
%%
%% An HTTP/1.1 request, plain or over TLS, that needs nothing of
%% reqwest's is answered on the calling process's own scheduler (the
%% module `erqwest_direct', see the guide "Performance and where a request runs"); the
%% answer is the same either way.
%%
%% ```
%% {ok, #{status := 200, body := Body}} =
%%     erqwest:req(C, #{method => get, url => <<"http://127.0.0.1:8080/">>,
%%                      headers => [{<<"accept">>, <<"text/plain">>}]}).
%% '''
-spec req(client() | atom(), req_opts()) -> {ok, resp()} | {handle, handle()} | {error, err()}.
req(Client, Opts) ->
    %% Telemetry (erqwest_telemetry) and stubs (erqwest_test) cost one
    %% check each when unused.
    case erqwest_telemetry:enabled() of
        false -> req(Client, Opts, undefined);
        true -> erqwest_telemetry:sync(Client, Opts, fun req/3)
    end.

req(Client, Opts, Span) ->
    case not erqwest_test:stubbed(Client) andalso direct(Opts)
         andalso erqwest_direct:req(get_client(Client), Opts) of
        false -> req_async(Client, Opts, Span);
        fallback -> req_async(Client, Opts, Span);
        Answer -> Answer
    end.

%% Whether the request may be answered on this scheduler (erqwest_direct):
%% complete bodies, given as a binary, and options small enough for a
%% normal scheduler; the NIF decides the rest.
direct(#{body := stream}) -> false;
direct(#{response_body := stream}) -> false;
direct(#{body := Body}) when not is_binary(Body) -> false;
direct(Opts) -> not erqwest_dirty:request(ok, Opts).

req_async(Client, Opts, Span) ->
    Ref = make_ref(),
    Handle = erqwest_async:req(Client, self(), Ref, Opts),
    H = #sync_handle{ref = Ref, handle = Handle, owner = self(), span = Span,
                     stream_response = maps:get(response_body, Opts, complete) =:= stream},
    case maps:get(body, Opts, undefined) of
        stream ->
            case await(H) of
                next -> {handle, H};
                {reply, Resp} -> {ok, Resp};
                {error, _} = Error -> Error
            end;
        _ ->
            case await(H) of
                {reply, Resp} -> {ok, Resp};
                {error, _} = Error -> Error
            end
    end.

%%% Without a client: the default one

%% @doc Makes a request with the default client (registered as
%% `erqwest_default' by the application; see {@link erqwest_default}).
%%
%% ```
%% {ok, #{status := 200}} = erqwest:req(#{method => get, url => <<"http://127.0.0.1:8080/">>}).
%% '''
-spec req(req_opts()) -> {ok, resp()} | {handle, handle()} | {error, err()}.
req(Opts) -> req(erqwest_default:name(), Opts).

%% @doc A GET with the default client.
%%
%% ```
%% {ok, #{status := 200, body := Body}} = erqwest:get(<<"http://127.0.0.1:8080/">>).
%% '''
-spec get(binary()) -> {ok, resp()} | {error, err()}.
get(Url) -> get(erqwest_default:name(), Url, #{}).

%% @doc A HEAD with the default client.
%%
%% ```
%% {ok, #{status := 200, headers := Headers}} = erqwest:head(<<"http://127.0.0.1:8080/">>).
%% '''
-spec head(binary()) -> {ok, resp()} | {error, err()}.
head(Url) -> head(erqwest_default:name(), Url, #{}).

%% @doc An OPTIONS request with the default client.
%%
%% ```
%% {ok, #{headers := Headers}} = erqwest:options(<<"http://127.0.0.1:8080/">>).
%% '''
-spec options(binary()) -> {ok, resp()} | {error, err()}.
options(Url) -> options(erqwest_default:name(), Url, #{}).

%% @doc A DELETE with the default client.
%%
%% ```
%% {ok, #{status := 204}} = erqwest:delete(<<"http://127.0.0.1:8080/items/1">>).
%% '''
-spec delete(binary()) -> {ok, resp()} | {error, err()}.
delete(Url) -> delete(erqwest_default:name(), Url, #{}).

%% @doc A POST with the default client.
%%
%% ```
%% {ok, #{status := 201}} = erqwest:post(<<"http://127.0.0.1:8080/items">>, #{json => #{name => <<"x">>}}).
%% '''
-spec post(binary(), map()) -> {ok, resp()} | {handle, handle()} | {error, err()}.
post(Url, Opts) -> post(erqwest_default:name(), Url, Opts).

%% @doc A PUT with the default client.
%%
%% ```
%% {ok, #{status := 200}} = erqwest:put(<<"http://127.0.0.1:8080/items/1">>, #{body => <<"x">>}).
%% '''
-spec put(binary(), map()) -> {ok, resp()} | {handle, handle()} | {error, err()}.
put(Url, Opts) -> put(erqwest_default:name(), Url, Opts).

%% @doc A PATCH with the default client.
%%
%% ```
%% {ok, #{status := 200}} = erqwest:patch(<<"http://127.0.0.1:8080/items/1">>, #{json => #{done => true}}).
%% '''
-spec patch(binary(), map()) -> {ok, resp()} | {handle, handle()} | {error, err()}.
patch(Url, Opts) -> patch(erqwest_default:name(), Url, Opts).

%% @doc `get(Client, Url)' is `get(Client, Url, #{})'; with the URL first
%% (a binary, never a client), `get(Url, Opts)' is a GET with the default
%% client.
%%
%% ```
%% {ok, _} = erqwest:get(C, <<"http://127.0.0.1:8080/">>),
%% {ok, _} = erqwest:get(<<"http://127.0.0.1:8080/">>, #{timeout => 1000}).
%% '''
-spec get(client() | atom() | binary(), binary() | map()) ->
          {ok, resp()} | {handle, handle()} | {error, err()}.
get(Url, Opts) when is_binary(Url), is_map(Opts) -> get(erqwest_default:name(), Url, Opts);
get(Client, Url) -> get(Client, Url, #{}).

%% @doc A GET: {@link req/2} with `url' and `method' filled in.
%%
%% ```
%% {ok, #{status := 200, body := Body}} = erqwest:get(C, <<"http://127.0.0.1:8080/items">>, #{query => [{page, 2}]}).
%% '''
-spec get(client() | atom(), binary(), map()) -> {ok, resp()} | {handle, handle()} | {error, err()}.
get(Client, Url, Opts) -> req(Client, Opts#{url => Url, method => get}).

%% @doc `head(Client, Url)' is `head(Client, Url, #{})'; with the URL first,
%% `head(Url, Opts)' uses the default client.
%%
%% ```
%% {ok, #{status := 200}} = erqwest:head(C, <<"http://127.0.0.1:8080/items">>),
%% {ok, #{status := 200}} = erqwest:head(<<"http://127.0.0.1:8080/items">>, #{timeout => 1000}).
%% '''
-spec head(client() | atom() | binary(), binary() | map()) ->
          {ok, resp()} | {handle, handle()} | {error, err()}.
head(Url, Opts) when is_binary(Url), is_map(Opts) -> head(erqwest_default:name(), Url, Opts);
head(Client, Url) -> head(Client, Url, #{}).

%% @doc A HEAD: {@link req/2} with `url' and `method' filled in.
%%
%% ```
%% {ok, #{status := 200, headers := Headers}} = erqwest:head(C, <<"http://127.0.0.1:8080/items">>, #{timeout => 1000}).
%% '''
-spec head(client() | atom(), binary(), map()) -> {ok, resp()} | {handle, handle()} | {error, err()}.
head(Client, Url, Opts) -> req(Client, Opts#{url => Url, method => head}).

%% @doc `options(Client, Url)' is `options(Client, Url, #{})'; with the URL first,
%% `options(Url, Opts)' uses the default client.
%%
%% ```
%% {ok, _} = erqwest:options(C, <<"http://127.0.0.1:8080/items">>),
%% {ok, _} = erqwest:options(<<"http://127.0.0.1:8080/items">>, #{timeout => 1000}).
%% '''
-spec options(client() | atom() | binary(), binary() | map()) ->
          {ok, resp()} | {handle, handle()} | {error, err()}.
options(Url, Opts) when is_binary(Url), is_map(Opts) -> options(erqwest_default:name(), Url, Opts);
options(Client, Url) -> options(Client, Url, #{}).

%% @doc An OPTIONS request: {@link req/2} with `url' and `method' filled in.
%%
%% ```
%% {ok, #{headers := Headers}} = erqwest:options(C, <<"http://127.0.0.1:8080/items">>, #{}).
%% '''
-spec options(client() | atom(), binary(), map()) -> {ok, resp()} | {handle, handle()} | {error, err()}.
options(Client, Url, Opts) -> req(Client, Opts#{url => Url, method => options}).

%% @doc A POST: {@link req/2} with `url' and `method' filled in.
%%
%% ```
%% {ok, #{status := 201}} = erqwest:post(C, <<"http://127.0.0.1:8080/items">>,
%%     #{body => <<"{\"name\":\"x\"}">>, headers => [{<<"content-type">>, <<"application/json">>}]}).
%% '''
-spec post(client() | atom(), binary(), map()) -> {ok, resp()} | {handle, handle()} | {error, err()}.
post(Client, Url, Opts) -> req(Client, Opts#{url => Url, method => post}).

%% @doc A PUT: {@link req/2} with `url' and `method' filled in.
%%
%% ```
%% {ok, #{status := 200}} = erqwest:put(C, <<"http://127.0.0.1:8080/items/1">>, #{json => #{name => <<"y">>}}).
%% '''
-spec put(client() | atom(), binary(), map()) -> {ok, resp()} | {handle, handle()} | {error, err()}.
put(Client, Url, Opts) -> req(Client, Opts#{url => Url, method => put}).

%% @doc `delete(Client, Url)' is `delete(Client, Url, #{})'; with the URL first,
%% `delete(Url, Opts)' uses the default client.
%%
%% ```
%% {ok, _} = erqwest:delete(C, <<"http://127.0.0.1:8080/items">>),
%% {ok, _} = erqwest:delete(<<"http://127.0.0.1:8080/items">>, #{timeout => 1000}).
%% '''
-spec delete(client() | atom() | binary(), binary() | map()) ->
          {ok, resp()} | {handle, handle()} | {error, err()}.
delete(Url, Opts) when is_binary(Url), is_map(Opts) -> delete(erqwest_default:name(), Url, Opts);
delete(Client, Url) -> delete(Client, Url, #{}).

%% @doc A DELETE: {@link req/2} with `url' and `method' filled in.
%%
%% ```
%% {ok, #{status := 204}} = erqwest:delete(C, <<"http://127.0.0.1:8080/items/1">>, #{timeout => 5000}).
%% '''
-spec delete(client() | atom(), binary(), map()) -> {ok, resp()} | {handle, handle()} | {error, err()}.
delete(Client, Url, Opts) -> req(Client, Opts#{url => Url, method => delete}).

%% @doc A PATCH: {@link req/2} with `url' and `method' filled in.
%%
%% ```
%% {ok, #{status := 200}} = erqwest:patch(C, <<"http://127.0.0.1:8080/items/1">>, #{json => #{done => true}}).
%% '''
-spec patch(client() | atom(), binary(), map()) -> {ok, resp()} | {handle, handle()} | {error, err()}.
patch(Client, Url, Opts) -> req(Client, Opts#{url => Url, method => patch}).

%%% Streaming

%% @doc Sends a chunk of a streamed request body, blocking while the
%% connection cannot take more. `{reply, Resp}' when the server answered
%% early. Raises `badarg' once the request takes no more body: after
%% `finish_send/1', or after the final answer.
%%
%% ```
%% {handle, H} = erqwest:post(C, Url, #{body => stream}),
%% ok = erqwest:send(H, <<"first chunk">>),
%% {ok, #{status := 200}} = erqwest:finish_send(H).
%% '''
-spec send(handle(), iodata()) -> ok | {reply, resp()} | {error, err()}.
send(#sync_handle{handle = Handle} = H, Data) ->
    owner(H),
    case erqwest_async:nif_send(Handle, Data) of
        ok ->
            case await(H) of
                next -> ok;
                Other -> stopped(H, Other)
            end;
        finished ->
            %% The answer came before this call: hand it over if it is
            %% still in the mailbox, otherwise the request is over.
            case pending_answer(H) of
                {reply, _} = Reply -> stopped(H, Reply);
                {error, _} = Error -> stopped(H, Error);
                none -> erlang:error(badarg)
            end
    end.

%% @doc Completes a streamed request body and waits for the response.
%% Raises `badarg' when called again, or after the final answer (with
%% `response_body => stream' the body is still read with {@link read/2}).
%%
%% ```
%% {handle, H} = erqwest:put(C, Url, #{body => stream}),
%% ok = erqwest:send(H, [<<"an ">>, "iolist"]),
%% {ok, Resp} = erqwest:finish_send(H).
%% '''
-spec finish_send(handle()) -> {ok, resp()} | {error, err()}.
finish_send(#sync_handle{handle = Handle} = H) ->
    owner(H),
    Answer = case erqwest_async:nif_finish_send(Handle) of
        ok -> await(H);
        finished -> pending_answer(H)
    end,
    case stopped(H, Answer) of
        {reply, Resp} -> {ok, Resp};
        {error, _} = Error -> Error;
        none -> erlang:error(badarg)
    end.

%% @doc Same as `read(Handle, #{})'.
%%
%% ```
%% {ok, #{body := H}} = erqwest:get(C, Url, #{response_body => stream}),
%% {more, Data} = erqwest:read(H).
%% '''
-spec read(handle()) -> {more, binary()} | {ok, binary()} | {error, err()}.
read(H) ->
    read(H, #{}).

%% @doc Reads a streamed response body: returns once at least `length'
%% bytes arrived (default 8 MB; it may return more) or `period' ms passed
%% (default `infinity'). `{ok, Data}' is the last chunk. Raises `badarg'
%% after the last chunk.
%%
%% ```
%% {ok, #{body := H}} = erqwest:get(C, Url, #{response_body => stream}),
%% {more, Data} = erqwest:read(H, #{length => 65536}),
%% {ok, Last} = erqwest:read(H, #{length => 65536}).
%% '''
-spec read(handle(), read_opts()) -> {more, binary()} | {ok, binary()} | {error, err()}.
read(#sync_handle{handle = Handle} = H, Opts) ->
    owner(H),
    erqwest_async:nif_read(Handle, Opts) =:= ok orelse erlang:error(badarg),
    case await(H) of
        {chunk, Data} -> {more, Data};
        {fin, Data} -> {ok, Data};
        {error, _} = Error -> Error
    end.

%% @doc Abandons a streamed request or response body. The request's final
%% message is consumed here, so none is left in the mailbox.
%%
%% ```
%% {ok, #{body := H}} = erqwest:get(C, Url, #{response_body => stream}),
%% ok = erqwest:cancel(H).
%% '''
-spec cancel(handle()) -> ok.
cancel(#sync_handle{handle = Handle} = H) ->
    owner(H),
    case erqwest_async:nif_cancel(Handle) of
        ok -> _ = stopped(H, await_final(H)), ok;
        finished -> flush(H)
    end.

%%% Internals

owner(#sync_handle{owner = Owner}) ->
    ?assertEqual(Owner, self()).

%% Waits for the next message of this request.
await(#sync_handle{ref = Ref} = H) ->
    receive
        {erqwest_response, Ref, next} -> next;
        {erqwest_response, Ref, reply, Resp} -> {reply, with_body(H, Resp)};
        {erqwest_response, Ref, chunk, Data} -> {chunk, Data};
        {erqwest_response, Ref, fin, Data} -> {fin, Data};
        {erqwest_response, Ref, error, Err} -> {error, Err}
    end.

%% The body's handle has no span: the request stopped with its head.
with_body(#sync_handle{stream_response = true} = H, Resp) ->
    Resp#{body => H#sync_handle{span = undefined}};
with_body(_, Resp) -> Resp.

%% Ends an open telemetry span with the request's answer, if it is one.
stopped(#sync_handle{span = undefined}, Answer) ->
    Answer;
stopped(#sync_handle{span = Span}, Answer) ->
    erqwest_telemetry:stop(Span, Answer),
    Answer.

%% Skips to the request's final message and returns it.
await_final(#sync_handle{ref = Ref, stream_response = Streamed} = H) ->
    receive
        {erqwest_response, Ref, error, Err} -> {error, Err};
        {erqwest_response, Ref, fin, _} -> fin;
        {erqwest_response, Ref, reply, Resp} when not Streamed -> {reply, Resp};
        {erqwest_response, Ref, next} -> await_final(H);
        {erqwest_response, Ref, _, _} -> await_final(H)
    end.

%% A reply or error already delivered but not yet received, if any.
pending_answer(#sync_handle{ref = Ref} = H) ->
    receive
        {erqwest_response, Ref, reply, Resp} -> {reply, with_body(H, Resp)};
        {erqwest_response, Ref, error, Err} -> {error, Err}
    after 0 -> none
    end.

%% The final message was delivered already; drop it if it is still queued.
flush(#sync_handle{ref = Ref} = H) ->
    receive
        {erqwest_response, Ref, next} -> flush(H);
        {erqwest_response, Ref, _, _} -> flush(H)
    after 0 -> ok
    end.

%% @private Extended error information for the shell.
-spec format_error(term(), erlang:stacktrace()) -> #{pos_integer() => unicode:chardata()}.
format_error(_Reason, [{_M, _F, _As, Info} | _]) ->
    case proplists:get_value(error_info, Info, #{}) of
        #{cause := Cause} when is_binary(Cause) -> #{1 => Cause};
        _ -> #{}
    end;
format_error(_, _) ->
    #{}.
