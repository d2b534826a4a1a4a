"""Oversized messages over the wire (issue 15), grpcio clients against the real operator.

The operator caps a received message at 4 MiB (rpc.c's RPC_DEFAULT_MAXMSG, the gRPC core's
own default): a request above it gets RESOURCE_EXHAUSTED from the core, on every service, and
the operator keeps serving. A message just under 4 MiB reaches the handler, which refuses a
spec above its own limits (2 MiB of JSON, 1 MiB of code) with INVALID_ARGUMENT naming the
field and the limit; a spec just under those limits is accepted and becomes a UdfFunction.
Oversized metadata is refused by the core too. The operator's memory stays bounded through it
all.
"""

import time
import unittest

import grpc

import grpctest as gt
from grpctest import metadata, request, resource_pb2, spec
from stubs import load

health_pb2, health_pb2_grpc = load("health")

MIB = 1 << 20
MAX_MESSAGE = 4 * MIB
MAX_SPEC_JSON = 2 * MIB
MAX_CODE = 1 * MIB


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def code_of(n, handler="add_one"):
    """A valid handler padded with a comment to exactly n bytes."""
    head = f"def {handler}(x: int) -> int:\n    return x + 1\n#"
    return head + "x" * (n - len(head) - 1) + "\n"


class Oversized(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.env = gt.Env()
        cls.tenant = f"big_tenant_{gt.PID}"
        cls.health = health_pb2_grpc.HealthStub(cls.env.channel)

    @classmethod
    def tearDownClass(cls):
        cls.env.close_and_check()

    def serving(self):
        """The operator still answers. The core may close the connection a refused call came
        on; the channel then reconnects, so a first failure is retried."""
        def check():
            return self.health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5,
                                     wait_for_ready=True).status
        self.assertEqual(gt.wait_for(check, 10, what="health Check"),
                         health_pb2.HealthCheckResponse.SERVING)
        self.assertIsNone(self.env.op.proc.poll(), "the operator exited")

    def code_and_details(self, fn, req, **kw):
        try:
            fn(req, metadata=metadata(self.tenant, kw.pop("version_key", "udf_client_version")),
               timeout=kw.pop("timeout", 10))
        except grpc.RpcError as e:
            return e.code(), e.details()
        return grpc.StatusCode.OK, ""

    def test_above_the_limit_is_resource_exhausted(self):
        rss0 = rss_kib(self.env.op.proc.pid)
        pad = "#" + "x" * (MAX_MESSAGE + 1024)
        cases = [
            ("ApplyUdfResource", self.env.udf.ApplyUdfResource,
             request(spec(code=pad)), "udf_client_version"),
            ("ApplyResource", self.env.resource.ApplyResource,
             resource_pb2.ApplyResourceRequest(type="python", script=pad), "udf_client_version"),
            ("CreateWorker", self.env.worker.CreateWorker,
             resource_pb2.CreateWorkerRequest(tenant_id=self.tenant, name="big", type="python",
                                              script=pad), "worker_client_version"),
        ]
        for name, fn, req, vk in cases:
            with self.subTest(name):
                self.assertGreater(req.ByteSize(), MAX_MESSAGE)
                code, details = self.code_and_details(fn, req, version_key=vk)
                gt.log(f"{name} of {req.ByteSize()} bytes: {code.name} {details}")
                self.assertEqual(code, grpc.StatusCode.RESOURCE_EXHAUSTED, details)
                self.serving()
        # Far above it, many times over: refused the same way, and not kept. The first calls
        # fill the allocator's (and ASan's quarantine's) free lists; after them, 384 MiB more
        # of refused messages must not show in the resident set.
        huge = request(spec(code="#" + "y" * (32 * MIB)))

        def refuse(n):
            for _ in range(n):
                code, details = self.code_and_details(self.env.udf.ApplyUdfResource, huge)
                self.assertEqual(code, grpc.StatusCode.RESOURCE_EXHAUSTED, details)
        refuse(4)
        rss1 = rss_kib(self.env.op.proc.pid)
        refuse(12)
        self.serving()
        rss2 = rss_kib(self.env.op.proc.pid)
        gt.log(f"operator RSS: {rss0} KiB before, {rss1} after 4 calls of 32 MiB, "
               f"{rss2} after 12 more")
        self.assertLess(rss2 - rss1, 64 * 1024)

    def test_just_under_the_message_limit_names_the_field(self):
        # The whole message under 4 MiB, the spec's JSON far above its own 2 MiB.
        req = request(spec(code=code_of(MAX_MESSAGE - 4096)))
        self.assertLess(req.ByteSize(), MAX_MESSAGE)
        code, details = self.code_and_details(self.env.udf.ApplyUdfResource, req)
        gt.log(f"spec of {req.ByteSize()} bytes: {code.name} {details}")
        self.assertEqual(code, grpc.StatusCode.INVALID_ARGUMENT, details)
        self.assertIn("spec", details)
        self.assertIn(str(MAX_SPEC_JSON), details)

        # Under the JSON limit, code above its own.
        req = request(spec(code=code_of(MAX_CODE + 1)))
        self.assertLess(req.ByteSize(), MAX_SPEC_JSON)
        code, details = self.code_and_details(self.env.udf.ApplyUdfResource, req)
        gt.log(f"code of {MAX_CODE + 1} bytes: {code.name} {details}")
        self.assertEqual(code, grpc.StatusCode.INVALID_ARGUMENT, details)
        self.assertIn("code", details)
        self.assertIn(str(MAX_CODE), details)
        self.serving()

    def test_just_under_the_spec_limits_is_accepted(self):
        marker = "#oversized-accepted"
        code = code_of(MAX_CODE - 64 - len(marker)) + marker + "\n"
        self.assertLessEqual(len(code), MAX_CODE)
        req = request(spec(code=code))
        # Nothing makes the function Ready here: the call ends UNAVAILABLE at its deadline,
        # after the UdfFunction, code and all, was written to the API server.
        status, details = self.code_and_details(self.env.udf.ApplyUdfResource, req, timeout=5)
        gt.log(f"code of {len(code)} bytes: {status.name} {details}")
        self.assertEqual(status, grpc.StatusCode.UNAVAILABLE, details)
        fn = self.env.wait_function(self.tenant, lambda f: marker in f["spec"].get("code", ""),
                                    timeout=10)
        self.assertEqual(fn["spec"]["code"], code)
        self.serving()

    def test_oversized_metadata_is_refused(self):
        marker = "# metadata"
        md = metadata(self.tenant) + [("x-padding", "z" * (64 * 1024))]
        t0 = time.monotonic()
        try:
            self.env.udf.ApplyUdfResource(request(spec(code=code_of(200) + marker + "\n")),
                                          metadata=md, timeout=5)
            outcome = grpc.StatusCode.OK
        except grpc.RpcError as e:
            outcome = e.code()
            gt.log(f"64 KiB of metadata: {e.code().name} {e.details()} "
                   f"in {time.monotonic() - t0:.2f} s")
        # The core's default limit on received metadata is 8 KiB; the call never reaches a
        # handler, which would have made a UdfFunction.
        self.assertEqual(outcome, grpc.StatusCode.RESOURCE_EXHAUSTED)
        self.serving()
        ns = self.env.namespace_of(self.tenant)
        self.assertFalse(ns and [f for f in self.env.kube.functions(ns)
                                 if marker in f["spec"].get("code", "")])


if __name__ == "__main__":
    unittest.main(verbosity=2)
