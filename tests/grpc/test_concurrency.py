"""1000 concurrent ApplyUdfResource calls for one UDF create exactly one UdfFunction and all get
its endpoint once it is Ready; 1000 more with fresh presigned urls and the same tag reuse it
(answered from the caches); 1000 with a changed tag create exactly one more; a 1 s deadline
gets the server's own answer, never DEADLINE_EXCEEDED, even under that load."""

import collections
import threading
import time
import unittest

import grpc

import grpctest as gt
from grpctest import metadata, request, spec

N = 1000


class Concurrency(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.env = gt.Env()
        cls.tenant = f"conc_tenant_{gt.PID}"

    @classmethod
    def tearDownClass(cls):
        cls.env.close_and_check()

    def burst(self, req_for, timeout=10.0):
        futures = [self.env.udf.ApplyUdfResource.future(req_for(i), metadata=metadata(self.tenant),
                                                        timeout=timeout) for i in range(N)]
        outcomes = collections.Counter()
        endpoints = set()
        for f in futures:
            try:
                r = f.result()
                outcomes["OK"] += 1
                endpoints.add((r.endpoint, r.headers["x-authorization"]))
            except grpc.RpcError as e:
                outcomes[e.code().name] += 1
        return outcomes, endpoints

    def functions(self, marker):
        ns = self.env.namespace_of(self.tenant)
        return [f for f in self.env.kube.functions(ns) if marker in f["spec"].get("code", "")]

    def test_thousand_calls_one_function(self):
        marker = "# concurrency"
        code = "import helper\ndef add_one(x):\n    return helper.f(x)\n" + marker + "\n"
        loc = "@stage/imports/helper.py"
        s = spec(code=code, imports=[loc])

        made = {}

        def controller():
            fn = self.env.wait_function(self.tenant, lambda f: marker in f["spec"].get("code", ""),
                                        timeout=30)
            time.sleep(0.5)
            md = fn["metadata"]
            made["ep"] = self.env.fc.make_ready(md["namespace"], md["name"])
        t = threading.Thread(target=controller)
        t.start()
        t0 = time.monotonic()
        outcomes, endpoints = self.burst(
            lambda i: request(s, [(loc, f"http://127.0.0.1:9/helper.py?sig={i}", '"tag-1"')]))
        gt.log(f"{N} concurrent cold calls: {dict(outcomes)} in {time.monotonic() - t0:.2f} s")
        t.join()
        self.assertEqual(outcomes, {"OK": N})
        self.assertEqual(endpoints, {made["ep"]})
        self.assertEqual(len(self.functions(marker)), 1)

        # Fresh presigns, same tag: reused, answered from the caches.
        t0 = time.monotonic()
        outcomes, endpoints = self.burst(
            lambda i: request(s, [(loc, f"http://127.0.0.1:9/helper.py?sig=x{i}", '"tag-1"')]))
        gt.log(f"{N} concurrent hot calls: {dict(outcomes)} in {time.monotonic() - t0:.2f} s")
        self.assertEqual(outcomes, {"OK": N})
        self.assertEqual(endpoints, {made["ep"]})
        self.assertEqual(len(self.functions(marker)), 1)

        # A changed tag: exactly one more function; nobody makes it ready, so every call gets
        # the server's answer before its 1 s deadline.
        t0 = time.monotonic()
        outcomes, _ = self.burst(
            lambda i: request(s, [(loc, f"http://127.0.0.1:9/helper.py?sig=y{i}", '"tag-2"')]),
            timeout=1.0)
        gt.log(f"{N} concurrent calls, 1 s deadline, never ready: {dict(outcomes)} in "
               f"{time.monotonic() - t0:.2f} s")
        self.assertEqual(outcomes, {"UNAVAILABLE": N})
        self.assertEqual(len(self.functions(marker)), 2)


if __name__ == "__main__":
    unittest.main(verbosity=2)
