"""The sandbox NetworkPolicy (manifests/50-networkpolicy.yaml) holds on the node: kube-router's
firewall (hack/node.sh) enforces it on real gVisor pods of the worker image.

Three namespaces of the test's own: a sandbox namespace with the policy as the operator stamps
it (the manifest, with this namespace and the operator stand-in's namespace put in), an operator
namespace whose pod is labelled like the operator's, and a namespace without a policy holding a
query-like client and a stand-in for cluster-internal services (a pod listening on 443 and 80,
behind a ClusterIP Service on 443). Beside them: a listener on the node's address on the pod
network (the bridge), a kube-dns-labelled listener in kube-system (the policy's DNS peer), and a
network namespace made by the test at a TEST-NET-2 address, routed from this host only.

First, with no policy, sandbox A reaches everything it will be denied (so each denial below is
the policy's, not a listener's absence). Then with the policy: A reaches neither sandbox B's
Flight, status nor control port, nor the operator's gRPC port, nor the stand-in Service and pod,
the Kubernetes API Service, or the node's address; it reaches DNS, and the netns address on
port 80 (outside every blocked range). The operator's pod reaches the control port, the
query-like pod reaches Flight and status but not control. Last, the blocked ranges are the
policy's `except` list: with the netns address added to it (as a user adds a range), A no longer
reaches it while the query pod still does. No traffic leaves this machine: every target is a
test pod, this host's bridge address, or the test's own network namespace."""

import copy
import json
import os
import socket
import subprocess
import sys
import threading
import time

import yaml

import nodelib as nl
from cluster import SOURCE_DIR, kubectl

MANIFEST = os.path.join(SOURCE_DIR, "manifests", "50-networkpolicy.yaml")
PY = "/opt/udf/venv/bin/python"
BRIDGE = "udfbr0"
NS_LABEL = "kubernetes.io/metadata.name"
# TEST-NET-2 (RFC 5737): no network uses it; the test routes it into its own netns.
NETNS_ADDR, NETNS_PEER = "198.51.100.1", "198.51.100.254"
PID = os.getpid()

# Accepts on each port given and writes "ok" (so a probe knows it reached this listener).
LISTENER = (
    "import socket, sys, threading\n"
    "def serve(port):\n"
    "    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)\n"
    "    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
    "    s.bind(('', port)); s.listen(64)\n"
    "    while True:\n"
    "        c, _ = s.accept()\n"
    "        try: c.sendall(b'ok\\n')\n"
    "        except OSError: pass\n"
    "        c.close()\n"
    "ports = [int(p) for p in sys.argv[1:]]\n"
    "for p in ports[1:]: threading.Thread(target=serve, args=(p,), daemon=True).start()\n"
    "serve(ports[0])\n")

# Connects to each host:port at once; prints {target: open|connected|refused|timeout|error}.
PROBE = (
    "import json, socket, sys, concurrent.futures as cf\n"
    "def probe(t):\n"
    "    h, p = t.rsplit(':', 1)\n"
    "    s = socket.socket(); s.settimeout(3)\n"
    "    try:\n"
    "        s.connect((h, int(p)))\n"
    "        try: return 'open' if s.recv(8).startswith(b'ok') else 'connected'\n"
    "        except OSError: return 'connected'\n"
    "    except ConnectionRefusedError: return 'refused'\n"
    "    except socket.timeout: return 'timeout'\n"
    "    except OSError as e: return 'error %s' % e.errno\n"
    "    finally: s.close()\n"
    "ts = sys.argv[1:]\n"
    "with cf.ThreadPoolExecutor(len(ts)) as ex: print(json.dumps(dict(zip(ts, ex.map(probe, ts)))))\n")


