"""hack/node.sh down then up, twice, with a gVisor and a runc pod running each time: after
every down, nothing of the node is left on the host (processes, mounts, network namespaces,
iptables chains and rules, kube-router's chains and ipsets, the bridge, sysctl changes, cgroups,
directories), judged against the host snapshot node.sh took before it changed anything; after
every up the node is Ready again, runs pods, and kube-router enforces a NetworkPolicy (its
chains and ipsets exist, so that their removal is seen). Under CI (CI=true) a full hack/cluster.sh down/up cycle follows.

First, the packet-filter restore alone (hack/lib/iptables.sh) runs in a network namespace of the
test's own that starts with no table at all, like a fresh machine's host: what the kubelet adds
there (KUBE-FIREWALL, its jumps, the localnet DROP, the canaries) must be gone afterwards, tables
included, whatever tables this host already has."""

import os
import re
import subprocess
import sys
import time

import nodelib as nl
from cluster import SOURCE_DIR, cluster_env, kubectl

CLUSTER_SH = os.path.join(SOURCE_DIR, "hack", "cluster.sh")
OUR_MARKS = ("KUBE-", "CNI-", "udfbr0", "10.244.")
NETNS_DIR = "/run/netns"


def state_dir():
    return cluster_env("state")


def read(path, default=""):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return default


def snapshot():
    """node.sh's record of the host as it found it."""
    host = os.path.join(state_dir(), "node", "host")
    snap = {name: read(os.path.join(host, name)) for name in
            ("sysctls", "iptables", "ip6tables", "netns", "mounts", "cgroups", "paths", "ipsets")}
    snap["nft-tables"] = read(os.path.join(host, "nft-tables"), None)
    return snap if read(os.path.join(host, "done"), None) is not None else None


def our_processes():
    marks = (os.path.join(state_dir(), "node") + "/", "/run/udf-sandbox/")
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        cmd = read(f"/proc/{pid}/cmdline").replace("\0", " ")
        if any(m in cmd for m in marks):
            found.append(f"{pid} {cmd[:120]}")
    return found


def chains(save_output):
    table, out = "", set()
    for line in save_output.splitlines():
        if line.startswith("*"):
            table = line[1:]
        elif line.startswith(":"):
            out.add((table, line[1:].split()[0]))
    return out


def tables(save_output):
    return {line[1:] for line in save_output.splitlines() if line.startswith("*")}


# The control plane's own rule (hack/cluster.sh: its API address answers this host and its
# pods only) stays while the control plane runs; node.sh does not own it.
CONTROL_PLANE_MARK = "udf-sandbox apiserver"


def our_rules(save_output):
    return [ln for ln in save_output.splitlines()
            if ln.startswith("-A") and any(m in ln for m in OUR_MARKS)
            and CONTROL_PLANE_MARK not in ln]


KUBE_ROUTER_CHAINS = ("KUBE-ROUTER-", "KUBE-POD-FW-", "KUBE-NWPLCY-")
KUBE_ROUTER_SETS = ("KUBE-SRC-", "KUBE-DST-", "TMP-", "inet6:")


def ipsets():
    r = subprocess.run(["ipset", "list", "-n"], capture_output=True, text=True)
    if not nl.check(r.returncode == 0, f"ipset list works (hack/deps.sh installs ipset): "
                    f"{r.stderr.strip()}"):
        return set()
    return set(r.stdout.split())


def kube_router_state():
    """kube-router's filter chains and ipsets on the host now."""
    now = subprocess.run(["iptables-save", "-t", "filter"], capture_output=True, text=True).stdout
    ch = sorted(c for _, c in chains(now) if c.startswith(KUBE_ROUTER_CHAINS))
    return ch, sorted(s for s in ipsets() if s.startswith(KUBE_ROUTER_SETS))


def nft_tables():
    r = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True)
    if not nl.check(r.returncode == 0, f"nft list tables works (hack/deps.sh installs nftables): "
                    f"{r.stderr.strip()}"):
        return set()
    return set(r.stdout.splitlines())


