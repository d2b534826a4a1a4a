"""Protocol 1, udfproto.UdfService/ApplyUdfResource, against the real operator and API server.

Covers: the tenant namespace (injective name, restricted Pod Security, NetworkPolicy, exact
tenant in an annotation); create-then-wait-for-Ready with the token header; the hot path; the
content key (a new presign with the same tag reuses the function, a changed tag or code rolls
it); answers before a 1 s deadline (endpoint, or UNAVAILABLE) and never DEADLINE_EXCEEDED;
provisioning failures as FAILED_PRECONDITION with the function's own reason; every
INVALID_ARGUMENT; an unreachable API server as UNAVAILABLE.
"""

import contextlib
import os
import tempfile
import threading
import time
import unittest

import grpc
import yaml

import grpctest as gt
from grpctest import metadata, request, spec


def call(env, req, tenant, timeout=5.0):
    return env.udf.ApplyUdfResource(req, metadata=metadata(tenant), timeout=timeout)


def code_of(fn):
    return fn["spec"].get("code")


class ApplyUdfResource(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.env = gt.Env()
        cls.tenant = f"grpc_tenant_{gt.PID}"

    @classmethod
    def tearDownClass(cls):
        cls.env.close_and_check()

    def expect_error(self, code, fn, *args, contains=None, **kw):
        with self.assertRaises(grpc.RpcError) as ctx:
            fn(*args, **kw)
        err = ctx.exception
        self.assertEqual(err.code(), code, err.details())
        if contains:
            self.assertIn(contains, err.details())
        return err.details()

    def make_ready_when_created(self, tenant, code_contains, delay=0.3, **kw):
        """Plays the controller: the function that shows up is made Ready after delay."""
        result = {}

        def run():
            fn = self.env.wait_function(tenant, lambda f: code_contains in (code_of(f) or ""))
            time.sleep(delay)
            md = fn["metadata"]
            result["fn"] = fn
            result["endpoint"], result["token"] = self.env.fc.make_ready(
                md["namespace"], md["name"], **kw)
        t = threading.Thread(target=run)
        t.start()
        return t, result

    def test_01_ready_answer_and_namespace(self):
        marker = "# ready-answer"
        code = "def add_one(x: int) -> int:\n    return x + 1\n" + marker + "\n"
        t, result = self.make_ready_when_created(self.tenant, marker, endpoint="http://10.1.2.3:8815",
                                                 token="secret-token-1")
        t0 = time.monotonic()
        resp = call(self.env, request(spec(code=code)), self.tenant)
        took = time.monotonic() - t0
        t.join()
        self.assertEqual(resp.endpoint, "http://10.1.2.3:8815")
        self.assertEqual(dict(resp.headers), {"x-authorization": "secret-token-1"})
        self.assertLess(took, 4.0, "answered as soon as the function became Ready")
        gt.log(f"created + ready answered in {took * 1000:.0f} ms")

        fn = result["fn"]
        ns = fn["metadata"]["namespace"]
        self.assertTrue(ns.startswith(gt.NS_PREFIX + "grpc-tenant-"), ns)
        self.assertTrue(fn["metadata"]["name"].startswith("udf-add-one-"), fn["metadata"]["name"])
        self.assertEqual(fn["spec"]["tenant"], self.tenant)
        self.assertEqual(fn["spec"]["handler"], "add_one")
        self.assertEqual(fn["spec"]["inputTypes"], ["INT NULL"])
        self.assertEqual(fn["spec"]["resultType"], "INT NULL")
        self.assertEqual(fn["spec"]["runtimeVersion"], "3.12.2")
        nsobj = self.env.kube.get(f"/api/v1/namespaces/{ns}")
        self.assertEqual(nsobj["metadata"]["annotations"]["udf.sandbox.io/tenant"], self.tenant)
        self.assertEqual(nsobj["metadata"]["labels"]["pod-security.kubernetes.io/enforce"],
                         "restricted")
        netpol = self.env.kube.get(
            f"/apis/networking.k8s.io/v1/namespaces/{ns}/networkpolicies/udf-sandbox")
        self.assertIn("Ingress", netpol["spec"]["policyTypes"])

        # Hot: the function is ready, the answer comes from the caches.
        t0 = time.monotonic()
        for _ in range(50):
            again = call(self.env, request(spec(code=code)), self.tenant)
            self.assertEqual(again.endpoint, "http://10.1.2.3:8815")
            self.assertEqual(dict(again.headers), {"x-authorization": "secret-token-1"})
        gt.log(f"hot calls: {(time.monotonic() - t0) / 50 * 1000:.2f} ms each")
        fns = [f for f in self.env.kube.functions(ns) if marker in (code_of(f) or "")]
        self.assertEqual(len(fns), 1)

        # Use is recorded for idle scale-down.
        gt.wait_for(lambda: self.env.kube.function(ns, fn["metadata"]["name"])
                    .get("status", {}).get("lastUsedTime"), 10, what="status.lastUsedTime")

    def test_02_content_key_presign_tag_code(self):
        marker = "# content-key"
        code = "import helper\ndef add_one(x: int) -> int:\n    return helper.f(x)\n" + marker
        loc = "@udf_import_stage/imports/helper.py"
        s = spec(code=code, imports=[loc])
        t, result = self.make_ready_when_created(self.tenant, marker)
        r1 = call(self.env, request(s, [(loc, "http://127.0.0.1:9/helper.py?sig=1", '"etag-a"')]),
                  self.tenant)
        t.join()
        fn = result["fn"]
        ns, name = fn["metadata"]["namespace"], fn["metadata"]["name"]
        self.assertEqual(fn["spec"]["imports"][0]["tag"], '"etag-a"')
        # A fresh presign of the same content: same function, answered at once.
        r2 = call(self.env, request(s, [(loc, "http://127.0.0.1:9/helper.py?sig=2", '"etag-a"')]),
                  self.tenant)
        self.assertEqual(r1.endpoint, r2.endpoint)
        names = {f["metadata"]["name"] for f in self.env.kube.functions(ns)
                 if marker in (code_of(f) or "")}
        self.assertEqual(names, {name})

        # A changed tag is new content: a second function.
        with self.assertRaises(grpc.RpcError) as ctx:
            call(self.env, request(s, [(loc, "http://127.0.0.1:9/helper.py?sig=3", '"etag-b"')]),
                 self.tenant, timeout=1.0)
        self.assertEqual(ctx.exception.code(), grpc.StatusCode.UNAVAILABLE)
        names = {f["metadata"]["name"] for f in self.env.kube.functions(ns)
                 if marker in (code_of(f) or "")}
        self.assertEqual(len(names), 2)
        # So is changed code.
        s2 = spec(code=code + "\n# v2", imports=[loc])
        with self.assertRaises(grpc.RpcError):
            call(self.env, request(s2, [(loc, "http://127.0.0.1:9/h?sig=4", '"etag-a"')]),
                 self.tenant, timeout=1.0)
        names = {f["metadata"]["name"] for f in self.env.kube.functions(ns)
                 if marker in (code_of(f) or "")}
        self.assertEqual(len(names), 3)

    def test_03_deadline_unavailable_not_deadline_exceeded(self):
        s = spec(code="def add_one(x):\n    return x\n# never-ready\n")
        details = self.expect_error(grpc.StatusCode.UNAVAILABLE, call, self.env, request(s),
                                    self.tenant, timeout=1.0)
        self.assertIn("still being provisioned", details)
        # Again, now the function exists: same answer, still before the deadline.
        self.expect_error(grpc.StatusCode.UNAVAILABLE, call, self.env, request(s), self.tenant,
                          timeout=1.0)

    def test_04_deadline_with_known_endpoint(self):
        marker = "# endpoint-known"
        s = spec(code="def add_one(x):\n    return x\n" + marker)
        with self.assertRaises(grpc.RpcError):
            call(self.env, request(s), self.tenant, timeout=1.0)
        fn = self.env.wait_function(self.tenant, lambda f: marker in (code_of(f) or ""))
        self.env.fc.publish_endpoint(fn["metadata"]["namespace"], fn["metadata"]["name"],
                                     "http://10.9.9.9:8815", token="early-token")
        time.sleep(0.5)
        resp = call(self.env, request(s), self.tenant, timeout=1.0)
        self.assertEqual(resp.endpoint, "http://10.9.9.9:8815")
        self.assertEqual(dict(resp.headers), {"x-authorization": "early-token"})

    def test_05_failed_precondition_with_reason(self):
        marker = "# fails"
        s = spec(code="def add_one(x):\n    return x\n" + marker, packages=["nopkg==9.9"])
        reason = "ERROR: No matching distribution found for nopkg==9.9"

        def fail_it():
            fn = self.env.wait_function(self.tenant, lambda f: marker in (code_of(f) or ""))
            time.sleep(0.2)
            self.env.fc.fail(fn["metadata"]["namespace"], fn["metadata"]["name"],
                             "PackagesInstalled", reason)
        t = threading.Thread(target=fail_it)
        t.start()
        details = self.expect_error(grpc.StatusCode.FAILED_PRECONDITION, call, self.env,
                                    request(s), self.tenant)
        t.join()
        self.assertIn(reason, details)
        # Known failure: answered at once.
        t0 = time.monotonic()
        self.expect_error(grpc.StatusCode.FAILED_PRECONDITION, call, self.env, request(s),
                          self.tenant)
        self.assertLess(time.monotonic() - t0, 1.0)

    def test_06_invalid_arguments(self):
        inv = grpc.StatusCode.INVALID_ARGUMENT
        e = self.env
        loc = "@st/imports/a.py"
        cases = [
            (request("{not json"), "not valid JSON"),
            (request(""), "spec is empty"),
            (request(spec(handler=...)), "handler"),
            (request(spec(handler="1abc")), "spec.handler"),
            (request(spec(handler="def")), "spec.handler"),
            (request(spec(code="")), "spec.code"),
            (request(spec(code=...)), "code"),
            (request(spec(input_types=["INTEGRAL"])), "spec.input_types[0]"),
            (request(spec(result_type="ARRAY(INT")), "spec.result_type"),
            (request(spec(result_type=...)), "result_type"),
            (request(spec(version=2)), "spec.version"),
            (request(spec(language="javascript")), "spec.language"),
            (request(spec(packages=["--index-url=http://x"])), "spec.packages[0]"),
            (request(spec(runtime_version="latest")), "spec.runtime_version"),
            (request(spec(imports=[loc])), loc),
            (request(spec(), [(loc, "http://h/a.py", "t")]), loc),
            (request(spec(imports=[loc]), [(loc, "ftp://h/a.py", "t")]), "url"),
            (request(spec(imports=[loc]), [(loc, "http://h/a.py", "")]), "tag"),
            (request(spec(input_types="INT")), "spec.input_types"),
            (request(spec(code="x" * ((1 << 20) + 1))), "spec.code"),
        ]
        for req, needle in cases:
            with self.subTest(needle=needle):
                self.expect_error(inv, call, e, req, self.tenant, contains=needle)
        # Imports compare as multisets: two entries for a location listed twice are fine.
        ok_spec = spec(imports=[loc, loc], code="def add_one(x):\n    return x\n# multiset\n")
        self.expect_error(grpc.StatusCode.UNAVAILABLE, call, e,
                          request(ok_spec, [(loc, "http://h/a.py?1", "t"),
                                            (loc, "http://h/a.py?2", "t")]),
                          self.tenant, timeout=1.0)
        self.expect_error(inv, call, e, request(ok_spec, [(loc, "http://h/a.py?1", "t")]),
                          self.tenant, contains="spec.imports[1]")
        # Tenants: missing, too long (gRPC metadata is printable ASCII; a tenant_id that is
        # not is checked in test_worker_service).
        for tenant, needle in ((None, "tenant"), ("", "tenant"), ("t" * 129, "129 bytes")):
            with self.subTest(tenant=tenant):
                self.expect_error(inv, call, e, request(spec()), tenant, contains=needle)
        # Undecodable request bytes.
        raw = self.env.channel.unary_unary("/udfproto.UdfService/ApplyUdfResource")
        with self.assertRaises(grpc.RpcError) as ctx:
            raw(b"\xff\xff\xff", metadata=metadata(self.tenant), timeout=5)
        self.assertEqual(ctx.exception.code(), inv)

    def test_07_tenants_are_injective(self):
        a, b = f"inj_{gt.PID}", f"inj-{gt.PID}"
        s = spec(code="def add_one(x):\n    return x\n# injective\n")
        for tenant in (a, b):
            self.expect_error(grpc.StatusCode.UNAVAILABLE, call, self.env, request(s), tenant,
                              timeout=1.0)
        na, nb = self.env.namespace_of(a), self.env.namespace_of(b)
        self.assertIsNotNone(na)
        self.assertIsNotNone(nb)
        self.assertNotEqual(na, nb)
        gt.log(f"tenants {a!r} -> {na}, {b!r} -> {nb}")

    @contextlib.contextmanager
    def operator_against(self, server):
        """An operator whose kubeconfig points at server instead of the cluster; yields the
        operator and a UdfService stub connected to it."""
        with open(self.env.kubeconfig) as f:
            cfg = yaml.safe_load(f)
        cfg["clusters"][0]["cluster"]["server"] = server
        with tempfile.NamedTemporaryFile("w", suffix=".kubeconfig", delete=False) as f:
            yaml.safe_dump(cfg, f)
        try:
            with gt.OperatorProcess(f.name, "--tenant-namespace-prefix", gt.NS_PREFIX,
                                    *gt.FAKE_CONTROLLER_ARGS) as op:
                ch = grpc.insecure_channel(op.grpc_address)
                try:
                    grpc.channel_ready_future(ch).result(timeout=10)
                    yield op, gt.udf_pb2_grpc.UdfServiceStub(ch)
                finally:
                    ch.close()
        finally:
            os.unlink(f.name)

    def test_08_unreachable_api_server(self):
        with self.operator_against("https://127.0.0.1:1") as (op, stub):
            with self.assertRaises(grpc.RpcError) as ctx:
                stub.ApplyUdfResource(request(spec()), metadata=metadata(self.tenant),
                                      timeout=5)
            self.assertEqual(ctx.exception.code(), grpc.StatusCode.UNAVAILABLE)
            self.assertIn("unreachable", ctx.exception.details())
            self.assertEqual(op.stop(), 0)

    def test_09_hung_api_server_still_answers_before_the_deadline(self):
        """An API server that accepts connections and never answers: the call still gets the
        server's own answer (UNAVAILABLE) before its 1 s deadline."""
        import socket
        lsock = socket.socket()
        lsock.bind(("127.0.0.1", 0))
        lsock.listen(64)
        held = []
        stop = threading.Event()

        def accept():
            lsock.settimeout(0.2)
            while not stop.is_set():
                try:
                    held.append(lsock.accept()[0])
                except OSError:
                    pass
        t = threading.Thread(target=accept, daemon=True)
        t.start()
        try:
            server = f"https://127.0.0.1:{lsock.getsockname()[1]}"
            with self.operator_against(server) as (op, stub):
                for _ in range(3):
                    with self.assertRaises(grpc.RpcError) as ctx:
                        stub.ApplyUdfResource(request(spec()), metadata=metadata(self.tenant),
                                              timeout=1.0)
                    self.assertEqual(ctx.exception.code(), grpc.StatusCode.UNAVAILABLE,
                                     ctx.exception.details())
                op.stop(timeout=60)
        finally:
            stop.set()
            t.join()
            for c in held:
                c.close()
            lsock.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
