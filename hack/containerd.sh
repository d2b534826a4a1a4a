#!/usr/bin/env bash
# Builds containerd v2 (daemon, ctr, runc shim) as static binaries into the cache.
# Binaries already built at the pinned version are not rebuilt.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=hack/lib/common.sh
source "$here/lib/common.sh"

# The containerd the pinned gvisor.dev/gvisor shim is built against (its go.mod), so the
# daemon and the runsc shim speak the same task API.
CONTAINERD_VERSION="v2.1.5"
CMDS=(containerd ctr containerd-shim-runc-v2)

usage() {
	cat <<USAGE
usage: hack/containerd.sh [--help] [--print-version]

Builds, with CGO_ENABLED=0, from github.com/containerd/containerd/v2@$CONTAINERD_VERSION
into $UDF_BIN: ${CMDS[*]}.
Debian's containerd (1.6) cannot drive a current runsc shim, hence this build. runc and the
CNI plugins come from Debian (hack/deps.sh). Cold, about 3-5 minutes on 2 cores.
--print-version  print the pinned containerd version and exit.
USAGE
}

case "${1:-}" in
-h | --help) usage; exit 0 ;;
--print-version) echo "$CONTAINERD_VERSION"; exit 0 ;;
"") ;;
*) echo "hack/containerd.sh: unknown argument: $1" >&2; usage >&2; exit 2 ;;
esac

export CGO_ENABLED=0 GOFLAGS=-mod=mod GOTOOLCHAIN=local
mkdir -p "$UDF_BIN"

up_to_date() {
	local c
	for c in "${CMDS[@]}"; do
		[ -x "$UDF_BIN/$c" ] && [ "$(cat "$UDF_BIN/.$c.version" 2>/dev/null)" = "$CONTAINERD_VERSION" ] ||
			return 1
	done
}

resolve() {
	local dir="$UDF_CACHE/src/containerd"
	mkdir -p "$dir"
	cat >"$dir/go.mod" <<GOMOD
module udf-sandbox/containerd-bins

go 1.24
GOMOD
	rm -f "$dir/go.sum"
	(cd "$dir" && go get "github.com/containerd/containerd/v2@$CONTAINERD_VERSION")
}

build() {
	local dir="$UDF_CACHE/src/containerd" pkgs=() c ldflags
	ldflags="-s -w -X github.com/containerd/containerd/v2/version.Version=$CONTAINERD_VERSION"
	for c in "${CMDS[@]}"; do pkgs+=("github.com/containerd/containerd/v2/cmd/$c"); done
	# btrfs needs cgo; devmapper and zfs snapshotters are unused here.
	(cd "$dir" && go build -trimpath -tags "no_btrfs no_devmapper no_zfs" -ldflags "$ldflags" \
		-o "$UDF_BIN/" "${pkgs[@]}")
	for c in "${CMDS[@]}"; do echo "$CONTAINERD_VERSION" >"$UDF_BIN/.$c.version"; done
}

if up_to_date; then
	echo "containerd: $CONTAINERD_VERSION cached in $UDF_BIN"
	exit 0
fi
not_built "containerd $CONTAINERD_VERSION" hack/containerd.sh
need_go containerd
step "containerd: resolve containerd $CONTAINERD_VERSION" resolve
step "containerd: build ${CMDS[*]}" build
