%% @doc A test server that answers each path from a script: a sequence of
%% replies, one per request, the last one repeated. It counts hits per
%% path, the requests in progress at once (and the most seen), and the
%% connections a client dropped while a reply was held back.
%%
%% ```
%% {ok, S} = erqwest_script_server:start(),
%% ok = erqwest_script_server:script(S, "/flaky", [{503, [], <<>>}, {200, [], <<"ok">>}]),
%% {ok, #{status := 200, attempts := 2}} =
%%     erqwest:get(C, erqwest_script_server:url(S, "/flaky"), #{retry => #{base => 1}}),
%% 2 = erqwest_script_server:hits(S, "/flaky").
%% '''
%% Built on erqwest_test_server (HTTP/1.1, one process per connection).
-module(erqwest_script_server).

-export([start/0, stop/1, url/2, port/1, script/3, hits/2, arrivals/2, max_active/1,
         active/1, dropped/2, connections/1]).

-type step() :: {100..599, [{iodata(), iodata()}], iodata()}
              | {hold, non_neg_integer(), step()}   % wait Ms (watching for a close) first
              | close.                              % close without answering
-export_type([step/0]).

-record(st, {scripts = #{}, hits = #{}, arrivals = #{}, active = 0, max_active = 0,
             dropped = #{}}).

-spec start() -> {ok, {pid(), pid()}}.
start() ->
    Ctl = spawn(fun() -> loop(#st{}) end),
    {ok, Http} = erqwest_test_server:start(fun(Req) -> handle(Ctl, Req) end),
    {ok, {Http, Ctl}}.

-spec stop({pid(), pid()}) -> ok.
stop({Http, Ctl}) ->
    erqwest_test_server:stop(Http),
    exit(Ctl, kill),
    ok.

-spec url({pid(), pid()}, string()) -> binary().
url({Http, _}, Path) -> erqwest_test_server:url(Http, Path).

-spec port({pid(), pid()}) -> inet:port_number().
port({Http, _}) -> erqwest_test_server:port(Http).

-spec connections({pid(), pid()}) -> non_neg_integer().
connections({Http, _}) -> erqwest_test_server:connections(Http).

%% @doc Sets the replies for `Path' (and forgets its hits).
-spec script({pid(), pid()}, string(), [step(), ...]) -> ok.
script({_, Ctl}, Path, Steps) -> call(Ctl, {script, list_to_binary(Path), Steps}).

-spec hits({pid(), pid()}, string()) -> non_neg_integer().
hits({_, Ctl}, Path) -> call(Ctl, {hits, list_to_binary(Path)}).

%% @doc Monotonic arrival times (ms) of the requests for `Path', in order.
-spec arrivals({pid(), pid()}, string()) -> [integer()].
arrivals({_, Ctl}, Path) -> call(Ctl, {arrivals, list_to_binary(Path)}).

%% @doc The most requests in progress at once so far.
-spec max_active({pid(), pid()}) -> non_neg_integer().
max_active({_, Ctl}) -> call(Ctl, max_active).

-spec active({pid(), pid()}) -> non_neg_integer().
active({_, Ctl}) -> call(Ctl, active).

%% @doc How many held replies for `Path' found their connection closed.
-spec dropped({pid(), pid()}, string()) -> non_neg_integer().
dropped({_, Ctl}, Path) -> call(Ctl, {dropped, list_to_binary(Path)}).

%%% Internals

handle(Ctl, #{path := Path} = Req) ->
    Step = call(Ctl, {enter, Path}),
    {custom, fun(Sock, _) ->
        Result = run(Ctl, Path, Sock, Req, Step),
        Ctl ! leave,
        Result
    end}.

run(Ctl, Path, Sock, Req, {hold, Ms, Next}) ->
    %% Waiting in recv sees the client close the connection at once.
    case gen_tcp:recv(Sock, 0, Ms) of
        {error, timeout} -> run(Ctl, Path, Sock, Req, Next);
        {error, _} -> Ctl ! {dropped, Path}, close;
        {ok, _} -> run(Ctl, Path, Sock, Req, Next)
    end;
run(_Ctl, _Path, _Sock, _Req, close) ->
    close;
run(_Ctl, _Path, Sock, Req, {_, _, _} = Reply) ->
    _ = erqwest_test_server:send_response({gen_tcp, Sock}, Reply, Req),
    keep.

call(Pid, Msg) ->
    Ref = monitor(process, Pid),
    Pid ! {self(), Ref, Msg},
    receive
        {Ref, Reply} -> demonitor(Ref, [flush]), Reply;
        {'DOWN', Ref, _, _, Reason} -> error({script_server_down, Reason})
    end.

loop(St) ->
    receive
        leave ->
            loop(St#st{active = St#st.active - 1});
        {dropped, Path} ->
            loop(St#st{dropped = maps:update_with(Path, fun(N) -> N + 1 end, 1, St#st.dropped)});
        {From, Ref, Msg} ->
            {Reply, St1} = handle_call(Msg, St),
            From ! {Ref, Reply},
            loop(St1)
    end.

handle_call({script, Path, Steps}, St) ->
    {ok, St#st{scripts = maps:put(Path, Steps, St#st.scripts),
               hits = maps:remove(Path, St#st.hits),
               arrivals = maps:remove(Path, St#st.arrivals)}};
handle_call({enter, Path}, St) ->
    {Step, Rest} = case maps:get(Path, St#st.scripts, [{404, [], <<"no script">>}]) of
        [Last] -> {Last, [Last]};
        [S | R] -> {S, R}
    end,
    Active = St#st.active + 1,
    Now = erlang:monotonic_time(millisecond),
    {Step, St#st{scripts = maps:put(Path, Rest, St#st.scripts),
                 hits = maps:update_with(Path, fun(N) -> N + 1 end, 1, St#st.hits),
                 arrivals = maps:update_with(Path, fun(L) -> [Now | L] end, [Now],
                                             St#st.arrivals),
                 active = Active, max_active = max(Active, St#st.max_active)}};
handle_call({hits, Path}, St) -> {maps:get(Path, St#st.hits, 0), St};
handle_call({arrivals, Path}, St) -> {lists:reverse(maps:get(Path, St#st.arrivals, [])), St};
handle_call(max_active, St) -> {St#st.max_active, St};
handle_call(active, St) -> {St#st.active, St};
handle_call({dropped, Path}, St) -> {maps:get(Path, St#st.dropped, 0), St}.
