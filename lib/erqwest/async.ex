defmodule Erqwest.Async do
  @moduledoc """
  The message-based API: every function returns at once and the answers
  arrive as messages.

  They go to the process given to `request/4`, tagged with its `ref` (any
  term). A thin layer on `:erqwest_async`, whose message protocol it
  keeps.

  ## Messages

  With a complete body (the default), exactly one of:

      {:erqwest_response, ref, :reply, resp}   # resp: an Erlang map, see Erqwest.Response.new/1
      {:erqwest_response, ref, :error, err}    # err: %{code: atom, reason: binary}, see Erqwest.Error.new/1

  With `body: :stream`, first `{:erqwest_response, ref, :next}` (or an
  `:error`). Answer each `:next` with `write/2`, which is answered by
  `:next` when the connection can take more, by `:reply` when the server
  answered early, or by `:error`. End with `finish/1`, answered by
  `:reply` or `:error`.

  With `response_body: :stream`, the `:reply` carries no body; each
  `read/2` is answered by `{:erqwest_response, ref, :chunk, data}`, by the
  last `{:erqwest_response, ref, :fin, data}`, or by an `:error`.

  An `:error` is always the last message of a request. `cancel/1` at any
  stage still leaves exactly one final message (an `:error` with code
  `:cancelled`, or whatever was already on its way).

  `await/2` receives the next message of a request, converted to structs;
  in a `GenServer`, match the messages in `handle_info/2` instead.

  ## Telemetry and stubs

  These functions emit no `:telemetry` events by themselves (the answer
  goes to a process that may not be the caller). For events, start the
  request with `:erqwest_telemetry.async_req/4` (same arguments as
  `request/4` but Erlang options, a map with `:method` and `:url`),
  which returns `{handle, span}`, and pass the final message to
  `:erqwest_telemetry.async_stop/2` where it is received; see the guide
  [Telemetry and test stubs](telemetry-and-stubs.md). `Erqwest.Test` stubs answer these requests with the same
  messages as a real one.

  ## Example

      iex> ref = make_ref()
      iex> _handle = Erqwest.Async.request(:default, self(), ref, url: "http://example.com/")
      iex> {:reply, %Erqwest.Response{status: 200}} = Erqwest.Async.await(ref, 5_000)
  """

  alias Erqwest.{Error, Options, Response}

  @typedoc "A request in flight, from `request/4`: for `write/2`, `finish/1`, `read/2` and `cancel/1`."
  @type handle :: :erqwest_async.handle()
  @typedoc "A message of a request, as `await/2` returns it: `{:reply, %Erqwest.Response{}}`."
  @type event ::
          :next
          | {:reply, Response.t()}
          | {:chunk, binary()}
          | {:fin, binary()}
          | {:error, Error.t()}

  @doc """
  Starts a request whose messages go to `pid`, tagged with `ref`.

  Takes `:method` (default `:get`), `:url` and the request options of
  `Erqwest`, except that `:body` is iodata or `:stream` (an `Enumerable`
  body needs a process to drive it: use `Erqwest.request/2`). Raises
  `ArgumentError` for a bad option; problems with the contents (a URL that
  does not parse) arrive as the `:error` message.

      handle = Erqwest.Async.request(MyApp.HTTP, self(), :my_ref, method: :post, url: url, body: "hi")
      receive do
        {:erqwest_response, :my_ref, :reply, resp} -> Erqwest.Response.new(resp)
        {:erqwest_response, :my_ref, :error, err} -> Erqwest.Error.new(err)
      end
  """
  @spec request(Erqwest.client(), pid(), term(), Erqwest.options()) :: handle()
  def request(client, pid, ref, opts) when is_pid(pid) do
    {req, read} = Options.request(opts, [])

    unless read == %{} do
      raise ArgumentError,
            ":chunk_size and :chunk_period are options of Erqwest.Async.read/2 here"
    end

    case req do
      %{body: body} when not (is_binary(body) or is_list(body) or body == :stream) ->
        raise ArgumentError,
              "Erqwest.Async.request/4 takes iodata or :stream as :body, got: " <>
                inspect(body, limit: 5, printable_limit: 40)

      _ ->
        :erqwest_async.req(client, pid, ref, req)
    end
  end

  @doc """
  Sends a chunk of a streamed request body (after a `:next`); answered by
  `:next`, `:reply` or `:error`. Raises `ArgumentError` after `finish/1`.

      :ok = Erqwest.Async.write(handle, "some bytes")
  """
  @spec write(handle(), iodata()) :: :ok
  def write(handle, data), do: :erqwest_async.send(handle, data)

  @doc """
  Ends a streamed request body; answered by `:reply` or `:error`. Raises
  `ArgumentError` when called a second time.

      handle = Erqwest.Async.request(:default, self(), ref, url: url, method: :post, body: :stream)
      :next = Erqwest.Async.await(ref, 5_000)
      :ok = Erqwest.Async.write(handle, "all of it")
      :next = Erqwest.Async.await(ref, 5_000)
      :ok = Erqwest.Async.finish(handle)
      {:reply, %Erqwest.Response{}} = Erqwest.Async.await(ref, 5_000)
  """
  @spec finish(handle()) :: :ok
  def finish(handle), do: :erqwest_async.finish_send(handle)

  @doc """
  Asks for the next chunk of a streamed response body; answered by
  `:chunk`, the final `:fin`, or `:error`.

  Options: `:chunk_size`, answer once at least this many bytes arrived
  (default 8 MB; more may come); `:chunk_period`, answer with what arrived
  after this many milliseconds (default `:infinity`).

      :ok = Erqwest.Async.read(handle, chunk_size: 65_536)
  """
  @spec read(handle(), keyword() | map()) :: :ok
  def read(handle, opts \\ []) do
    read =
      Enum.into(opts, %{}, fn
        {:chunk_size, n} when is_integer(n) and n >= 0 ->
          {:length, n}

        {:chunk_period, ms} when (is_integer(ms) and ms >= 0) or ms == :infinity ->
          {:period, ms}

        other ->
          raise ArgumentError,
                "bad read option #{inspect(other)}; the accepted options are " <>
                  ":chunk_size (a non-negative integer) and :chunk_period (ms or :infinity)"
      end)

    :erqwest_async.read(handle, read)
  end

  @doc """
  Cancels the request at any stage. A final message still comes; after
  it, cancelling does nothing.

      handle = Erqwest.Async.request(:default, self(), ref, url: url)
      :ok = Erqwest.Async.cancel(handle)
      Erqwest.Async.await(ref, 5_000)
      #=> {:error, %Erqwest.Error{code: :cancelled}} (or the reply, when it came first)
  """
  @spec cancel(handle()) :: :ok
  def cancel(handle), do: :erqwest_async.cancel(handle)

  @doc """
  Waits up to `timeout` milliseconds for the next message of the request
  tagged `ref` and returns it converted (see `t:event/0`), or `:timeout`
  (the request goes on; a message may still come).

      iex> ref = make_ref()
      iex> Erqwest.Async.request(:default, self(), ref, url: "http://example.com/")
      iex> {:reply, resp} = Erqwest.Async.await(ref)
      iex> resp.status
      200
      iex> Erqwest.Async.await(ref, 10)
      :timeout
  """
  @spec await(term(), timeout()) :: event() | :timeout
  def await(ref, timeout \\ 5_000) do
    receive do
      {:erqwest_response, ^ref, :next} -> :next
      {:erqwest_response, ^ref, :reply, resp} -> {:reply, Response.new(resp)}
      {:erqwest_response, ^ref, :chunk, data} -> {:chunk, data}
      {:erqwest_response, ^ref, :fin, data} -> {:fin, data}
      {:erqwest_response, ^ref, :error, err} -> {:error, Error.new(err)}
    after
      timeout -> :timeout
    end
  end
end
