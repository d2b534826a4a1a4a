#!/usr/bin/env bash
# The operator's dependency rules, checked on the includes: grpc -> api -> udf -> kube and
# controllers -> udf -> kube; controllers and api never reach each other (they meet only
# through a UdfFunction's status); kube knows nothing of UDFs. Prints every include that
# breaks a rule and exits 1, or prints one line and exits 0.
set -euo pipefail
if [ "${1:-}" = "--help" ]; then
	echo "usage: tests/lint/layers.sh   (from the repository root)"
	exit 0
fi
cd "$(dirname "$0")/../.."

# directory: the operator directories its files must not include
declare -A forbidden=(
	[operator/util]="kube udf api controllers grpc http"
	[operator/kube]="udf api controllers grpc http"
	[operator/udf]="api controllers grpc http"
	[operator/api]="controllers grpc http"
	[operator/controllers]="api grpc http"
	[operator/grpc]="controllers http"
	[operator/http]="udf api controllers grpc"
	[common]="kube udf api controllers grpc http"
)
bad=0
for dir in "${!forbidden[@]}"; do
	[ -d "$dir" ] || continue
	for layer in ${forbidden[$dir]}; do
		while IFS= read -r hit; do
			echo "layers: $hit: $dir must not include $layer/"
			bad=1
		done < <(grep -rnE "^#include \"$layer/" "$dir" --include='*.c' --include='*.h' || true)
	done
done
# A bare include of a header that lives in another operator directory hides a dependency.
while IFS= read -r hit; do
	echo "layers: $hit: include operator headers by module path (\"kube/rest.h\")"
	bad=1
done < <(grep -rnE '^#include "[a-z_]+\.h"' operator --include='*.c' --include='*.h' | grep -v 'pb-c\.h' || true)
if [ "$bad" -ne 0 ]; then
	exit 1
fi
echo "layers: every include follows grpc -> api -> udf -> kube, controllers -> udf -> kube"
