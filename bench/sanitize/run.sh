#!/usr/bin/env bash
# `make sanitize': the Rust unit tests under valgrind (memcheck: invalid
# reads and writes, uses of uninitialised memory, definite leaks), then
# under AddressSanitizer when a nightly toolchain is installed. Exits
# non-zero on any finding.
set -uo pipefail
cd "$(dirname "$0")/../.."
export PATH="$HOME/.cargo/bin:$PATH"
target=${CARGO_TARGET_DIR:-$PWD/native/target}
status=0

echo "==> valgrind"
bin=$(cargo test --release --no-run --manifest-path native/Cargo.toml --message-format=json 2>/dev/null \
      | sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | head -1)
if [ -z "$bin" ]; then
    echo "could not build the unit tests" >&2
    exit 1
fi
if command -v valgrind >/dev/null; then
    valgrind --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite \
        --show-leak-kinds=definite "$bin" --test-threads=1 || status=1
else
    echo "valgrind is not installed (apt-get install valgrind)" >&2
    status=1
fi

if cargo +nightly --version >/dev/null 2>&1; then
    echo "==> AddressSanitizer (nightly)"
    # A target dir of its own: instrumented builds never mix with the rest.
    CARGO_TARGET_DIR="$target/asan" RUSTFLAGS="-Zsanitizer=address" \
        cargo +nightly test --release --target x86_64-unknown-linux-gnu \
        --manifest-path native/Cargo.toml --lib || status=1
else
    echo "(no nightly toolchain: AddressSanitizer skipped)"
fi

[ "$status" -eq 0 ] && echo "sanitize: no findings"
exit "$status"
