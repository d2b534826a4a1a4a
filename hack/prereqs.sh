#!/usr/bin/env bash
# Builds everything the tests use, before ctest starts, so that no test's timeout ever includes
# a build (ctest runs every test with UDF_SANDBOX_NO_BUILD=1: a test that finds something
# missing fails and names the command that builds it). Every step is cached: warm, this takes
# seconds. `make test` runs it after `make`.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=hack/lib/common.sh
source "$here/lib/common.sh"

usage() {
	cat <<USAGE
usage: hack/prereqs.sh [--help] [--check]

One line per step, with its time; a step's full output goes to $UDF_CACHE/logs/step-*.log
(tail it to follow a cold build: 20-30 minutes on 2 cores the first time).
  Debian packages            hack/deps.sh
  Python venv                hack/venv.sh
  Kubernetes and etcd        hack/kube-bins.sh   (the control plane, the kubelet, kube-proxy)
  runsc and its shim         hack/runsc.sh       (the node's gVisor runtime, tests/worker)
  containerd                 hack/containerd.sh  (the node)
  kube-router                hack/kube-router.sh (the node's NetworkPolicy firewall)
  helm                       hack/helm.sh        (tests/crds)
  pause, worker and operator images  hack/image.sh pause worker operator (the node's pods;
                             needs bin/ from make)
--check  build nothing: say which steps are cached and which would build (exit 3 if any).
USAGE
}

check=0
case "${1:-}" in
-h | --help)
	usage
	exit 0
	;;
--check) check=1 ;;
"") ;;
*) die "unknown argument: $1" ;;
esac

# Two runs at once (two worktrees' `make test`) would build the same binaries twice.
mkdir -p "$UDF_CACHE"
exec 7>"$UDF_CACHE/.prereqs.lock"
if ! flock -n 7; then
	echo "prereqs: another hack/prereqs.sh is running; waiting for it"
	flock 7
fi

total=$(date +%s)
missing=0
# prereq NAME CMD...: one step; with --check, only whether CMD would build (exit 3) or not.
prereq() {
	local name="$1" out rc=0
	shift
	if [ "$check" -eq 0 ]; then
		step "prereqs: $name" "$@"
		return
	fi
	out=$(UDF_SANDBOX_NO_BUILD=1 "$@" 2>&1) || rc=$?
	case "$rc" in
	0) printf 'prereqs: %-39s cached\n' "$name" ;;
	3)
		printf 'prereqs: %-39s would build\n' "$name"
		missing=1
		;;
	*)
		echo "$out" >&2
		die "$name: $* failed (exit $rc)"
		;;
	esac
}

prereq "deps.sh: Debian packages" "$here/deps.sh"
prereq "venv.sh: Python venv" "$here/venv.sh"
prereq "kube-bins.sh: Kubernetes $K8S_VERSION, etcd" "$here/kube-bins.sh"
prereq "runsc.sh: runsc and its shim" "$here/runsc.sh"
prereq "containerd.sh: containerd" "$here/containerd.sh"
prereq "kube-router.sh: kube-router" "$here/kube-router.sh"
prereq "helm.sh: helm" "$here/helm.sh"
prereq "image.sh: pause, udf-worker, udf-operator images" "$here/image.sh" pause worker operator

if [ "$check" -eq 1 ]; then
	exit $((missing * 3))
fi
echo "prereqs: everything the tests use is built ($(($(date +%s) - total))s)"
