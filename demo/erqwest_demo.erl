%% @doc `make demo': erqwest against a server it starts on 127.0.0.1.
%%
%% Starts the in-BEAM test server from test/, then shows a GET with no
%% client made (the application's default one), a GET, a POST
%% echoed back, redirects, a gzip body, a streamed upload and download, an
%% asynchronous request, composed requests (query, JSON, form, multipart,
%% auth, a base URL, decoded JSON replies), a paginated listing,
%% server-sent events and NDJSON (an event per message, then in batches),
%% two errors, a retried request, a hedged one, timings and a client's
%% queue counts, one cookie jar and one error text for both engines and
%% a queue they share, telemetry events (when `telemetry' is on the code path:
%% `make demo PEERS_LIB=$(bash scripts/peers.sh)') and a stubbed client,
%% printing each request and reply; last, one request at a
%% time through `erqwest:req/2' (the direct path) and through reqwest,
%% over HTTP/1.1, HTTPS, and HTTPS with HTTP/2 (against nginx, when the
%% machine has it: `make deps' installs it).
-module(erqwest_demo).

-export([main/0, print_event/4]).
%% The guides (guides/*.md) run against this server from a shell.
-export([server/0, handle/1]).

main() ->
    {ok, _} = application:ensure_all_started(erqwest),
    new_counters(),
    {ok, Server} = erqwest_test_server:start(fun handle/1),
    Url = fun(Path) -> erqwest_test_server:url(Server, Path) end,
    io:format("erqwest demo: a local HTTP server on ~s~n~n", [Url("")]),
    %% No client made: the application's default one (erqwest_default).
    show("GET /hello with no setup: erqwest:get(Url)", erqwest:get(Url("/hello"))),
    C = erqwest:make_client(),

    show("GET /hello", erqwest:get(C, Url("/hello"))),
    show("POST /echo with a body",
         erqwest:post(C, Url("/echo"), #{body => <<"{\"greeting\":\"hi\"}">>,
                                        headers => [{<<"content-type">>, <<"application/json">>}]})),
    show("GET /redirect (followed)", erqwest:get(C, Url("/redirect"))),
    show("GET /gzip (decoded)", erqwest:get(C, Url("/gzip"))),

    io:format("--> streamed upload: POST /echo in three chunks~n"),
    {handle, H} = erqwest:post(C, Url("/echo"), #{body => stream}),
    [ok = erqwest:send(H, Part) || Part <- [<<"one ">>, <<"two ">>, <<"three">>]],
    show_reply(erqwest:finish_send(H)),

    io:format("--> streamed download: GET /big, read in 64 KB pieces~n"),
    {ok, #{body := RH}} = erqwest:get(C, Url("/big"), #{response_body => stream}),
    {Pieces, Bytes} = read_all(RH, 0, 0),
    io:format("<-- ~b bytes in ~b reads~n~n", [Bytes, Pieces]),

    io:format("--> asynchronous GET /hello~n"),
    _ = erqwest_async:req(C, self(), demo_ref, #{method => get, url => Url("/hello")}),
    receive
        {erqwest_response, demo_ref, reply, Resp} ->
            io:format("<-- message {erqwest_response, demo_ref, reply, #{status => ~b, ...}}~n~n",
                      [maps:get(status, Resp)])
    after 5000 -> io:format("<-- no reply~n~n")
    end,

    io:format("--> server-sent events: POST /v1/chat (a JSON body), data => json~n"),
    EvRef = make_ref(),
    EvH = erqwest_events:open(C, self(), EvRef,
                              #{method => post, url => Url("/v1/chat"),
                                headers => [{<<"content-type">>, <<"application/json">>}],
                                body => <<"{\"model\":\"demo\",\"stream\":true}">>},
                              #{data => json, active => 2, reconnect => false}),
    show_events(EvH, EvRef),

    io:format("--> NDJSON: GET /watch, one term per line~n"),
    NdRef = make_ref(),
    NdH = erqwest_events:open(C, self(), NdRef, #{method => get, url => Url("/watch")},
                              #{format => ndjson, active => 10}),
    show_events(NdH, NdRef),
    io:format("--> the same NDJSON with batch => true: lists of events, credit still per event~n"),
    BaRef = make_ref(),
    BaH = erqwest_events:open(C, self(), BaRef, #{method => get, url => Url("/watch")},
                              #{format => ndjson, active => 2, batch => true}),
    show_events(BaH, BaRef),
    compose(Url),

    io:format("--> paginated GET /pages (Link: rel=\"next\"), next page prefetched~n"),
    {ok, Bodies} = erqwest_pages:to_list(
        erqwest_pages:new(C, #{method => get, url => Url("/pages")}, #{next => link})),
    io:format("<-- ~b pages: ~s~n~n", [length(Bodies), lists:join(" | ", [B || #{body := B} <- Bodies])]),

    show("GET a port nobody listens on", erqwest:get(C, <<"http://127.0.0.1:1/">>)),
    show("GET /slow with a 200 ms timeout", erqwest:get(C, Url("/slow"), #{timeout => 200})),
    %% A decompression bomb: ~1 MB of gzip that inflates to 1 GiB. The
    %% default max_body (1 GiB) would stop it too; 64 MB stops it sooner.
    show("GET /bomb (1 MB of gzip, 1 GiB inflated) with max_body => 64 MB",
         erqwest:get(C, Url("/bomb"), #{max_body => 64 * 1024 * 1024})),

    resilience(C, Url),
    cookies(Url),
    one_behaviour(Url),
    hooks(C, Url),
    one_at_a_time("plain HTTP/1.1", C, Url("/echo")),
    over_tls(),

    erqwest_test_server:stop(Server),
    io:format("demo done~n").

%% @doc Starts the demo's server on 127.0.0.1 (a random port) and returns
%% its base URL, for the guides: `erqwest_demo:server()' in `make
%% shell-erl' (or `:erqwest_demo.server()' in `make shell') after
%% compiling `test/erqwest_test_server.erl' and this file. Its paths:
%% `/hello', `/echo', `/redirect', `/gzip', `/big', `/pages', `/slow',
%% `/flaky', `/sometimes-slow', `/api/...', `/v1/chat', `/watch', `/ops'.
-spec server() -> binary().
server() ->
    {ok, _} = application:ensure_all_started(erqwest),
    new_counters(),
    {ok, Server} = erqwest_test_server:start(fun handle/1),
    iolist_to_binary(erqwest_test_server:url(Server, "")).

handle(#{path := <<"/v1/chat">>}) ->
    {200, [{"content-type", "text/event-stream"}],
     [<<"data: {\"choices\":[{\"delta\":{\"content\":\"Hello\"}}]}\n\n">>,
      <<": a comment, ignored\r\nid: 2\r\ndata: {\"choices\":[{\"delta\":{\"content\":\" there\"}}]}\r\n\r\n">>,
      <<"event: done\ndata: [DONE]\n\n">>]};
handle(#{path := <<"/watch">>}) ->
    {200, [{"content-type", "application/x-ndjson"}],
     <<"{\"type\":\"ADDED\",\"name\":\"a\"}\n{\"type\":\"DELETED\",\"name\":\"a\"}\nnot json\n">>};
handle(#{path := <<"/login">>}) ->
    {200, [{"set-cookie", "session=s3cr3t; Path=/"}], <<"logged in">>};
handle(#{path := <<"/whoami">>, headers := Hs}) ->
    {200, [], proplists:get_value(<<"cookie">>, Hs, <<"no cookie">>)};
handle(#{path := <<"/hello">>}) ->
    {200, [{"content-type", "text/plain"}], <<"Hello from the local server!">>};
handle(#{path := <<"/echo">>, body := Body, headers := Hs}) ->
    {200, [{"content-type", proplists:get_value(<<"content-type">>, Hs, <<"text/plain">>)}], Body};
handle(#{path := <<"/redirect">>}) ->
    {302, [{"location", "/hello"}], <<>>};
handle(#{path := <<"/gzip">>}) ->
    {200, [{"content-encoding", "gzip"}], zlib:gzip(<<"this body travelled gzipped">>)};
handle(#{path := <<"/bomb">>}) ->
    {200, [{"content-encoding", "gzip"}], bomb(1 bsl 30)};
handle(#{path := <<"/big">>}) ->
    {200, [], binary:copy(<<"erqwest!">>, 128 * 1024)};
handle(#{path := <<"/pages", Query/binary>>}) ->
    K = case Query of <<"?page=", N/binary>> -> binary_to_integer(N); _ -> 1 end,
    Next = [{"link", ["</pages?page=", integer_to_list(K + 1), ">; rel=\"next\""]} || K < 3],
    {200, Next, ["items of page ", integer_to_list(K)]};
handle(#{path := <<"/slow">>}) ->
    {custom, fun(_Sock, _Req) -> timer:sleep(2000), close end};
handle(#{path := <<"/flaky">>}) ->
    %% 503 to every other request.
    case counters:get(demo_counters(), 1) rem 2 of
        0 -> counters:add(demo_counters(), 1, 1), {503, [], <<"try again">>};
        1 -> counters:add(demo_counters(), 1, 1), {200, [], <<"fine now">>}
    end;
handle(#{path := <<"/sometimes-slow">>}) ->
    %% The first request is held for a second, the others answer at once.
    case counters:get(demo_counters(), 2) of
        0 ->
            counters:add(demo_counters(), 2, 1),
            {custom, fun(Sock, Req) ->
                timer:sleep(1000),
                _ = erqwest_test_server:send_response({gen_tcp, Sock}, {200, [], <<"slow">>}, Req),
                close
            end};
        _ -> {200, [], <<"fast">>}
    end;
handle(#{path := <<"/api/", _/binary>> = Path, method := M, headers := Hs, body := Body}) ->
    %% What the request looked like on the wire, as JSON.
    Seen = #{method => M, path => Path, body => Body,
             authorization => proplists:get_value(<<"authorization">>, Hs, null),
             content_type => proplists:get_value(<<"content-type">>, Hs, null)},
    {ok, Json} = erqwest_json:encode(Seen),
    {200, [{"content-type", "application/json"}], Json};
handle(#{path := <<"/ops">>, method := <<"POST">>}) ->
    %% A long-running operation: 202 and a status URL, which reports
    %% running once, then succeeded with the result inline.
    ok = counters:put(demo_counters(), 3, 0),
    {202, [{"location", "/ops/status"}], <<>>};
handle(#{path := <<"/ops/status">>}) ->
    counters:add(demo_counters(), 3, 1),
    Json = case counters:get(demo_counters(), 3) of
        1 -> <<"{\"status\":\"Running\",\"percentComplete\":50}">>;
        _ -> <<"{\"state\":\"succeeded\",\"result\":{\"rows\":3}}">>
    end,
    {200, [{"content-type", "application/json"}], Json};
handle(_) ->
    {404, [], <<"not found">>}.

%% Query strings, JSON, form and multipart bodies, auth and a base URL,
%% with JSON replies decoded on the runtime's threads.
compose(Url) ->
    io:format("--> a client with base_url, bearer auth and decode => auto~n~n"),
    C = erqwest:make_client(#{base_url => Url("/api/v1"), auth => {bearer, <<"demo-token">>},
                              decode => auto}),
    show_term("GET /users with query => [{page, 2}, {q, <<\"a b\">>}]",
              erqwest:get(C, <<"/users">>, #{query => [{page, 2}, {q, <<"a b">>}]})),
    show_term("POST /users with json => #{name => <<\"Ada\">>, tags => [1, null]}",
              erqwest:post(C, <<"/users">>, #{json => #{name => <<"Ada">>, tags => [1, null]}})),
    show_term("POST /login with form and basic auth",
              erqwest:post(C, <<"/login">>, #{form => [{user, <<"ada">>}, {pass, <<"s3cret">>}],
                                              auth => {basic, <<"ada">>, <<"s3cret">>}})),
    File = filename:join(filename:basedir(user_cache, "erqwest-demo"), "note.txt"),
    ok = filelib:ensure_dir(File),
    ok = file:write_file(File, <<"a file streamed from disk">>),
    {ok, #{body := #{<<"content_type">> := Ct, <<"body">> := MBody}}} =
        erqwest:post(C, <<"/upload">>, #{multipart => [{<<"kind">>, <<"note">>},
                                                       #{name => file, file => File}]}),
    io:format("--> POST /upload with multipart (a text part and a file part)~n"
              "<-- the server saw ~s, ~b bytes~n~n", [Ct, byte_size(MBody)]),
    _ = file:delete(File),
    show_term("erqwest_json:decode(<<\"[1, 2.5, \\\"x\\\", null]\">>)",
              erqwest_json:decode(<<"[1, 2.5, \"x\", null]">>)),
    show_term("erqwest_json:encode(#{a => {tuple}})", erqwest_json:encode(#{a => {tuple}})).

show_term(What, Result) ->
    io:format("--> ~s~n", [What]),
    case Result of
        {ok, #{status := Status, body := Body}} -> io:format("<-- ~b, decoded body:~n    ~tp~n~n", [Status, Body]);
        Other -> io:format("<-- ~tp~n~n", [Other])
    end.

%% One cookie jar per client, whichever engine answers: set through
%% erqwest:get/2 (the scheduler engine), sent by erqwest_async (the
%% runtime engine).
cookies(Url) ->
    C = erqwest:make_client(#{cookie_store => true}),
    io:format("--> cookie_store => true: GET /login on the scheduler engine, then GET /whoami through erqwest_async~n"),
    {ok, _} = erqwest:get(C, Url("/login")),
    Ref = make_ref(),
    _ = erqwest_async:req(C, self(), Ref, #{method => get, url => Url("/whoami")}),
    receive
        {erqwest_response, Ref, reply, #{body := Who}} -> io:format("<-- the runtime engine sent: ~s~n~n", [Who])
    after 5000 -> io:format("<-- no reply~n~n")
    end.

%% One behaviour whichever engine answers: the same error, reason text
%% included, from erqwest:get/2 (the scheduler engine) and erqwest_async
%% (the runtime engine); and one FIFO queue per host for both, so a
%% limited client's requests from either wait in turn.
one_behaviour(Url) ->
    C = erqwest:make_client(#{max_in_flight_per_host => 1, timings => true}),
    Refused = iolist_to_binary(["http://127.0.0.1:", integer_to_list(erqwest_test_peers:free_port()), "/"]),
    io:format("--> GET a closed port on both engines~n"),
    {error, #{reason := R1}} = erqwest:get(C, Refused),
    Ref = make_ref(),
    _ = erqwest_async:req(C, self(), Ref, #{method => get, url => Refused}),
    R2 = receive {erqwest_response, Ref, error, #{reason := R}} -> R after 5000 -> none end,
    io:format("<-- scheduler engine: ~s~n<-- runtime engine:   ~s~n<-- the same: ~p~n~n", [R1, R2, R1 =:= R2]),
    io:format("--> max_in_flight_per_host => 1: three GET /hello at once, from erqwest:get/2 and erqwest_async~n"),
    Self = self(),
    [spawn(fun() -> Self ! {demo_queued, N, erqwest:get(C, Url("/hello"))} end) || N <- [1, 2]],
    Ref3 = make_ref(),
    _ = erqwest_async:req(C, self(), Ref3, #{method => get, url => Url("/hello")}),
    [receive
         {demo_queued, N, {ok, #{status := St, timings := #{queued := Q}}}} ->
             io:format("<-- erqwest:get/2 #~b: ~b after ~b us in the queue~n", [N, St, Q])
     after 5000 -> io:format("<-- no reply~n")
     end || _ <- [1, 2]],
    receive
        {erqwest_response, Ref3, reply, #{status := St3, timings := #{queued := Q3}}} ->
            io:format("<-- erqwest_async: ~b after ~b us in the queue~n", [St3, Q3])
    after 5000 -> io:format("<-- no reply~n")
    end,
    io:format("    client_info afterwards: ~p~n~n", [erqwest:client_info(C)]).

%% `Size' zero bytes gzipped, a mebibyte at a time.
bomb(Size) ->
    Z = zlib:open(),
    ok = zlib:deflateInit(Z, default, deflated, 31, 8, default),
    Zeros = <<0:(8 * 1024 * 1024)>>,
    Parts = [zlib:deflate(Z, Zeros) || _ <- lists:seq(1, Size div (1024 * 1024))],
    Last = zlib:deflate(Z, <<>>, finish),
    ok = zlib:deflateEnd(Z),
    zlib:close(Z),
    iolist_to_binary([Parts, Last]).

demo_counters() -> persistent_term:get({?MODULE, counters}).

%% Telemetry events and a stubbed client (guides/telemetry-and-stubs.md: "Telemetry", "Stubbing
%% erqwest in tests").
hooks(C, Url) ->
    case code:ensure_loaded(telemetry) of
        {module, telemetry} ->
            {ok, _} = application:ensure_all_started(telemetry),
            Events = [[erqwest, request, start], [erqwest, request, retry],
                      [erqwest, request, stop]],
            ok = telemetry:attach_many(erqwest_demo, Events, fun ?MODULE:print_event/4, []),
            io:format("--> telemetry: GET /flaky with retry => #{base => 50}, a handler printing events~n"),
            {ok, _} = erqwest:get(C, Url("/flaky"), #{retry => #{base => 50}}),
            ok = telemetry:detach(erqwest_demo),
            io:format("~n");
        _ ->
            io:format("--> telemetry: not on the code path "
                      "(make demo PEERS_LIB=$(bash scripts/peers.sh) shows its events)~n~n")
    end,
    ok = erqwest_test:stub(demo_stubbed, fun(#{method := M, url := U}) ->
        #{status => 200, body => iolist_to_binary(["stubbed answer to ", atom_to_list(M), " ", U])}
    end),
    io:format("--> GET on a stubbed client (erqwest_test:stub/2, no server)~n"),
    {ok, #{status := Status, body := Body}} = erqwest:get(demo_stubbed, <<"http://api.example/anything">>),
    io:format("<-- ~b ~s~n~n", [Status, Body]).

-spec print_event([atom()], map(), map(), term()) -> ok.
print_event(Event, Measurements, Meta, _) ->
    Shown = maps:with([status, error, attempts, path], Meta),
    M = maps:map(fun(duration, D) -> {erlang:convert_time_unit(D, native, microsecond), us};
                    (_, V) -> V
                 end, maps:without([monotonic_time, system_time], Measurements)),
    io:format("<-- event ~0p ~0p ~0p~n", [Event, M, Shown]).

new_counters() -> persistent_term:put({?MODULE, counters}, counters:new(3, [])).

%% Retries, hedging, timings and limits (guides/resilience.md).
resilience(C, Url) ->
    ok = counters:put(demo_counters(), 1, 0),
    ok = counters:put(demo_counters(), 2, 0),
    io:format("--> GET /flaky (503, then 200) with retry => #{base => 50}~n"),
    {ok, #{status := S1, attempts := A1}} = erqwest:get(C, Url("/flaky"), #{retry => #{base => 50}}),
    io:format("<-- ~b after ~b attempts~n~n", [S1, A1]),

    io:format("--> GET /sometimes-slow (first reply held 1 s) with hedge => #{delay => 50}~n"),
    T0 = erlang:monotonic_time(millisecond),
    {ok, #{body := B2, attempts := A2}} =
        erqwest:get(C, Url("/sometimes-slow"), #{hedge => #{delay => 50}}),
    io:format("<-- ~s in ~b ms, ~b attempts (the slow one was dropped)~n~n",
              [B2, erlang:monotonic_time(millisecond) - T0, A2]),

    io:format("--> GET /hello twice with timings => true, on a new client (the scheduler engine times its own connect)~n"),
    T = erqwest:make_client(#{timings => true, max_in_flight_per_host => 4}),
    [begin
         {ok, #{timings := Tm}} = erqwest:get(T, Url("/hello")),
         io:format("<-- timings (us) ~p~n", [Tm])
     end || _ <- [1, 2]],
    io:format("    client_info: ~p~n~n", [erqwest:client_info(T)]).

%% Plain HTTP/1.1 with a binary body: erqwest:req/2 answers it on the
%% caller's scheduler; erqwest_async always goes through reqwest's tasks.
%% The same over HTTPS, against a TLS server started here with a CA made
%% for it (openssl): the direct path reads and writes the TLS records in
%% its NIF calls, and only the handshake runs on a tokio thread.
over_tls() ->
    {ok, _} = application:ensure_all_started(ssl),
    Dir = "_build/demo/certs",
    #{server_cert := Cert, server_key := Key, ca := Ca} = erqwest_test_certs:make(Dir),
    {ok, Tls} = erqwest_test_server:start(fun handle/1, #{tls => [{certfile, Cert}, {keyfile, Key}]}),
    C = erqwest:make_client(#{additional_root_certs => [erqwest_test_certs:der(Ca)]}),
    show("GET /hello over HTTPS", erqwest:get(C, erqwest_test_server:url(Tls, "/hello"))),
    one_at_a_time("HTTPS", C, erqwest_test_server:url(Tls, "/echo")),
    erqwest_test_server:stop(Tls),
    over_h2(Cert, Key, C).

%% HTTP/2 over TLS: nginx picks h2 in ALPN, and the direct path drives
%% hyper's HTTP/2 client in its NIF calls as it does HTTP/1.1.
over_h2(Cert, Key, C) ->
    Dir = filename:absname("_build/demo/nginx"),
    Port = erqwest_test_peers:free_port(),
    Servers = ["  server { listen 127.0.0.1:", integer_to_list(Port), " ssl http2;\n",
               "    ssl_certificate ", filename:absname(Cert), ";\n",
               "    ssl_certificate_key ", filename:absname(Key), ";\n",
               "    location / { return 200 \"hello over $server_protocol\"; }\n  }\n"],
    try erqwest_test_peers:start_nginx(Dir, #{servers => Servers, ports => [Port]}) of
        Nginx ->
            Url = fun(Path) -> iolist_to_binary(["https://localhost:", integer_to_list(Port), Path]) end,
            show("GET /hello over HTTPS, HTTP/2 (nginx)", erqwest:get(C, Url("/hello"))),
            one_at_a_time("HTTPS + HTTP/2 (nginx)", C, Url("/echo")),
            erqwest_test_peers:stop(Nginx)
    catch
        _:Why -> io:format("--> HTTP/2 over HTTPS skipped: no nginx here (~p)~n~n", [Why])
    end.

one_at_a_time(Label, C, Url) ->
    N = 2000,
    io:format("--> ~s: ~b POSTs of 10 bytes one at a time, erqwest:req/2 (direct path) "
              "and erqwest_async (tokio tasks through reqwest)~n", [Label, N]),
    Req = #{method => post, url => Url, body => <<"0123456789">>},
    Sync = fun() -> {ok, #{status := 200}} = erqwest:req(C, Req) end,
    Async = fun() ->
                    Ref = make_ref(),
                    _ = erqwest_async:req(C, self(), Ref, Req),
                    receive {erqwest_response, Ref, reply, #{status := 200}} -> ok end
            end,
    [F() || F <- [Sync, Async]],                  % a connection for each path
    {TSync, _} = timer:tc(fun() -> repeat(N, Sync) end),
    {TAsync, _} = timer:tc(fun() -> repeat(N, Async) end),
    io:format("<-- ~.1f us per request on the direct path, ~.1f us through reqwest "
              "(the server runs in this VM too)~n~n", [TSync / N, TAsync / N]).

repeat(0, _) -> ok;
repeat(N, F) -> F(), repeat(N - 1, F).

show(What, Result) ->
    io:format("--> ~s~n", [What]),
    show_reply(Result).

show_reply({ok, #{status := Status, headers := Headers, body := Body} = Resp}) ->
    io:format("<-- ~s ~b, ~b headers, final url ~s~n    body: ~s~n~n",
              [maps:get(version, Resp), Status, length(Headers), maps:get(url, Resp), Body]);
show_reply({error, #{code := Code, reason := Reason}}) ->
    io:format("<-- error ~p: ~s~n~n", [Code, Reason]).

read_all(H, Pieces, Bytes) ->
    case erqwest:read(H, #{length => 65536}) of
        {more, D} -> read_all(H, Pieces + 1, Bytes + byte_size(D));
        {ok, D} -> {Pieces + 1, Bytes + byte_size(D)}
    end.

%% Prints each message of an event stream until its final one, giving
%% credit when it runs out.
show_events(H, Ref) ->
    receive
        {erqwest_events, Ref, open, #{status := S}} ->
            io:format("<-- open, status ~b~n", [S]), show_events(H, Ref);
        {erqwest_events, Ref, event, E} ->
            io:format("<-- event ~0p~n", [E]), show_events(H, Ref);
        {erqwest_events, Ref, events, Es} ->
            io:format("<-- events (~b) ~0p~n", [length(Es), Es]), show_events(H, Ref);
        {erqwest_events, Ref, passive} ->
            io:format("<-- passive (credit used up): erqwest_events:active(H, 2)~n"),
            ok = erqwest_events:active(H, 2),
            show_events(H, Ref);
        {erqwest_events, Ref, closed, Reason} ->
            io:format("<-- closed, ~p~n~n", [Reason]);
        {erqwest_events, Ref, error, Err} ->
            io:format("<-- error ~0p~n~n", [Err])
    after 5000 -> io:format("<-- no message~n~n")
    end.
