defmodule ErqwestStubTest do
  use ExUnit.Case, async: true

  alias Erqwest.{Error, Response}
  alias Erqwest.Test.Server

  import Erqwest.Test, only: [verify_on_exit!: 1]

  doctest Erqwest.Test

  test "a stub answers the Elixir API and sees the request as it would be sent" do
    test = self()

    Erqwest.Test.stub(:stub_basic, fn req ->
      send(test, {:seen, req})
      %Response{status: 201, headers: [{"x-stub", "1"}], body: "made"}
    end)

    assert {:ok, %Response{status: 201, headers: [{"x-stub", "1"}], body: "made"}} =
             Erqwest.post(:stub_basic, "https://api.test/items",
               json: %{"a" => 1},
               params: [page: 2]
             )

    assert_received {:seen, req}

    assert %{
             method: :post,
             url: "https://api.test/items?page=2",
             headers: [{"content-type", "application/json"}],
             body: ~s({"a":1})
           } = req
  end

  test "errors come back as Erqwest.Error, and bang variants raise them" do
    Erqwest.Test.stub(:stub_errors, fn
      %{url: "https://api.test/slow"} -> {:error, :timeout}
      _ -> %Error{code: :connect, reason: "refused"}
    end)

    assert {:error, %Error{code: :timeout, reason: "timeout"}} =
             Erqwest.get(:stub_errors, "https://api.test/slow")

    assert_raise Error, "connect: refused", fn ->
      Erqwest.get!(:stub_errors, "https://api.test/")
    end
  end

  test "Erqwest.Async gets the usual message" do
    Erqwest.Test.stub(:stub_async, fn _ -> %Response{status: 204} end)
    ref = make_ref()
    _handle = Erqwest.Async.request(:stub_async, self(), ref, url: "https://api.test/")
    assert {:reply, %Response{status: 204, body: ""}} = Erqwest.Async.await(ref, 1_000)
  end

  test "a stub is seen from a Task the test starts" do
    Erqwest.Test.stub(:stub_task, fn _ -> %Response{status: 200, body: "from the test"} end)

    task = Task.async(fn -> Erqwest.get!(:stub_task, "https://api.test/").body end)
    assert Task.await(task) == "from the test"

    # and from a Task started by that Task
    nested =
      Task.async(fn ->
        Task.async(fn -> Erqwest.get!(:stub_task, "https://api.test/") end) |> Task.await()
      end)

    assert %Response{body: "from the test"} = Task.await(nested)
  end

  test "a process the test did not start fails with a clear message, unless allowed" do
    Erqwest.Test.stub(:stub_owned, fn _ -> %Response{status: 200} end)
    test = self()

    pid =
      spawn(fn ->
        result =
          try do
            Erqwest.get(:stub_owned, "https://api.test/")
          rescue
            e in RuntimeError -> {:raised, Exception.message(e)}
          end

        send(test, {:result, result})

        receive do:
                  (:again -> send(test, {:again, Erqwest.get(:stub_owned, "https://api.test/")}))
      end)

    assert_receive {:result, {:raised, message}}, 2_000

    assert message =~
             "client stub_owned is stubbed, but not for process #{inspect(pid) |> String.trim_leading("#PID")}"

    assert message =~ "allow/3"

    Erqwest.Test.allow(:stub_owned, self(), pid)
    send(pid, :again)
    assert_receive {:again, {:ok, %Response{status: 200}}}, 2_000
  end

  test "expect/3 counts calls and verify!/0 says which fell short" do
    Erqwest.Test.expect(:stub_expect, 2, fn _ -> %Response{status: 200} end)
    Erqwest.Test.expect(:stub_expect, fn _ -> %Response{status: 202} end)

    assert %Response{status: 200} = Erqwest.get!(:stub_expect, "https://api.test/")

    error = assert_raise RuntimeError, fn -> Erqwest.Test.verify!() end
    assert error.message =~ "stub_expect: expected 2 call(s), got 1"
    assert error.message =~ "stub_expect: expected 1 call(s), got 0"

    assert %Response{status: 200} = Erqwest.get!(:stub_expect, "https://api.test/")
    assert %Response{status: 202} = Erqwest.get!(:stub_expect, "https://api.test/")
    assert Erqwest.Test.verify!() == :ok

    # One call too many: an error, not a real request.
    error = assert_raise RuntimeError, fn -> Erqwest.get(:stub_expect, "https://api.test/") end
    assert error.message =~ "unexpected request on client stub_expect: 3 call(s) were expected"
  end

  test "verify!/1 checks a test process that is gone, once" do
    test = self()

    {pid, mon} =
      spawn_monitor(fn ->
        Erqwest.Test.expect(:stub_gone, 1, fn _ -> %Response{status: 200} end)
        :ok = :erqwest_test.keep_until_verified(self())
        send(test, :set)
      end)

    assert_receive :set
    assert_receive {:DOWN, ^mon, :process, ^pid, _}

    assert_raise RuntimeError, ~r/expected 1 call\(s\), got 0/, fn ->
      Erqwest.Test.verify!(pid)
    end

    # Verified once, forgotten.
    assert Erqwest.Test.verify!(pid) == :ok
  end

  describe "verify_on_exit!" do
    setup :verify_on_exit!

    test "passes when the expectations were met" do
      Erqwest.Test.expect(:stub_on_exit, 1, fn _ -> %Response{status: 200} end)
      assert %Response{status: 200} = Erqwest.get!(:stub_on_exit, "https://api.test/")
    end
  end

  test "a streamed response body is read one list element per chunk" do
    Erqwest.Test.stub(:stub_stream, fn _ -> %Response{status: 200, body: ["a", "bc", "d"]} end)

    assert {:ok, %Response{status: 200, body: body}} =
             Erqwest.stream(:stub_stream, "https://api.test/")

    assert Enum.to_list(body) == ["a", "bc", "d"]

    # Stopping early cancels the stub's body like a real one.
    {:ok, %Response{body: body}} = Erqwest.stream(:stub_stream, "https://api.test/")
    assert Enum.take(body, 1) == ["a"]
    refute_received {:erqwest_response, _, _, _}
  end

  test "an Enumerable request body reaches the stub whole" do
    Erqwest.Test.stub(:stub_upload, fn %{body: body} ->
      %Response{status: 200, body: byte_size(body)}
    end)

    chunks = Stream.map(1..100, fn i -> "chunk #{i};" end)
    expected = chunks |> Enum.join() |> byte_size()

    assert %Response{body: ^expected} =
             Erqwest.put!(:stub_upload, "https://api.test/up", body: chunks)
  end

  test "bad arguments raise ArgumentError" do
    assert_raise ArgumentError, ~r/a function of one argument/, fn ->
      Erqwest.Test.stub(:c, :nope)
    end

    assert_raise ArgumentError, ~r/a positive count/, fn ->
      Erqwest.Test.expect(:c, 0, fn _ -> nil end)
    end

    assert_raise ArgumentError, fn -> Erqwest.Test.allow(:c, self(), :not_a_pid) end
  end

  test "a client that is not stubbed is real" do
    server = Server.start(Server.reply(200, "real"))
    client = Erqwest.make_client()
    assert %Response{body: "real"} = Erqwest.get!(client, Server.url(server))
  end
