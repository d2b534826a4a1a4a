# shellcheck shell=bash
# shellcheck disable=SC2034 # the variables are for the scripts that source this file
# Shared by the hack/ scripts: where the cache and state live, and one-line timed steps.
# Sourced, never run.

UDF_CACHE="${UDF_SANDBOX_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/udf-sandbox}"
UDF_BIN="$UDF_CACHE/bin"
UDF_STATE="${UDF_SANDBOX_STATE:-$UDF_CACHE/state}"
UDF_VENV="$UDF_CACHE/venv"

K8S_VERSION="v1.34.4"
ETCD_VERSION="v3.6.5"

# step NAME CMD...: runs CMD, prints one line with what it did and how long it took.
# On failure, prints the tail of CMD's output (kept in $UDF_CACHE/logs/) and returns its status.
step() {
	local name="$1"
	shift
	local start log rc
	start=$(date +%s.%N)
	mkdir -p "$UDF_CACHE/logs"
	log="$UDF_CACHE/logs/step-$(printf '%s' "$name" | tr -c 'a-zA-Z0-9._-' '_').log"
	if "$@" >"$log" 2>&1; then
		rc=0
	else
		rc=$?
	fi
	printf '%-48s %6.1fs%s\n' "$name" "$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN{print b-a}')" \
		"$([ "$rc" -eq 0 ] || echo "  FAILED (exit $rc, log $log)")"
	if [ "$rc" -ne 0 ]; then
		tail -n 30 "$log" >&2
	fi
	return "$rc"
}

die() {
	echo "$(basename "$0"): $*" >&2
	exit 1
}

# not_built WHAT BUILDER: called by a build script when WHAT must be built. With
# UDF_SANDBOX_NO_BUILD=1 it fails (exit 3) with a message naming WHAT and the command that
# builds it, instead of building: ctest sets it for every test, so a test never spends its
# timeout on a build, and `hack/prereqs.sh --check` sets it to list what would be built.
not_built() {
	[ "${UDF_SANDBOX_NO_BUILD:-0}" = 1 ] || return 0
	echo "$(basename "$0"): $1 is not built in $UDF_CACHE; run 'make prereqs' (or $2)" >&2
	exit 3
}

# need_go WHAT: Go must be on PATH to build WHAT (only checked when something is built, so a
# warm cache needs no Go). /usr/local/go/bin, where Go's own tarball installs, is tried too.
need_go() {
	if ! command -v go >/dev/null && [ -x /usr/local/go/bin/go ]; then
		PATH="/usr/local/go/bin:$PATH"
	fi
	command -v go >/dev/null || die "go is not on PATH ($1 is built with Go)"
}
