defmodule ErqwestResilienceTest do
  use ExUnit.Case, async: true

  alias Erqwest.{Error, Response}
  alias Erqwest.Test.Server

  # Polls `f` every 5 ms for up to 2 s.
  defp until(f, tries \\ 400) do
    cond do
      f.() ->
        :ok

      tries == 0 ->
        :timeout

      true ->
        Process.sleep(5)
        until(f, tries - 1)
    end
  end

  # A handler answering from `steps` in order (the last one repeated),
  # counting requests in `hits`.
  defp scripted(steps) do
    hits = :counters.new(1, [])

    handler = fn _req ->
      n = :counters.get(hits, 1)
      :counters.add(hits, 1, 1)
      Enum.at(steps, n, List.last(steps))
    end

    {handler, fn -> :counters.get(hits, 1) end}
  end

  defp refused_url do
    {:ok, l} = :gen_tcp.listen(0, ip: {127, 0, 0, 1})
    {:ok, port} = :inet.port(l)
    :ok = :gen_tcp.close(l)
    "http://127.0.0.1:#{port}/"
  end

  describe "defaults of Elixir clients" do
    test "retries a transient status (Req's :safe_transient)" do
      {h, hits} = scripted([{503, [], "down"}, {200, [], "ok"}])
      s = Server.start(h)
      c = Erqwest.make_client()

      assert {:ok, %Response{status: 200, body: "ok", attempts: 2}} =
               Erqwest.get(c, Server.url(s))

      assert hits.() == 2
    end

    test "do not retry a POST" do
      {h, hits} = scripted([{503, [], "down"}, {200, [], "ok"}])
      s = Server.start(h)
      c = Erqwest.make_client()

      assert {:ok, %Response{status: 503, attempts: 1}} =
               Erqwest.post(c, Server.url(s), body: "x")

      assert hits.() == 1
    end

    test "do not retry PUT, DELETE or OPTIONS either: GET and HEAD only" do
      for method <- [:put, :delete, :options] do
        {h, hits} = scripted([{503, [], "down"}, {200, [], "ok"}])
        s = Server.start(h)
        c = Erqwest.make_client()

        assert {:ok, %Response{status: 503, attempts: 1}} =
                 Erqwest.request(c, method: method, url: Server.url(s))

        assert hits.() == 1
      end

      {h, hits} = scripted([{503, [], ""}, {200, [], ""}])
      s = Server.start(h)

      assert {:ok, %Response{status: 200, attempts: 2}} =
               Erqwest.head(Erqwest.make_client(retry: [base: 1]), Server.url(s))

      assert hits.() == 2
    end

    test "a refused connection is retried, with settings starting from the same defaults" do
      c = Erqwest.make_client(retry: [base: 1, max: 2, max_retries: 2])

      assert {:error, %Error{code: :connect, attempts: 3}} = Erqwest.get(c, refused_url())
      # Not a POST, whatever the error.
      assert {:error, %Error{code: :connect, attempts: 1}} =
               Erqwest.post(c, refused_url(), body: "x")
    end

    test "a connection closed before the response is retried" do
      {h, hits} = scripted([:close, {200, [], "ok"}])
      s = Server.start(h)
      c = Erqwest.make_client(retry: [base: 1])

      assert {:ok, %Response{status: 200, body: "ok", attempts: 2}} =
               Erqwest.get(c, Server.url(s))

      assert hits.() == 2
    end

    test "retry: true means :safe_transient's methods and errors" do
      assert %{retry: %{methods: [:get, :head], errors: [:timeout, :refused, :closed]}} =
               Erqwest.Options.client([])

      assert %{retry: %{methods: [:get, :head], errors: [:timeout, :refused, :closed]}} =
               Erqwest.Options.client(retry: true)

      assert %{retry: %{methods: :all, errors: [:timeout, :refused, :closed], max_retries: 1}} =
               Erqwest.Options.client(retry: [methods: :all, max_retries: 1])
    end

    test "retry: false gives the answer as it came, without attempts" do
      {h, hits} = scripted([{503, [], "down"}, {200, [], "ok"}])
      s = Server.start(h)
      c = Erqwest.make_client(retry: false)
      assert {:ok, %Response{status: 503, attempts: nil}} = Erqwest.get(c, Server.url(s))
      assert hits.() == 1
    end
  end

  describe "options" do
    test "a request overrides the client's retry settings" do
      {h, hits} = scripted([{500, [], "no"}])
      s = Server.start(h)
      c = Erqwest.make_client(retry: false)

      assert {:ok, %Response{status: 500, attempts: 2}} =
               Erqwest.get(c, Server.url(s), retry: [max_retries: 1, base: 1])

      assert hits.() == 2
    end

    test "errors carry attempts" do
      c = Erqwest.make_client(retry: [base: 1, max: 2, max_retries: 2])

      assert {:error, %Error{code: :connect, attempts: 3}} = Erqwest.get(c, refused_url())
      assert_raise Error, fn -> Erqwest.get!(c, refused_url()) end
    end

    test "timings" do
      s = Server.start(Server.reply())
      c = Erqwest.make_client(timings: true)
      {:ok, %Response{timings: t}} = Erqwest.get(c, Server.url(s))
      assert %{reused: false, connect: connect, headers: headers, total: total} = t
      assert connect <= headers and headers <= total
      assert t.remote_addr == {{127, 0, 0, 1}, Server.port(s)}
      {:ok, %Response{timings: t2}} = Erqwest.get(c, Server.url(s))
      assert t2.reused
      assert {:ok, %Response{timings: nil}} = Erqwest.get(c, Server.url(s), timings: false)
    end

    test "timings have the same keys whichever engine answers" do
      s = Server.start(Server.reply())
      scheduler = Erqwest.make_client(timings: true)
      runtime = Server.runtime_client("timings", timings: true)

      [on_scheduler, on_runtime] =
        for c <- [scheduler, runtime] do
          {:ok, %Response{timings: fresh}} = Erqwest.get(c, Server.url(s))
          {:ok, %Response{timings: again}} = Erqwest.get(c, Server.url(s), timings: true)
          assert fresh.headers <= fresh.total and again.headers <= again.total
          {Enum.sort(Map.keys(fresh)), fresh.reused, Enum.sort(Map.keys(again)), again.reused}
        end

      assert on_scheduler == on_runtime

      assert on_scheduler ==
               {[:connect, :headers, :queued, :remote_addr, :reused, :total], false,
                [:headers, :queued, :remote_addr, :reused, :total], true}
    end

    test "hedge" do
      slow_then_fast = fn
        %{conn: 1} -> {:custom, fn _sock, _req -> Process.sleep(2_000) && :close end}
        _ -> {200, [], "fast"}
      end

      s = Server.start(slow_then_fast)
      c = Erqwest.make_client(hedge: [delay: 50])
      assert {:ok, %Response{body: "fast", attempts: 2}} = Erqwest.get(c, Server.url(s))
    end

    test "bad shapes name the key" do
      assert_raise ArgumentError, ~r/client option :retry/, fn ->
        Erqwest.make_client(retry: [tries: 3])
      end

      assert_raise ArgumentError, ~r/request option :hedge/, fn ->
        Erqwest.get(:unused, "http://127.0.0.1:1/", hedge: [max: 2])
      end

      assert_raise ArgumentError, ~r/client option :max_in_flight/, fn ->
        Erqwest.make_client(max_in_flight: 0)
      end

      # Values the NIF refuses.
      assert_raise ArgumentError, fn -> Erqwest.make_client(retry: [max_retries: -1]) end
    end
  end

  describe "limits" do
    test "max_in_flight_per_host queues, client_info counts, queue_timeout fails" do
      hold = fn _ ->
        {:custom,
         fn sock, _req ->
           Process.sleep(300)
           :gen_tcp.send(sock, "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
           :keep
         end}
      end

      s = Server.start(hold)
      c = Erqwest.make_client(max_in_flight_per_host: 2, queue_timeout: 10_000)
      tasks = for _ <- 1..5, do: Task.async(fn -> Erqwest.get(c, Server.url(s)) end)
      Process.sleep(100)
      host = "127.0.0.1:#{Server.port(s)}"

      assert %{in_flight: 2, queued: 3, hosts: %{^host => %{in_flight: 2, queued: 3}}} =
               Erqwest.client_info(c)

      assert Enum.all?(Task.await_many(tasks, 5_000), &match?({:ok, %Response{status: 200}}, &1))
      assert Erqwest.client_info(c) == %{in_flight: 0, queued: 0, hosts: %{}}

      t = Task.async(fn -> Erqwest.get(c, Server.url(s)) end)
      t2 = Task.async(fn -> Erqwest.get(c, Server.url(s)) end)
      # Both slots taken (on a loaded machine the tasks may start late).
      assert :ok = until(fn -> Erqwest.client_info(c).in_flight == 2 end)

      assert {:error, %Error{code: :queue_timeout}} =
               Erqwest.get(c, Server.url(s), queue_timeout: 50)

      Task.await_many([t, t2])
    end
  end

  describe "Erqwest.Async" do
    test "retries and reports attempts" do
      {h, _hits} = scripted([{502, [], ""}, {200, [], "ok"}])
      s = Server.start(h)
      c = Erqwest.make_client(retry: [base: 1])
      ref = make_ref()
      _ = Erqwest.Async.request(c, self(), ref, url: Server.url(s))
      assert {:reply, %Response{status: 200, attempts: 2}} = Erqwest.Async.await(ref, 5_000)
    end
  end
end
