"""The operator's gRPC health check follows the API server's reachability.

Starts the operator while its private cluster's kube-apiserver is down (NOT_SERVING), brings
the apiserver up (SERVING), takes it down again (NOT_SERVING), then stops the operator with
SIGTERM (clean exit). Uses Python grpcio with stubs generated from proto/health.proto.
"""

import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.request

import grpc

from cluster import CLUSTER_SH, cluster_down, ensure_cluster
from udfop import OperatorProcess, wait_for
from stubs import load

health_pb2, health_pb2_grpc = load("health")
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
PORT_BASE = 17443


def http_status(addr, path):
    try:
        with urllib.request.urlopen(f"http://{addr}{path}", timeout=2) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


class HealthFollowsApiServer(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.state = tempfile.mkdtemp(prefix="udf-health-cluster-")
        cls.kubeconfig = ensure_cluster(state_dir=cls.state, port_base=PORT_BASE)
        cls.env = dict(os.environ, UDF_SANDBOX_STATE=cls.state,
                       UDF_CLUSTER_PORT_BASE=str(PORT_BASE))

    @classmethod
    def tearDownClass(cls):
        cluster_down(state_dir=cls.state, port_base=PORT_BASE)
        shutil.rmtree(cls.state, ignore_errors=True)

    def cluster(self, *args):
        subprocess.run([CLUSTER_SH, *args], check=True, env=self.env, stdout=subprocess.DEVNULL)

    def check(self, stub, service=""):
        return stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=2).status

    def test_not_serving_then_serving_then_not_serving(self):
        self.cluster("stop", "kube-apiserver")
        with OperatorProcess(self.kubeconfig, "--controllers=pools") as op:
            stub = health_pb2_grpc.HealthStub(grpc.insecure_channel(op.grpc_address))
            wait_for(lambda: self.check(stub) is not None, 10, what="gRPC server up")
            # Unreachable API server: NOT_SERVING, and it stays so.
            for _ in range(10):
                self.assertEqual(self.check(stub), NOT_SERVING)
                time.sleep(0.2)
            self.assertEqual(http_status(op.http_address, "/readyz"), 503)
            self.assertEqual(http_status(op.http_address, "/healthz"), 200)

            self.cluster("up", "--control-plane-only")
            wait_for(lambda: self.check(stub) == SERVING, 30, what="SERVING")
            self.assertEqual(self.check(stub, "udfproto.UdfService"), SERVING)
            self.assertEqual(http_status(op.http_address, "/readyz"), 200)
            with self.assertRaises(grpc.RpcError) as ctx:
                self.check(stub, "no.such.Service")
            self.assertEqual(ctx.exception.code(), grpc.StatusCode.NOT_FOUND)

            self.cluster("stop", "kube-apiserver")
            wait_for(lambda: self.check(stub) == NOT_SERVING, 15, what="NOT_SERVING again")

            self.assertEqual(op.stop(), 0, "SIGTERM must end the operator cleanly")
            log = op.output()
            self.assertIn("Kubernetes v1.34.4", log, "the server version is logged")
            self.assertIn("SIGTERM received", log)
            self.assertNotIn("BEGIN", log, "no key material in the log")
        self.cluster("up", "--control-plane-only")


if __name__ == "__main__":
    unittest.main(verbosity=2)
