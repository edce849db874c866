# Every public function, macro, callback and type of erqwest has a doc,
# and the doc shows code (an example block, or for a type an example value
# in backquotes). Reads the docs chunks `make docs` leaves next to mix's
# ebin (the Erlang ones made by edoc's chunk doclet). Run by
# test/docs/check.sh: mix run --no-start --no-compile test/docs/coverage.exs
Application.load(:erqwest)
{:ok, modules} = :application.get_key(:erqwest, :modules)

shows_code? = fn
  %{"en" => text} when is_binary(text) -> text =~ ~r/`|\n    \S/
  # Erlang docs are an HTML tree: look for <pre> or <code>.
  %{"en" => tree} -> inspect(tree) =~ ~r/:(pre|code)\b/
  _ -> false
end

lacking =
  for mod <- Enum.sort(modules),
      Code.ensure_loaded?(mod),
      {:docs_v1, _, lang, _, moduledoc, _, docs} <- [Code.fetch_docs(mod)],
      moduledoc != :hidden,
      # Protocol implementations document nothing of their own.
      not function_exported?(mod, :__impl__, 1) do
    exported_types =
      if lang == :erlang do
        {:ok, {_, [abstract_code: {_, forms}]}} =
          :beam_lib.chunks(:code.which(mod), [:abstract_code])

        for {:attribute, _, :export_type, types} <- forms, type <- types, do: type
      end

    for {{kind, name, arity}, _, _, doc, meta} <- docs,
        doc != :hidden,
        kind in [:function, :macro, :callback, :type],
        not is_binary(Map.get(meta, :deprecated)),
        lang == :elixir or (kind == :function and function_exported?(mod, name, arity)) or
          (kind == :type and {name, arity} in exported_types),
        not shows_code?.(doc) do
      "#{inspect(mod)} #{kind} #{name}/#{arity}#{if doc in [:none, %{}], do: " (no doc)", else: " (no example)"}"
    end
  end
  |> Enum.concat()

Enum.each(lacking, &IO.puts("FAIL docs coverage: " <> &1))
IO.puts("docs coverage: #{length(lacking)} public items without a doc that shows code")
if lacking != [], do: System.halt(1)
