"""Function numbers for hack/bench/functions.sh, against the real operator, node and worker,
under each runtime class (gvisor = runsc, runc):
- a gRPC ApplyUdfResource of a new UDF with a warm pool -> its answer (the endpoint), p50/p99;
- the same call -> the first correct Flight answer from that endpoint (the warm claim, the
  specialization, Databend's retries of a refused connection), p50/p99;
- cold start (an empty pool): kubectl apply of a function -> first correct answer;
- a burst of distinct functions as large as the pool, all called at once: call -> first
  correct answer, p50/p90;
- the function controller's API requests per claim (udf_function_api_requests_total).
Prints one JSON line per result."""

import argparse
import hashlib
import json
import os
import re
import statistics
import sys
import threading
import time
import urllib.request

root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(root, "tests", "lib"))
sys.path.insert(0, os.path.join(root, "tests", "controllers"))
import grpc  # noqa: E402

import fnlib as fl  # noqa: E402
import poollib as pl  # noqa: E402
from stubs import load  # noqa: E402
from udfop import OperatorProcess, wait_for  # noqa: E402

udf_pb2, udf_pb2_grpc = load("udf")


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))] if xs else 0


def metric(op, name):
    with urllib.request.urlopen(f"http://{op.http_address}/metrics", timeout=5) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    return 0.0


def tenant_namespace(prefix, tenant):
    readable = re.sub(r"[^a-z0-9]+", "-", tenant.lower()).strip("-")
    return f"{prefix}{readable}-{hashlib.sha256(tenant.encode()).hexdigest()[:10]}"


def first_answer(endpoint, handler, token, tenant, want, t0, limit=30):
    while time.monotonic() - t0 < limit:
        try:
            if fl.call(endpoint, handler, [1], token, tenant, timeout=5) == want:
                return time.monotonic() - t0
        except Exception:  # noqa: BLE001 - refused while specializing: retry like Databend
            time.sleep(0.01)
    return None


def spec(handler, k):
    return json.dumps({"version": 1, "kind": "udf", "language": "python", "handler": handler,
                       "input_types": ["INT NULL"], "result_type": "INT NULL", "imports": [],
                       "packages": [], "runtime_version": "3.12.2",
                       "code": f"def {handler}(x: int) -> int:\n    return x + {k}\n"},
                      separators=(",", ":"))


def md(tenant):
    return [("x-databend-tenant", tenant), ("x-databend-user", "'root'@'%'"),
            ("x-databend-query-id", f"q-{time.time_ns()}"), ("udf_client_version", "v1")]


