#!/usr/bin/env bash
# One real Kubernetes node on this machine: containerd v2 (CRI) with runc and gVisor (runsc)
# runtimes, a CNI bridge, the kubelet registered through the apiserver of hack/cluster.sh with
# its own client certificate, kube-proxy (iptables) so Services work, and kube-router's firewall
# alone (hack/kube-router.sh) so NetworkPolicies hold: the sandbox policy is enforced on this
# node as on a user's cluster. kube-router is a test-node component only, in no manifest.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=hack/lib/common.sh
source "$here/lib/common.sh"
# shellcheck source=hack/lib/daemon.sh
source "$here/lib/daemon.sh"
# shellcheck source=hack/lib/iptables.sh
source "$here/lib/iptables.sh"
DAEMON_WHO=node

usage() {
	cat <<USAGE
usage: hack/node.sh up | down | status

  up      build what is not cached (hack/runsc.sh, hack/containerd.sh, hack/kube-router.sh,
          the pause image), record the host state it will change, start containerd, the
          kubelet, kube-proxy and kube-router (NetworkPolicy only: --run-firewall),
          import the images hack/image.sh has built, and wait until the Node is Ready.
          Creates RuntimeClass gvisor (handler runsc). Needs hack/cluster.sh's control plane.
          Harmless when already up.
  down    delete the node's pods, stop exactly what 'up' started (pid files) and put the
          host back as 'up' found it: sysctls, iptables chains and rules, ipsets, the CNI
          bridge, network namespaces, mounts, cgroups, directories.
  status  the node's processes, its Ready condition and its runtime handlers.

The node is host-wide (one bridge, kubelet ports 10248/10250, kube-proxy 10249/10256): one
state directory at a time may own it. State: $UDF_STATE/node; images and containerd's
content store: $UDF_CACHE/node.
USAGE
}

NODE="$UDF_STATE/node"
PKI="$UDF_STATE/pki"
NPKI="$NODE/pki"
RUN="$NODE/run"
LOGS="$NODE/logs"
HOSTSNAP="$NODE/host"
# The containerd state (sockets, bundles, rootfs mounts) lives under /run like a system
# containerd's, but in a directory of its own.
CSTATE="/run/udf-sandbox/containerd"
CSOCK="$CSTATE/containerd.sock"
CROOT="$UDF_CACHE/node/containerd"
KUBELET_DIR="$NODE/kubelet"
CNI_CONF="$NODE/cni"
BRIDGE="udfbr0"
POD_SUBNET="10.244.0.0/24"
CLUSTER_CIDR="10.244.0.0/16"
OWNER="$UDF_CACHE/node/owner"
ADMIN_KUBECONFIG="$UDF_STATE/admin.kubeconfig"
COMPONENTS=(containerd kubelet kube-proxy kube-router)
# Host paths that the node may create; 'down' removes those that did not exist before 'up'.
# (The kubelet keeps its device-plugin socket under /var/lib/kubelet whatever its root dir.)
HOST_PATHS=(/run/containerd /run/udf-sandbox /var/lib/cni /var/lib/kubelet /var/log/containers
	/var/log/pods /etc/cni)
NETNS_DIR=/run/netns
# Sysctls the kubelet and kube-proxy set, and ip_forward which the node needs.
SYSCTLS=(vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops
	kernel.keys.root_maxkeys kernel.keys.root_maxbytes net.ipv4.ip_forward
	net.bridge.bridge-nf-call-iptables net.bridge.bridge-nf-call-ip6tables
	net.ipv4.conf.all.route_localnet)
# Directories that may hold mounts made by the node.
# Network namespaces are handled apart (remove_netns): others' live there too.
MOUNT_PREFIXES=("$NODE/" "$CSTATE/" "/run/containerd/" "$CROOT/")

kubectl_admin() { "$UDF_BIN/kubectl" --kubeconfig "$ADMIN_KUBECONFIG" "$@"; }

node_name() { hostname; }

# The apiserver reaches the kubelet by the node's hostname and the kubelet serves on
# 127.0.0.1 only, so the hostname must resolve to loopback.
check_hostname() {
	local addr
	addr=$(getent ahostsv4 "$(node_name)" | awk 'NR==1{print $1}')
	case "$addr" in
	127.*) ;;
	*) die "hostname $(node_name) resolves to '${addr:-nothing}', not 127.0.0.1; add it to /etc/hosts" ;;
	esac
}

