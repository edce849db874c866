defmodule ErqwestEngineTest do
  # Which engine answers (issue 31). Not async: the check counts the
  # runtime's live tasks, which other tests running at once would add to.
  use ExUnit.Case, async: false

  alias Erqwest.Response
  alias Erqwest.Test.Server

  describe "Elixir clients with their defaults (retry: true, decode_body: true)" do
    test "a client made with the defaults answers on the scheduler engine" do
      # While the server holds the answer, no runtime task or handle exists.
      me = self()

      hold = fn _req ->
        {:custom,
         fn sock, req ->
           send(me, {:held, self()})
           receive do: (:go -> :ok)
           :erqwest_test_server.send_response({:gen_tcp, sock}, {200, [], "ok"}, req)
           :keep
         end}
      end

      s = Server.start(hold)
      c = Erqwest.make_client()
      task = Task.async(fn -> Erqwest.get(c, Server.url(s)) end)
      assert_receive {:held, conn}, 5_000
      assert :erqwest_nif.live_resources() == {0, 0}
      send(conn, :go)
      assert {:ok, %Response{status: 200, body: "ok", attempts: 1}} = Task.await(task)
    end

    test "a JSON GET decoded with the defaults stays on the scheduler engine" do
      me = self()

      hold = fn _req ->
        {:custom,
         fn sock, req ->
           send(me, {:held, self()})
           receive do: (:go -> :ok)

           :erqwest_test_server.send_response(
             {:gen_tcp, sock},
             {200, [{"content-type", "application/json"}], ~s({"a":[1,2]})},
             req
           )

           :keep
         end}
      end

      s = Server.start(hold)
      c = Erqwest.make_client()
      task = Task.async(fn -> Erqwest.get(c, Server.url(s), params: [q: 1]) end)
      assert_receive {:held, conn}, 5_000
      assert :erqwest_nif.live_resources() == {0, 0}
      send(conn, :go)
      assert {:ok, %Response{body: %{"a" => [1, 2]}}} = Task.await(task)
    end
  end
end
