%% @doc Stubbed answers for a client, for the tests of code that uses
%% erqwest. The Elixir face of this module is `Erqwest.Test'.
%%
%% A test replaces what a client answers, for itself and the processes it
%% starts, and leaves every other process's requests alone:
%% ```
%% ok = erqwest_test:stub(my_client, fun(#{method := get, url := Url}) ->
%%     #{status => 200, headers => [{<<"content-type">>, <<"text/plain">>}],
%%       body => <<"hello from ", Url/binary>>}
%% end),
%% {ok, #{status := 200}} = erqwest:get(my_client, <<"http://example.test/">>).
%% '''
%%
%% The function gets the request as a map: `method', `url' (the URL as
%% given, with `query' appended), `headers', `body' (a binary: the body
%% given, the `json' or `form' encoded, or a streamed body once complete)
%% and `opts' (every option given). It returns a response map (`status',
%% with `headers' and `body' defaulting to `[]' and `<<>>'), `{ok, Resp}',
%% `{error, #{code := Code, reason := Reason}}' or `{error, Code}'. With
%% `response_body => stream', a `body' given as a list of binaries is read
%% one element per chunk. The answer is returned as given: no decoding,
%% redirects or retries happen.
%%
%% Stubs are kept per owner process and client (the name or client as the
%% call gives it). A request looks for them in its own process, then along
%% `$callers' (Elixir's `Task', `Task.Supervisor' ... set it), then in the
%% processes {@link allow/3} names. A call on a client that has stubs in
%% some process but none for the caller, or whose expectations are used
%% up, raises an error saying so instead of sending a real request.
%%
%% Covered: {@link erqwest:req/2} and its shortcuts, {@link erqwest_async}
%% (the answer arrives as the usual `{erqwest_response, Ref, ...}'
%% messages), streamed request bodies (`send/2', `finish_send/1'),
%% streamed response bodies (`read/2', `cancel/1'), and everything built on
%% them: the Elixir `Erqwest' and `Erqwest.Async' APIs and the Req and
%% Tesla adapters. Not covered: {@link erqwest_events},
%% {@link erqwest_operation} and {@link erqwest_pages}, which resolve the
%% client's name first or start their requests on the runtime.
%%
%% Cost when unused: a request reads one `persistent_term' flag, set when
%% the first stub is installed in the node.
-module(erqwest_test).
-behaviour(gen_server).

-export([stub/2, expect/3, allow/3, verify/0, verify/1, keep_until_verified/1]).
-export([stubbed/1, req/4, send/2, finish_send/1, read/2, cancel/1]).
-export([start_link/0, init/1, handle_call/3, handle_cast/2, handle_info/2]).

-export_type([request/0, answer/0, stub_fun/0, handle/0]).

-type request() :: #{method := erqwest:method(), url := binary(),
                     headers := [erqwest:header()], body := binary(),
                     opts := erqwest:req_opts()}.
%% The request as a stub sees it:
%% `#{method => get, url => <<"http://api.test/x">>, headers => [], body => <<>>, opts => #{}}'.

-type answer() :: map() | {ok, map()} | {error, erqwest:err() | erqwest:code()}.
%% What a stub returns: `#{status => 200, body => <<"ok">>}', `{error, timeout}'.

-type stub_fun() :: fun((request()) -> answer()).
%% A stub: `fun(#{method := get}) -> #{status => 200} end'.

-opaque handle() :: {erqwest_stub, {reference(), pid()}}.
%% A stubbed request's handle, as `erqwest_async:req/4' returns it:
%% `H = erqwest_async:req(my_client, self(), Ref, Req)'.

-define(ACTIVE, {?MODULE, active}).
-define(TAB, ?MODULE).

%%% Installing stubs

%% @doc Answers every request of `Client' (a name or a client) made by
%% this process or one it started with `Fun', until this process exits.
%% Replaces an earlier stub of this process for the client.
-spec stub(erqwest:client() | atom(), stub_fun()) -> ok.
stub(Client, Fun) when is_function(Fun, 1) ->
    call({stub, self(), Client, Fun});
stub(_Client, _Fun) ->
    erlang:error(badarg).

%% @doc Answers the next `N' requests of `Client' with `Fun', before any
%% stub; expectations queue in the order given. {@link verify/0} fails
%% when fewer than `N' came; the request after the last expected one
%% raises unless a {@link stub/2} takes it.
-spec expect(erqwest:client() | atom(), pos_integer(), stub_fun()) -> ok.
expect(Client, N, Fun) when is_integer(N), N > 0, is_function(Fun, 1) ->
    call({expect, self(), Client, N, Fun});
expect(_Client, _N, _Fun) ->
    erlang:error(badarg).

%% @doc Lets `Pid' (a process not started by the owner, so without it in
%% `$callers') use the stubs of `Owner' for `Client'.
-spec allow(erqwest:client() | atom(), pid(), pid()) -> ok.
allow(Client, Owner, Pid) when is_pid(Owner), is_pid(Pid) ->
    call({allow, Client, Owner, Pid});
allow(_Client, _Owner, _Pid) ->
    erlang:error(badarg).

%% @doc Same as `verify(self())': raises unless every expectation of
%% this process was met.
%%
%% ```
%% ok = erqwest_test:expect(my_client, 1, fun(_) -> #{status => 200} end),
%% {ok, _} = erqwest:get(my_client, <<"http://api.test/">>),
%% ok = erqwest_test:verify().
%% '''
-spec verify() -> ok.
verify() ->
    verify(self()).

%% @doc Raises an error listing the expectations of `Owner' that did not
%% get all their calls; `ok' otherwise. The stubs of a dead owner are
%% dropped once verified.
-spec verify(pid()) -> ok.
verify(Owner) when not is_pid(Owner) ->
    erlang:error(badarg);
verify(Owner) ->
    case whereis(?MODULE) =/= undefined andalso call({verify, Owner}) of
        Missing when Missing =:= false; Missing =:= [] ->
            ok;
        Missing ->
            Lines = [io_lib:format("~n  ~s: expected ~b call(s), got ~b", [show(C), N, N - Left])
                     || {C, N, Left} <- Missing],
            fail(iolist_to_binary(["erqwest_test: expectations not met in ",
                                   pid_to_list(Owner), ":", Lines]))
    end.

%% @doc Keeps the stubs of `Owner' after it exits, until
%% {@link verify/1} is called for it (for checks made after the test's
%% process ended, such as ExUnit's `on_exit').
-spec keep_until_verified(pid()) -> ok.
keep_until_verified(Owner) when is_pid(Owner) ->
    call({keep, Owner});
keep_until_verified(_Owner) ->
    erlang:error(badarg).

%%% The request path

%% @private Whether a request on `Client' must go through the stubs.
-spec stubbed(erqwest:client() | atom()) -> boolean().
stubbed(Client) ->
    %% The table goes with its owner: no stubs then.
    persistent_term:get(?ACTIVE, false) andalso (catch ets:member(?TAB, {client, Client})) =:= true.

%% @private erqwest_async:req/4 on a stubbed client: the stub answers
%% with the messages a real request would send.
-spec req(erqwest:client() | atom(), pid(), term(), erqwest:req_opts()) -> handle().
req(Client, Pid, Ref, Opts) ->
    {Owner, Fun} = take(Client, [self() | callers()]),
    %% The stream's state goes with its stub's owner (see forget/2).
    Id = {make_ref(), Owner},
    _ = case Opts of
        #{body := stream} ->
            true = ets:insert(?TAB, {{stream, Id}, {upload, Pid, Ref, Fun, Opts, []}}),
            Pid ! {erqwest_response, Ref, next};
        _ ->
            answer(Id, Pid, Ref, Fun, Opts, request(Opts, body(Opts)))
    end,
    {erqwest_stub, Id}.

%% @private The NIF's `send/2' for a stub's handle.
-spec send(handle(), iodata()) -> ok | finished.
send({erqwest_stub, Id}, Data) ->
    case ets:lookup(?TAB, {stream, Id}) of
        [{Key, {upload, Pid, Ref, Fun, Opts, Acc}}] ->
            Bin = try iolist_to_binary(Data) catch error:badarg -> erlang:error(badarg) end,
            true = ets:insert(?TAB, {Key, {upload, Pid, Ref, Fun, Opts, [Acc, Bin]}}),
            Pid ! {erqwest_response, Ref, next},
            ok;
        _ ->
            finished
    end.

%% @private The NIF's `finish_send/1' for a stub's handle.
-spec finish_send(handle()) -> ok | finished.
finish_send({erqwest_stub, Id}) ->
    case ets:take(?TAB, {stream, Id}) of
        [{_, {upload, Pid, Ref, Fun, Opts, Acc}}] ->
            answer(Id, Pid, Ref, Fun, Opts, request(Opts, iolist_to_binary(Acc))),
            ok;
        _ ->
            finished
    end.

%% @private The NIF's `read/2' for a stub's handle: the next chunk of the
%% stubbed body.
-spec read(handle(), erqwest:read_opts()) -> ok | finished.
read({erqwest_stub, Id}, _Opts) ->
    case ets:lookup(?TAB, {stream, Id}) of
        [{Key, {download, Pid, Ref, [Last]}}] ->
            true = ets:delete(?TAB, Key),
            Pid ! {erqwest_response, Ref, fin, Last},
            ok;
        [{Key, {download, Pid, Ref, [Chunk | Rest]}}] ->
            true = ets:insert(?TAB, {Key, {download, Pid, Ref, Rest}}),
            Pid ! {erqwest_response, Ref, chunk, Chunk},
            ok;
        _ ->
            finished
    end.

%% @private The NIF's `cancel/1' for a stub's handle.
-spec cancel(handle()) -> ok | finished.
cancel({erqwest_stub, Id}) ->
    case ets:take(?TAB, {stream, Id}) of
        [{_, State}] ->
            {Pid, Ref} = case State of
                {upload, P, R, _, _, _} -> {P, R};
                {download, P, R, _} -> {P, R}
            end,
            Pid ! {erqwest_response, Ref, error,
                   #{code => cancelled, reason => <<"cancelled">>}},
            ok;
        [] ->
            finished
    end.

callers() ->
    case get('$callers') of
        Pids when is_list(Pids) -> Pids;
        _ -> []
    end.

%% The stub function that answers this call, or an error raised here.
take(Client, Chain) ->
    case call({take, Client, Chain}) of
        {ok, Owner, Fun} -> {Owner, Fun};
        {error, Message} -> fail(Message)
    end.

%% Raised as Elixir's RuntimeError (a plain map to Erlang), so that both
%% languages show the message.
-spec fail(binary()) -> no_return().
fail(Message) ->
    erlang:error(#{'__struct__' => 'Elixir.RuntimeError', '__exception__' => true,
                   message => Message}).

answer(Id, Pid, Ref, Fun, Opts, Request) ->
    _ = case normalize(Fun(Request)) of
        {ok, Resp} ->
            case maps:get(response_body, Opts, complete) of
                stream ->
                    Chunks = case maps:get(body, Resp) of
                        [] -> [<<>>];
                        L when is_list(L) -> [iolist_to_binary(C) || C <- L];
                        B -> [B]
                    end,
                    true = ets:insert(?TAB, {{stream, Id}, {download, Pid, Ref, Chunks}}),
                    Pid ! {erqwest_response, Ref, reply, maps:remove(body, Resp)};
                complete ->
                    Pid ! {erqwest_response, Ref, reply, Resp}
            end;
        {error, Err} ->
            Pid ! {erqwest_response, Ref, error, Err}
    end,
    ok.

normalize({ok, #{status := S} = Resp}) when is_integer(S), S >= 100, S =< 599 ->
    {ok, maps:merge(#{headers => [], body => <<>>}, Resp)};
normalize(#{status := _} = Resp) ->
    normalize({ok, Resp});
normalize({error, #{code := C, reason := R} = Err}) when is_atom(C), is_binary(R) ->
    {error, Err};
normalize({error, Code}) when is_atom(Code) ->
    {error, #{code => Code, reason => atom_to_binary(Code)}};
normalize(Other) ->
    fail(iolist_to_binary(io_lib:format(
        "erqwest_test: a stub returned ~0p; expected a response map with a status, "
        "{ok, Map}, {error, #{code, reason}} or {error, Code}", [Other]))).

%% The request as the stub function sees it.
request(Opts, Body) ->
    Url0 = maps:get(url, Opts, <<>>),
    Url = case maps:get(query, Opts, []) of
        Q when Q =:= []; Q =:= #{} -> Url0;
        Q ->
            Sep = case binary:match(Url0, <<"?">>) of nomatch -> <<"?">>; _ -> <<"&">> end,
            <<Url0/binary, Sep/binary, (encode_pairs(Q))/binary>>
    end,
    #{method => maps:get(method, Opts, get), url => Url,
      headers => maps:get(headers, Opts, []) ++ body_headers(Opts), body => Body,
      opts => Opts}.

body(#{json := Json}) ->
    case erqwest_json:encode(Json) of
        {ok, Encoded} -> Encoded;
        {error, _} -> erlang:error(badarg)
    end;
body(#{form := Form}) -> encode_pairs(Form);
body(#{body := Body}) -> iolist_to_binary(Body);
body(_) -> <<>>.

body_headers(#{json := _} = Opts) -> unless_given(<<"application/json">>, Opts);
body_headers(#{form := _} = Opts) -> unless_given(<<"application/x-www-form-urlencoded">>, Opts);
body_headers(_) -> [].

unless_given(Type, Opts) ->
    Given = [N || {N, _} <- maps:get(headers, Opts, []),
                  string:lowercase(N) =:= <<"content-type">>],
    case Given of
        [] -> [{<<"content-type">>, Type}];
        _ -> []
    end.

encode_pairs(Pairs) when is_map(Pairs) ->
    encode_pairs(maps:to_list(Pairs));
encode_pairs(Pairs) ->
    iolist_to_binary(uri_string:compose_query([{text(K), text(V)} || {K, V} <- Pairs])).

text(B) when is_binary(B) -> B;
text(A) when is_atom(A) -> atom_to_binary(A);
text(I) when is_integer(I) -> integer_to_binary(I);
text(F) when is_float(F) -> float_to_binary(F, [short]).

%%% The owner of the table

call(Msg) ->
    ensure_started(),
    gen_server:call(?MODULE, Msg, infinity).

ensure_started() ->
    case whereis(?MODULE) of
        undefined ->
            %% Not linked: it outlives the test that started it.
            case gen_server:start({local, ?MODULE}, ?MODULE, [], []) of
                {ok, _} -> ok;
                {error, {already_started, _}} -> ok
            end;
        _ ->
            ok
    end.

%% @private
-spec start_link() -> {ok, pid()} | ignore | {error, term()}.
start_link() ->
    gen_server:start_link({local, ?MODULE}, ?MODULE, [], []).

-record(state, {monitored = #{} :: #{pid() => reference()},
                keep = #{} :: #{pid() => true}}).

%% @private
-spec init([]) -> {ok, #state{}}.
init([]) ->
    _ = ets:new(?TAB, [named_table, public, set, {read_concurrency, true}]),
    %% Set once per node: persistent_term updates are costly, and a node
    %% that stubbed once is a test node.
    persistent_term:get(?ACTIVE, false) orelse persistent_term:put(?ACTIVE, true),
    {ok, #state{}}.

%% The table holds:
%%   {{owner, Owner, Client}, Stub | undefined, [{N, Left, Fun}]}
%%   {{client, Client}, Owners}       how many owners stub the client
%%   {{allow, Pid, Client}, Owner}
%%   {{stream, {Ref, Owner}}, State}  a stubbed streamed body
%% @private
-spec handle_call(term(), gen_server:from(), #state{}) -> {reply, term(), #state{}}.
handle_call({stub, Owner, Client, Fun}, _From, S) ->
    {_, Expects} = entry(Owner, Client),
    {reply, ok, put_entry(Owner, Client, Fun, Expects, S)};
handle_call({expect, Owner, Client, N, Fun}, _From, S) ->
    {Stub, Expects} = entry(Owner, Client),
    {reply, ok, put_entry(Owner, Client, Stub, Expects ++ [{N, N, Fun}], S)};
handle_call({allow, Client, Owner, Pid}, _From, S) ->
    true = ets:insert(?TAB, {{allow, Pid, Client}, Owner}),
    {reply, ok, monitor_owner(Pid, S)};
handle_call({take, Client, Chain}, _From, S) ->
    {reply, take_from(Client, Chain), S};
handle_call({verify, Owner}, _From, S) ->
    Missing = [{C, N, Left} || [C, Expects] <- ets:match(?TAB, {{owner, Owner, '$1'}, '_', '$2'}),
                               {N, Left, _} <- Expects, Left > 0],
    S1 = case is_process_alive(Owner) of
        true -> S;
        false -> forget(Owner, S)
    end,
    {reply, Missing, S1};
handle_call({keep, Owner}, _From, S) ->
    {reply, ok, S#state{keep = (S#state.keep)#{Owner => true}}};
handle_call(_Other, _From, S) ->
    {reply, {error, unknown_call}, S}.

%% @private
-spec handle_cast(term(), #state{}) -> {noreply, #state{}}.
handle_cast(_Msg, S) ->
    {noreply, S}.

%% @private
-spec handle_info(term(), #state{}) -> {noreply, #state{}}.
handle_info({'DOWN', _, process, Pid, _}, #state{keep = Keep} = S) ->
    S1 = S#state{monitored = maps:remove(Pid, S#state.monitored)},
    case Keep of
        #{Pid := true} -> {noreply, S1};
        _ -> {noreply, forget(Pid, S1)}
    end;
handle_info(_Msg, S) ->
    {noreply, S}.

entry(Owner, Client) ->
    case ets:lookup(?TAB, {owner, Owner, Client}) of
        [{_, Stub, Expects}] -> {Stub, Expects};
        [] -> {undefined, []}
    end.

put_entry(Owner, Client, Stub, Expects, S) ->
    _ = case ets:insert_new(?TAB, {{owner, Owner, Client}, Stub, Expects}) of
        true -> ets:update_counter(?TAB, {client, Client}, 1, {{client, Client}, 0});
        false -> ets:insert(?TAB, {{owner, Owner, Client}, Stub, Expects})
    end,
    monitor_owner(Owner, S).

monitor_owner(Pid, #state{monitored = M} = S) ->
    case M of
        #{Pid := _} -> S;
        _ -> S#state{monitored = M#{Pid => erlang:monitor(process, Pid)}}
    end.

%% Drops what a process owned or was allowed.
forget(Pid, #state{keep = Keep} = S) ->
    Clients = [C || [C] <- ets:match(?TAB, {{owner, Pid, '$1'}, '_', '_'})],
    lists:foreach(
        fun(C) ->
            true = ets:delete(?TAB, {owner, Pid, C}),
            case ets:update_counter(?TAB, {client, C}, -1) of
                0 -> true = ets:delete(?TAB, {client, C});
                _ -> ok
            end
        end, Clients),
    true = ets:match_delete(?TAB, {{allow, Pid, '_'}, '_'}),
    true = ets:match_delete(?TAB, {{stream, {'_', Pid}}, '_'}),
    S#state{keep = maps:remove(Pid, Keep)}.

take_from(Client, Chain) ->
    case owner(Client, Chain) of
        none ->
            {error, iolist_to_binary(io_lib:format(
                "erqwest_test: client ~s is stubbed, but not for process ~s (nor for its "
                "$callers ~0p); stub it in this test, start this process from the test "
                "(Task), or call allow/3", [show(Client), pid_to_list(self_of(Chain)), tl(Chain)]))};
        Owner ->
            {Stub, Expects} = entry(Owner, Client),
            case use_expectation(Expects, []) of
                {Fun, Expects1} ->
                    true = ets:insert(?TAB, {{owner, Owner, Client}, Stub, Expects1}),
                    {ok, Owner, Fun};
                none when Stub =/= undefined ->
                    {ok, Owner, Stub};
                none ->
                    Total = lists:sum([N || {N, _, _} <- Expects]),
                    {error, iolist_to_binary(io_lib:format(
                        "erqwest_test: unexpected request on client ~s: ~b call(s) were "
                        "expected (expect/3) and all were made, and no stub/2 takes more",
                        [show(Client), Total]))}
            end
    end.

self_of([Pid | _]) -> Pid.

%% A client as its users write it: `MyApp.HTTP' rather than
%% 'Elixir.MyApp.HTTP'.
show(Client) when is_atom(Client) ->
    case atom_to_binary(Client) of
        <<"Elixir.", Name/binary>> -> Name;
        _ -> io_lib:format("~0p", [Client])
    end;
show(Client) ->
    io_lib:format("~0p", [Client]).

owner(_Client, []) ->
    none;
owner(Client, [Pid | Rest]) when is_pid(Pid) ->
    case ets:member(?TAB, {owner, Pid, Client}) of
        true ->
            Pid;
        false ->
            case ets:lookup(?TAB, {allow, Pid, Client}) of
                [{_, Owner}] -> Owner;
                [] -> owner(Client, Rest)
            end
    end;
owner(Client, [_ | Rest]) ->
    owner(Client, Rest).

use_expectation([], _Seen) ->
    none;
use_expectation([{N, Left, Fun} | Rest], Seen) when Left > 0 ->
    {Fun, lists:reverse(Seen, [{N, Left - 1, Fun} | Rest])};
use_expectation([E | Rest], Seen) ->
    use_expectation(Rest, [E | Seen]).
