defmodule ErqwestEngineTest do
  # Which engine answers (issue 31). Not async: the check counts the
  # runtime's live tasks, which other tests running at once would add to.
  use ExUnit.Case, async: false

  alias Erqwest.Response
  alias Erqwest.Test.Server

  # Runs `call` against a server that holds its answer (`headers`, `body`)
  # until the check is done: while it is held, no runtime task or handle
  # exists, i.e. the request is the caller's NIF calls.
  defp on_the_scheduler(headers, body, call) do
    me = self()

    hold = fn _req ->
      {:custom,
       fn sock, req ->
         send(me, {:held, self()})
         receive do: (:go -> :ok)
         :erqwest_test_server.send_response({:gen_tcp, sock}, {200, headers, body}, req)
         :keep
       end}
    end

    s = Server.start(hold)
    task = Task.async(fn -> call.(Server.url(s)) end)
    assert_receive {:held, conn}, 5_000
    assert :erqwest_nif.live_resources() == {0, 0}
    send(conn, :go)
    Task.await(task)
  end

  describe "Elixir clients with their defaults (retry: true, decode_body: true)" do
    test "a client made with the defaults answers on the scheduler engine" do
      c = Erqwest.make_client()

      assert {:ok, %Response{status: 200, body: "ok", attempts: 1}} =
               on_the_scheduler([], "ok", &Erqwest.get(c, &1))
    end

    test "a JSON GET decoded with the defaults stays on the scheduler engine" do
      c = Erqwest.make_client()
      json = [{"content-type", "application/json"}]

      assert {:ok, %Response{body: %{"a" => [1, 2]}}} =
               on_the_scheduler(json, ~s({"a":[1,2]}), &Erqwest.get(c, &1, params: [q: 1]))
    end
  end

  describe "Elixir clients with limits (max_in_flight)" do
    test "answer on the scheduler engine, and a queued caller waits without a runtime task" do
      c = Erqwest.make_client(max_in_flight: 1)

      assert {:ok, %Response{status: 200, body: "ok"}} =
               on_the_scheduler([], "ok", &Erqwest.get(c, &1))

      me = self()

      hold = fn _req ->
        {:custom,
         fn sock, req ->
           send(me, {:held, req.path, self()})
           receive do: (:go -> :ok)
           :erqwest_test_server.send_response({:gen_tcp, sock}, {200, [], req.path}, req)
           :keep
         end}
      end

      s = Server.start(hold)
      first = Task.async(fn -> Erqwest.get(c, Server.url(s, "/first")) end)
      assert_receive {:held, "/first", conn}, 5_000
      queued = Task.async(fn -> Erqwest.get(c, Server.url(s, "/queued")) end)
      assert :ok = until(fn -> Erqwest.client_info(c).queued == 1 end)
      # Queued: its caller is in `receive`, no runtime task waits for it.
      assert :erqwest_nif.live_resources() == {0, 0}
      send(conn, :go)
      assert {:ok, %Response{body: "/first"}} = Task.await(first)
      assert_receive {:held, "/queued", conn}, 5_000
      assert :erqwest_nif.live_resources() == {0, 0}
      send(conn, :go)
      assert {:ok, %Response{body: "/queued"}} = Task.await(queued)
      assert Erqwest.client_info(c) == %{in_flight: 0, queued: 0, hosts: %{}}
    end
  end

  defp until(f, tries \\ 200) do
    cond do
      f.() -> :ok
      tries == 0 -> :timeout
      true ->
        Process.sleep(10)
        until(f, tries - 1)
    end
  end
end
