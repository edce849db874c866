defmodule Erqwest.Events do
  @moduledoc """
  Event streams: server-sent events (`text/event-stream`), NDJSON or plain
  lines, parsed in erqwest's runtime (JSON included) and handed over one
  event at a time. A layer on `:erqwest_events`; see its documentation for
  the parsing rules, reconnects and flow control.

  `stream/3` gives a lazy `Enumerable` of the events, one by one. Inside,
  it takes them in batches (`batch: true`) with credit for 1,000 events
  at a time (the `:credit` option), given again when the enumeration
  reaches the end of that credit: at most that many events wait in the
  process, and a slow consumer holds the server back through TCP flow
  control. Halting the enumeration
  (`Enum.take/2`, a `break` out of `Enum.reduce_while/3`) closes the
  connection. A stream that fails raises `Erqwest.Error`.

      Erqwest.Events.stream(:default, [method: :post, url: url, body: json_body,
                                       headers: [{"content-type", "application/json"}]],
                            data: :json)
      |> Stream.take_while(&(&1.data != "[DONE]"))
      |> Enum.each(fn %Erqwest.Events.Event{data: chunk} -> IO.inspect(chunk) end)

  `open/5` is the same stream as messages to a process (a `GenServer`,
  say), with the credit given by `active/2`:

      {:erqwest_events, ref, :open, resp}
      {:erqwest_events, ref, :event, event}       # an Erlang map for SSE; see Event.new/1
      {:erqwest_events, ref, :events, [event]}    # batch: true, instead of :event
      {:erqwest_events, ref, :passive}            # no credit left
      {:erqwest_events, ref, :reconnecting, %{attempt: n, delay: ms, last_event_id: id}}
      {:erqwest_events, ref, :closed, reason}     # final: :eof | :no_content | :normal
      {:erqwest_events, ref, :error, err}         # final; see Erqwest.Error.new/1

  ## Options

    * `:format` — `:sse` (the default), `:ndjson` (each line decoded as JSON;
      a line that is not JSON arrives as `{:json_error, line}`) or `:lines`
    * `:data` — SSE: `:binary` (the default) or `:json`
    * `:reconnect` — SSE: reissue the request when the stream ends or the
      connection fails (default `true`), with `Last-Event-ID`
    * `:max_reconnects` — a number or `:infinity` (the default)
    * `:retry` — reconnection delay in ms until the server sends `retry:`
      (default 3000)
    * `:max_line` — bytes; a longer line ends the stream with code
      `:line_too_long` (default 1 MB)
    * `:active` — `open/5` only: the initial credit, `:once` (the default)
      or a number
    * `:credit` — `stream/3` only: how many events it asks for at a time
      (default 1,000), and so the most that wait in the mailbox. More is
      faster for streams of many small events (about 1.5x with 10,000 in
      bench/README.md); mind the events' size, since credit counts events,
      not bytes
    * `:batch` — `open/5` only: `true` to get `{:erqwest_events, ref, :events,
      list}` messages, each a non-empty list (in order) of the events parsed
      from the body already received, as many as the credit left allows and
      at most 10,000, instead of one `:event` message per event (default
      `false`). Credit still counts events. Much cheaper for fast streams of
      small events; binaries over 64 bytes in a list are parts of one
      binary per message (`:binary.copy/1` an event kept for long).

  JSON `null` is `nil`.
  """

  alias Erqwest.{Error, Options}
  alias Erqwest.Events.Event

  @typedoc "An open stream from `open/5`, for `active/2` and `close/1`."
  @type handle :: :erqwest_events.handle()
  @typedoc ~s|A URL, or request options with `:url`: `"http://127.0.0.1:8080/events"` or `[method: :post, url: url, json: %{}]`.|
  @type request :: String.t() | Enumerable.t()

  @checks [
    format: [:sse, :ndjson, :lines],
    data: [:binary, :json],
    reconnect: [true, false],
    max_reconnects: :count,
    retry: :ms,
    max_line: :pos,
    active: :credit,
    batch: [true, false]
  ]

  # stream/3's credit: events taken per active/2 call, and so the most
  # that wait in the mailbox (bench/README.md: a refill every 1,000
  # events costs nothing measurable).
  @stream_credit 1000

  @doc """
  A lazy stream of the events at `request` (a URL, or request options as
  for `Erqwest.request/2`: `:method`, `:url`, `:headers`, `:body`, ...).

  SSE events are `Erqwest.Events.Event` structs, NDJSON events the decoded
  terms (or `{:json_error, line}`), lines strings. Nothing is sent until
  the enumeration starts. Raises `ArgumentError` for a bad option (when the
  enumeration starts) and `Erqwest.Error` when the stream fails.

      Erqwest.Events.stream(:default, "http://127.0.0.1:8080/feed", reconnect: false)
      |> Enum.map(&{&1.type, &1.data})
      #=> [{"message", "a"}, {"update", "c"}]

      Erqwest.Events.stream(:default, "http://127.0.0.1:8080/pods?watch=1", format: :ndjson)
      |> Enum.take(2)
      #=> [%{"type" => "ADDED", ...}, %{"type" => "MODIFIED", ...}]
  """
  @spec stream(Erqwest.client(), request(), keyword()) :: Enumerable.t()
  def stream(client, request, opts \\ []) do
    Stream.resource(
      fn ->
        for key <- [:active, :batch], Keyword.has_key?(opts, key) do
          raise ArgumentError,
                "Erqwest.Events.stream/3 gives credit and takes batches itself; " <>
                  "#{inspect(key)} is for open/5"
        end

        {credit, opts} = Keyword.pop(opts, :credit, @stream_credit)

        unless valid?(:pos, credit) do
          raise ArgumentError,
                "invalid value for event stream option :credit: #{inspect(credit)}"
        end

        ref = make_ref()
        {req, ev} = prepare(request, opts)
        ev = Map.merge(ev, %{active: credit, batch: true})
        handle = :erqwest_events.open(client, self(), ref, req, ev)

        %{
          handle: handle,
          ref: ref,
          credit: credit,
          format: Map.get(ev, :format, :sse),
          done: false
        }
      end,
      &next/1,
      &stop/1
    )
  end

  @doc """
  Opens a stream whose messages go to `pid`, tagged with `ref` (see the
  module doc). Returns the handle for `active/2` and `close/1`; keep it,
  since a garbage-collected handle ends its stream. Raises `ArgumentError`
  for a bad option.

      handle = Erqwest.Events.open(:default, self(), :feed, "http://127.0.0.1:8080/feed", active: 10)
      receive do
        {:erqwest_events, :feed, :event, event} -> Erqwest.Events.Event.new(event)
      end

  With `batch: true`, lists of events:

      handle = Erqwest.Events.open(:default, self(), :feed, url, active: 1000, batch: true)
      receive do
        {:erqwest_events, :feed, :events, events} -> Enum.map(events, &Erqwest.Events.Event.new/1)
      end
  """
  @spec open(Erqwest.client(), pid(), term(), request(), keyword()) :: handle()
  def open(client, pid, ref, request, opts \\ []) when is_pid(pid) do
    {req, ev} = prepare(request, opts)
    :erqwest_events.open(client, pid, ref, req, ev)
  end

  @doc """
  Gives credit to a stream from `open/5`: `:once` or a positive number of events.

      receive do
        {:erqwest_events, ^ref, :passive} -> :ok = Erqwest.Events.active(handle, 100)
      end
  """
  @spec active(handle(), :once | pos_integer()) :: :ok
  def active(handle, credit), do: :erqwest_events.active(handle, credit)

  @doc """
  Closes a stream from `open/5`; its final message is `{:erqwest_events, ref, :closed, :normal}`.

      :ok = Erqwest.Events.close(handle)
      receive do
        {:erqwest_events, ^ref, :closed, :normal} -> :closed
      end
  """
  @spec close(handle()) :: :ok
  def close(handle), do: :erqwest_events.close(handle)

  ## Internals

  defp next(%{done: true} = st), do: {:halt, st}

  defp next(%{ref: ref, handle: handle} = st) do
    receive do
      {:erqwest_events, ^ref, :events, es} ->
        {convert(es, st.format), st}

      {:erqwest_events, ^ref, :passive} ->
        :ok = :erqwest_events.active(handle, st.credit)
        next(st)

      {:erqwest_events, ^ref, :closed, _reason} ->
        {:halt, %{st | done: true}}

      {:erqwest_events, ^ref, :error, err} ->
        raise Error.new(err)

      {:erqwest_events, ^ref, _info, _} ->
        next(st)
    end
  end

  # Halted early: close, and take the messages still on their way out of
  # the mailbox. After the final message `events_close` says `finished`.
  defp stop(%{handle: handle, ref: ref}) do
    case :erqwest_nif.events_close(handle) do
      :finished -> :ok
      :ok -> flush(ref)
    end
  end

  defp flush(ref) do
    receive do
      {:erqwest_events, ^ref, :closed, _} -> :ok
      {:erqwest_events, ^ref, :error, _} -> :ok
      {:erqwest_events, ^ref, _} -> flush(ref)
      {:erqwest_events, ^ref, _, _} -> flush(ref)
    after
      5_000 -> :ok
    end
  end

  defp convert(es, :sse), do: Enum.map(es, &Event.new/1)
  defp convert(es, _), do: es

  defp prepare(url, opts) when is_binary(url), do: prepare([url: url], opts)

  defp prepare(request, opts) do
    {req, read} = Options.request(request, [])

    unless read == %{} do
      raise ArgumentError, ":chunk_size and :chunk_period do not apply to event streams"
    end

    {req, events_opts(opts)}
  end

  defp events_opts(opts) when is_list(opts) do
    Enum.reduce(opts, %{json_null: nil}, fn
      {key, value}, acc when is_atom(key) ->
        case Keyword.fetch(@checks, key) do
          {:ok, check} ->
            if valid?(check, value) do
              Map.put(acc, key, value)
            else
              raise ArgumentError,
                    "invalid value for event stream option #{inspect(key)}: #{inspect(value)}"
            end

          :error ->
            raise ArgumentError,
                  "unknown event stream option #{inspect(key)}; the accepted options are: " <>
                    Enum.map_join(Keyword.keys(@checks), ", ", &inspect/1)
        end

      other, _ ->
        raise ArgumentError,
              "expected event stream options as a keyword list, got: #{inspect(other)}"
    end)
  end

  defp events_opts(other),
    do:
      raise(
        ArgumentError,
        "expected event stream options as a keyword list, got: #{inspect(other)}"
      )

  defp valid?(values, v) when is_list(values), do: v in values
  defp valid?(:count, v), do: v == :infinity or (is_integer(v) and v >= 0)
  defp valid?(:ms, v), do: is_integer(v) and v >= 0
  defp valid?(:pos, v), do: is_integer(v) and v > 0
  defp valid?(:credit, v), do: v == :once or (is_integer(v) and v > 0)
end
