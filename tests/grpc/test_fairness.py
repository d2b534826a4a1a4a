"""One tenant's slow work cannot stall the others' calls (issue 15).

Tenant A floods the operator with ApplyResource calls whose scripts carry 64 import urls on a
slow object store (each GET waits 3 s); the blocking threads that read ETags are shared by
every tenant. Tenant B's ListWorkers, which also runs on those threads, must still answer
within its 2 s deadline, and A's excess calls are refused with RESOURCE_EXHAUSTED naming the
limit rather than queued without bound.
"""

import collections
import time
import unittest

import grpc

import grpctest as gt
from grpctest import metadata, resource_pb2
from importserver import ImportServer
from test_worker_service import databend_script

N_FLOOD = 40
N_IMPORTS = 64


class Fairness(unittest.TestCase):
    def test_flooding_tenant_does_not_stall_another(self):
        slow = ImportServer({f"m{i}.py": b"x = 1\n" for i in range(N_IMPORTS)},
                            host=gt.IMPORT_HOST, delay=3.0)
        env = gt.Env("--blocked-cidrs", gt.TEST_BLOCKED_CIDRS)
        a, b = f"flood_a_{gt.PID}", f"calm_b_{gt.PID}"
        try:
            with slow:
                futures = []
                for n in range(N_FLOOD):
                    imports = [(f"@stage/imports/m{i}.py", slow.presign(f"m{i}.py"))
                               for i in range(N_IMPORTS)]
                    script = databend_script(f"def f(x):\n    return x  # {n}\n", imports)
                    futures.append(env.resource.ApplyResource.future(
                        resource_pb2.ApplyResourceRequest(type="udf", script=script),
                        metadata=metadata(a, "resource_client_version"), timeout=4.0))
                time.sleep(0.5)  # A's calls hold the threads now
                t0 = time.monotonic()
                resp = env.worker.ListWorkers(
                    resource_pb2.ListWorkersRequest(tenant_id=b),
                    metadata=metadata(b, "worker_client_version"), timeout=2.0)
                took = time.monotonic() - t0
                gt.log(f"tenant B's ListWorkers answered in {took * 1000:.0f} ms "
                       f"({len(resp.workers)} workers) while A floods")
                outcomes = collections.Counter()
                exhausted = []
                for f in futures:
                    try:
                        f.result()
                        outcomes["OK"] += 1
                    except grpc.RpcError as e:
                        outcomes[e.code().name] += 1
                        if e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
                            exhausted.append(e.details())
                gt.log(f"tenant A's {N_FLOOD} calls: {dict(outcomes)}")
                self.assertTrue(exhausted, "no flooding call was refused")
                self.assertIn(a, exhausted[0])
                self.assertIn("limit", exhausted[0])
                gt.log(f"refusal: {exhausted[0]}")
        finally:
            env.close_and_check()


if __name__ == "__main__":
    unittest.main(verbosity=2)
