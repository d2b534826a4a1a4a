#!/usr/bin/env bash
# Builds gVisor's runsc and containerd-shim-runsc-v1 (with our OOM-score patch) as static
# binaries into the cache. Binaries already built at the pinned version are not rebuilt.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=hack/lib/common.sh
source "$here/lib/common.sh"

# gvisor.dev/gvisor has no tags on the module proxy; this is the pseudo-version @latest
# resolved to when it was pinned.
GVISOR_VERSION="v0.0.0-20260905035102-160fafc42237"
PATCHES=("$here/patches/gvisor-shim-oom-score.patch")

usage() {
	cat <<USAGE
usage: hack/runsc.sh [--help] [--print-version]

Builds, with CGO_ENABLED=0, from gvisor.dev/gvisor@$GVISOR_VERSION into $UDF_BIN:
  runsc                     the gVisor runtime
  containerd-shim-runsc-v1  its containerd shim, patched by hack/patches/*.patch
Static linking is required: runsc re-executes /proc/self/exe inside an empty chroot, so a
dynamically linked (cgo) runsc fails every sandbox with "fork/exec /proc/self/exe: no such
file or directory". Cold, about 4-6 minutes on 2 cores; warm instant.
--print-version  print the pinned gvisor.dev/gvisor version and exit.
USAGE
}

case "${1:-}" in
-h | --help) usage; exit 0 ;;
--print-version) echo "$GVISOR_VERSION"; exit 0 ;;
"") ;;
*) echo "hack/runsc.sh: unknown argument: $1" >&2; usage >&2; exit 2 ;;
esac

export CGO_ENABLED=0 GOFLAGS=-mod=mod GOTOOLCHAIN=local
mkdir -p "$UDF_BIN"

# The stamp covers the patches too, so editing a patch rebuilds the shim.
stamp="$GVISOR_VERSION $(cat "${PATCHES[@]}" | sha256sum | cut -c1-16)"
src="$UDF_CACHE/src/gvisor"

up_to_date() {
	local b
	for b in runsc containerd-shim-runsc-v1; do
		[ -x "$UDF_BIN/$b" ] && [ "$(cat "$UDF_BIN/.$b.version" 2>/dev/null)" = "$stamp" ] || return 1
	done
}

# A writable copy of the module with the patches applied; the module cache stays pristine.
prepare_source() {
	local dir
	dir=$(cd /tmp && go mod download -json "gvisor.dev/gvisor@$GVISOR_VERSION" |
		sed -n 's/^[[:space:]]*"Dir": "\(.*\)",*$/\1/p')
	[ -d "$dir" ] || die "could not download gvisor.dev/gvisor@$GVISOR_VERSION"
	rm -rf "$src.tmp"
	mkdir -p "$(dirname "$src")"
	cp -r "$dir" "$src.tmp"
	chmod -R u+w "$src.tmp"
	local p
	for p in "${PATCHES[@]}"; do
		patch -d "$src.tmp" -p1 --forward --batch <"$p"
	done
	rm -rf "$src"
	mv "$src.tmp" "$src"
}

build() {
	local ldflags="-s -w -X gvisor.dev/gvisor/runsc/version.version=$GVISOR_VERSION"
	(cd "$src" && go build -trimpath -ldflags "$ldflags" -o "$UDF_BIN/runsc" ./runsc)
	(cd "$src" && go build -trimpath -ldflags "-s -w" -o "$UDF_BIN/containerd-shim-runsc-v1" ./shim)
	# A dynamically linked runsc would fail only later, inside every sandbox: check now.
	if grep -q 'dynamically linked' <<<"$(file "$UDF_BIN/runsc" 2>/dev/null)"; then
		die "runsc came out dynamically linked; it must be built with CGO_ENABLED=0"
	fi
	echo "$stamp" >"$UDF_BIN/.runsc.version"
	echo "$stamp" >"$UDF_BIN/.containerd-shim-runsc-v1.version"
}

if up_to_date; then
	echo "runsc: gvisor $GVISOR_VERSION cached in $UDF_BIN"
	exit 0
fi
not_built "runsc (gvisor $GVISOR_VERSION)" hack/runsc.sh
need_go runsc
command -v patch >/dev/null || die "patch is not installed (hack/deps.sh installs it)"
step "runsc: fetch and patch gvisor.dev/gvisor" prepare_source
step "runsc: build runsc and containerd-shim-runsc-v1" build
