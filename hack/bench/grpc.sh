#!/usr/bin/env bash
# The gRPC endpoint's benchmark (numbers, not pass/fail): hot ApplyUdfResource (the function
# already Ready, answered from the informer caches) throughput and p50/p99 at 1, 16 and 64
# concurrent clients, beside a no-op unary server on the same gRPC core wrapper in the same
# run (alternating runs, the median shown). The ratio of the two is the figure to report. ghz
# is the load generator for both.
set -euo pipefail

GHZ_VERSION="v0.120.0"

usage() {
	cat <<USAGE
usage: hack/bench/grpc.sh [--requests N] [--concurrency LIST]
  --requests N        calls per measurement (default 20000)
  --concurrency LIST  comma-separated client concurrencies (default 1,16,64)
Uses \$BUILD (default build)/operator/udf-operator and \$BUILD/tests/grpc/grpc_noop, the shared
cluster (hack/cluster.sh up), the venv, and ghz $GHZ_VERSION built from the Go module proxy into
the cache on first use.
USAGE
}

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# shellcheck source=hack/lib/common.sh
source "$root/hack/lib/common.sh"

requests=20000
concurrency=1,16,64
while [ $# -gt 0 ]; do
	case "$1" in
	--help | -h)
		usage
		exit 0
		;;
	--requests)
		requests="$2"
		shift 2
		;;
	--concurrency)
		concurrency="$2"
		shift 2
		;;
	*)
		usage >&2
		exit 2
		;;
	esac
done

build="${BUILD:-build}"
python="$UDF_VENV/bin/python"
[ -x "$python" ] || die "no venv at $UDF_VENV: run make venv first"
[ -x "$root/$build/operator/udf-operator" ] || die "no $build/operator/udf-operator: run make first"
noop="$root/$build/tests/grpc/grpc_noop"
[ -x "$noop" ] || step "build grpc_noop" cmake --build "$root/$build" --target grpc_noop

ghz_build() {
	command -v go >/dev/null || {
		echo "go is not on PATH (ghz is built with Go)" >&2
		return 1
	}
	mkdir -p "$UDF_BIN"
	(cd "$UDF_CACHE" && CGO_ENABLED=0 GOTOOLCHAIN=local GOBIN="$UDF_BIN" GOFLAGS=-mod=mod \
		go install -trimpath "github.com/bojand/ghz/cmd/ghz@$GHZ_VERSION") || return 1
	echo "$GHZ_VERSION" >"$UDF_BIN/.ghz.version"
}
if [ ! -x "$UDF_BIN/ghz" ] || [ "$(cat "$UDF_BIN/.ghz.version" 2>/dev/null)" != "$GHZ_VERSION" ]; then
	step "build ghz $GHZ_VERSION (Go module proxy)" ghz_build
fi
step "cluster up" "$root/hack/cluster.sh" up --control-plane-only

echo "== gRPC endpoint benchmark ($(nproc) cores, $(date -u +%FT%TZ))"
UDF_SOURCE_DIR="$root" UDF_BUILD_DIR="$root/$build" PYTHONDONTWRITEBYTECODE=1 \
	"$python" "$root/hack/bench/grpc_bench.py" --ghz "$UDF_BIN/ghz" --noop "$noop" \
	--requests "$requests" --concurrency "$concurrency"
