#!/usr/bin/env bash
# `make fuzz-long`: runs every built fuzz target for SECONDS each from the repo's seed corpus,
# then merges back into tests/fuzz/corpus/<target>/ only the inputs that add coverage the
# seeds lack (libFuzzer -merge=1), so the kept seeds stay few (commit them). Prints executions and coverage per target; exits
# 1 if any target crashed (its artifact is in BUILD/fuzz-long/).
set -euo pipefail
if [ $# -ne 2 ]; then
	echo "usage: tests/fuzz/long.sh BUILD_DIR SECONDS" >&2
	exit 2
fi
build="$1" seconds="$2"
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=tests/fuzz/limits.sh
. "$here/limits.sh"
art="$build/fuzz-long"
mkdir -p "$art"
failed=0
shopt -s nullglob
targets=("$build"/tests/fuzz_*)
[ ${#targets[@]} -gt 0 ] || { echo "no fuzz targets in $build/tests (configure with UDF_FUZZ=ON)" >&2; exit 1; }
printf '%-24s %12s %8s %8s %10s %s\n' target execs cov ft corpus result
for f in "${targets[@]}"; do
	[ -x "$f" ] || continue
	name="$(basename "$f")" target="${name#fuzz_}"
	corpus="$here/corpus/$target"
	mkdir -p "$corpus"
	before=$(find "$corpus" -type f | wc -l)
	log="$art/$target.log"
	work="$art/$target-corpus"
	rm -rf "$work"
	mkdir -p "$work"
	result=ok
	"$f" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
		-max_len="$(max_len_of "$name")" -print_final_stats=1 \
		-artifact_prefix="$art/$target-" "$work" "$corpus" >"$log" 2>&1 || { result=CRASH; failed=1; }
	"$f" -merge=1 -max_len="$(max_len_of "$name")" -rss_limit_mb=2048 "$corpus" "$work" \
		>>"$log" 2>&1 || result="$result (merge failed)"
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
	last=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
	cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
	ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
	after=$(find "$corpus" -type f | wc -l)
	printf '%-24s %12s %8s %8s %10s %s\n' "$target" "${execs:-?}" "${cov:-?}" "${ft:-?}" \
		"$before->$after" "$result"
done
exit "$failed"
