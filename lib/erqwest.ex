defmodule Erqwest do
  @moduledoc """
  Elixir interface to erqwest, an HTTP client backed by Rust's reqwest.

  A thin layer on the Erlang API (`:erqwest`, `:erqwest_async`).
  """

  @doc """
  Makes a GET request with a client (or a registered client name).

      {:ok, %{status: 200}} = Erqwest.get(client, "http://127.0.0.1:8080/")
  """
  @spec get(:erqwest.client() | atom(), String.t(), map()) ::
          {:ok, :erqwest.resp()} | {:error, :erqwest.err()}
  def get(client, url, opts \\ %{}), do: :erqwest.get(client, url, opts)
end
