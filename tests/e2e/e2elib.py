"""What the end-to-end tests share: the system deployed as `make run` deploys it, the outside
host, and the checks that no pod leaked or is owned twice.

The outside host is a network namespace of the test's own (`udf-e2e-<pid>`) joined to this
machine by a veth pair, with OUTSIDE_IP, an address in no cluster range (pods 10.244/16,
Services 10.96/12, the node's 192.0.2.2, the API address 198.18.0.1): routed from the node
like a query node or an object store outside the cluster. It runs outside_server.py (files and
a package index on port 80) and client.py (the query node).
"""

import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))

import wheels  # noqa: E402
from checks import check, failures, finish  # noqa: E402,F401  (re-exported to the tests)
from cluster import cluster_env, kubectl  # noqa: E402

PID = os.getpid()
NETNS = "udf-e2e-%d" % PID
HOST_IP, OUTSIDE_IP, PREFIX = "203.0.113.1", "203.0.113.10", "203.0.113.0/24"
PYTHON = sys.executable
SANDBOX_NS = "udf-sandboxes"
OPERATOR_NS = "udf-system"
FUNCTION_UID = "udf.sandbox.io/function-uid"


def sh(*argv, check=True, timeout=600, env=None):
    return subprocess.run(argv, check=check, capture_output=True, text=True, timeout=timeout, env=env)


def kjson(*args):
    return json.loads(kubectl(*args, "-o", "json").stdout)


def import_files():
    """What the stage holds: a module, a data file, and zip, wheel and egg archives on sys.path;
    plus the package the index serves."""
    egg = wheels.zip_bytes({"eggmod/__init__.py": "NAME = 'egg'\n",
                            "EGG-INFO/PKG-INFO": "Metadata-Version: 1.1\nName: eggmod\nVersion: 1.0\n"})
    return {"helper.py": b"NAME = 'helper'\n",
            "data.txt": b"outside-data\n",
            "zipmod.zip": wheels.zip_bytes({"zipmod.py": "NAME = 'zip'\n"}),
            "whlmod-1.0-py3-none-any.whl": wheels.wheel("whlmod", "1.0", "NAME = 'whl'\n"),
            "eggmod-1.0-py3.12.egg": egg,
            "tinypkg-1.0-py3-none-any.whl": wheels.wheel("tinypkg", "1.0", "VALUE = 'tiny'\n")}


class OutsideHost:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="udf-e2e-files-")
        self.server = None
        self.loads = []  # client_bg processes: none may outlive the outside host
        self.log = os.path.join(self.dir, "server.log")
        self.url = "http://%s" % OUTSIDE_IP

    def __enter__(self):
        host_if, ns_if = "ue%dh" % PID, "ue%do" % PID
        sh("ip", "netns", "add", NETNS)
        try:
            sh("ip", "link", "add", host_if, "type", "veth", "peer", "name", ns_if)
            sh("ip", "link", "set", ns_if, "netns", NETNS)
            sh("ip", "addr", "add", HOST_IP + "/24", "dev", host_if)
            sh("ip", "link", "set", host_if, "up")
            for cmd in (["ip", "link", "set", "lo", "up"], ["ip", "addr", "add", OUTSIDE_IP + "/24", "dev", ns_if],
                        ["ip", "link", "set", ns_if, "up"], ["ip", "route", "add", "default", "via", HOST_IP]):
                sh("ip", "netns", "exec", NETNS, *cmd)
            for name, body in import_files().items():
                with open(os.path.join(self.dir, name), "wb") as f:
                    f.write(body)
            out = open(self.log, "w")
            self.server = subprocess.Popen(["ip", "netns", "exec", NETNS, PYTHON, os.path.join(HERE, "outside_server.py"),
                                            self.dir, OUTSIDE_IP, "80"], stdout=out, stderr=subprocess.STDOUT)
            for _ in range(100):
                if "listening" in open(self.log).read() or self.server.poll() is not None:
                    break
                time.sleep(0.1)
            if "listening" not in open(self.log).read():
                raise RuntimeError("the outside host's server did not start (exit %s): %s"
                                   % (self.server.poll(), open(self.log).read()))
        except BaseException:
            self.__exit__(None, None, None)
            raise
        # A host route left by an outside host that outlived its test would take this one's
        # replies: refuse to start beside it.
        other = [ln for ln in sh("ip", "-o", "addr", "show", "to", HOST_IP + "/32").stdout.splitlines()
                 if "ue%dh" % PID not in ln]
        if other:
            self.__exit__(None, None, None)
            raise RuntimeError("another interface has %s (a leftover outside host?): %s" % (HOST_IP, other))
        return self

    def __exit__(self, *exc):
        for proc in self.loads:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        if self.server:
            self.server.terminate()
            try:
                self.server.wait(10)
            except subprocess.TimeoutExpired:
                self.server.kill()
        sh("ip", "link", "del", "ue%dh" % PID, check=False)  # and its peer in the namespace
        sh("ip", "netns", "del", NETNS, check=False)

    def requests(self):
        return [ln for ln in open(self.log).read().splitlines() if ln.startswith("GET ")]

    def client(self, *args, timeout=600):
        """client.py inside the outside host; returns CompletedProcess (stdout and stderr)."""
        return subprocess.run(["ip", "netns", "exec", NETNS, PYTHON, os.path.join(HERE, "client.py"), *args],
                              capture_output=True, text=True, timeout=timeout)

    def client_bg(self, *args):
        """client.py load in the background: (process, its output file). stop_load() ends it."""
        out = tempfile.NamedTemporaryFile("w+", prefix="udf-e2e-load-", suffix=".jsonl", delete=False)
        args = (*args, "--stop-file", out.name + ".stop")
        proc = subprocess.Popen(["ip", "netns", "exec", NETNS, PYTHON, os.path.join(HERE, "client.py"), *args],
                                stdout=out, stderr=subprocess.STDOUT)
        self.loads.append(proc)
        return proc, out.name


