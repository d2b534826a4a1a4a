#!/usr/bin/env bash
# A real Kubernetes control plane on this machine: etcd, kube-controller-manager and
# kube-scheduler on 127.0.0.1, kube-apiserver on a host-only address that pods reach too (see
# API_ADDRESS below), built from source and cached.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=hack/lib/common.sh
source "$here/lib/common.sh"
# shellcheck source=hack/lib/daemon.sh
source "$here/lib/daemon.sh"
DAEMON_WHO=cluster

usage() {
	cat <<USAGE
usage: hack/cluster.sh up [--control-plane-only] | down | status | env kubeconfig|bin|state

  up      build the binaries if they are not cached, generate certificates and keys, start
          etcd, kube-apiserver, kube-controller-manager, kube-scheduler (and the node, when
          hack/node.sh exists and --control-plane-only is not given); wait for /readyz.
          Harmless when already up.
  down    stop exactly the processes 'up' started (pid files) and remove their state.
  status  what runs, with the path of each log.
  stop COMPONENT   stop one control-plane process (for tests of outages); 'up' restarts it.
  env kubeconfig   print the admin kubeconfig's path
  env bin          print the directory of the cached binaries
  env state        print the state directory
  env api-address  print the address kube-apiserver binds and advertises

Environment:
  UDF_SANDBOX_STATE      state directory (default: $UDF_STATE)
  UDF_CLUSTER_PORT_BASE  kube-apiserver port; etcd, controller-manager and scheduler take the
                         next four (default 6443). Give a private cluster its own state
                         directory and port base.
  UDF_CLUSTER_API_ADDRESS  the address kube-apiserver binds and advertises (default
                         $API_ADDRESS_DEFAULT), added to lo while a cluster uses it: an address of
                         this machine that its pods reach through Service "kubernetes", where
                         127.0.0.1 is their own loopback. Fixed when the state is made.
  UDF_SANDBOX_CACHE      cache of built binaries (default: $UDF_CACHE)
USAGE
}

PORT_BASE="${UDF_CLUSTER_PORT_BASE:-6443}"
APISERVER_PORT=$PORT_BASE
ETCD_PORT=$((PORT_BASE + 1))
ETCD_PEER_PORT=$((PORT_BASE + 2))
CM_PORT=$((PORT_BASE + 3))
SCHED_PORT=$((PORT_BASE + 4))
PKI="$UDF_STATE/pki"
RUN="$UDF_STATE/run"
LOGS="$UDF_STATE/logs"
KUBECONFIG_ADMIN="$UDF_STATE/admin.kubeconfig"
COMPONENTS=(etcd kube-apiserver kube-controller-manager kube-scheduler)
SERVICE_CIDR="10.96.0.0/16"
# kube-apiserver binds and advertises API_ADDRESS, so Service "kubernetes" (10.96.0.1:443) has an
# endpoint pods can reach, as in any cluster. It must be an address of this machine, and only of
# this machine: a /32 on lo (not eth0, and not 0.0.0.0) from 198.18.0.0/15, a range reserved for
# benchmarks that no network routes and that is outside the pod, service and node ranges. Pods
# reach it through the node's bridge like any host address; a filter rule drops it from anywhere
# else (api_address_rule). State made before this existed
# recorded no address and keeps 127.0.0.1 (no endpoint for pods) until it is made anew.
API_ADDRESS_DEFAULT="198.18.0.1"
if [ -f "$UDF_STATE/api-address" ]; then
	API_ADDRESS=$(cat "$UDF_STATE/api-address")
elif [ -f "$UDF_STATE/pki/ca.crt" ]; then
	API_ADDRESS=127.0.0.1
else
	API_ADDRESS="${UDF_CLUSTER_API_ADDRESS:-$API_ADDRESS_DEFAULT}"
fi
# Clusters with their own state share the address (each on its own port): adding and removing
# it is locked, and 'down' removes it only when no other apiserver listens on it.
API_ADDRESS_LOCK="$UDF_CACHE/api-address.lock"
CLUSTER_CIDR="10.244.0.0/16"

readyz() {
	curl -fsS --max-time 2 --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" \
		"https://$API_ADDRESS:$APISERVER_PORT/readyz" 2>/dev/null
}

