%% @doc JSON in and out of HTTP bodies (`bench/json', issue 11).
%%
%% Decoding: API-like documents (an array of objects with strings,
%% numbers, booleans, nested arrays and objects) of about 1 MB and 64 MB,
%% served by nginx, fetched by erqwest with `decode => json' (decoded on
%% the tokio thread) against erqwest fetching the binary and the caller
%% running `jiffy:decode(B, [return_maps])'. Encoding: a term of the same
%% shape POSTed to nginx's `/sink' with `json => Term' against
%% `body => jiffy:encode(Term)'.
%%
%% Each case runs in a fresh peer VM: the median end-to-end time of its
%% repetitions, the active time of the normal schedulers and of the dirty
%% CPU schedulers (`erlang:statistics(scheduler_wall_time)') per MB of
%% JSON, and the peak of `erlang:memory(total)' and of the VM's RSS
%% (`VmHWM', reset before the case).
-module(bench_json).

-export([main/0, doc/1, run_case/1]).

-define(MB, (1024 * 1024)).

%% @doc Entry point of `bench/json'.
-spec main() -> no_return().
main() ->
    Work = os:getenv("BENCH_WORK"),
    Sizes = [list_to_integer(S) || S <- string:lexemes(env("BENCH_JSON_MB", "1,64"), ",")],
    Srv = bench_nginx:start(#{dir => Work, files => [], body_temp => os:getenv("BENCH_BODY_TEMP")}),
    try
        [ok = file:write_file(filename:join([Work, "www", "files", doc_name(Mb)]),
                              iolist_to_binary(jiffy:encode(doc(Mb))))
         || Mb <- Sizes],
        Rows = [row(Srv, Work, Mb) || Mb <- Sizes],
        Table = table(Rows),
        io:put_chars(Table),
        Out = env("BENCH_OUT", "bench/results"),
        ok = filelib:ensure_dir(filename:join(Out, "x")),
        ok = file:write_file(filename:join(Out, "json-latest.txt"), Table)
    after
        bench_nginx:stop(Srv)
    end,
    halt(0).

env(Var, Default) ->
    case os:getenv(Var) of
        false -> Default;
        V -> V
    end.

doc_name(Mb) -> "doc-" ++ integer_to_list(Mb) ++ "mb.json".

%% @doc A term of about `Mb' MB of JSON, shaped like an API's answer.
-spec doc(pos_integer()) -> [map()].
doc(Mb) ->
    [item(I) || I <- lists:seq(1, Mb * ?MB div 330)].

item(I) ->
    #{<<"id">> => I,
      <<"uuid">> => integer_to_binary(I * 7919 + 100000000000, 16),
      <<"name">> => <<"User number ", (integer_to_binary(I))/binary>>,
      <<"email">> => <<"user", (integer_to_binary(I))/binary, "@example.com">>,
      <<"active">> => I rem 3 =/= 0,
      <<"score">> => I * 0.37,
      <<"balance">> => -I * 12.5,
      <<"tags">> => [<<"alpha">>, <<"beta">>, <<"gamma \"quoted\" é"/utf8>>],
      <<"history">> => [[I, 1.5, true], [I + 1, 2.25, false], [I + 2, null, true]],
      <<"profile">> => #{<<"bio">> => <<"Line one\nline two with a tab\t.">>,
                         <<"followers">> => I * 13, <<"verified">> => false}}.

%% Both decoders and both encoders for one size, each in its own peer.
row(Srv, Work, Mb) ->
    Url = bench_nginx:url(Srv, http, "/files/" ++ doc_name(Mb)),
    Sink = bench_nginx:url(Srv, http, "/sink"),
    {ok, Bytes} = file:read_file_info(filename:join([Work, "www", "files", doc_name(Mb)])),
    Size = element(2, Bytes),
    Reps = max(3, 40 div Mb),
    Case = fun(Kind) -> in_peer(#{kind => Kind, url => Url, sink => Sink, mb => Mb, reps => Reps,
                                  size => Size}) end,
    #{mb => Mb, size => Size, reps => Reps,
      decode_erqwest => Case(decode_erqwest), decode_jiffy => Case(decode_jiffy),
      encode_erqwest => Case(encode_erqwest), encode_jiffy => Case(encode_jiffy)}.

