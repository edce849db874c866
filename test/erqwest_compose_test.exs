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

      assert {:error, %Erqwest.Error{code: :decode, reason: "unexpected character '<' at byte 0"}} =
               Erqwest.get(client, Server.url(s))

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
  end
end
