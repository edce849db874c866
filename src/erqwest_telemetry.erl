%% @doc `telemetry' events for erqwest's requests.
%%
%% erqwest emits these events when the `telemetry' application is running
%% (its module is loaded and its handler table exists); `telemetry' is an
%% optional dependency, which erqwest never starts or requires. With it
%% absent (or never called, so not loaded), a request pays one
%% `erlang:module_loaded/1', the price of a `persistent_term' read and
%% never stale (see the guide "Telemetry and test stubs").
%%
%% Events, named as Finch names its own; durations are in `native' time
%% units (`erlang:convert_time_unit/3'):
%%
%% <ul>
%% <li>`[erqwest, request, start]': `#{system_time, monotonic_time}'.</li>
%% <li>`[erqwest, request, stop]': `#{duration, monotonic_time}', with the
%%   answer in the metadata: `status' (or `nil'), `error' (the
%%   `err()' code, or `nil'), `attempts' and `result' (`{ok, Resp}'
%%   or `{error, Err}'). An HTTP error status is a `stop' with that status;
%%   a transport error (refused, timeout, cancelled ...) is a `stop' with
%%   its `error' code.</li>
%% <li>`[erqwest, request, exception]': `#{duration, monotonic_time}' when
%%   the call raised (a bad option): `kind', `reason', `stacktrace'.</li>
%% <li>`[erqwest, request, retry]': `#{attempt}', once per attempt after
%%   the first, just before `stop'. Retries happen inside the runtime;
%%   the caller learns how many there were from the answer's `attempts',
%%   so these events come together when the answer arrives. With hedging
%%   on, hedged copies are attempts too and are counted the same way.</li>
%% <li>`[erqwest, queue, stop]' and `[erqwest, connect, stop]':
%%   `#{duration}', the time the request waited for room under the
%%   client's limits and the time a new connection took (not emitted for a
%%   reused one), from the answer's own `timings' (either engine); only
%%   for requests with `timings => true', just before `stop'. The connect event's
%%   metadata adds `remote_addr'.</li>
%% </ul>
%%
%% Every event's metadata has `client' (the name of a named client, or
%% `nil'), `method', `url', `scheme', `host', `port' and `path' (parsed
%% from the URL as given: a path-only URL under `base_url' has `nil'
%% scheme, host and port). A value that is not there is `nil', as Elixir
%% handlers expect, in both languages.
%%
%% Where the events are emitted: {@link erqwest:req/2} and everything on
%% top of it (`get/3' ..., the Elixir `Erqwest' API, and so the Req and
%% Tesla adapters) emit them from the calling process, around its wait.
%% With `body => stream' the `stop' comes from the call that gets the
%% answer (`send/2', `finish_send/1', or `cancel/1'); with
%% `response_body => stream' the request stops when the head arrives
%% (reading the body is not part of it).
%%
%% {@link erqwest_pages}, {@link erqwest_operation} and
%% {@link erqwest_events} emit nothing yet.
%%
%% {@link erqwest_async} emits nothing by itself: its answers go to a
%% process that may not be the caller. Start such a request with
%% {@link async_req/4} instead, and hand its final message to
%% {@link async_stop/2} in the process that receives it:
%% ```
%% {H, Span} = erqwest_telemetry:async_req(Client, self(), Ref, Opts),
%% receive
%%     {erqwest_response, Ref, _, _} = Msg -> erqwest_telemetry:async_stop(Span, Msg)
%% end.
%% '''
-module(erqwest_telemetry).

-export([enabled/0, async_req/4, async_stop/2]).
-export([sync/3, stop/2]).

-export_type([span/0]).

-record(span, {start :: integer(), meta :: map()}).
-opaque span() :: #span{}.
%% One request's events in flight, from {@link async_req/4} to
%% {@link async_stop/2}: `{H, Span} = erqwest_telemetry:async_req(C, self(), Ref, Req)'.

%% @doc Whether events are emitted now: the `telemetry' application is
%% running.
-spec enabled() -> boolean().
enabled() ->
    %% The module check first: it is as cheap as a persistent_term read,
    %% while ets:whereis/1 costs several times more. A module loaded but not
    %% running (its table absent) would log a warning per event.
    erlang:module_loaded(telemetry)
        andalso ets:whereis(telemetry_handler_table) =/= undefined.

%% @doc Starts an `erqwest_async' request and its `start' event. Returns
%% the handle and the span to give {@link async_stop/2} with the final
%% message (`undefined' when `telemetry' is not running).
-spec async_req(erqwest:client() | atom(), pid(), term(), erqwest:req_opts()) ->
    {erqwest_async:handle(), span() | undefined}.
async_req(Client, Pid, Ref, Opts) ->
    case enabled() of
        false ->
            {erqwest_async:req(Client, Pid, Ref, Opts), undefined};
        true ->
            Span = start(Client, Opts),
            try erqwest_async:req(Client, Pid, Ref, Opts) of
                Handle -> {Handle, Span}
            catch
                Class:Reason:Stack -> exception(Span, Class, Reason, Stack)
            end
    end.

%% @doc Ends the span of {@link async_req/4} with the request's message:
%% the `reply' or `error' message (or `{reply, Resp}' / `{error, Err}'),
%% emitting `retry', `queue', `connect' and `stop'. Other messages
%% (`next', `chunk', `fin') are ignored, so that every message of the
%% request may be passed. Call it once per span.
-spec async_stop(span() | undefined, term()) -> ok.
async_stop(Span, {erqwest_response, _Ref, Kind, Value}) when Kind =:= reply; Kind =:= error ->
    stop(Span, {Kind, Value});
async_stop(Span, {Kind, _} = Answer) when Kind =:= reply; Kind =:= error ->
    stop(Span, Answer);
async_stop(_Span, _Other) ->
    ok.

%% @private The span around a synchronous request: `Fun(Client, Opts,
%% Span)' makes it. `{handle, _}' leaves the span open for the call that
%% gets the answer (erqwest:send/2, finish_send/1, cancel/1).
-spec sync(erqwest:client() | atom(), erqwest:req_opts(),
           fun((erqwest:client() | atom(), erqwest:req_opts(), span() | undefined) -> Answer)) ->
    Answer.
sync(Client, Opts, Fun) ->
    Span = start(Client, Opts),
    try Fun(Client, Opts, Span) of
        {handle, _} = Open ->
            Open;
        Answer ->
            stop(Span, Answer),
            Answer
    catch
        Class:Reason:Stack -> exception(Span, Class, Reason, Stack)
    end.

%% @private Ends a span with the answer; `undefined' (no span) does nothing.
-spec stop(span() | undefined, {ok | reply, erqwest:resp()} | {error, erqwest:err()} | term()) -> ok.
stop(undefined, _Answer) ->
    ok;
stop(#span{start = Start, meta = Meta}, Answer) ->
    Now = erlang:monotonic_time(),
    {Status, Code, Extra} = case Answer of
        {Ok, #{status := S} = R} when Ok =:= ok; Ok =:= reply -> {S, nil, R};
        {error, #{code := C} = E} -> {maps:get(status, E, nil), C, E};
        _ -> {nil, nil, #{}}
    end,
    Attempts = maps:get(attempts, Extra, 1),
    _ = [execute([erqwest, request, retry], #{attempt => N}, Meta)
         || N <- lists:seq(2, max(1, Attempts))],
    timings(maps:get(timings, Extra, #{}), Meta),
    Result = case Answer of
        {reply, R1} -> {ok, R1};
        _ -> Answer
    end,
    execute([erqwest, request, stop], #{duration => Now - Start, monotonic_time => Now},
            Meta#{status => Status, error => Code, attempts => Attempts, result => Result}),
    ok.

%%% Internals

start(Client, Opts) ->
    Meta = metadata(Client, Opts),
    Start = erlang:monotonic_time(),
    execute([erqwest, request, start],
            #{system_time => erlang:system_time(), monotonic_time => Start}, Meta),
    #span{start = Start, meta = Meta}.

-spec exception(span(), error | exit | throw, term(), erlang:stacktrace()) -> no_return().
exception(#span{start = Start, meta = Meta}, Class, Reason, Stack) ->
    Now = erlang:monotonic_time(),
    execute([erqwest, request, exception], #{duration => Now - Start, monotonic_time => Now},
            Meta#{kind => Class, reason => Reason, stacktrace => Stack}),
    erlang:raise(Class, Reason, Stack).

timings(#{queued := Queued} = T, Meta) ->
    execute([erqwest, queue, stop], #{duration => native(Queued)}, Meta),
    case T of
        #{connect := Connect} ->
            execute([erqwest, connect, stop], #{duration => native(Connect)},
                    Meta#{remote_addr => maps:get(remote_addr, T, nil)});
        _ ->
            ok
    end;
timings(_, _Meta) ->
    ok.

native(Micros) ->
    erlang:convert_time_unit(Micros, microsecond, native).

metadata(Client, Opts) ->
    Url = maps:get(url, Opts, nil),
    {Scheme, Host, Port, Path} = case is_binary(Url) of
        true -> split_url(Url);
        false -> {nil, nil, nil, nil}
    end,
    #{client => case is_atom(Client) of true -> Client; false -> nil end,
      method => maps:get(method, Opts, nil),
      url => Url,
      scheme => Scheme,
      host => Host,
      port => Port,
      path => Path}.

%% Scheme, host, port and path of a URL, for metadata only (the NIF
%% parses it for real). Scanned by hand: uri_string:parse/1 and
%% binary:split/2 (which compiles its pattern on every call) each took
%% microseconds, more than the events themselves.
split_url(Url) ->
    case scheme_end(Url, 0) of
        nomatch ->
            {nil, nil, nil, path(Url)};
        N ->
            Scheme = binary:part(Url, 0, N),
            Rest = binary:part(Url, N + 3, byte_size(Url) - N - 3),
            A = authority_end(Rest, 0),
            Authority = binary:part(Rest, 0, A),
            Path = path(binary:part(Rest, A, byte_size(Rest) - A)),
            {Host, Port} = host_port(last_at(Authority, Authority), Scheme),
            {Scheme, Host, Port, Path}
    end.

%% Where "://" starts after a scheme's characters (RFC 3986: a letter,
%% then letters, digits, "+", "-", "."). These loops walk the binary's
%% tail, which the compiler turns into one match context.
scheme_end(<<"://", _/binary>>, N) when N > 0 ->
    N;
scheme_end(<<C, Rest/binary>>, N) when (C >= $a andalso C =< $z); (C >= $A andalso C =< $Z);
                                       (C >= $0 andalso C =< $9); C =:= $+; C =:= $-;
                                       C =:= $. ->
    scheme_end(Rest, N + 1);
scheme_end(_, _N) ->
    nomatch.

%% Offsets of the first byte that ends a part, or the size.
authority_end(<<C, _/binary>>, N) when C =:= $/; C =:= $?; C =:= $# -> N;
authority_end(<<_, Rest/binary>>, N) -> authority_end(Rest, N + 1);
authority_end(<<>>, N) -> N.

path_end(<<C, _/binary>>, N) when C =:= $?; C =:= $# -> N;
path_end(<<_, Rest/binary>>, N) -> path_end(Rest, N + 1);
path_end(<<>>, N) -> N.

byte_at(<<B, _/binary>>, N, B) -> N;
byte_at(<<_, Rest/binary>>, N, B) -> byte_at(Rest, N + 1, B);
byte_at(<<>>, N, _B) -> N.

path(PathEtc) ->
    binary:part(PathEtc, 0, path_end(PathEtc, 0)).

%% What follows the last "@" (user information is not metadata).
last_at(<<$@, Rest/binary>>, _After) -> last_at(Rest, Rest);
last_at(<<_, Rest/binary>>, After) -> last_at(Rest, After);
last_at(<<>>, After) -> After.

%% An IPv6 host without its brackets, as uri_string gives it.
host_port(<<"[", Bracketed/binary>>, Scheme) ->
    case byte_at(Bracketed, 0, $]) of
        N when N < byte_size(Bracketed) ->
            case binary:part(Bracketed, N + 1, byte_size(Bracketed) - N - 1) of
                <<":", Port/binary>> -> {binary:part(Bracketed, 0, N), port(Port, Scheme)};
                _ -> {binary:part(Bracketed, 0, N), default_port(Scheme)}
            end;
        _ ->
            {Bracketed, default_port(Scheme)}
    end;
host_port(HostPort, Scheme) ->
    case byte_at(HostPort, 0, $:) of
        N when N < byte_size(HostPort) ->
            {binary:part(HostPort, 0, N),
             port(binary:part(HostPort, N + 1, byte_size(HostPort) - N - 1), Scheme)};
        _ ->
            {HostPort, default_port(Scheme)}
    end.

port(<<>>, Scheme) ->
    default_port(Scheme);
port(Digits, _Scheme) ->
    try binary_to_integer(Digits) catch error:badarg -> nil end.

default_port(<<"http">>) -> 80;
default_port(<<"https">>) -> 443;
default_port(Scheme) ->
    case string:lowercase(Scheme) of
        <<"http">> -> 80;
        <<"https">> -> 443;
        _ -> nil
    end.

%% Called through a module held in a variable: `telemetry' is optional,
%% so neither the compiler, xref nor Dialyzer may require it.
execute(Event, Measurements, Meta) ->
    Mod = telemetry_module(),
    Mod:execute(Event, Measurements, Meta).

telemetry_module() -> telemetry.
