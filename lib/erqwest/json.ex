defmodule Erqwest.JSON do
  @moduledoc """
  The JSON codec that erqwest uses for `json:` bodies and `decode_body:`,
  for JSON that is not in an HTTP body. It works on terms directly, in the
  NIF; large inputs are handled on a dirty scheduler.

  Objects decode to maps with string keys (a repeated key: the last wins,
  as with `Map.new/1`), arrays to lists, strings to strings, integers to
  integers of any size (up to 4096 digits), other numbers to floats
  (correctly rounded, however many digits they have) and `null` to `nil`.
  Nesting is limited to 512 levels. Encoding takes maps with string, atom
  (any Unicode name, written as UTF-8) or integer keys, lists, strings,
  integers, floats, `true`, `false` and `nil`; floats are written in their
  shortest round-trip form.

      iex> Erqwest.JSON.decode(~s({"a": [1, 2.5, "x", null]}))
      {:ok, %{"a" => [1, 2.5, "x", nil]}}

      iex> Erqwest.JSON.encode(%{a: [1, 2.5, true, nil]})
      {:ok, ~s({"a":[1,2.5,true,null]})}
  """

  defmodule DecodeError do
    @moduledoc """
    Input that is not one JSON document. `offset` is the byte where the
    problem was found; `reason` says what it was.
    """
    defexception [:offset, :reason]

    @typedoc ~s|For example `%Erqwest.JSON.DecodeError{offset: 1, reason: "expected value at byte 1"}`.|
    @type t :: %__MODULE__{offset: non_neg_integer(), reason: String.t()}

    @impl true
    def message(%__MODULE__{reason: reason}), do: reason
  end

  defmodule EncodeError do
    @moduledoc """
    A term with no JSON form. `path` is a JSON Pointer (RFC 6901) to the
    offending value, such as `"/users/3/name"` (`""` for the whole term).
    """
    defexception [:path, :reason]

    @typedoc ~s|For example `%Erqwest.JSON.EncodeError{path: "/a", reason: "cannot encode a tuple as JSON"}`.|
    @type t :: %__MODULE__{path: String.t(), reason: String.t()}

    @impl true
    def message(%__MODULE__{reason: reason}), do: reason
  end

  @typedoc ~s|A term with a JSON form: `%{"a" => [1, 2.5, "x", true, nil]}`.|
  @type json ::
          %{optional(String.t() | atom() | integer()) => json()}
          | [json()]
          | String.t()
          | integer()
          | float()
          | boolean()
          | nil

  @doc """
  Encodes a term as a JSON string.

      iex> Erqwest.JSON.encode(%{users: [%{name: "a"}, %{name: {:x}}]})
      {:error, %Erqwest.JSON.EncodeError{path: "/users/1/name", reason: "cannot encode a tuple as JSON at /users/1/name"}}
  """
  @spec encode(term()) :: {:ok, String.t()} | {:error, EncodeError.t()}
  def encode(term) do
    case :erqwest_json.encode(term) do
      {:ok, json} ->
        {:ok, json}

      {:error, %{path: path, reason: reason}} ->
        {:error, %EncodeError{path: path, reason: reason}}
    end
  end

  @doc """
  Like `encode/1`, but returns the string or raises `Erqwest.JSON.EncodeError`.

      iex> Erqwest.JSON.encode!([1, "two", 3.0])
      ~s([1,"two",3.0])
  """
  @spec encode!(term()) :: String.t()
  def encode!(term) do
    case encode(term) do
      {:ok, json} -> json
      {:error, error} -> raise error
    end
  end

  @doc """
  Decodes one JSON document (whitespace around it is allowed, nothing
  else). Raises `ArgumentError` if `json` is not a binary.

      iex> Erqwest.JSON.decode("[1,")
      {:error, %Erqwest.JSON.DecodeError{offset: 3, reason: "unexpected end of input at byte 3"}}
  """
  @spec decode(binary()) :: {:ok, json()} | {:error, DecodeError.t()}
  def decode(json) when is_binary(json) do
    case :erqwest_json.decode(json, %{null: nil}) do
      {:ok, term} ->
        {:ok, term}

      {:error, %{offset: offset, reason: reason}} ->
        {:error, %DecodeError{offset: offset, reason: reason}}
    end
  end

  def decode(json), do: raise(ArgumentError, "expected a binary, got: #{inspect(json)}")

  @doc """
  Like `decode/1`, but returns the term or raises `Erqwest.JSON.DecodeError`.

      iex> Erqwest.JSON.decode!(~s({"ok": true}))
      %{"ok" => true}
  """
  @spec decode!(binary()) :: json()
  def decode!(json) do
    case decode(json) do
      {:ok, term} -> term
      {:error, error} -> raise error
    end
  end
end
