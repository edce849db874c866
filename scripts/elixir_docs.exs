# Writes one Markdown page per public Elixir module of erqwest, and an
# index, from the docs chunks in the compiled modules (Code.fetch_docs/1).
# Run by scripts/docs.sh: mix run --no-start scripts/elixir_docs.exs DIR
defmodule Erqwest.DocsMarkdown do
  @moduledoc false

  def main([dir]) do
    File.mkdir_p!(dir)
    {:ok, modules} = :application.get_key(:erqwest, :modules)

    pages =
      for mod <- Enum.sort(modules),
          String.starts_with?(Atom.to_string(mod), "Elixir."),
          # Protocol implementations document nothing of their own.
          not function_exported?(Code.ensure_loaded!(mod), :__impl__, 1),
          {:docs_v1, _, :elixir, _, moduledoc, _, docs} <- [Code.fetch_docs(mod)],
          moduledoc != :hidden do
        name = inspect(mod)
        File.write!(Path.join(dir, name <> ".md"), page(mod, name, text(moduledoc), docs))
        {name, summary(text(moduledoc))}
      end

    index =
      ["# erqwest: Elixir modules\n\n"] ++
        for {name, line} <- pages, do: "- [#{name}](#{name}.md) — #{line}\n"

    File.write!(Path.join(dir, "index.md"), index)
    IO.puts("erqwest: #{length(pages)} Elixir module pages in #{dir}")
  end

  defp page(mod, name, moduledoc, docs) do
    specs = specs(mod)

    entries =
      for {{kind, fun, arity}, _anno, signature, doc, _meta} <- Enum.sort(docs),
          kind in [:function, :macro, :type, :callback],
          doc != :hidden do
        heading = Enum.join(signature, " / ")
        spec = Map.get(specs, {fun, arity}, [])
        code = if spec == [], do: "", else: "```elixir\n#{Enum.join(spec, "\n")}\n```\n\n"
        {kind, "### #{heading}\n\n#{code}#{text(doc)}\n\n"}
      end

    sections =
      for {kind, title} <- [
            type: "Types",
            function: "Functions",
            macro: "Macros",
            callback: "Callbacks"
          ],
          items = for({^kind, body} <- entries, do: body),
          items != [] do
        ["## #{title}\n\n" | items]
      end

    ["# #{name}\n\n", moduledoc, "\n\n" | sections]
  end

  defp specs(mod) do
    case Code.Typespec.fetch_specs(mod) do
      {:ok, specs} ->
        Map.new(specs, fn {{fun, arity}, forms} ->
          {{fun, arity},
           Enum.map(forms, &("@spec " <> Macro.to_string(Code.Typespec.spec_to_quoted(fun, &1))))}
        end)

      :error ->
        %{}
    end
  end

  defp text(%{"en" => doc}), do: doc
  defp text(_), do: "(undocumented)"

  defp summary(doc),
    do: doc |> String.split("\n\n", parts: 2) |> hd() |> String.replace("\n", " ")
end

Erqwest.DocsMarkdown.main(System.argv())
