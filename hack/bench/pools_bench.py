"""Warm pool numbers for hack/bench/pools.sh, against the real operator and node:
- empty pool -> N Ready pods (N = 1, 5, 10) under each runtime class: p50 of create -> Ready
  per pod (times from a watch of this script's own: ADDED, then Ready=True), the whole fill
  (apply -> all N Ready), and the pool controller's API requests per pod created (its
  udf_pool_api_requests_total: creates, status patches, Events, the key Secret);
- the operator's RSS with F UdfFunctions and P pods in its caches (synthesized: the pods have
  a node selector no node matches, so they stay Pending and cost the node nothing), beside
  the bytes of their JSON (as the API serves it, and without managedFields, which the
  informers drop).
Prints one JSON line per result."""

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import node_bench  # noqa: E402  (the API client from the admin kubeconfig)

LABEL = "udf-bench-run"


class Watch:
    """Client-side times of each pod's ADDED and first Ready=True event."""

    def __init__(self, kubectl, kubeconfig, ns):
        self.added, self.ready = {}, {}
        self.lock = threading.Lock()
        self.proc = subprocess.Popen(
            [kubectl, "--kubeconfig", kubeconfig, "-n", ns, "get", "pods", "--watch",
             "--output-watch-events", "-o", "json"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        threading.Thread(target=self._read, daemon=True).start()
        time.sleep(1)

    def _read(self):
        dec, buf = json.JSONDecoder(), ""
        for line in self.proc.stdout:
            buf += line
            while True:
                s = buf.lstrip()
                try:
                    ev, end = dec.raw_decode(s)
                except ValueError:
                    break
                buf = s[end:]
                now = time.monotonic()
                obj = ev.get("object", {})
                name = obj.get("metadata", {}).get("name")
                ready = any(c.get("type") == "Ready" and c.get("status") == "True"
                            for c in obj.get("status", {}).get("conditions", []))
                with self.lock:
                    if ev.get("type") == "ADDED":
                        self.added.setdefault(name, now)
                    if ready:
                        self.ready.setdefault(name, now)

    def ready_count(self, names=None):
        with self.lock:
            return len([n for n in self.ready if names is None or n in names])

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


def kubectl(a, *args, input=None, check=True):
    return subprocess.run([a.kubectl, "--kubeconfig", a.kubeconfig, *args], input=input,
                          capture_output=True, text=True, check=check)


def start_operator(a, *extra):
    port = node_bench_free_port()
    log = open(os.path.join(a.workdir, f"operator-{port}.log"), "w")
    proc = subprocess.Popen([a.operator, "--kubeconfig", a.kubeconfig, "--grpc-bind-address",
                             "127.0.0.1:0", "--health-bind-address", f"127.0.0.1:{port}",
                             *extra], stdout=log, stderr=subprocess.STDOUT)
    return proc, port


def node_bench_free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def metric(port, name):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                return float(line.rsplit(" ", 1)[1])
    return 0.0


def wait(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.2)
    raise SystemExit(f"timed out waiting for {what}")


def pods_in(a):
    out = kubectl(a, "-n", a.namespace, "get", "pods", "-o", "json")
    return json.loads(out.stdout)["items"]


def fill(a, runtime):
    proc, port = start_operator(a, "--allowed-runtime-classes", "gvisor,runc", "--pool-selector",
                                f"{LABEL}={os.getpid()}")
    try:
        time.sleep(1)
        for n in a.sizes:
            w = Watch(a.kubectl, a.kubeconfig, a.namespace)
            pool = f"fill-{runtime}-{n}"
            manifest = {"apiVersion": "udf.sandbox.io/v1alpha1", "kind": "UdfWarmPool",
                        "metadata": {"name": pool, "labels": {LABEL: str(os.getpid())}},
                        "spec": {"replicas": n, "refill": {"maxPodsPerSecond": 20,
                                                           "maxInFlight": 20},
                                 "runtime": {"image": a.image, "imagePullPolicy": "IfNotPresent",
                                             "runtimeClassName": runtime}}}
            req0 = metric(port, "udf_pool_api_requests_total")
            t0 = time.monotonic()
            kubectl(a, "-n", a.namespace, "apply", "-f", "-", input=json.dumps(manifest))
            wait(lambda: w.ready_count() >= n, 600, f"{n} Ready pods under {runtime}")
            whole = time.monotonic() - t0
            time.sleep(2)  # the status patch that reports them Ready
            reqs = metric(port, "udf_pool_api_requests_total") - req0
            created = metric(port, f'udf_pool_pods_created_total{{namespace="{a.namespace}",'
                             f'pool="{pool}"}}') or n
            with w.lock:
                per_pod = [w.ready[p] - w.added[p] for p in w.ready if p in w.added]
            w.stop()
            print(json.dumps({"what": "fill", "runtime": runtime, "pods": n,
                              "pod_ready_p50_ms": round(statistics.median(per_pod) * 1000),
                              "whole_ms": round(whole * 1000),
                              "api_requests_per_pod": round(reqs / created, 2)}), flush=True)
            kubectl(a, "-n", a.namespace, "delete", "udfwarmpool", pool, "--wait=false")
            wait(lambda: not pods_in(a), 300, "the pool's pods to go")
    finally:
        proc.terminate()
        proc.wait()


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def settle(pid, quiet_s=5, timeout=600):
    """RSS once it has not grown for quiet_s."""
    last, since = rss_kib(pid), time.monotonic()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(1)
        now = rss_kib(pid)
        if now > last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            return last
    return last


def function(i):
    return {"apiVersion": "udf.sandbox.io/v1alpha1", "kind": "UdfFunction",
            "metadata": {"name": f"bench-fn-{i}", "labels": {LABEL: str(os.getpid())},
                         "annotations": {"udf.sandbox.io/tenant": "bench"}},
            "spec": {"functionName": f"fn_{i}", "handler": f"fn_{i}",
                     "inputTypes": ["INT NULL"], "resultType": "INT NULL",
                     "runtimeVersion": "3.12",
                     "code": f"def fn_{i}(x: int) -> int:\n    return x + {i}\n",
                     "poolRef": {"name": "default"}, "replicas": 0}}


def pending_pod(i):
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"bench-pod-{i}",
                         "labels": {"app.kubernetes.io/managed-by": "udf-operator",
                                    "app.kubernetes.io/name": "udf-worker",
                                    "udf.sandbox.io/pool": "bench-no-such-pool",
                                    "udf.sandbox.io/state": "idle", LABEL: str(os.getpid())}},
            "spec": {"nodeSelector": {"udf.sandbox.io/no-such-node": "x"},
                     "automountServiceAccountToken": False, "enableServiceLinks": False,
                     "containers": [{"name": "worker", "image": "localhost/pause:dev",
                                     "resources": {"requests": {"cpu": "1m"}}}]}}


