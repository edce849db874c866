defmodule Erqwest.Req do
  @moduledoc """
  erqwest as [Req](https://hexdocs.pm/req)'s adapter (Req 0.5), in place
  of Finch.

      req = Req.new(base_url: "https://api.example.com") |> Erqwest.Req.attach()
      Req.get!(req, url: "/users", params: [page: 2]).body

  `attach/2` only replaces the step that makes the HTTP call, so Req's
  own steps work as before on top of it: `base_url`, `params`, `auth`,
  `json`/`form` bodies, redirects, retries, compression and decompression,
  decoding, `raw: true`, `http_errors`, checksums and caching. The request
  body may be iodata or any `Enumerable` (streamed chunk by chunk with
  backpressure), and `into:` may be a function, a collectable or `:self`
  (`Req.parse_message/2`, `Req.cancel_async_response/1` and enumerating
  `Req.Response.Async` all work).

  ## What the adapter leaves to Req

  Req follows redirects, retries, decompresses and decodes bodies itself,
  so erqwest must not do it first. The default client (registered as
  `:erqwest_req_default` on first use) is made with
  `client_options/0`: no redirects, no retries, no decompression (no
  `accept-encoding` of erqwest's: Req's `compressed` step sends its own),
  no JSON decoding, and no proxy from the environment, as with Finch.

  With `client: name`, every request also turns off that client's
  retries, JSON decoding and default credentials. Redirect following and
  decompression are client settings, so make the client with
  `client_options/0` merged into yours:

      children = [{Erqwest, [name: MyApp.HTTP, timeout: 60_000] ++ Erqwest.Req.client_options()}]

  ## Timeouts

  `receive_timeout` (Req's default: 15 s) bounds each wait: for a complete
  body (no `into:`) it is erqwest's `:timeout` for the whole request; with
  `into:` or a streamed request body, it bounds the wait for the response
  head and for each chunk of the body, as with Finch, so a long download
  that keeps arriving is not cut off.

  Finch's own options (`:connect_options`, `:pool_timeout`, `:finch`,
  `:inet6`, `:unix_socket`) have no effect here: set the erqwest client's
  (`:connect_timeout`, `:queue_timeout`, `:local_address`...) instead.

  ## Errors

  Transport failures are `Req.TransportError` with Mint's reason atoms:
  `:econnrefused`, `:nxdomain`, `:timeout`, `:closed` (a body cut off),
  `:econnreset`, `:ehostunreach`, so Req's retry step retries them as it
  does on Finch. Other failures (a URL that does not parse, a TLS
  certificate that is not trusted) are `Erqwest.Error`.

  Req is not a dependency of erqwest: this module calls it at run time,
  and compiles whether or not Req is present.
  """

  # Req may be absent when erqwest is compiled (it is an optional peer):
  # every call into it is made at run time, and no struct of its is
  # written literally, so that this module compiles the same either way.
  @compile {:no_warn_undefined,
            [Req.Request, Req.Response, Req.Response.Async, Req.TransportError]}

  alias Erqwest.Adapter

  @private_key :erqwest_client

  @doc """
  Makes erqwest the adapter of `req` (a `Req.Request`).

  Options:

    * `:client` — an erqwest client or the name it is registered under;
      by default a client registered as `:erqwest_req_default`, started
      with `client_options/0` on first use

  Raises `ArgumentError` for another option.

      iex> req = Req.new(url: "http://127.0.0.1:1/") |> Erqwest.Req.attach(client: :my_client)
      iex> req.adapter == (&Erqwest.Req.run/1)
      true
  """
  @spec attach(struct(), keyword()) :: struct()
  def attach(req, opts \\ []) do
    client =
      Enum.reduce(opts, nil, fn
        {:client, client}, _ when is_atom(client) or is_reference(client) ->
          client

        other, _ ->
          raise ArgumentError,
                "bad Erqwest.Req.attach/2 option #{inspect(other)}; " <>
                  "the accepted option is :client (a client or a registered name)"
      end)

    req
    |> Req.Request.put_private(@private_key, client)
    |> Map.put(:adapter, &__MODULE__.run/1)
  end

  @doc """
  The options of the client the adapter uses by default, for a client of
  your own under Req: redirects, retries, decompression and decoding off
  (Req does them), no proxy from the environment, 30 s to connect.

      iex> Erqwest.Req.client_options()[:follow_redirects]
      false
  """
  @spec client_options() :: keyword()
  def client_options, do: Adapter.client_options()

  @doc """
  The adapter step itself: `fn request -> {request, response | exception}`.
  `attach/2` installs it; `Req.new(adapter: &Erqwest.Req.run/1)` does
  the same with the default client.
  """
  @spec run(struct()) :: {struct(), struct() | Exception.t()}
  def run(request) do
    named = Req.Request.get_private(request, @private_key)
    client = Adapter.client(named)
    timeout = Map.get(request.options, :receive_timeout, 15_000)

    case method(request.method) do
      {:ok, method} ->
        url = URI.to_string(request.url)

        headers =
          for {name, values} <- request.headers, value <- List.wrap(values), do: {name, value}

        erq = Adapter.request(method, url, headers, is_nil(named))
        dispatch(request, client, erq, timeout)

      :error ->
        {request,
         ArgumentError.exception("erqwest does not send #{inspect(request.method)} requests")}
    end
  end

  @methods ~w(get post put delete head options patch trace connect)a
  defp method(m) when m in @methods, do: {:ok, m}

  defp method(m) when is_binary(m) do
    atom = m |> String.downcase() |> String.to_existing_atom()
    if atom in @methods, do: {:ok, atom}, else: :error
  rescue
    ArgumentError -> :error
  end

  defp method(_), do: :error

  defp dispatch(request, client, erq, timeout) do
    body = request.body

    case request.into do
      nil ->
        if Adapter.streamed_body?(body),
          do: collect(request, client, erq, timeout, ""),
          else:
            complete(
              request,
              client,
              Map.merge(erq, %{body: Adapter.body(body), timeout: timeout})
            )

      fun when is_function(fun, 2) ->
        into_fun(request, client, erq, timeout, fun)

      :self ->
        into_self(request, client, erq, timeout)

      :legacy_self ->
        {request, ArgumentError.exception("into: :legacy_self is not supported; use into: :self")}

      collectable ->
        collect(request, client, erq, timeout, collectable)
    end
  end

  # A complete response, on whichever engine erqwest picks.
  defp complete(request, client, erq) do
    case :erqwest.req(client, erq) do
      {:ok, resp} -> {request, response(resp, Map.get(resp, :body, ""))}
      {:error, err} -> {request, exception(err)}
    end
  end

  # into: fun. Chunks go to the function until it halts (then the request
  # is cancelled) or the body ends.
  defp into_fun(request, client, erq, timeout, fun) do
    with_started(request, client, erq, timeout, fn resp, state ->
      feed(state, {request, response(resp, "")}, fun)
    end)
  end

  defp feed(state, {request, _} = acc, fun) do
    case Adapter.next(state) do
      {:data, data} ->
        case fun.({:data, data}, acc) do
          {:cont, acc} ->
            feed(state, acc, fun)

          {:halt, acc} ->
            Adapter.cancel(state)
            acc
        end

      {:fin, ""} ->
        acc

      {:fin, data} ->
        {:cont, acc} = cont(fun.({:data, data}, acc))
        acc

      {:error, err} ->
        {request, exception(err)}
    end
  end

  # The last chunk's {:halt, acc} ends things as {:cont, acc} would.
  defp cont({_, acc}), do: {:cont, acc}

  # into: collectable (and a streamed request body with no into:). As on
  # Finch, only a 200's body goes into the collectable; another status's
  # body is collected into a binary, for Req's error handling to see.
  defp collect(request, client, erq, timeout, collectable) do
    with_started(request, client, erq, timeout, fn resp, state ->
      {acc, collector} = Collectable.into(if resp.status == 200, do: collectable, else: "")
      collect_loop(state, request, resp, acc, collector)
    end)
  end

  defp collect_loop(state, request, resp, acc, collector) do
    case Adapter.next(state) do
      {:data, data} ->
        collect_loop(state, request, resp, collector.(acc, {:cont, data}), collector)

      {:fin, data} ->
        acc = if data == "", do: acc, else: collector.(acc, {:cont, data})
        {request, response(resp, collector.(acc, :done))}

      {:error, err} ->
        collector.(acc, :halt)
        {request, exception(err)}
    end
  end

  defp with_started(request, client, erq, timeout, fun) do
    case Adapter.start(client, erq, request.body, timeout) do
      {:ok, resp, state} ->
        try do
          fun.(resp, state)
        catch
          kind, reason ->
            # The into: function or collectable failed: stop the request
            # and take its messages out of the mailbox before failing.
            Adapter.cancel(state)
            :erlang.raise(kind, reason, __STACKTRACE__)
        end

      {:error, err} ->
        {request, exception(err)}
    end
  end

  ## into: :self

  # A relay process owns the request and sends the caller {ref, message}
  # tuples, the shape Req.Response.Async receives; the caller parses them
  # with parse/2. The relay ends when the body does, on cancel, or when
  # the caller goes away (it monitors it), cancelling the request then.
  defp into_self(request, client, erq, timeout) do
    caller = self()
    ref = make_ref()
    body = request.body

    {relay, mref} = spawn_monitor(fn -> relay(caller, ref, client, erq, body, timeout) end)

    receive do
      {^ref, {:head, resp}} ->
        Process.demonitor(mref, [:flush])

        async =
          struct(Req.Response.Async,
            pid: caller,
            ref: ref,
            stream_fun: &parse_message/2,
            cancel_fun: fn ref -> cancel_relay(relay, ref) end
          )

        {request, response(resp, async)}

      {^ref, {:error, e}} ->
        Process.demonitor(mref, [:flush])
        {request, e}

      {:DOWN, ^mref, :process, _, reason} ->
        {request, RuntimeError.exception("the erqwest relay failed: #{inspect(reason)}")}
    end
  end

  defp relay(caller, ref, client, erq, body, timeout) do
    # A cancel from the caller, or the caller's end, stops the request
    # during any wait (Erqwest.Adapter's stop and watch).
    watch = Process.monitor(caller)

    case Adapter.start(client, erq, body, timeout, stop: ref, watch: watch) do
      {:ok, resp, state} ->
        send(caller, {ref, {:head, resp}})
        relay_loop(caller, ref, state)

      {:error, err} ->
        send(caller, {ref, {:error, exception(err)}})

      :stopped ->
        :ok
    end
  end

  defp relay_loop(caller, ref, state) do
    case Adapter.next(state) do
      {:data, data} ->
        send(caller, {ref, {:data, data}})
        relay_loop(caller, ref, state)

      {:fin, data} ->
        if data != "", do: send(caller, {ref, {:data, data}})
        send(caller, {ref, :done})

      {:error, err} ->
        send(caller, {ref, {:error, exception(err)}})

      :stopped ->
        :ok
    end
  end

  @doc false
  # Req.Response.Async's stream_fun: what Req.parse_message/2 returns.
  @spec parse_message(reference(), term()) :: {:ok, list()} | {:error, Exception.t()} | :unknown
  def parse_message(ref, {ref, {:data, data}}), do: {:ok, [data: data]}
  def parse_message(ref, {ref, :done}), do: {:ok, [:done]}
  def parse_message(ref, {ref, {:error, e}}), do: {:error, e}
  def parse_message(_ref, _message), do: :unknown

  # Req.Response.Async's cancel_fun: stops the relay (which cancels the
  # request) and drops what it sent that was not read.
  defp cancel_relay(relay, ref) do
    mref = Process.monitor(relay)
    send(relay, {:erqwest_adapter_stop, ref})

    receive do
      {:DOWN, ^mref, :process, _, _} -> :ok
    after
      # The relay cancels at once; should it not, its end cancels the
      # request too (a handle whose owner died is cancelled).
      5_000 ->
        Process.exit(relay, :kill)

        receive do
          {:DOWN, ^mref, :process, _, _} -> :ok
        end
    end

    flush(ref)
  end

  defp flush(ref) do
    receive do
      {^ref, _} -> flush(ref)
    after
      0 -> :ok
    end
  end

  ## Conversions

  defp response(resp, body) do
    Req.Response.new(status: resp.status, headers: resp.headers, body: body)
  end

  defp exception(err) do
    case Adapter.transport_reason(err) do
      nil -> Erqwest.Error.new(err)
      reason -> Req.TransportError.exception(reason: reason)
    end
  end
end
