# shellcheck shell=bash
# What the benchmarks that run the real operator on the local node share (sourced after
# hack/lib/common.sh): bench_node NAME TAG brings the worker image and the cluster up, sets
# $python, $kubeconfig, $bin, the kubectl array and $image (the worker image under a tag of
# this worker binary's own: other worktrees rebuild localhost/udf-worker:dev), and makes
# RuntimeClass runc if it is missing; bench_node_cleanup removes what bench_node made (call it
# from the script's EXIT trap).
: "${root:?hack/bench/lib.sh: the sourcing script sets root to the repository}"

bench_node() {
	local name="$1" tag="$2"
	python="$UDF_VENV/bin/python"
	[ -x "$python" ] || python=python3
	if [ ! -x "$root/bin/udf-operator" ] || [ ! -x "$root/bin/udf-worker" ]; then
		die "no bin/: run make first"
	fi
	step "$name bench: worker image (hack/image.sh worker)" "$root/hack/image.sh" worker
	step "$name bench: cluster and node (hack/cluster.sh up)" "$root/hack/cluster.sh" up
	kubeconfig="$("$root/hack/cluster.sh" env kubeconfig)"
	bin="$("$root/hack/cluster.sh" env bin)"
	kubectl=("$bin/kubectl" --kubeconfig "$kubeconfig")
	image="localhost/udf-worker:$tag-$(sha256sum "$root/bin/udf-worker" | cut -c1-12)"
	"$bin/ctr" --address /run/udf-sandbox/containerd/containerd.sock -n k8s.io images tag \
		--force localhost/udf-worker:dev "$image" >/dev/null
	bench_made_runc=0
	if ! "${kubectl[@]}" get runtimeclass runc >/dev/null 2>&1; then
		printf 'apiVersion: node.k8s.io/v1\nkind: RuntimeClass\nmetadata:\n  name: runc\nhandler: runc\n' |
			"${kubectl[@]}" apply -f - >/dev/null
		bench_made_runc=1
	fi
}

bench_node_cleanup() {
	if [ "${bench_made_runc:-0}" -eq 1 ]; then
		"${kubectl[@]}" delete runtimeclass runc >/dev/null 2>&1 || true
	fi
}
