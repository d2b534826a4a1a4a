#!/usr/bin/env bash
# Creates the Python venv the tests and benchmarks use, from tests/requirements.txt.
# Reinstalls only when requirements.txt changed since the last run.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=hack/lib/common.sh
source "$here/lib/common.sh"

case "${1:-}" in
-h | --help)
	echo "usage: hack/venv.sh [--print-python]"
	echo "Makes $UDF_VENV from tests/requirements.txt (pinned); --print-python prints its python."
	exit 0
	;;
--print-python)
	echo "$UDF_VENV/bin/python"
	exit 0
	;;
"") ;;
*) die "unknown argument: $1" ;;
esac

req="$here/../tests/requirements.txt"
want=$(sha256sum "$req" | cut -d' ' -f1)
if [ -x "$UDF_VENV/bin/python" ] && [ "$(cat "$UDF_VENV/.requirements.sha256" 2>/dev/null)" = "$want" ]; then
	echo "venv: up to date ($UDF_VENV)"
	exit 0
fi
not_built "the Python venv" hack/venv.sh

make_venv() {
	local py
	py=$(command -v python3) || die "python3 not found"
	[ -x "$UDF_VENV/bin/python" ] || "$py" -m venv "$UDF_VENV"
	"$UDF_VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$req"
}
step "venv: pip install -r tests/requirements.txt" make_venv
echo "$want" >"$UDF_VENV/.requirements.sha256"
