#!/usr/bin/env bash
# Builds the test host: tests/realhost/bin/realhost, the real kubectl of the same Kubernetes
# release (tests/realhost/bin/kubectl), and K3K's CRDs of the release realhost runs
# (tests/realhost/bin/crds/). Go's module and build caches make a rebuild incremental: the
# first build compiles Kubernetes (about 10 minutes on 2 cores), later ones take seconds.
#
#   bash tests/realhost/build.sh
set -euo pipefail
cd "$(dirname "$0")"
# Kubernetes reads its version from these at build time (kube-apiserver's /version, what K3K
# copies into status.hostVersion); the module proxy's source carries none.
k8s_version="$(go list -m -f '{{.Version}}' k8s.io/kubernetes)"
minor="$(echo "$k8s_version" | cut -d. -f2)"
ldflags=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=$k8s_version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done
mkdir -p bin
# One invocation for both, so Go schedules their packages together on every core.
go build -trimpath -ldflags "$ldflags" -o bin/ . k8s.io/kubernetes/cmd/kubectl
k3k_dir="$(go list -m -f '{{.Dir}}' github.com/rancher/k3k)"
rm -rf bin/crds
mkdir -p bin/crds
cp "$k3k_dir"/charts/k3k/templates/crds/*.yaml bin/crds/
chmod -R u+w bin/crds
echo "built: $(pwd)/bin/realhost, $(pwd)/bin/kubectl ($k8s_version), bin/crds (K3K $(go list -m -f '{{.Version}}' github.com/rancher/k3k))"
