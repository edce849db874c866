#!/usr/bin/env bash
# Puts erqwest's NIF into priv/: the one mechanism behind `make nif`, which
# rebar3's pre-compile hook and mix's compiler (mix.exs) both run.
#
#   native/nif.sh install   download the precompiled NIF listed in
#                           native/checksums.sha256 for this target, check
#                           its SHA-256 and unpack it; or build it with cargo
#   native/nif.sh release [DIR]
#                           build the release NIF, write its artifact to DIR
#                           (default _build/nif-release) and its checksum line
#                           into native/checksums.sha256 (maintainers)
#   native/nif.sh info      what install would fetch, and from where
#
# Environment:
#   ERQWEST_BUILD=1         build from source, never download
#   ERQWEST_BUILD=0         prefer the download even where native/target exists
#   ERQWEST_NIF_BASE_URL    where the artifacts live (default below);
#                           {VERSION} in it is replaced by the version
#   ERQWEST_TARGET          the target triple (release: cross-compile for it)
#   ERQWEST_NIF_DOWNLOADER  curl or httpc (default: curl when on PATH)
#   ERQWEST_CHECKSUMS       the checksum file (default native/checksums.sha256)
#   ERQWEST_PROFILE         release (default) or debug, which always builds
#   CARGO, CARGO_TARGET_DIR as for cargo
set -euo pipefail

# Where `make release-nif` artifacts are published: one GitHub release per
# version. The only copy of this URL; guides/installing.md quotes it.
readonly DEFAULT_BASE_URL='https://github.com/erqwest/erqwest/releases/download/v{VERSION}'

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PRIV="$ROOT/priv"
SO="$PRIV/liberqwest_nif.so"
# What install last verified and unpacked: "artifact archive-sha256 so-sha256".
STAMP="$PRIV/liberqwest_nif.stamp"
CHECKSUMS=${ERQWEST_CHECKSUMS:-$ROOT/native/checksums.sha256}
PROFILE=${ERQWEST_PROFILE:-release}
CARGO=${CARGO:-cargo}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/native/target}

say() { echo "erqwest: $*"; }
die() { echo "erqwest: $*" >&2; exit 1; }
have() { command -v "$1" >/dev/null 2>&1; }

sha256() {
    if have sha256sum; then sha256sum "$1" | cut -d' ' -f1
    elif have shasum; then shasum -a 256 "$1" | cut -d' ' -f1
    else openssl dgst -sha256 -r "$1" | cut -d' ' -f1
    fi
}

size_of() { { wc -c <"$1"; } 2>/dev/null | tr -d ' ' || echo 0; }

version() { tr -d ' \t\r\n' <"$ROOT/VERSION"; }

# The NIF ABI the crate is built for: rustler's nif_version_M_N feature.
nif_version() {
    local v
    v=$(grep -o 'nif_version_[0-9]*_[0-9]*' "$ROOT/native/Cargo.toml" | head -1)
    [ -n "$v" ] || die "native/Cargo.toml names no rustler nif_version_* feature"
    v=${v#nif_version_}
    echo "${v/_/.}"
}

# The target triple: rustc's host when Rust is here, else from uname, so
# that a machine without Rust still finds its artifact.
target() {
    if [ -n "${ERQWEST_TARGET:-}" ]; then echo "$ERQWEST_TARGET"; return; fi
    if have "$CARGO" && have rustc; then
        rustc -vV | sed -n 's/^host: //p'
        return
    fi
    uname_target
}

uname_target() {
    local os arch libc
    os=$(uname -s)
    arch=$(uname -m)
    case $arch in
        amd64) arch=x86_64 ;;
        arm64) arch=aarch64 ;;
        armv7*) arch=armv7 ;;
        riscv64) arch=riscv64gc ;;
    esac
    case $os in
        Linux)
            libc=gnu
            if ls /lib/ld-musl-* >/dev/null 2>&1 || (ldd --version 2>&1 | grep -qi musl); then
                libc=musl
            fi
            [ "$arch" = armv7 ] && libc="${libc}eabihf"
            echo "$arch-unknown-linux-$libc" ;;
        Darwin) echo "$arch-apple-darwin" ;;
        FreeBSD) echo "$arch-unknown-freebsd" ;;
        *) echo "$arch-unknown-$(echo "$os" | tr '[:upper:]' '[:lower:]')" ;;
    esac
}

