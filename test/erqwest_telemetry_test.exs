defmodule ErqwestTelemetryTest do
  # Handlers are global: not async.
  use ExUnit.Case, async: false

  alias Erqwest.{Error, Response, Upload}
  alias Erqwest.Test.Server

  @telemetry Code.ensure_loaded?(:telemetry)
  unless @telemetry do
    IO.puts(
      "erqwest_telemetry_test: skipped, no telemetry on the code path " <>
        "(PEERS_LIB=$(bash scripts/peers.sh) builds it from ../shared/peers)"
    )

    @moduletag skip: "no telemetry (PEERS_LIB)"
  end

  @events [
    [:erqwest, :request, :start],
    [:erqwest, :request, :stop],
    [:erqwest, :request, :exception],
    [:erqwest, :request, :retry],
    [:erqwest, :queue, :stop],
    [:erqwest, :connect, :stop]
  ]

  setup context do
    if @telemetry do
      {:ok, _} = Application.ensure_all_started(:telemetry)
      id = {__MODULE__, context.test}
      # Through a variable: telemetry is optional, not a dependency.
      telemetry = :telemetry
      :ok = telemetry.attach_many(id, @events, &__MODULE__.relay/4, self())
      on_exit(fn -> telemetry.detach(id) end)
    end

    :ok
  end

  def relay(event, measurements, meta, pid), do: send(pid, {:event, event, measurements, meta})

  defp events(ms \\ 200) do
    receive do
      {:event, e, m, meta} -> [{e, m, meta} | events(ms)]
    after
      ms -> []
    end
  end

  defp names(events), do: Enum.map(events, fn {e, _, _} -> List.last(e) end)

  test "a request through the Elixir API: start and stop with its figures" do
    server = Server.start(Server.reply(200, "hello"))
    start_supervised!({Erqwest, name: TelemetryTest.HTTP})
    url = Server.url(server, "/some/path")
    port = Server.port(server)

    assert %Response{status: 200} = resp = Erqwest.get!(TelemetryTest.HTTP, url)

    assert [
             {[:erqwest, :request, :start], %{system_time: _, monotonic_time: t0}, start_meta},
             {[:erqwest, :request, :stop], %{duration: d, monotonic_time: t1}, stop_meta}
           ] = events()

    common = %{
      client: TelemetryTest.HTTP,
      method: :get,
      url: url,
      scheme: "http",
      host: "127.0.0.1",
      port: port,
      path: "/some/path"
    }

    assert start_meta == common
    assert d == t1 - t0 and d > 0
    assert %{status: 200, error: nil, attempts: 1, result: {:ok, raw}} = stop_meta
    assert Map.take(stop_meta, Map.keys(common)) == common
    assert Response.new(raw) == resp
  end

  test "an HTTP error status stops with that status" do
    server = Server.start(Server.reply(404, "no"))
    assert %Response{status: 404} = Erqwest.get!(Erqwest.make_client(), Server.url(server))

    assert [{_, _, %{}}, {[:erqwest, :request, :stop], _, %{status: 404, error: nil}}] = events()
  end

  test "a transport error stops with its code" do
    url = "http://127.0.0.1:#{Server.closed_port()}/gone"
    assert {:error, %Error{code: :connect}} = Erqwest.get(Erqwest.make_client(retry: false), url)

    assert [
             {[:erqwest, :request, :start], _, %{path: "/gone"}},
             {[:erqwest, :request, :stop], %{duration: _},
              %{status: nil, error: :connect, result: {:error, %{code: :connect}}}}
           ] = events()
  end

  test "each retry is an event before the stop" do
    hits = :counters.new(1, [])

    server =
      Server.start(fn _ ->
        :counters.add(hits, 1, 1)
        if :counters.get(hits, 1) < 3, do: {503, [], ""}, else: {200, [], "ok"}
      end)

    client = Erqwest.make_client(retry: [base: 1, max: 5])
    assert %Response{status: 200, attempts: 3} = Erqwest.get!(client, Server.url(server))

    assert [
             {_, _, _},
             {[:erqwest, :request, :retry], %{attempt: 2}, %{method: :get}},
             {[:erqwest, :request, :retry], %{attempt: 3}, _},
             {[:erqwest, :request, :stop], _, %{status: 200, attempts: 3}}
           ] = events()
  end

  test "timings give the queue and connect events" do
    server = Server.start(Server.reply())
    client = Erqwest.make_client(timings: true)

    assert %Response{timings: %{queued: q, connect: c}} = Erqwest.get!(client, Server.url(server))
    assert names(events = events()) == [:start, :stop, :stop, :stop]

    [
      _,
      {[:erqwest, :queue, :stop], %{duration: qd}, _},
      {[:erqwest, :connect, :stop], %{duration: cd}, _},
      _
    ] = events

    assert qd == System.convert_time_unit(q, :microsecond, :native)
    assert cd == System.convert_time_unit(c, :microsecond, :native)
  end

  test "a cancelled upload stops with :cancelled" do
    server = Server.start(Server.reply())

    {:ok, %Upload{} = upload} =
      Erqwest.post(Erqwest.make_client(), Server.url(server), body: :stream)

    :ok = Upload.write(upload, "some")
    assert names(events(50)) == [:start]
    :ok = Upload.cancel(upload)

    assert [{[:erqwest, :request, :stop], _, %{error: :cancelled, status: nil}}] = events()
  end

  test "a streamed response body stops at the head; reading it emits nothing more" do
    server = Server.start(Server.reply(200, String.duplicate("x", 50_000)))
    {:ok, %Response{body: body}} = Erqwest.stream(Erqwest.make_client(), Server.url(server))
    assert names(events()) == [:start, :stop]
    assert body |> Enum.join() |> byte_size() == 50_000
    assert events() == []
  end

  test "Erqwest.Async emits nothing unless started through :erqwest_telemetry" do
    server = Server.start(Server.reply())
    client = Erqwest.make_client()
    ref = make_ref()
    Erqwest.Async.request(client, self(), ref, url: Server.url(server))
    assert {:reply, %Response{}} = Erqwest.Async.await(ref)
    assert events() == []

    {_handle, span} =
      :erqwest_telemetry.async_req(client, self(), ref, %{method: :get, url: Server.url(server)})

    assert_receive {:erqwest_response, ^ref, :reply, _} = message, 2_000
    :ok = :erqwest_telemetry.async_stop(span, message)
    assert names(events()) == [:start, :stop]
  end

  test "stubbed requests emit events too" do
    Erqwest.Test.stub(TelemetryTest.Stubbed, fn _ -> %Response{status: 201} end)
    Erqwest.get!(TelemetryTest.Stubbed, "https://api.test/x")

    assert [
             {_, _, %{client: TelemetryTest.Stubbed, host: "api.test", port: 443}},
             {[:erqwest, :request, :stop], _, %{status: 201}}
           ] = events()
  end

  test "with telemetry stopped: no event, no crash" do
    server = Server.start(Server.reply())
    :ok = Application.stop(:telemetry)

    try do
      refute :erqwest_telemetry.enabled()
      assert %Response{status: 200} = Erqwest.get!(Erqwest.make_client(), Server.url(server))
      assert events() == []
    after
      {:ok, _} = Application.ensure_all_started(:telemetry)
    end
  end
end
