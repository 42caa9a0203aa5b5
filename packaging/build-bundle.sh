#!/usr/bin/env bash
# Builds the offline install bundle kaas-<version>-linux-amd64.tar.gz.
#
#   packaging/build-bundle.sh [--binary FILE] [--chart K3K_CHART.tgz] [--image IMAGE.tar]...
#                             [--out DIR] [--version V]
#
# --binary   the kaas binary (default: the static release build,
#            target/x86_64-unknown-linux-musl/dist/kaas, or the static glibc fallback
#            target/x86_64-unknown-linux-gnu/dist/kaas (the newer when both exist), under
#            $CARGO_TARGET_DIR when set; build it with packaging/build-release.sh). It is run
#            for `version` and `config default`.
# --chart    the K3K Helm chart .tgz (cannot be downloaded here; optional).
# --image    an image tarball for K3s to import (rancher/k3k, rancher/k3k-kubelet, rancher/k3s
#            for every pinned version); repeatable, optional.
# --out      where the bundle goes (default: dist/).
# --version  the version in the bundle's name and VERSION (default: from `kaas version`).
#
# The same inputs give the same bytes: file order, owners, modes and times in the tar are
# fixed (times = $SOURCE_DATE_EPOCH, default 0) and gzip stores no name or time.
set -euo pipefail
export LC_ALL=C
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/.." && pwd)"

target_dir="${CARGO_TARGET_DIR:-$repo/target}"
case "$target_dir" in /*) ;; *) target_dir="$repo/$target_dir" ;; esac
binary="$target_dir/x86_64-unknown-linux-musl/dist/kaas"
gnu_binary="$target_dir/x86_64-unknown-linux-gnu/dist/kaas"
if [ -x "$gnu_binary" ] && { [ ! -x "$binary" ] || [ "$gnu_binary" -nt "$binary" ]; }; then
  binary="$gnu_binary"
fi
chart=""
images=()
out="$repo/dist"
version=""
while [ $# -gt 0 ]; do
  case "$1" in
    --binary) binary="$2"; shift 2 ;;
    --chart) chart="$2"; shift 2 ;;
    --image) images+=("$2"); shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --version) version="$2"; shift 2 ;;
    -h|--help) sed -n '2,/^$/{/^#/s/^# \{0,1\}//p}' "$0"; exit 0 ;;
    *) echo "build-bundle: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
die() { echo "build-bundle: $*" >&2; exit 1; }
[ -x "$binary" ] || die "no executable kaas binary at $binary (run packaging/build-release.sh, or pass --binary)"
[ -z "$chart" ] || [ -f "$chart" ] || die "chart $chart does not exist"
for i in "${images[@]}"; do [ -f "$i" ] || die "image tarball $i does not exist"; done

if [ -z "$version" ]; then
  # `kaas version` prints "kaas <version>[ (<commit>)]".
  version="$("$binary" version | awk '{print $2}')"
fi
case "$version" in ''|*/*|*' '*) die "unusable version \"$version\"" ;; esac
epoch="${SOURCE_DATE_EPOCH:-0}"
name="kaas-$version-linux-amd64"

stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
b="$stage/$name"
mkdir -p "$b/bin" "$b/systemd" "$b/config" "$b/k3s"
install -m 0755 "$binary" "$b/bin/kaas"
install -m 0644 "$repo/systemd/kaas.service" "$b/systemd/kaas.service"
# The packaged default: `kaas config default` with the paths of an installed system.
"$binary" config default \
  | sed -e 's#^dir = "./kaas-data"#dir = "/var/lib/kaas"#' \
        -e 's|^# kubeconfig = "/etc/rancher/k3s/k3s.yaml"|kubeconfig = "/etc/kaas/host.kubeconfig"|' \
  > "$b/config/config.toml"
grep -q '^dir = "/var/lib/kaas"' "$b/config/config.toml" || die "could not set data.dir in the default config"
grep -q '^kubeconfig = "/etc/kaas/host.kubeconfig"' "$b/config/config.toml" || die "could not set host.kubeconfig in the default config"
chmod 0644 "$b/config/config.toml"
install -m 0644 "$here/k3s/50-kaas.yaml" "$b/k3s/50-kaas.yaml"
install -m 0644 "$here/k3s/kaas-rbac.yaml" "$b/k3s/kaas-rbac.yaml"
install -m 0755 "$here/install.sh" "$b/install.sh"
install -m 0755 "$here/uninstall.sh" "$b/uninstall.sh"
install -m 0644 "$here/INSTALL.md" "$b/INSTALL.md"
printf '%s\n' "$version" > "$b/VERSION"
chmod 0644 "$b/VERSION"
if [ -n "$chart" ]; then
  mkdir -p "$b/k3k"
  install -m 0644 "$chart" "$b/k3k/$(basename "$chart")"
fi
if [ "${#images[@]}" -gt 0 ]; then
  mkdir -p "$b/images"
  for i in "${images[@]}"; do install -m 0644 "$i" "$b/images/$(basename "$i")"; done
fi
find "$b" -type d -exec chmod 0755 {} +
(cd "$b" && find . -type f -printf '%P\0' | sort -z | xargs -0 sha256sum) > "$stage/SHA256SUMS"
mv "$stage/SHA256SUMS" "$b/SHA256SUMS"
chmod 0644 "$b/SHA256SUMS"

mkdir -p "$out"
tarball="$out/$name.tar.gz"
tar -C "$stage" --sort=name --format=gnu --owner=0 --group=0 --numeric-owner \
    --mtime="@$epoch" -cf - "$name" | gzip -9 -n > "$tarball.tmp"
mv "$tarball.tmp" "$tarball"
echo "$tarball"
