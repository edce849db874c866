defmodule Erqwest.Test do
  @moduledoc """
  Stubbed answers for a client in your application's tests, in the
  spirit of `Req.Test` and Mox: a test replaces what a client answers,
  for itself and the processes it starts, without a server.

      # config/test.exs points the application at a client name, say MyApp.HTTP
      test "shows the weather" do
        Erqwest.Test.stub(MyApp.HTTP, fn %{method: :get, url: "https://api.test/weather"} ->
          %Erqwest.Response{status: 200, body: %{"temp" => 21}}
        end)

        assert MyApp.Weather.now() == 21
      end

  The function gets the request as a map: `:method` (an atom), `:url`
  (the URL as given, with `:params` appended), `:headers`, `:body` (a
  binary: the body given, `:json` or `:form` encoded, or a streamed
  body once complete) and `:opts` (every option, Erlang style). It
  returns an `Erqwest.Response` (or a map with `:status`), an
  `Erqwest.Error`, `{:error, %Erqwest.Error{}}` or `{:error, code}` with
  an error code such as `:timeout` or `:connect`. The answer is returned
  as given: nothing is decoded, redirected or retried, so give the body
  as your code receives it (a map if your client decodes JSON, which
  clients made from Elixir do by default; the JSON text under Req, which
  decodes it itself). For a streamed response body (`Erqwest.stream/3`,
  `response_body: :stream`) a list body is read one element per chunk.

  ## Isolation

  Stubs belong to the test process that installs them and to the
  processes it starts with `Task` (found through `$callers`), so
  `async: true` tests stubbing the same client do not see each other's.
  Another process can be let in with `allow/3`. A request on a stubbed
  client from a process that finds no stub for itself, or one past the
  expectations of `expect/3`, raises `RuntimeError` saying so: it is never
  sent for real. Stubs go when their test process exits.

  Stubs are looked up by the client as the call gives it, usually a name:
  `stub(MyApp.HTTP, fun)` answers `Erqwest.get(MyApp.HTTP, ...)`. The
  name need not be a started client.

  ## What they cover

  `Erqwest` (`request/2`, `get/3` ..., `stream/3`, uploads from an
  `Enumerable` or `Erqwest.Upload`), `Erqwest.Async` (the answer arrives
  as the usual `{:erqwest_response, ref, :reply | :error, _}` message),
  the Erlang `:erqwest` and `:erqwest_async`, and so the Req and Tesla
  adapters, which only call these. Not covered: `Erqwest.Events`,
  `Erqwest.Operation` and `Erqwest.paginate/3`, which resolve the
  client's name first or start their requests on the runtime.

  When no test stubs anything, a request costs one `:persistent_term`
  read more (the flag is set by the first stub in the node).

  The Erlang side is `:erqwest_test`, with the same functions.
  """

  alias Erqwest.{Error, Response}

  @typedoc """
  The request as a stub function sees it:
  `%{method: :get, url: "http://api.test/x?page=2", headers: [], body: "", opts: %{}}`.
  """
  @type request :: %{
          method: atom(),
          url: String.t(),
          headers: [{String.t(), String.t()}],
          body: binary(),
          opts: map()
        }
  @typedoc """
  What a stub function returns: a response, an error, or a map with at
  least `:status`: `%Erqwest.Response{status: 200, body: "ok"}`,
  `%{status: 503}` or `{:error, :timeout}`.
  """
  @type answer ::
          Response.t()
          | Error.t()
          | %{required(:status) => 100..599, optional(atom()) => term()}
          | {:ok, Response.t() | map()}
          | {:error, Error.t() | Error.code()}
  @typedoc """
  A stub: `fn %{method: :get} -> %{status: 200, body: "stubbed"} end`.
  """
  @type stub_fun :: (request() -> answer())

  @doc """
  Answers every request on `client` from this process (and those it
  starts) with `fun`, until this process exits. A second `stub/2` for
  the same client replaces the first.

      iex> Erqwest.Test.stub(:stubbed_docs, fn req -> %Erqwest.Response{status: 200, body: req.url} end)
      :ok
      iex> Erqwest.get!(:stubbed_docs, "https://example.test/a", params: [q: 1]).body
      "https://example.test/a?q=1"
  """
  @spec stub(Erqwest.client(), stub_fun()) :: :ok
  def stub(client, fun) when is_function(fun, 1) do
    :erqwest_test.stub(client, wrap(fun))
  end

  def stub(_client, fun) do
    raise ArgumentError,
          "Erqwest.Test.stub/2 takes a function of one argument, got: #{inspect(fun)}"
  end

  @doc """
  Answers the next `n` requests on `client` with `fun`, before any stub;
  expectations queue in the order given. `verify!/0` raises when fewer
  than `n` came.

      iex> Erqwest.Test.expect(:expected_docs, 1, fn _ -> {:error, :timeout} end)
      :ok
      iex> {:error, %Erqwest.Error{code: :timeout}} = Erqwest.get(:expected_docs, "https://example.test/")
      iex> Erqwest.Test.verify!()
      :ok
  """
  @spec expect(Erqwest.client(), pos_integer(), stub_fun()) :: :ok
  def expect(client, n \\ 1, fun)

  def expect(client, n, fun) when is_integer(n) and n > 0 and is_function(fun, 1) do
    :erqwest_test.expect(client, n, wrap(fun))
  end

  def expect(_client, n, fun) do
    raise ArgumentError,
          "Erqwest.Test.expect/3 takes a positive count and a function of one argument, got: " <>
            "#{inspect(n)} and #{inspect(fun)}"
  end

  @doc """
  Lets `pid`, which the test did not start (so `$callers` does not lead
  to it), use `owner`'s stubs for `client`.

      Erqwest.Test.allow(MyApp.HTTP, self(), Process.whereis(MyApp.Poller))
  """
  @spec allow(Erqwest.client(), pid(), pid()) :: :ok
  def allow(client, owner, pid), do: :erqwest_test.allow(client, owner, pid)

  @doc """
  Raises `RuntimeError` listing the expectations of `owner` (by default
  the calling process) that did not get all their calls.
  """
  @spec verify!(pid()) :: :ok
  def verify!(owner \\ self()), do: :erqwest_test.verify(owner)

  @doc """
  Runs `verify!/1` for this test's process when the test ends; usable as
  a setup callback:

      setup :verify_on_exit!
  """
  @spec verify_on_exit!(term()) :: :ok
  def verify_on_exit!(_context \\ %{}) do
    owner = self()
    :ok = :erqwest_test.keep_until_verified(owner)
    # Through a variable: ExUnit is there in tests, not a dependency.
    callbacks = ExUnit.Callbacks
    callbacks.on_exit({__MODULE__, owner}, fn -> verify!(owner) end)
  end

  # The user's function in Elixir terms, its answer in Erlang ones.
  defp wrap(fun) do
    fn request -> answer(fun.(request)) end
  end

  defp answer(%Response{} = r), do: response(r)
  defp answer({:ok, %Response{} = r}), do: response(r)
  defp answer(%Error{} = e), do: {:error, error(e)}
  defp answer({:error, %Error{} = e}), do: {:error, error(e)}
  defp answer(other), do: other

  defp response(%Response{} = r) do
    r
    |> Map.from_struct()
    |> Enum.reject(fn {_k, v} -> is_nil(v) end)
    |> Map.new()
  end

  defp error(%Error{code: code, reason: reason, attempts: attempts, details: details}) do
    base = Map.merge(details, %{code: code, reason: reason || Atom.to_string(code)})
    if attempts, do: Map.put(base, :attempts, attempts), else: base
  end
end
