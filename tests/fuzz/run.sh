#!/usr/bin/env bash
# Runs one libFuzzer target for a bounded time: seeds from the repo (read-only), new inputs
# into a scratch corpus in the build tree, crash artifacts next to it. Inputs go up to the
# limit the target's parser really accepts (max_len_of below), not a fuzzer default.
set -euo pipefail
if [ "${1:-}" = "--help" ] || [ $# -ne 4 ]; then
	echo "usage: tests/fuzz/run.sh FUZZER SEED_DIR WORK_DIR SECONDS" >&2
	exit 2
fi
fuzzer="$1" seeds="$2" work="$3" seconds="$4"
mkdir -p "$work"
[ -d "$seeds" ] || { echo "no seed corpus at $seeds" >&2; exit 1; }
# shellcheck source=tests/fuzz/limits.sh
. "$(dirname "$0")/limits.sh"
max_len="$(max_len_of "$(basename "$fuzzer")")"
exec "$fuzzer" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len="$max_len" \
	-print_final_stats=1 -artifact_prefix="$work/" "$work" "$seeds"