def check_fw_restore_in_netns():
    """hack/lib/iptables.sh's snapshot and restore, in a fresh network namespace (no table)."""
    lib = os.path.join(SOURCE_DIR, "hack", "lib")
    script = f"""set -euo pipefail
source {lib}/common.sh
source {lib}/iptables.sh
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
fw_snapshot "$d"
for ipt in iptables ip6tables; do
    $ipt -w -N KUBE-FIREWALL
    $ipt -w -I INPUT -j KUBE-FIREWALL
    $ipt -w -I OUTPUT -j KUBE-FIREWALL
    for t in mangle nat filter; do $ipt -w -t $t -N KUBE-KUBELET-CANARY; done
    $ipt -w -t nat -N KUBE-SERVICES
    $ipt -w -t nat -A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
done
iptables -w -A KUBE-FIREWALL ! -s 127.0.0.0/8 -d 127.0.0.0/8 \
    -m comment --comment "block incoming localnet connections" \
    -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP
echo "before: $(iptables-save | grep -c '^-A') iptables rules"
fw_restore "$d"
echo '--- iptables'; iptables-save | grep -v '^#' || true
echo '--- ip6tables'; ip6tables-save | grep -v '^#' || true
echo '--- nft'; nft list tables
"""
    r = subprocess.run(["unshare", "--net", "bash", "-c", script], capture_output=True, text=True)
    out = r.stdout
    added = "before: 4 iptables rules" in out
    left = "".join(out.partition("--- iptables")[1:]).strip().splitlines()
    left = [ln for ln in left if not ln.startswith("---")]
    nl.check(r.returncode == 0 and added and not left,
             f"fresh netns: the kubelet's rules, chains and tables all removed: "
             f"rc={r.returncode} added={added} "
             f"left={[ln for ln in left if ln.startswith(('*', '-A', 'table'))][:8]} "
             f"{r.stderr[-300:]}")


def check_host_restored(snap, cycle):
    p = f"down #{cycle}: "
    nl.check(not our_processes(), p + f"no process of the node left: {our_processes()[:3]}")
    mounts = subprocess.run(["findmnt", "-rn", "-o", "TARGET"], capture_output=True,
                            text=True).stdout.split("\n")
    prefixes = (os.path.join(state_dir(), "node") + "/", "/run/udf-sandbox", "/run/containerd")
    left = [m for m in mounts if m.startswith(prefixes)]
    nl.check(not left, p + f"no mount of the node left: {left[:3]}")
    before = set(snap["netns"].split())
    netns = [n for n in (os.listdir(NETNS_DIR) if os.path.isdir(NETNS_DIR) else [])
             if n.startswith("cni-") and n not in before]
    nl.check(not netns, p + f"no CNI network namespace left: {netns[:3]}")
    for save, name, family in (("iptables-save", "iptables", "ip"),
                               ("ip6tables-save", "ip6tables", "ip6")):
        now = subprocess.run([save], capture_output=True, text=True).stdout
        extra = tables(now) - tables(snap[name])
        nl.check(not extra, p + f"{name}: no table added: {sorted(extra)}")
        extra = chains(now) - chains(snap[name])
        nl.check(not extra, p + f"{name}: no chain added: {sorted(extra)[:8]}")
        nl.check(not our_rules(now), p + f"{name}: no rule of ours: {our_rules(now)[:6]}")
    # nftables as a whole (iptables-nft's tables and any native one, e.g. kube-proxy's). A
    # snapshot from before nft-tables was recorded: iptables-nft's tables are what it had.
    had = snap["nft-tables"]
    if had is None:
        had = "\n".join([f"table ip {t}" for t in tables(snap["iptables"])] +
                        [f"table ip6 {t}" for t in tables(snap["ip6tables"])])
    extra = nft_tables() - set(had.splitlines())
    nl.check(not extra, p + f"nftables: no table added: {sorted(extra)}")
    extra = ipsets() - set(snap["ipsets"].split())
    nl.check(not extra, p + f"no ipset added: {sorted(extra)[:8]}")
    # By name, whatever the snapshot holds: only node.sh runs kube-router on this host.
    ch, sets = kube_router_state()
    nl.check(not ch, p + f"no kube-router chain left: {ch[:6]}")
    nl.check(not sets, p + f"no kube-router ipset left: {sets[:6]}")
    link = subprocess.run(["ip", "link", "show", "udfbr0"], capture_output=True)
    nl.check(link.returncode != 0, p + "bridge udfbr0 removed")
    changed = []
    for line in snap["sysctls"].splitlines():
        key, _, value = line.partition("=")
        now = read("/proc/sys/" + key.replace(".", "/")).strip()
        if now.split() != value.split():
            changed.append(f"{key}={now} (was {value})")
    nl.check(snap["sysctls"] and not changed, p + f"sysctls as found: {changed}")
    cg = []
    for hier in os.listdir("/sys/fs/cgroup"):
        d = os.path.join("/sys/fs/cgroup", hier, "kubepods")
        if os.path.isdir(d) and d not in snap["cgroups"].split("\n"):
            cg.append(d)
    nl.check(not cg, p + f"no kubepods cgroup left: {cg[:3]}")
    had = set(snap["paths"].split())
    paths = [q for q in ("/run/containerd", "/run/udf-sandbox", "/var/lib/cni", "/var/lib/kubelet",
                         "/var/log/containers", "/var/log/pods", "/etc/cni")
             if os.path.exists(q) and q not in had]
    nl.check(not paths, p + f"no directory of the node left: {paths}")
    nl.check(not os.path.exists(os.path.join(state_dir(), "node")), p + "node state removed")


