"""Shared by the tests in tests/grpc: the real operator on the shared cluster, Databend's call
metadata, request builders, and cleanup of the tenants' namespaces a test made.

Each test process uses its own namespace prefix (--tenant-namespace-prefix) and tenant names
carrying its pid, so engineers and test runs on the shared cluster never meet; every namespace
the run made is deleted at the end.
"""

import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))

import grpc  # noqa: E402

from cluster import SOURCE_DIR, ensure_cluster  # noqa: E402
from function_controller import FunctionController, Kube  # noqa: E402
from stubs import load  # noqa: E402
from udfop import OperatorProcess, wait_for  # noqa: E402

udf_pb2, udf_pb2_grpc = load("udf")
resource_pb2, resource_pb2_grpc = load("resource")

PID = os.getpid()
NS_PREFIX = f"gt{PID % 100000}-"
# Where tests run their object-store stand-ins (importserver.py), and a block list for their
# operators that leaves exactly that address out: the rest of loopback stays blocked, and
# 127.0.0.3 stands for a link-local / metadata address (never a real one).
IMPORT_HOST = "127.0.0.2"
STANDIN_BLOCKED = "127.0.0.3"
TEST_BLOCKED_CIDRS = f"127.0.0.1/32,{STANDIN_BLOCKED}/32,::1/128,169.254.0.0/16,fe80::/10"
# These tests play the function controller themselves (tests/lib/function_controller.py), so
# the operator runs without its own; tests/controllers/ runs the real one.
FAKE_CONTROLLER_ARGS = ("--controllers=pools",)


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def metadata(tenant, version_key="udf_client_version"):
    """What a Databend query node sends with every call."""
    md = [("x-databend-user", "'root'@'%'"), ("x-databend-query-id", f"q-{time.time_ns()}"),
          (version_key, "v1")]
    if tenant is not None:
        md.insert(0, ("x-databend-tenant", tenant))
    return md


def spec(handler="add_one", code=None, input_types=("INT NULL",), result_type="INT NULL",
         imports=(), packages=(), runtime_version="3.12.2", **overrides):
    d = {"version": 1, "kind": "udf", "language": "python", "handler": handler,
         "input_types": list(input_types), "result_type": result_type,
         "imports": list(imports), "packages": list(packages),
         "runtime_version": runtime_version,
         "code": code if code is not None else
         f"def {handler}(x: int) -> int:\n    return x + 1\n"}
    d.update(overrides)
    for k in [k for k, v in d.items() if v is Ellipsis]:
        del d[k]
    return json.dumps(d, separators=(",", ":"))


def request(spec_json, imports=()):
    return udf_pb2.ApplyUdfResourceRequest(
        spec=spec_json,
        imports=[udf_pb2.UdfImport(location=loc, url=url, tag=tag) for loc, url, tag in imports])


class Env:
    """The cluster, an operator on free ports, a function controller, a stub per service."""

    def __init__(self, *extra_args, kubeconfig=None):
        self.kubeconfig = kubeconfig or ensure_cluster()
        self.kube = Kube(self.kubeconfig)
        self.kube.ensure_crds(SOURCE_DIR)
        self.fc = FunctionController(self.kube)
        self.op = OperatorProcess(self.kubeconfig, "--tenant-namespace-prefix", NS_PREFIX,
                                  *FAKE_CONTROLLER_ARGS,
                                  *extra_args)
        self.op.__enter__()
        self.channel = grpc.insecure_channel(
            self.op.grpc_address, options=[("grpc.max_receive_message_length", 8 << 20)])
        self.udf = udf_pb2_grpc.UdfServiceStub(self.channel)
        self.resource = resource_pb2_grpc.ResourceServiceStub(self.channel)
        self.worker = resource_pb2_grpc.WorkerServiceStub(self.channel)
        try:
            grpc.channel_ready_future(self.channel).result(timeout=10)
        except grpc.FutureTimeoutError:
            # setUpClass failing runs no tearDownClass: stop the operator here, with its log.
            self.op.__exit__(AssertionError, None, None)
            raise

    def namespace_of(self, tenant):
        for ns in self.kube.namespaces("udf.sandbox.io/tenant-namespace=true"):
            if ns["metadata"].get("annotations", {}).get("udf.sandbox.io/tenant") == tenant:
                return ns["metadata"]["name"]
        return None

    def wait_function(self, ns_or_tenant, predicate=lambda fn: True, timeout=10):
        def find():
            ns = ns_or_tenant if ns_or_tenant.startswith(NS_PREFIX) else \
                self.namespace_of(ns_or_tenant)
            if not ns:
                return None
            for fn in self.kube.functions(ns):
                if predicate(fn):
                    return fn
            return None
        return wait_for(find, timeout, interval=0.05, what=f"a UdfFunction of {ns_or_tenant}")

    def close(self):
        self.fc.stop()
        self.channel.close()
        rc = self.op.stop(check=False)
        for ns in self.kube.namespaces("udf.sandbox.io/tenant-namespace=true"):
            if ns["metadata"]["name"].startswith(NS_PREFIX):
                self.kube.delete_namespace(ns["metadata"]["name"])
        self.op.check_sanitizers()
        return rc

    def output(self):
        return self.op.output()

    def close_and_check(self):
        """close(), then fail (printing the operator's log) unless the operator exited 0."""
        rc = self.close()
        if rc != 0:
            print(self.output())
        assert rc == 0, f"operator exit code {rc}"