def read_load(path):
    """What a load wrote so far: (statement records, its summary or None, any other lines)."""
    records, summary, other = [], None, []
    for ln in open(path).read().splitlines():
        if ln.startswith("{"):
            rec = json.loads(ln)
            if "summary" in rec:
                summary = rec["summary"]
            else:
                records.append(rec)
        elif ln.strip():
            other.append(ln)
    return records, summary, other


def stop_load(proc, path, timeout=120):
    """Stops the load (it finishes the statements in flight), then read_load()."""
    open(path + ".stop", "w").close()
    late = []
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        late.append("the load did not stop within %d s of its stop file (killed)" % timeout)
    os.unlink(path + ".stop")
    records, summary, other = read_load(path)
    return records, summary, late + other


def deploy():
    """`make run`'s path without following the logs, the gRPC port open to the outside host.
    Returns the gRPC address (the Service's ClusterIP)."""
    env = dict(os.environ, UDF_RUN_FOLLOW="0")
    allowed = json.dumps([{"ipBlock": {"cidr": PREFIX}},
                          {"namespaceSelector": {"matchLabels": {"udf.sandbox.io/query-nodes": "true"}}}])
    r = subprocess.run([os.path.join(ROOT, "hack", "run.sh"), "--", "--set-json", "grpc.allowedFrom=" + allowed],
                       capture_output=True, text=True, env=env, timeout=1800)
    print(r.stdout, flush=True)
    if r.returncode != 0:
        print(r.stderr, flush=True)
        raise RuntimeError("hack/run.sh failed (%d)" % r.returncode)
    # `rollout status` returns once the new replicas are available; the old ones drain for the
    # chart's shutdownDelay after that. Start when only the new ones are left.
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        pods = operator_pods()
        if len(pods) == 2 and not any(p["metadata"].get("deletionTimestamp") for p in pods):
            break
        time.sleep(1)
    ip = kubectl("-n", OPERATOR_NS, "get", "svc", "udf-operator-grpc", "-o", "jsonpath={.spec.clusterIP}").stdout
    return ip + ":50051"


def leader():
    lease = kjson("-n", OPERATOR_NS, "get", "lease", "udf-operator")
    return lease["spec"].get("holderIdentity", "").split("_")[0]


def operator_pods():
    return kjson("-n", OPERATOR_NS, "get", "pods", "-l",
                 "app.kubernetes.io/name=udf-operator,app.kubernetes.io/component=operator")["items"]


def pod_accounting():
    """(claimed pods by function uid, pods whose function is gone, pods two functions publish)."""
    fns = kjson("get", "udffunctions", "-A")["items"]
    uids = {f["metadata"]["uid"] for f in fns}
    pods = kjson("-n", SANDBOX_NS, "get", "pods")["items"]
    claimed, orphans = {}, []
    for p in pods:
        uid = p["metadata"].get("labels", {}).get(FUNCTION_UID)
        if not uid or p["metadata"].get("deletionTimestamp"):
            continue
        claimed.setdefault(uid, []).append(p["metadata"]["name"])
        if uid not in uids:
            orphans.append(p["metadata"]["name"])
    by_ip = {}
    for f in fns:
        ep = f.get("status", {}).get("endpoint", "")
        if ep:
            by_ip.setdefault(ep, []).append(f["metadata"]["namespace"] + "/" + f["metadata"]["name"])
    shared = {ep: names for ep, names in by_ip.items() if len(names) > 1}
    return claimed, orphans, shared


def wait_no_orphans(seconds=90):
    deadline = time.monotonic() + seconds
    while True:
        _, orphans, shared = pod_accounting()
        if (not orphans and not shared) or time.monotonic() > deadline:
            return orphans, shared
        time.sleep(2)


def delete_tenants_of(pred):
    """Deletes the tenant namespaces whose tenant (annotation udf.sandbox.io/tenant) pred
    accepts; their functions' finalizers delete the pods in the pool's namespace."""
    for ns in kjson("get", "namespaces")["items"]:
        tenant = ns["metadata"].get("annotations", {}).get("udf.sandbox.io/tenant", "")
        if tenant and pred(tenant):
            kubectl("delete", "namespace", ns["metadata"]["name"], "--wait=false", check=False)


def operator_rss():
    """Resident memory of each operator replica (bytes), from the node's /proc: the process
    whose cmdline is udf-operator and whose cgroup names the pod's uid."""
    out = {}
    for p in operator_pods():
        uid = p["metadata"]["uid"].replace("-", "_")
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open("/proc/%s/cmdline" % pid, "rb") as f:
                    cmd = f.read().split(b"\0")[0]
                if not cmd.endswith(b"udf-operator"):
                    continue
                with open("/proc/%s/cgroup" % pid) as f:
                    cg = f.read().replace("-", "_")
                if uid not in cg:
                    continue
                with open("/proc/%s/status" % pid) as f:
                    for ln in f:
                        if ln.startswith("VmRSS:"):
                            out[p["metadata"]["name"]] = int(ln.split()[1]) * 1024
            except OSError:
                continue
    return out
