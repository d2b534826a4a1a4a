#!/usr/bin/env bash
# Builds helm from the Go module proxy into the cache (never a binary download).
# A helm already in the cache at the pinned version is not rebuilt.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=hack/lib/common.sh
source "$here/lib/common.sh"

HELM_VERSION="v3.19.5"

usage() {
	cat <<USAGE
usage: hack/helm.sh [--help] [--print-path]

Builds helm.sh/helm/v3/cmd/helm $HELM_VERSION with CGO_ENABLED=0 into $UDF_BIN/helm.
Cold, a few minutes on 2 cores; warm (binary cached) instant.
--print-path  print the path of the helm binary and exit.
USAGE
}

case "${1:-}" in
-h | --help) usage; exit 0 ;;
--print-path) echo "$UDF_BIN/helm"; exit 0 ;;
"") ;;
*) echo "hack/helm.sh: unknown argument: $1" >&2; usage >&2; exit 2 ;;
esac

# Bump RECIPE when helm_build changes, so a cached helm from the old recipe is rebuilt.
RECIPE=2
STAMP="$HELM_VERSION recipe $RECIPE"
if [ -x "$UDF_BIN/helm" ] && [ "$(cat "$UDF_BIN/.helm.version" 2>/dev/null)" = "$STAMP" ]; then
	echo "helm: $HELM_VERSION cached in $UDF_BIN"
	exit 0
fi
not_built "helm $HELM_VERSION" hack/helm.sh
need_go helm
export CGO_ENABLED=0 GOTOOLCHAIN=local
mkdir -p "$UDF_BIN"

helm_build() {
	rm -f "$UDF_BIN/.helm.version"
	local v="helm.sh/helm/v3/internal/version" gomod kminor ldflags p
	gomod=$(cd "$UDF_CACHE" && go mod download -json "helm.sh/helm/v3@$HELM_VERSION" |
		sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",*$/\1/p')
	[ -f "$gomod" ] || { echo "could not download helm.sh/helm/v3@$HELM_VERSION" >&2; return 1; }
	# The Kubernetes minor of helm's client-go (k8s.io/client-go v0.34.2 -> 34).
	kminor=$(sed -n 's#^[[:space:]]*k8s.io/client-go v0\.\([0-9]*\)\..*#\1#p' "$gomod")
	[ -n "$kminor" ] || { echo "no k8s.io/client-go in $gomod" >&2; return 1; }
	# The stamps helm's own Makefile sets: `helm version` says what was built, and `helm
	# template`/`helm lint` assume that Kubernetes version, not their 1.20 fallback.
	ldflags="-s -w -X $v.version=$HELM_VERSION -X $v.gitTreeState=clean"
	for p in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
		ldflags+=" -X $p.k8sVersionMajor=1 -X $p.k8sVersionMinor=$kminor"
	done
	# go install pkg@version resolves helm's own go.mod, outside any module of ours. (step runs
	# this function in an `if`, where set -e is off: every failure returns explicitly.)
	GOBIN="$UDF_BIN" GOFLAGS=-mod=mod go install -trimpath -ldflags "$ldflags" \
		"helm.sh/helm/v3/cmd/helm@$HELM_VERSION" || return 1
	echo "$STAMP" >"$UDF_BIN/.helm.version"
}

step "helm: build $HELM_VERSION" helm_build
"$UDF_BIN/helm" version --short
