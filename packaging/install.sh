#!/usr/bin/env bash
# Installs (or upgrades) kaas from this bundle, offline.
#
#   sudo ./install.sh [--root DIR] [--no-start] [--host-kubeconfig-only]
#
# --root DIR              install into DIR instead of / (for tests and image building): no user
#                         is created, nothing is chowned, systemd and K3s are not touched.
# --no-start              install, but do not enable or start the service.
# --host-kubeconfig-only  only (re)write /etc/kaas/host.kubeconfig from K3s (run this once K3s
#                         is up, if it was not during the install).
#
# Re-running it upgrades in place: the service is stopped, the database and the old binary are
# copied to /var/lib/kaas/backups/, then the new files go in. An edited config.toml is never
# overwritten (the new default is written beside it as config.toml.new).
set -euo pipefail
umask 022
export LC_ALL=C
bundle="$(cd "$(dirname "$0")" && pwd)"

root="/"
start=1
kubeconfig_only=0
while [ $# -gt 0 ]; do
  case "$1" in
    --root) root="$2"; shift 2 ;;
    --no-start) start=0; shift ;;
    --host-kubeconfig-only) kubeconfig_only=1; shift ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
die() { echo "install.sh: $*" >&2; exit 1; }
did() { echo "  - $*"; }
[ -d "$root" ] || die "--root $root is not a directory"
root="$(cd "$root" && pwd)"
r="${root%/}"            # prefix for every path; empty for a real install
real=0
[ -z "$r" ] && real=1
if [ "$real" -eq 1 ] && [ "$(id -u)" -ne 0 ]; then
  die "run as root (or use --root DIR to install into a directory)"
fi

BIN="$r/usr/local/bin/kaas"
LIBDIR="$r/usr/local/lib/kaas"
DOCDIR="$r/usr/local/share/doc/kaas"
UNIT="$r/etc/systemd/system/kaas.service"
ETC="$r/etc/kaas"
DATA="$r/var/lib/kaas"
K3S_IMAGES="$r/var/lib/rancher/k3s/agent/images"
K3S_MANIFESTS="$r/var/lib/rancher/k3s/server/manifests"
K3S_CONFD="$r/etc/rancher/k3s/config.yaml.d"
K3S_KUBECONFIG="/etc/rancher/k3s/k3s.yaml"
version="$(cat "$bundle/VERSION")"

# K3s's kubectl, for creating kaas's ServiceAccount token (real installs only).
kubectl_k3s() {
  if command -v k3s >/dev/null 2>&1; then k3s kubectl "$@"
  else KUBECONFIG="$K3S_KUBECONFIG" kubectl "$@"; fi
}
k3s_up() {
  [ "$real" -eq 1 ] && [ -r "$K3S_KUBECONFIG" ] && kubectl_k3s get --raw /readyz >/dev/null 2>&1
}

# Writes $ETC/host.kubeconfig for the kaas ServiceAccount (see k3s/kaas-rbac.yaml).
write_host_kubeconfig() {
  if ! k3s_up; then
    did "K3s is not answering: kaas's ServiceAccount is deployed by K3s from $K3S_MANIFESTS/kaas-rbac.yaml when it starts; then run: $bundle/install.sh --host-kubeconfig-only"
    return 0
  fi
  kubectl_k3s apply -f "$bundle/k3s/kaas-rbac.yaml" >/dev/null
  local token=""
  for _ in $(seq 1 30); do
    token="$(kubectl_k3s -n kube-system get secret kaas-token -o jsonpath='{.data.token}' 2>/dev/null || true)"
    [ -n "$token" ] && break
    sleep 1
  done
  [ -n "$token" ] || die "K3s did not issue a token for the kaas ServiceAccount within 30 s (secret kube-system/kaas-token)"
  local server ca tmp
  server="$(kubectl_k3s config view --raw -o jsonpath='{.clusters[0].cluster.server}')"
  ca="$(kubectl_k3s config view --raw -o jsonpath='{.clusters[0].cluster.certificate-authority-data}')"
  tmp="$(mktemp "$ETC/.host.kubeconfig.XXXXXX")"
  cat > "$tmp" <<KUBECONFIG
apiVersion: v1
kind: Config
clusters:
- name: k3s
  cluster:
    server: $server
    certificate-authority-data: $ca
users:
- name: kaas
  user:
    token: $(printf '%s' "$token" | base64 -d)
contexts:
- name: kaas
  context: {cluster: k3s, user: kaas}
current-context: kaas
KUBECONFIG
  chmod 0640 "$tmp"
  chown root:kaas "$tmp"
  mv "$tmp" "$ETC/host.kubeconfig"
  did "wrote $ETC/host.kubeconfig for ServiceAccount kube-system/kaas (least privilege; not the K3s admin kubeconfig)"
}

