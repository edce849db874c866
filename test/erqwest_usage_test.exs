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

  # The Elixir usage section of README.md (between the elixir-usage
  # markers) runs as written: each
  # `#=> expected` line checks the code above it, where "..." matches
  # anything and `** (Exception) message` expects a raise.
  test "the Elixir usage section runs as written" do
    {:ok, _} = Application.ensure_all_started(:inets)
    snippets = usage_section() |> code_blocks() |> Enum.flat_map(&snippets/1)
    assert length(snippets) >= 10

    binding =
      Enum.reduce(snippets, [], fn {code, expected}, binding ->
        check_snippet(code, expected, binding)
      end)

    :inets.stop(:httpd, binding[:httpd])
  end

  defp usage_section do
    root = Path.expand("..", __DIR__)

    text = File.read!(Path.join(root, "README.md"))

    case Regex.run(~r/<!-- elixir-usage:start -->(.*)<!-- elixir-usage:end -->/s, text) do
      [_, section] -> section
      nil -> flunk("no Elixir usage section between elixir-usage markers in README.md")
    end
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
