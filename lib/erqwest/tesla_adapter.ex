defmodule Tesla.Adapter.Erqwest do
  @moduledoc """
  erqwest as a [Tesla](https://hexdocs.pm/tesla) adapter (the
  `Tesla.Adapter` behaviour: `call(env, opts)`).

      client = Tesla.client([Tesla.Middleware.JSON], {Tesla.Adapter.Erqwest, client: MyApp.HTTP})
      {:ok, env} = Tesla.get(client, "https://api.example.com/users")
      env.body

  Tesla's middleware works on top: JSON, `FollowRedirects`, `Retry`,
  `Logger`, `BaseUrl`, `Query`, compression. erqwest's own redirects,
  retries, decompression and JSON decoding stay off, as for
  `Erqwest.Req` (see there): the default client is made with
  `Erqwest.Req.client_options/0`, and a named client has its retries,
  decoding and default credentials turned off per request.

  Request bodies may be a binary, iodata, a `Stream` (or any
  `Enumerable` of iodata, streamed chunk by chunk with backpressure) or a
  `Tesla.Multipart` (streamed, files read as they are sent).

  ## Options

  Given in `Tesla.client/2` (`{Tesla.Adapter.Erqwest, opts}`) or per
  request (`opts: [adapter: [...]]`, which wins):

    * `:client` — an erqwest client or a registered name; by default the
      client registered as `:erqwest_req_default`, started on first use
    * `:receive_timeout` — ms (default `15_000`): the wait for the
      response head and for each chunk of a streamed body, and for a
      complete body the whole request when `:timeout` is not given
    * `:timeout` — ms or `:infinity`: the whole request (erqwest's
      `:timeout`)
    * `:response` — `:stream` for a lazy body: a `Stream` of binaries read
      as it is consumed, by the process that made the request; stopping
      early cancels the request. A failure while reading raises
      `Tesla.Error` with the reason below.

  ## Errors

  `{:error, reason}` with Mint's reason atoms for transport failures, as
  Tesla's Finch and Mint adapters give them: `:econnrefused`, `:nxdomain`,
  `:timeout`, `:closed`, `:econnreset`, `:ehostunreach`. Other failures
  (a URL that does not parse, a TLS certificate that is not trusted) are
  `{:error, %Erqwest.Error{}}`.

  Tesla is not a dependency of erqwest: this module calls it at run time
  and compiles whether or not Tesla is present (so it declares no
  `@behaviour`, whose check would need Tesla at compile time).
  """

  @compile {:no_warn_undefined, [Tesla, Tesla.Adapter, Tesla.Multipart, Tesla.Error]}

  alias Erqwest.Adapter

  @methods ~w(get post put delete head options patch trace connect)a

  @doc """
  Makes the request of `env` and returns `{:ok, env}` with the status,
  headers and body filled in, or `{:error, reason}`.

      Tesla.get(Tesla.client([], Tesla.Adapter.Erqwest), "http://example.com/")
  """
  @spec call(map(), keyword()) :: {:ok, map()} | {:error, term()}
  def call(env, opts) do
    opts = Tesla.Adapter.opts([receive_timeout: 15_000], env, opts)
    named = Keyword.get(opts, :client)
    client = Adapter.client(named)
    receive_timeout = Keyword.fetch!(opts, :receive_timeout)

    if env.method in @methods do
      {headers, body} = body(env.headers, env.body)
      headers = for {name, value} <- headers, do: {to_string(name), to_string(value)}
      erq = Adapter.request(env.method, Tesla.build_url(env), headers, is_nil(named))

      erq =
        case Keyword.fetch(opts, :timeout) do
          {:ok, t} -> Map.put(erq, :timeout, t)
          :error -> erq
        end

      run(env, client, erq, body, receive_timeout, Keyword.get(opts, :response))
    else
      {:error,
       %Erqwest.Error{code: :request, reason: "unsupported method #{inspect(env.method)}"}}
    end
  end

  # A multipart body is a stream with its content type (and boundary).
  defp body(headers, body) do
    if is_struct(body, Tesla.Multipart),
      do: {headers ++ Tesla.Multipart.headers(body), Tesla.Multipart.body(body)},
      else: {headers, body}
  end

  defp run(env, client, erq, body, receive_timeout, nil) do
    if Adapter.streamed_body?(body) do
      with {:ok, resp, state} <- start(client, erq, body, receive_timeout),
           {:ok, data} <- collect(state, []) do
        {:ok, env(env, resp, data)}
      end
    else
      erq = erq |> Map.put(:body, Adapter.body(body)) |> Map.put_new(:timeout, receive_timeout)

      case :erqwest.req(client, erq) do
        {:ok, resp} -> {:ok, env(env, resp, Map.get(resp, :body, ""))}
        {:error, err} -> {:error, reason(err)}
      end
    end
  end

  defp run(env, client, erq, body, receive_timeout, :stream) do
    with {:ok, resp, state} <- start(client, erq, body, receive_timeout) do
      {:ok, env(env, resp, lazy_body(state, env))}
    end
  end

  defp run(_env, _client, _erq, _body, _receive_timeout, other) do
    raise ArgumentError, "unknown :response option #{inspect(other)}; use :stream or leave it out"
  end

  defp start(client, erq, body, receive_timeout) do
    case Adapter.start(client, erq, body, receive_timeout) do
      {:ok, _resp, _state} = ok -> ok
      {:error, err} -> {:error, reason(err)}
    end
  end

  defp collect(state, acc) do
    case Adapter.next(state) do
      {:data, data} -> collect(state, [acc | data])
      {:fin, data} -> {:ok, IO.iodata_to_binary([acc | data])}
      {:error, err} -> {:error, reason(err)}
    end
  end

  # The body as a Stream: each element is read when asked for; a consumer
  # that stops early cancels the request.
  defp lazy_body(state, env) do
    Stream.resource(
      fn -> state end,
      fn
        :done ->
          {:halt, :done}

        # The request is over (its error was the final message): nothing
        # is left to cancel when the raise ends the stream.
        {:failed, reason} ->
          raise Tesla.Error, env: env, reason: reason

        state ->
          case Adapter.next(state) do
            {:data, data} -> {[data], state}
            {:fin, ""} -> {:halt, :done}
            {:fin, data} -> {[data], :done}
            {:error, err} -> {[], {:failed, reason(err)}}
          end
      end,
      fn
        :done -> :ok
        {:failed, _} -> :ok
        state -> Adapter.cancel(state)
      end
    )
  end

  defp env(env, resp, body), do: %{env | status: resp.status, headers: resp.headers, body: body}

  defp reason(err), do: Adapter.transport_reason(err) || Erqwest.Error.new(err)
end
