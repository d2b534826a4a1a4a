"""Plays the function controller for tests of the gRPC endpoint, through the real API server.

The interface between the gRPC endpoint and the controller that provisions a UdfFunction is
the UdfFunction's status: conditions[Ready], endpoint, tokenSecretName (the Secret keeps the
token under the key "token"). Until the real controller runs, a test writes that status
itself with this helper; once the controller lands the same tests keep working (they only
ever read what the status says).

    from function_controller import Kube, FunctionController
    kube = Kube(kubeconfig)
    fc = FunctionController(kube)
    fc.make_ready(ns, name, endpoint="http://10.0.0.7:8815", token="t0k")
    fc.fail(ns, name, "PackagesInstalled", "No matching distribution found for nopkg")
    fc.auto_ready(ns_prefix)   # a thread that makes every new function of those namespaces Ready
"""

import base64
import datetime
import json
import os
import ssl
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import yaml

GROUP_PATH = "/apis/udf.sandbox.io/v1alpha1"


class KubeError(Exception):
    def __init__(self, code, body):
        super().__init__(f"HTTP {code}: {body[:300]}")
        self.code = code
        self.body = body


class Kube:
    """A minimal Kubernetes REST client from an admin kubeconfig (client certificates)."""

    def __init__(self, kubeconfig):
        with open(kubeconfig) as f:
            cfg = yaml.safe_load(f)
        cluster = cfg["clusters"][0]["cluster"]
        user = cfg["users"][0]["user"]
        self.server = cluster["server"]
        self._dir = tempfile.mkdtemp(prefix="udf-fc-")
        ctx = ssl.create_default_context()
        ca = os.path.join(self._dir, "ca.crt")
        with open(ca, "wb") as f:
            f.write(base64.b64decode(cluster["certificate-authority-data"]))
        ctx.load_verify_locations(ca)
        crt, key = os.path.join(self._dir, "c.crt"), os.path.join(self._dir, "c.key")
        with open(crt, "wb") as f:
            f.write(base64.b64decode(user["client-certificate-data"]))
        with open(key, "wb") as f:
            f.write(base64.b64decode(user["client-key-data"]))
        ctx.load_cert_chain(crt, key)
        self.ctx = ctx

    def request(self, method, path, body=None, content_type="application/json", timeout=30):
        data = None if body is None else (body if isinstance(body, bytes) else
                                          json.dumps(body).encode())
        req = urllib.request.Request(self.server + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", content_type)
        req.add_header("Accept", "application/json")
        try:
            with urllib.request.urlopen(req, context=self.ctx, timeout=timeout) as r:
                text = r.read()
                return json.loads(text) if text else None
        except urllib.error.HTTPError as e:
            raise KubeError(e.code, e.read().decode(errors="replace")) from None

    def get(self, path):
        return self.request("GET", path)

    def get_or_none(self, path):
        try:
            return self.get(path)
        except KubeError as e:
            if e.code == 404:
                return None
            raise

    def functions(self, ns=None):
        path = (f"{GROUP_PATH}/namespaces/{ns}/udffunctions" if ns
                else f"{GROUP_PATH}/udffunctions")
        return self.get(path)["items"]

    def function(self, ns, name):
        return self.get_or_none(f"{GROUP_PATH}/namespaces/{ns}/udffunctions/{name}")

    def namespaces(self, label_selector=None):
        q = "?labelSelector=" + urllib.parse.quote(label_selector) if label_selector else ""
        return self.get("/api/v1/namespaces" + q)["items"]

    def delete_namespace(self, ns):
        try:
            self.request("DELETE", f"/api/v1/namespaces/{ns}")
        except KubeError as e:
            if e.code != 404:
                raise

    def ensure_crds(self, source_dir):
        """Applies crds/ (server-side) when the UdfFunction CRD is missing."""
        if self.get_or_none("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/"
                            "udffunctions.udf.sandbox.io"):
            return
        for name in sorted(os.listdir(os.path.join(source_dir, "crds"))):
            if not name.endswith(".yaml"):
                continue
            with open(os.path.join(source_dir, "crds", name)) as f:
                doc = yaml.safe_load(f)
            self.request("PATCH", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/"
                         f"{doc['metadata']['name']}?fieldManager=udf-grpc-tests&force=true",
                         doc, content_type="application/apply-patch+yaml")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                self.get(f"{GROUP_PATH}/udffunctions?limit=1")
                return
            except KubeError:
                time.sleep(0.2)


def _now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class FunctionController:
    """Writes UdfFunction status and token Secrets the way the function controller does."""

    def __init__(self, kube):
        self.kube = kube
        self._stop = threading.Event()
        self._thread = None
        self.made_ready = set()

    def _patch_status(self, ns, name, status):
        obj = self.kube.function(ns, name)
        if obj is None:
            raise KubeError(404, f"UdfFunction {ns}/{name} not found")
        status = dict(status)
        status.setdefault("observedGeneration", obj["metadata"].get("generation", 1))
        self.kube.request(
            "PATCH", f"{GROUP_PATH}/namespaces/{ns}/udffunctions/{name}/status",
            {"status": status}, content_type="application/merge-patch+json")

    def _conditions(self, ready, reason, message, extra=()):
        conds = [{"type": "Ready", "status": ready, "reason": reason, "message": message,
                  "lastTransitionTime": _now()}]
        conds.extend(extra)
        return conds

    def put_token(self, ns, secret, token):
        body = {"apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": secret, "namespace": ns},
                "data": {"token": base64.b64encode(token.encode()).decode()}}
        try:
            self.kube.request("POST", f"/api/v1/namespaces/{ns}/secrets", body)
        except KubeError as e:
            if e.code != 409:
                raise
            self.kube.request("PUT", f"/api/v1/namespaces/{ns}/secrets/{secret}", body)

    def publish_endpoint(self, ns, name, endpoint, token="tok-" + "starting"):
        """The endpoint is known (and its token), specialization has not finished."""
        secret = f"{name}-token"
        self.put_token(ns, secret, token)
        self._patch_status(ns, name, {
            "endpoint": endpoint, "tokenSecretName": secret,
            "conditions": self._conditions("False", "Specializing",
                                           "the sandbox pod is being specialized")})

    def make_ready(self, ns, name, endpoint=None, token=None):
        endpoint = endpoint or f"http://{name}.{ns}.svc:8815"
        token = token or f"token-{name}"
        secret = f"{name}-token"
        self.put_token(ns, secret, token)
        self._patch_status(ns, name, {
            "endpoint": endpoint, "tokenSecretName": secret, "readyReplicas": 1,
            "conditions": self._conditions("True", "Serving", "serving Flight calls")})
        self.made_ready.add((ns, name))
        return endpoint, token

    def fail(self, ns, name, step, message, reason="Failed"):
        self._patch_status(ns, name, {
            "conditions": self._conditions(
                "False", step + reason, message,
                [{"type": step, "status": "False", "reason": step + reason,
                  "message": message, "lastTransitionTime": _now()}])})

    def auto_ready(self, ns_prefix, interval=0.05, delay=0.0):
        """Makes every UdfFunction in namespaces starting with ns_prefix Ready (after delay s)."""
        def loop():
            seen = {}
            while not self._stop.is_set():
                try:
                    for fn in self.kube.functions():
                        md = fn["metadata"]
                        key = (md["namespace"], md["name"])
                        if not md["namespace"].startswith(ns_prefix):
                            continue
                        ready = any(c.get("type") == "Ready" and c.get("status") == "True"
                                    for c in fn.get("status", {}).get("conditions", []))
                        if ready:
                            continue
                        first = seen.setdefault(key, time.monotonic())
                        if time.monotonic() - first >= delay:
                            self.make_ready(*key)
                except Exception:  # the server may be busy; try again
                    pass
                self._stop.wait(interval)
        self._thread = threading.Thread(target=loop, daemon=True)
        self._thread.start()

    def stop(self):
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)