# --node-ip may not be loopback: the address of the default route's interface.
node_ip() {
	ip -4 route get 1.1.1.1 2>/dev/null | sed -n 's/.* src \([0-9.]*\).*/\1/p' | head -n1
}

# --- host snapshot -------------------------------------------------------------------------

snapshot_host() {
	mkdir -p "$HOSTSNAP"
	[ -f "$HOSTSNAP/done" ] && return 0
	local s p
	: >"$HOSTSNAP/sysctls"
	for s in "${SYSCTLS[@]}"; do
		if [ -e "/proc/sys/${s//.//}" ]; then
			echo "$s=$(sysctl -n "$s")" >>"$HOSTSNAP/sysctls"
		fi
	done
	: >"$HOSTSNAP/paths"
	for p in "${HOST_PATHS[@]}" "$NETNS_DIR"; do
		[ -e "$p" ] && echo "$p" >>"$HOSTSNAP/paths"
	done
	fw_snapshot "$HOSTSNAP"
	# For tests/node/test_down_up.py: down leaves no ipset that was not here.
	ipset list -n 2>/dev/null | sort >"$HOSTSNAP/ipsets" || : >"$HOSTSNAP/ipsets"
	find "$NETNS_DIR" -mindepth 1 -maxdepth 1 -printf '%f\n' 2>/dev/null | sort >"$HOSTSNAP/netns" || true
	if mountpoint -q "$NETNS_DIR"; then echo mounted >"$HOSTSNAP/netns-dir"; else : >"$HOSTSNAP/netns-dir"; fi
	findmnt -rn -o TARGET | sort >"$HOSTSNAP/mounts"
	find /sys/fs/cgroup -maxdepth 2 -mindepth 1 -type d 2>/dev/null | sort >"$HOSTSNAP/cgroups"
	touch "$HOSTSNAP/done"
}

restore_sysctls() {
	local line
	[ -f "$HOSTSNAP/sysctls" ] || return 0
	while IFS= read -r line; do
		[ -n "$line" ] || continue
		if [ "$(sysctl -n "${line%%=*}")" != "${line#*=}" ]; then
			sysctl -q -w "$line" || echo "node: could not restore $line" >&2
		fi
	done <"$HOSTSNAP/sysctls"
}

unmount_ours() {
	local m p
	# Deepest first.
	findmnt -rn -o TARGET | awk '{print length, $0}' | sort -rn | cut -d' ' -f2- |
		while IFS= read -r m; do
			grep -qxF -- "$m" "$HOSTSNAP/mounts" 2>/dev/null && continue
			for p in "${MOUNT_PREFIXES[@]}"; do
				case "$m/" in
				"$p"*)
					umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
					break
					;;
				esac
			done
		done
}

# Like 'ip netns add', make $NETNS_DIR a shared mount of its own before containerd puts
# namespaces there; otherwise the next 'ip netns add' by anyone mounts over ours, hiding them
# where they can no longer be unmounted.
prepare_netns_dir() {
	mkdir -p "$NETNS_DIR"
	if ! mountpoint -q "$NETNS_DIR"; then
		mount --bind "$NETNS_DIR" "$NETNS_DIR"
	fi
	mount --make-shared "$NETNS_DIR"
}

# The CNI namespaces containerd made (cni-*) that were not there before 'up'; then the
# directory itself when we made it and nobody else's namespace is left in it.
remove_netns() {
	local f n
	for f in "$NETNS_DIR"/cni-*; do
		[ -e "$f" ] || continue
		n=$(basename "$f")
		grep -qxF -- "$n" "$HOSTSNAP/netns" 2>/dev/null && continue
		while mountpoint -q "$f"; do umount "$f" 2>/dev/null || umount -l "$f" || break; done
		rm -f "$f"
	done
	if [ ! -s "$HOSTSNAP/netns-dir" ] && [ -d "$NETNS_DIR" ] &&
		[ -z "$(find "$NETNS_DIR" -mindepth 1 -maxdepth 1 2>/dev/null)" ]; then
		while mountpoint -q "$NETNS_DIR"; do umount "$NETNS_DIR" 2>/dev/null || umount -l "$NETNS_DIR" || break; done
		grep -qxF -- "$NETNS_DIR" "$HOSTSNAP/paths" 2>/dev/null || rmdir "$NETNS_DIR" 2>/dev/null || true
	fi
}

