defmodule Erqwest.NamedClient do
  @moduledoc false
  # The process behind `{Erqwest, name: ..., ...}` in a supervision tree: it
  # registers the client under its name when it starts and unregisters it
  # when it stops, so that the client lives exactly as long as the
  # supervisor wants. It is also registered as a process under the same
  # name, so that a second start with that name fails with
  # {:already_started, pid} instead of replacing a live client.
  use GenServer

  @doc """
  The client registered as `name` (a client given as itself comes back
  as it is), or an `ArgumentError` saying how to register one. Shared by
  `Erqwest` and the adapters.
  """
  @spec resolve(atom() | :erqwest.client()) :: :erqwest.client()
  def resolve(name) when is_atom(name) do
    :erqwest.get_client(name)
  rescue
    ArgumentError ->
      reraise ArgumentError,
              "no erqwest client is registered as #{inspect(name)}; start one with " <>
                "Erqwest.start_client/2 or a {Erqwest, name: #{inspect(name)}} child",
              __STACKTRACE__
  end

  def resolve(client), do: client

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
