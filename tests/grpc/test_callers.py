"""Confining who calls the operator (issue 15): mutual TLS and the tenant pattern.

--grpc-tls-client-ca makes the TLS handshake require a client certificate signed by that CA:
a grpcio client without a certificate, or with one from another CA, never reaches a service;
one with a good certificate does. --tenant-pattern refuses every call of a tenant the POSIX
extended regular expression does not match whole, naming the pattern. Certificates are made by
openssl for this run, in a temporary directory.
"""

import os
import subprocess
import tempfile
import unittest

import grpc

import grpctest as gt
from grpctest import metadata, resource_pb2, resource_pb2_grpc
from udfop import OperatorProcess, wait_for


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_pki(d):
    """ca (trusted for clients), server cert for 127.0.0.1, a client cert from ca and one from
    another CA."""
    for ca in ("ca", "rogue-ca"):
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                "-nodes", "-keyout", f"{ca}.key", "-out", f"{ca}.crt", "-days", "1",
                "-subj", f"/CN={ca}", cwd=d)
    with open(os.path.join(d, "server.ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    with open(os.path.join(d, "client.ext"), "w") as f:
        f.write("extendedKeyUsage=clientAuth\n")
    for name, ca, ext in (("server", "ca", "server.ext"), ("client", "ca", "client.ext"),
                          ("rogue", "rogue-ca", "client.ext")):
        openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}", cwd=d)
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
                "-CAcreateserial", "-out", f"{name}.crt", "-days", "1", "-extfile", ext, cwd=d)


def read(d, name):
    with open(os.path.join(d, name), "rb") as f:
        return f.read()


class Callers(unittest.TestCase):
    def test_mutual_tls(self):
        kubeconfig = gt.ensure_cluster()
        with tempfile.TemporaryDirectory() as d:
            make_pki(d)
            op = OperatorProcess(kubeconfig, "--tenant-namespace-prefix", gt.NS_PREFIX,
                                 "--grpc-tls-cert", os.path.join(d, "server.crt"),
                                 "--grpc-tls-key", os.path.join(d, "server.key"),
                                 "--grpc-tls-client-ca", os.path.join(d, "ca.crt"))
            with op:
                wait_for(lambda: "gRPC listening" in op.output(), 10, what="the operator")
                self.assertIn("mutual TLS", op.output())
                tenant = f"mtls_{gt.PID}"

                def list_workers(key=None, cert=None):
                    creds = grpc.ssl_channel_credentials(
                        root_certificates=read(d, "ca.crt"),
                        private_key=read(d, key) if key else None,
                        certificate_chain=read(d, cert) if cert else None)
                    with grpc.secure_channel(op.grpc_address, creds) as ch:
                        stub = resource_pb2_grpc.WorkerServiceStub(ch)
                        return stub.ListWorkers(resource_pb2.ListWorkersRequest(tenant_id=tenant),
                                                metadata=metadata(tenant, "worker_client_version"),
                                                timeout=5)

                for key, cert in ((None, None), ("rogue.key", "rogue.crt")):
                    with self.assertRaises(grpc.RpcError) as ctx:
                        list_workers(key, cert)
                    gt.log(f"client cert {cert}: {ctx.exception.code().name}")
                    self.assertEqual(ctx.exception.code(), grpc.StatusCode.UNAVAILABLE,
                                     ctx.exception.details())
                resp = list_workers("client.key", "client.crt")
                self.assertEqual(len(resp.workers), 0)
                # Plaintext gets nowhere either.
                with grpc.insecure_channel(op.grpc_address) as ch:
                    with self.assertRaises(grpc.RpcError) as ctx:
                        resource_pb2_grpc.WorkerServiceStub(ch).ListWorkers(
                            resource_pb2.ListWorkersRequest(tenant_id=tenant),
                            metadata=metadata(tenant, "worker_client_version"), timeout=3)
                    self.assertEqual(ctx.exception.code(), grpc.StatusCode.UNAVAILABLE)
            self.assertEqual(op.stop(), 0)

    def test_client_ca_needs_tls(self):
        from udfop import operator_binary
        r = subprocess.run([operator_binary(), "--grpc-tls-client-ca", "/nonexistent"],
                           capture_output=True, text=True, timeout=10)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("--grpc-tls-client-ca needs --grpc-tls-cert", r.stderr)

    def test_tenant_pattern(self):
        env = gt.Env("--tenant-pattern", "acme_[a-z0-9_]+")
        try:
            ok = f"acme_{gt.PID}"
            resp = env.worker.ListWorkers(resource_pb2.ListWorkersRequest(tenant_id=ok),
                                          metadata=metadata(ok, "worker_client_version"),
                                          timeout=5)
            self.assertEqual(len(resp.workers), 0)
            for bad in (f"other_{gt.PID}", f"xacme_{gt.PID}", f"acme_{gt.PID}-x"):
                with self.assertRaises(grpc.RpcError) as ctx:
                    env.worker.ListWorkers(resource_pb2.ListWorkersRequest(tenant_id=bad),
                                           metadata=metadata(bad, "worker_client_version"),
                                           timeout=5)
                self.assertEqual(ctx.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
                self.assertIn("acme_[a-z0-9_]+", ctx.exception.details())
                self.assertIn("--tenant-pattern", ctx.exception.details())
            with self.assertRaises(grpc.RpcError) as ctx:
                env.udf.ApplyUdfResource(gt.request(gt.spec()), metadata=metadata("nope"),
                                         timeout=5)
            self.assertEqual(ctx.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
            self.assertIn("--tenant-pattern", ctx.exception.details())
        finally:
            env.close_and_check()


if __name__ == "__main__":
    unittest.main(verbosity=2)
