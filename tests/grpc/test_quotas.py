"""Limits that keep one tenant from exhausting the operator (issue 15).

--max-functions-per-tenant answers a new function past the limit with RESOURCE_EXHAUSTED
naming it (ApplyUdfResource and CreateWorker alike), while a call for a function the tenant
already has still goes through; each tenant namespace carries a ResourceQuota with the pod and
function limits (the API server's backstop); --max-tenants refuses a new tenant past the limit;
--function-ttl deletes the functions the gRPC services made that no call used for that long,
and nothing else.
"""

import time
import unittest

import grpc

import grpctest as gt
from function_controller import GROUP_PATH
from grpctest import metadata, request, resource_pb2, spec
from udfop import wait_for


def apply(env, tenant, marker, timeout=1.0):
    code = f"def add_one(x: int) -> int:\n    return x + 1  # {marker}\n"
    return env.udf.ApplyUdfResource(request(spec(code=code)), metadata=metadata(tenant),
                                    timeout=timeout)


class Quotas(unittest.TestCase):
    def expect(self, code, fn, *args, **kw):
        with self.assertRaises(grpc.RpcError) as ctx:
            fn(*args, **kw)
        self.assertEqual(ctx.exception.code(), code, ctx.exception.details())
        return ctx.exception.details()

    def test_1_limits(self):
        env = gt.Env("--max-functions-per-tenant", "2", "--max-pods-per-tenant", "3",
                     "--max-tenants", "2")
        a, b, c = (f"quota_{x}_{gt.PID}" for x in "abc")
        try:
            for m in ("one", "two"):
                self.expect(grpc.StatusCode.UNAVAILABLE, apply, env, a, m)
            ns = env.namespace_of(a)
            wait_for(lambda: len(env.kube.functions(ns)) == 2, 10, what="two functions")
            time.sleep(0.5)  # the operator's cache sees them too
            details = self.expect(grpc.StatusCode.RESOURCE_EXHAUSTED, apply, env, a, "three")
            gt.log(f"third function: {details}")
            self.assertIn("--max-functions-per-tenant=2", details)
            self.assertEqual(len(env.kube.functions(ns)), 2)
            # A function the tenant has is not a new one.
            self.expect(grpc.StatusCode.UNAVAILABLE, apply, env, a, "one")
            # A worker record is a function too.
            details = self.expect(
                grpc.StatusCode.RESOURCE_EXHAUSTED, env.worker.CreateWorker,
                resource_pb2.CreateWorkerRequest(tenant_id=a, name="w1"),
                metadata=metadata(a, "worker_client_version"), timeout=5)
            self.assertIn("--max-functions-per-tenant=2", details)

            q = env.kube.get(f"/api/v1/namespaces/{ns}/resourcequotas/udf-tenant-quota")
            self.assertEqual(q["spec"]["hard"], {"pods": "3",
                                                 "count/udffunctions.udf.sandbox.io": "2"})
            self.assertEqual(q["metadata"]["labels"]["app.kubernetes.io/managed-by"],
                             "udf-operator")

            # Tenants: a and b fit, c does not.
            self.expect(grpc.StatusCode.UNAVAILABLE, apply, env, b, "b")
            wait_for(lambda: env.namespace_of(b), 10, what="b's namespace")
            time.sleep(0.5)
            details = self.expect(grpc.StatusCode.RESOURCE_EXHAUSTED, apply, env, c, "c")
            gt.log(f"third tenant: {details}")
            self.assertIn("--max-tenants=2", details)
            self.assertIsNone(env.namespace_of(c))
        finally:
            env.close_and_check()

    def test_2_function_ttl(self):
        env = gt.Env("--function-ttl", "3s")
        t = f"ttl_{gt.PID}"
        try:
            self.expect(grpc.StatusCode.UNAVAILABLE, apply, env, t, "ttl")
            ns = env.namespace_of(t)
            made = env.wait_function(ns)
            # One nobody's gRPC call made (no managed-by label): never the sweep's.
            other = {"apiVersion": "udf.sandbox.io/v1alpha1", "kind": "UdfFunction",
                     "metadata": {"name": "hand-made", "namespace": ns},
                     "spec": made["spec"]}
            env.kube.request("POST", f"{GROUP_PATH}/namespaces/{ns}/udffunctions", other)
            name = made["metadata"]["name"]
            t0 = time.monotonic()
            wait_for(lambda: env.kube.function(ns, name) is None, 20,
                     what=f"the unused function {name} to be deleted")
            gt.log(f"unused function deleted {time.monotonic() - t0:.1f} s after creation")
            self.assertIsNotNone(env.kube.function(ns, "hand-made"))
            self.assertIn("deleted UdfFunction", env.output())
        finally:
            env.close_and_check()


if __name__ == "__main__":
    unittest.main(verbosity=2)
