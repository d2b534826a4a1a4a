#!/usr/bin/env bash
# Builds kube-router from the Go module proxy into the cache (never a binary download). It is
# the local test node's NetworkPolicy implementation (hack/node.sh runs only its firewall), so
# the sandbox policy is enforced where the tests run. A test-node component only: it ships in
# no manifest and no chart (v2.1.0, the one version the proxy serves, has reported flaws).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=hack/lib/common.sh
source "$here/lib/common.sh"

KUBE_ROUTER_VERSION="v2.1.0"
KUBE_ROUTER_MODULE="github.com/cloudnativelabs/kube-router/v2"

usage() {
	cat <<USAGE
usage: hack/kube-router.sh [--help] [--print-path] [--print-version]

Builds $KUBE_ROUTER_MODULE/cmd/kube-router $KUBE_ROUTER_VERSION with CGO_ENABLED=0 into
$UDF_BIN/kube-router. Cold, about 90 s on 2 cores; warm (binary cached) instant.
--print-path     print the path of the kube-router binary and exit.
--print-version  print the pinned version and exit.
USAGE
}

case "${1:-}" in
-h | --help)
	usage
	exit 0
	;;
--print-path)
	echo "$UDF_BIN/kube-router"
	exit 0
	;;
--print-version)
	echo "$KUBE_ROUTER_VERSION"
	exit 0
	;;
"") ;;
*)
	echo "hack/kube-router.sh: unknown argument: $1" >&2
	usage >&2
	exit 2
	;;
esac

# Bump RECIPE when kube_router_build changes, so a binary from the old recipe is rebuilt.
RECIPE=1
STAMP="$KUBE_ROUTER_VERSION recipe $RECIPE"
if [ -x "$UDF_BIN/kube-router" ] && [ "$(cat "$UDF_BIN/.kube-router.version" 2>/dev/null)" = "$STAMP" ]; then
	echo "kube-router: $KUBE_ROUTER_VERSION cached in $UDF_BIN"
	exit 0
fi
not_built "kube-router $KUBE_ROUTER_VERSION" hack/kube-router.sh
need_go kube-router
export CGO_ENABLED=0 GOTOOLCHAIN=local
mkdir -p "$UDF_BIN"

kube_router_build() {
	rm -f "$UDF_BIN/.kube-router.version"
	local v="$KUBE_ROUTER_MODULE/pkg/version"
	# go install pkg@version resolves kube-router's own go.mod, outside any module of ours.
	# (step runs this function in an `if`, where set -e is off: failures return explicitly.)
	GOBIN="$UDF_BIN" GOFLAGS=-mod=mod go install -trimpath \
		-ldflags "-s -w -X $v.Version=$KUBE_ROUTER_VERSION -X $v.BuildDate=cached" \
		"$KUBE_ROUTER_MODULE/cmd/kube-router@$KUBE_ROUTER_VERSION" || return 1
	echo "$STAMP" >"$UDF_BIN/.kube-router.version"
}

step "kube-router: build $KUBE_ROUTER_VERSION" kube_router_build
"$UDF_BIN/kube-router" --version 2>&1 | head -n1
