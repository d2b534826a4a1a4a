#!/usr/bin/env bash
# `make run`: the local cluster up (control plane and node), the images built and imported,
# the chart installed as users install it (the operator as two pods, in-cluster config, its own
# RBAC), the default pool warm; then the address query nodes call and one command that calls a
# UDF like a query node, and the operator's logs in the foreground. Ctrl-C stops following
# them and leaves everything up; `hack/cluster.sh down` removes it all.
# UDF_RUN_MODE=local runs bin/udf-operator in the foreground on this machine instead, with the
# admin kubeconfig (the developer's loop: no image, no chart).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
# shellcheck source=hack/lib/common.sh
source "$here/lib/common.sh"

usage() {
	cat <<USAGE
usage: hack/run.sh [-- HELM_ARGS... | -- OPERATOR_FLAGS...]

UDF_RUN_MODE=cluster (the default, what \`make run\` does):
  hack/cluster.sh up (control plane and node), hack/image.sh worker operator (and import),
  kubectl apply --server-side -f crds/, helm upgrade --install udf-sandbox (release in
  namespace default; the operator in udf-system, 2 replicas, text logs), waits for the
  operator Deployment and for UdfWarmPool udf-sandboxes/default to be Ready, prints the gRPC
  address and a command that calls add_one through it (gRPC, then Flight), then follows the
  operator's logs. Ctrl-C stops following; the cluster and the release stay.
  Environment: UDF_RUN_WAIT (seconds to wait for each of the Deployment and the pool,
  default 300), UDF_RUN_POOL_SELECTOR (the chart's operator.poolSelector, default
  '!udf-test-run': every pool but the tests', which run operators of their own; empty: every
  pool; it also goes to operator.functionNamespaceSelector, so functions in the tests'
  namespaces are left to their operators), UDF_RUN_FOLLOW=0 (return after printing instead of
  following the logs). HELM_ARGS after -- go to helm upgrade --install (e.g. --set-json
  'grpc.allowedFrom=[{"ipBlock":{"cidr":"203.0.113.0/24"}}]').

UDF_RUN_MODE=local:
  hack/cluster.sh up (UDF_RUN_NODE=0: control plane only), kubectl apply -f crds/, and
  bin/udf-operator in the foreground with the admin kubeconfig; OPERATOR_FLAGS after -- go to
  it. Environment: GRPC_ADDRESS (default 127.0.0.1:50051), HEALTH_ADDRESS (default
  127.0.0.1:8081). Stop a chart-installed operator first (helm uninstall udf-sandbox), or both
  reconcile the same pools.
USAGE
}

case "${1:-}" in
-h | --help)
	usage
	exit 0
	;;
--) shift ;;
esac

kubectl_() { "$UDF_BIN/kubectl" --kubeconfig "$kubeconfig" "$@"; }

apply_crds() {
	kubectl_ apply --force-conflicts --server-side -f "$root/crds/"
	kubectl_ wait --for=condition=Established --timeout=60s crd/udffunctions.udf.sandbox.io \
		crd/udfwarmpools.udf.sandbox.io
}

run_local() {
	local up_args=() grpc health
	[ "${UDF_RUN_NODE:-1}" = "0" ] && up_args+=(--control-plane-only)
	"$here/cluster.sh" up "${up_args[@]}"
	kubeconfig="$("$here/cluster.sh" env kubeconfig)"
	step "run: kubectl apply -f crds/" apply_crds
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
}

helm_() {
	# helm's own configuration and cache stay in the project's cache, as in the tests.
	HELM_CONFIG_HOME="$UDF_CACHE/helm/config" HELM_CACHE_HOME="$UDF_CACHE/helm/cache" \
		HELM_DATA_HOME="$UDF_CACHE/helm/data" "$helm" --kubeconfig "$kubeconfig" "$@"
}

# Installs or upgrades the release; an upgrade also restarts the operator's pods, since a
# rebuilt :dev image has the same name and the Deployment would not change.
install_chart() {
	local existed=0
	helm_ status udf-sandbox --namespace default >/dev/null 2>&1 && existed=1
	helm_ upgrade --install udf-sandbox "$root/manifests/helm/udf-sandbox" --namespace default "$@" \
		--set operator.logFormat=text --set-string "operator.poolSelector=$pool_selector" \
		--set-string "operator.functionNamespaceSelector=$pool_selector"
	if [ "$existed" -eq 1 ]; then
		kubectl_ -n udf-system rollout restart deploy/udf-operator
	fi
}

# A pod reaches the API server through Service "kubernetes" only when the apiserver advertises
# an address pods can reach (hack/cluster.sh, API_ADDRESS); state made before that did not.
check_cluster() {
	local addr
	addr="$("$here/cluster.sh" env api-address)"
	case "$addr" in
	127.*)
		die "this cluster's apiserver listens on $addr, which its pods cannot reach (state made by an older hack/cluster.sh); 'hack/cluster.sh down' then 'make run' makes it anew, or UDF_RUN_MODE=local make run runs the operator outside the cluster"
		;;
	esac
	if [ -z "$(kubectl_ get nodes -o name 2>/dev/null)" ]; then
		die "this cluster has no node (another cluster's state owns it: see hack/node.sh status)"
	fi
}

follow_logs() {
	trap 'printf "\nrun: stopped following the logs; the cluster and the release stay up (hack/cluster.sh down removes them)\n"; exit 0' INT TERM
	while :; do
		kubectl_ -n udf-system logs -f --prefix --tail=20 --max-log-requests=4 \
			-l app.kubernetes.io/name=udf-operator,app.kubernetes.io/component=operator || true
		# A replica restarted or rolled: follow the new ones.
		sleep 2
	done
}

run_cluster() {
	local wait="${UDF_RUN_WAIT:-300}" ip ready
	# The tests' pools (label udf-test-run, tests/controllers) have operators of their own on
	# this shared cluster: the chart's operator leaves them alone.
	pool_selector="${UDF_RUN_POOL_SELECTOR-!udf-test-run}"
	"$here/cluster.sh" up
	kubeconfig="$("$here/cluster.sh" env kubeconfig)"
	check_cluster
	step "run: python venv (hack/venv.sh)" "$here/venv.sh"
	step "run: helm (hack/helm.sh)" "$here/helm.sh"
	helm="$("$here/helm.sh" --print-path)"
	step "run: images worker, operator (hack/image.sh)" "$here/image.sh" worker operator
	step "run: import images into the node" "$here/image.sh" import
	step "run: kubectl apply --server-side -f crds/" apply_crds
	step "run: helm upgrade --install udf-sandbox" install_chart "$@"
	step "run: operator Deployment ready (2 replicas)" kubectl_ -n udf-system rollout status \
		deploy/udf-operator --timeout="${wait}s"
	step "run: UdfWarmPool udf-sandboxes/default Ready" kubectl_ -n udf-sandboxes wait \
		--for=condition=Ready udfpool/default --timeout="${wait}s"
	ip="$(kubectl_ -n udf-system get svc udf-operator-grpc -o jsonpath='{.spec.clusterIP}')"
	ready="$(kubectl_ -n udf-sandboxes get udfpool default -o jsonpath='{.status.readyReplicas}')"
	cat <<MSG

  udf-sandbox is up: operator pods in udf-system, ${ready:-0} warm gVisor pods in udf-sandboxes.
  gRPC for query nodes: udf-operator-grpc.udf-system.svc:50051 in the cluster,
                        $ip:50051 from this machine
  call a UDF like a query node (ApplyUdfResource, then Flight DoExchange):
    $UDF_VENV/bin/python $root/tests/lib/querynode.py --address $ip:50051
  kubectl: $UDF_BIN/kubectl --kubeconfig $kubeconfig get udf,udfpool -A
  Ctrl-C stops following the logs below and leaves the cluster up; hack/cluster.sh down removes it.

MSG
	[ "${UDF_RUN_FOLLOW:-1}" = "0" ] && return 0
	follow_logs
}

case "${UDF_RUN_MODE:-cluster}" in
cluster) run_cluster "$@" ;;
local) run_local "$@" ;;
*) die "UDF_RUN_MODE is cluster or local, not ${UDF_RUN_MODE}" ;;
esac
