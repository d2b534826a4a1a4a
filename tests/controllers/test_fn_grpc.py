"""The gRPC path against the real function controller: a grpcio client (generated stubs) calls
ApplyUdfResource, ApplyResource and CreateWorker as a Databend query node does (5 s deadline),
with imports served by a local HTTP server the pods reach on the node's bridge; the endpoint it
gets answers Flight within Databend's retry window (about 12.7 s). A failing import, a package
that does not exist and code that does not load each end in their named condition, and the
gRPC call gets FAILED_PRECONDITION with that message. Deleting a function cleans its pod and
Secret."""

import hashlib
import os
import re
import sys
import time

import grpc

import fnlib as fl
import poollib as pl
from udfop import wait_for

sys.path.insert(0, os.path.join(pl.SOURCE_DIR, "tests", "grpc"))
sys.path.insert(0, os.path.join(pl.SOURCE_DIR, "tests", "worker"))
from importserver import ImportServer  # noqa: E402
from stubs import load  # noqa: E402

udf_pb2, udf_pb2_grpc = load("udf")
resource_pb2, resource_pb2_grpc = load("resource")

BRIDGE = "udfbr0"
PREFIX = f"gf{os.getpid() % 100000}-"
RETRY_WINDOW_S = 12.7
# --default-idle-timeout of this run: above the gRPC service's 30 s between records of use,
# so a call after a scale-down always records one.
IDLE_S = 40


def bridge_address():
    out = pl.subprocess.run(["ip", "-4", "-o", "addr", "show", "dev", BRIDGE],
                            capture_output=True, text=True).stdout.split()
    return out[out.index("inet") + 1].split("/")[0] if "inet" in out else None


def tenant_namespace(tenant):
    """naming_tenant_namespace(PREFIX, tenant) (operator/udf/naming.h)."""
    readable = re.sub(r"[^a-z0-9]+", "-", tenant.lower()).strip("-")
    return f"{PREFIX}{readable}-{hashlib.sha256(tenant.encode()).hexdigest()[:10]}"


def make_tenant_namespace(tenant):
    """The tenant's namespace made ahead (as the operator would, plus this run's label), so
    this run's operator reconciles its functions."""
    ns = tenant_namespace(tenant)
    pl.apply_raw({"apiVersion": "v1", "kind": "Namespace",
                  "metadata": {"name": ns, "labels": {
                      "udf.sandbox.io/tenant-namespace": "true", pl.POOL_LABEL: pl.RUN_ID,
                      "pod-security.kubernetes.io/enforce": "restricted"},
                      "annotations": {"udf.sandbox.io/tenant": tenant}}})
    return ns


def md(tenant, key="udf_client_version"):
    return [("x-databend-tenant", tenant), ("x-databend-user", "'root'@'%'"),
            ("x-databend-query-id", f"q-{time.time_ns()}"), (key, "v1")]


def spec(handler, code, imports=(), packages=()):
    import json
    return json.dumps({"version": 1, "kind": "udf", "language": "python", "handler": handler,
                       "input_types": ["INT NULL"], "result_type": "INT NULL",
                       "imports": list(imports), "packages": list(packages),
                       "runtime_version": "3.12.2", "code": code}, separators=(",", ":"))


def flight_within_window(endpoint, handler, token, tenant, values, want):
    """Retries like Databend (refused connections for about 12.7 s from the answer)."""
    t0 = time.monotonic()
    last = None
    while time.monotonic() - t0 < RETRY_WINDOW_S:
        try:
            got = fl.call(endpoint, handler, values, token, tenant, timeout=5)
            return got == want, time.monotonic() - t0, got
        except Exception as e:  # noqa: BLE001 - refused / unavailable while specializing
            last = e
            time.sleep(0.05)
    return False, time.monotonic() - t0, str(last)[:200]


