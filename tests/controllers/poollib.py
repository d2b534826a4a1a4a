"""Helpers for the UdfWarmPool controller's tests: the cluster with its node and the worker
image, a namespace of the test's own, the real operator reconciling only the test's pools
(--pool-selector), and a watch of the test's own that counts every pod the API server saw
created."""

import hashlib
import hmac
import base64
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))

from cluster import (IMAGE_SH, NODE_SH, SOURCE_DIR, Namespace,  # noqa: E402,F401
                     cluster_env, ensure_node as ensure_cluster_node, kubectl, kubectl_path)
from udfop import OperatorProcess, wait_for  # noqa: E402
from checks import check, failures, finish  # noqa: E402,F401  (re-exported to the tests)

WORKER_IMAGE = "localhost/udf-worker:dev"  # replaced by a private tag in ensure_node()
CONTAINERD_SOCK = "/run/udf-sandbox/containerd/containerd.sock"
RUN_ID = f"t{os.getpid()}"
POOL_LABEL = "udf-test-run"


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def ensure_node(worker_image=True):
    """The cluster and its node (cluster.ensure_node) with the CRDs; with worker_image, the
    worker image from bin/udf-worker built, imported, and tagged with a name of this binary's
    own (WORKER_IMAGE): other worktrees rebuild localhost/udf-worker:dev from their own workers
    at any time, and a pool must not change images under a running test. Returns the admin
    kubeconfig."""
    global WORKER_IMAGE
    kubeconfig = ensure_cluster_node(worker_image)
    # A cluster remade by an earlier test (node_down_up) has no CRDs yet.
    k("apply", "--server-side", "--force-conflicts", "-f", os.path.join(SOURCE_DIR, "crds"))
    k("wait", "--for", "condition=Established", "--timeout=60s",
      "crd/udfwarmpools.udf.sandbox.io", "crd/udffunctions.udf.sandbox.io")
    if worker_image:
        with open(os.path.join(SOURCE_DIR, "bin", "udf-worker"), "rb") as f:
            tag = hashlib.sha256(f.read()).hexdigest()[:12]
        private = f"localhost/udf-worker:pool-test-{tag}"
        subprocess.run([os.path.join(cluster_env("bin"), "ctr"), "--address", CONTAINERD_SOCK,
                        "-n", "k8s.io", "images", "tag", "--force",
                        "localhost/udf-worker:dev", private], check=True, capture_output=True)
        WORKER_IMAGE = private
        log(f"worker image {private}")
    return kubeconfig


def k(*args, check=True, input=None):
    out = kubectl(*args, check=False, input=input)
    if check and out.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)}: {out.stderr.strip()}")
    return out


def kjson(*args):
    return json.loads(k(*args, "-o", "json").stdout)


def pool_manifest(name, replicas, image=None, runtime_class=None, node_selector=None,
                  readiness_timeout=None, refill=None, pull_policy="IfNotPresent"):
    runtime = {"image": image or WORKER_IMAGE, "imagePullPolicy": pull_policy}
    if runtime_class:
        runtime["runtimeClassName"] = runtime_class
    if node_selector:
        runtime["nodeSelector"] = node_selector
    spec = {"replicas": replicas, "runtime": runtime}
    if readiness_timeout:
        spec["readinessTimeoutSeconds"] = readiness_timeout
    if refill:
        spec["refill"] = refill
    return {"apiVersion": "udf.sandbox.io/v1alpha1", "kind": "UdfWarmPool",
            "metadata": {"name": name, "labels": {POOL_LABEL: RUN_ID}}, "spec": spec}


def apply(ns, manifest):
    return k("-n", ns, "apply", "-f", "-", input=json.dumps(manifest))


def apply_raw(manifest):
    """Applies a cluster-scoped object (or one whose manifest names its namespace)."""
    return k("apply", "-f", "-", input=json.dumps(manifest))


def operator(kubeconfig, *extra):
    """The real operator, reconciling only this run's pools and the UdfFunctions of this run's
    namespaces (labelled POOL_LABEL=RUN_ID; the pool tests label none, so their operator
    leaves every function of the shared cluster alone)."""
    return OperatorProcess(kubeconfig, "--pool-selector", f"{POOL_LABEL}={RUN_ID}",
                           "--function-namespace-selector", f"{POOL_LABEL}={RUN_ID}", *extra)


def pool(ns, name):
    return kjson("-n", ns, "get", "udfwarmpool", name)


def condition(obj, ctype):
    for c in obj.get("status", {}).get("conditions", []):
        if c.get("type") == ctype:
            return c
    return {}


def pods(ns, pool_name):
    """The pool's pods, every state."""
    return kjson("-n", ns, "get", "pods", "-l", f"udf.sandbox.io/pool={pool_name}")["items"]


def is_ready(p):
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in p.get("status", {}).get("conditions", []))


def idle(ns, pool_name):
    """Idle pods not terminating."""
    return [p for p in pods(ns, pool_name)
            if not p["metadata"].get("deletionTimestamp")
            and p["metadata"]["labels"].get("udf.sandbox.io/state") == "idle"]


def wait_ready_idle(ns, pool_name, n, timeout):
    """Waits until exactly n idle pods exist, all Ready, none terminating; returns them."""
    def done():
        ps = pods(ns, pool_name)
        live = [p for p in ps if not p["metadata"].get("deletionTimestamp")]
        if len(ps) == n and len(live) == n and all(is_ready(p) for p in live):
            return (live,)  # truthy even when n is 0
        return None
    return wait_for(done, timeout, interval=1, what=f"{n} Ready idle pods of {pool_name}")[0]


def metrics(op):
    with urllib.request.urlopen(f"http://{op.http_address}/metrics", timeout=5) as r:
        return r.read().decode()


def control_token(ns, pool_name, pod_name):
    """The token the operator derives for a pod: hex HMAC-SHA256(pool key, pod name)."""
    secret = kjson("-n", ns, "get", "secret", f"{pool_name}-control-key")
    key = base64.b64decode(secret["data"]["key"])
    return hmac.new(key, pod_name.encode(), hashlib.sha256).hexdigest()


class CreateWatch:
    """Counts every pod the API server saw created in a namespace (by uid), through a watch
    of the test's own (kubectl --watch), so the operator's own counting is not trusted."""

    def __init__(self, ns):
        self.ns = ns
        self.created = {}  # uid -> (name, monotonic time seen)
        self.lock = threading.Lock()
        self.proc = None
        self.thread = None

    def __enter__(self):
        self.proc = subprocess.Popen(
            [kubectl_path(), "--kubeconfig", cluster_env("kubeconfig"), "-n",
             self.ns, "get", "pods", "--watch", "--output-watch-events", "-o", "json"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()
        time.sleep(1)  # the watch is established before anything is created
        return self

    def _read(self):
        dec = json.JSONDecoder()
        buf = ""
        for line in self.proc.stdout:
            buf += line
            while True:
                s = buf.lstrip()
                if not s:
                    buf = ""
                    break
                try:
                    ev, end = dec.raw_decode(s)
                except ValueError:
                    break
                buf = s[end:]
                obj = ev.get("object", {})
                uid = obj.get("metadata", {}).get("uid")
                if uid and ev.get("type") in ("ADDED", "MODIFIED", "DELETED"):
                    with self.lock:
                        self.created.setdefault(uid, (obj["metadata"]["name"], time.monotonic()))

    def count(self, since=None):
        with self.lock:
            return sum(1 for _, t in self.created.values() if since is None or t >= since)

    def __exit__(self, *exc):
        self.proc.terminate()
        self.proc.wait()