# The kubelet's cgroupfs driver makes kubepods/ in every hierarchy; runc and runsc nest pods
# under it. Remove cgroup directories that were not there before, deepest first.
remove_cgroups() {
	local d
	find /sys/fs/cgroup -mindepth 2 -maxdepth 2 -type d 2>/dev/null | sort | while IFS= read -r d; do
		grep -qxF -- "$d" "$HOSTSNAP/cgroups" 2>/dev/null && continue
		case "$(basename "$d")" in
		kubepods | kubepods.slice) find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null || true ;;
		esac
	done
}

remove_paths() {
	local p
	for p in "${HOST_PATHS[@]}"; do
		grep -qxF -- "$p" "$HOSTSNAP/paths" 2>/dev/null && continue
		[ -e "$p" ] || continue
		# Never remove a directory that still holds a mount point.
		if grep -qF -- "$(realpath "$p")/" <<<"$(findmnt -rn -o TARGET)"; then
			echo "node: $p still has mounts; left in place" >&2
			continue
		fi
		rm -rf --one-file-system "$p"
	done
}

# kube-router's chains and ipsets, by name and whatever the snapshot says: only this script runs
# kube-router here, and a snapshot taken while an earlier kube-router still ran (a node that was
# up before kube-router was part of it) must not make them the host's. Its own --cleanup-config
# cannot do it: it panics on a host without IPVS. Rules that jump to the chains go first, then
# the chains; a set is destroyed only once no rule uses it.
KUBE_ROUTER_CHAINS='^(KUBE-ROUTER-|KUBE-POD-FW-|KUBE-NWPLCY-)'
KUBE_ROUTER_SETS='^(inet6:)?(KUBE-SRC-|KUBE-DST-|TMP-)'
remove_kube_router() {
	local cmd save rule chain s
	for cmd in iptables ip6tables; do
		save="$cmd-save"
		command -v "$save" >/dev/null || continue
		# (|| true: grep finds nothing on a host without them, and this may run under set -e.)
		{ "$save" -t filter 2>/dev/null || true; } | grep -E -- "^-A .* -j ${KUBE_ROUTER_CHAINS#^}" |
			grep -Ev -- "^-A ${KUBE_ROUTER_CHAINS#^}" | while IFS= read -r rule; do
			eval "$cmd -w -t filter -D ${rule#-A }" 2>/dev/null || true
		done || true
		for chain in $("$save" -t filter 2>/dev/null | sed -n 's/^:\([^ ]*\) .*/\1/p' |
			grep -E -- "$KUBE_ROUTER_CHAINS" || true); do
			"$cmd" -w -t filter -F "$chain" 2>/dev/null || true
		done
		for chain in $("$save" -t filter 2>/dev/null | sed -n 's/^:\([^ ]*\) .*/\1/p' |
			grep -E -- "$KUBE_ROUTER_CHAINS" || true); do
			"$cmd" -w -t filter -X "$chain" 2>/dev/null || true
		done
	done
	command -v ipset >/dev/null || return 0
	for s in $(ipset list -n 2>/dev/null | grep -E -- "$KUBE_ROUTER_SETS" || true); do
		ipset destroy "$s" 2>/dev/null || echo "node: could not destroy ipset $s" >&2
	done
}

restore_host() {
	[ -f "$HOSTSNAP/done" ] || return 0
	remove_netns
	unmount_ours
	ip link delete "$BRIDGE" 2>/dev/null || true
	remove_kube_router
	fw_restore "$HOSTSNAP"
	restore_sysctls
	remove_cgroups
	remove_paths
}

# --- certificates and configuration ---------------------------------------------------------

