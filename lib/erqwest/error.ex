defmodule Erqwest.Error do
  @moduledoc """
  A failed request, as an exception.

  `code` says what went wrong, `reason` says it in words:

    * `:timeout` — a timeout passed
    * `:redirect` — too many redirects, or a redirect loop
    * `:url` — the URL does not parse, has an unsupported scheme, or is over
      65,534 bytes
    * `:connect` — the connection was refused, the host was not found, or
      the TLS handshake failed
    * `:request` — the request could not be sent (a bad header, a body
      that is not iodata)
    * `:body` — the body was cut off
    * `:cancelled` — the request was cancelled
    * `:decode` — the body is not the JSON that `decode_body:` asked for
      (the reason names the byte offset)
    * `:queue_timeout` — the request waited longer than `:queue_timeout`
      for room under `:max_in_flight` or `:max_in_flight_per_host`
    * `:body_too_large` — a complete body would hold more than
      `:max_body` bytes after decompression; `details.limit` is that
      limit, and the connection was closed
    * `:unknown` — anything else

  `attempts` is how many attempts were made, when retries or hedging were
  on (`nil` otherwise). `details` holds the other keys of the Erlang
  `err()` map: `:body`, `:status` and `:headers` of a response whose body
  did not decode, `:status` and `:response` of a failed page in
  `Erqwest.paginate/3`, and so on (`%{}` when there are none).

  The non-bang functions return it as `{:error, %Erqwest.Error{}}`, the
  bang variants raise it.

      iex> Erqwest.get(:default, "not a url")
      {:error, %Erqwest.Error{code: :url, reason: "relative URL without a base: not a url"}}

      iex> Erqwest.get!(:default, "not a url")
      ** (Erqwest.Error) url: relative URL without a base: not a url
  """

  defexception [:code, :reason, attempts: nil, details: %{}]

  @typedoc "What went wrong: `:connect`. The module doc says when each comes."
  @type code ::
          :timeout
          | :redirect
          | :url
          | :connect
          | :request
          | :body
          | :cancelled
          | :queue_timeout
          | :body_too_large
          | :unknown
          | :decode
  @typedoc ~s|The error: `%Erqwest.Error{code: :connect, reason: "error sending request ..."}`.|
  @type t :: %__MODULE__{
          code: code(),
          reason: String.t(),
          attempts: pos_integer() | nil,
          details: map()
        }

  @impl true
  @spec message(t()) :: String.t()
  def message(%__MODULE__{code: code, reason: reason}), do: "#{code}: #{reason}"

  @doc """
  Builds the struct from an Erlang `err()` map, as found in
  `{:erqwest_response, ref, :error, err}` messages.

      iex> Erqwest.Error.new(%{code: :connect, reason: "connection refused"})
      %Erqwest.Error{code: :connect, reason: "connection refused"}
  """
  @spec new(:erqwest.err()) :: t()
  def new(%{code: code, reason: reason} = err) do
    %__MODULE__{
      code: code,
      reason: reason,
      attempts: Map.get(err, :attempts),
      details: Map.drop(err, [:code, :reason, :attempts])
    }
  end
end
