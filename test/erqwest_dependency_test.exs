defmodule Erqwest.DependencyTest do
  # Builds erqwest the way its users do: as a path dependency of a new mix
  # project, and through _checkouts in a new rebar3 project. Each starts
  # from a copy of this source tree (what a fresh clone holds, plus
  # uncommitted work) with no _build and no NIF in priv/, compiles, and
  # makes a request to a server in this VM. Cargo reuses CARGO_TARGET_DIR
  # (or the project's native/target), so only stale code is rebuilt.
  #
  # Run just these with `mix test --only dependency`.
  use ExUnit.Case, async: true

  alias Erqwest.Test.{Server, Tmp}

  @moduletag :dependency
  @moduletag timeout: 600_000

  @root Path.expand("..", __DIR__)

  setup do
    dir = Tmp.dir!("erqwest-dep")
    src = Path.join(dir, "erqwest")
    copy_source(@root, src)
    s = Server.start(fn req -> {200, [{"x-path", req.path}], "hello from " <> req.path} end)
    %{src: src, dir: dir, server: s}
  end

  test "a new mix project depends on erqwest by path", %{src: src, dir: dir, server: s} do
    refute File.exists?(Path.join(src, "priv/liberqwest_nif.so"))
    {out, status} = run("mix", ["new", "mixapp"], dir)
    assert status == 0, out
    app = Path.join(dir, "mixapp")
    mix_exs = Path.join(app, "mix.exs")

    File.write!(
      mix_exs,
      Regex.replace(~r/defp deps do.*?\n  end/s, File.read!(mix_exs), """
      defp deps do
          [{:erqwest, path: #{inspect(src)}}]
        end\
      """)
    )

    {out, status} = run("mix", ["compile"], app)
    assert status == 0, out
    assert out =~ "==> erqwest"
    assert File.exists?(Path.join(app, "_build/dev/lib/erqwest/priv/liberqwest_nif.so"))

    script = """
    client = Erqwest.make_client(proxy: :no_proxy)
    resp = Erqwest.get!(client, System.fetch_env!("ERQWEST_URL"))
    IO.puts("status=\#{resp.status} body=\#{resp.body}")
    """

    {out, status} =
      run("mix", ["run", "-e", script], app, [{"ERQWEST_URL", Server.url(s, "/mix")}])

    assert status == 0, out
    assert out =~ "status=200 body=hello from /mix"
    assert [%{path: "/mix"}] = Server.requests(s)
  end

  test "a new rebar3 project depends on erqwest through _checkouts",
       %{src: src, dir: dir, server: s} do
    app = Path.join(dir, "rebarapp")
    File.mkdir_p!(Path.join(app, "src"))
    File.mkdir_p!(Path.join(app, "_checkouts"))
    File.ln_s!(src, Path.join(app, "_checkouts/erqwest"))
    File.write!(Path.join(app, "rebar.config"), "{erl_opts, [debug_info]}.\n{deps, [erqwest]}.\n")

    File.write!(Path.join(app, "src/rebarapp.app.src"), """
    {application, rebarapp,
     [{description, "uses erqwest"}, {vsn, "0.1.0"},
      {applications, [kernel, stdlib, erqwest]}, {env, []}]}.
    """)

    File.write!(Path.join(app, "src/rebarapp.erl"), ~S"""
    -module(rebarapp).
    -export([main/0]).
    main() ->
        {ok, _} = application:ensure_all_started(rebarapp),
        C = erqwest:make_client(#{proxy => no_proxy}),
        Url = list_to_binary(os:getenv("ERQWEST_URL")),
        {ok, #{status := S, body := B}} = erqwest:get(C, Url),
        io:format("status=~p body=~s~n", [S, B]).
    """)

    {out, status} = run("rebar3", ["compile"], app)
    assert status == 0, out
    assert out =~ "Compiling erqwest"
    [ebin | _] = Path.wildcard(Path.join(app, "_build/default/*/erqwest/ebin"))
    assert File.exists?(Path.join(ebin, "../priv/liberqwest_nif.so"))

    paths = Enum.flat_map(Path.wildcard(Path.join(app, "_build/default/*/*/ebin")), &["-pa", &1])
    args = ["-noshell"] ++ paths ++ ["-eval", "rebarapp:main(), halt()."]
    {out, status} = run("erl", args, app, [{"ERQWEST_URL", Server.url(s, "/rebar")}])
    assert status == 0, out
    assert out =~ "status=200 body=hello from /rebar"
    assert [%{path: "/rebar"}] = Server.requests(s)
  end

  # Copies what a clone would hold: tracked and untracked-but-not-ignored
  # files, with their mtimes (tar keeps them), so that cargo and mix see
  # the same sources as up to date.
  defp copy_source(from, to) do
    File.mkdir_p!(to)

    {files, 0} =
      System.cmd("git", ["ls-files", "-z", "--cached", "--others", "--exclude-standard"], cd: from)

    list = Path.join(Path.dirname(to), "files.lst")

    existing =
      files |> String.split(<<0>>, trim: true) |> Enum.filter(&File.exists?(Path.join(from, &1)))

    File.write!(list, Enum.join(existing, <<0>>))

    {out, status} =
      System.cmd(
        "sh",
        ["-c", ~s(tar -C "$1" --null -T "$2" -cf - | tar -C "$3" -xf -), "sh", from, list, to],
        stderr_to_stdout: true
      )

    assert status == 0, out
  end

  defp run(cmd, args, dir, env \\ []) do
    System.cmd(cmd, args, cd: dir, stderr_to_stdout: true, env: env ++ clean_env())
  end

  # The child builds are plain dev builds from source (ERQWEST_BUILD=1: no
  # download, test/install covers that), whatever this test run uses.
  defp clean_env do
    cargo_target = System.get_env("CARGO_TARGET_DIR") || Path.join(@root, "native/target")

    [{"MIX_ENV", "dev"}, {"CARGO_TARGET_DIR", cargo_target}, {"ERQWEST_BUILD", "1"}] ++
      for var <-
            ~w(MIX_BUILD_PATH MIX_BUILD_ROOT MIX_DEPS_PATH MIX_EXS MIX_LOCKFILE MIX_TARGET ERL_LIBS),
          do: {var, nil}
  end
end
