defmodule Erqwest.ShellTest do
  # `make shell` is iex with the application started and a :default client.
  use ExUnit.Case, async: true

  alias Erqwest.Test.Server

  @moduletag :dependency
  @moduletag timeout: 300_000
  @root Path.expand("..", __DIR__)

  test "make shell opens iex with a :default client and the docs" do
    s = Server.start(Server.reply(200, "from the shell"))

    input = """
    IO.puts("BODY=" <> Erqwest.get!(:default, "#{Server.url(s, "/shell")}").body)
    h Erqwest.get
    """

    {out, status} =
      System.cmd("sh", ["-c", ~s(printf '%s' "$1" | make -s shell), "sh", input],
        cd: @root,
        stderr_to_stdout: true,
        env: [{"MIX_ENV", "dev"}]
      )

    assert status == 0, out
    assert out =~ "a client is registered as :default"
    assert out =~ "BODY=from the shell"
    assert out =~ "Makes a GET request"
  end
end
