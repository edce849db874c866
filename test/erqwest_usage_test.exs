defmodule Erqwest.UsageTest do
  # Not async: the section registers the global :default client.
  use ExUnit.Case, async: false

  setup do
    on_exit(fn ->
      File.rm(Path.join(System.tmp_dir!(), "erqwest-usage.bin"))

      try do
        Erqwest.stop_client(:default)
      rescue
        ArgumentError -> :ok
      end
    end)
  end

  # The Elixir sections of the guides (between elixir-usage markers, in
  # the order below; one session, so later sections use earlier
  # bindings) run as written: each `#=> expected` line checks the code
  # above it, where "..." matches anything and `** (Exception) message`
  # expects a raise. `base` is the demo's server, as a reader starts it
  # in `make shell` (guides/getting-started.md).
  @guides ["guides/getting-started.md", "guides/streaming.md"]

  test "the Elixir sections of the guides run as written" do
    {:ok, _} = Application.ensure_all_started(:inets)
    snippets = usage_sections() |> Enum.flat_map(&code_blocks/1) |> Enum.flat_map(&snippets/1)
    assert length(snippets) >= 12

    binding =
      Enum.reduce(snippets, [base: demo_server()], fn {code, expected}, binding ->
        check_snippet(code, expected, binding)
      end)

    :inets.stop(:httpd, binding[:httpd])
  end

  # What `c "demo/erqwest_demo.erl"` and `:erqwest_demo.server()` do in
  # the shell (the test server is compiled for the tests already).
  defp demo_server do
    root = Path.expand("..", __DIR__)
    src = String.to_charlist(Path.join(root, "demo/erqwest_demo.erl"))
    {:ok, mod, bin} = :compile.file(src, [:binary, :return_errors])
    {:module, _} = :code.load_binary(mod, src, bin)
    apply(mod, :server, [])
  end

  defp usage_sections do
    root = Path.expand("..", __DIR__)

    for file <- @guides do
      text = File.read!(Path.join(root, file))
      sections = Regex.scan(~r/<!-- elixir-usage:start -->(.*?)<!-- elixir-usage:end -->/s, text)
      if sections == [], do: flunk("no elixir-usage markers in #{file}")
      sections
    end
    |> Enum.concat()
    |> Enum.map(fn [_, section] -> section end)
  end

  defp code_blocks(text) do
    for [_, code] <- Regex.scan(~r/```elixir\n(.*?)```/s, text), do: code
  end

  # Splits a block at its `#=>` lines: [{code, expected | nil}].
  defp snippets(block) do
    {done, code} =
      block
      |> String.split("\n")
      |> Enum.reduce({[], []}, fn line, {done, code} ->
        case Regex.run(~r/^#=> (.*)$/, line) do
          [_, expected] -> {[{Enum.join(Enum.reverse(code), "\n"), expected} | done], []}
          nil -> {done, [line | code]}
        end
      end)

    Enum.reverse([{Enum.join(Enum.reverse(code), "\n"), nil} | done])
  end

  defp check_snippet(code, nil, binding), do: elem(Code.eval_string(code, binding), 1)

  defp check_snippet(code, "** (" <> raised, binding) do
    [_, name, message] = Regex.run(~r/^([\w.]+)\) (.*)$/, raised)
    prefix = String.trim_trailing(message, "...")
    error = assert_raise Module.concat([name]), fn -> Code.eval_string(code, binding) end
    assert String.starts_with?(Exception.message(error), prefix), Exception.message(error)
    binding
  end

  defp check_snippet(code, expected, binding) do
    {value, binding} = Code.eval_string(code, binding)
    pattern = String.replace(expected, ~s("..."), "_")
    {matched?, _} = Code.eval_string("match?(#{pattern}, value)", value: value)
    assert matched?, "#{code}\nexpected #{expected}, got: #{inspect(value)}"
    binding
  end
end