# sign NAME CN O EXT: key and certificate signed by the cluster CA.
sign() {
	local name="$1" org="$3" ext="$4" subj="/CN=$2"
	[ -n "$org" ] && subj="/O=$org$subj"
	openssl ecparam -name prime256v1 -genkey -noout -out "$NPKI/$name.key" 2>/dev/null
	openssl req -new -key "$NPKI/$name.key" -subj "$subj" -out "$NPKI/$name.csr"
	printf '%b\n' "$ext" >"$NPKI/$name.ext"
	openssl x509 -req -in "$NPKI/$name.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" \
		-CAcreateserial -CAserial "$NPKI/ca.srl" -days 365 -sha256 \
		-extfile "$NPKI/$name.ext" -out "$NPKI/$name.crt" 2>/dev/null
	rm -f "$NPKI/$name.csr" "$NPKI/$name.ext"
	chmod 600 "$NPKI/$name.key"
}

kubeconfig_for() {
	local file="$1" name="$2"
	cat >"$file" <<KC
apiVersion: v1
kind: Config
clusters:
- name: udf-sandbox
  cluster:
    server: $(server_url)
    certificate-authority: $PKI/ca.crt
users:
- name: $name
  user:
    client-certificate: $NPKI/$name.crt
    client-key: $NPKI/$name.key
contexts:
- name: udf-sandbox
  context: {cluster: udf-sandbox, user: $name}
current-context: udf-sandbox
KC
	chmod 600 "$file"
}

server_url() {
	sed -n 's/^[[:space:]]*server:[[:space:]]*//p' "$ADMIN_KUBECONFIG" | head -n1
}

gen_node_pki() {
	local name ip client="basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth"
	name=$(node_name)
	ip=$(node_ip)
	mkdir -p "$NPKI"
	chmod 700 "$NPKI"
	sign kubelet "system:node:$name" system:nodes "$client"
	sign kubelet-serving "system:node:$name" system:nodes \
		"basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:$name,DNS:localhost,IP:127.0.0.1${ip:+,IP:$ip}"
	sign kube-proxy system:kube-proxy "" "$client"
	kubeconfig_for "$NODE/kubelet.kubeconfig" kubelet
	kubeconfig_for "$NODE/kube-proxy.kubeconfig" kube-proxy
	gen_kube_router_pki
}

# Apart, so that a node started before kube-router was part of it gets its identity alone.
gen_kube_router_pki() {
	mkdir -p "$NPKI"
	chmod 700 "$NPKI"
	sign kube-router udf-node:kube-router "" \
		"basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth"
	kubeconfig_for "$NODE/kube-router.kubeconfig" kube-router
}