artifact_name() { echo "liberqwest_nif-v$(version)-nif-$(nif_version)-$1.so.tar.gz"; }

base_url() {
    local base=${ERQWEST_NIF_BASE_URL:-$DEFAULT_BASE_URL}
    base=${base//\{VERSION\}/$(version)}
    echo "${base%/}"
}

# The committed checksum of an artifact, or nothing when it is not listed.
expected_sha() {
    [ -f "$CHECKSUMS" ] || return 0
    awk -v name="$1" '$2 == name { print $1; exit }' "$CHECKSUMS"
}

# Copies a file to priv/liberqwest_nif.so by rename, so that a reader (or a
# VM that has the old library mapped) never sees a half-written file.
put_so() {
    mkdir -p "$PRIV"
    local tmp="$PRIV/.liberqwest_nif.so.$$.tmp"
    cp "$1" "$tmp" && mv -f "$tmp" "$SO" || { rm -f "$tmp"; return 1; }
}

build() {
    local why=$1
    have "$CARGO" || die "cannot build the NIF from source ($why): cargo is not on PATH.
Install Rust 1.85 or newer (https://rustup.rs) and compile again."
    local flags=(--quiet --manifest-path "$ROOT/native/Cargo.toml")
    [ "$PROFILE" = release ] && flags+=(--release)
    local out="$CARGO_TARGET_DIR/$PROFILE/liberqwest_nif.so"
    # Quiet when nothing changed: developers run this on every compile.
    [ -f "$out" ] || say "building the NIF from source with cargo ($why); the first build takes a few minutes"
    "$CARGO" build "${flags[@]}"
    rm -f "$STAMP"
    if ! cmp -s "$out" "$SO"; then
        put_so "$out"
        say "installed the NIF built from source with cargo ($why)"
    fi
}

# The VM loads NIFs of its own major version and any minor up to its own.
check_vm_nif_version() {
    local want=$1 vm
    have erl || return 0
    vm=$(erl -noshell -eval 'io:put_chars(erlang:system_info(nif_version)), halt().' 2>/dev/null) || return 0
    local wmaj=${want%%.*} wmin=${want#*.} vmaj=${vm%%.*} vmin=${vm#*.}
    if [ "$wmaj" != "$vmaj" ] || [ "$wmin" -gt "$vmin" ]; then
        return 1
    fi
}

# Downloads $1 to $2 with curl or OTP's httpc; prints progress while slow.
# Returns the downloader's status.
download() {
    local url=$1 out=$2 tool=${ERQWEST_NIF_DOWNLOADER:-}
    [ -n "$tool" ] || { have curl && tool=curl || tool=httpc; }
    say "downloading $url"
    case $tool in
        curl)
            # Fails fast when the host is unreachable; gives up on a
            # transfer that stalls below 1 KB/s for 30 s.
            curl --fail --location --silent --show-error --connect-timeout 10 \
                --speed-limit 1024 --speed-time 30 --output "$out" "$url" &
            ;;
        httpc)
            erl -noshell -eval "$HTTPC_GET" -- "$url" "$out" &
            ;;
        *) die "ERQWEST_NIF_DOWNLOADER must be curl or httpc, not $tool" ;;
    esac
    local pid=$! ticks=0
    DOWNLOAD_PID=$pid
    while kill -0 "$pid" 2>/dev/null; do
        sleep 0.2
        ticks=$((ticks + 1))
        if [ $((ticks % 15)) -eq 0 ]; then
            say "  $(( $(size_of "$out") / 1024 )) KB received after $((ticks / 5)) s"
        fi
    done
    local status=0
    wait "$pid" || status=$?
    return $status
}

# httpc with the system's CA certificates and the same timeouts as curl.
# Exit 0 when the body was saved to the file.
HTTPC_GET='
[Url, Out] = init:get_plain_arguments(),
{ok, _} = application:ensure_all_started(inets),
{ok, _} = application:ensure_all_started(ssl),
Ssl = try public_key:cacerts_get() of
    Certs -> [{verify, verify_peer}, {cacerts, Certs}, {depth, 10},
              {customize_hostname_check,
               [{match_fun, public_key:pkix_verify_hostname_match_fun(https)}]}]
