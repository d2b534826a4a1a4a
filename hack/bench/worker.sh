#!/usr/bin/env bash
# The worker's benchmark: the same worker under runsc (gVisor, systrap, sandbox network) beside
# a plain process as interleaved pairs with the median pair ratio, for add_one(INT) (1 process,
# a new connection per call, N processes, 4 clients), a STRING UDF on Utf8View batches, the
# bare pyarrow Flight echo server, and a runsc pod beside a runc pod on the local node;
# specialize -> first answer with its breakdown; single-process references. Numbers only.
set -euo pipefail

usage() {
	cat <<USAGE
usage: hack/bench/worker.sh [--quick] [--no-pods]
  --quick    5 pairs of 0.5 s per side (default 7 of 1.2 s), 3 specialize runs (default 5)
  --no-pods  skip the runsc and runc pods on the local node
Uses \$BUILD (default build)/worker/udf-worker and the venv at ~/.cache/udf-sandbox/venv. The
pods run localhost/udf-worker:\${UDF_WORKER_TAG:-dev}, built from bin/ by hack/image.sh.
USAGE
}

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# shellcheck source=hack/lib/common.sh
source "$root/hack/lib/common.sh"

extra=()
for arg in "$@"; do
	case "$arg" in
	--help | -h)
		usage
		exit 0
		;;
	--quick | --no-pods) extra+=("$arg") ;;
	*)
		usage >&2
		exit 2
		;;
	esac
done

build="${BUILD:-build}"
worker="$root/$build/worker/udf-worker"
python="$UDF_VENV/bin/python"
[ -x "$worker" ] || die "no $worker: run make first"
[ -x "$python" ] || die "no venv at $UDF_VENV: run make venv first"

echo "== udf-worker benchmark ($(nproc) cores, $(date -u +%FT%TZ))"
start=$(date +%s.%N)
UDF_SOURCE_DIR="$root" UDF_BUILD_DIR="$root/$build" PYTHONDONTWRITEBYTECODE=1 \
	"$python" "$root/hack/bench/worker_bench.py" ${extra[@]+"${extra[@]}"}
printf '%-58s %13.1fs\n' "worker benchmark total" \
	"$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN{print b-a}')"
