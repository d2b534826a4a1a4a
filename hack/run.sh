#!/usr/bin/env bash
# `make run`: the local cluster up, the CRDs applied, and udf-operator in the foreground
# against it. Ctrl-C stops the operator cleanly; the cluster stays up (hack/cluster.sh down).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
# shellcheck source=hack/lib/common.sh
source "$here/lib/common.sh"

case "${1:-}" in
-h | --help)
	cat <<USAGE
usage: hack/run.sh [-- OPERATOR_FLAGS...]

Brings the local cluster up (hack/cluster.sh up; UDF_RUN_NODE=0 for the control plane only),
applies crds/ when present, and runs bin/udf-operator in the foreground with the admin
kubeconfig. Extra arguments after -- go to the operator. Environment: GRPC_ADDRESS (default
127.0.0.1:50051), HEALTH_ADDRESS (default 127.0.0.1:8081).
USAGE
	exit 0
	;;
--) shift ;;
esac

up_args=()
[ "${UDF_RUN_NODE:-1}" = "0" ] && up_args+=(--control-plane-only)
"$here/cluster.sh" up "${up_args[@]}"
kubeconfig="$("$here/cluster.sh" env kubeconfig)"
if compgen -G "$root/crds/*.yaml" >/dev/null; then
	step "run: kubectl apply -f crds/" "$UDF_BIN/kubectl" --kubeconfig "$kubeconfig" apply --force-conflicts \
		--server-side -f "$root/crds/"
fi
grpc="${GRPC_ADDRESS:-127.0.0.1:50051}"
health="${HEALTH_ADDRESS:-127.0.0.1:8081}"
cat <<MSG

  udf-operator: gRPC on $grpc, probes and metrics on http://$health/{healthz,readyz,metrics}
  kubeconfig:   $kubeconfig
  try:          $UDF_BIN/kubectl --kubeconfig $kubeconfig get udf,udfpool -A
  Ctrl-C stops the operator; 'hack/cluster.sh down' stops the cluster.

MSG
exec "$root/bin/udf-operator" --kubeconfig "$kubeconfig" --grpc-bind-address "$grpc" \
	--health-bind-address "$health" "$@"
