"""Import urls cannot make the operator a request forger (issue 15).

The operator reads each import url's ETag with a ranged GET; it must refuse an address in its
block list by the address it would connect to (not the name), follow no redirect, and tell the
caller nothing of what the remote answered beyond "readable or not". Loopback is blocked by
default; the tests that need an allowed server run their operator with a block list that leaves
127.0.0.2 out, and stand 127.0.0.3 in for a link-local address (never a real metadata one).
"""

import unittest

import grpc

import grpctest as gt
from grpctest import metadata, resource_pb2
from importserver import ImportServer
from test_worker_service import databend_script

CODE = "import helper\ndef add_one(x):\n    return helper.f(x)\n# ssrf\n"
LOC = "@stage/imports/helper.py"


def apply(env, tenant, url, timeout=3.0):
    script = databend_script(CODE, [(LOC, url)])
    return env.resource.ApplyResource(
        resource_pb2.ApplyResourceRequest(type="udf", script=script),
        metadata=metadata(tenant, "resource_client_version"), timeout=timeout)


class Ssrf(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tenant = f"ssrf_tenant_{gt.PID}"
        cls.loop = ImportServer({"helper.py": b"def f(x):\n    return x\n"}, host="127.0.0.1")
        cls.allowed = ImportServer({"helper.py": b"def f(x):\n    return x\n"},
                                   host=gt.IMPORT_HOST)
        cls.standin = ImportServer({"helper.py": b"x"}, host=gt.STANDIN_BLOCKED)
        for s in (cls.loop, cls.allowed, cls.standin):
            s.__enter__()
        cls.envs = []

    @classmethod
    def tearDownClass(cls):
        for s in (cls.loop, cls.allowed, cls.standin):
            s.__exit__(None, None, None)
        for e in cls.envs:
            e.close_and_check()

    def env(self, *args):
        e = gt.Env(*args)
        self.envs.append(e)
        return e

    def refused(self, env, url, server):
        before = len(server.requests)
        with self.assertRaises(grpc.RpcError) as ctx:
            apply(env, self.tenant, url)
        details = ctx.exception.details()
        gt.log(f"{url.split('?')[0]}: {ctx.exception.code().name}: {details}")
        self.assertEqual(ctx.exception.code(), grpc.StatusCode.FAILED_PRECONDITION, details)
        self.assertIn("--blocked-cidrs", details)
        self.assertNotIn("X-Amz-Signature", details)  # the presigned part is never echoed
        self.assertEqual(len(server.requests), before, "the blocked server was reached")

    def test_default_blocks_loopback(self):
        env = self.env()
        self.refused(env, self.loop.presign("helper.py"), self.loop)
        # By name: localhost resolves to loopback.
        url = self.loop.presign("helper.py").replace("127.0.0.1", "localhost")
        self.refused(env, url, self.loop)
        # The default list takes loopback whole, aliases included.
        self.refused(env, self.allowed.presign("helper.py"), self.allowed)

    def test_configured_list(self):
        env = self.env("--blocked-cidrs", gt.TEST_BLOCKED_CIDRS)
        # Allowed: the GET goes out, the call proceeds to provisioning (no controller here,
        # so it is still provisioning when its time is up).
        before = len(self.allowed.requests)
        with self.assertRaises(grpc.RpcError) as ctx:
            apply(env, self.tenant, self.allowed.presign("helper.py"), timeout=1.5)
        self.assertEqual(ctx.exception.code(), grpc.StatusCode.UNAVAILABLE,
                         ctx.exception.details())
        self.assertIn("provisioned", ctx.exception.details())
        self.assertEqual(self.allowed.requests[before:], [("helper.py", "bytes=0-0")])
        # The stand-in for link-local, by address and by a name that resolves to loopback.
        self.refused(env, self.standin.presign("helper.py"), self.standin)
        url = self.loop.presign("helper.py").replace("127.0.0.1", "localhost")
        self.refused(env, url, self.loop)

    def test_no_redirects_and_no_oracle(self):
        env = self.env("--blocked-cidrs", gt.TEST_BLOCKED_CIDRS)
        target = ImportServer({"helper.py": b"def f(x):\n    return x\n"}, host=gt.IMPORT_HOST)
        with target:
            hop = ImportServer({}, host=gt.IMPORT_HOST,
                               answer=(302, {"Location": target.presign("helper.py")}, b""))
            with hop:
                with self.assertRaises(grpc.RpcError) as ctx:
                    apply(env, self.tenant, hop.presign("helper.py"))
                self.assertEqual(ctx.exception.code(), grpc.StatusCode.FAILED_PRECONDITION)
                self.assertEqual(len(hop.requests), 1)
                self.assertEqual(target.requests, [], "the redirect was followed")
                self.assertNotIn("302", ctx.exception.details())
        teapot = ImportServer({}, host=gt.IMPORT_HOST,
                              answer=(418, {"X-Internal": "TOPSECRET-HEADER"},
                                      b"TOPSECRET-BODY"))
        with teapot:
            with self.assertRaises(grpc.RpcError) as ctx:
                apply(env, self.tenant, teapot.presign("helper.py"))
            details = ctx.exception.details()
            gt.log(f"teapot: {details}")
            self.assertEqual(ctx.exception.code(), grpc.StatusCode.FAILED_PRECONDITION)
            self.assertIn("cannot read the import", details)
            for leak in ("418", "TOPSECRET", "teapot"):
                self.assertNotIn(leak, details)

    def test_bad_block_list_is_a_usage_error(self):
        import subprocess
        from udfop import operator_binary
        r = subprocess.run([operator_binary(), "--blocked-cidrs", "10.0.0.0/8,nonsense"],
                           capture_output=True, text=True, timeout=10)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("nonsense", r.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
