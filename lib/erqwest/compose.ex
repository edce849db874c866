defmodule Erqwest.Compose do
  @moduledoc false
  # The Elixir spelling of the request-composing options (README:
  # "Composing requests") and their translation to the Erlang keys:
  # `decode_body:` becomes `decode`. Elixir follows Req's defaults: a
  # client decodes JSON responses unless told otherwise, and JSON `null`
  # is `nil`.

  @doc "Checks for `Erqwest.Options`: option key => check name."
  @spec request_checks() :: keyword()
  def request_checks, do: [decode_body: {:compose, :decode_body}]

  @spec client_checks() :: keyword()
  def client_checks, do: [decode_body: {:compose, :decode_body}]

  @doc "Checks and converts one value; `:error` when it has the wrong shape."
  @spec check(atom(), term()) :: {:ok, term()} | :error
  def check(:decode_body, true), do: {:ok, :auto}
  def check(:decode_body, false), do: {:ok, :none}
  def check(:decode_body, :json), do: {:ok, :json}
  def check(_, _), do: :error

  @doc "What a check accepts, for error messages."
  @spec expected(atom()) :: String.t()
  def expected(:decode_body), do: "true, false or :json"

  @doc "Erlang `req_opts()` pairs from converted Elixir ones."
  @spec request([{atom(), term()}]) :: [{atom(), term()}]
  def request(pairs), do: [{:json_null, nil} | Enum.map(pairs, &rename/1)]

  @doc "Erlang `client_opts()` pairs from converted Elixir ones."
  @spec client([{atom(), term()}]) :: [{atom(), term()}]
  def client(pairs) do
    pairs = Enum.map(pairs, &rename/1)
    defaults = [decode: :auto, json_null: nil]
    Keyword.merge(defaults, pairs)
  end

  defp rename({:decode_body, v}), do: {:decode, v}
  defp rename(pair), do: pair
end
