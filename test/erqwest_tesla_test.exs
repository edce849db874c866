defmodule Erqwest.TeslaTest do
  # Tesla on erqwest (Tesla.Adapter.Erqwest), against the wire-level test
  # server. Needs Tesla and Jason from the peers (PEERS_LIB); test_helper.exs
  # skips the :peers tag without them.
  use ExUnit.Case, async: true

  @moduletag :peers
  # Without the peers this file still compiles (and is skipped): no struct
  # of theirs is written literally, and calls to them are not checked.
  @compile {:no_warn_undefined, [Tesla, Tesla.Multipart, :erqwest_test_certs]}

  import ExUnit.CaptureLog
  alias Erqwest.Test.Server

  @adapter Tesla.Adapter.Erqwest

  setup do
    name = :"tesla_test_#{System.unique_integer([:positive])}"
    :ok = Erqwest.start_client(name, Erqwest.Req.client_options())
    on_exit(fn -> Erqwest.stop_client(name) end)
    %{client: name}
  end

  defp tesla(client, middleware \\ [], opts \\ []),
    do: Tesla.client(middleware, {@adapter, [client: client] ++ opts})

  describe "request bodies" do
    test "a query, headers and a binary body go on the wire as given", %{client: c} do
      s = Server.start(Server.reply(201, "made"))

      assert {:ok, env} =
               Tesla.post(tesla(c), Server.url(s, "/items"), "payload",
                 query: [a: 1, b: "x y"],
                 headers: [{"x-trace", "t1"}]
               )

      assert {env.status, env.body} == {201, "made"}
      [r] = Server.requests(s)
      assert r.raw =~ ~r{\APOST /items\?a=1&b=x\+y HTTP/1\.1\r\n}
      assert {"x-trace", "t1"} in r.headers
      assert {"content-length", "7"} in r.headers
      assert r.body == "payload"
    end

    test "iodata", %{client: c} do
      s = Server.start(Server.reply(200, "ok"))
      {:ok, _} = Tesla.put(tesla(c), Server.url(s), ["a", ?b, ["cd"]])
      [r] = Server.requests(s)
      assert r.body == "abcd"
      assert {"content-length", "4"} in r.headers
    end

    test "a Stream is sent chunk by chunk (chunked on the wire)", %{client: c} do
      s = Server.start(fn r -> {200, [], "got #{byte_size(r.body)}"} end)
      body = Stream.map(["one", "three"], &String.upcase/1)
      assert {:ok, env} = Tesla.post(tesla(c), Server.url(s), body)
      assert env.body == "got 8"
      [r] = Server.requests(s)
      assert Server.chunked?(r)
      assert r.raw_body == "3\r\nONE\r\n5\r\nTHREE\r\n0\r\n\r\n"
    end

    test "a Tesla.Multipart is streamed with its content type and boundary", %{client: c} do
      s = Server.start(Server.reply(200, "ok"))

      mp =
        Tesla.Multipart.new()
        |> Tesla.Multipart.add_field("field", "value")
        |> Tesla.Multipart.add_file_content("file body", "f.txt")

      [{"content-type", ct}] = Tesla.Multipart.headers(mp)
      "multipart/form-data; boundary=" <> boundary = ct

      assert {:ok, %{status: 200}} = Tesla.post(tesla(c), Server.url(s, "/up"), mp)
      [r] = Server.requests(s)
      assert {"content-type", ct} in r.headers
      assert Server.chunked?(r)

      assert r.body ==
               "--#{boundary}\r\ncontent-disposition: form-data; name=\"field\"\r\n\r\nvalue\r\n" <>
                 "--#{boundary}\r\n" <>
                 "content-disposition: form-data; name=\"file\"; filename=\"f.txt\"\r\n\r\n" <>
                 "file body\r\n--#{boundary}--\r\n"
    end
  end

  describe "Tesla's middleware on top" do
    test "JSON encodes the request and decodes the answer", %{client: c} do
      s =
        Server.start(
          Server.reply(200, ~s({"ok":true,"n":[1,2]}), [{"content-type", "application/json"}])
        )

      assert {:ok, env} = Tesla.post(tesla(c, [Tesla.Middleware.JSON]), Server.url(s), %{q: "x"})
      assert env.body == %{"ok" => true, "n" => [1, 2]}
      [r] = Server.requests(s)
      assert r.body == ~s({"q":"x"})
      assert {"content-type", "application/json"} in r.headers
    end

    test "FollowRedirects follows, erqwest does not", %{client: c} do
      s =
        Server.start(fn
          %{path: "/a"} -> {302, [{"location", "/b"}], ""}
          %{path: "/b"} -> {200, [], "at b"}
        end)

      assert {:ok, env} =
               Tesla.get(tesla(c, [Tesla.Middleware.FollowRedirects]), Server.url(s, "/a"))

      assert {env.status, env.body} == {200, "at b"}
      assert Enum.map(Server.requests(s), & &1.path) == ["/a", "/b"]

      assert {:ok, %{status: 302}} = Tesla.get(tesla(c), Server.url(s, "/a"))
    end

    test "Retry retries a 503 and a refused connection", %{client: c} do
      counter = :counters.new(1, [])

      s =
        Server.start(fn _ ->
          :counters.add(counter, 1, 1)
          if :counters.get(counter, 1) < 3, do: {503, [], "busy"}, else: {200, [], "done"}
        end)

      retry =
        {Tesla.Middleware.Retry,
         delay: 1,
         max_retries: 3,
         should_retry: fn
           {:ok, %{status: 503}} -> true
           {:error, :econnrefused} -> true
           _ -> false
         end}

      assert {:ok, %{status: 200, body: "done"}} = Tesla.get(tesla(c, [retry]), Server.url(s))
      assert length(Server.requests(s)) == 3

      parent = self()

      counting =
        {Tesla.Middleware.Retry,
         delay: 1,
         max_retries: 2,
         should_retry: fn
           {:error, :econnrefused} -> send(parent, :retried) && true
           _ -> false
         end}

      url = "http://127.0.0.1:#{Server.closed_port()}/"
      assert {:error, :econnrefused} = Tesla.get(tesla(c, [counting]), url)
      assert_received :retried
    end

    test "Logger and BasicAuth", %{client: c} do
      s = Server.start(Server.reply(200, "ok"))
      mw = [{Tesla.Middleware.BasicAuth, username: "u", password: "p"}, Tesla.Middleware.Logger]
      log = capture_log(fn -> {:ok, _} = Tesla.get(tesla(c, mw), Server.url(s, "/logged")) end)
      assert log =~ "/logged"
      assert log =~ "200"
      [r] = Server.requests(s)
      assert r.raw =~ "\r\nauthorization: Basic #{Base.encode64("u:p")}\r\n"
    end
  end

  describe "response: :stream" do
    test "the body is a lazy stream of chunks", %{client: c} do
      s =
        Server.start(fn _ ->
          {200, [{"transfer-encoding", "chunked"}],
           :erqwest_test_server.chunked(["ab", "cd", "ef"])}
        end)

      assert {:ok, env} = Tesla.get(tesla(c, [], response: :stream), Server.url(s))
      assert env.status == 200
      refute is_binary(env.body)
      assert Enum.join(env.body) == "abcdef"
    end

    test "stopping early cancels the request", %{client: c} do
      s = Server.start(Server.endless_handler(self()))
      {:ok, env} = Tesla.get(tesla(c, [], response: :stream), Server.url(s))
      assert [_, _] = Enum.take(env.body, 2)
      assert_receive {:client_gone, _}, 5_000
    end

    test "a server that closes mid-body raises Tesla.Error :closed in the consumer", %{client: c} do
      s =
        Server.start(fn _ -> {:raw_close, "HTTP/1.1 200 OK\r\ncontent-length: 50\r\n\r\nsome"} end)

      {:ok, env} = Tesla.get(tesla(c, [], response: :stream), Server.url(s))
      error = assert_raise Tesla.Error, fn -> Enum.to_list(env.body) end
      assert error.reason == :closed
    end

    test "a stall mid-body past receive_timeout raises :timeout in bounded time", %{client: c} do
      s =
        Server.start(fn _ ->
          {:custom,
           fn sock, _ ->
             :gen_tcp.send(sock, "HTTP/1.1 200 OK\r\ncontent-length: 50\r\n\r\nsome")
             Process.sleep(5_000)
             :close
           end}
        end)

      {:ok, env} = Tesla.get(tesla(c, [], response: :stream, receive_timeout: 300), Server.url(s))

      {us, error} =
        :timer.tc(fn -> assert_raise Tesla.Error, fn -> Enum.to_list(env.body) end end)

      assert error.reason == :timeout
      assert us < 2_000_000
    end
  end

  describe "errors" do
    # On both engines: the client of setup, and one with a resolve entry
    # (always reqwest's); the answers must be the same.
    setup %{client: c} do
      %{clients: [c, Server.runtime_client(:tesla_runtime, Erqwest.Req.client_options())]}
    end

    test "a refused port is {:error, :econnrefused}", %{clients: clients} do
      for c <- clients do
        assert Tesla.get(tesla(c), "http://127.0.0.1:#{Server.closed_port()}/") ==
                 {:error, :econnrefused}
      end
    end

    test "a host that does not resolve is {:error, :nxdomain}", %{clients: clients} do
      for c <- clients do
        assert Tesla.get(tesla(c), "http://erqwest-no-such-host.invalid/") == {:error, :nxdomain}
      end
    end

    test "a stalled server is {:error, :timeout} after receive_timeout", %{clients: clients} do
      s = Server.start(fn _ -> {:custom, fn _sock, _ -> Process.sleep(5_000) && :close end} end)

      for c <- clients, response <- [nil, :stream] do
        {us, result} =
          :timer.tc(fn ->
            Tesla.get(tesla(c, [], receive_timeout: 200, response: response), Server.url(s))
          end)

        assert result == {:error, :timeout}
        assert us < 2_000_000
      end
    end

    test "a per-request :timeout wins over the client's options", %{clients: clients} do
      s = Server.start(fn _ -> {:custom, fn _sock, _ -> Process.sleep(5_000) && :close end} end)

      for c <- clients do
        client = tesla(c, [], receive_timeout: 10_000)

        {us, result} =
          :timer.tc(fn -> Tesla.get(client, Server.url(s), opts: [adapter: [timeout: 150]]) end)

        assert result == {:error, :timeout}
        assert us < 2_000_000
      end
    end

    test "a server that closes mid-body is {:error, :closed}", %{clients: clients} do
      s =
        Server.start(fn _ -> {:raw_close, "HTTP/1.1 200 OK\r\ncontent-length: 50\r\n\r\nsome"} end)

      for c <- clients do
        assert Tesla.get(tesla(c), Server.url(s)) == {:error, :closed}
      end
    end

    test "a streamed upload to a server that closes is {:error, :closed}", %{clients: clients} do
      s = Server.start(fn _ -> :close end, %{read_body: false})
      body = Stream.repeatedly(fn -> :binary.copy("z", 65_536) end) |> Stream.take(2_000)

      for c <- clients do
        assert Tesla.post(tesla(c), Server.url(s), body) in [
                 {:error, :closed},
                 {:error, :econnreset}
               ]
      end
    end
  end

  describe "clients and HTTPS" do
    test "the per-call :client option picks the client (its default headers)" do
      name = :"tesla_named_#{System.unique_integer([:positive])}"

      :ok =
        Erqwest.start_client(
          name,
          [default_headers: [{"x-from", "named"}]] ++ Erqwest.Req.client_options()
        )

      on_exit(fn -> Erqwest.stop_client(name) end)
      s = Server.start(Server.reply(200, "ok"))

      {:ok, _} =
        Tesla.get(Tesla.client([], @adapter), Server.url(s), opts: [adapter: [client: name]])

      {:ok, _} = Tesla.get(Tesla.client([], @adapter), Server.url(s))
      [named, default] = Server.requests(s)
      assert {"x-from", "named"} in named.headers
      refute {"x-from", "named"} in default.headers
    end

    # The server logs the client's alert after the test's last call.
    @tag capture_log: true
    test "HTTPS, with the client trusting the test CA" do
      dir = Path.join(System.tmp_dir!(), "erqwest_tesla_#{System.unique_integer([:positive])}")
      on_exit(fn -> File.rm_rf(dir) end)
      {:ok, mod, bin} = :compile.file(~c"test/erqwest_test_certs.erl", [:binary])
      {:module, _} = :code.load_binary(mod, ~c"erqwest_test_certs.erl", bin)
      certs = :erqwest_test_certs.make(String.to_charlist(dir))
      tls = [certfile: certs.server_cert, keyfile: certs.server_key]
      s = Server.start(Server.reply(200, "secure"), %{tls: tls})
      ca = :erqwest_test_certs.der(certs.ca)
      client = Erqwest.make_client([additional_root_certs: [ca]] ++ Erqwest.Req.client_options())

      url = Server.url(s, "/tls")
      assert "https://" <> _ = url
      assert {:ok, %{status: 200, body: "secure"}} = Tesla.get(tesla(client), url)

      # Without the CA the certificate is not trusted: not a transport error.
      untrusting = Erqwest.make_client(Erqwest.Req.client_options())

      capture_log(fn ->
        assert {:error, %Erqwest.Error{code: :connect}} = Tesla.get(tesla(untrusting), url)
      end)
    end
  end
end
