#!/usr/bin/env bash
# Builds the release binary: static (x86_64-unknown-linux-musl), stripped, with the version and
# commit embedded (`kaas version` prints "kaas <version> (<commit>)"), using the `dist` profile
# (fat LTO, one codegen unit, opt-level "s"; see Cargo.toml). Installs the Rust target and musl
# tools when missing. Fails if the binary is not static or not under 25 MB (25,000,000 bytes).
# Takes about 10 minutes on 2 cores (up to 30 while other builds compete); not part of CI.
#
#   packaging/build-release.sh        → target/x86_64-unknown-linux-musl/dist/kaas
#                                       (under $CARGO_TARGET_DIR when that is set)
set -euo pipefail
cd "$(dirname "$0")/.."
target=x86_64-unknown-linux-musl
profile=dist
max_bytes=25000000
if ! rustup target list --installed | grep -x "$target" >/dev/null; then
  rustup target add "$target"
fi
if ! command -v musl-gcc >/dev/null 2>&1; then
  if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq musl-tools
fi
version="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)"
commit="$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)"
if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then commit="$commit-dirty"; fi
export KAAS_BUILD_VERSION="$version ($commit)"
export CC_x86_64_unknown_linux_musl=musl-gcc
cargo build --profile "$profile" --locked --target "$target" --bin kaas
bin="${CARGO_TARGET_DIR:-target}/$target/$profile/kaas"
die() { echo "build-release: $*" >&2; exit 1; }
[ -x "$bin" ] || die "no binary at $bin"
# A static binary has no "lib => path" lines (ldd says "statically linked" or "not a dynamic
# executable" and may exit non-zero); `file` says "statically linked" or "static-pie linked".
deps="$(ldd "$bin" 2>&1 || true)"
case "$deps" in *"=>"*) die "$bin is dynamically linked: $deps" ;; esac
if command -v file >/dev/null 2>&1; then
  case "$(file -b "$bin")" in *static*) ;; *) die "$bin is not static: $(file -b "$bin")" ;; esac
fi
bytes="$(stat -c %s "$bin")"
[ "$bytes" -lt "$max_bytes" ] || die "$bin is $bytes bytes, over the $max_bytes-byte limit"
echo "$bin: $bytes bytes"
"$bin" version
