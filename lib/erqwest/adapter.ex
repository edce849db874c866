defmodule Erqwest.Adapter do
  @moduledoc false
  # What the Req and Tesla adapters share: the client they use when none is
  # named, the request map they hand to erqwest, the pump that streams a
  # request and its response body over `:erqwest_async` with a bound on
  # every wait, and the mapping of erqwest's errors to the reason atoms
  # Mint (and so Req and Tesla users) use. Only erqwest's public API is
  # called here.

  @default_client :erqwest_req_default

  # The default client leaves to the library on top everything it does
  # itself: redirects, retries, decompression and JSON decoding stay off,
  # and no proxy is taken from the environment (Finch takes none either).
  # 30 s to connect is Mint's default.
  @client_options [
    follow_redirects: false,
    retry: false,
    decode_body: false,
    gzip: false,
    brotli: false,
    deflate: false,
    zstd: false,
    proxy: :no_proxy,
    connect_timeout: 30_000
  ]

  @doc "The options of the default client (see `Erqwest.Req.client_options/0`)."
  @spec client_options() :: keyword()
  def client_options, do: @client_options

  @doc """
  The client for `client` (a client, a registered name, or nil for the
  default one, started on first use).
  """
  @spec client(nil | atom() | :erqwest.client()) :: :erqwest.client()
  def client(nil) do
    :erqwest.get_client(@default_client)
  rescue
    ArgumentError ->
      # Two first users at once would each register a client; the lock
      # makes the second find the first's.
      :global.trans(
        {{__MODULE__, :default_client}, self()},
        fn ->
          try do
            :erqwest.get_client(@default_client)
          rescue
            ArgumentError ->
              :ok = Erqwest.start_client(@default_client, @client_options)
              :erqwest.get_client(@default_client)
          end
        end,
        [node()]
      )
  end

  def client(client), do: Erqwest.NamedClient.resolve(client)

  @doc """
  The `req_opts()` map for a request. A named client's own retries,
  decoding and default credentials are turned off per request; the
  default client has none, and leaving the keys out keeps its requests on
  the scheduler engine.
  """
  @spec request(atom(), String.t(), [{String.t(), String.t()}], boolean()) :: map()
  def request(method, url, headers, default_client?) do
    base = %{method: method, url: url, headers: headers}

    if default_client?,
      do: base,
      else: Map.merge(base, %{retry: false, decode: :none, auth: :none})
  end

  @doc "A body for `req_opts()`: small iodata as a binary, so that it may go the direct way."
  @spec body(iodata() | nil) :: iodata()
  def body(nil), do: ""
  def body(body) when is_binary(body), do: body

  def body(body) when is_list(body) do
    if :erlang.iolist_size(body) <= 65_536, do: IO.iodata_to_binary(body), else: body
  end

  @doc "Whether a request body must be streamed (it is an Enumerable, not iodata)."
  @spec streamed_body?(term()) :: boolean()
  def streamed_body?(body), do: not (is_nil(body) or is_binary(body) or is_list(body))

  ## The pump: a request over erqwest_async, its response body streamed

  @doc """
  Starts `req` (a `req_opts()` map) with a streamed response body, sends
  `body` (iodata, or an Enumerable sent chunk by chunk), and waits for the
  head. Each wait is bounded by `timeout` ms. Returns `{:ok, resp, state}`
  with the Erlang `resp()` (no body) and the state for `next/1`, or
  `{:error, err}` with an Erlang `err()` map.
  """
  #
  # `stop` is a term and `watch` a monitor reference: a message
  # `{:erqwest_adapter_stop, stop}` or that monitor's `:DOWN` during any
  # wait cancels the request, and the answer is then `:stopped`.
  @spec start(:erqwest.client(), map(), term(), timeout(), keyword()) ::
          {:ok, map(), map()} | {:error, map()} | :stopped
  def start(client, req, body, timeout, opts \\ []) do
    ref = make_ref()
    streamed? = streamed_body?(body)

    req =
      Map.merge(req, %{response_body: :stream, body: if(streamed?, do: :stream, else: body(body))})

    handle = :erqwest_async.req(client, self(), ref, req)

    state = %{
      ref: ref,
      handle: handle,
      timeout: timeout,
      stop: Keyword.get(opts, :stop, ref),
      watch: Keyword.get(opts, :watch)
    }

    result =
      if streamed?,
        do: upload(state, body),
        else: await(state)

    case result do
      {:reply, resp} -> {:ok, resp, state}
      {:error, _} = error -> error
      :stopped -> :stopped
      :next -> {:error, %{code: :request, reason: "the server asked for more body after its end"}}
      other -> {:error, unexpected(other)}
    end
  end

  defp upload(state, body) do
    case await(state) do
      :next ->
        result =
          try do
            Enum.reduce_while(body, :next, fn chunk, :next ->
              :ok = :erqwest_async.send(state.handle, chunk)

              case await(state) do
                :next -> {:cont, :next}
                other -> {:halt, other}
              end
            end)
          catch
            kind, reason ->
              # The body's enumerable failed: abort, then fail as it did.
              cancel(state)
              :erlang.raise(kind, reason, __STACKTRACE__)
          end

        case result do
          :next ->
            :ok = :erqwest_async.finish_send(state.handle)
            await(state)

          :stopped ->
            :stopped

          # The server answered early, or the request failed.
          other ->
            other
        end

      other ->
        other
    end
  end

  @doc """
  The next piece of the response body: `{:data, binary}`, `{:fin,
  binary}` (the last one) or `{:error, err}`. `:erqwest_async.read/2`
  answers with what arrived so far, so chunks are not held back.
  """
  @spec next(map()) :: {:data, binary()} | {:fin, binary()} | {:error, map()} | :stopped
  def next(state) do
    :ok = :erqwest_async.read(state.handle, %{length: 1})

    case await(state) do
      {:chunk, data} -> {:data, data}
      {:fin, data} -> {:fin, data}
      {:error, _} = error -> error
      :stopped -> :stopped
      other -> {:error, unexpected(other)}
    end
  end

  @doc "Abandons the request and takes its final message out of the mailbox."
  @spec cancel(map()) :: :ok
  def cancel(%{ref: ref, handle: handle}) do
    :ok = :erqwest_async.cancel(handle)

    # A final message always comes after a cancel (the API's contract);
    # the bound only guards against a runtime that went away.
    receive do
      {:erqwest_response, ^ref, :error, _} -> :ok
      {:erqwest_response, ^ref, :reply, _} -> :ok
      {:erqwest_response, ^ref, :fin, _} -> :ok
    after
      5_000 -> :ok
    end

    flush(ref)
  end

  defp flush(ref) do
    receive do
      {:erqwest_response, ^ref, _} -> flush(ref)
      {:erqwest_response, ^ref, _, _} -> flush(ref)
    after
      0 -> :ok
    end
  end

  # The next message of the request, or a timeout error once `timeout` ms
  # passed without one (the request is then cancelled).
  defp await(%{ref: ref, timeout: timeout, stop: stop, watch: watch} = state) do
    receive do
      {:erqwest_response, ^ref, :next} ->
        :next

      {:erqwest_response, ^ref, :reply, resp} ->
        {:reply, resp}

      {:erqwest_response, ^ref, :chunk, data} ->
        {:chunk, data}

      {:erqwest_response, ^ref, :fin, data} ->
        {:fin, data}

      {:erqwest_response, ^ref, :error, err} ->
        {:error, err}

      {:erqwest_adapter_stop, ^stop} ->
        cancel(state)
        :stopped

      {:DOWN, ^watch, :process, _, _} ->
        cancel(state)
        :stopped
    after
      timeout ->
        cancel(state)
        {:error, %{code: :timeout, reason: "no answer from the server in #{timeout} ms"}}
    end
  end

  defp unexpected(other),
    do: %{code: :unknown, reason: "unexpected answer: #{inspect(other)}"}

  ## Errors

  @doc """
  The reason atom Mint would give for an erqwest `err()`, or nil when it
  is not a transport failure (a bad URL, a bad header, a TLS certificate
  that is not trusted...).
  """
  @spec transport_reason(map()) :: atom() | nil
  def transport_reason(%{code: :timeout}), do: :timeout
  def transport_reason(%{code: :body}), do: :closed
  def transport_reason(%{code: :cancelled}), do: :closed

  def transport_reason(%{code: code, reason: reason}) when code in [:connect, :request] do
    text = String.downcase(reason)

    cond do
      text =~ "refused" -> :econnrefused
      text =~ "dns error" or text =~ "failed to lookup" or text =~ "name or service" -> :nxdomain
      text =~ "reset" -> :econnreset
      text =~ "unreachable" -> :ehostunreach
      text =~ "timed out" -> :timeout
      text =~ "closed" or text =~ "incomplete" or text =~ "broken pipe" -> :closed
      true -> nil
    end
  end

  def transport_reason(_), do: nil
end
