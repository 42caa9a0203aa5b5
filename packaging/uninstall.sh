#!/usr/bin/env bash
# Removes kaas. Keeps the database, backups and configuration unless --purge is given.
#
#   sudo ./uninstall.sh [--root DIR] [--purge]
#
# --root DIR  remove from an installation made with install.sh --root DIR.
# --purge     also delete /var/lib/kaas (database, backups, certificates), /etc/kaas and the
#             kaas user. There is no undo.
#
# K3K, its images, the PodTolerationRestriction setting and kaas's ServiceAccount stay on K3s:
# tenants' virtual clusters may still run there. Remove them yourself once the workspaces are
# gone (kubectl delete -f /var/lib/rancher/k3s/server/manifests/kaas-rbac.yaml, then delete
# that file; likewise k3k.yaml, after every K3K Cluster is deleted).
set -euo pipefail
root="/"
purge=0
while [ $# -gt 0 ]; do
  case "$1" in
    --root) root="$2"; shift 2 ;;
    --purge) purge=1; shift ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "uninstall.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
die() { echo "uninstall.sh: $*" >&2; exit 1; }
did() { echo "  - $*"; }
[ -d "$root" ] || die "--root $root is not a directory"
root="$(cd "$root" && pwd)"
r="${root%/}"
real=0
[ -z "$r" ] && real=1
if [ "$real" -eq 1 ] && [ "$(id -u)" -ne 0 ]; then die "run as root (or use --root DIR)"; fi

echo "removing kaas from $root"
if [ "$real" -eq 1 ] && [ -d /run/systemd/system ]; then
  systemctl disable --now --quiet kaas 2>/dev/null || true
  did "stopped and disabled kaas.service"
fi
for f in "$r/usr/local/bin/kaas" "$r/etc/systemd/system/kaas.service" \
         "$r/usr/local/share/doc/kaas/INSTALL.md" "$r/usr/local/lib/kaas/uninstall.sh"; do
  if [ -e "$f" ]; then rm -f "$f"; did "removed $f"; fi
done
rmdir "$r/usr/local/share/doc/kaas" "$r/usr/local/lib/kaas" 2>/dev/null || true
if [ "$real" -eq 1 ] && [ -d /run/systemd/system ]; then systemctl daemon-reload; fi

if [ "$purge" -eq 1 ]; then
  rm -rf "$r/var/lib/kaas" "$r/etc/kaas"
  did "deleted $r/var/lib/kaas and $r/etc/kaas"
  if [ "$real" -eq 1 ] && getent passwd kaas >/dev/null; then
    userdel kaas 2>/dev/null || true
    did "deleted user kaas"
  fi
else
  did "kept the database and backups in $r/var/lib/kaas and the configuration in $r/etc/kaas (--purge deletes them)"
fi
echo "K3K and kaas's ServiceAccount stay on K3s; see the notes at the top of this script to remove them."
