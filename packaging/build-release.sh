#!/usr/bin/env bash
# Builds the release binary: static (x86_64-unknown-linux-musl), stripped, with the version and
# commit embedded (`kaas version` prints "kaas <version> (<commit>)"). Installs the Rust target
# and musl tools when missing. Takes about 10 minutes on a 2-core machine; not part of CI.
#
#   packaging/build-release.sh        → target/x86_64-unknown-linux-musl/release/kaas
set -euo pipefail
cd "$(dirname "$0")/.."
target=x86_64-unknown-linux-musl
if ! rustup target list --installed | grep -qx "$target"; then
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
cargo build --release --locked --target "$target" --bin kaas
bin="target/$target/release/kaas"
if ldd "$bin" 2>&1 | grep -q '=>'; then echo "build-release: $bin is not static" >&2; exit 1; fi
ls -l "$bin"
"$bin" version
