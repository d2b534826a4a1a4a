#!/usr/bin/env bash
# The node's benchmark (numbers, not pass/fail), on the cluster of hack/cluster.sh with its
# node: pod create -> Running and -> Ready under runc and under gVisor (runsc), p50/p90 over N
# pods each, created one after another; and the worker image's build time, cold (debootstrap,
# pip) and warm (a new udf-worker binary: one small layer), in a throwaway image cache.
set -euo pipefail

usage() {
	cat <<USAGE
usage: hack/bench/node.sh [--pods N] [--no-cold]
  --pods N    pods per runtime (default 20)
  --no-cold   skip the cold image build (about 1-2 minutes: debootstrap and pip)
Brings the cluster and its node up (hack/cluster.sh up) if they are not; uses bin/udf-worker
(run make first) and the venv at ~/.cache/udf-sandbox/venv.
USAGE
}

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# shellcheck source=hack/lib/common.sh
source "$root/hack/lib/common.sh"

pods=20
cold=1
while [ $# -gt 0 ]; do
	case "$1" in
	--help | -h)
		usage
		exit 0
		;;
	--pods)
		pods="$2"
		shift 2
		;;
	--no-cold)
		cold=0
		shift
		;;
	*)
		usage >&2
		exit 2
		;;
	esac
done

python="$UDF_VENV/bin/python"
[ -x "$python" ] || python=python3
step "node bench: cluster and node (hack/cluster.sh up)" "$root/hack/cluster.sh" up
kubeconfig="$("$root/hack/cluster.sh" env kubeconfig)"
kubectl="$("$root/hack/cluster.sh" env bin)/kubectl"
ns="node-bench-$$"
cleanup() {
	"$kubectl" --kubeconfig "$kubeconfig" delete namespace "$ns" --wait=false >/dev/null 2>&1 || true
	[ -z "${cache:-}" ] || rm -rf --one-file-system "$cache"
}
trap cleanup EXIT
"$kubectl" --kubeconfig "$kubeconfig" create namespace "$ns" >/dev/null
for _ in $(seq 1 50); do
	"$kubectl" --kubeconfig "$kubeconfig" -n "$ns" get serviceaccount default >/dev/null 2>&1 && break
	sleep 0.2
done

echo "-- pod start, $pods pods per runtime, runc and runsc alternating, one at a time"
echo "   (localhost/pause:dev, no service-account token; pods stay until the end)"
out="$("$python" "$root/hack/bench/node_bench.py" --kubectl "$kubectl" --kubeconfig "$kubeconfig" \
	--namespace "$ns" --pods "$pods" --containerd-log "$("$root/hack/cluster.sh" env state)/node/logs/containerd.log")"
"$python" - "$out" <<'PY'
import json, sys
for line in sys.argv[1].splitlines():
    r = json.loads(line)
    print(f"{r['runtime']:<6} create->Running p50 {r['running_p50_ms']:6.0f} ms  "
          f"p90 {r['running_p90_ms']:6.0f} ms   create->Ready p50 {r['ready_p50_ms']:6.0f} ms  "
          f"p90 {r['ready_p90_ms']:6.0f} ms   ({r['pods']} pods)")
for line in sys.argv[1].splitlines():
    r = json.loads(line)
    if "sandbox_p50_ms" in r:
        print(f"{r['runtime']:<6} containerd: RunPodSandbox p50 {r['sandbox_p50_ms']:4.0f} ms  "
              f"p90 {r['sandbox_p90_ms']:4.0f} ms   RunPodSandbox->StartContainer done p50 "
              f"{r['started_p50_ms']:4.0f} ms  p90 {r['started_p90_ms']:4.0f} ms")
print("(create->Running/Ready include the kubelet's 1 s PLEG relist, which dominates)")
PY

echo "-- worker image build (hack/image.sh worker)"
[ -x "$root/bin/udf-worker" ] || die "no bin/udf-worker: run make first"
cache="$(mktemp -d /tmp/node-bench-cache.XXXXXX)"
timed() {
	local start
	start=$(date +%s.%N)
	if ! UDF_SANDBOX_CACHE="$cache" "$root/hack/image.sh" worker >"$cache/build.log" 2>&1; then
		echo "FAILED (last lines of the build:)"
		tail -n 15 "$cache/build.log" | sed 's/^/    /'
		return 0
	fi
	awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f s", b-a}'
}
if [ "$cold" -eq 1 ]; then
	echo "cold (debootstrap, venv, pip, layers, export):   $(timed)"
else
	# Warm needs a base: borrow the real cache's layout.
	cp -a "$UDF_CACHE/images" "$cache/images" 2>/dev/null || echo "(no cached base: this is cold)"
fi
rm -f "$cache/images/udf-worker.key"
echo "warm (new udf-worker binary: one small layer):   $(timed)"
echo "unchanged (up-to-date check):                     $(timed)"
