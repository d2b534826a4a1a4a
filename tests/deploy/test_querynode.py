"""tests/lib/querynode.py, the command `make run` prints, end to end without the function
controller: the real operator (gRPC, on the shared control plane), a real udf-worker process
specialized with add_one, and in between the function's status written the way the controller
will write it (tests/lib/function_controller.py), naming that worker and its token. The
command must print the rows add_one returns, NULL kept, and the time of each step; with a
wrong token it must fail.
"""

import io
import contextlib
import os
import secrets
import subprocess
import sys
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "worker"))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "lib"))

import querynode  # noqa: E402
import workerlib  # noqa: E402
from cluster import ensure_cluster, kubectl, SOURCE_DIR  # noqa: E402
from function_controller import FunctionController, Kube  # noqa: E402
from udfop import OperatorProcess  # noqa: E402
from checks import check, finish  # noqa: E402


def serve(fc, kube, prefix, endpoint, token, stop):
    """Plays the function controller: every function in the test's namespaces gets Ready on
    the test's worker."""
    while not stop.is_set():
        try:
            for fn in kube.functions():
                md = fn["metadata"]
                if md["namespace"].startswith(prefix) and not fn.get("status", {}).get("endpoint"):
                    fc.make_ready(md["namespace"], md["name"], endpoint=endpoint, token=token)
        except Exception:  # the API server may be busy; try again
            pass
        stop.wait(0.05)


def ready(op):
    try:
        with urllib.request.urlopen("http://%s/readyz" % op.http_address, timeout=1) as r:
            return r.status == 200
    except OSError:
        return False


def run_command(*args):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = querynode.main(list(args))
    print(out.getvalue() + err.getvalue(), end="", flush=True)
    return rc, out.getvalue(), err.getvalue()


def main():
    kubeconfig = ensure_cluster()
    kubectl("apply", "--server-side", "--force-conflicts", "--field-manager", "udf-deploy-tests",
            "-f", os.path.join(SOURCE_DIR, "crds"), kubeconfig=kubeconfig)
    kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd/udffunctions.udf.sandbox.io",
            kubeconfig=kubeconfig)
    prefix = "qn%d-" % (os.getpid() % 100000)
    tenant = "qn_tenant"
    token = secrets.token_hex(16)
    kube = Kube(kubeconfig)
    fc = FunctionController(kube)
    stop = threading.Event()
    worker = workerlib.Worker(processes=1)
    try:
        worker.start()
        status, _ = worker.specialize(workerlib.structured(
            tenant=tenant, token=token, input_types=("INT NULL",), result_type="INT NULL"))
        check(status == 202 or status == 200, "the worker accepts add_one (%s)" % status)
        check(worker.wait_state()["state"] == "ready", "the worker serves add_one")
        endpoint = "http://127.0.0.1:%d" % worker.flight_port
        with OperatorProcess(kubeconfig, "--tenant-namespace-prefix", prefix) as op:
            # As a query node would only call a Ready operator (the Service's endpoints).
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not ready(op):
                time.sleep(0.1)
            check(ready(op), "the operator answers /readyz")
            t = threading.Thread(target=serve, args=(fc, kube, prefix, endpoint, token, stop), daemon=True)
            t.start()
            t0 = time.monotonic()
            rc, out, err = run_command("--address", op.grpc_address, "--tenant", tenant)
            check(rc == 0, "querynode.py exits 0 (%.1fs)" % (time.monotonic() - t0))
            lines = [line.split() for line in out.splitlines()]
            check(["0", "1"] in lines and ["10", "11"] in lines and ["NULL", "NULL"] in lines
                  and ["40", "41"] in lines, "the rows of add_one, NULL kept")
            check(any(line[:2] == ["gRPC", "ApplyUdfResource(add_one)"] and line[-1] == "ms" for line in lines)
                  and any(line[:2] == ["Flight", "DoExchange(add_one,"] and line[-1] == "ms" for line in lines)
                  and out.rstrip().splitlines()[-1].startswith("total "),
                  "each step's time is printed")
            check(endpoint in out, "the endpoint the operator answered is printed")
            # The token the operator hands out is what opens the worker: with another, it fails.
            fn_ns = [ns for ns in kubectl("get", "ns", "-o", "name", kubeconfig=kubeconfig).stdout.split()
                     if ns.startswith("namespace/" + prefix)]
            check(len(fn_ns) == 1, "one tenant namespace: %s" % fn_ns)
            qn = querynode.QueryNode(op.grpc_address, tenant=tenant)
            ep = qn.apply_udf_resource(querynode.udf_spec())
            check(ep.headers == {"x-authorization": token}, "headers answered: %s" % sorted(ep.headers))
            ep.headers["x-authorization"] = "not-the-token"
            import pyarrow as pa
            import pyarrow.flight as flight
            batch = pa.record_batch([pa.array([1], type=pa.int32())], names=["arg1"])
            try:
                qn.exchange(ep, "add_one", "add_one", batch)
                check(False, "a wrong token is refused")
            except flight.FlightError as e:
                check(True, "a wrong token is refused (%s)" % type(e).__name__)
            qn.close()
            stop.set()
            op.stop()
    finally:
        stop.set()
        worker.stop()
        worker.cleanup()
        for ns in kubectl("get", "ns", "-o", "name", kubeconfig=kubeconfig).stdout.split():
            if ns.startswith("namespace/" + prefix):
                kubectl("delete", ns, "--wait=false", kubeconfig=kubeconfig, check=False)
    return finish()


if __name__ == "__main__":
    sys.exit(main())
