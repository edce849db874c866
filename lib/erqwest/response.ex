defmodule Erqwest.Response do
  @moduledoc """
  An HTTP response.

    * `status` — the status code, `100..599`
    * `headers` — `[{name, value}]` with lower-case names; repeated headers
      stay, in order
    * `body` — a binary, or the decoded JSON term with `decode_body:`; with a streamed response body
      (`Erqwest.stream/3`) a lazy `Stream` of binaries; `nil` in the
      `reply` of an async request whose body is streamed
    * `version` — the HTTP version as an atom, such as `:"HTTP/1.1"`
    * `url` — the final URL, after redirects
    * `attempts` — how many attempts were made, when retries or hedging
      were on (`nil` otherwise)
    * `timings` — with `timings: true`, a map of microseconds (`:queued`,
      `:connect`, `:headers`, `:total`) with `:reused` and `:remote_addr`;
      see [Retries, hedging and limits](resilience.md)
  """

  defstruct [:status, headers: [], body: nil, version: nil, url: nil, attempts: nil, timings: nil]

  @typedoc "The HTTP version the response came with: `:\"HTTP/1.1\"`."
  @type version :: :"HTTP/0.9" | :"HTTP/1.0" | :"HTTP/1.1" | :"HTTP/2" | :"HTTP/3"
  @typedoc ~s|A response: `%Erqwest.Response{status: 200, headers: [{"content-type", "text/plain"}], body: "hi", version: :"HTTP/1.1", url: "http://127.0.0.1:8080/"}`.|
  @type t :: %__MODULE__{
          status: 100..599,
          headers: [{String.t(), String.t()}],
          body: binary() | Erqwest.JSON.json() | Enumerable.t() | nil,
          version: version() | nil,
          url: String.t() | nil,
          attempts: pos_integer() | nil,
          timings: map() | nil
        }

  @doc """
  Builds the struct from an Erlang `resp()` map, as found in
  `{:erqwest_response, ref, :reply, resp}` messages. A missing body
  becomes `nil`.

      iex> resp = Erqwest.Response.new(%{status: 204, headers: [{"x-a", "1"}]})
      iex> {resp.status, resp.body}
      {204, nil}
  """
  @spec new(:erqwest.resp()) :: t()
  def new(%{status: status, headers: headers} = resp) do
    %__MODULE__{
      status: status,
      headers: headers,
      body: Map.get(resp, :body),
      version: Map.get(resp, :version),
      url: Map.get(resp, :url),
      attempts: Map.get(resp, :attempts),
      timings: Map.get(resp, :timings)
    }
  end

  @doc """
  The values of header `name` (matched case-insensitively), in order.

      iex> resp = Erqwest.Response.new(%{status: 200, headers: [{"set-cookie", "a=1"}, {"set-cookie", "b=2"}]})
      iex> Erqwest.Response.get_header(resp, "Set-Cookie")
      ["a=1", "b=2"]
      iex> Erqwest.Response.get_header(resp, "x-missing")
      []
  """
  @spec get_header(t(), String.t()) :: [String.t()]
  def get_header(%__MODULE__{headers: headers}, name) when is_binary(name) do
    name = String.downcase(name, :ascii)
    for {^name, value} <- headers, do: value
  end
end
