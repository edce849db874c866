defmodule Erqwest.Upload do
  @moduledoc """
  A request whose body is being streamed, from `body: :stream`.

  Write chunks with `write/2`, or collect an enumerable into it with
  `Enum.into/2` (it is a `Collectable`), then get the response with
  `finish/1`. Each write blocks while the connection cannot take more, so
  memory stays bounded however much is sent.

      {:ok, upload} = Erqwest.post(:default, "http://127.0.0.1:8080/upload", body: :stream)
      upload = Enum.into(File.stream!("big.bin", [], 65_536), upload)
      {:ok, %Erqwest.Response{status: 200}} = Erqwest.Upload.finish(upload)

  The server may answer before the body is complete (a `413`, say). Then
  `write/2` returns `{:reply, response}`, collecting drops the remaining
  chunks, and `finish/1` on the collected upload returns that response.

  An upload belongs to the process that started it; other processes get
  an error. An upload dropped without `finish/1` (or `cancel/1`) is
  aborted when it is garbage collected: the server never sees a complete
  body.
  """

  defstruct [:handle, reply: nil, read: %{}]

  @typedoc """
  `reply` is set once the request is over before `finish/1`: when the
  server answered early, or the request failed. From
  `{:ok, upload} = Erqwest.post(:default, url, body: :stream)`.
  """
  @type t :: %__MODULE__{
          handle: :erqwest.handle(),
          reply: nil | {:ok, Erqwest.Response.t()} | {:error, Erqwest.Error.t()},
          read: map()
        }

  @doc """
  Sends a chunk of the body, blocking while the connection cannot take
  more.

  Returns `:ok`, `{:reply, response}` when the server answered early, or
  `{:error, error}`; after either of those the request is over and the
  upload takes no more. Raises `ArgumentError` when `data` is not iodata.

      :ok = Erqwest.Upload.write(upload, ["chunk ", "one"])
  """
  @spec write(t(), iodata()) ::
          :ok | {:reply, Erqwest.Response.t()} | {:error, Erqwest.Error.t()}
  def write(%__MODULE__{reply: nil, handle: handle} = up, data)
      when is_binary(data) or is_list(data) do
    case :erqwest.send(handle, data) do
      :ok -> :ok
      {:reply, resp} -> {:reply, Erqwest.response(resp, up.read)}
      {:error, err} -> {:error, Erqwest.Error.new(err)}
    end
  rescue
    # :erqwest.send raises badarg for a chunk that is not iodata (checked
    # before anything is queued) and once the request takes no more body.
    e in ArgumentError ->
      reraise ArgumentError,
              "cannot write #{inspect(data, limit: 5, printable_limit: 40)} to the upload: " <>
                "it is not iodata, or the request is over (#{Exception.message(e)})",
              __STACKTRACE__
  end

  def write(%__MODULE__{reply: {:ok, resp}}, _data), do: {:reply, resp}
  def write(%__MODULE__{reply: {:error, _} = error}, _data), do: error

  def write(%__MODULE__{}, data) do
    raise ArgumentError,
          "a request body chunk must be iodata, got: #{inspect(data, limit: 5, printable_limit: 40)}"
  end

  @doc """
  Ends the body and waits for the response.

  Returns the early reply instead when the server answered before the end
  (see the module doc).

      {:ok, %Erqwest.Response{}} = Erqwest.Upload.finish(upload)
  """
  @spec finish(t()) :: {:ok, Erqwest.Response.t()} | {:error, Erqwest.Error.t()}
  def finish(%__MODULE__{reply: nil, handle: handle} = up) do
    case :erqwest.finish_send(handle) do
      {:ok, resp} -> {:ok, Erqwest.response(resp, up.read)}
      {:error, err} -> {:error, Erqwest.Error.new(err)}
    end
  rescue
    # :erqwest.finish_send raises badarg once the answer was returned.
    e in ArgumentError ->
      reraise ArgumentError,
              "cannot finish the upload: the request is over (#{Exception.message(e)})",
              __STACKTRACE__
  end

  def finish(%__MODULE__{reply: reply}), do: reply

  @doc """
  Like `finish/1`, but returns the response or raises `Erqwest.Error`.

      {:ok, upload} = Erqwest.post(:default, url, body: :stream)
      upload = Enum.into(["first, ", "second"], upload)
      %Erqwest.Response{status: 200} = Erqwest.Upload.finish!(upload)
  """
  @spec finish!(t()) :: Erqwest.Response.t()
  def finish!(upload) do
    case finish(upload) do
      {:ok, resp} -> resp
      {:error, error} -> raise error
    end
  end

  @doc """
  Abandons the upload: the request is aborted and the server never sees a
  complete body. Does nothing when the request is already over.

      :ok = Erqwest.Upload.cancel(upload)
  """
  @spec cancel(t()) :: :ok
  def cancel(%__MODULE__{handle: nil}), do: :ok
  # The answer was taken already: nothing is left to cancel.
  def cancel(%__MODULE__{reply: {_, _}}), do: :ok
  def cancel(%__MODULE__{handle: handle}), do: :erqwest.cancel(handle)

  @doc false
  # Sends the chunks of an enumerable, stopping early when the request is
  # over; used by Erqwest.request/2 and by Collectable.
  @spec write_all(t(), Enumerable.t()) :: t()
  def write_all(upload, enum) do
    Enum.reduce_while(enum, upload, fn chunk, up ->
      case write(up, chunk) do
        :ok -> {:cont, up}
        {:reply, resp} -> {:halt, %{up | reply: {:ok, resp}}}
        {:error, _} = error -> {:halt, %{up | reply: error}}
      end
    end)
  catch
    kind, reason ->
      # The enumerable failed (a file that went away, say): abort the
      # request rather than leave it waiting for a body that won't come.
      cancel(upload)
      :erlang.raise(kind, reason, __STACKTRACE__)
  end

  defimpl Collectable do
    def into(upload) do
      {upload, &collect/2}
    end

    defp collect(%{reply: nil} = up, {:cont, chunk}) do
      case Erqwest.Upload.write(up, chunk) do
        :ok -> up
        {:reply, resp} -> %{up | reply: {:ok, resp}}
        {:error, _} = error -> %{up | reply: error}
      end
    end

    # The request is over: the rest of the chunks have nowhere to go.
    defp collect(up, {:cont, _chunk}), do: up
    defp collect(up, :done), do: up

    defp collect(up, :halt) do
      Erqwest.Upload.cancel(up)
    end
  end
end
