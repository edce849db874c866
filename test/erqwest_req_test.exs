defmodule Erqwest.ReqTest do
  # Req on erqwest (Erqwest.Req), against the wire-level test server. Needs
  # Req from the peers (PEERS_LIB); test_helper.exs skips the :peers tag
  # without them.
  use ExUnit.Case, async: true

  @moduletag :peers
  # Without the peers this file still compiles (and is skipped): no struct
  # of theirs is written literally, and calls to them are not checked.
  @compile {:no_warn_undefined, [Req, Req.Response]}

  alias Erqwest.Test.Server

  doctest Erqwest.Req

  setup do
    name = :"req_test_#{System.unique_integer([:positive])}"
    :ok = Erqwest.start_client(name, Erqwest.Req.client_options())
    on_exit(fn -> Erqwest.stop_client(name) end)
    %{client: name}
  end

  defp req(client, opts) do
    Req.new([retry: false, redirect_log_level: false] ++ opts)
    |> Erqwest.Req.attach(client: client)
  end

  defp raw(s), do: Enum.map(Server.requests(s), & &1.raw)

  describe "Req's request steps on top" do
    test "base_url, params and basic auth reach the wire as Req builds them", %{client: c} do
      s = Server.start(Server.reply(200, "hi"))
      req = req(c, base_url: Server.url(s, "/api"), auth: {:basic, "ann:s3cret"})

      resp = Req.get!(req, url: "/users", params: [page: 2, q: "a b"])
      assert {resp.status, resp.body} == {200, "hi"}

      [raw] = raw(s)
      assert raw =~ ~r{\AGET /api/users\?page=2&q=a\+b HTTP/1\.1\r\n}
      assert raw =~ "\r\nauthorization: Basic #{Base.encode64("ann:s3cret")}\r\n"
      # One authorization header: the client adds none of its own.
      assert length(String.split(raw, "authorization:")) == 2
    end

    test "a json: body is sent as Req encodes it, and a JSON answer decoded by Req", %{client: c} do
      s =
        Server.start(
          Server.reply(200, ~s({"id":7,"tags":["x"]}), [{"content-type", "application/json"}])
        )

      resp = Req.post!(req(c, url: Server.url(s, "/items")), json: %{name: "n"})
      assert resp.body == %{"id" => 7, "tags" => ["x"]}

      [r] = Server.requests(s)
      assert r.body == ~s({"name":"n"})
      assert {"content-type", "application/json"} in r.headers

      # erqwest did not decode it first: raw: true sees the bytes.
      assert Req.get!(req(c, url: Server.url(s), raw: true)).body == ~s({"id":7,"tags":["x"]})
    end

    test "a form: body", %{client: c} do
      s = Server.start(Server.reply(200, "ok"))
      Req.post!(req(c, url: Server.url(s)), form: [a: 1, b: "x y"])
      [r] = Server.requests(s)
      assert r.body == "a=1&b=x+y"
      assert {"content-type", "application/x-www-form-urlencoded"} in r.headers
    end
  end

  describe "Req's response steps on top" do
    test "Req follows redirects, erqwest does not", %{client: c} do
      s =
        Server.start(fn
          %{path: "/old"} -> {302, [{"location", "/new"}], ""}
          %{path: "/new"} -> {200, [], "moved"}
        end)

      resp = Req.get!(req(c, url: Server.url(s, "/old")))
      assert {resp.status, resp.body} == {200, "moved"}
      assert Enum.map(Server.requests(s), & &1.path) == ["/old", "/new"]

      # With Req's redirects off the 302 itself comes back.
      resp = Req.get!(req(c, url: Server.url(s, "/old"), redirect: false))
      assert resp.status == 302
      assert Req.Response.get_header(resp, "location") == ["/new"]
    end

    test "Req retries a 503 (erqwest does not retry it too)", %{client: c} do
      counter = :counters.new(1, [])

      s =
        Server.start(fn _ ->
          :counters.add(counter, 1, 1)
          if :counters.get(counter, 1) < 3, do: {503, [], "busy"}, else: {200, [], "done"}
        end)

      req = Req.new(url: Server.url(s), retry: :transient, retry_delay: 1, retry_log_level: false)
      resp = req |> Erqwest.Req.attach(client: c) |> Req.get!()
      assert {resp.status, resp.body} == {200, "done"}
      assert length(Server.requests(s)) == 3
    end

    test "Req retries a refused connection, as a transport error it knows", %{client: c} do
      port = Server.closed_port()
      parent = self()

      req =
        Req.new(
          url: "http://127.0.0.1:#{port}/",
          retry: :transient,
          max_retries: 2,
          retry_delay: fn n -> send(parent, {:retry, n}) && 1 end,
          retry_log_level: false
        )

      assert {:error, %{__struct__: Req.TransportError, reason: :econnrefused}} =
               req |> Erqwest.Req.attach(client: c) |> Req.get()

      assert_received {:retry, 0}
      assert_received {:retry, 1}
    end

    test "Req asks for and decompresses gzip; raw: true keeps the bytes", %{client: c} do
      gz = :zlib.gzip("squeezed")

      s =
        Server.start(fn _ ->
          {200, [{"content-encoding", "gzip"}, {"content-type", "text/plain"}], gz}
        end)

      resp = Req.get!(req(c, url: Server.url(s)))
      assert resp.body == "squeezed"
      [r] = Server.requests(s)
      # Req's own accept-encoding is the only one.
      assert [ae] = for({"accept-encoding", v} <- r.headers, do: v)
      assert ae =~ "gzip"

      raw = Req.get!(req(c, url: Server.url(s), raw: true))
      assert raw.body == gz
      assert Req.Response.get_header(raw, "content-encoding") == ["gzip"]
    end

    test "HTTP errors are responses; http_errors: :raise raises", %{client: c} do
      s = Server.start(Server.reply(404, "nope"))

      assert {:ok, %{__struct__: Req.Response, status: 404, body: "nope"}} =
               Req.get(req(c, url: Server.url(s)))

      assert_raise RuntimeError, ~r/404/, fn ->
        Req.get!(req(c, url: Server.url(s), http_errors: :raise))
      end
    end
  end

  describe "transport errors" do
    # Each case runs on both engines: the client of setup (the scheduler
    # engine for complete bodies) and one with a resolve entry, which
    # erqwest always serves with reqwest. The answer must be the same.
    setup %{client: c} do
      %{clients: [c, Server.runtime_client(:req_runtime, Erqwest.Req.client_options())]}
    end

    test "a refused port is :econnrefused", %{clients: clients} do
      url = "http://127.0.0.1:#{Server.closed_port()}/"

      for c <- clients do
        assert {:error, %{__struct__: Req.TransportError, reason: :econnrefused}} =
                 Req.get(req(c, url: url))
      end
    end

    test "a host that does not resolve is :nxdomain", %{clients: clients} do
      for c <- clients do
        assert {:error, %{__struct__: Req.TransportError, reason: :nxdomain}} =
                 Req.get(req(c, url: "http://erqwest-no-such-host.invalid/"))
      end
    end

    test "a server that stalls past receive_timeout is :timeout, in bounded time",
         %{clients: clients} do
      s = Server.start(fn _ -> {:custom, fn _sock, _ -> Process.sleep(5_000) && :close end} end)

      for c <- clients do
        {us, result} =
          :timer.tc(fn -> Req.get(req(c, url: Server.url(s), receive_timeout: 200)) end)

        assert {:error, %{__struct__: Req.TransportError, reason: :timeout}} = result
        assert us < 2_000_000
      end
    end

    test "a stall mid-body past receive_timeout is :timeout, complete or with into:",
         %{clients: clients} do
      s =
        Server.start(fn _ ->
          {:custom,
           fn sock, _ ->
             :gen_tcp.send(sock, "HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc")
             Process.sleep(5_000)
             :close
           end}
        end)

      for c <- clients, into <- [nil, []] do
        {us, result} =
          :timer.tc(fn ->
            Req.get(req(c, url: Server.url(s), receive_timeout: 300, into: into))
          end)

        assert {:error, %{__struct__: Req.TransportError, reason: :timeout}} = result
        assert us < 2_000_000
      end
    end

    test "a server that closes mid-body is :closed, complete or streamed", %{clients: clients} do
      s =
        Server.start(fn _ ->
          {:raw_close, "HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly ten.."}
        end)

      for c <- clients, into <- [nil, fn {:data, _}, acc -> {:cont, acc} end] do
        assert {:error, %{__struct__: Req.TransportError, reason: :closed}} =
                 Req.get(req(c, url: Server.url(s), into: into))
      end
    end

    test "a server that closes before answering is :closed", %{clients: clients} do
      s = Server.start(fn _ -> :close end)

      for c <- clients, into <- [nil, []] do
        assert {:error, %{__struct__: Req.TransportError, reason: :closed}} =
                 Req.get(req(c, url: Server.url(s), into: into))
      end
    end

    test "a URL erqwest cannot use is an Erqwest.Error, not a transport error",
         %{clients: clients} do
      for c <- clients do
        assert {:error, %Erqwest.Error{code: :url}} = Req.get(req(c, url: "http://[::1/"))
      end
    end
  end

  describe "request bodies" do
    test "an Enumerable body is streamed chunk by chunk (chunked on the wire)", %{client: c} do
      s = Server.start(fn r -> {200, [], "got #{byte_size(r.body)}"} end)
      body = Stream.map(["alpha", "beta", "gamma"], & &1)

      resp = Req.put!(req(c, url: Server.url(s, "/up")), body: body)
      assert resp.body == "got 14"

      [r] = Server.requests(s)
      assert Server.chunked?(r)
      assert r.raw_body == "5\r\nalpha\r\n4\r\nbeta\r\n5\r\ngamma\r\n0\r\n\r\n"
      assert r.raw =~ ~r{\APUT /up HTTP/1\.1\r\n}
    end

    test "a server that stops reading a streamed body times out after receive_timeout",
         %{client: c} do
      s =
        Server.start(fn _ -> {:custom, fn _sock, _ -> Process.sleep(10_000) && :close end} end, %{
          read_body: false
        })

      chunk = :binary.copy("u", 65_536)
      body = Stream.repeatedly(fn -> chunk end) |> Stream.take(4_000)

      {us, result} =
        :timer.tc(fn -> Req.put(req(c, url: Server.url(s), receive_timeout: 300), body: body) end)

      assert {:error, %{__struct__: Req.TransportError, reason: :timeout}} = result
      assert us < 3_000_000
    end

    test "HEAD", %{client: c} do
      s = Server.start(Server.reply(200, "not sent"))
      resp = Req.head!(req(c, url: Server.url(s)))
      assert {resp.status, resp.body} == {200, ""}
      assert [%{method: "HEAD"}] = Server.requests(s)
    end

    test "iodata is sent with its content-length", %{client: c} do
      s = Server.start(Server.reply(200, "ok"))
      Req.post!(req(c, url: Server.url(s)), body: ["ab", ?c, ["de"]])
      [r] = Server.requests(s)
      assert r.body == "abcde"
      assert {"content-length", "5"} in r.headers
    end
  end

  describe "into:" do
    setup do
      parts = ["one ", "two ", "three"]

      s =
        Server.start(fn _ ->
          {200, [{"transfer-encoding", "chunked"}], :erqwest_test_server.chunked(parts)}
        end)

      %{server: s}
    end

    test "a function gets every chunk, then the response", %{client: c, server: s} do
      fun = fn {:data, data}, {req, resp} ->
        {:cont, {req, update_in(resp.body, &(&1 <> data))}}
      end

      resp = Req.get!(req(c, url: Server.url(s), into: fun))
      assert {resp.status, resp.body} == {200, "one two three"}
    end

    test "a function that halts stops the request", %{client: c} do
      test = self()
      s = Server.start(Server.endless_handler(test))

      fun = fn {:data, data}, {req, resp} ->
        resp = update_in(resp.body, &(&1 <> data))
        if byte_size(resp.body) >= 50_000, do: {:halt, {req, resp}}, else: {:cont, {req, resp}}
      end

      resp = Req.get!(req(c, url: Server.url(s), into: fun))
      assert byte_size(resp.body) >= 50_000
      assert_receive {:client_gone, _}, 5_000
    end

    test "a function that raises stops the request and leaves no message", %{client: c} do
      test = self()
      s = Server.start(Server.endless_handler(test))
      fun = fn {:data, _}, _acc -> raise "stop here" end

      assert_raise RuntimeError, "stop here", fn ->
        Req.get!(req(c, url: Server.url(s), into: fun))
      end

      assert_receive {:client_gone, _}, 5_000
      refute_received {:erqwest_response, _, _, _}
    end

    test "a collectable collects the body", %{client: c, server: s} do
      resp = Req.get!(req(c, url: Server.url(s), into: []))
      assert IO.iodata_to_binary(resp.body) == "one two three"
    end

    test "a file collectable", %{client: c, server: s} do
      path = Path.join(System.tmp_dir!(), "erqwest_req_#{System.unique_integer([:positive])}")
      on_exit(fn -> File.rm(path) end)
      Req.get!(req(c, url: Server.url(s), into: File.stream!(path)))
      assert File.read!(path) == "one two three"
    end

    test ":self sends the body as messages that Req.parse_message/2 reads", %{
      client: c,
      server: s
    } do
      resp = Req.get!(req(c, url: Server.url(s), into: :self))
      assert resp.status == 200
      assert %{__struct__: Req.Response.Async} = resp.body

      assert Req.parse_message(resp, :other) == :unknown
      assert collect_messages(resp, "") == "one two three"
      refute_received _
    end

    test ":self bodies are enumerable", %{client: c, server: s} do
      resp = Req.get!(req(c, url: Server.url(s), into: :self))
      assert Enum.join(resp.body) == "one two three"
    end

    test "Req.cancel_async_response/1 stops the request and leaves no message", %{client: c} do
      test = self()
      s = Server.start(Server.endless_handler(test))
      resp = Req.get!(req(c, url: Server.url(s), into: :self))
      assert_receive {_, {:data, _}} = msg, 5_000
      assert {:ok, [data: _]} = Req.parse_message(resp, msg)

      assert Req.cancel_async_response(resp) == :ok
      assert_receive {:client_gone, _}, 5_000
      Process.sleep(50)
      ref = resp.body.ref
      refute_received {^ref, _}
    end

    test "the request stops when the process that made it exits", %{client: c} do
      test = self()
      s = Server.start(Server.endless_handler(test))

      {pid, mref} =
        spawn_monitor(fn ->
          Req.get!(req(c, url: Server.url(s), into: :self))
          send(test, :started)
        end)

      assert_receive :started, 5_000
      assert_receive {:DOWN, ^mref, :process, ^pid, _}
      assert_receive {:client_gone, _}, 5_000
    end

    test ":self with a server that closes mid-body ends in an error message", %{client: c} do
      s =
        Server.start(fn _ ->
          {:raw_close, "HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\npartial"}
        end)

      resp = Req.get!(req(c, url: Server.url(s), into: :self))

      assert {:error, %{__struct__: Req.TransportError, reason: :closed}} =
               collect_until_error(resp)
    end
  end

  describe "clients" do
    test "attach/2 without :client uses a default client, made for Req" do
      s =
        Server.start(fn
          %{path: "/r"} -> {301, [{"location", "/t"}], ""}
          %{path: "/t"} -> {200, [], "there"}
        end)

      resp =
        Req.new(url: Server.url(s, "/r"), redirect_log_level: false)
        |> Erqwest.Req.attach()
        |> Req.get!()

      assert resp.body == "there"
      assert length(Server.requests(s)) == 2
      assert is_reference(:erqwest.get_client(:erqwest_req_default))

      # The default client does not follow redirects itself: with Req's
      # off, the 301 comes back.
      resp =
        Req.new(url: Server.url(s, "/r"), redirect: false) |> Erqwest.Req.attach() |> Req.get!()

      assert resp.status == 301
    end

    test "a named client's own settings apply (its default headers)", %{client: _} do
      name = :"req_named_#{System.unique_integer([:positive])}"

      :ok =
        Erqwest.start_client(
          name,
          [default_headers: [{"x-from", "named"}]] ++ Erqwest.Req.client_options()
        )

      on_exit(fn -> Erqwest.stop_client(name) end)
      s = Server.start(Server.reply(200, "ok"))
      Req.get!(req(name, url: Server.url(s)))
      [r] = Server.requests(s)
      assert {"x-from", "named"} in r.headers
    end

    test "a named client's retries and decoding are off under Req" do
      name = :"req_plain_#{System.unique_integer([:positive])}"
      # Retries on and JSON decoding on, as Elixir clients have them.
      :ok = Erqwest.start_client(name, retry: true, follow_redirects: false)
      on_exit(fn -> Erqwest.stop_client(name) end)
      s = Server.start(Server.reply(503, ~s({"a":1}), [{"content-type", "application/json"}]))
      resp = Req.get!(req(name, url: Server.url(s), decode_body: false))
      assert {resp.status, resp.body} == {503, ~s({"a":1})}
      assert length(Server.requests(s)) == 1
    end

    test "attach/2 rejects an unknown option" do
      assert_raise ArgumentError, ~r/:client/, fn -> Erqwest.Req.attach(Req.new(), clinet: :x) end
    end
  end

  defp collect_messages(resp, acc) do
    receive do
      message ->
        case Req.parse_message(resp, message) do
          {:ok, [data: data]} -> collect_messages(resp, acc <> data)
          {:ok, [:done]} -> acc
        end
    after
      5_000 -> flunk("no message")
    end
  end

  defp collect_until_error(resp) do
    receive do
      message ->
        case Req.parse_message(resp, message) do
          {:ok, [data: _]} -> collect_until_error(resp)
          other -> other
        end
    after
      5_000 -> flunk("no message")
    end
  end
end