catch _:_ -> [{verify, verify_peer}]
end,
Status = case httpc:request(get, {Url, []},
                            [{connect_timeout, 10000}, {timeout, 600000}, {ssl, Ssl}],
                            [{stream, Out}]) of
    {ok, saved_to_file} -> 0;
    {ok, {{_, Code, _}, _, _}} -> io:format(standard_error, "httpc: HTTP ~p~n", [Code]), 22;
    {error, Reason} -> io:format(standard_error, "httpc: ~p~n", [Reason]), 7
end,
halt(Status).'

# Prints why a file cannot be trusted and stops.
reject() {
    local what=$1 file=$2 url=$3 want=$4 got=$5
    die "$what: $(basename "$file")
  from     $url
  expected sha256 $want (in ${CHECKSUMS#"$ROOT"/})
  got      sha256 $got ($(size_of "$file") bytes)
Nothing was installed into priv/. Compile again to retry, or set
ERQWEST_BUILD=1 to build from source with cargo."
}

# Downloads, verifies and unpacks the artifact. Returns 2 when nothing
# arrived (the caller may build instead); stops on anything unverified.
fetch() {
    local name=$1 want=$2 url tmp got
    url="$(base_url)/$name"
    tmp=$(mktemp -d "${TMPDIR:-/tmp}/erqwest-nif.XXXXXX")
    # Interrupted or failed, nothing of this attempt stays behind: not the
    # download, not a partial copy in priv/, not the downloader.
    DOWNLOAD_PID=""
    # shellcheck disable=SC2064
    trap "[ -z \"\$DOWNLOAD_PID\" ] || { kill \"\$DOWNLOAD_PID\" 2>/dev/null || true; }; rm -rf '$tmp' '$PRIV/.liberqwest_nif.so.$$.tmp'" EXIT
    trap 'exit 130' INT TERM
    local file="$tmp/$name" status=0
    download "$url" "$file" || status=$?
    if [ $status -ne 0 ]; then
        if [ "$(size_of "$file")" -gt 0 ]; then
            # Cut off mid-transfer: as untrusted as a wrong checksum.
            reject "truncated download (the transfer failed with status $status)" \
                "$file" "$url" "$want" "$(sha256 "$file")"
        fi
        say "downloading $url failed (status $status)"
        return 2
    fi
    got=$(sha256 "$file")
    [ "$got" = "$want" ] || reject "checksum mismatch" "$file" "$url" "$want" "$got"
    # Exactly one member, liberqwest_nif.so, a regular file.
    local members
    if ! members=$(tar -tzf "$file" 2>&1) || [ "$members" != liberqwest_nif.so ] ||
        ! tar -xzf "$file" -C "$tmp" 2>/dev/null ||
        [ -L "$tmp/liberqwest_nif.so" ] || [ ! -f "$tmp/liberqwest_nif.so" ]; then
        reject "unreadable archive (expected one file, liberqwest_nif.so)" \
            "$file" "$url" "$want" "$got"
    fi
    rm -f "$STAMP"
    put_so "$tmp/liberqwest_nif.so"
    echo "$name $want $(sha256 "$SO")" >"$STAMP.$$.tmp" && mv -f "$STAMP.$$.tmp" "$STAMP"
    say "installed the precompiled NIF $name (sha256 verified)"
}

# True when priv/ already holds the verified unpacked artifact.
installed() {
    [ -f "$STAMP" ] && [ -f "$SO" ] || return 1
    local name sha so_sha
    read -r name sha so_sha <"$STAMP" || return 1
    [ "$name" = "$1" ] && [ "$sha" = "$2" ] && [ "$so_sha" = "$(sha256 "$SO")" ]
}

install() {
    local target name want
    case ${ERQWEST_BUILD:-} in
        1 | true) build "ERQWEST_BUILD=$ERQWEST_BUILD"; return ;;
        0 | false) ;;
        "")
            # A checkout where cargo has built before keeps building from
            # source, so that a developer's edits are what gets loaded.
            if [ -d "$ROOT/native/target" ] && have "$CARGO"; then
                build "native/target exists; ERQWEST_BUILD=0 downloads instead"
                return
            fi ;;
        *) die "ERQWEST_BUILD must be 1 or 0, not '$ERQWEST_BUILD'" ;;
    esac
    [ "$PROFILE" = release ] || { build "ERQWEST_PROFILE=$PROFILE"; return; }
    target=$(target)
    name=$(artifact_name "$target")
    want=$(expected_sha "$name")
    if [ -z "$want" ]; then
        have "$CARGO" || die "no precompiled NIF for $target (NIF $(nif_version)) is listed in ${CHECKSUMS#"$ROOT"/}, and cargo is not on PATH.
