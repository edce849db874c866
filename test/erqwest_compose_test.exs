defmodule Erqwest.ComposeTest do
  # The Elixir spelling of the request-composing options, checked against
  # the in-BEAM test server.
  use ExUnit.Case, async: true

  alias Erqwest.Test.Server

  defp json_server(body, content_type \\ "application/json") do
    Server.start(Server.reply(200, body, [{"content-type", content_type}]))
  end

  describe "decode_body" do
    test "clients made from Elixir decode JSON responses, with nil for null" do
      s = json_server(~s({"a": [1, null, "x"]}))
      client = Erqwest.make_client(proxy: :no_proxy)

      assert {:ok, %Erqwest.Response{body: %{"a" => [1, nil, "x"]}}} =
               Erqwest.get(client, Server.url(s))
    end

    test "other content types stay binaries unless :json is asked for" do
      s = json_server("[1]", "text/plain")
      client = Erqwest.make_client(proxy: :no_proxy)
      assert {:ok, %{body: "[1]"}} = Erqwest.get(client, Server.url(s))
      assert {:ok, %{body: [1]}} = Erqwest.get(client, Server.url(s), decode_body: :json)
    end

    test "false turns it off, per request or per client" do
      s = json_server("[1]")
      client = Erqwest.make_client(proxy: :no_proxy)
      assert {:ok, %{body: "[1]"}} = Erqwest.get(client, Server.url(s), decode_body: false)
      off = Erqwest.make_client(proxy: :no_proxy, decode_body: false)
      assert {:ok, %{body: "[1]"}} = Erqwest.get(off, Server.url(s))
      assert {:ok, %{body: [1]}} = Erqwest.get(off, Server.url(s), decode_body: true)
    end

    test "a body that is not JSON is a :decode error; the bang variant raises it" do
      s = json_server("<html>")
      client = Erqwest.make_client(proxy: :no_proxy)

      assert {:error,
              %Erqwest.Error{
                code: :decode,
                reason: "unexpected character '<' at byte 0",
                details: %{body: "<html>", status: 200}
              }} = Erqwest.get(client, Server.url(s))

      assert_raise Erqwest.Error, ~r/decode: unexpected character/, fn ->
        Erqwest.get!(client, Server.url(s))
      end
    end

    test "the async API gets the decoded term in its message" do
      s = json_server(~s({"ok": true}))
      client = Erqwest.make_client(proxy: :no_proxy)
      ref = make_ref()
      Erqwest.Async.request(client, self(), ref, url: Server.url(s))
      assert_receive {:erqwest_response, ^ref, :reply, %{body: %{"ok" => true}}}, 5000
    end

    test "bad values name the option" do
      assert_raise ArgumentError, ~r/invalid value for request option :decode_body: :yes/, fn ->
        Erqwest.get(:no_such_client, "http://127.0.0.1:1/", decode_body: :yes)
      end

      assert_raise ArgumentError, ~r/client option :decode_body/, fn ->
        Erqwest.make_client(decode_body: "json")
      end
    end
  end

  describe "Erqwest.JSON" do
    test "round trip, errors and bang variants" do
      assert {:ok, ~s({"a":[1,2.5,null]})} = Erqwest.JSON.encode(%{a: [1, 2.5, nil]})
      assert Erqwest.JSON.decode!(~s({"a":[1,2.5,null]})) == %{"a" => [1, 2.5, nil]}
      assert {:error, %Erqwest.JSON.DecodeError{offset: 1}} = Erqwest.JSON.decode("[")

      assert_raise Erqwest.JSON.DecodeError, "unexpected end of input at byte 1", fn ->
        Erqwest.JSON.decode!("[")
      end

      assert_raise Erqwest.JSON.EncodeError, ~r/at \/a\/0/, fn ->
        Erqwest.JSON.encode!(%{a: [self()]})
      end

      assert_raise ArgumentError, fn -> Erqwest.JSON.decode(~c"[]") end
    end

    # Issue 28, cases 4 and 8.
    test "atom keys beyond Latin-1, and repeated keys over 32 members" do
      # Atoms made from strings: as literals the compiler warns that α
      # looks like a.
      [alpha, nihon] = Enum.map(["α", "日本"], &String.to_atom/1)
      assert {:ok, ~s({"α":{"日本":1}})} = Erqwest.JSON.encode(%{alpha => %{nihon => 1}})
      json = "{" <> Enum.map_join(1..41, ",", &~s("k":#{&1})) <> "}"
      assert Erqwest.JSON.decode!(json) === %{"k" => 41}

      assert :erts_debug.flat_size(Erqwest.JSON.decode!(json)) ==
               :erts_debug.flat_size(%{"k" => 41})
    end
  end
end

defmodule Erqwest.ComposeWireTest do
  # params:, json:, form:, multipart:, auth: and base_url: as the server
  # sees them.
  use ExUnit.Case, async: true

  alias Erqwest.Test.Server

  setup do
    server = Server.start(Server.reply(200, "ok"))
    %{server: server, client: Erqwest.make_client(proxy: :no_proxy)}
  end

  defp only_request(server) do
    [req] = Server.requests(server)
    req
  end

  defp header(req, name), do: for({^name, v} <- req.headers, do: v)

  test "params: a keyword list, after the URL's own query", %{server: s, client: c} do
    {:ok, _} = Erqwest.get(c, Server.url(s, "/p?a=1"), params: [q: "x y", n: 2, f: 1.5, q: "é"])
    assert only_request(s).path == "/p?a=1&q=x+y&n=2&f=1.5&q=%C3%A9"
  end

  test "params: atoms beyond Latin-1 are UTF-8 (issue 28, case 8)", %{
    server: s,
    client: c
  } do
    params = [{String.to_atom("α"), String.to_atom("β")}]
    {:ok, _} = Erqwest.get(c, Server.url(s, "/p"), params: params)
    assert only_request(s).path == "/p?%CE%B1=%CE%B2"
  end

  test "json: the body and its content type", %{server: s, client: c} do
    {:ok, _} = Erqwest.post(c, Server.url(s), json: %{name: "x", tags: [1, nil, true]})
    req = only_request(s)
    assert header(req, "content-type") == ["application/json"]
    assert Erqwest.JSON.decode!(req.body) == %{"name" => "x", "tags" => [1, nil, true]}
  end

  test "json: a term without a JSON form names its path", %{client: c} do
    error =
      assert_raise ArgumentError, fn ->
        Erqwest.post(c, "http://127.0.0.1:1/", json: %{users: [%{id: {1}}]})
      end

    assert Exception.message(error) =~ "json: cannot encode a tuple as JSON at /users/0/id"
  end

  test "form: a urlencoded body", %{server: s, client: c} do
    {:ok, _} = Erqwest.post(c, Server.url(s), form: %{a: "1 2", b: :c})
    req = only_request(s)
    assert req.body == "a=1+2&b=c"
    assert header(req, "content-type") == ["application/x-www-form-urlencoded"]
  end

  test "multipart: data and file parts", %{server: s, client: c} do
    path =
      Path.join(System.tmp_dir!(), "erqwest-compose-#{System.unique_integer([:positive])}.txt")

    File.write!(path, "file bytes")
    on_exit(fn -> File.rm(path) end)

    {:ok, _} =
      Erqwest.post(c, Server.url(s),
        multipart: [{"a", "1"}, %{name: "f", file: path, content_type: "text/plain"}]
      )

    req = only_request(s)
    ["multipart/form-data; boundary=" <> b] = header(req, "content-type")

    assert req.body ==
             "--#{b}\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n" <>
               "--#{b}\r\nContent-Disposition: form-data; name=\"f\"; filename=\"#{Path.basename(path)}\"\r\n" <>
               "Content-Type: text/plain\r\n\r\nfile bytes\r\n--#{b}--\r\n"
  end

  test "multipart: a missing file is a :request error", %{server: s, client: c} do
    assert {:error, %Erqwest.Error{code: :request, reason: reason}} =
             Erqwest.post(c, Server.url(s), multipart: [%{name: "f", file: "/nonexistent/x"}])

    assert reason =~ "cannot read file /nonexistent/x"
  end

  test "auth: per request and as a client default", %{server: s} do
    c = Erqwest.make_client(proxy: :no_proxy, auth: {:bearer, "client"})
    {:ok, _} = Erqwest.get(c, Server.url(s))
    {:ok, _} = Erqwest.get(c, Server.url(s), auth: {:basic, "u", "p"})
    [r1, r2] = Server.requests(s)
    assert header(r1, "authorization") == ["Bearer client"]
    assert header(r2, "authorization") == ["Basic dTpw"]
  end

  test "base_url: paths are joined to it", %{server: s} do
    c = Erqwest.make_client(proxy: :no_proxy, base_url: URI.parse(Server.url(s, "/api/v1")))
    {:ok, _} = Erqwest.get(c, "/users", params: [page: 2])
    assert only_request(s).path == "/api/v1/users?page=2"
  end

  test "shapes are checked with the option's name", %{client: c} do
    assert_raise ArgumentError, ~r/request option :auth/, fn ->
      Erqwest.get(c, "http://127.0.0.1:1/", auth: {:digest, "x"})
    end

    assert_raise ArgumentError, ~r/request option :params/, fn ->
      Erqwest.get(c, "http://127.0.0.1:1/", params: "a=1")
    end

    assert_raise ArgumentError, ~r/client option :base_url/, fn ->
      Erqwest.make_client(base_url: 1)
    end
  end
end