def listener_pod(name, ports, labels, root=False):
    container = {
        "name": "main", "image": nl.WORKER_IMAGE, "imagePullPolicy": "Never",
        "command": [PY, "-c", LISTENER] + [str(p) for p in ports],
        "readinessProbe": {"tcpSocket": {"port": ports[0]}, "periodSeconds": 1},
        "resources": {"requests": {"cpu": "10m", "memory": "64Mi"},
                      "limits": {"memory": "128Mi"}},
    }
    spec = {"runtimeClassName": "gvisor", "automountServiceAccountToken": False,
            "enableServiceLinks": False, "terminationGracePeriodSeconds": 1,
            "containers": [container]}
    # Ports under 1024 (the stand-ins for HTTPS, HTTP and DNS) need root in the pod.
    spec["securityContext"] = {"runAsUser": 0} if root else {"runAsUser": 10001,
                                                             "runAsNonRoot": True}
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": labels}, "spec": spec}


def sandbox_policy(ns, operator_ns, extra_blocked=()):
    """The policy objects the operator stamps into ns (tests/grpc/test_netpol.py checks that it
    does exactly this), as one List, plus extra IPv4 ranges in the blocked list."""
    with open(MANIFEST, encoding="utf-8") as f:
        docs = copy.deepcopy([d for d in yaml.safe_load_all(f) if d])
    peers = []
    for pol in docs:
        pol["metadata"]["namespace"] = ns
        peers += [p for r in pol["spec"].get("ingress", []) for p in r.get("from", [])
                  if NS_LABEL in p.get("namespaceSelector", {}).get("matchLabels", {})]
        for rule in pol["spec"].get("egress", []):
            for to in rule.get("to", []):
                if to.get("ipBlock", {}).get("cidr") == "0.0.0.0/0":
                    to["ipBlock"]["except"] += list(extra_blocked)
    assert len(peers) == 1, peers
    peers[0]["namespaceSelector"]["matchLabels"][NS_LABEL] = operator_ns
    return {"apiVersion": "v1", "kind": "List", "items": docs}


