defmodule Erqwest do
  @moduledoc """
  An HTTP client backed by Rust's [reqwest](https://docs.rs/reqwest).

  This module is a thin Elixir layer on the Erlang API (`:erqwest` and
  `:erqwest_async`): keyword options, structs, `{:ok, _}` / `{:error, _}`
  results with bang variants, streams and supervised clients. The
  `:erqwest` application must be running (it is when erqwest is a
  dependency of your application).

  ## Clients

  A client holds a connection pool and its configuration. Make one with
  `make_client/1`, or register one under a name, either by hand with
  `start_client/2` or under your supervisor:

      children = [
        {Erqwest, name: MyApp.HTTP, timeout: 30_000}
      ]

  Every function that takes a client also takes its registered name.
  `make shell` opens iex with a client registered as `:default`, which the
  examples below use.

      iex> {:ok, resp} = Erqwest.get(:default, "http://example.com/")
      iex> resp.status
      200

  ## The default client

  The `:erqwest` application starts a client registered as
  `:erqwest_default`, which the calls without a client use:

      iex> Erqwest.get!("http://example.com/").status
      200

  `get/1`, `post/2` (the URL first, then the options), `request/1` and
  the other method functions take no client; the bang variants too. Such
  calls decode JSON bodies (`decode_body: true`) unless told otherwise.
  The client's options come from the application environment, as the
  options of `make_client/1`:

      # config/config.exs
      config :erqwest, default_client: [timeout: 30_000, proxy: :no_proxy]

  With nothing configured it has erqwest's defaults: the system's proxy
  settings, redirects followed (up to 10), no timeout and no retries.
  Options that do not make a client stop `:erqwest` from starting. At run
  time, `start_client(:erqwest_default, opts)` replaces it. See
  `:erqwest_default`.

  ## Request options

  Options are a keyword list or a map:

    * `:headers` — `[{name, value}]` or a map of strings
    * `:body` — iodata, sent as is; any other `Enumerable` of iodata
      (a `Stream`, `File.stream!/3`), streamed chunk by chunk with
      backpressure; or `:stream` for an `Erqwest.Upload` to write to
    * `:timeout` — milliseconds for the whole request, or `:infinity`
    * `:response_body` — `:complete` (the default) or `:stream` for a lazy
      `Stream` of chunks as the body (see `stream/3`)
    * `:chunk_size` — with a streamed response body, emit a chunk once at
      least this many bytes arrived; the default, `1`, emits data as it
      arrives
    * `:chunk_period` — with a streamed response body, emit what arrived
      after this many milliseconds even if it is less than `:chunk_size`
      (default `:infinity`)
    * `:params` — query parameters, a keyword list, `[{key, value}]` or a
      map; values are strings, atoms, integers or floats. Appended to any
      query the URL has, `application/x-www-form-urlencoded` style.
    * `:json` — a term encoded as the JSON body (see `Erqwest.JSON`), with
      `content-type: application/json` unless `:headers` set one
    * `:form` — a urlencoded form body, as `:params`
    * `:multipart` — a `multipart/form-data` body: a list of parts,
      `{name, value}` or maps `%{name: name, data: iodata}` /
      `%{name: name, file: path}` with optional `:filename`,
      `:content_type` and `:headers`. Files are streamed from disk.
    * `:auth` — `{:basic, user, password}` or `{:bearer, token}`; never
      sent to another origin after a redirect
    * `:decode_body` — `true` (decode JSON when the content type is
      `application/json` or `*/*+json`), `:json` (always) or `false`
      (never). Decoding happens on the runtime's threads, not in the
      caller; the body becomes maps with string keys, lists, strings,
      numbers, booleans and `nil`. A body that does not decode is
      `{:error, %Erqwest.Error{code: :decode}}`. The default is the
      client's, and clients made from Elixir default to `true` (also a
      client option). See `Erqwest.JSON`.
    * `:retry`, `:hedge`, `:timings`, `:queue_timeout`, `:max_body` —
      override the client's settings for this request (see `make_client/1`)

  `request/2` also takes `:method` (default `:get`) and `:url` (required).
  An unknown key or a value of the wrong type raises `ArgumentError`:

      iex> Erqwest.get(:default, "http://example.com/", time_out: 5)
      ** (ArgumentError) unknown request option :time_out; the accepted options are: :headers, :body, :response_body, :timeout, :retry, :hedge, :timings, :queue_timeout, :max_body, :params, :json, :form, :multipart, :auth, :decode_body, :chunk_size, :chunk_period

  ## Results

  Responses are `Erqwest.Response` structs. A request that fails returns
  `{:error, %Erqwest.Error{}}`, which the bang variants raise. An HTTP
  error status is a response, not an error.

  ## Streaming

  Response bodies stream with `stream/3`; request bodies stream from any
  `Enumerable` given as `:body`, or through an `Erqwest.Upload` (a
  `Collectable`) with `body: :stream`.

      %Erqwest.Response{body: chunks} = Erqwest.stream!(:default, "http://example.com/big")
      Enum.into(chunks, File.stream!("big"))

      Erqwest.put!(:default, "http://example.com/upload", body: File.stream!("big", [], 65_536))

  Streamed handles belong to the process that made the request. For a
  message-based API, see `Erqwest.Async`.

  ## Telemetry and tests

  With the `:telemetry` application running, every request emits
  `[:erqwest, :request, :start | :stop | :exception]` (and `:retry`,
  `[:erqwest, :queue | :connect, :stop]`) from the calling process; the
  guide [Telemetry and test stubs](telemetry-and-stubs.md) lists the
  measurements and metadata. In tests,
  `Erqwest.Test` replaces a client's answers.
  """

  alias Erqwest.{Error, Options, Response, Upload}

  # The client the calls without one use (src/erqwest_default.erl).
  @default :erqwest_default

  # A URL, as opposed to a client (an atom or a reference).
  defguardp is_url(url) when is_binary(url) or is_struct(url, URI)

  @typedoc "A client, or the name it was registered under: `:default` or `Erqwest.make_client()`."
  @type client :: :erqwest.client() | atom()
  @typedoc ~s|A URL as a string or a `URI`: `"http://127.0.0.1:8080/items"`.|
  @type url :: String.t() | URI.t()
  @typedoc "Options as a keyword list or a map; see the module doc: `[timeout: 5_000, params: [page: 2]]`."
  @type options :: keyword() | map()
  @typedoc """
  `Erqwest.Upload` when the request was made with `body: :stream`:
  `{:ok, %Erqwest.Response{status: 200}}` or `{:error, %Erqwest.Error{code: :connect}}`.
  """
  @type result :: {:ok, Response.t() | Upload.t()} | {:error, Error.t()}

  ## Clients

  @doc """
  Makes a client with its own connection pool. It is freed when no longer
  referenced; `close_client/1` closes its idle connections at once.

  Options (a keyword list or a map):

    * `:follow_redirects` — `true` (up to 10, the default), `false`, or
      the limit
    * `:timeout`, `:connect_timeout`, `:read_timeout`,
      `:pool_idle_timeout`, `:tcp_keepalive` — milliseconds or `:infinity`
    * `:pool_max_idle_per_host` — a non-negative integer
    * `:proxy` — `:system` (the default: `HTTP_PROXY`, `HTTPS_PROXY`,
      `NO_PROXY`), `:no_proxy`, or rules tried in order, such as
      `[all: [url: "http://proxy:3128", basic_auth: {"user", "pass"}]]`
    * `:https_only`, `:cookie_store`, `:gzip`, `:brotli`, `:deflate`,
      `:zstd`, `:http2_prior_knowledge`, `:http1_only`, `:tcp_nodelay` —
      booleans
    * `:user_agent` — a string; `:default_headers` — headers sent with
      every request
    * `:local_address` — an IP tuple to connect from
    * `:resolve` — `[{host, {ip, port}}]`, DNS overrides
    * `:identity` — a client certificate: `{pkcs12_der, password}`,
      `{:pem, certs_and_key}` or `{:pem, certs, key}`
    * `:additional_root_certs` — DER certificates to trust;
      `:use_built_in_root_certs`, `:danger_accept_invalid_certs`,
      `:danger_accept_invalid_hostnames` — booleans
    * `:min_tls_version` — `:tlsv1`, `:"tlsv1.1"`, `:"tlsv1.2"` or
      `:"tlsv1.3"`
    * `:base_url` — a string or URI; a request URL that is only a path is
      joined to it as Req joins them (`"https://h/api/v1"` and `"/users"`
      give `"https://h/api/v1/users"`); absolute URLs are kept
    * `:auth` — default credentials for every request, as the request
      option
    * `:decode_body` — the request option's default; `true` unless given
    * `:retry` — `true` (the default for clients made from Elixir),
      `false`, or settings such as `[max_retries: 3, base: 500, max:
      30_000]`. `true` means Req's `:safe_transient`: GET and HEAD
      requests that got 408, 429, 500, 502, 503 or 504, timed out, or
      found the connection refused or closed, are sent again after a
      jittered exponential backoff or the server's `Retry-After` (never
      after another connect failure, such as a name that does not resolve
      or a certificate that does not verify); the response carries
      `attempts`. Settings start from the same (`methods: [:get, :head],
      errors: [:timeout, :refused, :closed]`); the guide
      [Retries, hedging and limits](resilience.md) lists every setting
      and its default.
    * `:hedge` — `[delay: ms, max: 1]`: an idempotent request with no
      response head after `delay` ms is sent again on another connection;
      the first head wins
    * `:timings` — `true` adds `timings` (microseconds) to responses
    * `:max_in_flight`, `:max_in_flight_per_host` — a positive integer or
      `:infinity` (the default): requests over the limit wait in a FIFO
      queue, for at most `:queue_timeout` ms (default 5000), then fail
      with code `:queue_timeout`; see `client_info/1`
    * `:max_body` — the most a complete response body may hold after
      decompression, in bytes, or `:infinity`; default 1 GiB. A body over
      it fails with code `:body_too_large` (`details.limit` is the limit)
      as the bytes arrive, so memory never holds more, and the connection
      is closed. Streamed bodies (`response_body: :stream`, event streams)
      are not limited: their reader is in control

  Raises `ArgumentError` for an unknown key, a value of the wrong type,
  or one that cannot be used (a certificate that does not open).

      iex> client = Erqwest.make_client(follow_redirects: false, timeout: 5_000)
      iex> is_reference(client)
      true
      iex> Erqwest.make_client(follow_redirects: :sometimes)
      ** (ArgumentError) invalid value for client option :follow_redirects: :sometimes (expected a boolean or a non-negative integer (the limit))
  """
  @spec make_client(options()) :: :erqwest.client()
  def make_client(opts \\ []) do
    opts = Options.client(opts)
    with_client_errors(fn -> :erqwest.make_client(opts) end)
  end

  @doc """
  Closes a client's idle connections now; requests in flight finish.
  Raises `ArgumentError` when the client was closed already.

      iex> client = Erqwest.make_client()
      iex> Erqwest.close_client(client)
      :ok
  """
  @spec close_client(client()) :: :ok
  def close_client(client), do: :erqwest.close_client(erqwest_client(client))

  @doc """
  Makes a client and registers it under `name` (an atom), so that every
  function that takes a client also takes `name`. Registering a name
  again replaces the client. Under a supervisor, use `child_spec/1`
  instead.

  Takes the options of `make_client/1`.

      iex> Erqwest.start_client(:docs_client, timeout: 10_000)
      :ok
      iex> Erqwest.stop_client(:docs_client)
      :ok
  """
  @spec start_client(atom(), options()) :: :ok
  def start_client(name, opts \\ []) when is_atom(name) do
    opts = Options.client(opts)
    with_client_errors(fn -> :erqwest.start_client(name, opts) end)
  end

  @doc """
  Closes and unregisters the client registered under `name`.

      iex> Erqwest.start_client(:docs_stop, [])
      :ok
      iex> Erqwest.stop_client(:docs_stop)
      :ok
  """
  @spec stop_client(atom()) :: :ok
  def stop_client(name) when is_atom(name) do
    _ = erqwest_client(name)
    :erqwest.stop_client(name)
  end

  @doc """
  A child spec for a client registered under `:name` that lives as long as
  its supervisor wants: it is registered when the child starts and
  unregistered when it stops. The other options are those of
  `make_client/1`, checked here so that a mistake shows at once.

      children = [
        {Erqwest, name: MyApp.HTTP, follow_redirects: false}
      ]
      Supervisor.start_link(children, strategy: :one_for_one)
      Erqwest.get!(MyApp.HTTP, "http://example.com/")

  The child is also registered as a process under `:name`, so a second
  child with the same name fails to start rather than replace the first.
  """
  @spec child_spec(keyword()) :: Supervisor.child_spec()
  def child_spec(opts) do
    {name, client_opts} = pop_name(opts)

    %{
      id: {__MODULE__, name},
      start: {Erqwest.NamedClient, :start_link, [{name, Options.client(client_opts)}]},
      type: :worker
    }
  end

  @doc """
  Starts a named client linked to the caller, as `child_spec/1` does under
  a supervisor. Takes `:name` and the options of `make_client/1`.

      {:ok, pid} = Erqwest.start_link(name: MyApp.HTTP)
  """
  @spec start_link(keyword()) :: GenServer.on_start()
  def start_link(opts) do
    {name, client_opts} = pop_name(opts)
    Erqwest.NamedClient.start_link({name, Options.client(client_opts)})
  end

  defp pop_name(opts) do
    case Keyword.pop(opts, :name) do
      {name, rest} when is_atom(name) and not is_nil(name) ->
        {name, rest}

      {name, _} ->
        raise ArgumentError,
              "a supervised Erqwest client needs a :name that is an atom, got: #{inspect(name)}"
    end
  end

  @doc """
  What a client has in flight and waiting in its queues, in total and per
  `"host:port"` (hosts with nothing in flight or queued are left out).

      iex> Erqwest.client_info(Erqwest.make_client())
      %{in_flight: 0, queued: 0, hosts: %{}}
  """
  @spec client_info(client()) :: %{
          in_flight: non_neg_integer(),
          queued: non_neg_integer(),
          hosts: %{String.t() => %{in_flight: non_neg_integer(), queued: non_neg_integer()}}
        }
  def client_info(client), do: :erqwest.client_info(erqwest_client(client))

  ## Requests

  @doc """
  Makes a request and waits for the response.

  Takes `:method` (default `:get`), `:url` and the request options in the
  module doc. Returns `{:ok, %Erqwest.Response{}}`, `{:error,
  %Erqwest.Error{}}`, or with `body: :stream` `{:ok, %Erqwest.Upload{}}`.

      iex> {:ok, resp} = Erqwest.request(:default, method: :get, url: "http://example.com/")
      iex> resp.status
      200
      iex> Erqwest.request(:default, method: :get)
      ** (ArgumentError) missing required request option :url
  """
  @spec request(client(), options()) :: result()
  def request(client, opts) do
    {req, read} = Options.request(opts, [])
    run(client, req, read)
  end

  @doc """
  Like `request/2`, but returns the response (or upload) and raises
  `Erqwest.Error` on failure.

      iex> Erqwest.request!(:default, method: :get, url: "http://example.com/").status
      200
  """
  @spec request!(client(), options()) :: Response.t() | Upload.t()
  def request!(client, opts), do: bang(request(client, opts))

  @doc """
  Makes a request with the default client: `request/2` without the
  client. Takes `:method` (default `:get`), `:url` and the request
  options; JSON bodies are decoded unless `decode_body: false`.

      iex> {:ok, resp} = Erqwest.request(url: "http://example.com/")
      iex> resp.status
      200
  """
  @spec request(options()) :: result()
  def request(opts) when is_list(opts) or is_map(opts), do: request(@default, default_opts(opts))

  @doc """
  Like `request/1`, but returns the response and raises `Erqwest.Error`
  on failure.

      iex> Erqwest.request!(method: :head, url: "http://example.com/").status
      200
  """
  @spec request!(options()) :: Response.t() | Upload.t()
  def request!(opts), do: bang(request(opts))

  for method <- [:get, :head, :options, :delete, :post, :put, :patch] do
    upper = method |> Atom.to_string() |> String.upcase()

    example =
      if method in [:post, :put, :patch],
        do:
          ~s|Erqwest.#{method}(:default, "http://example.com/items", body: ~s({"name": "x"}), headers: [{"content-type", "application/json"}])|,
        else: ~s|Erqwest.#{method}(:default, "http://example.com/items/1")|

    default_example =
      if method in [:post, :put, :patch],
        do: ~s|Erqwest.#{method}("http://example.com/items", json: %{name: "x"})|,
        else: ~s|Erqwest.#{method}("http://example.com/items/1")|

    @doc """
    Makes a #{upper} request; see `request/2` for the options and results.

        #{example}

    With the URL first and no client, `#{method}(url, opts)` uses the
    default client (`#{method}/1`).
    """
    @spec unquote(method)(client() | url(), url() | options(), options()) :: result()
    def unquote(method)(client_or_url, url_or_opts, opts \\ [])

    def unquote(method)(url, opts, []) when is_url(url),
      do: unquote(method)(@default, url, default_opts(opts))

    def unquote(method)(client, url, opts) do
      {req, read} = Options.request(opts, method: unquote(method), url: url)
      run(client, req, read)
    end

    @doc """
    Makes a #{upper} request with the default client, which the `:erqwest`
    application starts (see "The default client" in the module doc).
    `#{method}(url, opts)` takes the options of `request/2`.

        #{default_example}
    """
    @spec unquote(method)(url()) :: result()
    def unquote(method)(url) when is_url(url), do: unquote(method)(url, [], [])

    bang = :"#{method}!"

    @doc """
    Like `#{method}/3`, but returns the response and raises `Erqwest.Error`
    on failure. With the URL first, `#{method}!(url, opts)` uses the
    default client.

        #{String.replace(example, "Erqwest.#{method}(", "Erqwest.#{method}!(")}.status
    """
    @spec unquote(bang)(client() | url(), url() | options(), options()) ::
            Response.t() | Upload.t()
    def unquote(bang)(client_or_url, url_or_opts, opts \\ []),
      do: bang(unquote(method)(client_or_url, url_or_opts, opts))

    @doc """
    Like `#{method}/1`: the default client, the response or an
    `Erqwest.Error` raised.

        #{String.replace(default_example, "Erqwest.#{method}(", "Erqwest.#{method}!(")}
    """
    @spec unquote(bang)(url()) :: Response.t() | Upload.t()
    def unquote(bang)(url) when is_url(url), do: bang(unquote(method)(url, [], []))
  end

  @doc """
  Makes a request whose response body is a lazy `Stream` of binaries.

  The request is made now and returns once the status and headers
  arrived; the body is read as the stream is consumed, with the
  `:chunk_size` and `:chunk_period` options. When the consumer stops
  early (`Enum.take/2`, say), the request is cancelled and its connection
  closed. A failure while reading raises `Erqwest.Error` in the consumer.
  The stream must be consumed by the process that made the request, and
  only once.

  The method defaults to `:get`; pass `:method` for another one.

      iex> {:ok, resp} = Erqwest.stream(:default, "http://example.com/")
      iex> resp.status
      200
      iex> resp.body |> Enum.join() |> is_binary()
      true
  """
  @spec stream(client(), url(), options()) :: result()
  def stream(client, url, opts \\ []) do
    {req, read} = Options.request(opts, url: url, response_body: :stream)
    run(client, req, read)
  end

  @doc """
  Like `stream/3`, but returns the response and raises `Erqwest.Error` on
  failure.

      Erqwest.stream!(:default, "http://example.com/big").body
      |> Stream.into(File.stream!("big"))
      |> Stream.run()
  """
  @spec stream!(client(), url(), options()) :: Response.t() | Upload.t()
  def stream!(client, url, opts \\ []), do: bang(stream(client, url, opts))

  @doc """
  A paginated listing as a lazy stream of pages (`Erqwest.Response`), or
  of their items with `items:`; the next page is requested while the
  caller works on the current one. Options and strategies (`next: :link`,
  `{:json, pointer}`, `{:cursor, param, pointer}`, `{:page, param,
  first}`, a function) are in `Erqwest.Pages`.

      iex> Erqwest.paginate(:default, "http://example.com/") |> Enum.map(& &1.status)
      [200]
  """
  @spec paginate(client(), url() | options(), keyword()) :: Enumerable.t()
  defdelegate paginate(client, url_or_request, opts \\ []), to: Erqwest.Pages

  ## Internals

  defp run(client, %{body: body} = req, read)
       when not (is_binary(body) or is_list(body) or body == :stream) do
    # An Enumerable body goes through an upload, chunk by chunk.
    case run(client, %{req | body: :stream}, read) do
      {:ok, upload} -> upload |> Upload.write_all(body) |> Upload.finish()
      {:error, _} = error -> error
    end
  end

  defp run(client, req, read) do
    case :erqwest.req(erqwest_name(client), req) do
      {:ok, resp} when req.body == :stream ->
        # The server answered before any body was sent.
        {:ok, %Upload{reply: {:ok, response(resp, read)}}}

      {:ok, resp} ->
        {:ok, response(resp, read)}

      {:handle, handle} ->
        {:ok, %Upload{handle: handle, read: read}}

      {:error, err} ->
        {:error, Error.new(err)}
    end
  end

  # Calls without a client decode JSON bodies, as a client made from
  # Elixir does, whatever the default client's own setting.
  defp default_opts(opts) when is_map(opts), do: Map.put_new(opts, :decode_body, true)
  defp default_opts(opts) when is_list(opts), do: Keyword.put_new(opts, :decode_body, true)
  defp default_opts(opts), do: opts

  defp bang({:ok, value}), do: value
  defp bang({:error, %Error{} = error}), do: raise(error)

  @doc false
  # An Erlang resp() as a Response; a streamed body (a handle) becomes a
  # lazy Stream that reads with `read` (the Erlang read_opts()). A handle
  # is a tuple, which a decoded JSON body never is.
  @spec response(:erqwest.resp(), map()) :: Response.t()
  def response(resp, read \\ %{})

  def response(%{body: body} = resp, read) when is_tuple(body) do
    %{Response.new(resp) | body: body_stream(body, Map.put_new(read, :length, 1))}
  end

  def response(resp, _read), do: Response.new(resp)

  # The stream's state is the handle while the body is being read, :done
  # after the last chunk, or {:raise, ...} once the request is over with an
  # error. Only a handle is cancelled when the consumer stops: cancelling
  # after the final message was consumed is not needed, and :erqwest.cancel/1
  # can then wait for a message that will not come.
  defp body_stream(handle, read) do
    Stream.resource(
      fn -> handle end,
      fn
        :done -> {:halt, :done}
        {:raise, e, nil} -> raise e
        {:raise, e, stacktrace} -> reraise e, stacktrace
        handle -> read_chunk(handle, read)
      end,
      fn
        :done -> :ok
        {:raise, _, _} -> :ok
        handle -> :erqwest.cancel(handle)
      end
    )
  end

  defp read_chunk(handle, read) do
    case :erqwest.read(handle, read) do
      {:more, ""} -> {[], handle}
      {:more, data} -> {[data], handle}
      {:ok, ""} -> {[], :done}
      {:ok, data} -> {[data], :done}
      {:error, err} -> {[], {:raise, Error.new(err), nil}}
    end
  rescue
    # :erqwest.read/2 raises badarg after the last chunk.
    ArgumentError ->
      message = "this response body was read already (a streamed body can be enumerated once)"
      {[], {:raise, ArgumentError.exception(message), __STACKTRACE__}}
  end

  defp with_client_errors(fun) do
    fun.()
  rescue
    e in ArgumentError ->
      # The shapes were checked already, so the content is at fault.
      reraise ArgumentError, "could not make the client: " <> Exception.message(e), __STACKTRACE__
  end

  defp erqwest_client(client), do: Erqwest.NamedClient.resolve(client)

  # A name is passed on as a name, which stubs (Erqwest.Test) and
  # telemetry metadata go by; an unknown one still gets the message above,
  # unless a test stubbed it.
  defp erqwest_name(name) when is_atom(name) do
    _ = :erqwest_test.stubbed(name) or erqwest_client(name)
    name
  end

  defp erqwest_name(client), do: client
end
