defmodule Erqwest.NamedClient do
  @moduledoc false
  # The process behind `{Erqwest, name: ..., ...}` in a supervision tree: it
  # registers the client under its name when it starts and unregisters it
  # when it stops, so that the client lives exactly as long as the
  # supervisor wants. It is also registered as a process under the same
  # name, so that a second start with that name fails with
  # {:already_started, pid} instead of replacing a live client.
  use GenServer

  @spec start_link({atom(), map()}) :: GenServer.on_start()
  def start_link({name, client_opts}) when is_atom(name) and is_map(client_opts) do
    GenServer.start_link(__MODULE__, {name, client_opts}, name: name)
  end

  @impl true
  def init({name, client_opts}) do
    # Trapping exits makes the supervisor's shutdown run terminate/2.
    Process.flag(:trap_exit, true)
    :ok = :erqwest.start_client(name, client_opts)
    {:ok, name}
  end

  @impl true
  def terminate(_reason, name) do
    # Someone may have stopped the client by hand already.
    try do
      :erqwest.stop_client(name)
    rescue
      ArgumentError -> :ok
    end
  end
end
