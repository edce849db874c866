defmodule Mix.Tasks.Compile.ErqwestNif do
  @moduledoc false
  # Builds the Rust NIF into priv/ with `make nif`, the same step rebar3's
  # pre-compile hook runs. cargo decides whether anything is stale.
  use Mix.Task.Compiler

  @impl true
  def run(_args) do
    dir = Path.dirname(Mix.Project.project_file())

    case System.cmd("make", ["-s", "nif"], cd: dir, stderr_to_stdout: true, into: IO.stream()) do
      {_, 0} -> {:ok, []}
      {_, status} -> Mix.raise("building the erqwest NIF failed (make nif exited with #{status})")
    end
  end
end

defmodule Erqwest.MixProject do
  use Mix.Project

  @version "0.3.0"

  def project do
    [
      app: :erqwest,
      version: @version,
      # rebar3 owns _build/default and _build/test; mix keeps to its own.
      build_path: "_build/mix",
      elixir: "~> 1.14",
      compilers: [:erqwest_nif] ++ Mix.compilers(),
      erlc_paths: ["src"],
      erlc_options: [:debug_info, :warnings_as_errors],
      elixirc_paths: elixirc_paths(Mix.env()),
      start_permanent: Mix.env() == :prod,
      deps: [],
      test_paths: ["test"],
      docs: [main: "Erqwest"]
    ]
  end

  def application do
    [
      mod: {:erqwest_app, []},
      registered: [:erqwest_sup, :erqwest_runtime],
      env: [worker_threads: :auto],
      extra_applications: [:logger]
    ]
  end

  defp elixirc_paths(:test), do: ["lib", "test/support"]
  defp elixirc_paths(_), do: ["lib"]
end
