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

# shellcheck source=hack/bench/lib.sh
source "$root/hack/bench/lib.sh"
trap bench_node_cleanup EXIT
bench_node functions fn-bench

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
