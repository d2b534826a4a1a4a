#!/usr/bin/env bash
# The warm pools' benchmark (numbers, not pass/fail), with the real operator on the cluster of
# hack/cluster.sh and its node: an empty pool filled to N Ready pods (N = 1, 5, 10) under
# gVisor (runsc) and runc: p50 of create -> Ready per pod, the whole fill, and the pool
# controller's API requests per pod created; then the operator's RSS with 10,000 UdfFunctions
# and 1,000 pods in its caches beside the bytes of their JSON.
set -euo pipefail

usage() {
	cat <<USAGE
usage: hack/bench/pools.sh [--sizes 1,5,10] [--functions N] [--cache-pods N] [--no-rss] [--no-fill]
  --sizes LIST      pool sizes to fill (default 1,5,10)
  --functions N     UdfFunctions in the operator's cache for the RSS number (default 10000)
  --cache-pods N    Pending pods in its cache for the RSS number (default 1000)
  --no-rss, --no-fill  skip one part
Brings the cluster and its node up (hack/cluster.sh up) if they are not; uses bin/udf-operator
and bin/udf-worker (run make first), the worker image (hack/image.sh worker) and the venv at
~/.cache/udf-sandbox/venv. Creates RuntimeClass runc (handler runc) if it is missing and
removes it again at the end.
USAGE
}

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# shellcheck source=hack/lib/common.sh
source "$root/hack/lib/common.sh"

args=()
while [ $# -gt 0 ]; do
	case "$1" in
	--help | -h)
		usage
		exit 0
		;;
	--sizes | --functions | --cache-pods)
		args+=("$1" "$2")
		shift 2
		;;
	--no-rss)
		args+=(--skip-rss)
		shift
		;;
	--no-fill)
		args+=(--skip-fill)
		shift
		;;
	*)
		usage >&2
		exit 2
		;;
	esac
done

# shellcheck source=hack/bench/lib.sh
source "$root/hack/bench/lib.sh"
trap bench_node_cleanup EXIT
bench_node pools pool-bench
ns="pools-bench-$$"
work="$(mktemp -d /tmp/pools-bench.XXXXXX)"
cleanup() {
	"${kubectl[@]}" delete namespace "$ns" --wait=false >/dev/null 2>&1 || true
	bench_node_cleanup
	rm -rf --one-file-system "$work"
}
trap cleanup EXIT
"${kubectl[@]}" create namespace "$ns" >/dev/null
for _ in $(seq 1 50); do
	"${kubectl[@]}" -n "$ns" get serviceaccount default >/dev/null 2>&1 && break
	sleep 0.2
done

echo "-- empty pool -> N Ready pods ($image; refill 20/s, 20 in flight), runsc then runc"
out="$("$python" "$root/hack/bench/pools_bench.py" --kubectl "$bin/kubectl" \
	--kubeconfig "$kubeconfig" --operator "$root/bin/udf-operator" --namespace "$ns" \
	--image "$image" --workdir "$work" "${args[@]}")"
"$python" - "$out" <<'PY'
import json, sys
for line in sys.argv[1].splitlines():
    r = json.loads(line)
    if r["what"] == "fill":
        print(f"{r['runtime']:<6} N={r['pods']:<3} create->Ready per pod p50 "
              f"{r['pod_ready_p50_ms']:6d} ms   whole fill {r['whole_ms']:6d} ms   "
              f"API requests per pod created {r['api_requests_per_pod']:.2f}")
    else:
        mib = lambda kib: kib / 1024
        print(f"operator RSS with {r['functions']} UdfFunctions + {r['pods']} pods in its "
              f"caches: {mib(r['rss_after_kib']):.1f} MiB (before: {mib(r['rss_before_kib']):.1f}"
              f" MiB; +{mib(r['rss_after_kib'] - r['rss_before_kib']):.1f} MiB)")
        print(f"  their JSON: {r['json_bytes'] / 2**20:.1f} MiB as served, "
              f"{r['json_bytes_without_managed_fields'] / 2**20:.1f} MiB without managedFields "
              f"(created in {r['create_s']} s)")
PY
echo "(per pod: the kubelet's 1 s PLEG relist, the sandbox start (runsc more than runc) and"
echo " the worker zygote's imports of pyarrow and databend-udf bound it; the whole fill adds the"
echo " refill pacing and two cores shared by every starting pod)"
