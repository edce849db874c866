#!/usr/bin/env bash
# `make docs`: API docs without ExDoc. The Erlang modules go through edoc
# (HTML, DIR/erlang); the Elixir modules' @moduledoc/@doc, read back from
# the compiled modules with Code.fetch_docs/1, become Markdown (DIR/elixir).
# DIR/index.html links both.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-doc}
mkdir -p "$out"
out=$(cd "$out" && pwd)
rm -rf "$out/erlang" "$out/elixir"

erl -noshell -eval '
[Out] = init:get_plain_arguments(),
ok = edoc:application(erqwest, ".", [{dir, Out}, {preprocess, true}, {includes, ["src"]}]),
halt().' -- "$out/erlang"

mix run --no-start --no-deps-check scripts/elixir_docs.exs "$out/elixir"

cat >"$out/index.html" <<HTML
<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>erqwest $(cat VERSION) API</title></head>
<body><h1>erqwest $(cat VERSION)</h1>
<ul>
<li><a href="erlang/index.html">Erlang modules</a> (edoc)</li>
<li><a href="elixir/index.md">Elixir modules</a> (Markdown)</li>
</ul></body></html>
HTML
echo "erqwest: API docs in $out (index.html)"
