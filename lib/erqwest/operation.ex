defmodule Erqwest.Operation do
  @moduledoc ~S"""
  Long-running operations: a request answered `202 Accepted`, followed to
  completion inside erqwest's runtime (no process per operation, tokio timers
  only). A thin layer on `:erqwest_operation`; its documentation describes the
  status documents understood and every message.

  Options (a keyword list):

    * `:poll_interval` - ms between polls when the server sends no
      `Retry-After` (default 2000)
    * `:max_wait` - ms, or `:infinity`, before giving up with code `:timeout`
      (default 600_000)
    * `:poll_headers` - `[{name, value}]` sent with each poll and the result
      fetch, e.g. an `authorization`
    * `:on_progress` - `wait/3` only: called with each progress map

  ## Example

      {:ok, %{status: 200, body: json}} =
        Erqwest.Operation.wait(client, %{method: :post, url: "http://127.0.0.1:8080/exports"},
          poll_interval: 1_000,
          on_progress: fn %{status: s, percent_complete: p} -> IO.puts("#{s} #{p}%") end
        )
  """

  @typedoc "A client or the name it was registered under: `:default`."
  @type client :: :erqwest.client() | atom()
  @typedoc "`%{state: :pending | :running, status: binary, percent_complete: 0..100 | :undefined, retry_after: ms}`, for example `%{state: :running, status: \"Running\", percent_complete: 50, retry_after: 1000}`"
  @type progress :: :erqwest_operation.progress()
  @typedoc "An `err()` map; `:operation_failed` ones may carry `:problem` and `:http_status`: `%{code: :operation_failed, reason: \"...\", problem: %{\"title\" => \"quota\"}}`."
  @type err :: :erqwest_operation.err()
  @typedoc "An operation followed by the runtime, from `start/5`, for `cancel/1`."
  @type handle :: :erqwest_operation.handle()

  @start_keys [:poll_interval, :max_wait, :poll_headers]
  @wait_keys [:on_progress | @start_keys]

  defmodule Error do
    @moduledoc """
    Raised by `Erqwest.Operation.wait!/3`: the `err()` map as a struct.

        try do
          Erqwest.Operation.wait!(client, req)
        rescue
          e in Erqwest.Operation.Error -> e.problem
        end
    """
    defexception [:code, :reason, problem: nil, http_status: nil]

    @typedoc ~s|For example `%Erqwest.Operation.Error{code: :operation_failed, reason: "...", problem: %{"title" => "quota"}, http_status: nil}`.|
    @type t :: %__MODULE__{
            code: atom(),
            reason: binary(),
            problem: map() | nil,
            http_status: 100..599 | nil
          }

    @impl true
    def message(%__MODULE__{code: code, reason: reason}), do: "#{code}: #{reason}"

    @doc false
    @spec from_err(map()) :: t()
    def from_err(err) do
      %__MODULE__{
        code: err.code,
        reason: err.reason,
        problem: Map.get(err, :problem),
        http_status: Map.get(err, :http_status)
      }
    end
  end

  @doc """
  Runs an operation to its end, blocking the calling process (never a
  scheduler). `:on_progress` is called with each progress map; if it raises,
  the operation is cancelled and the exception goes on.

      {:ok, resp} = Erqwest.Operation.wait(client, %{method: :post, url: url}, max_wait: 60_000)
  """
  @spec wait(client(), map() | keyword(), keyword()) :: {:ok, :erqwest.resp()} | {:error, err()}
  def wait(client, req, opts \\ []) do
    :erqwest_operation.wait(client, Map.new(req), op_opts(opts, @wait_keys))
  end

  @doc """
  Like `wait/3`, but returns the response or raises `Erqwest.Operation.Error`.

      %{status: 200} = Erqwest.Operation.wait!(client, %{method: :post, url: url})
  """
  @spec wait!(client(), map() | keyword(), keyword()) :: :erqwest.resp()
  def wait!(client, req, opts \\ []) do
    case wait(client, req, opts) do
      {:ok, resp} -> resp
      {:error, err} -> raise Error.from_err(err)
    end
  end

  @doc """
  Starts an operation; messages go to `pid`, tagged with `ref`:
  `{:erqwest_operation, ref, :progress, progress}` after each unfinished poll,
  then one `{:erqwest_response, ref, :reply, resp}` or
  `{:erqwest_response, ref, :error, err}`.

      ref = make_ref()
      Erqwest.Operation.start(client, self(), ref, %{method: :post, url: url}, poll_interval: 500)

      receive do
        {:erqwest_response, ^ref, :reply, resp} -> {:ok, resp}
        {:erqwest_response, ^ref, :error, err} -> {:error, err}
      end
  """
  @spec start(client(), pid(), term(), map() | keyword(), keyword()) :: handle()
  def start(client, pid, ref, req, opts \\ []) do
    :erqwest_operation.start(client, pid, ref, Map.new(req), op_opts(opts, @start_keys))
  end

  @doc """
  Cancels at once; the final message (`:error` with code `:cancelled`, or a
  reply already on its way) still comes.

      :ok = Erqwest.Operation.cancel(handle)
  """
  @spec cancel(handle()) :: :ok
  def cancel(handle), do: :erqwest_operation.cancel(handle)

  @doc """
  What the last poll said: `%{state:, status:, percent_complete:, retry_after:, status_url:}`.

      %{state: :running, percent_complete: 40} = Erqwest.Operation.info(handle)
  """
  @spec info(handle()) :: :erqwest_operation.info()
  def info(handle), do: :erqwest_operation.info(handle)

  defp op_opts(opts, accepted) when is_list(opts) do
    Enum.reduce(opts, %{}, fn
      {key, value}, acc when is_atom(key) ->
        if key in accepted do
          Map.put(acc, key, value)
        else
          raise ArgumentError,
                "unknown option #{inspect(key)}; accepted: #{Enum.map_join(accepted, ", ", &inspect/1)}"
        end

      other, _acc ->
        raise ArgumentError, "expected a keyword list of options, got: #{inspect(other)}"
    end)
  end

  defp op_opts(opts, _accepted) do
    raise ArgumentError, "expected a keyword list of options, got: #{inspect(opts)}"
  end
end
