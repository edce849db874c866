%% @doc Event streams: server-sent events, NDJSON or lines, parsed in
%% erqwest's runtime and delivered as messages with `gen_tcp'-style credit.
%%
%% {@link open/5} sends the request (any method and body: a POST with a
%% JSON body to a language-model API works) and parses the response body
%% as it arrives. The owner gets, tagged with `Ref':
%% <ul>
%% <li>`{erqwest_events, Ref, open, Resp}' when a response head is in
%%     (after each reconnect too). `Resp' is a `resp()' without `body'.</li>
%% <li>`{erqwest_events, Ref, event, Event}' for each event, one per unit
%%     of credit. SSE: `#{type := binary(), data := binary() | term(),
%%     id := binary() | undefined}', plus `json_error => true' when
%%     `data => json' was asked for and the data is not JSON (such as
%%     `[DONE]'; the data is then the binary). NDJSON: the decoded term, or
%%     `{json_error, Line}' for a line that is not JSON. Lines: binaries.</li>
%% <li>With `batch => true', instead of `event':
%%     `{erqwest_events, Ref, events, [Event, ...]}', a non-empty list in
%%     stream order of the events parsed and waiting (those of the body
%%     already received), as many as the credit allows and at most 10,000.
%%     Credit still counts events: with 3 left and 10 waiting, a list of 3
%%     and then `passive'. The events are the same terms as in `event'
%%     messages.</li>
%% <li>`{erqwest_events, Ref, passive}' when the credit reaches zero (for
%%     `once' as for a number), right after the `event' or `events'
%%     message that used it up. Give more with {@link active/2}.</li>
%% <li>`{erqwest_events, Ref, reconnecting, #{attempt := N, delay := Ms,
%%     last_event_id := binary() | undefined}}' (SSE) before each wait and
%%     new request.</li>
%% <li>Exactly one final message: `{erqwest_events, Ref, closed, Reason}'
%%     with `Reason' `eof' (the server ended the body and no reconnect
%%     applies), `no_content' (a 204, which also stops reconnecting) or
%%     `normal' ({@link close/1}, or the owner died); or
%%     `{erqwest_events, Ref, error, Err}'.</li>
%% </ul>
%% `Err' is an `erqwest:err()' or one of: `#{code := http_status, status :=
%% S}' (SSE: any status but 200; other formats: any status outside 2xx),
%% `#{code := content_type}' (SSE: a media type other than
%% `text/event-stream', parameters ignored), `#{code := line_too_long}' (a
%% line passed `max_line': the stream ends as soon as it does, before the
%% line's end arrives), `#{code := event_too_long}' (an SSE event's data
%% passed 16 MB, or `max_line' if larger). An error on reconnect ends the
%% stream the same way.
%%
%% == Flow control ==
%% Credit works as `inet:setopts(S, [{active, N}])': `once' sets it to one
%% event, `N' adds N. With no credit left the runtime stops reading the
%% body, so a fast server is held back by TCP flow control; at most one
%% network chunk of parsed events waits in the NIF (with `batch', the
%% credit's worth or 10,000 events, whichever is less, and one chunk). As
%% with `gen_tcp' and its `tcp_closed', the end of the body (and so the
%% final message) is seen only while there is credit.
%%
%% Keep the handle while the stream runs: when it is garbage collected
%% nobody can give credit or close the stream, so it ends with an `error'
%% of code `cancelled'.
%%
%% == Batches ==
%% A message per event costs the receiving process about a microsecond,
%% and the runtime a send and often a scheduler wake-up. `batch => true'
%% sends what is parsed and allowed at once: before a list goes out, the
%% body that has already arrived is parsed too (up to the credit, 10,000
%% events or 256 KB a round, never waiting for the network), so a fast
%% stream gives lists of hundreds or thousands of events and a slow one
%% lists of one. For streams of many small events this is many times
%% faster (bench/README.md); a long list is made into terms on a thread
%% of the runtime's blocking pool while the stream's task goes on parsing,
%% and the task still sends every message in order. A list never holds
%% more events than the
%% credit left, so `active => N' still bounds what arrives before
%% `passive', and with no credit the body is not read.
%%
%% In a list, binaries longer than 64 bytes (SSE data and types, lines)
%% are parts of one binary per message: keeping one event keeps that
%% message's bytes, as a part of `binary:split/3' keeps its input. Use
%% `binary:copy/1' for an event kept for long.
%%
%% == Server-sent events ==
%% Parsed as the WHATWG HTML standard's "interpreting an event stream"
%% says: UTF-8 with invalid bytes replaced by U+FFFD and one leading BOM
%% dropped; CR, LF and CRLF line ends (an event ended by a lone CR is
%% dispatched at once); `data' lines joined with LF; an event without
%% `data' is not dispatched; `event' sets the type (default `<<"message">>');
%% `id' sets the last event ID unless it holds NUL (an empty one resets
%% it), which stays for later events and across reconnects; `retry' with
%% digits only sets the reconnection delay; comments and unknown fields are
%% ignored; a partial event at the end of a body is dropped.
%%
%% When the body ends or the connection fails, the request is sent again
%% after the delay, with `Last-Event-ID' when there is one, until
%% `max_reconnects' (counted over the stream's life). Only network errors
%% (`connect', `timeout', `body') are retried; `Accept: text/event-stream'
%% is sent unless the request has an `accept' header.
%%
%% == Example ==
%% ```
%% Ref = make_ref(),
%% H = erqwest_events:open(Client, self(), Ref,
%%                         #{method => get, url => <<"http://127.0.0.1:8080/feed">>},
%%                         #{format => sse, active => 10}),
%% Loop = fun Loop(N) ->
%%            receive
%%                {erqwest_events, Ref, event, #{data := D}} -> io:format("~s~n", [D]), Loop(N + 1);
%%                {erqwest_events, Ref, passive} -> erqwest_events:active(H, 10), Loop(N);
%%                {erqwest_events, Ref, closed, _} -> {ok, N};
%%                {erqwest_events, Ref, error, E} -> {error, E};
%%                {erqwest_events, Ref, _, _} -> Loop(N)
%%            end
%%        end,
%% Loop(0).
%% '''
%% The same count with batches, 1,000 events of credit at a time:
%% ```
%% H = erqwest_events:open(Client, self(), Ref, Req, #{active => 1000, batch => true}),
%% Loop = fun Loop(N) ->
%%            receive
%%                {erqwest_events, Ref, events, Es} -> Loop(N + length(Es));
%%                {erqwest_events, Ref, passive} -> erqwest_events:active(H, 1000), Loop(N);
%%                {erqwest_events, Ref, closed, _} -> {ok, N};
%%                {erqwest_events, Ref, error, E} -> {error, E};
%%                {erqwest_events, Ref, _, _} -> Loop(N)
%%            end
%%        end,
%% Loop(0).
%% '''
-module(erqwest_events).

-export([open/5, active/2, close/1]).
-export([live/0]).

-export_type([handle/0, opts/0, credit/0, format/0, event/0, sse_event/0, reason/0, err/0]).

-opaque handle() :: reference().
%% An open stream, for {@link active/2} and {@link close/1}.
-type credit() :: once | pos_integer().
%% How many more events the owner takes before `passive': `once' or `100'.
-type format() :: sse | ndjson | lines.
%% How the body is split into events: `sse' (the default), `ndjson' or `lines'.
-type opts() :: #{
    format => format(),
    active => credit(),
    data => binary | json,
    reconnect => boolean(),
    max_reconnects => non_neg_integer() | infinity,
    retry => non_neg_integer(),
    max_line => pos_integer(),
    json_null => atom(),
    batch => boolean()
}.
%% Options of {@link open/5}: `#{format => ndjson, active => 100, batch => true}'.
-type sse_event() :: #{type := binary(), data := binary() | term(),
                       id := binary() | undefined, json_error => true}.
%% A server-sent event: `#{type => <<"message">>, data => <<"hi">>, id => undefined}'
%% (with `data => json', `data' is the decoded term).
-type event() :: sse_event() | term() | {json_error, binary()} | binary().
%% An SSE event, an NDJSON term (`{json_error, Line}' for a line that is
%% not JSON) or a line: `#{<<"type">> => <<"ADDED">>}'.
-type reason() :: eof | no_content | normal.
%% Why the stream closed normally: `eof' (it ended and is not
%% reconnected), `no_content' (a 204) or `normal' ({@link close/1}).
-type err() :: #{code := erqwest:code() | http_status | content_type | line_too_long
                         | event_too_long,
                 reason := binary(), status => 100..599}.
%% Why the stream failed: `#{code => content_type, reason => <<"...">>}'.

%% @doc Opens a stream; messages go to `Owner', tagged with `Ref' (see the
%% module doc). `Opts': `format' (`sse', the default, `ndjson' or
%% `lines'), `active' (initial credit, default `once'), `data' (SSE:
%% `binary', the default, or `json' to decode each event's data in the
%% runtime), `reconnect' (SSE only, default `true'), `max_reconnects'
%% (default `infinity'), `retry' (the reconnection delay in ms until the
%% server sets one, default 3000), `max_line' (bytes, default 1 MB),
%% `json_null' (the atom for JSON `null', default `null'), `batch'
%% (`true' for `events' lists instead of an `event' message each, see
%% "Batches"; default `false').
%%
%% The request takes the options of `erqwest:req/2' except `body =>
%% stream' and `response_body' (the request may be sent again). Its
%% `timeout' is for each whole exchange, body included: leave it out for
%% long-lived streams. Raises `badarg' for an unknown key or an ill-typed
%% value; problems with the request's contents arrive as the `error'
%% message. When `Owner' dies the stream ends and its connection closes.
%%
%% ```
%% Ref = make_ref(),
%% H = erqwest_events:open(C, self(), Ref, #{method => get, url => Url},
%%                         #{data => json, active => 10}),
%% receive {erqwest_events, Ref, event, #{data := Data}} -> Data end,
%% ok = erqwest_events:close(H).
%% '''
-spec open(erqwest:client() | atom(), pid(), term(), erqwest:req_opts(), opts()) -> handle().
open(Client, Owner, Ref, ReqOpts, Opts) ->
    C = erqwest:get_client(Client),
    try
        case erqwest_dirty:request(Ref, ReqOpts) of
            true -> erqwest_nif:events_open_dirty(C, Owner, Ref, ReqOpts, Opts);
            false -> erqwest_nif:events_open(C, Owner, Ref, ReqOpts, Opts)
        end
    catch
        %% A composing option (json, query ...) says what was wrong with
        %% it: still `badarg', with the reason as error info.
        error:{badarg, Cause} when is_binary(Cause) ->
            erlang:error(badarg, [Client, Owner, Ref, ReqOpts, Opts],
                         [{error_info, #{module => erqwest, cause => Cause}}])
    end.

%% @doc Gives credit: `once' (one event, then `passive') or `N' more
%% events. Does nothing after the final message. Raises `badarg' for
%% anything else.
%%
%% ```
%% receive {erqwest_events, Ref, passive} -> ok end,
%% ok = erqwest_events:active(H, 100).
%% '''
-spec active(handle(), credit()) -> ok.
active(Handle, Credit) ->
    _ = erqwest_nif:events_active(Handle, Credit),
    ok.

%% @doc Ends the stream and closes its connection. The final message is
%% `{erqwest_events, Ref, closed, normal}', unless the stream had already
%% ended (its final message is then on its way or in the mailbox). Does
%% nothing after the final message, or a second time.
%%
%% ```
%% ok = erqwest_events:close(H),
%% receive {erqwest_events, Ref, closed, normal} -> ok end.
%% '''
-spec close(handle()) -> ok.
close(Handle) ->
    _ = erqwest_nif:events_close(Handle),
    ok.

%% @private
%% @doc `{Handles, Tasks}' alive, for leak checks in tests.
-spec live() -> {non_neg_integer(), non_neg_integer()}.
live() ->
    erqwest_nif:live_events().