# cert NAME CN O [SAN]: a client or server certificate signed by the cluster CA (ECDSA P-256).
cert() {
	local name="$1" cn="$2" org="$3" san="${4:-}" subj ext
	subj="/CN=$cn"
	[ -n "$org" ] && subj="/O=$org$subj"
	ext="$PKI/$name.ext"
	{
		echo "basicConstraints=CA:FALSE"
		echo "keyUsage=critical,digitalSignature,keyEncipherment"
		if [ -n "$san" ]; then
			echo "extendedKeyUsage=serverAuth,clientAuth"
			echo "subjectAltName=$san"
		else
			echo "extendedKeyUsage=clientAuth"
		fi
	} >"$ext"
	openssl ecparam -name prime256v1 -genkey -noout -out "$PKI/$name.key"
	openssl req -new -key "$PKI/$name.key" -subj "$subj" -out "$PKI/$name.csr"
	openssl x509 -req -in "$PKI/$name.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" \
		-CAcreateserial -days 365 -sha256 -extfile "$ext" -out "$PKI/$name.crt"
	rm -f "$PKI/$name.csr" "$ext"
	chmod 600 "$PKI/$name.key"
}

# kubeconfig FILE CERTNAME: a kubeconfig with the CA and client certificate embedded.
kubeconfig() {
	local file="$1" name="$2"
	cat >"$file" <<KC
apiVersion: v1
kind: Config
clusters:
- name: udf-sandbox
  cluster:
    server: https://$API_ADDRESS:$APISERVER_PORT
    certificate-authority-data: $(base64 -w0 <"$PKI/ca.crt")
users:
- name: $name
  user:
    client-certificate-data: $(base64 -w0 <"$PKI/$name.crt")
    client-key-data: $(base64 -w0 <"$PKI/$name.key")
contexts:
- name: udf-sandbox
  context:
    cluster: udf-sandbox
    user: $name
current-context: udf-sandbox
KC
	chmod 600 "$file"
}

gen_pki() {
	mkdir -p "$PKI"
	chmod 700 "$PKI"
	openssl ecparam -name prime256v1 -genkey -noout -out "$PKI/ca.key"
	openssl req -x509 -new -key "$PKI/ca.key" -subj "/CN=udf-sandbox-ca" -days 365 -sha256 \
		-addext "basicConstraints=critical,CA:TRUE" \
		-addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" -out "$PKI/ca.crt"
	chmod 600 "$PKI/ca.key"
	cert apiserver kube-apiserver "" \
		"IP:127.0.0.1,IP:$API_ADDRESS,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
	cert admin kubernetes-admin system:masters
	cert apiserver-kubelet-client kube-apiserver-kubelet-client system:masters
	cert controller-manager system:kube-controller-manager ""
	cert scheduler system:kube-scheduler ""
	# The front-proxy CA lets the apiserver authenticate aggregated-API requests; without it
	# every component logs a missing requestheader CA bundle forever.
	openssl ecparam -name prime256v1 -genkey -noout -out "$PKI/front-proxy-ca.key"
	openssl req -x509 -new -key "$PKI/front-proxy-ca.key" -subj "/CN=udf-sandbox-front-proxy-ca" \
		-days 365 -sha256 -addext "basicConstraints=critical,CA:TRUE" \
		-addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" \
		-out "$PKI/front-proxy-ca.crt"
	openssl ecparam -name prime256v1 -genkey -noout -out "$PKI/front-proxy-client.key"
	openssl req -new -key "$PKI/front-proxy-client.key" -subj "/CN=front-proxy-client" |
		openssl x509 -req -CA "$PKI/front-proxy-ca.crt" -CAkey "$PKI/front-proxy-ca.key" \
			-CAcreateserial -days 365 -sha256 \
			-extfile <(printf 'keyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n') \
			-out "$PKI/front-proxy-client.crt"
	chmod 600 "$PKI/front-proxy-ca.key" "$PKI/front-proxy-client.key"
	openssl ecparam -name prime256v1 -genkey -noout -out "$PKI/sa.key"
	openssl ec -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub"
	chmod 600 "$PKI/sa.key"
	kubeconfig "$KUBECONFIG_ADMIN" admin
	echo "$API_ADDRESS" >"$UDF_STATE/api-address"
	kubeconfig "$UDF_STATE/controller-manager.kubeconfig" controller-manager
	kubeconfig "$UDF_STATE/scheduler.kubeconfig" scheduler
}

start_etcd() {
	# --unsafe-no-fsync: a throwaway local cluster; durability across power loss is not a goal.
	daemon_start etcd --name default --data-dir "$UDF_STATE/etcd" \
		--listen-client-urls "http://127.0.0.1:$ETCD_PORT" \
		--advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
		--listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
		--initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
		--initial-cluster "default=http://127.0.0.1:$ETCD_PEER_PORT" \
		--listen-metrics-urls "" --unsafe-no-fsync --log-level warn
	daemon_wait etcd 30 curl -fsS --max-time 1 "http://127.0.0.1:$ETCD_PORT/health"
}

# Only this host (through lo) and its pods (sources in the cluster CIDR) reach the address: a
# neighbour routing it here through eth0 is dropped.
api_address_rule() {
	iptables -w "$1" INPUT -d "$API_ADDRESS/32" ! -i lo ! -s "$CLUSTER_CIDR" \
		-m comment --comment "udf-sandbox apiserver: this host and its pods only" -j DROP
}

