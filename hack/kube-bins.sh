#!/usr/bin/env bash
# Builds the real Kubernetes and etcd binaries from the Go module proxy into the cache.
# A binary already in the cache at the pinned version is not rebuilt.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=hack/lib/common.sh
source "$here/lib/common.sh"

usage() {
	cat <<USAGE
usage: hack/kube-bins.sh [--help] [--print-dir]

Builds with CGO_ENABLED=0 into $UDF_BIN:
  kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet kube-proxy
    from k8s.io/kubernetes $K8S_VERSION
  etcd etcdctl from go.etcd.io/etcd $ETCD_VERSION
Cold, about 10-12 minutes on 2 cores; warm (binaries cached) instant.
--print-dir  print the binary directory and exit.
USAGE
}

case "${1:-}" in
-h | --help) usage; exit 0 ;;
--print-dir) echo "$UDF_BIN"; exit 0 ;;
"") ;;
*) echo "hack/kube-bins.sh: unknown argument: $1" >&2; usage >&2; exit 2 ;;
esac

export CGO_ENABLED=0 GOFLAGS=-mod=mod GOTOOLCHAIN=local
mkdir -p "$UDF_BIN"

K8S_CMDS=(kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet kube-proxy)
stamp_ok() { [ -x "$UDF_BIN/$1" ] && [ "$(cat "$UDF_BIN/.$1.version" 2>/dev/null)" = "$2" ]; }

# k8s.io/kubernetes is not meant to be a dependency: its go.mod requires every staging
# module at v0.0.0 and replaces it with ./staging/... . Generate our replace block from
# that go.mod so each k8s.io/X maps to the published k8s.io/X v0.<minor>.<patch>.
k8s_module() {
	local dir="$UDF_CACHE/src/k8s" gomod staging_ver
	staging_ver="v0.${K8S_VERSION#v1.}"
	mkdir -p "$dir"
	gomod=$(cd "$dir" && go mod download -json "k8s.io/kubernetes@$K8S_VERSION" |
		sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",*$/\1/p')
	[ -f "$gomod" ] || die "could not download k8s.io/kubernetes@$K8S_VERSION"
	{
		echo "module udf-sandbox/kube-bins"
		echo
		echo "go 1.24"
		echo
		echo "require k8s.io/kubernetes $K8S_VERSION"
		echo
		echo "replace ("
		sed -n 's#^[[:space:]]*\(k8s\.io/[^ ]*\) => \./staging/.*#\t\1 => \1 '"$staging_ver"'#p' "$gomod"
		echo ")"
	} >"$dir/go.mod"
	grep -q 'k8s.io/api => k8s.io/api' "$dir/go.mod" || die "no staging replaces found in $gomod"
	cat >"$dir/tools.go" <<'GO'
//go:build tools

package tools
GO
	(cd "$dir" && go get "k8s.io/kubernetes/cmd/kube-apiserver@$K8S_VERSION" \
		"k8s.io/kubernetes/cmd/kubelet@$K8S_VERSION" \
		"k8s.io/kubernetes/cmd/kubectl@$K8S_VERSION")
}

k8s_build() {
	local dir="$UDF_CACHE/src/k8s" minor ldflags pkgs=() c
	minor="${K8S_VERSION#v1.}"
	minor="${minor%%.*}"
	ldflags="-s -w"
	for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
		ldflags+=" -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor"
		ldflags+=" -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
	done
	for c in "${K8S_CMDS[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$c"); done
	(cd "$dir" && go build -trimpath -ldflags "$ldflags" -o "$UDF_BIN/" "${pkgs[@]}")
	for c in "${K8S_CMDS[@]}"; do echo "$K8S_VERSION" >"$UDF_BIN/.$c.version"; done
}

etcd_build() {
	local dir="$UDF_CACHE/src/etcd"
	mkdir -p "$dir"
	cat >"$dir/go.mod" <<GOMOD
module udf-sandbox/etcd-bins

go 1.24
GOMOD
	(cd "$dir" && go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" "go.etcd.io/etcd/etcdctl/v3@$ETCD_VERSION" &&
		go build -trimpath -ldflags "-s -w" -o "$UDF_BIN/etcd" go.etcd.io/etcd/server/v3 &&
		go build -trimpath -ldflags "-s -w" -o "$UDF_BIN/etcdctl" go.etcd.io/etcd/etcdctl/v3)
	echo "$ETCD_VERSION" >"$UDF_BIN/.etcd.version"
	echo "$ETCD_VERSION" >"$UDF_BIN/.etcdctl.version"
}

need_k8s=0
for c in "${K8S_CMDS[@]}"; do stamp_ok "$c" "$K8S_VERSION" || need_k8s=1; done
if [ "$need_k8s" -eq 1 ]; then
	not_built "Kubernetes $K8S_VERSION" hack/kube-bins.sh
	need_go "the Kubernetes binaries"
	step "kube-bins: resolve k8s.io/kubernetes $K8S_VERSION" k8s_module
	step "kube-bins: build ${#K8S_CMDS[@]} kubernetes binaries" k8s_build
else
	echo "kube-bins: kubernetes $K8S_VERSION cached in $UDF_BIN"
fi
if ! stamp_ok etcd "$ETCD_VERSION" || ! stamp_ok etcdctl "$ETCD_VERSION"; then
	not_built "etcd $ETCD_VERSION" hack/kube-bins.sh
	need_go etcd
	step "kube-bins: build etcd $ETCD_VERSION" etcd_build
else
	echo "kube-bins: etcd $ETCD_VERSION cached in $UDF_BIN"
fi
