%% @doc An operation server in the BEAM for the operation tests, built on
%% {@link erqwest_test_server}. It speaks both documents the poller
%% follows: the operation resource style (`state', `result', `problem')
%% and the OData/Azure style (`status', `percentComplete').
%%
%% Each operation follows a script registered with {@link new/2}:
%% ```
%% {ok, S} = erqwest_operation_server:start(),
%% Id = erqwest_operation_server:new(S, #{polls => [{go, running}, {go, succeeded, #{result => #{n => 1}}}]}),
%% Url = erqwest_operation_server:url(S, Id),   % POST here to start it
%% '''
%% `POST /ops/Id' answers `accepted' (default: 202 with `Location:
%% /ops/Id/status' and an Accepted body); each `GET /ops/Id/status' answers
%% the next step of `polls' (the last one repeats); `GET /ops/Id/result'
%% answers `result'. In header values and bodies, `$ID' and `$BASE'
%% (`http://127.0.0.1:Port') are replaced. Steps:
%% <ul>
%% <li>`{go, State}', `{go, State, Extra}', `{go, State, Extra, Headers}':
%%     200 with `{"id":..,"state":State}' merged with `Extra';</li>
%% <li>`{azure, Status, Pct}', `{azure, Status, Pct, Extra, Headers}': 200
%%     with `{"id":..,"status":Status,"percentComplete":Pct}' (`Pct' may be
%%     `undefined');</li>
%% <li>`{delay, Ms, Step}': answers `Step' after `Ms';</li>
%% <li>anything {@link erqwest_test_server} answers: `{Status, Headers, Body}',
%%     `{raw, Data}', `close'...</li>
%% </ul>
%% Every request is logged with its arrival time: {@link log/2}.
-module(erqwest_operation_server).

-export([start/0, stop/1, new/2, url/2, base/1, log/2, polls/2, json/1]).

-type server() :: #{http := pid(), tab := ets:tid(), holder := pid()}.
-type step() :: {go, binary()} | {go, binary(), map()} | {go, binary(), map(), list()}
              | {azure, binary(), integer() | undefined}
              | {azure, binary(), integer() | undefined, map(), list()}
              | {delay, non_neg_integer(), step()}
              | erqwest_test_server:reply().
-type script() :: #{accepted => erqwest_test_server:reply(),
                    polls => [step()],
                    result => erqwest_test_server:reply()}.
-export_type([server/0, step/0, script/0]).

-spec start() -> {ok, server()}.
start() ->
    Self = self(),
    %% The table outlives the test case's process: a holder owns it.
    Holder = spawn(fun() ->
        Tab = ets:new(?MODULE, [public, set, {write_concurrency, true}, {read_concurrency, true}]),
        Self ! {self(), Tab},
        receive stop -> ok end
    end),
    Tab = receive {Holder, T} -> T end,
    {ok, Http} = erqwest_test_server:start(fun(Req) -> handle(Tab, Req) end),
    ets:insert(Tab, {base, erqwest_test_server:url(Http, "")}),
    {ok, #{http => Http, tab => Tab, holder => Holder}}.

-spec stop(server()) -> ok.
stop(#{http := Http, holder := Holder}) ->
    ok = erqwest_test_server:stop(Http),
    Holder ! stop,
    ok.

%% @doc Registers an operation; returns its id.
-spec new(server(), script()) -> binary().
new(#{tab := Tab}, Script) ->
    Id = integer_to_binary(erlang:unique_integer([positive])),
    true = ets:insert(Tab, [{{script, Id}, Script},
                            {{polls, Id}, maps:get(polls, Script, [{go, <<"succeeded">>}])},
                            {{log, Id}, []}]),
    Id.

%% @doc Where to POST to start operation `Id'.
-spec url(server(), binary()) -> binary().
url(S, Id) -> <<(base(S))/binary, "/ops/", Id/binary>>.

-spec base(server()) -> binary().
base(#{tab := Tab}) -> ets:lookup_element(Tab, base, 2).

%% @doc Requests for operation `Id', oldest first:
%% `{MonotonicMs, Method, Path, Headers}'.
-spec log(server(), binary()) -> [{integer(), binary(), binary(), [{binary(), binary()}]}].
log(#{tab := Tab}, Id) -> lists:reverse(ets:lookup_element(Tab, {log, Id}, 2)).

%% @doc Arrival times (monotonic ms) of the status polls of `Id'.
-spec polls(server(), binary()) -> [integer()].
polls(S, Id) ->
    [T || {T, <<"GET">>, Path, _} <- log(S, Id), lists:last(binary:split(Path, <<"/">>, [global])) =:= <<"status">>].

%%% Serving

handle(Tab, #{method := Method, path := Path, headers := Headers}) ->
    case binary:split(Path, <<"/">>, [global]) of
        [<<>>, <<"ops">>, Id | Rest] ->
            case ets:lookup(Tab, {script, Id}) of
                [{_, Script}] ->
                    record(Tab, Id, {erlang:monotonic_time(millisecond), Method, Path, Headers}),
                    fill(Tab, Id, answer(Tab, Id, Rest, Script));
                [] ->
                    {404, [], <<"no such operation">>}
            end;
        _ ->
            {404, [], <<"not found">>}
    end.

%% Appends to the log. Requests of one operation come one at a time (the
%% poller waits for each answer), so read-then-write does not race.
record(Tab, Id, Entry) ->
    Log = ets:lookup_element(Tab, {log, Id}, 2),
    ets:insert(Tab, {{log, Id}, [Entry | Log]}).

answer(_Tab, Id, [], Script) ->
    maps:get(accepted, Script,
             {202, [{<<"location">>, <<"/ops/$ID/status">>}],
              json(#{id => Id, state => pending, location => <<"/ops/$ID/status">>})});
answer(Tab, Id, [<<"status">>], _Script) ->
    Step = case ets:lookup_element(Tab, {polls, Id}, 2) of
        [Last] -> Last;
        [Next | More] -> ets:insert(Tab, {{polls, Id}, More}), Next
    end,
    step(Id, Step);
answer(_Tab, _Id, [<<"result">>], Script) ->
    maps:get(result, Script, {200, [{<<"content-type">>, <<"application/json">>}],
                              <<"{\"answer\": 42}">>});
answer(_Tab, _Id, _, _) ->
    {404, [], <<"no such resource">>}.

step(Id, {go, State}) -> step(Id, {go, State, #{}, []});
step(Id, {go, State, Extra}) -> step(Id, {go, State, Extra, []});
step(Id, {go, State, Extra, Headers}) ->
    {200, [{<<"content-type">>, <<"application/json">>} | Headers],
     json(maps:merge(#{id => Id, state => State}, Extra))};
step(Id, {azure, Status, Pct}) -> step(Id, {azure, Status, Pct, #{}, []});
step(Id, {azure, Status, Pct, Extra, Headers}) ->
    Doc = case Pct of
        undefined -> #{id => Id, status => Status};
        _ -> #{id => Id, status => Status, percentComplete => Pct}
    end,
    {200, [{<<"content-type">>, <<"application/json">>} | Headers], json(maps:merge(Doc, Extra))};
step(Id, {delay, Ms, Step}) ->
    timer:sleep(Ms),
    step(Id, Step);
step(_Id, Reply) ->
    Reply.

%% Replaces $ID and $BASE in header values and bodies.
fill(Tab, Id, {Status, Headers, Body}) ->
    Base = ets:lookup_element(Tab, base, 2),
    Sub = fun(V) ->
        B1 = binary:replace(iolist_to_binary(V), <<"$ID">>, Id, [global]),
        binary:replace(B1, <<"$BASE">>, Base, [global])
    end,
    {Status, [{K, Sub(V)} || {K, V} <- Headers], Sub(Body)};
fill(_Tab, _Id, Reply) ->
    Reply.

%%% A small JSON encoder (OTP 25 has none)

%% @doc Encodes maps (atom or binary keys), lists, binaries, integers,
%% floats, `true', `false' and `null'.
-spec json(term()) -> binary().
json(Term) -> iolist_to_binary(enc(Term)).

enc(true) -> <<"true">>;
enc(false) -> <<"false">>;
enc(null) -> <<"null">>;
enc(A) when is_atom(A) -> enc(atom_to_binary(A));
enc(I) when is_integer(I) -> integer_to_binary(I);
enc(F) when is_float(F) -> float_to_binary(F, [short]);
enc(B) when is_binary(B) -> [$", escape(B), $"];
enc(L) when is_list(L) -> [$[, lists:join($,, [enc(X) || X <- L]), $]];
enc(M) when is_map(M) ->
    [${, lists:join($,, [[enc(key(K)), $:, enc(V)] || {K, V} <- lists:sort(maps:to_list(M))]), $}].

key(K) when is_atom(K) -> atom_to_binary(K);
key(K) when is_binary(K) -> K.

escape(B) ->
    [case C of
         $" -> <<"\\\"">>;
         $\\ -> <<"\\\\">>;
         $\n -> <<"\\n">>;
         _ when C < 32 -> io_lib:format("\\u~4.16.0b", [C]);
         _ -> C
     end || <<C>> <= B].
