#!/usr/bin/env bash
# The kube client's benchmark (numbers, not pass/fail), on a private control plane:
#  - informer events applied per second, from a real watch of 10,000 ConfigMaps replayed
#    into a fresh cache, and a started informer's LIST-to-synced time for the same objects;
#  - memory per cached object (heap in use, as RSS would hide reuse of freed memory)
#    against that object's JSON size;
#  - 500 watches on the one loop thread: time to sync them all, and for one new object to
#    reach all 500 caches.
set -euo pipefail

usage() {
	cat <<USAGE
usage: hack/bench/kube.sh [--objects N] [--watches N]
  --objects N   ConfigMaps to cache (default 10000)
  --watches N   informers on one loop for the fan-out number (default 500)
Uses \$BUILD (default build)/tests/kube/kubebench and a private cluster from hack/cluster.sh
(state in a temporary directory, ports from \$UDF_BENCH_PORT_BASE, default 33443).
USAGE
}

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# shellcheck source=hack/lib/common.sh
source "$root/hack/lib/common.sh"

objects=10000
watches=500
while [ $# -gt 0 ]; do
	case "$1" in
	--help | -h)
		usage
		exit 0
		;;
	--objects)
		objects="$2"
		shift 2
		;;
	--watches)
		watches="$2"
		shift 2
		;;
	*)
		usage >&2
		exit 2
		;;
	esac
done

build="${BUILD:-build}"
bench="$root/$build/tests/kube/kubebench"
[ -x "$bench" ] || die "no $bench: run make first"

state="$(mktemp -d /tmp/kube-bench.XXXXXX)"
export UDF_SANDBOX_STATE="$state"
export UDF_CLUSTER_PORT_BASE="${UDF_BENCH_PORT_BASE:-33443}"
cleanup() {
	"$root/hack/cluster.sh" down >/dev/null 2>&1 || true
	rm -rf "$state"
}
trap cleanup EXIT

step "kube bench: private control plane on port $UDF_CLUSTER_PORT_BASE" \
	"$root/hack/cluster.sh" up --control-plane-only
kubeconfig="$("$root/hack/cluster.sh" env kubeconfig)"
kubectl="$("$root/hack/cluster.sh" env bin)/kubectl --kubeconfig $kubeconfig"

create_objects() {
	local dir="$state/objects"
	mkdir -p "$dir"
	$kubectl create namespace bench
	$kubectl create namespace fan
	# Realistic small objects: labels, an annotation and ~300 bytes of data each; files of
	# 500, created four at a time.
	python3 - "$objects" "$dir" <<'PY'
import json, sys
n, out = int(sys.argv[1]), sys.argv[2]
for start in range(0, n, 500):
    with open(f"{out}/{start:06d}.json", "w") as f:
        json.dump({"apiVersion": "v1", "kind": "List", "items": [
            {"apiVersion": "v1", "kind": "ConfigMap",
             "metadata": {"name": f"obj-{i:05d}", "namespace": "bench",
                          "labels": {"app": "bench", "pool": f"pool-{i % 10}"},
                          "annotations": {"udf.sandbox.io/spec-hash": f"{i:064x}"}},
             "data": {"handler": "add_one",
                      "code": "def add_one(x):\n    return x + 1\n" * 6}}
            for i in range(start, min(n, start + 500))]}, f)
PY
	# shellcheck disable=SC2086 # $kubectl is a command with its flag
	find "$dir" -name '*.json' -print0 | xargs -0 -P 4 -n 1 $kubectl create -o name -f >/dev/null
}
step "kube bench: create $objects ConfigMaps" create_objects

echo "-- informer throughput and memory ($objects objects)"
out="$("$bench" --kubeconfig "$kubeconfig" bench api/v1 configmaps bench 2>/dev/null)"
python3 - "$out" <<'PY'
import json, sys
lines = [json.loads(l) for l in sys.argv[1].splitlines() if l.startswith("{")]
a, b = lines[0], lines[1]
print(f"watch events applied:     {a['events_per_s']:>10,.0f} events/s "
      f"({a['objects']} ADDED events from a real watch, applied in {a['apply_s']:.3f} s)")
print(f"LIST to synced:           {b['list_objects_per_s']:>10,.0f} objects/s "
      f"({b['list_sync_objects']} objects in {b['list_sync_s']:.3f} s, pages of 500)")
print(f"memory per cached object: {a['heap_per_object_bytes']:>10,.0f} bytes of heap "
      f"for {a['avg_json_bytes']:,.0f} bytes of JSON ({a['heap_ratio']:.1f}x)")
PY

echo "-- $watches watches on one loop thread"
out="$("$bench" --kubeconfig "$kubeconfig" fanout api/v1 configmaps fan "$watches" 2>/dev/null)"
python3 - "$out" <<'PY'
import json, sys
r = json.loads(sys.argv[1].splitlines()[-1])
print(f"{r['watches']} watches: all synced in {r['sync_all_s']:.2f} s, one new object in all "
      f"{r['watches']} caches after {r['event_to_all_s'] * 1000:.0f} ms; process threads: "
      f"{r['threads']}")
PY
