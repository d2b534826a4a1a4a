#!/usr/bin/env bash
# The functions' benchmark (numbers, not pass/fail), with the real operator, node and worker,
# under gVisor (runsc) and runc side by side: a gRPC call of a new UDF with a warm pool -> its
# answer, p50/p99; the same call -> first correct Flight answer (warm claim + specialization),
# p50/p99; cold start (empty pool) -> first answer; a burst of distinct UDFs as large as the
# pool, p50/p90; the function controller's API requests per claim.
set -euo pipefail

usage() {
	cat <<USAGE
usage: hack/bench/functions.sh [--pool N] [--rounds N] [--cold N] [--runtimes gvisor,runc]
  --pool N      idle pods of the warm pool, and the burst's size (default 4)
  --rounds N    new UDFs called one at a time against the warm pool (default 10)
  --cold N      cold starts from an empty pool (default 3)
  --runtimes L  runtime classes to measure (default gvisor,runc)
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
	--pool | --rounds | --cold | --runtimes)
		args+=("$1" "$2")
		shift 2
		;;
	*)
		usage >&2
		exit 2
		;;
	esac
done

python="$UDF_VENV/bin/python"
[ -x "$python" ] || python=python3
if [ ! -x "$root/bin/udf-operator" ] || [ ! -x "$root/bin/udf-worker" ]; then
	die "no bin/: run make first"
fi
step "functions bench: worker image (hack/image.sh worker)" "$root/hack/image.sh" worker
step "functions bench: cluster and node (hack/cluster.sh up)" "$root/hack/cluster.sh" up
kubeconfig="$("$root/hack/cluster.sh" env kubeconfig)"
bin="$("$root/hack/cluster.sh" env bin)"
kubectl=("$bin/kubectl" --kubeconfig "$kubeconfig")
# A tag of this worker binary's own: other worktrees rebuild localhost/udf-worker:dev.
image="localhost/udf-worker:fn-bench-$(sha256sum "$root/bin/udf-worker" | cut -c1-12)"
"$bin/ctr" --address /run/udf-sandbox/containerd/containerd.sock -n k8s.io images tag --force \
	localhost/udf-worker:dev "$image" >/dev/null
made_runc=0
cleanup() {
	[ "$made_runc" -eq 0 ] || "${kubectl[@]}" delete runtimeclass runc >/dev/null 2>&1 || true
}
trap cleanup EXIT
if ! "${kubectl[@]}" get runtimeclass runc >/dev/null 2>&1; then
	printf 'apiVersion: node.k8s.io/v1\nkind: RuntimeClass\nmetadata:\n  name: runc\nhandler: runc\n' |
		"${kubectl[@]}" apply -f - >/dev/null
	made_runc=1
fi

out="$(UDF_SOURCE_DIR="$root" "$python" "$root/hack/bench/functions_bench.py" \
	--image "$image" "${args[@]}")"
"$python" - "$out" <<'PY'
import json, sys
for line in sys.argv[1].splitlines():
    r = json.loads(line)
    rt = "runsc" if r["runtime"] == "gvisor" else r["runtime"]
    if r["what"] == "warm":
        print(f"{rt:<6} new UDF, warm pool (n={r['n']}): gRPC answer p50 {r['answer_p50_ms']:.0f} ms"
              f" p99 {r['answer_p99_ms']:.0f} ms; first correct Flight answer p50 "
              f"{r['first_p50_ms']:.0f} ms p99 {r['first_p99_ms']:.0f} ms "
              f"({r['answered']}/{r['n']} answered); API requests per claim "
              f"{r['api_requests_per_claim']:.1f}")
    elif r["what"] == "cold":
        print(f"{rt:<6} cold start (empty pool, n={r['n']}): apply -> first answer p50 "
              f"{r['first_p50_ms']:.0f} ms, max {r['first_max_ms']:.0f} ms")
    else:
        print(f"{rt:<6} burst of {r['n']} new UDFs at once: first answer p50 "
              f"{r['first_p50_ms']:.0f} ms p90 {r['first_p90_ms']:.0f} ms "
              f"({r['answered']}/{r['n']} answered)")
PY
echo "(bars: Fission's poolmgr specializes a warm pod in 72.8 ms p50, RFC-0020, kind, runc;"
echo " agent-sandbox's 300-claim warm burst p90 about 3.2 s)"
