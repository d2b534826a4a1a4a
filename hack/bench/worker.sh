#!/usr/bin/env bash
# The worker's benchmark: add_one(INT) rows/s through udf-worker's stub (1 and N processes)
# beside databend-udf's own server, a plain Python loop and a bare pyarrow Flight echo server;
# the script form; specialize -> first answer latency (plain and under runsc, zygote on/off).
set -euo pipefail

usage() {
	cat <<USAGE
usage: hack/bench/worker.sh [--quick]
  --quick   shorter runs, and skip databend-udf's row mode (one 65536-row call takes ~12 s)
Uses \$BUILD (default build)/worker/udf-worker and the venv at ~/.cache/udf-sandbox/venv.
USAGE
}

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# shellcheck source=hack/lib/common.sh
source "$root/hack/lib/common.sh"

extra=()
case "${1:-}" in
--help | -h)
	usage
	exit 0
	;;
--quick) extra=(--seconds 2 --runs 1 --skip-databend-udf-row) ;;
"") ;;
*)
	usage >&2
	exit 2
	;;
esac

build="${BUILD:-build}"
worker="$root/$build/worker/udf-worker"
python="$UDF_VENV/bin/python"
[ -x "$worker" ] || die "no $worker: run make first"
[ -x "$python" ] || die "no venv at $UDF_VENV: run make venv first"

echo "== udf-worker benchmark ($(nproc) cores, $(date -u +%FT%TZ))"
start=$(date +%s.%N)
UDF_SOURCE_DIR="$root" UDF_BUILD_DIR="$root/$build" PYTHONDONTWRITEBYTECODE=1 \
	"$python" "$root/hack/bench/worker_bench.py" "${extra[@]}"
printf '%-58s %13.1fs\n' "worker benchmark total" \
	"$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN{print b-a}')"
