defmodule Erqwest.DocTest do
  # Doc examples use the :default client (the one `make shell` starts) and
  # http://example.com/. Here :default resolves example.com to a local
  # server, so the examples run offline and unchanged. Not async: :default
  # is a global name.
  use ExUnit.Case, async: false

  alias Erqwest.Test.Server

  setup_all do
    {:ok, server} =
      :erqwest_test_server.start(fn _req ->
        {200, [{"content-type", "text/html"}], "<html>example</html>"}
      end)

    port = :erqwest_test_server.port(server)

    :ok =
      Erqwest.start_client(:default,
        resolve: [{"example.com", {{127, 0, 0, 1}, port}}],
        proxy: :no_proxy
      )

    # The examples without a client use the application's default one:
    # it gets the same resolve entry, and its own options back afterwards.
    :ok =
      :erqwest.start_client(:erqwest_default, %{
        resolve: [{"example.com", {{127, 0, 0, 1}, port}}],
        proxy: :no_proxy
      })

    on_exit(fn ->
      :ok = :erqwest.start_client(:erqwest_default, :erqwest_default.options())
      Erqwest.stop_client(:default)
      :erqwest_test_server.stop(server)
    end)

    %{server: server}
  end

  doctest Erqwest
  doctest Erqwest.Response
  doctest Erqwest.Error
  doctest Erqwest.Async
  doctest Erqwest.Pages
  doctest Erqwest.JSON
  doctest Erqwest.Events.Event

  test "the doc examples reached the local server, not the network", %{server: server} do
    {:ok, %Erqwest.Response{status: 200, body: "<html>example</html>"}} =
      Erqwest.get(:default, "http://example.com/")

    assert [%{headers: headers} | _] = Server.requests(server)
    assert {"host", "example.com"} in headers
  end
end
