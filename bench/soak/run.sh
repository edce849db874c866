#!/usr/bin/env bash
# `make soak': the long runs that `make test' keeps short.
#  1. the PropEr properties with random seeds and shrinking (SOAK_PROPTESTS
#     cases each, default 500);
#  2. the load suite at full size (100 processes x 1,000 requests with
#     random cancels, and 10,000 concurrent requests);
#  3. the soak itself: SOAK_REQUESTS requests (default 1,000,000) or
#     SOAK_SECONDS (default 600), whichever comes first, sampling memory,
#     RSS, fds and live NIF resources every SOAK_INTERVAL seconds, then a
#     PNG plot of the series (needs gnuplot).
# SOAK_ONLY=1 skips steps 1 and 2.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="$HOME/.cargo/bin:$PATH"
out=${SOAK_OUT:-_build/soak}
export SOAK_OUT=$out
mkdir -p "$out/ebin"

rebar3 compile
erlc -o "$out/ebin" -pa _build/default/lib/erqwest/ebin \
    test/erqwest_fault_server.erl test/erqwest_check.erl test/erqwest_prop_SUITE.erl \
    bench/soak/erqwest_soak.erl
paths=(-pa _build/default/lib/erqwest/ebin -pa "$out/ebin")

if [ "${SOAK_ONLY:-0}" != 1 ]; then
    echo "==> properties, ${SOAK_PROPTESTS:-500} random cases each"
    erl -noshell "${paths[@]}" -eval "
        case erqwest_prop_SUITE:run_props(${SOAK_PROPTESTS:-500}) of
            true -> halt(0);
            false -> halt(1)
        end."
    echo "==> load suite at full size"
    ERQWEST_LOAD=full rebar3 ct --suite test/erqwest_load_SUITE
fi

echo "==> soak"
erl -noshell +P 1000000 "${paths[@]}" -eval 'erqwest_soak:main().' | tee "$out/soak.log"
status=${PIPESTATUS[0]}

if command -v gnuplot >/dev/null; then
    gnuplot -e "dat='$out/soak.dat'; png='$out/soak.png'" bench/soak/soak.gp
    echo "plot: $out/soak.png"
fi
exit "$status"
