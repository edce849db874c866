defmodule Erqwest.Compose do
  @moduledoc false
  # The Elixir spelling of the request-composing options
  # (guides/composing-requests.md) and their translation to the Erlang keys:
  # `params:` becomes `query`, `decode_body:` becomes `decode`, a URI
  # `base_url:` a string. Only shapes are checked here; the NIF checks
  # contents and says what is wrong in the ArgumentError. Elixir follows
  # Req's defaults: a client decodes JSON responses unless told
  # otherwise, and JSON `null` is `nil`.

  @doc "Checks for `Erqwest.Options`: option key => check."
  @spec request_checks() :: keyword()
  def request_checks do
    [
      params: {:compose, :pairs},
      json: {:compose, :any},
      form: {:compose, :pairs},
      multipart: {:compose, :parts},
      auth: {:compose, :auth},
      decode_body: {:compose, :decode_body}
    ]
  end

  @spec client_checks() :: keyword()
  def client_checks do
    [
      base_url: {:compose, :base_url},
      auth: {:compose, :auth},
      decode_body: {:compose, :decode_body}
    ]
  end

  @doc "Checks and converts one value; `:error` when it has the wrong shape."
  @spec check(atom(), term()) :: {:ok, term()} | :error
  def check(:decode_body, true), do: {:ok, :auto}
  def check(:decode_body, false), do: {:ok, :none}
  def check(:decode_body, :json), do: {:ok, :json}
  def check(:any, v), do: {:ok, v}
  def check(:pairs, v) when is_map(v) and not is_struct(v), do: {:ok, v}
  def check(:pairs, v) when is_list(v), do: {:ok, v}
  def check(:parts, v) when is_list(v), do: {:ok, v}

  def check(:auth, {:basic, user, pass} = v) when is_binary(user) and is_binary(pass),
    do: {:ok, v}

  def check(:auth, {:bearer, token} = v) when is_binary(token), do: {:ok, v}
  def check(:auth, :none), do: {:ok, :none}
  def check(:base_url, %URI{} = v), do: {:ok, URI.to_string(v)}
  def check(:base_url, v) when is_binary(v), do: {:ok, v}
  def check(_, _), do: :error

  @doc "What a check accepts, for error messages."
  @spec expected(atom()) :: String.t()
  def expected(:decode_body), do: "true, false or :json"
  def expected(:pairs), do: "a keyword list, a list of {key, value} or a map"
  def expected(:parts), do: "a list of {name, value} or maps with :name and :data or :file"
  def expected(:auth), do: "{:basic, user, password} or {:bearer, token}, as strings, or :none"
  def expected(:base_url), do: "a string or a URI"

  @doc "Erlang `req_opts()` pairs from converted Elixir ones."
  @spec request([{atom(), term()}]) :: [{atom(), term()}]
  def request(pairs), do: [{:json_null, nil} | Enum.map(pairs, &rename/1)]

  @doc "Erlang `client_opts()` pairs from converted Elixir ones."
  @spec client([{atom(), term()}]) :: [{atom(), term()}]
  def client(pairs) do
    Keyword.merge([decode: :auto, json_null: nil], Enum.map(pairs, &rename/1))
  end

  defp rename({:decode_body, v}), do: {:decode, v}
  defp rename({:params, v}), do: {:query, v}
  defp rename(pair), do: pair
end
