"""Every hop from a pod to an API server on hack/cluster.sh's API address, on the real node,
whatever the age of the shared cluster.

A private control plane binds and advertises the API address (its own port). On the shared
cluster, a selectorless Service with an EndpointSlice naming that address plays Service
"kubernetes" (kube-proxy turns its ClusterIP into the address, as it does for the real one).
A runc pod on the node connects to the ClusterIP, verifies the server as
kubernetes.default.svc against the private cluster's CA and asks who it is with a token of the
private cluster's service account: the API server must answer 201 with that account. So the
pod network (bridge, the address's filter rule admitting pod sources) and kube-proxy's
translation carry a pod to the address; test_pod_apiserver checks the real Service
"kubernetes" of a cluster made with the address.
"""

import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "node"))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "crds"))

import crdtest  # noqa: E402
from cluster import cluster_env  # noqa: E402
from nodelib import WORKER_IMAGE, Namespace, check, ensure_node, finish  # noqa: E402

CLIENT = r"""
import json, os, socket, ssl, time
ctx = ssl.create_default_context(cadata=os.environ["CA"])
body = json.dumps({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}).encode()
# kube-proxy refuses a Service's port until it has programmed the endpoint: retry a while.
for attempt in range(60):
    try:
        raw = socket.create_connection((os.environ["SVC"], 443), timeout=10)
        break
    except ConnectionRefusedError:
        if attempt == 59:
            raise
        time.sleep(0.5)
with raw:
    with ctx.wrap_socket(raw, server_hostname="kubernetes.default.svc") as s:
        s.sendall(b"POST /apis/authentication.k8s.io/v1/selfsubjectreviews HTTP/1.1\r\nHost: kubernetes.default.svc"
                  b"\r\nAuthorization: Bearer " + os.environ["TOKEN"].encode() + b"\r\nContent-Type: application/json"
                  b"\r\nConnection: close\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
print(json.dumps({"status": data.split(b" ")[1].decode(),
                  "user": "system:serviceaccount:default:default" if b"system:serviceaccount:default:default" in data
                  else None}))
"""


def main():
    ensure_node()
    with crdtest.private_cluster() as private:
        state = os.path.dirname(private.kubeconfig)
        server = [line.split()[-1] for line in open(private.kubeconfig) if line.strip().startswith("server:")][0]
        port = int(server.rsplit(":", 1)[1])
        address = cluster_env("api-address", state_dir=state, port_base=port)
        check(not address.startswith("127."), "the private cluster's API address is not loopback (%s)" % address)
        for _ in range(60):
            if private.kubectl("get", "sa", "default", "-n", "default", check_rc=False).returncode == 0:
                break
            time.sleep(0.5)
        token = private.kubectl("create", "token", "default", "-n", "default").stdout.strip()
        with open(os.path.join(state, "pki", "ca.crt")) as f:
            ca = f.read()
        with Namespace("podaddr") as ns:
            ns.apply({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "api"},
                      "spec": {"ports": [{"name": "https", "port": 443, "targetPort": port, "protocol": "TCP"}]}})
            ns.apply({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                      "metadata": {"name": "api-1", "labels": {"kubernetes.io/service-name": "api"}},
                      "addressType": "IPv4", "endpoints": [{"addresses": [address], "conditions": {"ready": True}}],
                      "ports": [{"name": "https", "port": port, "protocol": "TCP"}]})
            ip = json.loads(ns.kubectl("get", "svc", "api", "-o", "json").stdout)["spec"]["clusterIP"]
            env = [{"name": "CA", "value": ca}, {"name": "TOKEN", "value": token}, {"name": "SVC", "value": ip}]
            ns.apply({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "apiclient"},
                      "spec": {"restartPolicy": "Never", "automountServiceAccountToken": False,
                               "terminationGracePeriodSeconds": 1,
                               "containers": [{"name": "main", "image": WORKER_IMAGE, "imagePullPolicy": "Never",
                                               "command": ["/opt/udf/venv/bin/python", "-c", CLIENT], "env": env}]}})
            deadline = time.time() + 120
            phase = ""
            while time.time() < deadline:
                phase = ns.pod("apiclient")["status"].get("phase", "")
                if phase in ("Succeeded", "Failed"):
                    break
                time.sleep(1)
            logs = ns.kubectl("logs", "apiclient", check=False)
            pod_ip = ns.pod("apiclient")["status"].get("podIP")
            if check(phase == "Succeeded", "the pod (%s) reached %s:443 -> %s:%d: %s%s"
                     % (pod_ip, ip, address, port, phase, "" if phase == "Succeeded" else "\n" + logs.stdout + logs.stderr)):
                got = json.loads(logs.stdout.strip().splitlines()[-1])
                check(got["status"] == "201" and got["user"] == "system:serviceaccount:default:default",
                      "the API server verified as kubernetes.default.svc knows the pod's token: %s" % got)
    return finish()


if __name__ == "__main__":
    sys.exit(main())