def caches(a):
    server, opener = node_bench.client(a.kubectl, a.kubeconfig)
    proc, port = start_operator(a)
    try:
        time.sleep(3)
        base = settle(proc.pid)
        ns = a.namespace

        def create(path, obj):
            for attempt in range(5):
                try:
                    node_bench.request(server, opener, "POST", path, obj).close()
                    return
                except Exception:
                    time.sleep(0.5 * (attempt + 1))
            raise SystemExit(f"cannot create {obj['metadata']['name']}")

        t0 = time.monotonic()
        with ThreadPoolExecutor(8) as ex:
            list(ex.map(lambda i: create(f"/api/v1/namespaces/{ns}/pods", pending_pod(i)),
                        range(a.cache_pods)))
            list(ex.map(lambda i: create(
                f"/apis/udf.sandbox.io/v1alpha1/namespaces/{ns}/udffunctions", function(i)),
                range(a.functions)))
        created_s = time.monotonic() - t0
        full = settle(proc.pid)
        sizes = {"raw": 0, "no_managed_fields": 0}
        for path in (f"/api/v1/namespaces/{ns}/pods",
                     f"/apis/udf.sandbox.io/v1alpha1/namespaces/{ns}/udffunctions"):
            with node_bench.request(server, opener, "GET", path, timeout=120) as r:
                items = json.loads(r.read())["items"]
            for it in items:
                sizes["raw"] += len(json.dumps(it, separators=(",", ":")))
                it["metadata"].pop("managedFields", None)
                sizes["no_managed_fields"] += len(json.dumps(it, separators=(",", ":")))
        print(json.dumps({"what": "rss", "functions": a.functions, "pods": a.cache_pods,
                          "rss_before_kib": base, "rss_after_kib": full,
                          "json_bytes": sizes["raw"],
                          "json_bytes_without_managed_fields": sizes["no_managed_fields"],
                          "create_s": round(created_s, 1)}), flush=True)
    finally:
        proc.terminate()
        proc.wait()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--kubectl", required=True)
    p.add_argument("--kubeconfig", required=True)
    p.add_argument("--operator", required=True)
    p.add_argument("--namespace", required=True)
    p.add_argument("--image", required=True)
    p.add_argument("--workdir", required=True)
    p.add_argument("--sizes", default="1,5,10")
    p.add_argument("--runtimes", default="gvisor,runc")
    p.add_argument("--functions", type=int, default=10000)
    p.add_argument("--cache-pods", type=int, default=1000)
    p.add_argument("--skip-fill", action="store_true")
    p.add_argument("--skip-rss", action="store_true")
    a = p.parse_args()
    a.sizes = [int(x) for x in a.sizes.split(",")]
    if not a.skip_fill:
        for rt in a.runtimes.split(","):
            fill(a, rt)
    if not a.skip_rss:
        caches(a)


if __name__ == "__main__":
    main()
