defmodule Mix.Tasks.Compile.ErqwestNif do
  @moduledoc false
  # Puts the NIF into priv/ with `make nif` (native/nif.sh: download and
  # verify, or build with cargo), the same step rebar3's pre-compile hook runs.
  use Mix.Task.Compiler

  @impl true
  def run(_args) do
    dir = Path.dirname(Mix.Project.project_file())

    case System.cmd("make", ["-s", "nif"], cd: dir, stderr_to_stdout: true, into: IO.stream()) do
      {_, 0} ->
        {:ok, []}

      {_, status} ->
        Mix.raise("installing the erqwest NIF failed (make nif exited with #{status}); see above")
    end
  end
end

defmodule Erqwest.MixProject do
  use Mix.Project

  # The peers built from ../shared/peers (scripts/peers.sh) go on the code
  # path when PEERS_LIB names them, for the suites that drive Req, Tesla and
  # telemetry. Nothing of theirs is a dependency: hex.pm is not reachable.
  for ebin <- Path.wildcard(Path.join(System.get_env("PEERS_LIB") || "/nonexistent", "*/ebin")) do
    Code.prepend_path(ebin)
  end

  # The one place the version lives: VERSION, which src/erqwest.app.src reads
  # too and test/install checks against native/Cargo.toml.
  @version File.read!(Path.join(__DIR__, "VERSION")) |> String.trim()
  @source_url "https://github.com/erqwest/erqwest"

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
      # Not in tests: the peers' protocol implementations (Req's
      # Enumerable for Req.Response.Async) come and go with PEERS_LIB, and
      # a consolidation made without them would not be redone.
      consolidate_protocols: Mix.env() != :test,
      deps: [],
      # The Req and Tesla adapters call those libraries at run time when
      # the user's project has them; erqwest does not depend on them.
      xref: [
        exclude: [
          Req.Request,
          Req.Response,
          Req.Response.Async,
          Req.TransportError,
          Tesla,
          Tesla.Adapter,
          Tesla.Env,
          Tesla.Error,
          Tesla.Multipart
        ]
      ],
      test_paths: ["test"],
      description: description(),
      package: package(),
      source_url: @source_url,
      docs: [main: "Erqwest"]
    ]
  end

  defp description do
    "HTTP client for Erlang and Elixir backed by Rust's reqwest through a NIF; " <>
      "precompiled NIFs verified by SHA-256, or built from source with cargo."
  end

  # What the hex tarball holds: the sources both build tools need, the
  # checksum file, never native/target or a built NIF.
  def package do
    [
      licenses: ["MIT"],
      links: %{"GitHub" => @source_url, "Changelog" => @source_url <> "/blob/main/CHANGELOG.md"},
      files: ~w(
        lib src mix.exs rebar.config rebar.lock Makefile VERSION
        native/Cargo.toml native/Cargo.lock native/src native/nif.sh native/checksums.sha256
        priv/.gitkeep README.md CHANGELOG.md LICENSE
      )
    ]
  end

  def application do
    [
      mod: {:erqwest_app, []},
      registered: [:erqwest_sup, :erqwest_runtime, :erqwest_default],
      env: [worker_threads: :auto, default_client: %{}],
      extra_applications: [:logger]
    ]
  end

  defp elixirc_paths(:test), do: ["lib", "test/support"]
  defp elixirc_paths(_), do: ["lib"]
end
