"""Hot ApplyUdfResource (function already Ready) against udf-operator, beside a no-op unary
server on the same gRPC core wrapper (grpc_noop), at several client concurrencies, with ghz
as the load generator for both. Run by hack/bench/grpc.sh; prints numbers, never fails on
them."""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))
sys.path.insert(0, os.path.join(ROOT, "tests", "grpc"))

import grpc  # noqa: E402

from cluster import ensure_cluster  # noqa: E402
from function_controller import FunctionController, Kube  # noqa: E402
from stubs import load  # noqa: E402
from udfop import OperatorProcess, wait_for  # noqa: E402

udf_pb2, udf_pb2_grpc = load("udf")

TENANT = "bench_tenant"
PREFIX = f"bench{os.getpid() % 100000}-"
SPEC = json.dumps({"version": 1, "kind": "udf", "language": "python", "handler": "add_one",
                   "input_types": ["INT NULL"], "result_type": "INT NULL",
                   "imports": ["@udf_import_stage/imports/helper.py"], "packages": [],
                   "runtime_version": "3.12.2",
                   "code": "import helper\ndef add_one(x: int) -> int:\n"
                           "    return helper.add_one(x)\n"}, separators=(",", ":"))
IMPORTS = [{"location": "@udf_import_stage/imports/helper.py",
            "url": "https://stage.example/helper.py?X-Amz-Signature=0123", "tag": '"9f1c"'}]


def ghz(ghz_bin, address, concurrency, requests, workdir):
    req = os.path.join(workdir, "req.json")
    md = os.path.join(workdir, "md.json")
    with open(req, "w") as f:
        json.dump({"spec": SPEC, "imports": IMPORTS}, f)
    with open(md, "w") as f:
        json.dump({"x-databend-tenant": TENANT, "x-databend-user": "'root'@'%'",
                   "udf_client_version": "v1"}, f)
    out = subprocess.run(
        [ghz_bin, "--insecure", "--proto", os.path.join(ROOT, "proto", "udf.proto"),
         "--import-paths", os.path.join(ROOT, "proto"),
         "--call", "udfproto.UdfService.ApplyUdfResource", "-D", req, "-M", md,
         "-c", str(concurrency), "-n", str(requests), "--timeout", "5s", "--format", "json",
         address], check=True, capture_output=True, text=True)
    r = json.loads(out.stdout)
    lat = {d["percentage"]: d["latency"] / 1e6 for d in r.get("latencyDistribution") or []}
    codes = r.get("statusCodeDistribution") or {}
    return {"rps": r["rps"], "p50": lat.get(50, float("nan")), "p99": lat.get(99, float("nan")),
            "count": r["count"],
            "errors": ",".join(f"{k}:{v}" for k, v in sorted(codes.items()) if k != "OK") or "0"}


def median(runs):
    """The run with the median throughput (its latencies with it); errors summed."""
    runs = sorted(runs, key=lambda r: r["rps"])
    m = dict(runs[len(runs) // 2])
    errs = [r["errors"] for r in runs if r["errors"] != "0"]
    m["errors"] = ";".join(errs) or "0"
    return m


def make_ready(kube, address):
    channel = grpc.insecure_channel(address)
    stub = udf_pb2_grpc.UdfServiceStub(channel)
    md = [("x-databend-tenant", TENANT)]
    req = udf_pb2.ApplyUdfResourceRequest(
        spec=SPEC, imports=[udf_pb2.UdfImport(**i) for i in IMPORTS])
    try:
        stub.ApplyUdfResource(req, metadata=md, timeout=1)
    except grpc.RpcError:
        pass
    fc = FunctionController(kube)

    def find():
        for ns in kube.namespaces("udf.sandbox.io/tenant-namespace=true"):
            if ns["metadata"]["name"].startswith(PREFIX):
                fns = kube.functions(ns["metadata"]["name"])
                if fns:
                    return fns[0]
        return None
    fn = wait_for(find, 20, what="the bench UdfFunction")
    fc.make_ready(fn["metadata"]["namespace"], fn["metadata"]["name"],
                  endpoint="http://10.96.0.1:8815", token="0" * 64)
    wait_for(lambda: stub.ApplyUdfResource(req, metadata=md, timeout=2).endpoint, 20,
             what="a hot answer")
    channel.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--ghz", required=True)
    ap.add_argument("--noop", required=True)
    ap.add_argument("--requests", type=int, default=20000)
    ap.add_argument("--concurrency", default="1,16,64")
    ap.add_argument("--rounds", type=int, default=3,
                    help="alternating operator/no-op rounds per point; the median is shown")
    args = ap.parse_args()

    kubeconfig = ensure_cluster()
    kube = Kube(kubeconfig)
    kube.ensure_crds(ROOT)
    noop = subprocess.Popen([args.noop], stdout=subprocess.PIPE, text=True)
    noop_addr = f"127.0.0.1:{noop.stdout.readline().strip()}"
    op = OperatorProcess(kubeconfig, "--tenant-namespace-prefix", PREFIX, "--log-level", "warn")
    rows = []
    try:
        with op, tempfile.TemporaryDirectory() as work:
            grpc.channel_ready_future(grpc.insecure_channel(op.grpc_address)).result(timeout=10)
            make_ready(kube, op.grpc_address)
            for target in (op.grpc_address, noop_addr):  # warm both up
                ghz(args.ghz, target, 4, 2000, work)
            for c in [int(x) for x in args.concurrency.split(",")]:
                os_, ns_ = [], []
                for _ in range(args.rounds):  # alternate, so load from elsewhere hits both
                    os_.append(ghz(args.ghz, op.grpc_address, c, args.requests, work))
                    ns_.append(ghz(args.ghz, noop_addr, c, args.requests, work))
                rows.append((c, median(os_), median(ns_)))
    finally:
        noop.terminate()
        noop.wait()
        for ns in kube.namespaces("udf.sandbox.io/tenant-namespace=true"):
            if ns["metadata"]["name"].startswith(PREFIX):
                kube.delete_namespace(ns["metadata"]["name"])

    print(f"hot ApplyUdfResource, {args.requests} calls per run, median of {args.rounds} "
          f"alternating runs, ghz client on the same {os.cpu_count()}-core host "
          f"(load average {os.getloadavg()[0]:.1f})")
    print(f"{'clients':>7} | {'operator req/s':>14} {'p50 ms':>7} {'p99 ms':>7} | "
          f"{'no-op req/s':>11} {'p50 ms':>7} {'p99 ms':>7} | {'ratio':>5} | errors")
    for c, o, n in rows:
        print(f"{c:>7} | {o['rps']:>14.0f} {o['p50']:>7.3f} {o['p99']:>7.3f} | "
              f"{n['rps']:>11.0f} {n['p50']:>7.3f} {n['p99']:>7.3f} | "
              f"{o['rps'] / n['rps']:>5.2f} | {o['errors']}/{n['errors']}")


if __name__ == "__main__":
    main()
