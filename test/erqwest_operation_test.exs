defmodule Erqwest.OperationTest do
  # The Elixir layer only: the behaviour itself is covered by
  # erqwest_operation_SUITE against the same operation server.
  use ExUnit.Case, async: true

  alias Erqwest.Operation

  # Loaded at run time (below), so called through apply/3.
  defp server(fun, args), do: apply(:erqwest_operation_server, fun, args)

  setup_all do
    # mix compiles src/ only; the test servers are Erlang modules under test/.
    for m <- ["erqwest_test_server", "erqwest_operation_server"] do
      file = Path.expand("#{m}.erl", __DIR__)
      {:ok, mod, bin} = :compile.file(String.to_charlist(file), [:binary])
      {:module, ^mod} = :code.load_binary(mod, String.to_charlist(file), bin)
    end

    {:ok, server} = server(:start, [])
    on_exit(fn -> server(:stop, [server]) end)
    %{server: server, client: :erqwest.make_client()}
  end

  defp post(server, script) do
    %{method: :post, url: server(:url, [server, server(:new, [server, script])])}
  end

  test "wait/3 calls on_progress and returns the result", %{server: s, client: c} do
    req =
      post(s, %{polls: [{:azure, "Running", 50}, {:azure, "Succeeded", 100, %{result: 7}, []}]})

    me = self()

    assert {:ok, %{status: 200, body: "7"}} =
             Operation.wait(c, req, poll_interval: 10, on_progress: &send(me, {:seen, &1}))

    assert_received {:seen, %{state: :running, status: "Running", percent_complete: 50}}
    refute_received {:seen, _}
  end

  test "wait!/3 raises the error as a struct", %{server: s, client: c} do
    req = post(s, %{polls: [{:go, "failed", %{problem: %{title: "Nope", status: 409}}}]})

    error = assert_raise Operation.Error, fn -> Operation.wait!(c, req, poll_interval: 10) end
    assert %{code: :operation_failed, problem: %{"title" => "Nope", "status" => 409}} = error
    assert Exception.message(error) == "operation_failed: operation failed: Nope"
  end

  test "start/5 sends progress, then the reply; cancel is answered", %{server: s, client: c} do
    ref = make_ref()

    h =
      Operation.start(c, self(), ref, post(s, %{polls: [{:go, "running"}, {:go, "succeeded"}]}),
        poll_interval: 10
      )

    assert_receive {:erqwest_operation, ^ref, :progress, %{state: :running}}, 5_000
    assert_receive {:erqwest_response, ^ref, :reply, %{status: 200}}, 5_000
    assert %{state: :succeeded} = Operation.info(h)

    ref = make_ref()
    h = Operation.start(c, self(), ref, post(s, %{polls: [{:go, "running"}]}), poll_interval: 10)
    assert_receive {:erqwest_operation, ^ref, :progress, _}, 5_000
    :ok = Operation.cancel(h)
    assert_receive {:erqwest_response, ^ref, :error, %{code: :cancelled}}, 5_000
  end

  test "options are checked up front", %{client: c} do
    req = %{method: :get, url: "http://127.0.0.1:1/"}

    assert_raise ArgumentError, ~r/unknown option :on_progress; accepted: :poll_interval/, fn ->
      Operation.start(c, self(), make_ref(), req, on_progress: fn _ -> :ok end)
    end

    assert_raise ArgumentError, ~r/unknown option :poll/, fn ->
      Operation.wait(c, req, poll: 1)
    end

    assert_raise ArgumentError, fn -> Operation.wait(c, req, %{poll_interval: 1}) end
    assert_raise ArgumentError, fn -> Operation.wait(c, req, poll_interval: 0) end
  end
end