def probe(ns, pod, targets):
    r = kubectl("-n", ns, "exec", pod, "--", PY, "-c", PROBE, *targets, check=False)
    try:
        return json.loads(r.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {t: f"exec failed: {r.stderr.strip()[:200]}" for t in targets}


def wait_probe(ns, pod, target, want_open, timeout=30):
    """Probes until target is open (want_open) or not; the seconds it took, or None."""
    t0 = time.time()
    while time.time() - t0 < timeout:
        got = probe(ns, pod, [target])[target]
        if (got == "open") == want_open:
            return time.time() - t0
        time.sleep(0.5)
    return None


class HostListener:
    """A listener on an address of this host (the bridge), in the test process."""

    def __init__(self, addr, port):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((addr, port))
        self.sock.listen(16)
        self.sock.settimeout(0.5)
        self.stop = False
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while not self.stop:
            try:
                c, _ = self.sock.accept()
            except OSError:
                continue
            try:
                c.sendall(b"ok\n")
            except OSError:
                pass
            c.close()

    def close(self):
        self.stop = True
        self.thread.join()
        self.sock.close()


class TestNetns:
    """A network namespace of the test's own at NETNS_ADDR, routed from this host through a
    veth pair (the host side holds NETNS_PEER/24), with a listener on port 80 in it."""

    def __init__(self):
        self.name = f"udf-np-{PID}"
        self.host_if, self.ns_if = f"np{PID % 100000}h", f"np{PID % 100000}n"
        self.proc = None

    def __enter__(self):
        try:
            self.setup()
        except BaseException:
            self.__exit__()
            raise
        return self

    def setup(self):
        nl.run("ip", "netns", "add", self.name)
        nl.run("ip", "link", "add", self.host_if, "type", "veth", "peer", "name", self.ns_if,
               "netns", self.name)
        nl.run("ip", "addr", "add", f"{NETNS_PEER}/24", "dev", self.host_if)
        nl.run("ip", "link", "set", self.host_if, "up")
        nsx = ("ip", "netns", "exec", self.name)
        nl.run(*nsx, "ip", "addr", "add", f"{NETNS_ADDR}/24", "dev", self.ns_if)
        nl.run(*nsx, "ip", "link", "set", self.ns_if, "up")
        nl.run(*nsx, "ip", "link", "set", "lo", "up")
        nl.run(*nsx, "ip", "route", "add", "default", "via", NETNS_PEER)
        self.proc = subprocess.Popen([*nsx, sys.executable, "-c", LISTENER, "80"])

    def __exit__(self, *exc):
        if self.proc:
            self.proc.kill()
            self.proc.wait()
        nl.run("ip", "link", "delete", self.host_if, check=False)
        nl.run("ip", "netns", "delete", self.name, check=False)


def bridge_address():
    out = nl.run("ip", "-4", "-o", "addr", "show", "dev", BRIDGE, check=False).stdout.split()
    return out[out.index("inet") + 1].split("/")[0] if "inet" in out else None


def show(what, got):
    print(f"     {what}: " + ", ".join(f"{t} {v}" for t, v in got.items()), flush=True)


def main():
    nl.ensure_node(worker_image=True)
    st = nl.run(nl.NODE_SH, "status", check=False).stdout
    if not nl.check(any(ln.startswith("kube-router") and " running " in ln
                        for ln in st.splitlines()),
                    "the node runs kube-router's firewall (hack/node.sh up)"):
        print(st)
        return nl.finish()
    bridge = bridge_address()
    if not nl.check(bridge is not None, f"the node's bridge has an address: {bridge}"):
        return nl.finish()
    dns_pod = f"udf-np-dns-{PID}"
    host = HostListener(bridge, 443)
    try:
        with nl.Namespace("np-ops") as ops, nl.Namespace("np-sbx") as sbx, \
                nl.Namespace("np-query") as qry, TestNetns():
            return run(ops, sbx, qry, bridge, dns_pod)
    finally:
        host.close()
        kubectl("-n", "kube-system", "delete", "pod", dns_pod, "--wait=false",
                "--ignore-not-found", check=False)


def run(ops, sbx, qry, bridge, dns_pod):
    t0 = time.time()
    ops.apply(listener_pod("operator", [50051],
                           {"app.kubernetes.io/name": "udf-operator", "app": "operator"}))
    worker = {"app.kubernetes.io/name": "udf-worker"}
    sbx.apply(listener_pod("sbx-a", [8815, 8080, 9000], {**worker, "app": "sbx-a"}))
    sbx.apply(listener_pod("sbx-b", [8815, 8080, 9000], {**worker, "app": "sbx-b"}))
    qry.apply(listener_pod("query", [8815], {"app": "query"}))
    qry.apply(listener_pod("api", [443, 80], {"app": "api"}, root=True))
    qry.apply({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "api"},
               "spec": {"selector": {"app": "api"}, "ports": [{"port": 443, "targetPort": 443}]}})
    kubectl("-n", "kube-system", "apply", "-f", "-", input=json.dumps(
        listener_pod(dns_pod, [53], {"k8s-app": "kube-dns", "app": dns_pod}, root=True)))
    ready = all([ops.wait_ready("operator", 180), sbx.wait_ready("sbx-a", 180),
                 sbx.wait_ready("sbx-b", 180), qry.wait_ready("query", 180),
                 qry.wait_ready("api", 180)])
    r = kubectl("-n", "kube-system", "wait", "--for=condition=Ready", f"pod/{dns_pod}",
                "--timeout=180s", check=False)
    if not nl.check(ready and r.returncode == 0,
                    f"six gVisor pods of the worker image Ready in {time.time() - t0:.1f} s"):
        return nl.finish()

    def ip(ns, pod):
        return ns.pod(pod)["status"]["podIP"]

    a, b, op, q, api = (ip(sbx, "sbx-a"), ip(sbx, "sbx-b"), ip(ops, "operator"),
                        ip(qry, "query"), ip(qry, "api"))
    dns = json.loads(kubectl("-n", "kube-system", "get", "pod", dns_pod, "-o",
                             "json").stdout)["status"]["podIP"]
    api_svc = qry.kubectl("get", "service", "api", "-o", "jsonpath={.spec.clusterIP}").stdout
    kube_svc = kubectl("-n", "default", "get", "service", "kubernetes", "-o",
                       "jsonpath={.spec.clusterIP}").stdout
    netns = f"{NETNS_ADDR}:80"
    denied = {
        f"{b}:8815": "another sandbox's Flight port",
        f"{b}:8080": "another sandbox's status port",
        f"{b}:9000": "another sandbox's control port",
        f"{op}:50051": "the operator's gRPC port",
        f"{api}:443": "a cluster-internal pod on 443 (the private ranges are blocked)",
        f"{api}:80": "a cluster-internal pod on 80",
        f"{api_svc}:443": "a ClusterIP Service on 443 (stand-in for the Kubernetes API's)",
        f"{bridge}:443": "the node's address (on the pod network) on 443",
    }
    allowed = {f"{dns}:53": "DNS (kube-dns in kube-system)", netns: "an address outside the "
               "blocked ranges, on port 80"}

    # ---- no policy yet: everything is reachable, so each denial below is the policy's ----
    got = probe(sbx.name, "sbx-a", list(denied) + list(allowed))
    show("sandbox A, no policy", got)
    nl.check(all(v == "open" for v in got.values()),
             "without a policy sandbox A reaches every target (the listeners work)")

    # ---- the sandbox policy, as the operator stamps it ----
    sbx.apply(sandbox_policy(sbx.name, ops.name))
    took = wait_probe(sbx.name, "sbx-a", f"{b}:9000", want_open=False)
    nl.check(took is not None, f"kube-router applies the policy: A -> B:9000 closed "
             f"{took if took is None else round(took, 1)} s after the policy was created")
    took = wait_probe(sbx.name, "sbx-a", f"{api}:443", want_open=False)
    nl.check(took is not None, f"A -> a cluster-internal pod on 443 closed within 30 s: {took}")
    kube = f"{kube_svc}:443"
    got = probe(sbx.name, "sbx-a", list(denied) + list(allowed) + [kube])
    show("sandbox A, policy", got)
    for t, what in denied.items():
        nl.check(got[t] != "open", f"a sandbox cannot reach {what} ({t}): {got[t]}")
    # This cluster's apiserver listens on loopback and its Service has no endpoints: it is
    # unreachable from any pod, and the stand-in Service above is the real check.
    nl.check(got[kube] != "open", f"a sandbox cannot reach the Kubernetes API Service ({kube}): "
             f"{got[kube]}")
    for t, what in allowed.items():
        nl.check(got[t] == "open", f"a sandbox reaches {what} ({t}): {got[t]}")

    got = probe(ops.name, "operator", [f"{a}:9000", f"{a}:8815"])
    show("operator", got)
    nl.check(got[f"{a}:9000"] == "open", f"the operator's pod reaches the control port: "
             f"{got[f'{a}:9000']}")
    controls = [f"{a}:8815", f"{a}:8080", f"{a}:9000", f"{op}:50051", f"{api_svc}:443",
                f"{bridge}:443", netns]
    got = probe(qry.name, "query", controls)
    show("query-like pod", got)
    nl.check(got[f"{a}:8815"] == "open", f"a query-like pod reaches Flight: {got[f'{a}:8815']}")
    nl.check(got[f"{a}:8080"] == "open", f"a query-like pod reaches status: {got[f'{a}:8080']}")
    nl.check(got[f"{a}:9000"] != "open",
             f"a query-like pod cannot reach the control port: {got[f'{a}:9000']}")
    nl.check(all(got[t] == "open" for t in controls[3:]),
             "pods without the policy reach the operator, the Service, the node and the netns "
             "address (what the sandbox is denied is denied by its policy)")

    # ---- the blocked ranges are the except list: add one of the test's own addresses ----
    t1 = time.time()
    sbx.apply(sandbox_policy(sbx.name, ops.name, extra_blocked=[f"{NETNS_ADDR}/32"]))
    took = wait_probe(sbx.name, "sbx-a", netns, want_open=False)
    nl.check(took is not None, f"with {NETNS_ADDR}/32 added to the policy's except list the "
             f"sandbox no longer reaches it ({time.time() - t1:.1f} s)")
    got = probe(qry.name, "query", [netns])
    nl.check(got[netns] == "open", f"the query pod still reaches it: {got[netns]}")
    got = probe(sbx.name, "sbx-a", [f"{dns}:53"])
    nl.check(got[f"{dns}:53"] == "open", f"and the sandbox still reaches DNS: {got}")
    return nl.finish()


if __name__ == "__main__":
    sys.exit(main())
