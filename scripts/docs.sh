#!/usr/bin/env bash
# `make docs`: one ExDoc site (DIR, default doc/) for the Elixir and the
# Erlang modules, with the guides (guides/*.md) and the README as extras.
#
# ExDoc and its dependencies are built from ../shared/peers by
# scripts/peers.sh (into _build/peers; nothing of them enters the
# repository). Without them this says so in one line and exits 0.
#
# The Erlang modules' edoc becomes EEP 48 doc chunks (edoc's chunk
# doclet) in ebin/../doc/chunks, where Code.fetch_docs/1 and ExDoc look;
# scripts/docs.exs then drives ExDoc.generate_docs/3 on mix's ebin.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-doc}

PEERS_LIB=$(bash scripts/peers.sh 2>/dev/null || true)
if [ -z "$PEERS_LIB" ] || [ ! -d "$PEERS_LIB/ex_doc/ebin" ]; then
    echo "make docs: skipped, ExDoc is not available (no ../shared/peers to build it from)"
    exit 0
fi
export PEERS_LIB

MIX_ENV=dev mix compile >/dev/null
ebin=_build/mix/dev/lib/erqwest/ebin
chunks=_build/mix/dev/lib/erqwest/doc
rm -rf "$chunks"
erl -noshell -eval '
[Dir] = init:get_plain_arguments(),
Files = filelib:wildcard("src/*.erl"),
ok = edoc:files(Files, [{doclet, edoc_doclet_chunks}, {layout, edoc_layout_chunks},
                        {dir, Dir}, {preprocess, true}, {includes, ["src"]}]),
halt().' -- "$chunks"

mkdir -p "$out"
out=$(cd "$out" && pwd)
# ExDoc's own leftovers from an earlier run go; nothing else in DIR is ours.
rm -rf "$out"/*.html "$out"/dist "$out"/.build "$out"/erlang "$out"/elixir
MIX_ENV=dev mix run --no-start --no-compile --no-deps-check scripts/docs.exs "$ebin" "$out"
