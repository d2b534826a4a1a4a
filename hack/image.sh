#!/usr/bin/env bash
# Builds the project's container images without Docker: Debian root filesystems from
# debootstrap, layered with umoci into one OCI layout in the cache, exported with skopeo, and
# imported into the node's containerd (hack/node.sh) by name.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
# shellcheck source=hack/lib/common.sh
source "$here/lib/common.sh"

SUITE="bookworm"
# What goes into the worker image: Debian's Python, then udf-worker's runtime libraries.
# worker/Dockerfile installs the same libraries and pip pins (tests/node checks); its Python
# comes from its base image instead.
WORKER_DEBS=(python3 python3-venv ca-certificates libcurl4 libcjson1 libwebsockets17)
WORKER_PIP=(pyarrow==26.0.1 databend-udf==0.2.20)
WORKER_VENV="/opt/udf/venv"
WORKER_UID=10001
# The operator image: only the runtime libraries bin/udf-operator links against.
# operator/Dockerfile installs the same list.
OPERATOR_DEBS=(ca-certificates libcurl4 libcjson1 libyaml-0-2 libprotobuf-c1 libgrpc29 libssl3 libatomic1)
OPERATOR_UID=10002

IMAGES="$UDF_CACHE/images"
LAYOUT="$IMAGES/oci"

