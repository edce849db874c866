defmodule ErqwestMaxBodyTest do
  # `max_body` from Elixir: the option's checks, its error, and the
  # request option over the client's (the engines' behaviour is
  # test/erqwest_max_body_SUITE.erl's).
  use ExUnit.Case, async: true

  alias Erqwest.Error
  alias Erqwest.Test.Server

  test "a body over max_body is a :body_too_large error with its limit" do
    s = Server.start(fn _ -> {200, [], String.duplicate("a", 2_000)} end)
    c = Erqwest.make_client(proxy: :no_proxy, max_body: 1_999, retry: false)

    assert {:error, %Error{code: :body_too_large, details: %{limit: 1_999}} = e} =
             Erqwest.get(c, Server.url(s, "/"))

    assert Exception.message(e) =~ "1999 bytes"
    assert {:ok, %{body: body}} = Erqwest.get(c, Server.url(s, "/"), max_body: :infinity)
    assert byte_size(body) == 2_000

    assert_raise Error, ~r/body_too_large/, fn ->
      Erqwest.get!(c, Server.url(s, "/"), max_body: 10)
    end
  end

  test "max_body takes a non-negative integer or :infinity" do
    assert_raise ArgumentError,
                 ~r/client option :max_body: -1 \(expected a non-negative integer of bytes or :infinity\)/,
                 fn ->
                   Erqwest.make_client(max_body: -1)
                 end

    assert_raise ArgumentError, ~r/request option :max_body/, fn ->
      Erqwest.get(:default, "http://127.0.0.1:1/", max_body: "big")
    end
  end
end
