"""Protocols 2 and 3 against the real operator and API server.

ResourceService/ApplyResource and WorkerService/CreateWorker with Databend-style scripts whose
presigned urls change on every call: the content key reads each url's ETag with a one-byte
ranged GET (from a local object-store stand-in), so a fresh presign reuses the function and
changed content re-provisions. Worker records: create (ALREADY_EXISTS / if_not_exists), alter
tags and options, suspend / resume, list, drop (NOT_FOUND / if_exists), INVALID_ARGUMENT, the
tenant from tenant_id, and persistence across an operator restart.
"""

import json
import threading
import time
import unittest

import grpc

import grpctest as gt
from grpctest import metadata, resource_pb2
from importserver import ImportServer

SERVER_STUB = "from databend_udf import UDFServer\n# the stub Databend sends\n"


def databend_script(code, imports=(), packages=()):
    """A script shaped like the one Databend's query node sends (docs/PROTOCOL.md)."""
    lines = ["#!/usr/bin/env bash", "set -euo pipefail", "mkdir -p /app", "cd /app"]
    if packages:
        lines.append("python -m pip install --no-cache-dir " + " ".join(packages))
    if imports:
        entries = [{"location": loc, "url": url, "headers": {}} for loc, url in imports]
        lines.append("cat > /app/imports.json <<'UDF_IMPORTS_EOF'")
        lines.append(json.dumps(entries))
        lines.append("UDF_IMPORTS_EOF")
        lines.append("mkdir -p /app/imports")
        for loc, url in imports:
            base = loc.rsplit("/", 1)[-1]
            lines.append(f"curl -fsSL '{url}' -o '/app/imports/{base}'")
    lines += ["cat > /app/udf.py <<'UDF_CODE_EOF'", code, "UDF_CODE_EOF",
              "cat > /app/server.py <<'UDF_SERVER_EOF'", SERVER_STUB, "UDF_SERVER_EOF",
              "exec python /app/server.py"]
    return "\n".join(lines) + "\n"


