defmodule ErqwestTest do
  use ExUnit.Case, async: true

  setup do
    {:ok, listen} = :gen_tcp.listen(0, [:binary, active: false, ip: {127, 0, 0, 1}])
    {:ok, port} = :inet.port(listen)

    server =
      spawn_link(fn ->
        {:ok, sock} = :gen_tcp.accept(listen)
        {:ok, data} = :gen_tcp.recv(sock, 0)
        :gen_tcp.send(sock, "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
        send(Process.get(:parent) || self(), {:request, data})
        Process.sleep(100)
      end)

    %{port: port, server: server}
  end

  test "GET against a local server", %{port: port} do
    client = :erqwest.make_client()
    assert {:ok, %{status: 200, body: "ok"}} = Erqwest.get(client, "http://127.0.0.1:#{port}/x")
  end
end
