defmodule Erqwest.AsyncTest do
  use ExUnit.Case, async: true

  alias Erqwest.{Async, Error, Response}
  alias Erqwest.Test.Server

  setup do
    %{client: Erqwest.make_client(proxy: :no_proxy)}
  end

  test "a complete request answers with one reply message", %{client: c} do
    s = Server.start(Server.reply(200, "async"))
    ref = make_ref()
    _handle = Async.request(c, self(), ref, url: Server.url(s), headers: [{"x-a", "1"}])
    assert_receive {:erqwest_response, ^ref, :reply, %{status: 200, body: "async"} = raw}, 5_000
    assert %Response{status: 200, body: "async", version: :"HTTP/1.1"} = Response.new(raw)
    refute_receive {:erqwest_response, ^ref, _, _}, 50
    assert [%{headers: headers}] = Server.requests(s)
    assert {"x-a", "1"} in headers
  end

  test "messages go to the given process with any term as the tag", %{client: c} do
    s = Server.start(Server.reply())
    test = self()

    receiver =
      spawn_link(fn ->
        receive do
          msg -> send(test, {:got, msg})
        end
      end)

    Async.request(c, receiver, {:my, :tag}, url: Server.url(s))
    assert_receive {:got, {:erqwest_response, {:my, :tag}, :reply, %{status: 200}}}, 5_000
  end

  test "await/2 converts the reply and the error", %{client: c} do
    s = Server.start(Server.reply(201, "made"))
    ref = make_ref()
    Async.request(c, self(), ref, method: :post, url: Server.url(s), body: "x")
    assert {:reply, %Response{status: 201, body: "made"}} = Async.await(ref)

    ref = make_ref()
    Async.request(c, self(), ref, url: "http://127.0.0.1:#{Server.closed_port()}/")
    assert {:error, %Error{code: :connect}} = Async.await(ref)

    ref = make_ref()
    Async.request(c, self(), ref, url: "no url")
    assert {:error, %Error{code: :url}} = Async.await(ref)
  end

  test "await/2 gives :timeout when nothing comes in time", %{client: c} do
    s = Server.start(fn _ -> {:custom, fn _sock, _ -> Process.sleep(1_000) && :close end} end)
    ref = make_ref()
    handle = Async.request(c, self(), ref, url: Server.url(s))
    assert Async.await(ref, 20) == :timeout
    # The request is still alive: cancelling it still ends it with one message.
    assert Async.cancel(handle) == :ok
    assert {:error, %Error{code: :cancelled}} = Async.await(ref)
    assert Async.cancel(handle) == :ok
    assert Async.await(ref, 50) == :timeout
  end

  test "a streamed upload: next, write, finish, reply", %{client: c} do
    s = Server.start(fn req -> {200, [], "got " <> req.body} end)
    ref = make_ref()
    handle = Async.request(c, self(), ref, method: :put, url: Server.url(s), body: :stream)
    assert Async.await(ref) == :next
    assert Async.write(handle, "one ") == :ok
    assert Async.await(ref) == :next
    assert Async.write(handle, ["two", ?!]) == :ok
    assert Async.await(ref) == :next
    assert Async.finish(handle) == :ok
    assert {:reply, %Response{status: 200, body: "got one two!"}} = Async.await(ref)
    assert [%{method: "PUT", complete: true}] = Server.requests(s)
  end

  test "write/2 and a second finish/1 after finish/1 raise ArgumentError", %{client: c} do
    s = Server.start(fn _ -> {200, [], "done"} end)
    ref = make_ref()
    handle = Async.request(c, self(), ref, method: :put, url: Server.url(s), body: :stream)
    assert Async.await(ref) == :next
    assert Async.finish(handle) == :ok
    assert {:reply, %Response{status: 200, body: "done"}} = Async.await(ref)
    assert_raise ArgumentError, fn -> Async.write(handle, "late") end
    assert_raise ArgumentError, fn -> Async.finish(handle) end
    assert Async.await(ref, 100) == :timeout
  end

  test "a streamed response: reply without body, then chunk and fin", %{client: c} do
    data = :binary.copy("d", 300_000)
    s = Server.start(Server.reply(200, data))
    ref = make_ref()
    handle = Async.request(c, self(), ref, url: Server.url(s), response_body: :stream)
    assert {:reply, %Response{status: 200, body: nil}} = Async.await(ref)
    assert read_all(handle, ref, []) == data
  end

  test "cancel at the read stage ends with a cancelled error", %{client: c} do
    s = Server.start(Server.endless_handler(self()))
    ref = make_ref()
    handle = Async.request(c, self(), ref, url: Server.url(s), response_body: :stream)
    assert {:reply, %Response{status: 200}} = Async.await(ref)
    :ok = Async.read(handle, chunk_size: 1)
    assert {:chunk, _} = Async.await(ref)
    :ok = Async.cancel(handle)
    assert {:error, %Error{code: :cancelled}} = Async.await(ref)
    assert_receive {:client_gone, _}, 5_000
  end

  test "options are checked", %{client: c} do
    assert_raise ArgumentError, ~r/takes iodata or :stream as :body, got: #Stream/, fn ->
      Async.request(c, self(), make_ref(), url: "http://x/", body: Stream.map([1], & &1))
    end

    assert_raise ArgumentError, ~r/options of Erqwest.Async.read/, fn ->
      Async.request(c, self(), make_ref(), url: "http://x/", chunk_size: 3)
    end

    assert_raise ArgumentError, ~r/unknown request option :bogus/, fn ->
      Async.request(c, self(), make_ref(), url: "http://x/", bogus: 3)
    end

    s = Server.start(Server.reply())
    ref = make_ref()
    handle = Async.request(c, self(), ref, url: Server.url(s), response_body: :stream)
    assert {:reply, _} = Async.await(ref)

    assert_raise ArgumentError, ~r/bad read option {:length, 3}/, fn ->
      Async.read(handle, length: 3)
    end

    assert_raise ArgumentError, ~r/bad read option {:chunk_size, -1}/, fn ->
      Async.read(handle, chunk_size: -1)
    end

    assert Async.read(handle, %{chunk_size: 10, chunk_period: :infinity}) == :ok
    assert {:fin, "ok"} = Async.await(ref)
  end

  defp read_all(handle, ref, acc) do
    :ok = Async.read(handle, chunk_size: 65_536)

    case Async.await(ref) do
      {:chunk, data} -> read_all(handle, ref, [acc, data])
      {:fin, data} -> IO.iodata_to_binary([acc, data])
    end
  end
end
