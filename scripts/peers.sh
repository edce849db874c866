#!/usr/bin/env bash
# Builds the peer libraries the adapter, telemetry and docs stages need
# (Req, Tesla, Finch, Mint, Jason, telemetry, ExDoc...) from the sources in
# ../shared/peers with ../shared/tools/peers-build, into _build/peers.
#
# Prints the lib dir (pass it as PEERS_LIB) and exits 0; without the sources
# it prints nothing, says why in one line on stderr and exits 0, so callers
# skip what needs the peers. PEERS_LIB already set to a directory wins.
# Nothing of the peers enters this repository: _build/ is ignored.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

if [ -n "${PEERS_LIB:-}" ] && [ -d "$PEERS_LIB" ]; then
    echo "$PEERS_LIB"
    exit 0
fi
SRC=${PEERS_SRC:-$ROOT/../shared/peers}
TOOL=${PEERS_BUILD:-$ROOT/../shared/tools/peers-build}
if [ ! -d "$SRC" ] || [ ! -x "$TOOL" ]; then
    echo "peers: no $SRC (or no $TOOL): the suites that need Req, Tesla, telemetry or ExDoc are skipped" >&2
    exit 0
fi
log="$ROOT/_build/peers-build.log"
mkdir -p "$ROOT/_build"
if ! out=$("$TOOL" "$SRC" "$ROOT/_build/peers" 2>"$log"); then
    echo "peers: building them failed (see $log): the suites that need them are skipped" >&2
    exit 0
fi
echo "$out" | tail -1
