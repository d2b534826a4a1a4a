"""A pod reaches the API server the way every in-cluster client does, on the local cluster's node.

A runc pod of the worker image (its Python) with its service-account token mounted connects to
KUBERNETES_SERVICE_HOST:KUBERNETES_SERVICE_PORT (Service "kubernetes", routed by kube-proxy to
the address hack/cluster.sh binds and advertises), verifies the server's certificate for the
name kubernetes.default.svc against the projected ca.crt, and asks who it is
(SelfSubjectReview) with its token: the answer must be its own service account. The cluster has
no DNS, so the name is checked in TLS, not resolved. The shared cluster with its node: a cluster
made by an hack/cluster.sh older than the API address (its apiserver on 127.0.0.1) fails here,
saying how to make it anew.
"""

import json
import os
import sys
import time

from cluster import cluster_env, kubectl

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "node"))
from nodelib import WORKER_IMAGE, Namespace, check, ensure_node, finish  # noqa: E402

CLIENT = r"""
import json, os, socket, ssl, sys
sa = "/var/run/secrets/kubernetes.io/serviceaccount"
host, port = os.environ["KUBERNETES_SERVICE_HOST"], int(os.environ["KUBERNETES_SERVICE_PORT"])
token = open(sa + "/token").read().strip()
ctx = ssl.create_default_context(cafile=sa + "/ca.crt")
body = json.dumps({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}).encode()
with socket.create_connection((host, port), timeout=10) as raw:
    with ctx.wrap_socket(raw, server_hostname="kubernetes.default.svc") as s:
        s.sendall(b"POST /apis/authentication.k8s.io/v1/selfsubjectreviews HTTP/1.1\r\n"
                  b"Host: kubernetes.default.svc\r\nAuthorization: Bearer " + token.encode() +
                  b"\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: " +
                  str(len(body)).encode() + b"\r\n\r\n" + body)
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
head, _, rest = data.partition(b"\r\n\r\n")
status = head.split(b" ")[1].decode()
if b"chunked" in head.lower():
    out, buf = b"", rest
    while buf:
        n, _, buf = buf.partition(b"\r\n")
        n = int(n, 16)
        if n == 0:
            break
        out, buf = out + buf[:n], buf[n + 2:]
    rest = out
print(json.dumps({"server": "%s:%d" % (host, port), "status": status,
                  "user": json.loads(rest).get("status", {}).get("userInfo", {}).get("username")}))
"""


def main():
    ensure_node()
    addr = cluster_env("api-address")
    if not check(not addr.startswith("127."),
                 f"the apiserver listens on {addr}, not an address pods reach: this cluster's state "
                 "predates hack/cluster.sh's API address; `hack/cluster.sh down && hack/cluster.sh up` "
                 "makes it anew"):
        return finish()
    with Namespace("podapi") as ns:
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "apiclient"},
               "spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 1,
                        "containers": [{"name": "main", "image": WORKER_IMAGE, "imagePullPolicy": "Never",
                                        "command": ["/opt/udf/venv/bin/python", "-c", CLIENT]}]}}
        ns.apply(pod)
        deadline = time.time() + 120
        phase = ""
        while time.time() < deadline:
            phase = ns.pod("apiclient")["status"].get("phase", "")
            if phase in ("Succeeded", "Failed"):
                break
            time.sleep(1)
        logs = ns.kubectl("logs", "apiclient", check=False)
        check(phase == "Succeeded", f"the client pod finished: {phase}\n{logs.stdout}{logs.stderr}")
        if phase == "Succeeded":
            got = json.loads(logs.stdout.strip().splitlines()[-1])
            svc = json.loads(kubectl("get", "svc", "-n", "default", "kubernetes", "-o", "json").stdout)
            check(got["server"] == f"{svc['spec']['clusterIP']}:443",
                  f"the pod used Service kubernetes ({got['server']})")
            check(got["status"] == "201", f"SelfSubjectReview answered {got['status']}")
            check(got["user"] == f"system:serviceaccount:{ns.name}:default",
                  f"the API server knows the pod as its service account ({got['user']})")
    return finish()


if __name__ == "__main__":
    sys.exit(main())
