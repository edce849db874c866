#!/usr/bin/env bash
# `make test-docs`: builds the docs (make docs) and opens them in headless
# Chromium (test/docs/check.py): every public item has a doc with code
# (test/docs/coverage.exs), every page loads without console
# messages, the search finds `get!` and `erqwest:req`, no internal link
# or local resource is broken; screenshots go to _build/docs-check.
#
# Skipped with one line (exit 0) when ExDoc cannot be built (no
# ../shared/peers); fails when chromium is missing (`.ci/install-deps
# docs` installs it). The last line reads "docs check: N failed".
set -uo pipefail
cd "$(dirname "$0")/../.."
doc=${DOC_DIR:-$PWD/_build/docs-check/site}
out=$PWD/_build/docs-check

if ! command -v "${CHROMIUM:-chromium}" >/dev/null 2>&1; then
    echo "docs check: no chromium (bash .ci/install-deps docs installs it)"
    echo "docs check: 1 failed"
    exit 1
fi
mkdir -p "$out"
log=$(make -s docs DOC_DIR="$doc" 2>&1)
status=$?
echo "$log" | tail -3
if [ $status -ne 0 ]; then
    echo "docs check: make docs failed"
    echo "docs check: 1 failed"
    exit 1
fi
if grep -q "^make docs: skipped" <<<"$log"; then
    echo "docs check: skipped, no docs were built"
    exit 0
fi
# ExDoc's warnings (a reference it could not link) count as failures.
warnings=$(grep -c "^warning:" <<<"$log")
MIX_ENV=dev mix run --no-start --no-compile --no-deps-check test/docs/coverage.exs
coverage=$?
python3 test/docs/check.py "$doc" "$out"
status=$?
[ $coverage -eq 0 ] || status=1
if [ "$warnings" -gt 0 ]; then
    echo "docs check: make docs printed $warnings warnings (above)"
    echo "docs check: 1 failed"
    exit 1
fi
exit $status
