%% Event streams (erqwest_events): every SSE parsing rule of the WHATWG
%% standard as a case of its own, served by erqwest_test_server in chunks
%% the test chooses; reconnects, formats, credit and backpressure, and
%% close or owner death at every stage (one final message, nothing left
%% alive). A property checks the parser against a model written here from
%% the standard, over random streams cut at random places.
-module(erqwest_events_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").
-include_lib("proper/include/proper.hrl").

-compile([export_all, nowarn_export_all]).

-define(SSE_HEAD, "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                  "connection: close\r\n\r\n").

suite() -> [{timetrap, {minutes, 5}}].

all() ->
    [{group, rules}, {group, reconnect}, {group, formats}, {group, flow}, {group, batch},
     {group, lifecycle}, {group, property}].

groups() ->
    [{rules, [parallel],
      [invalid_utf8_becomes_replacement_characters, one_leading_bom_is_dropped,
       cr_lf_and_crlf_end_lines, crlf_split_across_chunks_is_one_line_end,
       lone_cr_dispatches_without_waiting, blank_line_dispatches,
       data_lines_joined_with_lf_last_removed, event_without_data_is_not_dispatched,
       bare_data_line_dispatches_empty_string, event_field_sets_type_default_message,
       id_sets_last_event_id_and_persists, id_with_nul_is_ignored, empty_id_resets_last_event_id,
       id_persists_across_reconnects, retry_only_when_all_digits, comment_lines_are_ignored,
       field_without_colon_is_whole_line, one_space_after_colon_is_dropped,
       unknown_fields_are_ignored, partial_event_at_end_is_dropped,
       every_chunk_split_gives_the_same_events]},
     {reconnect, [parallel],
      [reconnect_sends_last_event_id, server_retry_field_sets_delay,
       no_content_on_reconnect_closes, no_content_first_closes, http_error_on_reconnect_fails,
       wrong_content_type_fails, content_type_parameters_are_ignored, non_200_fails,
       max_reconnects_then_eof, reconnect_false_ends_with_eof, post_body_sent_again_on_reconnect,
       connection_refused_is_retried]},
     {formats, [parallel],
      [ndjson_json_error_line_does_not_end_stream, ndjson_null_atom_option, lines_format,
       sse_data_json_and_done_marker, line_over_max_line_fails_before_its_end,
       max_line_in_lines_format, http_error_in_ndjson_fails]},
     {flow, [parallel],
      [active_once_gives_one_then_passive, active_n_adds_credit, backpressure_holds_the_server]},
     {batch, [parallel],
      [batch_gives_the_same_events_as_single_messages, batch_every_chunk_split,
       batch_credit_counts_events, batch_once_is_a_list_of_one,
       batch_json_and_ndjson_and_lines, batch_at_most_max_per_message,
       batch_backpressure_holds_the_server, batch_false_is_the_default_protocol]},
     {lifecycle, [],
      [close_while_connecting, close_after_open, close_while_passive,
       close_during_reconnect_delay, close_after_final_is_noop, close_twice,
       owner_death_while_connecting, owner_death_while_streaming, owner_death_while_passive,
       owner_death_during_reconnect_delay, batch_close_while_passive,
       batch_close_while_streaming, batch_owner_death_while_streaming,
       dropped_handle_ends_stream, bad_options_are_badarg,
       url_error_is_the_final_message, no_leaks]},
     {property, [], [sse_parser_matches_the_model_over_random_splits]}].

init_per_suite(Config) ->
    {ok, _} = application:ensure_all_started(erqwest),
    [{client, erqwest:make_client()} | Config].

end_per_suite(_Config) ->
    application:stop(erqwest).

%%% Helpers

client(Config) -> ?config(client, Config).

with_server(Handler, Fun) ->
    {ok, S} = erqwest_test_server:start(Handler),
    try Fun(S) after erqwest_test_server:stop(S) end.

url(S) -> erqwest_test_server:url(S, "/events").

%% A handler that answers every request with an SSE head and then these
%% chunks, each sent on its own (a pause lets it arrive as one read), then
%% closes. `{hold, Tag}' in the list tells the test process `{held, Tag,
%% Pid}' and waits for `go'.
sse(Chunks) -> sse(Chunks, ?SSE_HEAD).
sse(Chunks, Head) ->
    Test = self(),
    fun(_Req) -> {custom, fun(Sock, _) -> play(Test, Sock, [Head | Chunks]) end} end.

play(_Test, _Sock, []) -> close;
play(Test, Sock, [{hold, Tag} | Rest]) ->
    Test ! {held, Tag, self()},
    case wait_go(Sock) of
        go -> play(Test, Sock, Rest);
        closed -> close
    end;
play(Test, Sock, [Chunk | Rest]) ->
    _ = gen_tcp:send(Sock, Chunk),
    timer:sleep(15),
    play(Test, Sock, Rest).

%% Waits for `go' from the test, or for the client to close the connection.
wait_go(Sock) ->
    ok = inet:setopts(Sock, [{active, once}]),
    receive
        go -> go;
        {tcp_closed, Sock} -> closed;
        {tcp, Sock, _} -> wait_go(Sock)
    end.

%% Opens a stream with plenty of credit; the options may add more.
open(Config, Url) -> open(Config, Url, #{}).
open(Config, Url, Opts) ->
    Ref = make_ref(),
    H = erqwest_events:open(client(Config), self(), Ref, #{method => get, url => Url},
                            maps:merge(#{active => 1000, retry => 20}, Opts)),
    %% Kept referenced: a garbage-collected handle ends its stream.
    put({handle, Ref}, H),
    {H, Ref}.

%% Every message up to the final one: {Messages, Final}.
drain(Ref) -> drain(Ref, []).
drain(Ref, Acc) ->
    receive
        {erqwest_events, Ref, closed, R} -> {lists:reverse(Acc), {closed, R}};
        {erqwest_events, Ref, error, E} -> {lists:reverse(Acc), {error, E}};
        {erqwest_events, Ref, passive} -> drain(Ref, [passive | Acc]);
        {erqwest_events, Ref, Tag, V} -> drain(Ref, [{Tag, V} | Acc])
    after 10000 -> ct:fail({no_final, lists:reverse(Acc)})
    end.

events(Msgs) -> [E || {event, E} <- Msgs].

%% Data of each event, as {Type, Data, Id}.
triples(Msgs) -> [{T, D, I} || #{type := T, data := D, id := I} <- events(Msgs)].

%% A whole stream with reconnect off: the events as triples.
stream_events(Config, Chunks) ->
    with_server(sse(Chunks), fun(S) ->
        {H, Ref} = open(Config, url(S), #{reconnect => false}),
        {Msgs, Final} = drain(Ref),
        ?assertEqual({closed, eof}, Final),
        ok = erqwest_events:close(H),
        triples(Msgs)
    end).

msg(D) -> {<<"message">>, D, undefined}.

no_message(Ref) ->
    receive {erqwest_events, Ref, _} = M -> ct:fail({unexpected, M});
            {erqwest_events, Ref, _, _} = M -> ct:fail({unexpected, M})
    after 200 -> ok
    end.

next(Ref) ->
    receive
        {erqwest_events, Ref, passive} -> passive;
        {erqwest_events, Ref, Tag, V} -> {Tag, V}
    after 10000 -> ct:fail(no_message)
    end.

%% In an owner process: the server told the test process, which passes
%% it on.
held_by(Test, Tag) ->
    Test ! {relay_held, Tag, self()},
    receive {relayed, Tag} -> ok after 10000 -> ct:fail({not_held, Tag}) end.

held(Tag) ->
    receive {held, Tag, Pid} -> Pid after 10000 -> ct:fail({not_held, Tag}) end.

%% Waits until no event stream is alive (handles included when asked).
wait_live(Want) ->
    [erase(K) || {{handle, _} = K, _} <- get()],
    wait_live(Want, 100).
wait_live(Want, 0) -> ct:fail({live, erqwest_events:live(), want, Want});
wait_live(Want, N) ->
    erlang:garbage_collect(),
    case erqwest_events:live() of
        Want -> ok;
        _ -> timer:sleep(50), wait_live(Want, N - 1)
    end.

%%% Parsing rules (item 2 of the issue), end to end

invalid_utf8_becomes_replacement_characters(Config) ->
    ?assertEqual([msg(<<"a", 16#FFFD/utf8, "b", 16#FFFD/utf8, "\n€"/utf8>>)],
                 stream_events(Config, [<<"data: a\xFFb\xE2\x82\n">>,
                                        <<"data: \xE2">>, <<"\x82\xAC\n\n">>])),
    ok.

one_leading_bom_is_dropped(Config) ->
    %% Split inside the BOM; a second BOM is part of the line (an unknown
    %% field name), so its data line never counts.
    ?assertEqual([msg(<<"a">>)],
                 stream_events(Config, [<<16#EF>>, <<16#BB, 16#BF, "data: a\n\n">>,
                                        <<16#EF, 16#BB, 16#BF, "data: b\n\n">>])),
    ok.

cr_lf_and_crlf_end_lines(Config) ->
    ?assertEqual([msg(<<"a\nb">>), msg(<<"c">>), msg(<<"d">>)],
                 stream_events(Config, [<<"data: a\rdata: b\r\r">>, <<"data: c\n\n">>,
                                        <<"data: d\r\n\r\n">>])),
    ok.

crlf_split_across_chunks_is_one_line_end(Config) ->
    %% Were the LF a line of its own, "a" would be dispatched alone.
    ?assertEqual([msg(<<"a\nb">>)],
                 stream_events(Config, [<<"data: a\r">>, <<"\ndata: b\r">>, <<"\n\r">>,
                                        <<"\n">>])),
    ok.

lone_cr_dispatches_without_waiting(Config) ->
    with_server(sse([<<"data: x\r\r">>, {hold, cr}, <<"\ndata: y\r\n\r\n">>]), fun(S) ->
        {_H, Ref} = open(Config, url(S), #{reconnect => false}),
        Server = held(cr),
        ?assertMatch({open, #{status := 200}}, next(Ref)),
        %% The server holds its next byte: the event came without it.
        ?assertEqual({event, #{type => <<"message">>, data => <<"x">>, id => undefined}},
                     next(Ref)),
        Server ! go,
        {Msgs, {closed, eof}} = drain(Ref),
        ?assertEqual([msg(<<"y">>)], triples(Msgs))
    end).

blank_line_dispatches(Config) ->
    with_server(sse([<<"data: one\n">>, {hold, blank}, <<"\n">>, {hold, end_}]), fun(S) ->
        {_H, Ref} = open(Config, url(S), #{reconnect => false}),
        Server = held(blank),
        ?assertMatch({open, _}, next(Ref)),
        no_message(Ref),
        Server ! go,
        Server2 = held(end_),
        ?assertMatch({event, #{data := <<"one">>}}, next(Ref)),
        Server2 ! go,
        ?assertEqual({[], {closed, eof}}, drain(Ref))
    end).

data_lines_joined_with_lf_last_removed(Config) ->
    ?assertEqual([msg(<<"a\nb\n">>), msg(<<"\n\n">>)],
                 stream_events(Config, [<<"data: a\ndata: b\ndata\n\n">>,
                                        <<"data\ndata\ndata\n\n">>])),
    ok.

event_without_data_is_not_dispatched(Config) ->
    ?assertEqual([{<<"message">>, <<"x">>, <<"1">>}],
                 stream_events(Config, [<<"event: a\n\nid: 1\n\nretry: 5\n\n: c\n\n">>,
                                        <<"data: x\n\n">>])),
    ok.

bare_data_line_dispatches_empty_string(Config) ->
    ?assertEqual([msg(<<>>), msg(<<>>)],
                 stream_events(Config, [<<"data\n\ndata:\n\n">>])),
    ok.

event_field_sets_type_default_message(Config) ->
    ?assertEqual([{<<"add">>, <<"1">>, undefined}, msg(<<"2">>), msg(<<"3">>)],
                 stream_events(Config, [<<"event: add\ndata: 1\n\ndata: 2\n\n">>,
                                        <<"event:\ndata: 3\n\n">>])),
    ok.

id_sets_last_event_id_and_persists(Config) ->
    ?assertEqual([{<<"message">>, <<"a">>, <<"7">>}, {<<"message">>, <<"b">>, <<"7">>},
                  {<<"message">>, <<"c">>, <<"8">>}],
                 stream_events(Config, [<<"id: 7\ndata: a\n\ndata: b\n\n">>,
                                        <<"data: c\nid: 8\n\n">>])),
    ok.

id_with_nul_is_ignored(Config) ->
    ?assertEqual([{<<"message">>, <<"a">>, <<"1">>}],
                 stream_events(Config, [<<"id: 1\nid: 2\0x\ndata: a\n\n">>])),
    ok.

empty_id_resets_last_event_id(Config) ->
    ?assertEqual([{<<"message">>, <<"a">>, <<"1">>}, msg(<<"b">>), msg(<<"c">>)],
                 stream_events(Config, [<<"id: 1\ndata: a\n\nid\ndata: b\n\n">>,
                                        <<"id:\ndata: c\n\n">>])),
    ok.

id_persists_across_reconnects(Config) ->
    Handler = fun(#{conn := 1}) ->
                      {raw_close, [?SSE_HEAD, <<"id: 42\ndata: a\n\n">>]};
                 (#{conn := 2}) ->
                      {raw_close, [?SSE_HEAD, <<"data: b\n\n">>]}
              end,
    with_server(Handler, fun(S) ->
        {_H, Ref} = open(Config, url(S), #{max_reconnects => 1}),
        {Msgs, {closed, eof}} = drain(Ref),
        ?assertEqual([{<<"message">>, <<"a">>, <<"42">>}, {<<"message">>, <<"b">>, <<"42">>}],
                     triples(Msgs))
    end).

retry_only_when_all_digits(Config) ->
    Handler = fun(#{conn := 1}) ->
                      {raw_close, [?SSE_HEAD, <<"retry: 12x\nretry: -1\nretry: 1.5\n",
                                                "retry: 35\nretry:\nretry: 2 \n">>]};
                 (_) ->
                      {204, [], <<>>}
              end,
    with_server(Handler, fun(S) ->
        {_H, Ref} = open(Config, url(S), #{retry => 9000}),
        {Msgs, {closed, no_content}} = drain(Ref),
        ?assertMatch([#{delay := 35}], [R || {reconnecting, R} <- Msgs])
    end).

comment_lines_are_ignored(Config) ->
    ?assertEqual([msg(<<"a">>)],
                 stream_events(Config, [<<":data: no\n: hi\ndata: a\n:\n\n">>])),
    ok.

field_without_colon_is_whole_line(Config) ->
    %% "data x" is a field named "data x" (ignored); "data" alone is data.
    ?assertEqual([msg(<<"\n">>)],
                 stream_events(Config, [<<"data x\ndata\ndata\n\n">>])),
    ok.

one_space_after_colon_is_dropped(Config) ->
    ?assertEqual([msg(<<"a\n b\n\tc">>)],
                 stream_events(Config, [<<"data:a\ndata:  b\ndata: \tc\n\n">>])),
    ok.

unknown_fields_are_ignored(Config) ->
    ?assertEqual([msg(<<"a">>)],
                 stream_events(Config, [<<"foo: bar\nDATA: x\nData: y\ndata: a\nevents: e\n\n">>])),
    ok.

partial_event_at_end_is_dropped(Config) ->
    ?assertEqual([msg(<<"a">>)],
                 stream_events(Config, [<<"data: a\n\ndata: b\n">>, <<"data: c">>])),
    ok.

%% The same stream cut in two at every byte offset, end to end.
every_chunk_split_gives_the_same_events(Config) ->
    Stream = <<16#EF, 16#BB, 16#BF, ": c\r\nevent: e\r\ndata: 1\r\rid: 9\ndata:\xE2\x82\xAC\n\n",
               "data\r\n\r\n">>,
    Want = [{<<"e">>, <<"1">>, undefined}, {<<"message">>, <<"€"/utf8>>, <<"9">>},
            {<<"message">>, <<>>, <<"9">>}],
    Cuts = lists:seq(0, byte_size(Stream)),
    Got = [begin
               <<A:N/binary, B/binary>> = Stream,
               {N, stream_events(Config, [A, B])}
           end || N <- Cuts],
    ?assertEqual([{N, Want} || N <- Cuts], Got).

%%% Reconnect

reconnect_sends_last_event_id(Config) ->
    Handler = fun(#{conn := 1}) -> {raw_close, [?SSE_HEAD, <<"id: e1\ndata: a\n\nid: e2\n">>]};
                 (#{conn := 2}) -> {raw_close, [?SSE_HEAD, <<"data: b\n\n">>]};
                 (_) -> {204, [], <<>>}
              end,
    with_server(Handler, fun(S) ->
        {_H, Ref} = open(Config, url(S)),
        {Msgs, {closed, no_content}} = drain(Ref),
        ?assertMatch([{open, _}, {event, _}, {reconnecting, #{attempt := 1, delay := 20,
                                                                last_event_id := <<"e1">>}},
                      {open, _}, {event, _}, {reconnecting, #{attempt := 2}}], Msgs),
        [R1, R2, R3] = erqwest_test_server:requests(S),
        Hs = fun(#{headers := H}) -> proplists:get_value(<<"last-event-id">>, H) end,
        ?assertEqual([undefined, <<"e1">>, <<"e1">>], [Hs(R) || R <- [R1, R2, R3]]),
        ?assertEqual(<<"text/event-stream">>,
                     proplists:get_value(<<"accept">>, maps:get(headers, R1)))
    end).

server_retry_field_sets_delay(Config) ->
    Handler = fun(#{conn := 1}) -> {raw_close, [?SSE_HEAD, <<"retry: 150\ndata: a\n\n">>]};
                 (_) -> {204, [], <<>>}
              end,
    with_server(Handler, fun(S) ->
        {_H, Ref} = open(Config, url(S), #{retry => 5}),
        T0 = erlang:monotonic_time(millisecond),
        {Msgs, {closed, no_content}} = drain(Ref),
        Waited = erlang:monotonic_time(millisecond) - T0,
        ?assertMatch([#{delay := 150}], [R || {reconnecting, R} <- Msgs]),
        %% The delay is a lower bound, not a speed claim.
        ?assert(Waited >= 150)
    end).

no_content_on_reconnect_closes(Config) ->
    Handler = fun(#{conn := 1}) -> {raw_close, [?SSE_HEAD, <<"data: a\n\n">>]};
                 (_) -> {204, [], <<>>}
              end,
    with_server(Handler, fun(S) ->
        {_H, Ref} = open(Config, url(S)),
        {Msgs, Final} = drain(Ref),
        ?assertEqual({closed, no_content}, Final),
        ?assertEqual(1, length(events(Msgs))),
        timer:sleep(100),
        ?assertEqual(2, length(erqwest_test_server:requests(S)))
    end).

no_content_first_closes(Config) ->
    with_server(fun(_) -> {204, [], <<>>} end, fun(S) ->
        {_H, Ref} = open(Config, url(S)),
        ?assertEqual({[], {closed, no_content}}, drain(Ref))
    end).

http_error_on_reconnect_fails(Config) ->
    Handler = fun(#{conn := 1}) -> {raw_close, [?SSE_HEAD, <<"data: a\n\n">>]};
                 (_) -> {503, [], <<"busy">>}
              end,
    with_server(Handler, fun(S) ->
        {_H, Ref} = open(Config, url(S)),
        {_Msgs, Final} = drain(Ref),
        ?assertMatch({error, #{code := http_status, status := 503, reason := _}}, Final)
    end).

wrong_content_type_fails(Config) ->
    with_server(fun(_) -> {200, [{"content-type", "text/plain"}], <<"data: a\n\n">>} end,
                fun(S) ->
        {_H, Ref} = open(Config, url(S)),
        ?assertMatch({[], {error, #{code := content_type}}}, drain(Ref))
    end).

content_type_parameters_are_ignored(Config) ->
    Head = "HTTP/1.1 200 OK\r\ncontent-type: Text/Event-Stream ; charset=utf-8\r\n"
           "connection: close\r\n\r\n",
    with_server(sse([<<"data: a\n\n">>], Head), fun(S) ->
        {_H, Ref} = open(Config, url(S), #{reconnect => false}),
        {Msgs, {closed, eof}} = drain(Ref),
        ?assertEqual([msg(<<"a">>)], triples(Msgs))
    end).

non_200_fails(Config) ->
    with_server(fun(_) -> {201, [{"content-type", "text/event-stream"}], <<"data: a\n\n">>} end,
                fun(S) ->
        {_H, Ref} = open(Config, url(S)),
        ?assertMatch({[], {error, #{code := http_status, status := 201}}}, drain(Ref))
    end).

max_reconnects_then_eof(Config) ->
    with_server(fun(_) -> {raw_close, [?SSE_HEAD, <<"data: a\n\n">>]} end, fun(S) ->
        {_H, Ref} = open(Config, url(S), #{max_reconnects => 2}),
        {Msgs, Final} = drain(Ref),
        ?assertEqual({closed, eof}, Final),
        ?assertEqual(3, length(events(Msgs))),
        ?assertEqual([1, 2], [N || {reconnecting, #{attempt := N}} <- Msgs])
    end).

reconnect_false_ends_with_eof(Config) ->
    with_server(fun(_) -> {raw_close, [?SSE_HEAD, <<"data: a\n\n">>]} end, fun(S) ->
        {_H, Ref} = open(Config, url(S), #{reconnect => false}),
        {Msgs, {closed, eof}} = drain(Ref),
        ?assertEqual([], [R || {reconnecting, R} <- Msgs]),
        ?assertEqual(1, length(erqwest_test_server:requests(S)))
    end).

post_body_sent_again_on_reconnect(Config) ->
    Body = <<"{\"model\":\"m\",\"stream\":true}">>,
    Handler = fun(#{conn := 1}) -> {raw_close, [?SSE_HEAD, <<"id: 1\ndata: a\n\n">>]};
                 (_) -> {204, [], <<>>}
              end,
    with_server(Handler, fun(S) ->
        Ref = make_ref(),
        H = erqwest_events:open(client(Config), self(), Ref,
                                 #{method => post, url => url(S), body => Body,
                                   headers => [{<<"content-type">>, <<"application/json">>}]},
                                 #{active => 10, retry => 10}),
        {_, {closed, no_content}} = drain(Ref),
        ok = erqwest_events:close(H),
        [#{method := <<"POST">>, body := Body}, #{method := <<"POST">>, body := Body}] =
            erqwest_test_server:requests(S),
        ok
    end).

connection_refused_is_retried(Config) ->
    {ok, L} = gen_tcp:listen(0, [{ip, {127, 0, 0, 1}}]),
    {ok, Port} = inet:port(L),
    ok = gen_tcp:close(L),
    Url = iolist_to_binary(["http://127.0.0.1:", integer_to_list(Port), "/"]),
    {_H, Ref} = open(Config, Url, #{max_reconnects => 2, retry => 5}),
    {Msgs, Final} = drain(Ref),
    ?assertMatch({error, #{code := connect}}, Final),
    ?assertEqual([1, 2], [N || {reconnecting, #{attempt := N}} <- Msgs]).

%%% Formats

ndjson_json_error_line_does_not_end_stream(Config) ->
    Body = <<"{\"a\":1}\r\n\n{not json}\n[1,null,\"x\"]\n\"last\"">>,
    with_server(fun(_) -> {200, [{"content-type", "application/x-ndjson"}], Body} end,
                fun(S) ->
        {_H, Ref} = open(Config, url(S), #{format => ndjson}),
        {Msgs, Final} = drain(Ref),
        ?assertEqual({closed, eof}, Final),
        ?assertEqual([#{<<"a">> => 1}, {json_error, <<"{not json}">>}, [1, null, <<"x">>],
                      <<"last">>], events(Msgs))
    end).

ndjson_null_atom_option(Config) ->
    with_server(fun(_) -> {200, [], <<"null\n{\"k\":null}\n">>} end, fun(S) ->
        {_H, Ref} = open(Config, url(S), #{format => ndjson, json_null => nil}),
        {Msgs, {closed, eof}} = drain(Ref),
        ?assertEqual([nil, #{<<"k">> => nil}], events(Msgs))
    end).

lines_format(Config) ->
    with_server(fun(_) -> {200, [], <<"one\r\n\ntwo\nthree">>} end, fun(S) ->
        {_H, Ref} = open(Config, url(S), #{format => lines}),
        {Msgs, {closed, eof}} = drain(Ref),
        ?assertEqual([<<"one">>, <<>>, <<"two">>, <<"three">>], events(Msgs))
    end).

sse_data_json_and_done_marker(Config) ->
    Chunks = [<<"data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\n">>,
              <<"data: [DONE]\n\n">>],
    with_server(sse(Chunks), fun(S) ->
        {_H, Ref} = open(Config, url(S), #{data => json, reconnect => false}),
        {Msgs, {closed, eof}} = drain(Ref),
        ?assertEqual([#{type => <<"message">>, id => undefined,
                        data => #{<<"choices">> => [#{<<"delta">> => #{<<"content">> => <<"Hi">>}}]}},
                      #{type => <<"message">>, id => undefined, data => <<"[DONE]">>,
                        json_error => true}],
                     events(Msgs))
    end).

line_over_max_line_fails_before_its_end(Config) ->
    Long = binary:copy(<<"x">>, 5000),
    with_server(sse([<<"data: ok\n\n">>, <<"data: ", Long/binary>>, {hold, long}]), fun(S) ->
        {_H, Ref} = open(Config, url(S), #{max_line => 1000}),
        Server = held(long),
        %% The server still holds the line's end: the error came without it.
        {Msgs, Final} = drain(Ref),
        Server ! go,
        ?assertEqual([msg(<<"ok">>)], triples(Msgs)),
        ?assertMatch({error, #{code := line_too_long}}, Final)
    end).

max_line_in_lines_format(Config) ->
    with_server(fun(_) -> {200, [], <<"short\n", (binary:copy(<<"y">>, 100))/binary, "\n">>} end,
                fun(S) ->
        {_H, Ref} = open(Config, url(S), #{format => lines, max_line => 99}),
        {Msgs, Final} = drain(Ref),
        ?assertEqual([<<"short">>], events(Msgs)),
        ?assertMatch({error, #{code := line_too_long}}, Final)
    end).

http_error_in_ndjson_fails(Config) ->
    with_server(fun(_) -> {500, [], <<"{}\n">>} end, fun(S) ->
        {_H, Ref} = open(Config, url(S), #{format => ndjson}),
        ?assertMatch({[], {error, #{code := http_status, status := 500}}}, drain(Ref))
    end).

%%% Flow control

active_once_gives_one_then_passive(Config) ->
    with_server(sse([<<"data: 1\n\ndata: 2\n\ndata: 3\n\n">>]), fun(S) ->
        {H, Ref} = open(Config, url(S), #{active => once, reconnect => false}),
        ?assertMatch({open, _}, next(Ref)),
        ?assertMatch({event, #{data := <<"1">>}}, next(Ref)),
        ?assertEqual(passive, next(Ref)),
        no_message(Ref),
        ok = erqwest_events:active(H, once),
        ?assertMatch({event, #{data := <<"2">>}}, next(Ref)),
        ?assertEqual(passive, next(Ref)),
        no_message(Ref),
        ok = erqwest_events:active(H, 5),
        ?assertMatch({event, #{data := <<"3">>}}, next(Ref)),
        ?assertEqual({closed, eof}, next(Ref))
    end).

active_n_adds_credit(Config) ->
    Body = iolist_to_binary([["data: ", integer_to_list(I), "\n\n"] || I <- lists:seq(1, 10)]),
    with_server(sse([Body]), fun(S) ->
        {H, Ref} = open(Config, url(S), #{active => 2, reconnect => false}),
        ?assertMatch({open, _}, next(Ref)),
        ?assertMatch({event, _}, next(Ref)),
        ?assertMatch({event, _}, next(Ref)),
        ?assertEqual(passive, next(Ref)),
        ok = erqwest_events:active(H, 3),
        ok = erqwest_events:active(H, 4),
        %% The first 3 may run out (and say `passive') before the 4 arrive.
        Seven = take_events(Ref, 7),
        ?assertEqual([<<"3">>, <<"4">>, <<"5">>, <<"6">>, <<"7">>, <<"8">>, <<"9">>],
                     [D || {event, #{data := D}} <- Seven]),
        ?assert(length(Seven) =< 8),
        ?assertEqual(passive, next(Ref)),
        no_message(Ref),
        ?assertError(badarg, erqwest_events:active(H, 0)),
        ?assertError(badarg, erqwest_events:active(H, -1)),
        ?assertError(badarg, erqwest_events:active(H, true)),
        ok = erqwest_events:active(H, 1),
        ?assertMatch({event, #{data := <<"10">>}}, next(Ref)),
        ?assertEqual(passive, next(Ref)),
        %% Without credit the body is not read, so its end is not seen yet.
        no_message(Ref),
        ok = erqwest_events:active(H, once),
        ?assertEqual({closed, eof}, next(Ref))
    end).

%% An SSE handler that writes 640-event blocks of ~100-byte events as fast
%% as the socket takes them, counting the bytes written in `Sent'.
flooding_server() ->
    Sent = counters:new(1, []),
    Event = <<"data: ", (binary:copy(<<"z">>, 92))/binary, "\n\n">>,
    Block = binary:copy(Event, 640),
    Push = fun Push(Sock) ->
               case gen_tcp:send(Sock, Block) of
                   ok -> counters:add(Sent, 1, byte_size(Block)), Push(Sock);
                   {error, _} -> close
               end
           end,
    Handler = fun(_) -> {custom, fun(Sock, _) -> ok = gen_tcp:send(Sock, ?SSE_HEAD), Push(Sock) end}
              end,
    {Handler, Sent, Block}.

%% A server writing as fast as it can into a consumer that holds back: the
%% bytes it manages to write stop growing (TCP flow control holds it) and
%% the VM's memory stays flat; credit given slowly moves the stream on.
backpressure_holds_the_server(Config) ->
    {Handler, Sent, Block} = flooding_server(),
    with_server(Handler, fun(S) ->
        {H, Ref} = open(Config, url(S), #{active => once}),
        ?assertMatch({open, _}, next(Ref)),
        ?assertMatch({event, _}, next(Ref)),
        ?assertEqual(passive, next(Ref)),
        timer:sleep(500),
        Rss0 = rss(),
        Sent0 = counters:get(Sent, 1),
        timer:sleep(1500),
        Sent1 = counters:get(Sent, 1),
        Rss1 = rss(),
        ct:pal("held: server wrote ~b then ~b bytes; VM RSS ~b -> ~b KB",
               [Sent0, Sent1, Rss0 div 1024, Rss1 div 1024]),
        %% Unheld, loopback moves gigabytes in 1.5 s; held, only the
        %% socket buffers fill (a few MB), then nothing more.
        ?assert(Sent1 < 64 * 1024 * 1024),
        ?assert(Sent1 - Sent0 =< 4 * byte_size(Block)),
        ?assert(Rss1 - Rss0 < 16 * 1024 * 1024),
        %% Slow credit: 100 events at a time, still in order of the wire.
        [begin
             ok = erqwest_events:active(H, 100),
             Got = [next(Ref) || _ <- lists:seq(1, 100)],
             ?assertEqual(100, length([E || {event, #{data := <<"zzz", _/binary>>} = E} <- Got])),
             ?assertEqual(passive, next(Ref))
         end || _ <- lists:seq(1, 5)],
        ok = erqwest_events:close(H),
        {_, {closed, normal}} = drain(Ref),
        ok = erqwest_test_server:wait_closed(S, 0)
    end).

take_events(_Ref, 0) -> [];
take_events(Ref, N) ->
    case next(Ref) of
        passive -> [passive | take_events(Ref, N)];
        {event, _} = E -> [E | take_events(Ref, N - 1)]
    end.

rss() ->
    {ok, Statm} = file:read_file("/proc/self/statm"),
    [_, Resident | _] = binary:split(Statm, <<" ">>, [global]),
    binary_to_integer(Resident) * 4096.

%%% Batches (batch => true)

%% The events of the `events' lists in `Msgs', in order. Fails on an
%% empty list, on something that is not a list, and on a single `event'
%% message (a batched stream never sends one).
batched(Msgs) ->
    ?assertEqual([], [M || {event, _} = M <- Msgs]),
    Lists = [L || {events, L} <- Msgs],
    ?assertEqual([], [L || L <- Lists, not is_list(L) orelse L =:= []]),
    lists:append(Lists).

%% A whole stream of these chunks, with these options: {Messages, Final};
%% nothing comes after the final message.
stream_msgs(Config, Chunks, Opts) ->
    with_server(sse(Chunks), fun(S) ->
        {H, Ref} = open(Config, url(S), Opts#{reconnect => false}),
        {Msgs, Final} = drain(Ref),
        no_message(Ref),
        ok = erqwest_events:close(H),
        {Msgs, Final}
    end).

numbered(From, To) ->
    iolist_to_binary([["data: ", integer_to_list(I), "\n\n"] || I <- lists:seq(From, To)]).

batch_gives_the_same_events_as_single_messages(Config) ->
    Chunks = [<<"event: a\ndata: 1\n\nid: 7\ndata: 2\n\n">>, <<"data: 3\n\ndata: 4">>,
              <<"\n\ndata: 5\n\n">>, numbered(6, 400), <<": only a comment\n\n">>,
              numbered(401, 420)],
    {Single, F1} = stream_msgs(Config, Chunks, #{}),
    {Batched, F2} = stream_msgs(Config, Chunks, #{batch => true}),
    ?assertEqual({closed, eof}, F1),
    ?assertEqual({closed, eof}, F2),
    Want = events(Single),
    ?assertEqual(420, length(Want)),
    ?assertEqual(Want, batched(Batched)),
    %% Fewer messages than events: the 395 events of the fourth chunk
    %% arrive in a few lists, not one message each.
    ?assert(length([L || {events, L} <- Batched]) < 100),
    %% The same `open' first; no `passive' with this much credit.
    ?assertMatch([{open, #{status := 200}} | _], Batched),
    ?assertEqual([], [passive || passive <- Batched]).

%% The stream of every_chunk_split_gives_the_same_events cut at every byte.
batch_every_chunk_split(Config) ->
    Stream = <<16#EF, 16#BB, 16#BF, ": c\r\nevent: e\r\ndata: 1\r\rid: 9\ndata:\xE2\x82\xAC\n\n",
               "data\r\n\r\n">>,
    Want = [#{type => <<"e">>, data => <<"1">>, id => undefined},
            #{type => <<"message">>, data => <<"€"/utf8>>, id => <<"9">>},
            #{type => <<"message">>, data => <<>>, id => <<"9">>}],
    Cuts = lists:seq(0, byte_size(Stream)),
    Got = [begin
               <<A:N/binary, B/binary>> = Stream,
               {Msgs, {closed, eof}} = stream_msgs(Config, [A, B], #{batch => true}),
               {N, batched(Msgs)}
           end || N <- Cuts],
    ?assertEqual([{N, Want} || N <- Cuts], Got).

datas(Events) -> [D || #{data := D} <- Events].

ints(From, To) -> [integer_to_binary(I) || I <- lists:seq(From, To)].

%% Ten events in one chunk, all parsed at once: each list holds exactly
%% what the credit allows, `passive' right after it.
batch_credit_counts_events(Config) ->
    with_server(sse([numbered(1, 10)]), fun(S) ->
        {H, Ref} = open(Config, url(S), #{active => 3, batch => true, reconnect => false}),
        ?assertMatch({open, _}, next(Ref)),
        {events, L1} = next(Ref),
        ?assertEqual(ints(1, 3), datas(L1)),
        ?assertEqual(passive, next(Ref)),
        no_message(Ref),
        ok = erqwest_events:active(H, 4),
        {events, L2} = next(Ref),
        ?assertEqual(ints(4, 7), datas(L2)),
        ?assertEqual(passive, next(Ref)),
        no_message(Ref),
        ok = erqwest_events:active(H, 100),
        {events, L3} = next(Ref),
        ?assertEqual(ints(8, 10), datas(L3)),
        %% 97 credit left: the end of the body is seen, no `passive'.
        ?assertEqual({closed, eof}, next(Ref)),
        no_message(Ref),
        ?assertEqual(finished, erqwest_nif:events_active(H, 1))
    end).

batch_once_is_a_list_of_one(Config) ->
    with_server(sse([numbered(1, 3)]), fun(S) ->
        {H, Ref} = open(Config, url(S), #{active => once, batch => true, reconnect => false}),
        ?assertMatch({open, _}, next(Ref)),
        ?assertMatch({events, [#{data := <<"1">>}]}, next(Ref)),
        ?assertEqual(passive, next(Ref)),
        no_message(Ref),
        %% `once' replaces what is left, as without batches.
        ok = erqwest_events:active(H, once),
        ?assertMatch({events, [#{data := <<"2">>}]}, next(Ref)),
        ?assertEqual(passive, next(Ref)),
        ok = erqwest_events:active(H, 5),
        ?assertMatch({events, [#{data := <<"3">>}]}, next(Ref)),
        ?assertEqual({closed, eof}, next(Ref))
    end).

%% Each format's events, JSON decoded in the runtime, are the same in lists.
batch_json_and_ndjson_and_lines(Config) ->
    Sse = [<<"data: {\"a\":[1,null]}\n\ndata: [DONE]\n\n">>, <<"data: 2\n\ndata: \"s\"\n\n">>],
    {S1, {closed, eof}} = stream_msgs(Config, Sse, #{data => json}),
    {S2, {closed, eof}} = stream_msgs(Config, Sse, #{data => json, batch => true}),
    ?assertEqual([#{<<"a">> => [1, null]}, <<"[DONE]">>, 2, <<"s">>], datas(events(S1))),
    ?assertEqual(events(S1), batched(S2)),
    Body = <<"{\"a\":1}\r\n\n{not json}\n[1,null,\"x\"]\n\"last\"">>,
    Plain = fun(Opts) ->
        with_server(fun(_) -> {200, [], Body} end, fun(S) ->
            {_H, Ref} = open(Config, url(S), Opts),
            {Msgs, {closed, eof}} = drain(Ref),
            no_message(Ref),
            Msgs
        end)
    end,
    N1 = Plain(#{format => ndjson, json_null => nil}),
    N2 = Plain(#{format => ndjson, json_null => nil, batch => true}),
    ?assertEqual([#{<<"a">> => 1}, {json_error, <<"{not json}">>}, [1, nil, <<"x">>],
                  <<"last">>], events(N1)),
    ?assertEqual(events(N1), batched(N2)),
    L1 = Plain(#{format => lines}),
    L2 = Plain(#{format => lines, batch => true}),
    ?assertEqual([<<"{\"a\":1}">>, <<>>, <<"{not json}">>, <<"[1,null,\"x\"]">>, <<"\"last\"">>],
                 events(L1)),
    ?assertEqual(events(L1), batched(L2)).

%% 200,000 one-byte lines in one body, written at once: no list holds
%% more than 10,000, and the reads (tens of KB of 2-byte lines each) fill
%% some to the cap.
batch_at_most_max_per_message(Config) ->
    N = 200000,
    Body = binary:copy(<<"x\n">>, N),
    with_server(fun(_) -> {200, [], Body} end, fun(S) ->
        {_H, Ref} = open(Config, url(S), #{format => lines, batch => true,
                                           active => 1000000}),
        {Msgs, {closed, eof}} = drain(Ref),
        Lens = [length(L) || {events, L} <- Msgs],
        ct:pal("~b events in ~b lists, the longest ~b", [N, length(Lens), lists:max(Lens)]),
        ?assertEqual(lists:duplicate(N, <<"x">>), batched(Msgs)),
        ?assertEqual(10000, lists:max(Lens))
    end).

%% Takes `events' lists until they hold N events; fails if one overshoots.
take_batched(Ref, N) when N > 0 ->
    case next(Ref) of
        {events, [_ | _] = L} when length(L) =< N -> L ++ take_batched(Ref, N - length(L));
        Other -> ct:fail({want, N, got, Other})
    end;
take_batched(_Ref, 0) -> [].

batch_backpressure_holds_the_server(Config) ->
    {Handler, Sent, Block} = flooding_server(),
    with_server(Handler, fun(S) ->
        {H, Ref} = open(Config, url(S), #{active => 500, batch => true}),
        ?assertMatch({open, _}, next(Ref)),
        ?assertEqual(500, length(take_batched(Ref, 500))),
        ?assertEqual(passive, next(Ref)),
        timer:sleep(500),
        Sent0 = counters:get(Sent, 1),
        timer:sleep(1000),
        Sent1 = counters:get(Sent, 1),
        ct:pal("held (batch): server wrote ~b then ~b bytes", [Sent0, Sent1]),
        ?assert(Sent1 < 64 * 1024 * 1024),
        ?assert(Sent1 - Sent0 =< 4 * byte_size(Block)),
        [begin
             ok = erqwest_events:active(H, 1000),
             Got = take_batched(Ref, 1000),
             ?assertEqual(1000, length([E || #{data := <<"zzz", _/binary>>} = E <- Got])),
             ?assertEqual(passive, next(Ref))
         end || _ <- lists:seq(1, 5)],
        ok = erqwest_events:close(H),
        {_, {closed, normal}} = drain(Ref),
        no_message(Ref),
        ok = erqwest_test_server:wait_closed(S, 0)
    end).

batch_false_is_the_default_protocol(Config) ->
    {Msgs, {closed, eof}} = stream_msgs(Config, [numbered(1, 5)], #{batch => false}),
    ?assertEqual([], [L || {events, L} <- Msgs]),
    ?assertEqual(ints(1, 5), datas(events(Msgs))).

%%% Close and owner death at every stage

%% A server that takes the request and never answers.
silent() ->
    Test = self(),
    fun(_) -> {custom, fun(Sock, _) -> Test ! {held, silent, self()},
                                       _ = wait_go(Sock),
                                       close end} end.

%% A stream that sent one event and holds the connection open.
one_then_hold() ->
    sse([<<"data: 1\n\ndata: 2\n\n">>, {hold, open}]).

final_once(Ref, Want) ->
    {_, Final} = drain(Ref),
    ?assertEqual(Want, Final),
    no_message(Ref).

close_while_connecting(Config) ->
    with_server(silent(), fun(S) ->
        {H, Ref} = open(Config, url(S)),
        _ = held(silent),
        ok = erqwest_events:close(H),
        final_once(Ref, {closed, normal}),
        ok = erqwest_test_server:wait_closed(S, 0)
    end),
    wait_live({0, 0}).

close_after_open(Config) ->
    with_server(one_then_hold(), fun(S) ->
        {H, Ref} = open(Config, url(S)),
        _ = held(open),
        ?assertMatch({open, _}, next(Ref)),
        ok = erqwest_events:close(H),
        final_once(Ref, {closed, normal}),
        ok = erqwest_test_server:wait_closed(S, 0)
    end),
    wait_live({0, 0}).

close_while_passive(Config) ->
    with_server(one_then_hold(), fun(S) ->
        {H, Ref} = open(Config, url(S), #{active => once}),
        _ = held(open),
        ?assertMatch({open, _}, next(Ref)),
        ?assertMatch({event, _}, next(Ref)),
        ?assertEqual(passive, next(Ref)),
        ok = erqwest_events:close(H),
        %% The second event was parsed but never delivered.
        final_once(Ref, {closed, normal}),
        ok = erqwest_test_server:wait_closed(S, 0)
    end),
    wait_live({0, 0}).

close_during_reconnect_delay(Config) ->
    with_server(fun(_) -> {raw_close, [?SSE_HEAD, <<"data: a\n\n">>]} end, fun(S) ->
        {H, Ref} = open(Config, url(S), #{retry => 60000}),
        ?assertMatch({open, _}, next(Ref)),
        ?assertMatch({event, _}, next(Ref)),
        ?assertMatch({reconnecting, #{attempt := 1, delay := 60000}}, next(Ref)),
        ok = erqwest_events:close(H),
        final_once(Ref, {closed, normal}),
        ?assertEqual(1, length(erqwest_test_server:requests(S)))
    end),
    wait_live({0, 0}).

close_after_final_is_noop(Config) ->
    with_server(fun(_) -> {204, [], <<>>} end, fun(S) ->
        {H, Ref} = open(Config, url(S)),
        final_once(Ref, {closed, no_content}),
        ok = erqwest_events:close(H),
        ok = erqwest_events:active(H, 5),
        no_message(Ref)
    end),
    wait_live({0, 0}).

close_twice(Config) ->
    with_server(one_then_hold(), fun(S) ->
        {H, Ref} = open(Config, url(S)),
        _ = held(open),
        ok = erqwest_events:close(H),
        ok = erqwest_events:close(H),
        {Msgs, Final} = drain(Ref),
        ?assertEqual({closed, normal}, Final),
        ?assertEqual([], [M || M = {T, _} <- Msgs, T =/= open, T =/= event]),
        no_message(Ref)
    end),
    wait_live({0, 0}).

%% Runs `Stage' in an owner process that then dies; the connection closes
%% and nothing stays alive.
owner_dies(Config, Handler, Opts, Stage) ->
    with_server(Handler, fun(S) ->
        Test = self(),
        Owner = spawn(fun() ->
            {H, Ref} = open(Config, url(S), Opts),
            Stage(Ref),
            Test ! {ready, self(), H},
            receive never -> ok end
        end),
        relay(Owner),
        exit(Owner, kill),
        ok = erqwest_test_server:wait_closed(S, 0)
    end),
    wait_live({0, 0}).

owner_death_while_connecting(Config) ->
    Test = self(),
    owner_dies(Config, silent(), #{}, fun(_Ref) -> _ = held_by(Test, silent) end).

owner_death_while_streaming(Config) ->
    Test = self(),
    Stream = fun(_) -> {custom, fun(Sock, _) ->
                            ok = gen_tcp:send(Sock, ?SSE_HEAD),
                            Test ! {held, streaming, self()},
                            Tick = fun T() -> case gen_tcp:send(Sock, <<"data: t\n\n">>) of
                                                  ok -> timer:sleep(5), T();
                                                  _ -> close
                                              end end,
                            Tick()
                        end} end,
    owner_dies(Config, Stream, #{active => 1000000},
               fun(Ref) -> _ = held_by(Test, streaming), {open, _} = next(Ref), {event, _} = next(Ref)
               end).

owner_death_while_passive(Config) ->
    Test = self(),
    Handler = fun(_) -> {custom, fun(Sock, _) ->
                             ok = gen_tcp:send(Sock, [?SSE_HEAD, <<"data: 1\n\ndata: 2\n\n">>]),
                             Test ! {held, passive, self()},
                             _ = wait_go(Sock),
                             close
                         end} end,
    owner_dies(Config, Handler, #{active => once},
               fun(Ref) -> {open, _} = next(Ref), {event, _} = next(Ref), passive = next(Ref),
                           _ = held_by(Test, passive) end).

owner_death_during_reconnect_delay(Config) ->
    owner_dies(Config, fun(_) -> {raw_close, [?SSE_HEAD, <<"data: a\n\n">>]} end,
               #{retry => 60000},
               fun(Ref) -> {open, _} = next(Ref), {event, _} = next(Ref),
                           {reconnecting, _} = next(Ref) end).

batch_close_while_passive(Config) ->
    with_server(one_then_hold(), fun(S) ->
        {H, Ref} = open(Config, url(S), #{active => once, batch => true}),
        _ = held(open),
        ?assertMatch({open, _}, next(Ref)),
        ?assertMatch({events, [#{data := <<"1">>}]}, next(Ref)),
        ?assertEqual(passive, next(Ref)),
        ok = erqwest_events:close(H),
        %% The second event was parsed but never delivered.
        final_once(Ref, {closed, normal}),
        ok = erqwest_test_server:wait_closed(S, 0)
    end),
    wait_live({0, 0}).

%% A server sending an event every few ms.
ticking(Test) ->
    fun(_) -> {custom, fun(Sock, _) ->
                  ok = gen_tcp:send(Sock, ?SSE_HEAD),
                  Test ! {held, streaming, self()},
                  Tick = fun T() -> case gen_tcp:send(Sock, <<"data: t\n\ndata: u\n\n">>) of
                                        ok -> timer:sleep(2), T();
                                        _ -> close
                                    end end,
                  Tick()
              end} end.

batch_close_while_streaming(Config) ->
    with_server(ticking(self()), fun(S) ->
        {H, Ref} = open(Config, url(S), #{active => 1000000, batch => true}),
        _ = held(streaming),
        ?assertMatch({open, _}, next(Ref)),
        ?assertMatch({events, [#{data := <<"t">>} | _]}, next(Ref)),
        ok = erqwest_events:close(H),
        {Msgs, Final} = drain(Ref),
        ?assertEqual({closed, normal}, Final),
        %% Only lists may still be on their way, each non-empty, in order.
        ?assertEqual([], [M || M <- Msgs, element(1, M) =/= events]),
        ?assertEqual([], [D || D <- datas(batched(Msgs)), D =/= <<"t">>, D =/= <<"u">>]),
        no_message(Ref),
        ok = erqwest_test_server:wait_closed(S, 0)
    end),
    wait_live({0, 0}).

batch_owner_death_while_streaming(Config) ->
    Test = self(),
    owner_dies(Config, ticking(Test), #{active => 1000000, batch => true},
               fun(Ref) -> _ = held_by(Test, streaming), {open, _} = next(Ref),
                           {events, [_ | _]} = next(Ref)
               end).

%% A handle nobody holds can never get credit or be closed: the stream ends.
dropped_handle_ends_stream(Config) ->
    with_server(one_then_hold(), fun(S) ->
        Ref = make_ref(),
        Test = self(),
        %% Opened in a process that keeps living but drops the handle.
        Keeper = spawn(fun() ->
            _ = erqwest_events:open(client(Config), Test, Ref, #{method => get, url => url(S)},
                                    #{active => once}),
            receive drop -> ok end,
            erlang:garbage_collect(),
            receive stop -> ok end
        end),
        _ = held(open),
        ?assertMatch({open, _}, next(Ref)),
        ?assertMatch({event, _}, next(Ref)),
        ?assertEqual(passive, next(Ref)),
        Keeper ! drop,
        {Msgs, Final} = drain(Ref),
        Keeper ! stop,
        ?assertEqual([], Msgs),
        ?assertMatch({error, #{code := cancelled}}, Final),
        ok = erqwest_test_server:wait_closed(S, 0)
    end),
    wait_live({0, 0}).

bad_options_are_badarg(Config) ->
    C = client(Config),
    Req = #{method => get, url => <<"http://127.0.0.1:1/">>},
    Bad = [#{format => xml}, #{active => 0}, #{active => -2}, #{data => text},
           #{reconnect => maybe}, #{max_reconnects => -1}, #{retry => infinity},
           #{max_line => 0}, #{unknown => 1}, #{format => ndjson, data => json},
           #{format => lines, reconnect => true}, #{json_null => <<"nil">>},
           #{batch => 1}, #{batch => yes}, #{batch => <<"true">>}, #{batch => [true]},
           #{batch => undefined}, not_a_map],
    [?assertError(badarg, erqwest_events:open(C, self(), r, Req, O)) || O <- Bad],
    ?assertError(badarg, erqwest_events:open(C, self(), r, Req#{body => stream}, #{})),
    ?assertError(badarg, erqwest_events:open(C, self(), r, Req#{response_body => stream}, #{})),
    ?assertError(badarg, erqwest_events:open(C, self(), r, #{url => <<"x">>}, #{})),
    wait_live({0, 0}).

url_error_is_the_final_message(Config) ->
    Ref = make_ref(),
    _ = erqwest_events:open(client(Config), self(), Ref, #{method => get, url => <<"nope">>},
                            #{}),
    final_once(Ref, {error, #{code => url, reason => <<"relative URL without a base: nope">>}}),
    wait_live({0, 0}).

no_leaks(_Config) ->
    wait_live({0, 0}).

%% Passes `held' notes on to the owner until it is ready.
relay(Owner) ->
    receive
        {relay_held, Tag, Owner} ->
            receive {held, Tag, _} -> Owner ! {relayed, Tag} after 10000 -> ct:fail(Tag) end,
            relay(Owner);
        {ready, Owner, _H} -> ok
    after 10000 -> ct:fail(owner_not_ready)
    end.

%%% Property: the parser against a model of the standard

sse_parser_matches_the_model_over_random_splits(_Config) ->
    N = 400,
    Failures = lists:filtermap(fun(I) ->
        {ok, {Bin, Cuts}} = proper_gen:pick(stream_and_cuts(), 1 + I div 10, {20261201, I, 1}),
        Chunks = cut(Bin, Cuts),
        case erqwest_nif:events_parse(sse, Chunks, 1 bsl 20) =:= model(Bin) of
            true -> false;
            false -> {true, {I, Bin, Cuts}}
        end
    end, lists:seq(1, N)),
    ?assertEqual([], lists:sublist(Failures, 3)).

%% A stream of random lines with random line ends, cut at random places.
stream_and_cuts() ->
    ?LET({Bom, Lines, Tail}, {oneof([<<>>, <<16#EF, 16#BB, 16#BF>>]), list(line()), text()},
         ?LET(Cuts, list(non_neg_integer()),
              begin
                  Bin = iolist_to_binary([Bom, Lines, Tail]),
                  {Bin, [C rem (byte_size(Bin) + 1) || C <- Cuts]}
              end)).

line() ->
    ?LET({Content, End}, {oneof([<<>>, field(), ?LET(T, text(), [<<":">>, T])]),
                          oneof([<<"\n">>, <<"\r">>, <<"\r\n">>])},
         [Content, End]).

field() ->
    ?LET({Name, Sep, Value},
         {oneof([<<"data">>, <<"data">>, <<"event">>, <<"id">>, <<"retry">>, <<"foo">>, <<"">>]),
          oneof([<<":">>, <<": ">>, <<":  ">>, <<>>]),
          oneof([text(), digits()])},
         [Name, Sep, Value]).

text() ->
    ?LET(Cs, list(oneof([$a, $b, $\s, $:, $\t, 0, 16#E9, 16#20AC, 16#1F600])),
         unicode:characters_to_binary(Cs)).

digits() -> ?LET(Ds, list(range($0, $9)), list_to_binary(Ds)).

cut(Bin, Cuts) ->
    Points = lists:usort([0, byte_size(Bin) | Cuts]),
    [binary:part(Bin, A, B - A) || {A, B} <- lists:zip(lists:droplast(Points), tl(Points))].

%% The standard's algorithm over the whole stream at once.
model(Bin0) ->
    Bin = case Bin0 of <<16#EF, 16#BB, 16#BF, R/binary>> -> R; _ -> Bin0 end,
    Parts = binary:split(Bin, [<<"\r\n">>, <<"\r">>, <<"\n">>], [global]),
    Lines = lists:droplast(Parts),
    model(Lines, <<>>, <<>>, <<>>, []).

model([], _Data, _Type, _IdBuf, Acc) ->
    lists:reverse(Acc);
model([<<>> | Rest], Data, Type, IdBuf, Acc) ->
    case Data of
        <<>> -> model(Rest, <<>>, <<>>, IdBuf, Acc);
        _ ->
            D = case binary:last(Data) of $\n -> binary:part(Data, 0, byte_size(Data) - 1);
                                          _ -> Data end,
            T = case Type of <<>> -> <<"message">>; _ -> Type end,
            Id = case IdBuf of <<>> -> undefined; _ -> IdBuf end,
            model(Rest, <<>>, <<>>, IdBuf, [{T, D, Id} | Acc])
    end;
model([<<$:, _/binary>> | Rest], Data, Type, IdBuf, Acc) ->
    model(Rest, Data, Type, IdBuf, Acc);
model([Line | Rest], Data, Type, IdBuf, Acc) ->
    {Name, Value} = case binary:split(Line, <<":">>) of
        [N, <<" ", V/binary>>] -> {N, V};
        [N, V] -> {N, V};
        [N] -> {N, <<>>}
    end,
    case Name of
        <<"data">> -> model(Rest, <<Data/binary, Value/binary, "\n">>, Type, IdBuf, Acc);
        <<"event">> -> model(Rest, Data, Value, IdBuf, Acc);
        <<"id">> ->
            case binary:match(Value, <<0>>) of
                nomatch -> model(Rest, Data, Type, Value, Acc);
                _ -> model(Rest, Data, Type, IdBuf, Acc)
            end;
        _ -> model(Rest, Data, Type, IdBuf, Acc)
    end.