class WorkerService(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # The object-store stand-in is on 127.0.0.2, which this operator's block list leaves
        # out (loopback is blocked by default).
        cls.env = gt.Env("--blocked-cidrs", gt.TEST_BLOCKED_CIDRS)
        cls.tenant = f"worker_tenant_{gt.PID}"
        cls.files = ImportServer({"helper.py": b"def f(x):\n    return x + 1\n",
                                  "data.txt": b"hello"}, host=gt.IMPORT_HOST)
        cls.files.__enter__()

    @classmethod
    def tearDownClass(cls):
        cls.files.__exit__(None, None, None)
        cls.env.close_and_check()

    def expect_error(self, code, fn, *args, contains=None, **kw):
        with self.assertRaises(grpc.RpcError) as ctx:
            fn(*args, **kw)
        self.assertEqual(ctx.exception.code(), code, ctx.exception.details())
        if contains:
            self.assertIn(contains, ctx.exception.details())
        return ctx.exception.details()

    def apply_resource(self, script, timeout=5.0, tenant=None):
        return self.env.resource.ApplyResource(
            resource_pb2.ApplyResourceRequest(type="udf", script=script),
            metadata=metadata(tenant or self.tenant, "resource_client_version"), timeout=timeout)

    def create_worker(self, name, script="", timeout=5.0, tenant=None, md_tenant=True, **kw):
        tenant = self.tenant if tenant is None else tenant
        req = resource_pb2.CreateWorkerRequest(tenant_id=tenant, name=name, script=script, **kw)
        md = metadata(tenant if md_tenant else None, "worker_client_version")
        return self.env.worker.CreateWorker(req, metadata=md, timeout=timeout)

    def ready_in_background(self, predicate):
        result = {}

        def run():
            fn = self.env.wait_function(self.tenant, predicate)
            result["fn"] = fn
            md = fn["metadata"]
            result["endpoint"], result["token"] = self.env.fc.make_ready(md["namespace"],
                                                                        md["name"])
        t = threading.Thread(target=run)
        t.start()
        return t, result

    def test_01_generation2_presign_reuse_and_new_content(self):
        code = "import helper\ndef add_one(x):\n    return helper.f(x)\n# gen2\n"
        loc = "@stage/imports/helper.py"

        def script():
            return databend_script(code, [(loc, self.files.presign("helper.py"))])
        t, result = self.ready_in_background(lambda f: "# gen2" in f["spec"].get("script", ""))
        r1 = self.apply_resource(script())
        t.join()
        self.assertEqual(r1.endpoint, result["endpoint"])
        self.assertEqual(dict(r1.headers), {"x-authorization": result["token"]})
        name = result["fn"]["metadata"]["name"]
        self.assertTrue(name.startswith("r-"), name)
        ranged = [r for r in self.files.requests if r == ("helper.py", "bytes=0-0")]
        self.assertTrue(ranged, "the ETag was read with a one-byte ranged GET")

        # A fresh presign: same function, answered at once.
        t0 = time.monotonic()
        r2 = self.apply_resource(script())
        gt.log(f"protocol 2 hot call (one ranged GET): {(time.monotonic() - t0) * 1000:.1f} ms")
        self.assertEqual(r2.endpoint, r1.endpoint)
        ns = result["fn"]["metadata"]["namespace"]
        fns = [f for f in self.env.kube.functions(ns) if "# gen2" in f["spec"].get("script", "")]
        self.assertEqual([f["metadata"]["name"] for f in fns], [name])

        # The file changed (new ETag): a new function.
        self.files.files["helper.py"] = b"def f(x):\n    return x + 2\n"
        try:
            self.expect_error(grpc.StatusCode.UNAVAILABLE, self.apply_resource, script(),
                              timeout=1.0)
        finally:
            self.files.files["helper.py"] = b"def f(x):\n    return x + 1\n"
        fns = [f for f in self.env.kube.functions(ns) if "# gen2" in f["spec"].get("script", "")]
        self.assertEqual(len(fns), 2)

        # An import that cannot be read: FAILED_PRECONDITION naming it, not a hang (and not
        # the store's status: the operator is no oracle for what answers where, issue 15).
        bad = databend_script(code, [("@stage/imports/missing.py",
                                      self.files.presign("missing.py"))])
        details = self.expect_error(grpc.StatusCode.FAILED_PRECONDITION, self.apply_resource,
                                    bad, contains="missing.py")
        self.assertNotIn("404", details)
        # Bad requests.
        self.expect_error(grpc.StatusCode.INVALID_ARGUMENT, self.apply_resource, "",
                          contains="script")
        self.expect_error(grpc.StatusCode.INVALID_ARGUMENT,
                          self.env.resource.ApplyResource,
                          resource_pb2.ApplyResourceRequest(type="spark", script="x"),
                          metadata=metadata(self.tenant), timeout=5, contains="type")

    def test_02_generation3_udf_worker(self):
        code = "def add_two(x):\n    return x + 2\n# gen3\n"
        loc = "@stage/imports/data.txt"

        def script(c=code):
            return databend_script(c, [(loc, self.files.presign("data.txt"))], ["numpy"])
        t, result = self.ready_in_background(lambda f: "# gen3" in f["spec"].get("script", ""))
        r1 = self.create_worker("add_two", script(), if_not_exists=True, type="udf")
        t.join()
        self.assertEqual(r1.endpoint, result["endpoint"])
        self.assertEqual(dict(r1.headers), {"x-authorization": result["token"]})
        self.assertEqual(r1.worker.name, "add_two")
        fn = result["fn"]
        self.assertTrue(fn["metadata"]["name"].startswith("w-add-two-"), fn["metadata"]["name"])
        self.assertEqual(fn["spec"]["functionName"], "add_two")
        ns, name = fn["metadata"]["namespace"], fn["metadata"]["name"]

        r2 = self.create_worker("add_two", script(), if_not_exists=True, type="udf")
        self.assertEqual(r2.endpoint, r1.endpoint)
        self.assertEqual(self.env.kube.function(ns, name)["metadata"]["generation"],
                         fn["metadata"]["generation"], "a fresh presign did not touch the spec")

        # New code under the same UDF name rolls the same function.
        self.expect_error(grpc.StatusCode.UNAVAILABLE, self.create_worker, "add_two",
                          script(code + "# v2\n"), if_not_exists=True, type="udf", timeout=1.0)
        after = self.env.kube.function(ns, name)
        self.assertGreater(after["metadata"]["generation"], fn["metadata"]["generation"])
        self.assertIn("# v2", after["spec"]["script"])
        # It shows in SHOW WORKERS.
        names = [w.name for w in self.list_workers()]
        self.assertIn("add_two", names)

    def test_05_script_provisioning_failure(self):
        code = "def broken(x):\n    return x\n# gen3-fails\n"
        reason = "ERROR: No matching distribution found for nopkg==9.9"

        def fail_it():
            fn = self.env.wait_function(self.tenant,
                                        lambda f: "# gen3-fails" in f["spec"].get("script", ""))
            time.sleep(0.2)
            self.env.fc.fail(fn["metadata"]["namespace"], fn["metadata"]["name"],
                             "PackagesInstalled", reason)
        t = threading.Thread(target=fail_it)
        t.start()
        details = self.expect_error(grpc.StatusCode.FAILED_PRECONDITION, self.create_worker,
                                    "broken", databend_script(code, packages=["nopkg==9.9"]),
                                    if_not_exists=True, type="udf")
        t.join()
        self.assertIn(reason, details)
        self.assertIn("broken", details)

    def list_workers(self, tenant=None):
        return self.env.worker.ListWorkers(
            resource_pb2.ListWorkersRequest(tenant_id=tenant or self.tenant),
            metadata=metadata(tenant or self.tenant, "worker_client_version"), timeout=5).workers

    def alter(self, name, **kw):
        return self.env.worker.AlterWorker(
            resource_pb2.AlterWorkerRequest(tenant_id=self.tenant, name=name, **kw),
            metadata=metadata(self.tenant, "worker_client_version"), timeout=5)

    def drop(self, name, if_exists=False):
        return self.env.worker.DropWorker(
            resource_pb2.DropWorkerRequest(tenant_id=self.tenant, name=name, if_exists=if_exists),
            metadata=metadata(self.tenant, "worker_client_version"), timeout=5)

    def test_03_worker_records(self):
        w = self.create_worker("etl_pool", options={"size": "small", "max_rows": "100"},
                               tags={"team": "data"})
        self.assertEqual(w.endpoint, "")
        self.assertEqual(w.worker.name, "etl_pool")
        self.assertEqual(dict(w.worker.options), {"size": "small", "max_rows": "100"})
        self.assertEqual(dict(w.worker.tags), {"team": "data"})
        self.assertTrue(w.worker.created_at)
        self.expect_error(grpc.StatusCode.ALREADY_EXISTS, self.create_worker, "etl_pool",
                          contains="etl_pool")
        again = self.create_worker("etl_pool", if_not_exists=True, options={"size": "big"})
        self.assertEqual(dict(again.worker.options)["size"], "small", "unchanged")

        a = self.alter("etl_pool", set_tags={"env": "prod"}, unset_tags=["team"],
                       set_options={"size": "large"}, unset_options=["max_rows"])
        self.assertEqual(dict(a.worker.tags), {"env": "prod"})
        self.assertEqual(dict(a.worker.options), {"size": "large"})
        s = self.alter("etl_pool", state_action=resource_pb2.AlterWorkerRequest.Suspend)
        self.assertEqual(dict(s.worker.options)["suspended"], "true")
        ns = self.env.namespace_of(self.tenant)
        objs = [f for f in self.env.kube.functions(ns)
                if f["spec"].get("functionName") == "etl_pool"]
        self.assertEqual(objs[0]["spec"]["replicas"], 0)
        self.assertNotIn("script", objs[0]["spec"])
        r = self.alter("etl_pool", state_action=resource_pb2.AlterWorkerRequest.Resume)
        self.assertEqual(dict(r.worker.options)["suspended"], "false")

        self.create_worker("another_one")
        names = [x.name for x in self.list_workers()]
        self.assertEqual(names, sorted(names))
        self.assertIn("etl_pool", names)
        self.assertIn("another_one", names)

        # Another tenant sees none of them.
        self.assertEqual(list(self.list_workers(tenant=f"other_{gt.PID}")), [])

        # Persisted: a new operator process lists the same workers.
        self.env.op.stop()
        self.env.op = gt.OperatorProcess(self.env.kubeconfig, "--tenant-namespace-prefix",
                                         gt.NS_PREFIX, *gt.FAKE_CONTROLLER_ARGS)
        self.env.op.__enter__()
        self.env.channel = grpc.insecure_channel(self.env.op.grpc_address)
        grpc.channel_ready_future(self.env.channel).result(timeout=10)
        self.env.worker = gt.resource_pb2_grpc.WorkerServiceStub(self.env.channel)
        self.env.resource = gt.resource_pb2_grpc.ResourceServiceStub(self.env.channel)
        restarted = {x.name: x for x in self.list_workers()}
        self.assertEqual(dict(restarted["etl_pool"].options),
                         {"size": "large", "suspended": "false"})

        self.drop("another_one")
        self.expect_error(grpc.StatusCode.NOT_FOUND, self.drop, "another_one",
                          contains="another_one")
        self.drop("another_one", if_exists=True)
        self.expect_error(grpc.StatusCode.NOT_FOUND, self.alter, "another_one",
                          set_tags={"a": "b"})
        self.assertNotIn("another_one", [x.name for x in self.list_workers()])

    def test_04_worker_errors_and_tenant_id(self):
        inv = grpc.StatusCode.INVALID_ARGUMENT
        self.expect_error(inv, self.create_worker, "", contains="name")
        self.expect_error(inv, self.create_worker, "x", type="spark", contains="type")
        self.expect_error(inv, self.alter, "", contains="name")
        self.expect_error(inv, self.drop, "", contains="name")
        # No metadata tenant: tenant_id names it.
        w = self.create_worker("by_tenant_id", md_tenant=False)
        self.assertEqual(w.worker.name, "by_tenant_id")
        self.assertIn("by_tenant_id", [x.name for x in self.list_workers()])
        # A tenant_id that is not printable, or too long.
        self.expect_error(inv, self.create_worker, "x", tenant="bad\ttenant", md_tenant=False,
                          contains="printable")
        self.expect_error(inv, self.create_worker, "x", tenant="t" * 200, md_tenant=False,
                          contains="200 bytes")
        self.expect_error(inv, self.create_worker, "x", md_tenant=False, tenant="",
                          contains="tenant")


if __name__ == "__main__":
    unittest.main(verbosity=2)