# The API address on lo, unless it is there (another cluster's, or left by a crash).
api_address_up() {
	case "$API_ADDRESS" in 127.*) return 0 ;; esac
	if ! ip -4 -o addr show dev lo | grep -qF " $API_ADDRESS/"; then
		ip addr add "$API_ADDRESS/32" dev lo
	fi
	api_address_rule -C 2>/dev/null || api_address_rule -I
}

# Removes the address once no apiserver listens on it any more (other clusters' included).
api_address_down() {
	case "$API_ADDRESS" in 127.*) return 0 ;; esac
	if [ -n "$(ss -Hltn "src $API_ADDRESS")" ]; then
		echo "cluster: $API_ADDRESS stays on lo (another cluster's apiserver listens there)"
		return 0
	fi
	if ip -4 -o addr show dev lo | grep -qF " $API_ADDRESS/"; then
		ip addr del "$API_ADDRESS/32" dev lo
	fi
	while api_address_rule -C 2>/dev/null; do api_address_rule -D; done
}

start_apiserver() {
	local reconciler=lease
	# The apiserver publishes its address as the endpoint of Service "kubernetes"; Endpoints may
	# not hold a loopback address, so with a loopback address (old state) publish none.
	case "$API_ADDRESS" in 127.*) reconciler=none ;; esac
	# Shared: a concurrent 'down' of another cluster must not remove the address before this
	# apiserver listens on it.
	exec 7>"$API_ADDRESS_LOCK"
	flock -s 7
	api_address_up
	daemon_start kube-apiserver \
		--etcd-servers "http://127.0.0.1:$ETCD_PORT" \
		--bind-address "$API_ADDRESS" --secure-port "$APISERVER_PORT" \
		--advertise-address "$API_ADDRESS" --endpoint-reconciler-type "$reconciler" \
		--tls-cert-file "$PKI/apiserver.crt" --tls-private-key-file "$PKI/apiserver.key" \
		--client-ca-file "$PKI/ca.crt" \
		--kubelet-client-certificate "$PKI/apiserver-kubelet-client.crt" \
		--kubelet-client-key "$PKI/apiserver-kubelet-client.key" \
		--kubelet-certificate-authority "$PKI/ca.crt" \
		--service-account-issuer https://kubernetes.default.svc.cluster.local \
		--service-account-key-file "$PKI/sa.pub" \
		--service-account-signing-key-file "$PKI/sa.key" \
		--service-cluster-ip-range "$SERVICE_CIDR" \
		--authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction \
		--requestheader-client-ca-file "$PKI/front-proxy-ca.crt" \
		--requestheader-allowed-names front-proxy-client \
		--requestheader-username-headers X-Remote-User \
		--requestheader-group-headers X-Remote-Group \
		--requestheader-extra-headers-prefix X-Remote-Extra- \
		--proxy-client-cert-file "$PKI/front-proxy-client.crt" \
		--proxy-client-key-file "$PKI/front-proxy-client.key" \
		--allow-privileged=true --profiling=false --v=1 7>&-
	daemon_wait kube-apiserver 60 readyz
	exec 7>&-
}

# --resource-quota-sync-period: a ResourceQuota made right after its CRD appeared (a tenant
# namespace's, counting udffunctions) stays "status unknown" until the next full sync, and the
# API server refuses creates it covers until then: 15 s instead of 5 min on this local cluster.
start_controllers() {
	daemon_start kube-controller-manager \
		--kubeconfig "$UDF_STATE/controller-manager.kubeconfig" \
		--authentication-kubeconfig "$UDF_STATE/controller-manager.kubeconfig" \
		--authorization-kubeconfig "$UDF_STATE/controller-manager.kubeconfig" \
		--bind-address 127.0.0.1 --secure-port "$CM_PORT" \
		--service-account-private-key-file "$PKI/sa.key" --root-ca-file "$PKI/ca.crt" \
		--use-service-account-credentials=true \
		--cluster-signing-cert-file "$PKI/ca.crt" --cluster-signing-key-file "$PKI/ca.key" \
		--service-cluster-ip-range "$SERVICE_CIDR" --cluster-cidr "$CLUSTER_CIDR" \
		--allocate-node-cidrs=true --leader-elect=false --profiling=false --v=1 \
		--resource-quota-sync-period=15s
	daemon_start kube-scheduler \
		--kubeconfig "$UDF_STATE/scheduler.kubeconfig" \
		--authentication-kubeconfig "$UDF_STATE/scheduler.kubeconfig" \
		--authorization-kubeconfig "$UDF_STATE/scheduler.kubeconfig" \
		--bind-address 127.0.0.1 --secure-port "$SCHED_PORT" \
		--leader-elect=false --profiling=false --v=1
	daemon_wait kube-controller-manager 30 curl -fsSk --max-time 1 "https://127.0.0.1:$CM_PORT/healthz"
	daemon_wait kube-scheduler 30 curl -fsSk --max-time 1 "https://127.0.0.1:$SCHED_PORT/healthz"
}

