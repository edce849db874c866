defmodule ErqwestTest do
  use ExUnit.Case, async: true

  alias Erqwest.{Error, Response, Upload}
  alias Erqwest.Test.Server

  setup do
    %{client: Erqwest.make_client(proxy: :no_proxy)}
  end

  describe "request/2" do
    test "sends method, headers and body, and returns a Response struct", %{client: c} do
      s = Server.start(fn _ -> {201, [{"x-reply", "1"}, {"x-reply", "2"}], "made"} end)

      assert {:ok, %Response{} = resp} =
               Erqwest.request(c,
                 method: :post,
                 url: Server.url(s, "/things?a=1"),
                 headers: [{"x-test", "yes"}],
                 body: ["ab", ?c | "d"]
               )

      assert resp.status == 201
      assert resp.body == "made"
      assert resp.version == :"HTTP/1.1"
      assert resp.url == Server.url(s, "/things?a=1")
      assert Response.get_header(resp, "X-Reply") == ["1", "2"]

      assert [req] = Server.requests(s)
      assert req.method == "POST"
      assert req.path == "/things?a=1"
      assert {"x-test", "yes"} in req.headers
      assert {"content-length", "4"} in req.headers
      assert req.body == "abcd"
    end

    test "takes a map of options, a URI and a map of headers", %{client: c} do
      s = Server.start(Server.reply())
      url = URI.parse(Server.url(s, "/m"))

      assert {:ok, %Response{status: 200}} =
               Erqwest.request(c, %{url: url, headers: %{"x-map" => "v"}})

      assert [%{method: "GET", path: "/m", headers: headers}] = Server.requests(s)
      assert {"x-map", "v"} in headers
    end

    test "returns an HTTP error status as a response", %{client: c} do
      s = Server.start(Server.reply(404, "nope"))
      assert {:ok, %Response{status: 404, body: "nope"}} = Erqwest.request(c, url: Server.url(s))
    end

    test "returns errors as Erqwest.Error; request! raises them", %{client: c} do
      url = "http://127.0.0.1:#{Server.closed_port()}/"
      assert {:error, %Error{code: :connect, reason: reason}} = Erqwest.request(c, url: url)
      assert is_binary(reason)

      error = assert_raise Error, fn -> Erqwest.request!(c, url: url) end
      assert error.code == :connect
      assert Exception.message(error) =~ ~r/^connect: /
    end

    test "request! returns the response", %{client: c} do
      s = Server.start(Server.reply(200, "body"))
      assert %Response{status: 200, body: "body"} = Erqwest.request!(c, url: Server.url(s))
    end

    test "a timeout is an Erqwest.Error with code :timeout", %{client: c} do
      s =
        Server.start(fn _ -> {:custom, fn _sock, _req -> Process.sleep(2_000) && :close end} end)

      assert {:error, %Error{code: :timeout}} =
               Erqwest.request(c, url: Server.url(s), timeout: 100)
    end

    test "content errors come from the Erlang layer as errors", %{client: c} do
      assert {:error, %Error{code: :url}} = Erqwest.request(c, url: "http://exa mple.com/")

      assert {:error, %Error{code: :request}} =
               Erqwest.request(c, url: "http://127.0.0.1:1/", headers: [{"bad name", "v"}])
    end
  end

  describe "method functions" do
    for method <- [:get, :head, :options, :delete, :post, :put, :patch] do
      upper = method |> Atom.to_string() |> String.upcase()

      test "#{method}/3 and #{method}!/3 send #{upper}", %{client: c} do
        s = Server.start(Server.reply(200, "fine"))
        url = Server.url(s, "/r")

        assert {:ok, %Response{status: 200} = resp} =
                 Erqwest.unquote(method)(c, url, body: "payload")

        assert %Response{status: 200} = Erqwest.unquote(:"#{method}!")(c, url, body: "payload")
        # HEAD answers never have a body.
        expected_body = if unquote(method) == :head, do: "", else: "fine"
        assert resp.body == expected_body

        assert [first, second] = Server.requests(s)
        assert first.method == unquote(upper)
        assert second.method == unquote(upper)
        assert first.body == "payload"
      end
    end

    test "the two-argument forms use no options", %{client: c} do
      s = Server.start(Server.reply())
      assert {:ok, %Response{status: 200}} = Erqwest.get(c, Server.url(s))
      assert %Response{status: 200} = Erqwest.delete!(c, Server.url(s))
      assert [%{method: "GET"}, %{method: "DELETE"}] = Server.requests(s)
    end

    test "bang variants raise Erqwest.Error", %{client: c} do
      url = "http://127.0.0.1:#{Server.closed_port()}/"
      assert_raise Error, ~r/^connect: /, fn -> Erqwest.get!(c, url) end
      assert_raise Error, ~r/^connect: /, fn -> Erqwest.post!(c, url, body: "x") end
    end
  end

  describe "option validation" do
    test "an unknown request option names the key and the accepted ones", %{client: c} do
      error =
        assert_raise ArgumentError, fn ->
          Erqwest.get(c, "http://127.0.0.1:1/", bodyy: "x")
        end

      assert error.message ==
               "unknown request option :bodyy; the accepted options are: :headers, :body, " <>
                 ":response_body, :timeout, :retry, :hedge, :timings, :queue_timeout, :max_body, " <>
                 ":params, :json, :form, :multipart, :auth, :decode_body, " <>
                 ":chunk_size, :chunk_period"
    end

    test "request/2 also accepts :method and :url", %{client: c} do
      error = assert_raise ArgumentError, fn -> Erqwest.request(c, %{url: "x", verb: :get}) end
      assert error.message =~ "unknown request option :verb"
      assert error.message =~ ":method, :url, :headers"
    end

    test "method functions do not take :method or :url", %{client: c} do
      assert_raise ArgumentError, ~r/unknown request option :method/, fn ->
        Erqwest.get(c, "http://127.0.0.1:1/", method: :post)
      end
    end

    test "a bad value names the key and what was expected", %{client: c} do
      assert_raise ArgumentError,
                   "invalid value for request option :timeout: -1 " <>
                     "(expected a non-negative integer of milliseconds or :infinity)",
                   fn -> Erqwest.get(c, "http://127.0.0.1:1/", timeout: -1) end

      assert_raise ArgumentError, ~r/invalid value for request option :method: :fetch/, fn ->
        Erqwest.request(c, method: :fetch, url: "http://127.0.0.1:1/")
      end

      assert_raise ArgumentError, ~r/request option :headers: \[{"a", 1}\]/, fn ->
        Erqwest.get(c, "http://127.0.0.1:1/", headers: [{"a", 1}])
      end

      assert_raise ArgumentError, ~r/request option :body: %{a: 1}/, fn ->
        Erqwest.post(c, "http://127.0.0.1:1/", body: %{a: 1})
      end

      assert_raise ArgumentError, ~r/request option :url: 'http/, fn ->
        Erqwest.get(c, ~c"http://127.0.0.1:1/")
      end
    end

    test "a missing URL and a non-keyword list are refused", %{client: c} do
      assert_raise ArgumentError, "missing required request option :url", fn ->
        Erqwest.request(c, method: :get)
      end

      assert_raise ArgumentError, ~r/keyword list or a map with atom keys, got: "url"/, fn ->
        Erqwest.request(c, ["url"])
      end

      assert_raise ArgumentError, ~r/with atom keys, got: {"url", "x"}/, fn ->
        Erqwest.request(c, %{"url" => "x"})
      end
    end

    test "client options are checked the same way" do
      error = assert_raise ArgumentError, fn -> Erqwest.make_client(redirects: 3) end
      assert error.message =~ "unknown client option :redirects; the accepted options are: "
      assert error.message =~ ":follow_redirects, :timeout"

      assert_raise ArgumentError, ~r/client option :gzip: "yes" \(expected a boolean\)/, fn ->
        Erqwest.make_client(%{gzip: "yes"})
      end

      assert_raise ArgumentError, ~r/client option :proxy/, fn ->
        Erqwest.make_client(proxy: [socks: [url: "http://p"]])
      end

      assert_raise ArgumentError, ~r/client option :local_address: {1, 2, 3}/, fn ->
        Erqwest.make_client(local_address: {1, 2, 3})
      end
    end

    test "a client option with unusable content says why" do
      error =
        assert_raise ArgumentError, fn ->
          Erqwest.make_client(identity: {"not a pkcs12", "pw"})
        end

      assert error.message =~ "could not make the client"
    end

    test "all documented client options are accepted" do
      c =
        Erqwest.make_client(
          follow_redirects: 3,
          timeout: :infinity,
          connect_timeout: 1_000,
          read_timeout: 1_000,
          pool_idle_timeout: 1_000,
          pool_max_idle_per_host: 2,
          proxy: [all: %{url: "http://127.0.0.1:3128", basic_auth: {"u", "p"}}],
          https_only: false,
          cookie_store: true,
          gzip: true,
          brotli: true,
          deflate: true,
          zstd: true,
          http1_only: true,
          tcp_nodelay: true,
          tcp_keepalive: 1_000,
          local_address: {127, 0, 0, 1},
          user_agent: "test/1",
          default_headers: %{"x-default" => "1"},
          resolve: %{"example.test" => {{127, 0, 0, 1}, 80}},
          additional_root_certs: [],
          use_built_in_root_certs: true,
          danger_accept_invalid_hostnames: false,
          danger_accept_invalid_certs: false,
          min_tls_version: :"tlsv1.2"
        )

      assert is_reference(c)
    end
  end

  describe "clients" do
    test "make_client/1 options reach the client" do
      s =
        Server.start(fn
          %{path: "/from"} -> {302, [{"location", "/to"}], ""}
          %{path: "/to", headers: h} -> {200, [], :proplists.get_value("user-agent", h)}
        end)

      follows = Erqwest.make_client(user_agent: "ua/1", proxy: :no_proxy)
      stays = Erqwest.make_client(follow_redirects: false, proxy: :no_proxy)

      assert {:ok, %Response{status: 200, body: "ua/1", url: url}} =
               Erqwest.get(follows, Server.url(s, "/from"))

      assert url == Server.url(s, "/to")
      assert {:ok, %Response{status: 302}} = Erqwest.get(stays, Server.url(s, "/from"))
    end

    test "close_client/1 closes once, then raises", %{client: c} do
      assert Erqwest.close_client(c) == :ok
      assert_raise ArgumentError, fn -> Erqwest.close_client(c) end
    end

    test "start_client/2 registers a name that every function takes" do
      s = Server.start(Server.reply(200, "named"))
      name = :"erqwest_test_#{System.unique_integer([:positive])}"
      assert Erqwest.start_client(name, proxy: :no_proxy) == :ok
      assert %Response{body: "named"} = Erqwest.get!(name, Server.url(s))
      # The Erlang API sees the same name.
      assert {:ok, %{status: 200}} = :erqwest.get(name, Server.url(s))
      assert Erqwest.close_client(name) == :ok
      assert Erqwest.stop_client(name) == :ok

      assert_raise ArgumentError, ~r/no erqwest client is registered as :erqwest_test_/, fn ->
        Erqwest.get(name, Server.url(s))
      end
    end

    test "an unknown name is a clear ArgumentError" do
      assert_raise ArgumentError,
                   ~r/no erqwest client is registered as :nobody; start one with Erqwest.start_client/,
                   fn -> Erqwest.get(:nobody, "http://127.0.0.1:1/") end

      assert_raise ArgumentError, ~r/no erqwest client is registered as :nobody/, fn ->
        Erqwest.stop_client(:nobody)
      end
    end
  end

  describe "child_spec/1" do
    test "starts a named client under a supervisor and stops it with the supervisor" do
      s = Server.start(Server.reply(200, "supervised"))
      name = Module.concat(__MODULE__, "HTTP#{System.unique_integer([:positive])}")

      {:ok, sup} =
        Supervisor.start_link([{Erqwest, name: name, proxy: :no_proxy}], strategy: :one_for_one)

      assert [{{Erqwest, ^name}, pid, :worker, _}] = Supervisor.which_children(sup)
      assert Process.whereis(name) == pid
      assert %Response{body: "supervised"} = Erqwest.get!(name, Server.url(s))

      # A second client under the same name does not replace the first.
      assert {:error, {:already_started, ^pid}} = Erqwest.start_link(name: name)

      assert {:error, {{:already_started, ^pid}, _}} =
               Supervisor.start_child(sup, %{Erqwest.child_spec(name: name) | id: :other})

      assert %Response{body: "supervised"} = Erqwest.get!(name, Server.url(s))

      assert :ok = Supervisor.stop(sup)

      assert_raise ArgumentError, ~r/no erqwest client is registered/, fn ->
        Erqwest.get(name, Server.url(s))
      end
    end

    test "a restarted child registers a fresh client" do
      s = Server.start(Server.reply())
      name = :"erqwest_sup_#{System.unique_integer([:positive])}"
      {:ok, sup} = Supervisor.start_link([{Erqwest, name: name}], strategy: :one_for_one)
      old = :erqwest.get_client(name)
      ref = Process.monitor(Process.whereis(name))
      Process.exit(Process.whereis(name), :kill)
      assert_receive {:DOWN, ^ref, _, _, :killed}
      # The supervisor restarts it; the new process registers a new client.
      wait_until(fn -> :erqwest.get_client(name) != old end)
      assert is_pid(Process.whereis(name))
      assert %Response{status: 200} = Erqwest.get!(name, Server.url(s))
      Supervisor.stop(sup)
    end

    test "start_link/1 starts a linked named client" do
      name = :"erqwest_link_#{System.unique_integer([:positive])}"
      {:ok, pid} = Erqwest.start_link(name: name)
      assert is_reference(:erqwest.get_client(name))
      GenServer.stop(pid)
      assert_raise ArgumentError, fn -> :erqwest.get_client(name) end
    end

    test "checks the name and the options up front" do
      assert_raise ArgumentError, ~r/needs a :name that is an atom, got: "x"/, fn ->
        Erqwest.child_spec(name: "x")
      end

      assert_raise ArgumentError, ~r/needs a :name that is an atom, got: nil/, fn ->
        Erqwest.child_spec(timeout: 5)
      end

      assert_raise ArgumentError, ~r/unknown client option :tiemout/, fn ->
        Erqwest.child_spec(name: MyHTTP, tiemout: 5)
      end
    end
  end

  describe "Erqwest.Error" do
    test "is an exception with a code and a reason" do
      e = Error.new(%{code: :body, reason: "cut off"})
      assert %Error{code: :body, reason: "cut off"} = e
      assert Exception.message(e) == "body: cut off"
      assert_raise Error, "body: cut off", fn -> raise e end
    end
  end

  describe "Erqwest.Upload without a server" do
    test "cancel of an upload answered at once does nothing" do
      assert Upload.cancel(%Upload{reply: {:ok, %Response{status: 200}}}) == :ok
    end
  end

  defp wait_until(fun, tries \\ 100) do
    cond do
      fun.() -> :ok
      tries == 0 -> flunk("condition never became true")
      true -> Process.sleep(10) && wait_until(fun, tries - 1)
    end
  end
end