usage() {
	cat <<USAGE
usage: hack/image.sh [--help] [pause|worker|worker-base|operator|all]...
       hack/image.sh import [--address SOCKET] | packages worker|operator

  pause     localhost/pause:dev, the pod sandbox image (a static pause binary, one layer)
  worker    localhost/udf-worker:dev: Debian $SUITE + ${WORKER_DEBS[*]},
            a venv at $WORKER_VENV with ${WORKER_PIP[*]} (pip), worker/python/
            at /opt/udf/python when present, and bin/udf-worker as the entrypoint (uid $WORKER_UID)
  worker-base  only the worker image's cached base (root filesystem and venv)
  operator  localhost/udf-operator:dev: Debian $SUITE minbase + the runtime libraries of
            bin/udf-operator, entrypoint bin/udf-operator (uid $OPERATOR_UID)
  all       all three (the default)
  packages worker|operator  print the image's Debian packages and pip pins
  import    import every built image into a containerd (default: the node's socket) in
            namespace k8s.io; an image already imported unchanged is skipped

bin/udf-worker and bin/udf-operator come from 'make'; build them first. Each image's base
(the debootstrap root filesystem, the venv) is cached in $LAYOUT by the
hash of its package list; a new binary or Python stub adds one small layer. Archives for
import: $IMAGES/<name>.tar.
USAGE
}

# The Debian mirror the host's apt already uses (never named here).
debian_mirror() {
	local url
	url=$(awk '/^URIs:/{u=$2} /^Suites:/ && /(^| )'"$SUITE"'( |$)/{print u; exit}' \
		/etc/apt/sources.list.d/*.sources 2>/dev/null | head -n1)
	if [ -z "$url" ]; then
		url=$(awk '$1=="deb" && $3=="'"$SUITE"'"{print $2; exit}' /etc/apt/sources.list 2>/dev/null)
	fi
	[ -n "$url" ] || die "no Debian $SUITE mirror found in the host's apt sources"
	echo "$url"
}

# remove_tree DIR...: rm -rf that first unmounts whatever an interrupted chroot left mounted
# below DIR (its /proc and a bind of the host's /dev) and never crosses into another
# file system.
remove_tree() {
	local d m
	for d in "$@"; do
		[ -e "$d" ] || continue
		{ findmnt -rn -o TARGET | grep -F -- "$(realpath "$d")/" || true; } | sort -r | while IFS= read -r m; do
			umount "$m" 2>/dev/null || umount -l "$m"
		done
		rm -rf --one-file-system "$d"
	done
}

key_of() { printf '%s\n' "$@" | sha256sum | cut -c1-12; }

# (grep reads a finished list: with pipefail, "umoci ls | grep -q" fails when grep exits first.)
has_tag() { grep -qxF -- "$1" <<<"$(umoci ls --layout "$LAYOUT" 2>/dev/null)"; }

init_layout() {
	mkdir -p "$IMAGES"
	[ -f "$LAYOUT/index.json" ] || umoci init --layout "$LAYOUT"
}

# debootstrap_rootfs DIR PACKAGE...: a minimal Debian with PACKAGEs, apt caches removed.
debootstrap_rootfs() {
	local dir="$1"
	shift
	local include
	include=$(
		IFS=,
		echo "$*"
	)
	remove_tree "$dir"
	debootstrap --variant=minbase --include="$include" "$SUITE" "$dir" "$(debian_mirror)"
	rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/* "$dir"/usr/share/doc/* \
		"$dir"/usr/share/man/* "$dir"/usr/share/locale/* "$dir"/var/log/*
}

# add_user DIR NAME UID: a system user with a home, written straight into the rootfs.
add_user() {
	local dir="$1" name="$2" uid="$3"
	grep -q "^$name:" "$dir/etc/passwd" && return 0
	echo "$name:x:$uid:$uid:$name:/home/$name:/usr/sbin/nologin" >>"$dir/etc/passwd"
	echo "$name:x:$uid:" >>"$dir/etc/group"
	echo "$name:!:19000::::::" >>"$dir/etc/shadow"
	mkdir -p "$dir/home/$name"
	chown "$uid:$uid" "$dir/home/$name"
}

# in_chroot DIR CMD...: runs CMD in DIR with /proc and /dev, and the host's CA bundle (for
# pip behind an intercepting proxy) at /tmp/host-ca.crt for the duration.
in_chroot() {
	local dir="$1" rc=0
	shift
	mount -t proc proc "$dir/proc"
	mount --bind /dev "$dir/dev"
	cp /etc/resolv.conf "$dir/etc/resolv.conf"
	cp /etc/ssl/certs/ca-certificates.crt "$dir/tmp/host-ca.crt"
	# The host's pip index and proxy settings, when it has any, apply in the chroot too.
	local pass=() v
	for v in PIP_INDEX_URL PIP_EXTRA_INDEX_URL PIP_TRUSTED_HOST HTTP_PROXY HTTPS_PROXY NO_PROXY \
		http_proxy https_proxy no_proxy; do
		[ -z "${!v:-}" ] || pass+=("$v=${!v}")
	done
	chroot "$dir" env -i PATH=/usr/local/bin:/usr/bin:/bin HOME=/root "${pass[@]}" \
		PIP_CERT=/tmp/host-ca.crt PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 "$@" || rc=$?
	umount "$dir/dev" || umount -l "$dir/dev"
	umount "$dir/proc" || umount -l "$dir/proc"
	rm -f "$dir/tmp/host-ca.crt"
	: >"$dir/etc/resolv.conf"
	return "$rc"
}

# keep_rootfs DIR TAG: keeps a base's root filesystem (for check_libs), dropping older ones
# of the same image.
keep_rootfs() {
	local dir="$1" tag="$2"
	mkdir -p "$IMAGES/rootfs"
	remove_tree "$IMAGES/rootfs/${tag%-*}"-*
	mv "$dir" "$IMAGES/rootfs/$tag"
}

# check_libs TAG BINARY: every shared library BINARY needs resolves inside the base's root
# filesystem, so a binary linked against a new library fails here, not in a pod.
check_libs() {
	local rootfs="$IMAGES/rootfs/$1" bin="$2" missing
	if [ ! -d "$rootfs" ]; then
		echo "image: no root filesystem kept for $1; library check skipped" >&2
		return 0
	fi
	cp "$bin" "$rootfs/tmp/check-libs"
	missing=$(chroot "$rootfs" /usr/bin/ldd /tmp/check-libs 2>&1 | grep 'not found' || true)
	rm -f "$rootfs/tmp/check-libs"
	[ -z "$missing" ] || die "$(basename "$bin") needs libraries the image lacks (add their Debian packages):
$missing"
}

# --- pause --------------------------------------------------------------------------------

build_pause() {
	local work="$IMAGES/work/pause"
	rm -rf "$work"
	mkdir -p "$work"
	"${CC:-cc}" -static -Os -Wall -Wextra -Werror -o "$work/pause" "$here/image/pause.c"
	strip "$work/pause"
	umoci new --image "$LAYOUT:pause-dev.tmp"
	umoci insert --image "$LAYOUT:pause-dev.tmp" "$work/pause" /pause
	umoci config --image "$LAYOUT:pause-dev.tmp" --config.entrypoint /pause \
		--config.user 65535:65535 --history.created_by "hack/image.sh pause"
	retag pause-dev.tmp pause-dev
	export_image pause-dev localhost/pause:dev pause
	rm -rf "$work"
}

# retag FROM TO: moves tag FROM to TO.
retag() {
	umoci rm --image "$LAYOUT:$2" 2>/dev/null || true
	umoci tag --image "$LAYOUT:$1" "$2"
	umoci rm --image "$LAYOUT:$1"
}

# export_image TAG NAME FILE: writes $IMAGES/FILE.tar (docker-archive, named NAME).
export_image() {
	rm -f "$IMAGES/$3.tar.tmp"
	skopeo copy --quiet "oci:$LAYOUT:$1" "docker-archive:$IMAGES/$3.tar.tmp:$2"
	mv "$IMAGES/$3.tar.tmp" "$IMAGES/$3.tar"
}

# --- worker -------------------------------------------------------------------------------
# UDF_WORKER_TAG=NAME builds and imports localhost/udf-worker:NAME instead of :dev (a branch's
# own binary in pods without replacing the :dev image other tests use).
WORKER_TAG="${UDF_WORKER_TAG:-dev}"
[[ "$WORKER_TAG" =~ ^[a-z0-9][a-z0-9._-]*$ ]] || die "UDF_WORKER_TAG must be a plain tag: $WORKER_TAG"
if [ "$WORKER_TAG" = dev ]; then WORKER_FILE=udf-worker; else WORKER_FILE="udf-worker-$WORKER_TAG"; fi

worker_base_tag() { echo "worker-base-$(key_of "$SUITE" "${WORKER_DEBS[@]}" "${WORKER_PIP[@]}" "$WORKER_VENV" "$WORKER_UID")"; }

build_worker_base() {
	local tag="$1" rootfs="$IMAGES/work/worker-rootfs"
	debootstrap_rootfs "$rootfs" "${WORKER_DEBS[@]}"
	add_user "$rootfs" udf "$WORKER_UID"
	mkdir -p "$rootfs/app"
	chown "$WORKER_UID:$WORKER_UID" "$rootfs/app"
	in_chroot "$rootfs" python3 -m venv "$WORKER_VENV"
	in_chroot "$rootfs" "$WORKER_VENV/bin/pip" install --no-compile "${WORKER_PIP[@]}"
	in_chroot "$rootfs" "$WORKER_VENV/bin/python" -c 'import pyarrow.flight, databend_udf'
	find "$rootfs$WORKER_VENV" -name __pycache__ -type d -prune -exec rm -rf {} +
	umoci new --image "$LAYOUT:$tag.tmp"
	umoci insert --image "$LAYOUT:$tag.tmp" "$rootfs" /
	umoci config --image "$LAYOUT:$tag.tmp" --history.created_by \
		"debootstrap $SUITE ${WORKER_DEBS[*]}; python3 -m venv $WORKER_VENV; pip install ${WORKER_PIP[*]}"
	retag "$tag.tmp" "$tag"
	keep_rootfs "$rootfs" "$tag"
}

build_worker() {
	local base bin="$root/bin/udf-worker" lib="$root/bin/libudf-preload.so" key
	[ -x "$bin" ] || die "bin/udf-worker is missing; run 'make' first"
	[ -f "$lib" ] || die "bin/libudf-preload.so is missing; run 'make' first"
	base=$(worker_base_tag)
	if ! has_tag "$base"; then
		not_built "the worker image's base ($base)" "hack/image.sh worker"
		step "image: worker base (debootstrap, venv, pip)" "$0" __run build_worker_base "$base"
	fi
	key=$(key_of "$base" "$(cat "$bin" "$lib" | sha256sum)" "$(tar -C "$root/worker" -c python 2>/dev/null | sha256sum)")
	if [ -f "$IMAGES/$WORKER_FILE.tar" ] && [ "$(cat "$IMAGES/$WORKER_FILE.key" 2>/dev/null)" = "$key" ]; then
		echo "image: localhost/udf-worker:$WORKER_TAG up to date"
		return 0
	fi
	check_libs "$base" "$bin"
	step "image: localhost/udf-worker:$WORKER_TAG (binary and Python layers)" "$0" __run assemble_worker "$base" "$key"
}

assemble_worker() {
	local base="$1" key="$2" bin="$root/bin/udf-worker" work="$IMAGES/work/$WORKER_FILE"
	local tmp="udf-worker-$WORKER_TAG.tmp"
	rm -rf "$work"
	mkdir -p "$work/bin"
	cp "$bin" "$root/bin/libudf-preload.so" "$work/bin/"
	umoci rm --image "$LAYOUT:$tmp" 2>/dev/null || true
	umoci tag --image "$LAYOUT:$base" "$tmp"
	if [ -d "$root/worker/python" ]; then
		umoci insert --image "$LAYOUT:$tmp" "$root/worker/python" /opt/udf/python
	fi
	umoci insert --image "$LAYOUT:$tmp" "$work/bin/udf-worker" /usr/local/bin/udf-worker
	# udf-worker preloads it into its Python processes from beside itself (worker/preload.c).
	umoci insert --image "$LAYOUT:$tmp" "$work/bin/libudf-preload.so" /usr/local/bin/libudf-preload.so
	umoci config --image "$LAYOUT:$tmp" \
		--config.entrypoint /usr/local/bin/udf-worker --config.user "$WORKER_UID:$WORKER_UID" \
		--config.workingdir /home/udf \
		--config.env "PATH=$WORKER_VENV/bin:/usr/local/bin:/usr/bin:/bin" \
		--config.env "UDF_PYTHON=$WORKER_VENV/bin/python" \
		--config.env "PYTHONDONTWRITEBYTECODE=1" \
		--history.created_by "hack/image.sh worker: bin/udf-worker, bin/libudf-preload.so, worker/python"
	retag "$tmp" "udf-worker-$WORKER_TAG"
	export_image "udf-worker-$WORKER_TAG" "localhost/udf-worker:$WORKER_TAG" "$WORKER_FILE"
	echo "$key" >"$IMAGES/$WORKER_FILE.key"
	rm -rf "$work"
}

# --- operator -----------------------------------------------------------------------------

operator_base_tag() { echo "operator-base-$(key_of "$SUITE" "${OPERATOR_DEBS[@]}" "$OPERATOR_UID")"; }

build_operator_base() {
	local tag="$1" rootfs="$IMAGES/work/operator-rootfs"
	debootstrap_rootfs "$rootfs" "${OPERATOR_DEBS[@]}"
	add_user "$rootfs" udf-operator "$OPERATOR_UID"
	umoci new --image "$LAYOUT:$tag.tmp"
	umoci insert --image "$LAYOUT:$tag.tmp" "$rootfs" /
	umoci config --image "$LAYOUT:$tag.tmp" --history.created_by "debootstrap $SUITE ${OPERATOR_DEBS[*]}"
	retag "$tag.tmp" "$tag"
	keep_rootfs "$rootfs" "$tag"
}

build_operator() {
	local base bin="$root/bin/udf-operator" key
	[ -x "$bin" ] || die "bin/udf-operator is missing; run 'make' first"
	base=$(operator_base_tag)
	if ! has_tag "$base"; then
		not_built "the operator image's base ($base)" "hack/image.sh operator"
		step "image: operator base (debootstrap)" "$0" __run build_operator_base "$base"
	fi
	key=$(key_of "$base" "$(sha256sum "$bin")")
	if [ -f "$IMAGES/udf-operator.tar" ] && [ "$(cat "$IMAGES/udf-operator.key" 2>/dev/null)" = "$key" ]; then
		echo "image: localhost/udf-operator:dev up to date"
		return 0
	fi
	check_libs "$base" "$bin"
	step "image: localhost/udf-operator:dev (binary layer)" "$0" __run assemble_operator "$base" "$key"
}

assemble_operator() {
	local base="$1" key="$2" bin="$root/bin/udf-operator" work="$IMAGES/work/operator"
	rm -rf "$work"
	mkdir -p "$work"
	cp "$bin" "$work/udf-operator"
	umoci rm --image "$LAYOUT:udf-operator-dev.tmp" 2>/dev/null || true
	umoci tag --image "$LAYOUT:$base" udf-operator-dev.tmp
	umoci insert --image "$LAYOUT:udf-operator-dev.tmp" "$work/udf-operator" /usr/local/bin/udf-operator
	umoci config --image "$LAYOUT:udf-operator-dev.tmp" \
		--config.entrypoint /usr/local/bin/udf-operator \
		--config.user "$OPERATOR_UID:$OPERATOR_UID" --history.created_by "hack/image.sh operator"
	retag udf-operator-dev.tmp udf-operator-dev
	export_image udf-operator-dev localhost/udf-operator:dev udf-operator
	echo "$key" >"$IMAGES/udf-operator.key"
	rm -rf "$work"
}

# --- import -------------------------------------------------------------------------------

cmd_import() {
	local address="/run/udf-sandbox/containerd/containerd.sock" name tar stamp marks
	if [ "${1:-}" = "--address" ]; then address="$2"; fi
	marks="$UDF_CACHE/node/imported"
	mkdir -p "$marks"
	for name in pause "$WORKER_FILE" udf-operator; do
		tar="$IMAGES/$name.tar"
		[ -f "$tar" ] || continue
		stamp=$(stat -c '%s %Y' "$tar")
		ref="localhost/$name:dev"
		[ "$name" = "$WORKER_FILE" ] && ref="localhost/udf-worker:$WORKER_TAG"
		if [ "$(cat "$marks/$name" 2>/dev/null)" = "$stamp" ] &&
			grep -qxF -- "$ref" <<<"$("$UDF_BIN/ctr" --address "$address" -n k8s.io images ls -q)"; then
			continue
		fi
		"$UDF_BIN/ctr" --address "$address" -n k8s.io images import --no-unpack=false "$tar" >/dev/null
		echo "$stamp" >"$marks/$name"
		echo "image: imported $ref"
	done
}

for tool in umoci skopeo debootstrap; do
	command -v "$tool" >/dev/null || die "$tool is needed (hack/deps.sh installs it)"
done

case "${1:-}" in
-h | --help)
	usage
	exit 0
	;;
__run)
	# step runs its command inside an `if`, where set -e is off even in functions and
	# subshells: a build function that went on after a failed debootstrap once tagged an
	# empty worker base as built. A process of its own runs it with set -e in force.
	shift
	"$@"
	exit 0
	;;
import)
	shift
	cmd_import "$@"
	exit 0
	;;
packages)
	case "${2:-}" in
	worker) echo "deb: ${WORKER_DEBS[*]}" && echo "pip: ${WORKER_PIP[*]}" ;;
	operator) echo "deb: ${OPERATOR_DEBS[*]}" ;;
	*) die "packages takes worker or operator" ;;
	esac
	exit 0
	;;
esac

targets=("$@")
[ "${#targets[@]}" -gt 0 ] || targets=(all)
[ "$(id -u)" -eq 0 ] || die "building images needs root (debootstrap, chroot, file ownership)"
init_layout
# One build at a time: two would share $IMAGES/work and delete each other's root filesystem
# (`all` runs "$0 pause" under the lock it holds).
if [ -z "${UDF_IMAGE_LOCKED:-}" ]; then
	exec 6>"$IMAGES/.build.lock"
	if ! flock -n 6; then
		echo "image: another hack/image.sh is building; waiting for it"
		flock 6
	fi
	export UDF_IMAGE_LOCKED=1
fi
for t in "${targets[@]}"; do
	case "$t" in
	pause)
		if [ -f "$IMAGES/pause.tar" ] && has_tag pause-dev; then
			echo "image: localhost/pause:dev up to date"
		else
			not_built "the pause image" "hack/image.sh pause"
			step "image: localhost/pause:dev" "$0" __run build_pause
		fi
		;;
	worker) build_worker ;;
	worker-base)
		base=$(worker_base_tag)
		if has_tag "$base"; then
			echo "image: worker base $base up to date"
		else
			not_built "the worker image's base ($base)" "hack/image.sh worker-base"
			step "image: worker base (debootstrap, venv, pip)" "$0" __run build_worker_base "$base"
		fi
		;;
	operator) build_operator ;;
	all)
		"$0" pause
		build_worker
		build_operator
		;;
	*)
		usage >&2
		exit 2
		;;
	esac
done