def run_runtime(args, rc, kubeconfig):
    label = f"{pl.POOL_LABEL}={pl.RUN_ID}"
    ns = f"fn-bench-{rc}-{os.getpid()}"
    prefix = f"fb{os.getpid() % 10000}{rc[0]}-"
    tenant = f"bench_{rc}"
    tns = tenant_namespace(prefix, tenant)
    for n, extra in ((ns, {}), (tns, {"udf.sandbox.io/tenant-namespace": "true"})):
        labels = {pl.POOL_LABEL: pl.RUN_ID, **extra}
        meta = {"name": n, "labels": labels}
        if n == tns:
            meta["annotations"] = {"udf.sandbox.io/tenant": tenant}
        pl.apply_raw({"apiVersion": "v1", "kind": "Namespace", "metadata": meta})
    wait_for(lambda: pl.k("-n", ns, "get", "sa", "default", check=False).returncode == 0, 30)
    pool = pl.pool_manifest("warm", args.pool, image=args.image, runtime_class=rc)
    pool["spec"]["functionNamespaceSelector"] = {"matchLabels": {pl.POOL_LABEL: pl.RUN_ID}}
    pool["spec"]["refill"] = {"maxPodsPerSecond": 20, "maxInFlight": 20}
    pl.apply(ns, pool)
    empty = pl.pool_manifest("empty", 0, image=args.image, runtime_class=rc)
    empty["spec"]["functionNamespaceSelector"] = pool["spec"]["functionNamespaceSelector"]
    pl.apply(ns, empty)
    op = OperatorProcess(kubeconfig, "--pool-selector", label, "--function-namespace-selector",
                         label, "--default-pool", f"{ns}/warm", "--tenant-namespace-prefix",
                         prefix, "--allowed-runtime-classes", "gvisor,runc",
                         "--default-idle-timeout", "0")
    out = []
    try:
        op.__enter__()
        ch = grpc.insecure_channel(op.grpc_address)
        grpc.channel_ready_future(ch).result(timeout=10)
        stub = udf_pb2_grpc.UdfServiceStub(ch)
        fl.wait_idle_ready(ns, "warm", args.pool, 300)

        # Warm: one new UDF at a time, the pool refilled between calls.
        answer, first = [], []
        req0, claims0 = metric(op, "udf_function_api_requests_total"), 0
        for i in range(args.rounds):
            fl.wait_idle_ready(ns, "warm", args.pool, 300)
            h = f"w{i}"
            t0 = time.monotonic()
            r = stub.ApplyUdfResource(udf_pb2.ApplyUdfResourceRequest(spec=spec(h, i)),
                                      metadata=md(tenant), timeout=5)
            answer.append(time.monotonic() - t0)
            f = first_answer(r.endpoint, h, r.headers["x-authorization"], tenant, [1 + i], t0)
            if f is not None:
                first.append(f)
            claims0 += 1
        reqs = metric(op, "udf_function_api_requests_total") - req0
        out.append({"runtime": rc, "what": "warm", "n": args.rounds,
                    "answer_p50_ms": pct(answer, 50) * 1e3, "answer_p99_ms": pct(answer, 99) * 1e3,
                    "first_p50_ms": pct(first, 50) * 1e3, "first_p99_ms": pct(first, 99) * 1e3,
                    "answered": len(first), "api_requests_per_claim": reqs / max(1, claims0)})
        pl.k("-n", tns, "delete", "udffunctions", "--all", "--wait=true", "--timeout=120s",
             check=False)

        # Cold: the empty pool.
        cold = []
        for i in range(args.cold):
            m = fl.example("add-one.yaml")
            m["metadata"]["name"] = f"cold-{i}"
            m["spec"]["poolRef"] = {"name": "empty", "namespace": ns}
            t0 = time.monotonic()
            fl.apply_fn(tns, m)
            fn = wait_for(lambda: (lambda f: f if f.get("status", {}).get("endpoint") else None)(
                fl.function(tns, f"cold-{i}")), 120, interval=0.05, what="cold endpoint")
            f = first_answer(fn["status"]["endpoint"], "add_one", fl.token(tns, fn), tenant,
                             [2], t0, limit=120)
            if f is not None:
                cold.append(f)
            pl.k("-n", tns, "delete", "udffunction", f"cold-{i}", "--wait=true", check=False)
        out.append({"runtime": rc, "what": "cold", "n": args.cold,
                    "first_p50_ms": pct(cold, 50) * 1e3, "first_max_ms": max(cold or [0]) * 1e3})

        # Burst: as many distinct UDFs as the pool holds, at once.
        fl.wait_idle_ready(ns, "warm", args.pool, 300)
        times, lock = [], threading.Lock()

        def one(i):
            h = f"b{i}"
            t0 = time.monotonic()
            try:
                r = stub.ApplyUdfResource(udf_pb2.ApplyUdfResourceRequest(spec=spec(h, i)),
                                          metadata=md(tenant), timeout=5)
                f = first_answer(r.endpoint, h, r.headers["x-authorization"], tenant, [1 + i],
                                 t0)
            except grpc.RpcError:
                f = None
            with lock:
                if f is not None:
                    times.append(f)
        ths = [threading.Thread(target=one, args=(i,)) for i in range(args.pool)]
        for t in ths:
            t.start()
        for t in ths:
            t.join()
        out.append({"runtime": rc, "what": "burst", "n": args.pool, "answered": len(times),
                    "first_p50_ms": pct(times, 50) * 1e3, "first_p90_ms": pct(times, 90) * 1e3})
        ch.close()
    finally:
        op.stop()
        for n in (tns, ns):
            pl.k("delete", "namespace", n, "--wait=false", check=False)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--image", required=True)
    ap.add_argument("--pool", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--cold", type=int, default=3)
    ap.add_argument("--runtimes", default="gvisor,runc")
    args = ap.parse_args()
    kubeconfig = pl.cluster_env("kubeconfig")
    for rc in args.runtimes.split(","):
        for r in run_runtime(args, rc, kubeconfig):
            print(json.dumps(r), flush=True)


if __name__ == "__main__":
    main()
