"""Helpers for the node tests: a cluster with its node (hack/cluster.sh up, which runs
hack/node.sh up), the worker image built and imported, and pods in a namespace of the test's
own that is deleted at the end."""

import subprocess
import time
import urllib.error
import urllib.request

from cluster import (IMAGE_SH, NODE_SH, SOURCE_DIR, Namespace,  # noqa: F401 (re-exported)
                     ensure_cluster, ensure_node, kubectl)

WORKER_IMAGE = "localhost/udf-worker:dev"

from checks import check, failures, finish  # noqa: E402,F401  (re-exported to the tests)


def run(*args, check=True):
    return subprocess.run(list(args), check=check, capture_output=True, text=True)


def pod_manifest(name, image, runtime_class=None, command=None, port=None, volumes=None,
                 mounts=None, labels=None, probe_path=None):
    container = {"name": "main", "image": image, "imagePullPolicy": "Never"}
    if command:
        container["command"] = command
    if port:
        container["ports"] = [{"containerPort": port}]
        how = {"httpGet": {"path": probe_path, "port": port}} if probe_path else \
            {"tcpSocket": {"port": port}}
        container["readinessProbe"] = {**how, "periodSeconds": 1}
    if mounts:
        container["volumeMounts"] = mounts
    spec = {"automountServiceAccountToken": False, "containers": [container],
            "terminationGracePeriodSeconds": 2}
    if runtime_class:
        spec["runtimeClassName"] = runtime_class
    if volumes:
        spec["volumes"] = volumes
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": labels or {"app": name}}, "spec": spec}


# A tiny HTTP server for the worker image's Python: answers GET with the kernel release.
KERNEL_SERVER = [
    "/opt/udf/venv/bin/python", "-c",
    "import http.server, platform\n"
    "class H(http.server.BaseHTTPRequestHandler):\n"
    "    def do_GET(self):\n"
    "        b = platform.release().encode()\n"
    "        self.send_response(200)\n"
    "        self.send_header('Content-Length', str(len(b)))\n"
    "        self.end_headers()\n"
    "        self.wfile.write(b)\n"
    "http.server.HTTPServer(('', 8080), H).serve_forever()\n",
]


# Pod and Service addresses are on this host: never through a proxy.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http_get(url, timeout=5.0, attempts=20):
    """GET url (the pod network is this host's), retrying while the server starts."""
    last = None
    for _ in range(attempts):
        try:
            with _OPENER.open(url, timeout=timeout) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode(errors="replace")
        except OSError as e:
            last = e
            time.sleep(0.5)
    return None, str(last)