in_peer(Spec) ->
    Paths = lists:usort([filename:dirname(code:which(M)) || M <- [erqwest, bench_json, jiffy]]),
    Args = lists:append([["-pa", P] || P <- Paths]),
    {ok, Peer, _} = peer:start_link(#{connection => standard_io, args => Args, wait_boot => 60000}),
    try peer:call(Peer, ?MODULE, run_case, [Spec], 900000)
    catch Class:Reason -> #{failed => {Class, Reason}}
    after catch peer:stop(Peer)
    end.

%% @doc One case, in a peer VM.
-spec run_case(map()) -> map().
run_case(#{kind := Kind, url := Url, sink := Sink, mb := Mb, reps := Reps, size := Size}) ->
    {ok, _} = application:ensure_all_started(erqwest),
    C = erqwest:make_client(#{proxy => no_proxy}),
    Term = case Kind of
        encode_erqwest -> doc(Mb);
        encode_jiffy -> doc(Mb);
        _ -> none
    end,
    One = fun() -> once(Kind, C, Url, Sink, Term, Size) end,
    %% A warm-up, also checking the answer.
    true = One(),
    erlang:system_flag(scheduler_wall_time, true),
    garbage_collect(),
    ok = file:write_file("/proc/self/clear_refs", <<"5">>),
    Mem0 = erlang:memory(total),
    Sampler = spawn_link(fun() -> sample(Mem0) end),
    Samples = [timed(One) || _ <- lists:seq(1, Reps)],
    Sampler ! {stop, self()},
    PeakMem = receive {peak, P} -> P end,
    {Times, Normal, Dirty} = lists:unzip3(Samples),
    #{time_ms => median(Times), normal_ms => median(Normal), dirty_ms => median(Dirty),
      peak_mem => PeakMem, mem0 => Mem0, hwm => hwm()}.

%% One request; `true' when the answer is what was expected.
once(decode_erqwest, C, Url, _Sink, _Term, _Size) ->
    {ok, #{status := 200, body := Doc}} = erqwest:get(C, Url, #{decode => json}),
    is_list(Doc) andalso is_map(hd(Doc));
once(decode_jiffy, C, Url, _Sink, _Term, _Size) ->
    {ok, #{status := 200, body := B}} = erqwest:get(C, Url),
    Doc = jiffy:decode(B, [return_maps]),
    is_list(Doc) andalso is_map(hd(Doc));
once(encode_erqwest, C, _Url, Sink, Term, _Size) ->
    {ok, #{status := 200}} = erqwest:post(C, Sink, #{json => Term}),
    true;
once(encode_jiffy, C, _Url, Sink, Term, _Size) ->
    {ok, #{status := 200}} = erqwest:post(C, Sink, #{body => jiffy:encode(Term),
                                                     headers => [{<<"content-type">>, <<"application/json">>}]}),
    true.

%% {WallMs, NormalSchedulerMs, DirtyCpuMs} of one call.
timed(F) ->
    S0 = erlang:statistics(scheduler_wall_time),
    T0 = erlang:monotonic_time(),
    true = F(),
    T1 = erlang:monotonic_time(),
    S1 = erlang:statistics(scheduler_wall_time),
    Normal = erlang:system_info(schedulers),
    Dirty = erlang:system_info(dirty_cpu_schedulers),
    Active = fun(Lo, Hi) ->
        lists:sum([A1 - A0 || {I, A1, _} <- S1, I >= Lo, I =< Hi, {J, A0, _} <- S0, J =:= I])
    end,
    Ms = fun(T) -> erlang:convert_time_unit(T, native, microsecond) / 1000 end,
    Pc = fun(T) -> erlang:convert_time_unit(T, perf_counter, microsecond) / 1000 end,
    {Ms(T1 - T0), Pc(Active(1, Normal)), Pc(Active(Normal + 1, Normal + Dirty))}.

sample(Peak) ->
    receive {stop, From} -> From ! {peak, Peak}
    after 5 -> sample(max(Peak, erlang:memory(total)))
    end.

hwm() ->
    {ok, Status} = file:read_file("/proc/self/status"),
    {match, [Kb]} = re:run(Status, "VmHWM:\\s+(\\d+) kB", [{capture, all_but_first, binary}]),
    binary_to_integer(Kb) * 1024.

median(L) -> lists:nth((length(L) + 1) div 2, lists:sort(L)).

%%% The table

table(Rows) ->
    Head = io_lib:format("~-34s ~10s ~12s ~12s ~12s ~12s~n",
                         ["case", "time ms", "normal ms/MB", "dirty ms/MB", "peak VM MB", "peak RSS MB"]),
    Lines = lists:append([lines(R) || R <- Rows]),
    Ratios = lists:append([ratios(R) || R <- Rows]),
    [Head, Lines, "\n", Ratios].

lines(#{mb := Mb, size := Size, reps := Reps} = R) ->
    MbF = Size / ?MB,
    Line = fun(Key, Label) ->
        case maps:get(Key, R) of
            #{failed := F} -> io_lib:format("~-34s failed: ~p~n", [Label, F]);
            #{time_ms := T, normal_ms := N, dirty_ms := D, peak_mem := P, mem0 := M0, hwm := H} ->
                io_lib:format("~-34s ~10.1f ~12.2f ~12.2f ~12.1f ~12.1f~n",
                              [Label, T, N / MbF, D / MbF, (P - M0) / ?MB, H / ?MB])
        end
    end,
    Tag = io_lib:format("~b MB (~.2f MB, median of ~b)", [Mb, MbF, Reps]),
    [io_lib:format("~s~n", [Tag]),
     Line(decode_erqwest, "  decode: erqwest decode => json"),
     Line(decode_jiffy, "  decode: binary + jiffy:decode"),
     Line(encode_erqwest, "  encode: erqwest json => Term"),
     Line(encode_jiffy, "  encode: jiffy:encode + body")].

ratios(#{mb := Mb, decode_erqwest := #{time_ms := Te, normal_ms := Ne},
         decode_jiffy := #{time_ms := Tj, normal_ms := Nj},
         encode_erqwest := #{time_ms := Ee, normal_ms := ENe, dirty_ms := EDe},
         encode_jiffy := #{time_ms := Ej, normal_ms := ENj}}) ->
    [io_lib:format("~b MB decode: end-to-end erqwest/jiffy ~.2f (target <= 1); "
                   "normal-scheduler time erqwest/jiffy ~.3f (target <= 0.1)~n",
                   [Mb, Te / Tj, Ne / max(Nj, 0.001)]),
     io_lib:format("~b MB encode: end-to-end erqwest/jiffy ~.2f; normal-scheduler time "
                   "erqwest/jiffy ~.3f (erqwest's encoding runs on a dirty scheduler: "
                   "normal + dirty over jiffy's normal ~.3f)~n",
                   [Mb, Ee / Ej, ENe / max(ENj, 0.001), (ENe + EDe) / max(ENj, 0.001)])];
ratios(#{mb := Mb}) ->
    [io_lib:format("~b MB: a case failed, no ratios~n", [Mb])].