end

# Two owners that stub the same client name at the same time, each seeing
# only its own answers. They are two processes of one test (spawned, so
# neither is the other's caller), which meet at a barrier so that they do
# overlap: two async modules were not always run at the same time.
defmodule ErqwestStubIsolationTest do
  use ExUnit.Case, async: true

  defp owner(test, answer) do
    spawn(fn ->
      Erqwest.Test.stub(:stub_isolated, fn _ -> %Erqwest.Response{status: 200, body: answer} end)
      send(test, {:stubbed, self()})
      receive do: (:go -> :ok)

      bodies =
        1..200
        |> Task.async_stream(fn _ -> Erqwest.get!(:stub_isolated, "https://api.test/").body end)
        |> Enum.map(fn {:ok, body} -> body end)

      send(test, {:bodies, self(), bodies})
      # Both stay until both are done, so their requests overlap.
      receive do: (:stop -> :ok)
    end)
  end

  test "two owners stubbing the same client each see only their own stub" do
    a = owner(self(), "a")
    b = owner(self(), "b")
    assert_receive {:stubbed, ^a}, 5_000
    assert_receive {:stubbed, ^b}, 5_000
    send(a, :go)
    send(b, :go)
    assert_receive {:bodies, ^a, bodies_a}, 10_000
    assert_receive {:bodies, ^b, bodies_b}, 10_000
    send(a, :stop)
    send(b, :stop)
    assert Enum.uniq(bodies_a) == ["a"]
    assert Enum.uniq(bodies_b) == ["b"]
  end
end
