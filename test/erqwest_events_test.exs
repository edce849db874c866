defmodule Erqwest.EventsTest do
  use ExUnit.Case, async: true

  alias Erqwest.Events
  alias Erqwest.Events.Event
  alias Erqwest.Test.Server

  @sse [{"content-type", "text/event-stream"}]

  setup do
    %{client: Erqwest.make_client(proxy: :no_proxy)}
  end

  # A handler that sends an SSE head, then `chunks` one by one (pausing
  # between them), sending `{:sent, n}` to the test after each.
  defp pushing(test, chunks) do
    fn _req ->
      {:custom,
       fn sock, _req ->
         :ok = :gen_tcp.send(sock, "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\n")

         chunks
         |> Enum.with_index(1)
         |> Enum.reduce_while(:ok, fn {c, i}, _ ->
           case :gen_tcp.send(sock, c) do
             :ok ->
               send(test, {:sent, i})
               Process.sleep(10)
               {:cont, :ok}

             _ ->
               {:halt, :ok}
           end
         end)

         :close
       end}
    end
  end

  defp live_zero do
    Enum.reduce_while(1..100, nil, fn _, _ ->
      :erlang.garbage_collect()

      case :erqwest_events.live() do
        {0, 0} -> {:halt, :ok}
        other -> Process.sleep(50) && {:cont, other}
      end
    end)
  end

  # Events from `:events` lists until there are `n`; every list non-empty.
  defp take_lists(_ref, 0), do: []

  defp take_lists(ref, n) do
    assert_receive {:erqwest_events, ^ref, :events, [_ | _] = es}, 5_000
    assert length(es) <= n
    es ++ take_lists(ref, n - length(es))
  end

  test "stream/3 yields Event structs lazily, in order", %{client: c} do
    body = "event: a\ndata: 1\n\nid: 7\ndata: 2\ndata: 3\n\n"
    s = Server.start(fn _ -> {200, @sse, body} end)

    assert Events.stream(c, Server.url(s), reconnect: false) |> Enum.to_list() == [
             %Event{type: "a", data: "1", id: nil},
             %Event{type: "message", data: "2\n3", id: "7"}
           ]
  end

  test "a POST with a JSON body, data decoded as JSON, [DONE] flagged", %{client: c} do
    body =
      ~s(data: {"choices":[{"delta":{"content":"Hel"}}]}\n\n) <>
        ~s(data: {"choices":[{"delta":{"content":"lo"}}],"x":null}\n\ndata: [DONE]\n\n)

    s = Server.start(fn _ -> {200, @sse, body} end)

    request = [
      method: :post,
      url: Server.url(s, "/v1/chat/completions"),
      headers: [{"content-type", "application/json"}],
      body: ~s({"model":"m","stream":true})
    ]

    events = Events.stream(c, request, data: :json, reconnect: false) |> Enum.to_list()

    text =
      events
      |> Enum.take_while(&(not &1.json_error))
      |> Enum.map_join(fn %Event{data: %{"choices" => [%{"delta" => %{"content" => t}}]}} -> t end)

    assert text == "Hello"
    assert %Event{data: %{"x" => nil}} = Enum.at(events, 1)
    assert List.last(events) == %Event{data: "[DONE]", json_error: true}
    assert [%{method: "POST", body: ~s({"model":"m","stream":true})}] = Server.requests(s)
  end

  test "NDJSON: terms, nil for null, {:json_error, line} for a bad line", %{client: c} do
    s = Server.start(fn _ -> {200, [], ~s({"a":null}\nnope\n[1,2]\n)} end)

    assert Events.stream(c, Server.url(s), format: :ndjson) |> Enum.to_list() ==
             [%{"a" => nil}, {:json_error, "nope"}, [1, 2]]
  end

  test "credit follows the enumeration: halting early closes the connection", %{client: c} do
    chunks = for i <- 1..200, do: "data: #{i}\n\n"
    s = Server.start(pushing(self(), chunks))

    assert Events.stream(c, Server.url(s)) |> Enum.take(3) |> Enum.map(& &1.data) ==
             ["1", "2", "3"]

    assert Server.wait_closed(s, 0) == :ok
    refute_received {:erqwest_events, _, _, _}
    refute_received {:erqwest_events, _, _}
    assert live_zero() == :ok
  end

  test "stream/3 crosses its credit refills: 2,500 events in order", %{client: c} do
    chunks = for from <- 1..2500//250, do: Enum.map_join(from..(from + 249), &"data: #{&1}\n\n")
    s = Server.start(pushing(self(), chunks))

    assert Events.stream(c, Server.url(s), reconnect: false) |> Enum.map(& &1.data) ==
             Enum.map(1..2500, &Integer.to_string/1)
  end

  test "stream/3 with credit: 300 crosses its refills in order; bad credit raises",
       %{client: c} do
    chunks = [Enum.map_join(1..1000, &"data: #{&1}\n\n")]
    s = Server.start(pushing(self(), chunks))

    assert Events.stream(c, Server.url(s),
             reconnect: false,
             credit: 300
           )
           |> Enum.map(& &1.data) == Enum.map(1..1000, &Integer.to_string/1)

    assert_raise ArgumentError, ~r/:credit/, fn ->
      Events.stream(c, Server.url(s), credit: 0) |> Enum.take(1)
    end

    assert_raise ArgumentError, ~r/unknown event stream option :credit/, fn ->
      Events.open(c, self(), make_ref(), Server.url(s), credit: 10)
    end
  end

  test "halting after a refill, inside a batch, closes the connection", %{client: c} do
    chunks = for from <- 1..3000//300, do: Enum.map_join(from..(from + 299), &"data: #{&1}\n\n")
    s = Server.start(pushing(self(), chunks))

    assert Events.stream(c, Server.url(s)) |> Stream.map(& &1.data) |> Enum.take(1234) ==
             Enum.map(1..1234, &Integer.to_string/1)

    assert Server.wait_closed(s, 0) == :ok
    refute_received {:erqwest_events, _, _, _}
    refute_received {:erqwest_events, _, _}
    assert live_zero() == :ok
  end

  test "a failed stream raises Erqwest.Error", %{client: c} do
    s = Server.start(fn _ -> {200, [{"content-type", "text/html"}], "<html>"} end)

    assert_raise Erqwest.Error, ~r/content_type/, fn ->
      Events.stream(c, Server.url(s)) |> Enum.to_list()
    end

    s2 = Server.start(fn _ -> {404, [], ""} end)

    assert %Erqwest.Error{code: :http_status} =
             catch_error(Events.stream(c, Server.url(s2)) |> Enum.to_list())
  end

  test "bad options raise ArgumentError naming the key", %{client: c} do
    assert_raise ArgumentError, ~r/unknown event stream option :colour/, fn ->
      Events.stream(c, "http://127.0.0.1:1/", colour: :red) |> Enum.to_list()
    end

    assert_raise ArgumentError, ~r/:format/, fn ->
      Events.open(c, self(), :r, "http://127.0.0.1:1/", format: :xml)
    end

    assert_raise ArgumentError, ~r/:active is for open/, fn ->
      Events.stream(c, "http://127.0.0.1:1/", active: 5) |> Enum.to_list()
    end

    assert_raise ArgumentError, ~r/:batch is for open/, fn ->
      Events.stream(c, "http://127.0.0.1:1/", batch: true) |> Enum.to_list()
    end

    assert_raise ArgumentError, ~r/event stream option :batch: :yes/, fn ->
      Events.open(c, self(), :r, "http://127.0.0.1:1/", batch: :yes)
    end
  end

  test "open/5 with batch: true delivers lists, credit counted per event", %{client: c} do
    s = Server.start(pushing(self(), ["data: 1\n\ndata: 2\n\ndata: 3\n\n", "data: 4\n\n"]))
    ref = make_ref()
    h = Events.open(c, self(), ref, Server.url(s), active: 2, batch: true, reconnect: false)
    assert_receive {:erqwest_events, ^ref, :open, %{status: 200}}, 5_000
    assert_receive {:erqwest_events, ^ref, :events, [%{data: "1"}, %{data: "2"}] = es}, 5_000
    assert [%Event{data: "1"}, %Event{data: "2"}] = Enum.map(es, &Event.new/1)
    assert_receive {:erqwest_events, ^ref, :passive}
    refute_receive {:erqwest_events, ^ref, _, _}, 100
    assert :ok = Events.active(h, 10)
    # "3" was waiting; "4" may have arrived by now and join it.
    assert take_lists(ref, 2) |> Enum.map(& &1.data) == ["3", "4"]
    assert_receive {:erqwest_events, ^ref, :closed, :eof}, 5_000
    refute_receive {:erqwest_events, ^ref, _, _}, 100
    refute_received {:erqwest_events, ^ref, _}
  end

  test "open/5 delivers messages with active/2 credit; close/1 ends with :closed", %{client: c} do
    s = Server.start(pushing(self(), ["data: 1\n\ndata: 2\n\n", "data: 3\n\n"]))
    ref = make_ref()
    h = Events.open(c, self(), ref, Server.url(s), active: 1)
    assert_receive {:erqwest_events, ^ref, :open, %{status: 200}}, 5_000
    assert_receive {:erqwest_events, ^ref, :event, %{data: "1"} = e}, 5_000
    assert %Event{data: "1", type: "message"} = Event.new(e)
    assert_receive {:erqwest_events, ^ref, :passive}
    assert :ok = Events.active(h, 2)
    assert_receive {:erqwest_events, ^ref, :event, %{data: "2"}}, 5_000
    assert_receive {:erqwest_events, ^ref, :event, %{data: "3"}}, 5_000
    assert_receive {:erqwest_events, ^ref, :passive}
    assert :ok = Events.close(h)
    assert_receive {:erqwest_events, ^ref, :closed, :normal}, 5_000
    refute_receive {:erqwest_events, ^ref, _, _}, 100
  end
end