if [ "$kubeconfig_only" -eq 1 ]; then
  [ "$real" -eq 1 ] || die "--host-kubeconfig-only needs a real install (no --root)"
  write_host_kubeconfig
  exit 0
fi

echo "kaas $version: installing into $root"
# 1. Nothing is touched before the bundle is known to be intact.
(cd "$bundle" && sha256sum --check --quiet --strict SHA256SUMS) \
  || die "checksums do not match SHA256SUMS: the bundle is damaged; copy it again"
did "verified $(wc -l < "$bundle/SHA256SUMS") files against SHA256SUMS"

systemd_running=0
if [ "$real" -eq 1 ] && [ -d /run/systemd/system ]; then systemd_running=1; fi

# 2. The service user.
if [ "$real" -eq 1 ]; then
  if ! getent passwd kaas >/dev/null; then
    useradd --system --user-group --home-dir /var/lib/kaas --no-create-home \
      --shell /usr/sbin/nologin --comment "kaas service" kaas
    did "created system user kaas"
  fi
else
  did "--root: not creating user kaas; files belong to $(id -un)"
fi
own() { if [ "$real" -eq 1 ]; then chown "$@"; fi; }

# 3. Upgrade: stop, back up database and binary.
upgrade=0
if [ -e "$BIN" ]; then
  upgrade=1
  old="$("$BIN" version 2>/dev/null | awk '{print $2}')" || old=""
  old="${old:-unknown}"
  was_active=0
  if [ "$systemd_running" -eq 1 ] && systemctl is-active --quiet kaas; then
    was_active=1
    systemctl stop kaas
    did "stopped kaas $old for the upgrade"
  fi
  stamp="$(date -u +%Y%m%dT%H%M%SZ)"
  mkdir -p "$DATA/backups"
  if [ -f "$DATA/kaas.redb" ]; then
    # The server is stopped, so the file is closed and consistent: a plain copy is a backup.
    cp -p "$DATA/kaas.redb" "$DATA/backups/pre-upgrade-$old-$stamp.redb"
    did "backed up the database to $DATA/backups/pre-upgrade-$old-$stamp.redb"
  fi
  cp -p "$BIN" "$DATA/backups/kaas-$old-$stamp.bin"
  did "kept the previous binary as $DATA/backups/kaas-$old-$stamp.bin"
  own -R kaas:kaas "$DATA/backups"
fi

# 4. Directories with their modes.
install -d -m 0755 "$r/usr/local/bin" "$LIBDIR" "$DOCDIR" "$r/etc/systemd/system"
install -d -m 0750 "$ETC" "$DATA" "$DATA/backups"
own root:kaas "$ETC"
own kaas:kaas "$DATA" "$DATA/backups"
did "directories: $ETC (0750), $DATA (0750, owned by kaas)"

# 5. Binary, unit, scripts, notes.
install -m 0755 "$bundle/bin/kaas" "$BIN.new" && mv -f "$BIN.new" "$BIN"
did "installed $BIN ($("$BIN" version))"
install -m 0644 "$bundle/systemd/kaas.service" "$UNIT"
did "installed $UNIT"
install -m 0755 "$bundle/uninstall.sh" "$LIBDIR/uninstall.sh"
install -m 0644 "$bundle/INSTALL.md" "$DOCDIR/INSTALL.md"

# 6. Configuration: never overwrite an edited one.
packaged="$ETC/.config.toml.packaged"
if [ ! -e "$ETC/config.toml" ]; then
  install -m 0640 "$bundle/config/config.toml" "$ETC/config.toml"
  did "installed the default configuration $ETC/config.toml"
elif [ -e "$packaged" ] && cmp -s "$ETC/config.toml" "$packaged"; then
  install -m 0640 "$bundle/config/config.toml" "$ETC/config.toml"
  did "updated $ETC/config.toml (it was the unedited default)"
elif cmp -s "$ETC/config.toml" "$bundle/config/config.toml"; then
  did "kept $ETC/config.toml (already this version's default)"
else
  install -m 0640 "$bundle/config/config.toml" "$ETC/config.toml.new"
  own root:kaas "$ETC/config.toml.new"
  did "kept your edited $ETC/config.toml; this version's default is $ETC/config.toml.new"
