defmodule Erqwest.Pages do
  @moduledoc ~S"""
  Paginated resources as a lazy stream: `Erqwest.paginate/3` follows the
  next page on demand, with the page after it already on its way. A thin
  layer on `:erqwest_pages`, whose documentation has the details.

  Nothing is requested before the first element is asked for. When page
  N arrives, the request for page N+1 is sent (unless `prefetch: false`),
  so that it runs in erqwest's runtime while the caller works on page N;
  never more than one page ahead. When the enumeration stops early
  (`Enum.take/2`, `Stream.take_while/2`, an exception), that request is
  cancelled. A failed page raises `Erqwest.Error` during enumeration, as
  `File.stream!/3` does, with `code` `:http_status` (a status outside
  200..299), `:pagination` (a loop, a next URL on another host, a body
  where the pointers find the wrong kind of value) or a request's own code.

  ## Strategies (`:next`)

    * `:link` (the default) — the `rel="next"` link of the `Link` headers
      (RFC 8288), as GitHub and GitLab send
    * `{:json, pointer}` — the next URL at a JSON Pointer (RFC 6901) in the
      body: `"/links/next"` (JSON:API), `"/@odata.nextLink"` (OData),
      `"/_links/next/href"` (HAL); `null` or absent ends
    * `{:cursor, param, pointer}` — the value at `pointer` goes into query
      parameter `param` of the first request (Slack's
      `"/response_metadata/next_cursor"`); `""`, `null` or absent ends
    * `{:page, param, first}` — `param` counts up from `first` until a page
      has no items (needs `:items`)
    * a function of the page's `Erqwest.Response` returning `{:url, url}`,
      `{:request, request_options}` or `:done`

  Relative next URLs are resolved against the page's URL. A next URL
  replaces the whole URL; the other request options (headers, method,
  body) carry over to every page.

  ## Options

    * `:items` — a JSON Pointer to the items of a page (`"/data"`,
      `"/value"`, `""` for a top-level array): the stream then emits items
      instead of `Erqwest.Response` structs
    * `:max_pages` — stop after this many pages (default `:infinity`)
    * `:prefetch` — request the next page as soon as one arrives (default
      `true`)
    * `:timeout` — milliseconds for each page's request
    * `:cross_host` — follow next URLs to another scheme, host or port
      (default `false`, which raises a `:pagination` error); the first
      request's `:auth`, `authorization`, `proxy-authorization` and
      `cookie` headers are not sent there (a client's default `auth` is
      sent by the client to every request: use a per-request one)

  The JSON strategies and `:items` decode bodies in the runtime, so a
  page's `body` is then the decoded term.

  ## Examples

  A GitHub-style listing (`Link` headers):

      Erqwest.paginate(:default, "https://api.github.com/repos/elixir-lang/elixir/issues",
        headers: [{"accept", "application/vnd.github+json"}],
        max_pages: 5
      )
      |> Stream.flat_map(fn %Erqwest.Response{body: body} -> decode(body) end)
      |> Enum.take(50)

  A JSON:API listing:

      Erqwest.paginate(:default, "https://api.example.com/articles",
        next: {:json, "/links/next"},
        items: "/data"
      )
      |> Enum.map(fn %{"id" => id} -> id end)
  """

  alias Erqwest.{Error, Options, Response}

  @keys [:next, :items, :max_pages, :prefetch, :timeout, :cross_host]

  @typedoc "Where the next page is (see the module doc): `:link` or `{:json, \"/links/next\"}`."
  @type strategy ::
          :link
          | {:json, String.t()}
          | {:cursor, String.t(), String.t()}
          | {:page, String.t(), integer()}
          | (Response.t() -> {:url, String.t()} | {:request, Erqwest.options()} | :done)

  @doc """
  A lazy stream of the pages of a listing (`Erqwest.Response` structs),
  or of their items with `:items`. `url_or_request` is a URL or request
  options with `:url`. Options are checked at once (an `ArgumentError`);
  nothing is sent until the stream is enumerated.

      iex> stream = Erqwest.Pages.paginate(:default, "http://127.0.0.1:1/", next: :link)
      iex> is_function(stream, 2)
      true
      iex> Erqwest.Pages.paginate(:default, "http://127.0.0.1:1/", pages: 3)
      ** (ArgumentError) unknown pagination option :pages; the accepted options are: :next, :items, :max_pages, :prefetch, :timeout, :cross_host
  """
  @spec paginate(Erqwest.client(), Erqwest.url() | Erqwest.options(), keyword()) :: Enumerable.t()
  def paginate(client, url_or_request, opts \\ []) do
    req = request(url_or_request)
    page_opts = page_opts(opts)
    items? = Map.has_key?(page_opts, :items)

    Stream.resource(
      fn -> :erqwest_pages.new(client, req, page_opts) end,
      fn
        :done -> {:halt, :done}
        pages -> next(pages, items?)
      end,
      # After the last page nothing is in flight; otherwise (a halt, or an
      # exception in the consumer) close/1 cancels the prefetched request.
      fn
        :done -> :ok
        pages -> :erqwest_pages.close(pages)
      end
    )
  end

  defp next(pages, items?) do
    case :erqwest_pages.next(pages) do
      {:ok, %{items: items}, pages} when items? -> {items, pages}
      {:ok, resp, pages} -> {[Response.new(resp)], pages}
      :done -> {:halt, :done}
      {:error, err} -> raise Error.new(err)
    end
  end

  defp request(url) when is_binary(url) or is_struct(url, URI) do
    {req, _read} = Options.request([], url: url)
    req
  end

  defp request(opts) when is_list(opts) or is_map(opts) do
    {req, _read} = Options.request(opts, [])
    req
  end

  defp request(other) do
    raise ArgumentError, "expected a URL or request options, got: #{inspect(other)}"
  end

  defp page_opts(opts) when is_list(opts) do
    Map.new(opts, fn
      {key, value} when key in @keys ->
        {key, check(key, value)}

      {key, _} ->
        raise ArgumentError,
              "unknown pagination option #{inspect(key)}; the accepted options are: " <>
                Enum.map_join(@keys, ", ", &inspect/1)

      other ->
        raise ArgumentError, "expected a keyword list of options, got: #{inspect(other)}"
    end)
  end

  defp page_opts(opts) do
    raise ArgumentError, "expected a keyword list of options, got: #{inspect(opts)}"
  end

  defp check(:next, :link), do: :link
  defp check(:next, {:json, p}), do: {:json, pointer(p)}
  defp check(:next, {:cursor, param, p}) when is_binary(param), do: {:cursor, param, pointer(p)}

  defp check(:next, {:page, param, n}) when is_binary(param) and is_integer(n),
    do: {:page, param, n}

  defp check(:next, fun) when is_function(fun, 1),
    do: fn resp -> from_fun(fun.(Response.new(resp))) end

  defp check(:items, p), do: pointer(p)
  defp check(:max_pages, n) when (is_integer(n) and n > 0) or n == :infinity, do: n
  defp check(:prefetch, b) when is_boolean(b), do: b
  defp check(:cross_host, b) when is_boolean(b), do: b
  defp check(:timeout, t) when (is_integer(t) and t >= 0) or t == :infinity, do: t

  defp check(key, value) do
    raise ArgumentError, "invalid value for pagination option #{inspect(key)}: #{inspect(value)}"
  end

  defp pointer(p) do
    case :erqwest_json_pointer.parse(p) do
      {:ok, _} -> p
      {:error, reason} -> raise ArgumentError, "#{reason}: #{inspect(p)}"
    end
  end

  defp from_fun({:url, url}), do: {:url, to_string(url)}

  defp from_fun({:request, opts}) do
    {req, _read} = Options.request(opts, [])
    {:request, req}
  end

  defp from_fun(other), do: other
end
