#!/usr/bin/env bash
# `make bench-resilience`: retries' cost when nothing fails, hedging's
# effect on p99 (bench/bench_resilience.erl; numbers in bench/README.md).
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v nginx >/dev/null || { echo "bench-resilience: nginx missing; run 'make deps'" >&2; exit 1; }
rebar3 compile >/dev/null || { rebar3 compile; exit 1; }
# Not "erqwest-...": code:priv_dir(erqwest) would take it for the application.
work=$(mktemp -d "${TMPDIR:-/tmp}/resilience-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/ebin" "$work/body" "$work/logs"
erlc -o "$work/ebin" bench/bench_resilience.erl
BENCH_WORK="$work" erl -noshell -pa _build/default/lib/*/ebin -pa "$work/ebin" \
    -eval 'bench_resilience:main()'