fi
install -m 0640 "$bundle/config/config.toml" "$packaged"
own root:kaas "$ETC/config.toml" "$packaged"

# 7. K3s: images, the K3K chart, kaas's RBAC, the admission plugin.
install -d -m 0755 "$K3S_IMAGES" "$K3S_MANIFESTS" "$K3S_CONFD"
if [ -d "$bundle/images" ]; then
  for img in "$bundle"/images/*; do
    install -m 0644 "$img" "$K3S_IMAGES/$(basename "$img")"
    did "image tarball for K3s to import: $K3S_IMAGES/$(basename "$img")"
  done
fi
chart="$(find "$bundle/k3k" -maxdepth 1 -name '*.tgz' 2>/dev/null | sort | head -n 1)"
if [ -n "$chart" ]; then
  tmp="$(mktemp "$K3S_MANIFESTS/.k3k.yaml.XXXXXX")"
  {
    echo "# Written by kaas install.sh from $(basename "$chart"): K3s installs the chart from this"
    echo "# file with no registry and no network."
    echo "apiVersion: helm.cattle.io/v1"
    echo "kind: HelmChart"
    echo "metadata:"
    echo "  name: k3k"
    echo "  namespace: kube-system"
    echo "spec:"
    echo "  targetNamespace: k3k-system"
    echo "  createNamespace: true"
    echo "  chartContent: $(base64 -w0 < "$chart")"
  } > "$tmp"
  chmod 0600 "$tmp"
  mv "$tmp" "$K3S_MANIFESTS/k3k.yaml"
  did "K3K chart manifest for K3s to deploy: $K3S_MANIFESTS/k3k.yaml"
else
  did "no K3K chart in this bundle: install K3K yourself (kaas doctor checks it)"
fi
install -m 0600 "$bundle/k3s/kaas-rbac.yaml" "$K3S_MANIFESTS/kaas-rbac.yaml"
did "kaas's ServiceAccount and ClusterRole: $K3S_MANIFESTS/kaas-rbac.yaml"
k3s_restart=0
if ! cmp -s "$bundle/k3s/50-kaas.yaml" "$K3S_CONFD/50-kaas.yaml"; then
  install -m 0600 "$bundle/k3s/50-kaas.yaml" "$K3S_CONFD/50-kaas.yaml"
  k3s_restart=1
  did "enabled PodTolerationRestriction: $K3S_CONFD/50-kaas.yaml"
fi

# 8. kaas's host credentials, then the service.
if [ "$real" -eq 1 ]; then
  write_host_kubeconfig
fi
if [ "$systemd_running" -eq 1 ]; then
  systemctl daemon-reload
  if [ "$start" -eq 1 ]; then
    since="$(date '+%Y-%m-%d %H:%M:%S')"
    systemctl enable --quiet kaas
    systemctl restart kaas
    did "enabled and started kaas.service"
    link=""
    for _ in $(seq 1 20); do
      link="$(journalctl -u kaas --since "$since" -o cat 2>/dev/null | grep -m1 '^First run:' || true)"
      [ -n "$link" ] && break
      systemctl is-active --quiet kaas && "$BIN" healthcheck --config "$ETC/config.toml" >/dev/null 2>&1 && [ "$upgrade" -eq 1 ] && break
      sleep 0.5
    done
    [ -n "$link" ] && echo "$link"
  elif [ "$upgrade" -eq 1 ] && [ "${was_active:-0}" -eq 1 ]; then
    did "--no-start: kaas stays stopped (it was running before)"
  fi
elif [ "$real" -eq 1 ]; then
  did "systemd is not running: start kaas with: $BIN serve --config $ETC/config.toml"
fi

echo
if [ "$upgrade" -eq 1 ]; then echo "kaas upgraded to $version."; else echo "kaas $version installed."; fi
echo "Next:"
[ "$k3s_restart" -eq 1 ] && echo "  - restart K3s to enable PodTolerationRestriction and import the images: systemctl restart k3s"
echo "  - set host.external_addresses (and server.listen) in $ETC/config.toml, then: systemctl restart kaas"
echo "  - open the first-run setup link kaas printed (again: journalctl -u kaas -o cat | grep 'First run')"
echo "  - check the box: kaas doctor --config $ETC/config.toml"
if [ "$real" -eq 0 ]; then
  echo "  - (--root) try it: $BIN serve --config $ETC/config.toml --data-dir $DATA"
fi
