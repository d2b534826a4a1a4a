#!/usr/bin/env bash
# Installs the Debian packages udf-sandbox builds and tests with. Idempotent: when every
# package is already there it prints one line and touches nothing.
set -euo pipefail

usage() {
	cat <<'USAGE'
usage: hack/deps.sh [--help]

Installs (with apt-get, as root) the Debian 12 packages that `make`, `make test` and the
local cluster need: compilers and sanitizer runtimes, cmake, pkg-config, the C libraries
(libcurl, cJSON, libyaml, protobuf-c, gRPC core, libwebsockets, cmocka), protoc-c,
clang-format, shellcheck, openssl, and the node's runtime pieces (runc, CNI plugins,
iptables, nftables, ipset (the node's kube-router), iproute2, debootstrap, umoci, skopeo).
USAGE
}

case "${1:-}" in
-h | --help)
	usage
	exit 0
	;;
"") ;;
*)
	echo "hack/deps.sh: unknown argument: $1" >&2
	usage >&2
	exit 2
	;;
esac

PACKAGES=(
	build-essential cmake ninja-build pkg-config git curl ca-certificates
	clang clang-format libclang-rt-14-dev llvm
	libcurl4-openssl-dev libcjson-dev libyaml-dev
	libprotobuf-c-dev protobuf-c-compiler protobuf-compiler
	libgrpc-dev libwebsockets-dev libcmocka-dev libssl-dev libnghttp2-dev
	shellcheck openssl jq procps psmisc
	iproute2 iptables nftables ipset conntrack ethtool socat kmod util-linux
	runc containernetworking-plugins debootstrap umoci skopeo patch file
)

missing=()
for p in "${PACKAGES[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		missing+=("$p")
	fi
done

if [ "${#missing[@]}" -eq 0 ]; then
	echo "deps: all ${#PACKAGES[@]} Debian packages present"
	exit 0
fi

# UDF_SANDBOX_NO_BUILD=1 (hack/prereqs.sh --check): only say what is missing.
if [ "${UDF_SANDBOX_NO_BUILD:-0}" = 1 ]; then
	echo "deps: missing packages (${missing[*]}); hack/deps.sh installs them" >&2
	exit 3
fi

if [ "$(id -u)" -ne 0 ]; then
	echo "deps: missing packages (${missing[*]}); run as root" >&2
	exit 1
fi

start=$(date +%s)
echo "deps: installing ${#missing[@]} packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "deps: done in $(($(date +%s) - start))s"