all_running() {
	local c
	for c in "${COMPONENTS[@]}"; do
		daemon_pid "$c" >/dev/null || return 1
	done
	readyz >/dev/null
}

cmd_up() {
	local node=1
	case "${1:-}" in
	--control-plane-only) node=0 ;;
	"") ;;
	*) die "unknown option for up: $1" ;;
	esac
	step "cluster: binaries (hack/kube-bins.sh)" "$here/kube-bins.sh"
	mkdir -p "$UDF_STATE"
	exec 9>"$UDF_STATE/.lock"
	flock 9
	if all_running; then
		echo "cluster: already up (kubeconfig $KUBECONFIG_ADMIN)"
	else
		mkdir -p "$RUN" "$LOGS"
		# A half-started cluster (a component died) restarts only what is missing; fresh
		# state generates fresh keys.
		if [ ! -f "$PKI/ca.crt" ] || [ ! -f "$KUBECONFIG_ADMIN" ]; then
			step "cluster: certificates and keys (openssl)" gen_pki
		fi
		step "cluster: etcd $ETCD_VERSION on 127.0.0.1:$ETCD_PORT" start_etcd
		step "cluster: kube-apiserver $K8S_VERSION on $API_ADDRESS:$APISERVER_PORT" start_apiserver
		step "cluster: controller-manager and scheduler" start_controllers
		echo "cluster: up; kubeconfig $KUBECONFIG_ADMIN"
	fi
	if [ "$node" -eq 1 ] && [ -x "$here/node.sh" ]; then
		"$here/node.sh" up 9>&-
	fi
}

cmd_down() {
	[ -d "$UDF_STATE" ] || {
		echo "cluster: down (no state at $UDF_STATE)"
		return 0
	}
	exec 9>"$UDF_STATE/.lock"
	flock 9
	if [ -x "$here/node.sh" ]; then
		"$here/node.sh" down 9>&-
	fi
	local c
	for ((i = ${#COMPONENTS[@]} - 1; i >= 0; i--)); do
		c="${COMPONENTS[$i]}"
		step "cluster: stop $c" daemon_stop "$c"
	done
	exec 7>"$API_ADDRESS_LOCK"
	flock 7
	step "cluster: remove $API_ADDRESS from lo when unused" api_address_down
	exec 7>&-
	rm -rf "$UDF_STATE/etcd" "$PKI" "$RUN" "$LOGS" "$UDF_STATE"/*.kubeconfig "$UDF_STATE/api-address"
	rm -f "$UDF_STATE/.lock"
	rmdir "$UDF_STATE" 2>/dev/null || true
	echo "cluster: down"
}

cmd_stop() {
	local c="${1:-}" known=0 x
	for x in "${COMPONENTS[@]}"; do [ "$x" = "$c" ] && known=1; done
	[ "$known" -eq 1 ] || die "stop takes one of: ${COMPONENTS[*]}"
	exec 9>"$UDF_STATE/.lock"
	flock 9
	daemon_stop "$c"
	echo "cluster: $c stopped"
}

cmd_status() {
	local c pid rc=0
	for c in "${COMPONENTS[@]}"; do
		if pid=$(daemon_pid "$c"); then
			printf '%-24s running  pid %-8s log %s\n' "$c" "$pid" "$LOGS/$c.log"
		else
			printf '%-24s stopped                log %s\n' "$c" "$LOGS/$c.log"
			rc=1
		fi
	done
	if [ "$rc" -eq 0 ] && readyz >/dev/null; then
		echo "apiserver /readyz: ok (https://$API_ADDRESS:$APISERVER_PORT)"
	else
		echo "apiserver /readyz: not ready"
		rc=1
	fi
	echo "kubeconfig: $KUBECONFIG_ADMIN"
	if [ -x "$here/node.sh" ]; then
		"$here/node.sh" status 9>&- || rc=1
	fi
	return "$rc"
}

cmd_env() {
	case "${1:-}" in
	kubeconfig) echo "$KUBECONFIG_ADMIN" ;;
	bin) echo "$UDF_BIN" ;;
	state) echo "$UDF_STATE" ;;
	api-address) echo "$API_ADDRESS" ;;
	*) die "env takes kubeconfig, bin, state or api-address" ;;
	esac
}

case "${1:-}" in
up) shift; cmd_up "$@" ;;
down) cmd_down ;;
stop) shift; cmd_stop "$@" ;;
status) cmd_status ;;
env) shift; cmd_env "$@" ;;
-h | --help | help) usage ;;
*)
	usage >&2
	exit 2
	;;
esac
