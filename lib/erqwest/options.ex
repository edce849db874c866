defmodule Erqwest.Options do
  @moduledoc false
  # Turns the keyword lists (or maps) of the Elixir API into the option maps
  # of the Erlang API. Only shapes are checked here, so that a mistake names
  # the offending key; contents (does the URL parse, is the header name a
  # token, does the certificate open) stay the Erlang and Rust layers' job.

  @methods [:get, :post, :put, :delete, :head, :options, :patch, :trace, :connect]
  @tls_versions [:tlsv1, :"tlsv1.1", :"tlsv1.2", :"tlsv1.3"]

  # key => check; the keys are listed in error messages in this order.
  @client_checks [
    follow_redirects: :redirects,
    timeout: :ms,
    connect_timeout: :ms,
    read_timeout: :ms,
    pool_idle_timeout: :ms,
    pool_max_idle_per_host: :non_neg_integer,
    proxy: :proxy,
    https_only: :boolean,
    cookie_store: :boolean,
    gzip: :boolean,
    brotli: :boolean,
    deflate: :boolean,
    zstd: :boolean,
    http2_prior_knowledge: :boolean,
    http1_only: :boolean,
    tcp_nodelay: :boolean,
    tcp_keepalive: :ms,
    local_address: :ip,
    user_agent: :binary,
    default_headers: :headers,
    resolve: :resolve,
    identity: :identity,
    additional_root_certs: :binaries,
    use_built_in_root_certs: :boolean,
    danger_accept_invalid_hostnames: :boolean,
    danger_accept_invalid_certs: :boolean,
    min_tls_version: {:one_of, @tls_versions},
    retry: :retry,
    hedge: :hedge,
    timings: :boolean,
    queue_timeout: :ms,
    max_in_flight: :limit,
    max_in_flight_per_host: :limit,
    max_body: :max_body
  ]
  # Request defaults above the transport (lib/erqwest/compose.ex).
  @client_checks @client_checks ++ Erqwest.Compose.client_checks()

  # `retry: true` from Elixir means Req's :safe_transient: GET and HEAD
  # only, after a timeout, a refused or closed connection, or a 408, 429,
  # 500, 502, 503 or 504 (the Erlang default statuses). Never another
  # connect failure (a name that does not resolve, a certificate that does
  # not verify). Settings given as a list start from the same.
  @safe_transient %{methods: [:get, :head], errors: [:timeout, :refused, :closed]}

  # Retries on by default for Elixir clients (Erlang clients keep erqwest
  # 0.2.5's behaviour: none).
  @client_defaults %{retry: @safe_transient}
  @retry_keys [:max_retries, :methods, :statuses, :errors, :base, :max, :max_retry_after, :budget]

  @request_checks [
    method: {:one_of, @methods},
    url: :url,
    headers: :headers,
    body: :body,
    response_body: {:one_of, [:complete, :stream]},
    timeout: :ms,
    retry: :retry,
    hedge: :hedge,
    timings: :boolean,
    queue_timeout: :ms,
    max_body: :max_body
  ]
  @request_checks @request_checks ++ Erqwest.Compose.request_checks()

  @read_checks [chunk_size: :non_neg_integer, chunk_period: :ms]

  @doc "Client option keys, in the order error messages list them."
  @spec client_keys() :: [atom()]
  def client_keys, do: Keyword.keys(@client_checks)

  @doc "The `client_opts()` map for `:erqwest.make_client/1`."
  @spec client(Enumerable.t()) :: map()
  def client(opts) do
    opts
    |> to_pairs()
    |> convert(@client_checks, "client")
    |> Erqwest.Compose.client()
    |> Map.new()
    |> then(&Map.merge(@client_defaults, &1))
  end

  @doc """
  The `req_opts()` map for a request, and the `read_opts()` map for a
  streamed response body. `fixed` holds what the calling function sets
  itself (the method and URL of `get/3`); those keys are not accepted in
  `opts`.
  """
  @spec request(Enumerable.t(), keyword()) :: {map(), map()}
  def request(opts, fixed) do
    all = @request_checks ++ @read_checks
    checks = Keyword.drop(all, Keyword.keys(fixed))
    pairs = opts |> to_pairs() |> convert(checks, "request")
    {read, req} = Keyword.split(pairs, Keyword.keys(@read_checks))

    req =
      req
      |> Keyword.merge(convert(fixed, all, "request"))
      |> Erqwest.Compose.request()
      |> Map.new()

    unless Map.has_key?(req, :url) do
      raise ArgumentError, "missing required request option :url"
    end

    read = for {k, v} <- read, into: %{}, do: {read_key(k), v}
    {Map.put_new(req, :method, :get), read}
  end

  defp read_key(:chunk_size), do: :length
  defp read_key(:chunk_period), do: :period

  @doc "Header lists: a list of `{name, value}` or a map, as strings."
  @spec headers(term()) :: {:ok, [{binary(), binary()}]} | :error
  def headers(headers) when is_map(headers), do: headers(Map.to_list(headers))

  def headers(headers) when is_list(headers) do
    if Enum.all?(headers, &header?/1), do: {:ok, headers}, else: :error
  end

  def headers(_), do: :error

  defp header?({name, value}), do: is_binary(name) and is_binary(value)
  defp header?(_), do: false

  ## Internals

  defp to_pairs(opts) when is_map(opts) and not is_struct(opts), do: to_pairs(Map.to_list(opts))

  defp to_pairs(opts) when is_list(opts) do
    Enum.map(opts, fn
      {k, _} = pair when is_atom(k) ->
        pair

      other ->
        raise ArgumentError,
              "expected options as a keyword list or a map with atom keys, got: #{inspect(other)}"
    end)
  end

  defp to_pairs(other) do
    raise ArgumentError,
          "expected options as a keyword list or a map, got: #{inspect(other)}"
  end

  defp convert(pairs, checks, kind) do
    Enum.map(pairs, fn {key, value} ->
      case Keyword.fetch(checks, key) do
        {:ok, check} ->
          case check(check, value) do
            {:ok, v} ->
              {key, v}

            :error ->
              raise ArgumentError,
                    "invalid value for #{kind} option #{inspect(key)}: #{inspect(value)} " <>
                      "(expected #{expected(check)})"
          end

        :error ->
          raise ArgumentError,
                "unknown #{kind} option #{inspect(key)}; the accepted options are: " <>
                  Enum.map_join(Keyword.keys(checks), ", ", &inspect/1)
      end
    end)
  end

  defp check(:boolean, v) when is_boolean(v), do: {:ok, v}
  defp check(:ms, v) when (is_integer(v) and v >= 0) or v == :infinity, do: {:ok, v}
  defp check(:non_neg_integer, v) when is_integer(v) and v >= 0, do: {:ok, v}
  defp check(:max_body, v) when (is_integer(v) and v >= 0) or v == :infinity, do: {:ok, v}
  defp check(:redirects, v) when is_boolean(v) or (is_integer(v) and v >= 0), do: {:ok, v}
  defp check(:binary, v) when is_binary(v), do: {:ok, v}
  defp check({:one_of, allowed}, v), do: if(v in allowed, do: {:ok, v}, else: :error)
  defp check(:url, %URI{} = v), do: {:ok, URI.to_string(v)}
  defp check(:url, v) when is_binary(v), do: {:ok, v}
  defp check(:headers, v), do: headers(v)
  defp check({:compose, name}, v), do: Erqwest.Compose.check(name, v)

  defp check(:binaries, v) when is_list(v),
    do: if(Enum.all?(v, &is_binary/1), do: {:ok, v}, else: :error)

  defp check(:ip, v), do: ip(v)

  defp check(:identity, {der, password} = v) when is_binary(der) and is_binary(password),
    do: {:ok, v}

  defp check(:identity, {:pem, pem} = v) when is_binary(pem), do: {:ok, v}

  defp check(:identity, {:pem, certs, key} = v) when is_binary(certs) and is_binary(key),
    do: {:ok, v}

  defp check(:resolve, v) when is_map(v), do: check(:resolve, Map.to_list(v))

  defp check(:resolve, v) when is_list(v) do
    ok? =
      Enum.all?(v, fn
        {host, {ip, port}} when is_binary(host) and port in 0..65535 -> ip(ip) != :error
        _ -> false
      end)

    if ok?, do: {:ok, v}, else: :error
  end

  defp check(:proxy, v) when v in [:system, :no_proxy], do: {:ok, v}

  defp check(:proxy, rules) when is_list(rules) do
    converted = Enum.map(rules, &proxy_rule/1)
    if :error in converted, do: :error, else: {:ok, converted}
  end

  # Bodies: iodata is sent at once, any other Enumerable is streamed by the
  # caller (see Erqwest.request/2), :stream hands back an Erqwest.Upload.
  defp check(:body, :stream), do: {:ok, :stream}
  defp check(:body, v) when is_binary(v) or is_list(v), do: {:ok, v}
  defp check(:body, %{__struct__: _} = v), do: enumerable(v)
  defp check(:body, v) when is_function(v, 2), do: {:ok, v}

  # Retry and hedge settings: only the keys are checked here, the values
  # by the NIF (which raises ArgumentError for a bad one).
  defp check(:retry, true), do: {:ok, @safe_transient}
  defp check(:retry, false), do: {:ok, false}

  defp check(:retry, v) do
    with {:ok, map} <- settings(v, @retry_keys, &retry_value/2),
         do: {:ok, Map.merge(@safe_transient, map)}
  end

  defp check(:hedge, false), do: {:ok, false}

  defp check(:hedge, v) do
    case settings(v, [:delay, :max], fn _, x -> x end) do
      {:ok, %{delay: _}} = ok -> ok
      _ -> :error
    end
  end

  defp check(:limit, :infinity), do: {:ok, :infinity}
  defp check(:limit, v) when is_integer(v) and v > 0, do: {:ok, v}
  defp check(_, _), do: :error

  defp settings(v, keys, convert) do
    case keyword_or_map(v) do
      {:ok, map} ->
        if Enum.all?(Map.keys(map), &(&1 in keys)),
          do: {:ok, Map.new(map, fn {k, x} -> {k, convert.(k, x)} end)},
          else: :error

      :error ->
        :error
    end
  end

  defp retry_value(:budget, b) when is_list(b), do: Map.new(b)
  defp retry_value(_, x), do: x

  defp enumerable(v), do: if(Enumerable.impl_for(v), do: {:ok, v}, else: :error)

  defp proxy_rule({scheme, spec}) when scheme in [:http, :https, :all] do
    case keyword_or_map(spec) do
      {:ok, %{url: url} = map} ->
        url = if is_struct(url, URI), do: URI.to_string(url), else: url
        extra = map |> Map.drop([:url, :basic_auth]) |> map_size()

        good_auth? =
          match?({u, p} when is_binary(u) and is_binary(p), Map.get(map, :basic_auth, {"", ""}))

        if is_binary(url) and good_auth? and extra == 0,
          do: {scheme, %{map | url: url}},
          else: :error

      _ ->
        :error
    end
  end

  defp proxy_rule(_), do: :error

  defp keyword_or_map(m) when is_map(m), do: {:ok, m}

  defp keyword_or_map(l) when is_list(l),
    do: if(Keyword.keyword?(l), do: {:ok, Map.new(l)}, else: :error)

  defp keyword_or_map(_), do: :error

  defp ip(v) when is_tuple(v) do
    case :inet.ntoa(v) do
      {:error, _} -> :error
      _ -> {:ok, v}
    end
  end

  defp ip(_), do: :error

  defp expected(:boolean), do: "a boolean"
  defp expected(:ms), do: "a non-negative integer of milliseconds or :infinity"
  defp expected(:non_neg_integer), do: "a non-negative integer"
  defp expected(:max_body), do: "a non-negative integer of bytes or :infinity"
  defp expected(:redirects), do: "a boolean or a non-negative integer (the limit)"
  defp expected(:binary), do: "a string"
  defp expected({:one_of, allowed}), do: "one of " <> Enum.map_join(allowed, ", ", &inspect/1)
  defp expected(:url), do: "a string or a URI"
  defp expected(:headers), do: "a list of {name, value} strings, or a map of them"
  defp expected(:binaries), do: "a list of binaries"
  defp expected(:ip), do: "an IP address tuple such as {127, 0, 0, 1}"

  defp expected(:identity),
    do: "{pkcs12_der, password}, {:pem, certs_and_key} or {:pem, certs, key}"

  defp expected(:resolve), do: "a list of {host, {ip_tuple, port}}"

  defp expected(:proxy),
    do:
      ":system, :no_proxy or a list of {:http | :https | :all, [url: url, basic_auth: {user, pass}]}"

  defp expected(:body), do: "iodata, an Enumerable of iodata, or :stream"
  defp expected({:compose, name}), do: Erqwest.Compose.expected(name)

  defp expected(:retry),
    do: "a boolean, or a keyword list or map of " <> Enum.map_join(@retry_keys, ", ", &inspect/1)

  defp expected(:hedge), do: "false, or a keyword list or map with :delay (and :max)"
  defp expected(:limit), do: "a positive integer or :infinity"
end