Install Rust 1.85 or newer (https://rustup.rs) and compile again: erqwest then builds from source."
        build "no precompiled NIF for $target"
        return
    fi
    installed "$name" "$want" && return
    if ! check_vm_nif_version "$(nif_version)"; then
        die "the precompiled NIF is built for NIF version $(nif_version), which this VM ($(erl -noshell -eval 'io:put_chars(erlang:system_info(nif_version)), halt().')) cannot load; use OTP 22 or newer"
    fi
    local status=0
    (fetch "$name" "$want") || status=$?
    [ $status -eq 0 ] && return
    [ $status -eq 2 ] || exit $status
    if have "$CARGO"; then
        build "the download failed"
        return
    fi
    die "cannot install the NIF for $target: the download failed, and cargo is not on PATH to build it.
Either install Rust 1.85 or newer (https://rustup.rs) and compile again, or set
ERQWEST_NIF_BASE_URL to a server that hosts $name."
}

release() {
    local out=${1:-$ROOT/_build/nif-release} v cargo_v target name tmp
    v=$(version)
    cargo_v=$(sed -n 's/^version = "\(.*\)"/\1/p' "$ROOT/native/Cargo.toml" | head -1)
    [ "$cargo_v" = "$v" ] || die "VERSION says $v but native/Cargo.toml says $cargo_v; make them agree"
    local flags=(--quiet --release --manifest-path "$ROOT/native/Cargo.toml") dir="$CARGO_TARGET_DIR/release"
    if [ -n "${ERQWEST_TARGET:-}" ]; then
        flags+=(--target "$ERQWEST_TARGET")
        dir="$CARGO_TARGET_DIR/$ERQWEST_TARGET/release"
    fi
    have "$CARGO" || die "make release-nif needs cargo"
    target=$(target)
    name=$(artifact_name "$target")
    "$CARGO" build "${flags[@]}"
    local lib="$dir/liberqwest_nif.so"
    [ -f "$lib" ] || lib="$dir/liberqwest_nif.dylib"
    [ -f "$lib" ] || die "cargo built no library in $dir"
    mkdir -p "$out"
    tmp=$(mktemp -d "${TMPDIR:-/tmp}/erqwest-release.XXXXXX")
    # shellcheck disable=SC2064
    trap "rm -rf '$tmp'" EXIT
    cp "$lib" "$tmp/liberqwest_nif.so"
    # Same bytes for the same library: no names, times or owners of ours.
    tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner \
        -C "$tmp" -cf - liberqwest_nif.so | gzip -9n >"$out/$name.tmp"
    mv -f "$out/$name.tmp" "$out/$name"
    local sha
    sha=$(sha256 "$out/$name")
    {
        [ -f "$CHECKSUMS" ] && awk -v name="$name" '$2 != name' "$CHECKSUMS"
        echo "$sha  $name"
    } | sort -k2 >"$CHECKSUMS.tmp"
    mv -f "$CHECKSUMS.tmp" "$CHECKSUMS"
    say "wrote $out/$name"
    say "  sha256 $sha, listed in ${CHECKSUMS#"$ROOT"/}"
    say "  publish it as $(base_url)/$name"
}

info() {
    local target name
    target=$(target)
    name=$(artifact_name "$target")
    echo "version     $(version)"
    echo "nif_version $(nif_version)"
    echo "target      $target"
    echo "artifact    $name"
    echo "url         $(base_url)/$name"
    echo "sha256      $(expected_sha "$name")"
}

case ${1:-install} in
    install) install ;;
    release) release "${2:-}" ;;
    info) info ;;
    uname-target) uname_target ;;
    *) die "usage: native/nif.sh install | release [DIR] | info" ;;
esac