write_configs() {
	mkdir -p "$CNI_CONF" "$KUBELET_DIR" "$NODE/pod-logs" "$NODE/ipam" "$CROOT"
	# ipMasq off: runsc pods leave NAT chains behind with it on, and pods need no way out.
	cat >"$CNI_CONF/10-udf-bridge.conflist" <<JSON
{
  "cniVersion": "1.0.0",
  "name": "udf-sandbox",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$BRIDGE",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$NODE/ipam",
        "ranges": [[{"subnet": "$POD_SUBNET"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
JSON
	# systrap: these VMs have no vmx/svm, so the kvm platform hangs.
	cat >"$NODE/runsc.toml" <<TOML
binary_name = "$UDF_BIN/runsc"
root = "$CSTATE/runsc"
[runsc_config]
  platform = "systrap"
TOML
	cat >"$NODE/containerd.toml" <<TOML
version = 3
root = "$CROOT"
state = "$CSTATE"
# NRI is not used; the OCI hooks it brings only add failure modes.
disabled_plugins = ["io.containerd.nri.v1.nri"]

[grpc]
  address = "$CSOCK"

[plugins."io.containerd.cri.v1.images"]
  snapshotter = "overlayfs"
  [plugins."io.containerd.cri.v1.images".pinned_images]
    sandbox = "localhost/pause:dev"

[plugins."io.containerd.cri.v1.runtime"]
  # No CAP_SYS_RESOURCE on these VMs: nothing may lower oom_score_adj.
  restrict_oom_score_adj = true
  enable_cdi = false
  [plugins."io.containerd.cri.v1.runtime".cni]
    bin_dirs = ["/usr/lib/cni"]
    conf_dir = "$CNI_CONF"
  [plugins."io.containerd.cri.v1.runtime".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
        BinaryName = "$(command -v runc)"
        Root = "$CSTATE/runc"
        SystemdCgroup = false
    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runsc]
      runtime_type = "io.containerd.runsc.v1"
      [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runsc.options]
        TypeUrl = "io.containerd.runsc.v1.options"
        ConfigPath = "$NODE/runsc.toml"

[plugins."io.containerd.grpc.v1.cri"]
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
TOML
	cat >"$NODE/kubelet.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# Serve on loopback only; the apiserver authenticates with its kubelet client certificate and
# every request is authorized through the apiserver (webhook), never anonymously.
address: 127.0.0.1
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
tlsCertFile: $NPKI/kubelet-serving.crt
tlsPrivateKeyFile: $NPKI/kubelet-serving.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $PKI/ca.crt}
authorization:
  mode: Webhook
containerRuntimeEndpoint: unix://$CSOCK
# No systemd here, and the host is cgroup v1 (hybrid).
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
clusterDomain: cluster.local
podLogsDir: $NODE/pod-logs
# Images are imported, never pulled: garbage-collecting them would lose them for good.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: "100Mi"
  nodefs.available: "1%"
  imagefs.available: "1%"
  nodefs.inodesFree: "1%"
serializeImagePulls: false
YAML
	cat >"$NODE/kube-proxy.yaml" <<YAML
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
clusterCIDR: $CLUSTER_CIDR
hostnameOverride: $(node_name)
bindAddress: 127.0.0.1
metricsBindAddress: 127.0.0.1:10249
healthzBindAddress: 127.0.0.1:10256
clientConnection:
  kubeconfig: $NODE/kube-proxy.kubeconfig
# Leave the host's conntrack sysctls alone; no NodePorts on localhost (route_localnet).
conntrack:
  maxPerCore: 0
  min: 0
iptables:
  localhostNodePorts: false
YAML
}

# --- processes ----------------------------------------------------------------------------

ctr_() { "$UDF_BIN/ctr" --address "$CSOCK" "$@"; }

start_containerd() {
	mkdir -p "$CSTATE"
	daemon_start containerd --config "$NODE/containerd.toml"
	daemon_wait containerd 30 ctr_ version
}

import_images() {
	"$here/image.sh" import --address "$CSOCK"
}

start_kubelet() {
	daemon_start kubelet --config "$NODE/kubelet.yaml" --kubeconfig "$NODE/kubelet.kubeconfig" \
		--root-dir "$KUBELET_DIR" --cert-dir "$NPKI" --node-ip "$(node_ip)" \
		--hostname-override "$(node_name)" --v=1
	daemon_wait kubelet 60 node_ready
}

node_ready() {
	[ "$(kubectl_admin get node "$(node_name)" \
		-o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" = True ]
}

start_kube_proxy() {
	daemon_start kube-proxy --config "$NODE/kube-proxy.yaml" --v=1
	daemon_wait kube-proxy 30 curl -fsS --max-time 1 http://127.0.0.1:10256/healthz
}

# What kube-router's firewall reads, and nothing more: it only watches.
kube_router_rbac() {
	kubectl_admin apply -f - <<YAML
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: udf-node:kube-router
rules:
  - apiGroups: [""]
    resources: [pods, namespaces, nodes, services, endpoints]
    verbs: [get, list, watch]
  - apiGroups: [networking.k8s.io]
    resources: [networkpolicies]
    verbs: [get, list, watch]
  - apiGroups: [discovery.k8s.io]
    resources: [endpointslices]
    verbs: [get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: udf-node:kube-router
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "udf-node:kube-router"}
subjects:
  - {apiGroup: rbac.authorization.k8s.io, kind: User, name: "udf-node:kube-router"}
YAML
}

# kube-router's firewall is in place once its chains hook the filter table.
kube_router_ready() {
	iptables -w -S FORWARD 2>/dev/null | grep -q -- '-j KUBE-ROUTER-FORWARD'
}

# The NetworkPolicy firewall alone: no routing (the CNI bridge routes), no service proxy
# (kube-proxy does), no health or metrics port (nothing on the pod network to reach).
start_kube_router() {
	daemon_start kube-router --run-firewall=true --run-router=false --run-service-proxy=false \
		--kubeconfig "$NODE/kube-router.kubeconfig" --hostname-override "$(node_name)" \
		--health-port 0 --metrics-port 0 --v=1
	daemon_wait kube-router 60 kube_router_ready
}

runtime_class() {
	kubectl_admin apply -f - <<YAML
apiVersion: node.k8s.io/v1
kind: RuntimeClass
metadata:
  name: gvisor
handler: runsc
YAML
}

# Delete the node's pods through the apiserver so the kubelet tears each one down properly
# (CNI DEL, netns, mounts); cordon first so controllers' replacements stay Pending.
drain() {
	local name deadline
	name=$(node_name)
	kubectl_admin get node "$name" >/dev/null 2>&1 || return 0
	kubectl_admin cordon "$name" >/dev/null 2>&1 || true
	kubectl_admin delete pods --all-namespaces --field-selector "spec.nodeName=$name" \
		--grace-period=2 --wait=false >/dev/null 2>&1 || true
	deadline=$((SECONDS + 60))
	while [ "$SECONDS" -lt "$deadline" ]; do
		[ -z "$(kubectl_admin get pods -A --field-selector "spec.nodeName=$name" -o name 2>/dev/null)" ] &&
			break
		sleep 0.5
	done
	kubectl_admin delete node "$name" --wait=false >/dev/null 2>&1 || true
}

# Whatever the kubelet left: sandboxes and containers still known to our runtimes' roots, and
# shims started by our containerd (their pid files live in its state directory).
kill_leftovers() {
	local root id f pid
	for root in "$CSTATE"/runsc/*; do
		[ -d "$root" ] || continue
		for id in $("$UDF_BIN/runsc" --root "$root" list -quiet 2>/dev/null); do
			"$UDF_BIN/runsc" --root "$root" delete -force "$id" >/dev/null 2>&1 || true
		done
	done
	for root in "$CSTATE"/runc/*; do
		[ -d "$root" ] || continue
		for id in $(runc --root "$root" list -q 2>/dev/null); do
			runc --root "$root" delete --force "$id" >/dev/null 2>&1 || true
		done
	done
	for f in "$CSTATE"/io.containerd.runtime.v2.task/*/*/shim.pid; do
		[ -f "$f" ] || continue
		pid=$(cat "$f")
		case "$(readlink "/proc/$pid/exe" 2>/dev/null)" in
		"$UDF_BIN"/containerd-shim-*) kill -KILL "$pid" 2>/dev/null || true ;;
		esac
	done
	# Shims whose task directory (and pid file) went before them, e.g. after their containerd
	# died: known by their binary and their working directory, the task directory in $CSTATE.
	for f in /proc/[0-9]*; do
		case "$(readlink "$f/exe" 2>/dev/null)" in
		"$UDF_BIN"/containerd-shim-*) ;;
		*) continue ;;
		esac
		case "$(readlink "$f/cwd" 2>/dev/null)" in
		"$CSTATE"/*) kill -KILL "${f#/proc/}" 2>/dev/null || true ;;
		esac
	done
}

# --- commands -----------------------------------------------------------------------------

# One up or down at a time on this host, whichever checkout's node.sh runs it: the lock is a
# file beside the owner mark, not this script (a lock on "$0" let one worktree's 'up' start a
# second kubelet while another's 'down' ran, leaving orphans on the kubelet's ports).
node_lock() {
	mkdir -p "$(dirname "$OWNER")"
	exec 8>"$(dirname "$OWNER")/lock"
	flock 8
}

all_running() {
	local c
	for c in "${COMPONENTS[@]}"; do
		daemon_pid "$c" >/dev/null || return 1
	done
}

cmd_up() {
	if [ ! -f "$PKI/ca.key" ] || [ ! -f "$ADMIN_KUBECONFIG" ]; then
		die "no control plane at $UDF_STATE (run hack/cluster.sh up first)"
	fi
	node_lock
	mkdir -p "$(dirname "$OWNER")"
	if [ -f "$OWNER" ] && [ "$(cat "$OWNER")" != "$UDF_STATE" ] && [ -d "$(cat "$OWNER")/node/run" ]; then
		echo "node: the node belongs to $(cat "$OWNER"); not starting another (this cluster has no node)"
		return 0
	fi
	check_hostname
	step "node: runsc (hack/runsc.sh)" "$here/runsc.sh"
	step "node: containerd (hack/containerd.sh)" "$here/containerd.sh"
	step "node: kube-router (hack/kube-router.sh)" "$here/kube-router.sh"
	step "node: pause image (hack/image.sh pause)" "$here/image.sh" pause
	if all_running && node_ready; then
		step "node: import images" import_images
		echo "node: already up ($(node_name) Ready)"
		return 0
	fi
	echo "$UDF_STATE" >"$OWNER"
	mkdir -p "$RUN" "$LOGS"
	step "node: record host state" snapshot_host
	# Certificates from an earlier cluster (another CA) are made anew.
	if ! openssl verify -CAfile "$PKI/ca.crt" "$NPKI/kubelet.crt" >/dev/null 2>&1; then
		step "node: certificates (openssl)" gen_node_pki
	elif ! openssl verify -CAfile "$PKI/ca.crt" "$NPKI/kube-router.crt" >/dev/null 2>&1; then
		step "node: kube-router certificate (openssl)" gen_kube_router_pki
	fi
	step "node: configuration" write_configs
	sysctl -q -w net.ipv4.ip_forward=1
	prepare_netns_dir
	step "node: containerd $("$here/containerd.sh" --print-version)" start_containerd
	step "node: import images" import_images
	step "node: kubelet $K8S_VERSION ($(node_name) Ready)" start_kubelet
	step "node: kube-proxy $K8S_VERSION (iptables)" start_kube_proxy
	step "node: kube-router RBAC" kube_router_rbac
	step "node: kube-router $("$here/kube-router.sh" --print-version) (NetworkPolicy)" start_kube_router
	step "node: RuntimeClass gvisor" runtime_class
	echo "node: up; $(node_name) Ready, runtime handlers: $(handlers)"
}

cmd_down() {
	node_lock
	if [ ! -d "$NODE" ]; then
		echo "node: down (no node state at $NODE)"
		return 0
	fi
	if daemon_pid kubelet >/dev/null && [ -f "$ADMIN_KUBECONFIG" ]; then
		step "node: delete pods" drain
	fi
	# kube-router first: running, it would put back the chains the steps below remove.
	step "node: stop kube-router" daemon_stop kube-router
	step "node: stop kube-proxy" daemon_stop kube-proxy
	if [ -f "$NODE/kube-proxy.yaml" ]; then
		step "node: kube-proxy --cleanup" "$UDF_BIN/kube-proxy" --cleanup --config "$NODE/kube-proxy.yaml"
	fi
	step "node: stop kubelet" daemon_stop kubelet
	step "node: remove leftover sandboxes" kill_leftovers
	step "node: stop containerd" daemon_stop containerd
	step "node: restore host state" restore_host
	# Keep the last run's logs for a post-mortem.
	rm -rf "$UDF_CACHE/logs/node-previous"
	mkdir -p "$UDF_CACHE/logs"
	if [ -d "$LOGS" ]; then mv "$LOGS" "$UDF_CACHE/logs/node-previous"; fi
	rm -rf --one-file-system "$NODE"
	if [ -f "$OWNER" ] && [ "$(cat "$OWNER")" = "$UDF_STATE" ]; then rm -f "$OWNER"; fi
	echo "node: down"
}

handlers() {
	kubectl_admin get node "$(node_name)" -o jsonpath='{range .status.runtimeHandlers[*]}{.name}{" "}{end}' 2>/dev/null |
		awk '{$1=$1; print}'
}

cmd_status() {
	local c pid rc=0
	if [ ! -d "$NODE" ]; then
		echo "node: not started for this cluster (state $NODE)"
		return 0
	fi
	for c in "${COMPONENTS[@]}"; do
		if pid=$(daemon_pid "$c"); then
			printf '%-24s running  pid %-8s log %s\n' "$c" "$pid" "$LOGS/$c.log"
		else
			printf '%-24s stopped                log %s\n' "$c" "$LOGS/$c.log"
			rc=1
		fi
	done
	if node_ready; then
		echo "node $(node_name): Ready; runtime handlers: $(handlers)"
	else
		echo "node $(node_name): not Ready"
		rc=1
	fi
	return "$rc"
}

case "${1:-}" in
up) cmd_up ;;
down) cmd_down ;;
status) cmd_status ;;
-h | --help | help) usage ;;
*)
	usage >&2
	exit 2
	;;
esac