# A policy for the pods, so that kube-router makes its per-pod chains and its ipsets.
POLICY = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
          "metadata": {"name": "only-gv"},
          "spec": {"podSelector": {}, "policyTypes": ["Ingress"],
                   "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "gv"}}}]}]}}


def run_pods(cycle):
    with nl.Namespace(f"node-cycle{cycle}") as ns:
        ns.apply(nl.pod_manifest("gv", "localhost/pause:dev", runtime_class="gvisor"))
        ns.apply(nl.pod_manifest("rc", "localhost/pause:dev"))
        ns.apply(POLICY)
        ok = ns.wait_ready("gv") and ns.wait_ready("rc")
        nl.check(ok, f"up #{cycle}: a gVisor and a runc pod Ready")
        deadline = time.time() + 30
        while True:
            ch, sets = kube_router_state()
            if any(c.startswith("KUBE-POD-FW-") for c in ch) and sets or time.time() > deadline:
                break
            time.sleep(0.5)
        nl.check(any(c.startswith("KUBE-POD-FW-") for c in ch) and sets,
                 f"up #{cycle}: kube-router enforces the pods' policy: chains {ch[:4]}..., "
                 f"ipsets {sets[:3]}...")
        # Leave them running: down must clean up after live pods.
        return ns.name


def main():
    check_fw_restore_in_netns()
    nl.ensure_node()
    for cycle in (1, 2):
        run_pods(cycle)
        snap = snapshot()
        if not nl.check(snap is not None, f"cycle {cycle}: node.sh recorded the host state"):
            break
        t0 = time.time()
        r = subprocess.run([nl.NODE_SH, "down"], capture_output=True, text=True)
        nl.check(r.returncode == 0, f"down #{cycle} in {time.time() - t0:.1f}s: {r.stderr[-300:]}")
        check_host_restored(snap, cycle)
        t0 = time.time()
        r = subprocess.run([nl.NODE_SH, "up"], capture_output=True, text=True)
        nl.check(r.returncode == 0, f"up #{cycle} in {time.time() - t0:.1f}s: {r.stderr[-300:]}")
        st = subprocess.run([nl.NODE_SH, "status"], capture_output=True, text=True)
        nl.check(st.returncode == 0 and "Ready; runtime handlers: runc runsc" in st.stdout,
                 f"up #{cycle}: status shows Ready and handlers runc runsc")
        nl.check(re.search(r"^kube-router +running", st.stdout, re.M) is not None,
                 f"up #{cycle}: kube-router runs: {st.stdout.strip()[:400]}")
        rc = kubectl("get", "runtimeclass", "gvisor", "-o", "jsonpath={.handler}", check=False)
        nl.check(rc.stdout == "runsc", f"up #{cycle}: RuntimeClass gvisor -> runsc")
    run_pods(3)
    if os.environ.get("CI") == "true":
        snap = snapshot()
        r = subprocess.run([CLUSTER_SH, "down"], capture_output=True, text=True)
        nl.check(r.returncode == 0, "hack/cluster.sh down")
        check_host_restored(snap, "cluster")
        r = subprocess.run([CLUSTER_SH, "up"], capture_output=True, text=True)
        nl.check(r.returncode == 0, f"hack/cluster.sh up (with the node): {r.stderr[-300:]}")
        st = subprocess.run([CLUSTER_SH, "status"], capture_output=True, text=True)
        nl.check("Ready; runtime handlers: runc runsc" in st.stdout,
                 "hack/cluster.sh status shows the node Ready with runc and runsc")
    return nl.finish()


if __name__ == "__main__":
    sys.exit(main())
