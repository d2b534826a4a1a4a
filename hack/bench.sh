#!/usr/bin/env bash
# `make bench`: runs every executable hack/bench/*.sh and prints what each measures.
# Benchmarks print numbers; none of them passes or fails on timing.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=hack/lib/common.sh
source "$here/lib/common.sh"

case "${1:-}" in
-h | --help)
	echo "usage: hack/bench.sh [NAME...]"
	echo "Runs hack/bench/NAME.sh for each NAME (default: all of them) and prints their numbers."
	exit 0
	;;
esac

names=("$@")
if [ "${#names[@]}" -eq 0 ]; then
	for f in "$here"/bench/*.sh; do
		[ -x "$f" ] && names+=("$(basename "$f" .sh)")
	done
fi
rc=0
for n in "${names[@]}"; do
	f="$here/bench/$n.sh"
	[ -x "$f" ] || die "no benchmark hack/bench/$n.sh"
	echo "== bench: $n"
	start=$(date +%s)
	if ! "$f"; then
		echo "bench $n: FAILED to run" >&2
		rc=1
	fi
	echo "== bench: $n took $(($(date +%s) - start))s"
done
exit "$rc"