def apply_until(call, timeout=120):
    """Calls (each with its 5 s deadline) until the answer is not 'still starting'; returns
    (response, None) or (None, RpcError)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return call(), None
        except grpc.RpcError as e:
            if e.code() == grpc.StatusCode.FAILED_PRECONDITION or time.monotonic() > deadline:
                return None, e


def main():
    kubeconfig = pl.ensure_node(worker_image=True)
    bridge = bridge_address()
    if not pl.check(bridge is not None, f"the node's bridge {BRIDGE} has an address"):
        return pl.finish()
    tenant = f"fn_tenant_{os.getpid()}"
    files = {"helper.py": b"def add_one(x):\n    return x + 1\n",
             "helper2.py": b"def add_two(x):\n    return x + 2\n"}
    with fl.Namespace("fn-grpc") as ns, ImportServer(files, host=bridge) as srv:
        pool = pl.pool_manifest("warm", 2)
        pool["spec"]["functionNamespaceSelector"] = {"matchLabels": {pl.POOL_LABEL: pl.RUN_ID}}
        pl.apply(ns.name, pool)
        tns = make_tenant_namespace(tenant)
        try:
            with fl.operator(kubeconfig, "--tenant-namespace-prefix", PREFIX, "--default-pool",
                             f"{ns.name}/warm", "--default-idle-timeout", f"{IDLE_S}s") as op:
                run(op, ns.name, tns, tenant, srv)
        finally:
            pl.k("delete", "namespace", tns, "--wait=false", check=False)
    return pl.finish()


def run(op, pool_ns, tns, tenant, srv):
    ch = grpc.insecure_channel(op.grpc_address)
    grpc.channel_ready_future(ch).result(timeout=10)
    udf = udf_pb2_grpc.UdfServiceStub(ch)
    res = resource_pb2_grpc.ResourceServiceStub(ch)
    wrk = resource_pb2_grpc.WorkerServiceStub(ch)
    fl.wait_idle_ready(pool_ns, "warm", 2, 240)

    # ApplyUdfResource with an import, as a query node plans a query.
    code = "import helper\ndef add_one(x: int) -> int:\n    return helper.add_one(x)\n"
    loc = "@udf_stage/imports/helper.py"
    req = udf_pb2.ApplyUdfResourceRequest(
        spec=spec("add_one", code, [loc]),
        imports=[udf_pb2.UdfImport(location=loc, url=srv.presign("helper.py"), tag="v1")])
    t0 = time.monotonic()
    resp = udf.ApplyUdfResource(req, metadata=md(tenant), timeout=5)
    answered = time.monotonic() - t0
    pl.check(resp.endpoint.startswith("http://"), f"ApplyUdfResource answered "
             f"{resp.endpoint} in {answered:.2f}s")
    token = resp.headers.get("x-authorization")
    pl.check(bool(token), "the answer carries the token header")
    ok, took, got = flight_within_window(resp.endpoint, "add_one", token, tenant, [1, 41],
                                         [2, 42])
    pl.check(ok, f"Flight answers through the import within the retry window "
             f"({took:.2f}s after the answer): {got}")
    fn = [f for f in pl.kjson("-n", tns, "get", "udffunctions")["items"]
          if f["spec"].get("handler") == "add_one"][0]
    pl.check(fn["status"].get("launchType") == "warm", "the gRPC function claimed a warm pod")
    pl.check(fn["spec"].get("idleTimeoutSeconds") == IDLE_S,
             f"--default-idle-timeout: spec.idleTimeoutSeconds {fn['spec'].get('idleTimeoutSeconds')}")
    again = udf.ApplyUdfResource(req, metadata=md(tenant), timeout=5)
    pl.check(again.endpoint == resp.endpoint, "a second call answers the same endpoint")

    # ApplyResource (protocol 2) and CreateWorker (protocol 3) with Databend-style scripts.
    from test_script import make_script
    script = make_script("/app", "add_three", ["INT"], "INT",
                         "def add_three(x):\n    return x + 3\n")
    t0 = time.monotonic()
    r2, err = apply_until(lambda: res.ApplyResource(
        resource_pb2.ApplyResourceRequest(type="udf", script=script),
        metadata=md(tenant, "resource_client_version"), timeout=5), timeout=60)
    pl.check(r2 is not None and r2.endpoint, f"ApplyResource answered {r2 and r2.endpoint} "
             f"{err and err.details()}")
    if r2 is not None:
        ok, took, got = flight_within_window(r2.endpoint, "add_three",
                                             r2.headers.get("x-authorization"), tenant,
                                             [1, 2], [4, 5])
        pl.check(ok, f"ApplyResource's endpoint answers ({took:.2f}s): {got}")
    script4 = make_script("/app", "add_four", ["INT"], "INT",
                          "def add_four(x):\n    return x + 4\n")
    r3, err = apply_until(lambda: wrk.CreateWorker(
        resource_pb2.CreateWorkerRequest(tenant_id=tenant, name=f"w{os.getpid()}",
                                         script=script4),
        metadata=md(tenant, "worker_client_version"), timeout=5), timeout=60)
    pl.check(r3 is not None and r3.endpoint, f"CreateWorker answered {r3 and r3.endpoint} "
             f"{err and err.details()}")
    if r3 is not None and r3.endpoint:
        ok, took, got = flight_within_window(r3.endpoint, "add_four",
                                             r3.headers.get("x-authorization"), tenant,
                                             [1], [5])
        pl.check(ok, f"CreateWorker's endpoint answers ({took:.2f}s): {got}")

    # Generation 3 ALTER WORKER ... SUSPEND / RESUME: no pod, then serving again.
    wname = f"w{os.getpid()}"
    wfn = [f for f in pl.kjson("-n", tns, "get", "udffunctions")["items"]
           if f["metadata"]["name"].startswith("w-")]
    if pl.check(len(wfn) == 1, "CreateWorker made one UdfFunction"):
        wfn = wfn[0]
        act = resource_pb2.AlterWorkerRequest.WorkerStateAction
        wrk.AlterWorker(resource_pb2.AlterWorkerRequest(tenant_id=tenant, name=wname,
                                                        state_action=act.Value("Suspend")),
                        metadata=md(tenant, "worker_client_version"), timeout=5)
        fl.wait_function(tns, wfn["metadata"]["name"], 60,
                         pred=lambda f: fl.cond(f, "Ready").get("reason") == "NoReplicas"
                         and not [p for p in fl.claimed_pods(pool_ns, f)
                                  if not p["metadata"].get("deletionTimestamp")],
                         what="suspended worker without pods")
        pl.check(True, "ALTER WORKER SUSPEND: no pod")
        wrk.AlterWorker(resource_pb2.AlterWorkerRequest(tenant_id=tenant, name=wname,
                                                        state_action=act.Value("Resume")),
                        metadata=md(tenant, "worker_client_version"), timeout=5)
        wfn = fl.wait_function(tns, wfn["metadata"]["name"], 60)
        ok, took, got = flight_within_window(wfn["status"]["endpoint"], "add_four",
                                             fl.token(tns, wfn), tenant, [1], [5])
        pl.check(ok, f"ALTER WORKER RESUME: serving again ({got})")

    # Failures, each with its named condition and FAILED_PRECONDITION carrying its message.
    cases = [
        ("ImportsFetched", "ImportFetchFailed", spec(
            "f_imp", "import gone\ndef f_imp(x: int) -> int:\n    return x\n",
            ["@udf_stage/imports/gone.py"]),
         [udf_pb2.UdfImport(location="@udf_stage/imports/gone.py",
                            url=srv.presign("gone.py"), tag="v1")]),
        ("PackagesInstalled", "PackageInstallFailed", spec(
            "f_pkg", "def f_pkg(x: int) -> int:\n    return x\n", [],
            [f"nopkg{os.getpid()} @ http://{srv.host}:{srv.port}/"
             f"nopkg{os.getpid()}-1.0-py3-none-any.whl"]),
         []),
        ("CodeLoaded", "CodeLoadFailed", spec(
            "f_load", "import no_such_module_xyz\ndef f_load(x: int) -> int:\n    return x\n"),
         []),
    ]
    for ctype, reason, s, imports in cases:
        r = udf_pb2.ApplyUdfResourceRequest(spec=s, imports=imports)
        _, err = apply_until(lambda: udf.ApplyUdfResource(r, metadata=md(tenant), timeout=5),
                             timeout=150)
        code_ok = err is not None and err.code() == grpc.StatusCode.FAILED_PRECONDITION
        handler = re.search(r'"handler":"(\w+)"', s).group(1)
        fns = [f for f in pl.kjson("-n", tns, "get", "udffunctions")["items"]
               if f["spec"].get("handler") == handler]
        failed = fl.failed_condition(fns[0]) if fns else None
        pl.check(code_ok, f"{ctype}: FAILED_PRECONDITION ({err and err.code()}: "
                 f"{err and err.details()[:200]})")
        pl.check(failed is not None and failed[0] == ctype and failed[1] == reason,
                 f"{ctype}: condition {failed and failed[:2]}")
        if failed and err is not None:
            pl.check(failed[2][:60] in err.details(),
                     f"{ctype}: the call's message is the condition's")

    # Idle: the function scales to zero; the urls it was created with expire; the next call
    # wakes it with fresh urls, which the new pod's specialization uses.
    srv.expire_all()
    t0 = time.monotonic()
    fn = fl.wait_function(tns, fn["metadata"]["name"], IDLE_S + 120,
                          pred=lambda f: fl.cond(f, "Ready").get("reason") == "ScaledToZero"
                          and not fl.claimed_pods(pool_ns, f),
                          what="scaled to zero")
    pl.check(True, f"scaled to zero {time.monotonic() - t0:.0f}s after the last use checks")
    pl.check(not fn["status"].get("endpoint"), "no endpoint while scaled to zero")
    fresh = srv.presign("helper.py")
    req = udf_pb2.ApplyUdfResourceRequest(
        spec=spec("add_one", code, [loc]),
        imports=[udf_pb2.UdfImport(location=loc, url=fresh, tag="v1")])
    t0 = time.monotonic()
    try:
        woke = udf.ApplyUdfResource(req, metadata=md(tenant), timeout=5)
    except grpc.RpcError as e:
        woke = None
        pl.check(False, f"the waking call: {e.code()} {e.details()}")
    if woke is not None:
        pl.check(woke.endpoint.startswith("http://"),
                 f"the waking call answered {woke.endpoint} in {time.monotonic() - t0:.2f}s")
        ok, took, got = flight_within_window(woke.endpoint, "add_one",
                                             woke.headers.get("x-authorization"), tenant,
                                             [1, 41], [2, 42])
        pl.check(ok, f"woken: Flight answers within the retry window ({took:.2f}s), the "
                 f"import fetched with the fresh url: {got}")
    fn = fl.function(tns, fn["metadata"]["name"])
    anno = fn["metadata"].get("annotations", {}).get("udf.sandbox.io/import-urls", "")
    pl.check(fresh in anno, "the fresh url is kept in the import-urls annotation")

    # /metrics: calls by method and code, failures by reason.
    m = pl.metrics(op)
    for line in ('udf_grpc_calls_total{method="/udfproto.UdfService/ApplyUdfResource",'
                 'code="OK"}',
                 'udf_grpc_calls_total{method="/udfproto.UdfService/ApplyUdfResource",'
                 'code="FAILED_PRECONDITION"}',
                 'udf_grpc_calls_total{method="/resourceproto.WorkerService/CreateWorker",'
                 'code="OK"}',
                 'udf_function_specialize_failures_total{reason="CodeLoadFailed"}',
                 'udf_function_specialize_failures_total{reason="ImportFetchFailed"}'):
        pl.check(line in m, f"/metrics has {line}")

    # Deletion: pod and Secret go.
    pods = fl.claimed_pods(pool_ns, fn)
    pl.k("-n", tns, "delete", "udffunction", fn["metadata"]["name"], "--timeout=60s")
    wait_for(lambda: all(pl.k("-n", pool_ns, "get", "pod", p["metadata"]["name"],
                              check=False).returncode != 0
                         or pl.kjson("-n", pool_ns, "get", "pod", p["metadata"]["name"])
                         ["metadata"].get("deletionTimestamp") for p in pods),
             60, interval=0.5, what="pods deleted")
    pl.check(len(pods) == 1, "deleting the function deletes its pod")
    wait_for(lambda: pl.k("-n", tns, "get", "secret", fn["status"]["tokenSecretName"],
                          check=False).returncode != 0, 60, interval=0.5, what="Secret gone")
    pl.check(True, "and its token Secret")
    ch.close()


if __name__ == "__main__":
    sys.exit(main())
