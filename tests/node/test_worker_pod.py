"""The pod contract (worker/README.md, "Pod contract") in real gVisor pods of the worker image:
in a namespace where Pod Security `restricted` is enforced, a pod with exactly the warm
pool's security context (read-only root, uid 10001, no capabilities, RuntimeDefault seccomp),
two emptyDirs with a sizeLimit, the control token's sha256 in an annotation handed over by a
downward-API volume, and a readiness probe on /readyz becomes Ready; from the host the
control API takes the token and refuses a wrong one, a structured add_one specializes and
answers a pyarrow Flight call. A second pod installs a package from an index on this host
(the node's bridge address) into /app/.packages, and its UDF, running under gVisor, finds the
root filesystem read-only, a writable HOME, and the control token in no file it can read."""

import hashlib
import http.server
import json
import os
import secrets
import sys
import threading
import time
import urllib.request

import nodelib as nl
from cluster import kubectl
import wheels

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "worker"))
import workerlib as wl  # noqa: E402

ANNOTATION = "udf.sandbox.io/control-token-sha256"
BRIDGE = "udfbr0"  # hack/node.sh's CNI bridge; pods reach this host at its address


def worker_pod(name, token_sha256, env=None):
    """The pod a UdfWarmPool creates (the reference for the controller's template)."""
    container = {
        "name": "worker",
        "image": nl.WORKER_IMAGE,
        "imagePullPolicy": "Never",
        "args": ["--control-token-sha256-file=/etc/udf-worker/control/token-sha256"],
        "ports": [{"name": "control", "containerPort": 9000},
                  {"name": "flight", "containerPort": 8815},
                  {"name": "status", "containerPort": 8080}],
        "readinessProbe": {"httpGet": {"path": "/readyz", "port": 9000}, "periodSeconds": 1,
                           "timeoutSeconds": 2, "failureThreshold": 3},
        "livenessProbe": {"httpGet": {"path": "/healthz", "port": 9000}, "periodSeconds": 10},
        "resources": {
            "requests": {"cpu": "100m", "memory": "256Mi", "ephemeral-storage": "256Mi"},
            "limits": {"cpu": "1", "memory": "512Mi", "ephemeral-storage": "1Gi"},
        },
        "securityContext": {
            "readOnlyRootFilesystem": True,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "runAsNonRoot": True,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": [
            {"name": "control", "mountPath": "/etc/udf-worker/control", "readOnly": True},
            {"name": "app", "mountPath": "/app"},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }
    if env:
        container["env"] = [{"name": k, "value": v} for k, v in env.items()]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": name},
                     "annotations": {ANNOTATION: token_sha256}},
        "spec": {
            "runtimeClassName": "gvisor",
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 25,
            "securityContext": {"runAsNonRoot": True, "runAsUser": 10001, "runAsGroup": 10001,
                                "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [container],
            "volumes": [
                {"name": "control", "downwardAPI": {"items": [{
                    "path": "token-sha256",
                    "fieldRef": {"fieldPath": f"metadata.annotations['{ANNOTATION}']"}}]}},
                {"name": "app", "emptyDir": {"sizeLimit": "512Mi"}},
                {"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}},
            ],
        },
    }


# ---- a package index on this host, at the bridge's address ---------------------------------



INDEX = wheels.tiny_index()
GETS = []


class IndexHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        GETS.append(self.path)
        data = INDEX.get(self.path)
        if data is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/html" if self.path.endswith("/")
                         else "application/octet-stream")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def bridge_address():
    out = nl.run("ip", "-4", "-o", "addr", "show", "dev", BRIDGE, check=False).stdout.split()
    return out[out.index("inet") + 1].split("/")[0] if "inet" in out else None


# ---- the control API and Flight, from the host -----------------------------------------------

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def control(ip, method, path, token=None, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"http://{ip}:9000{path}", data=data, method=method)
    if token is not None:
        req.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with _OPENER.open(req, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")


def wait_state(ip, token, timeout):
    deadline = time.time() + timeout
    st = None
    while time.time() < deadline:
        status, text = control(ip, "GET", "/v1/status", token)
        if status == 200:
            st = json.loads(text)
            if st["state"] in ("ready", "failed"):
                return st
        time.sleep(0.2)
    return st


PROBE = r'''
import errno, json, os, platform, sys
import tinypkg

def probe(secret):
    needle = secret.encode()
    found, scanned = [], 0
    for top in ("/app", "/tmp", "/etc/udf-worker", "/home", "/run", "/var/run"):
        for dirpath, _, files in os.walk(top):
            for name in files:
                path = os.path.join(dirpath, name)
                try:
                    with open(path, "rb") as f:
                        data = f.read(1 << 24)
                except OSError:
                    continue
                scanned += 1
                if needle in data:
                    found.append(path)
    for pid in filter(str.isdigit, os.listdir("/proc")):
        for what in ("environ", "cmdline"):
            try:
                with open(f"/proc/{pid}/{what}", "rb") as f:
                    if needle in f.read():
                        found.append(f"/proc/{pid}/{what}")
            except OSError:
                pass
    try:
        open("/home/udf/udf-probe", "w").close()  # the image's HOME, owned by uid 10001
        root = "writable"
    except OSError as e:
        root = errno.errorcode.get(e.errno, str(e.errno))
    root_flags_ro = bool(os.statvfs("/").f_flag & os.ST_RDONLY)
    rss = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/status") as f:
                fields = dict(line.split(":", 1) for line in f if ":" in line)
            rss[fields["Name"].strip() + "/" + pid] = int(fields["VmRSS"].split()[0])
        except (OSError, KeyError, ValueError):
            pass
    try:
        with open("/proc/1/mem", "rb"):
            pass
        mem = "readable"
    except OSError as e:
        mem = errno.errorcode.get(e.errno, str(e.errno))
    home = os.environ.get("HOME", "")
    with open("/etc/udf-worker/control/token-sha256") as f:
        hash_file = f.read().strip()
    return json.dumps({
        "tinypkg": tinypkg.VALUE, "tinypkg_file": tinypkg.__file__,
        "kernel": platform.release(), "uid": os.getuid(),
        "home": home, "home_writable": os.access(home, os.W_OK),
        "root": root, "root_ro": root_flags_ro, "rss_kib": rss, "pid1_mem": mem, "found": found, "scanned": scanned,
        "hash_file": hash_file,
    })
'''


def main():
    nl.ensure_node(worker_image=True)
    host_kernel = nl.run("uname", "-r").stdout.strip()
    bridge = bridge_address()
    if not nl.check(bridge is not None, f"the node's bridge {BRIDGE} has an address: {bridge}"):
        return nl.finish()
    index = http.server.ThreadingHTTPServer((bridge, 0), IndexHandler)
    threading.Thread(target=index.serve_forever, daemon=True).start()
    index_url = f"http://{bridge}:{index.server_address[1]}/simple/"

    with nl.Namespace("node-wpod") as ns:
        kubectl("label", "namespace", ns.name, "pod-security.kubernetes.io/enforce=restricted",
                   "pod-security.kubernetes.io/enforce-version=latest")
        # Enforcement is real: the same pod with its security context taken away is refused.
        lax = worker_pod("lax", "0" * 64)
        del lax["spec"]["securityContext"]
        del lax["spec"]["containers"][0]["securityContext"]
        r = kubectl("-n", ns.name, "create", "--dry-run=server", "-f", "-",
                       input=json.dumps(lax), check=False)
        nl.check(r.returncode != 0 and "PodSecurity" in r.stderr,
                 f"restricted is enforced: a pod without the context is refused "
                 f"({r.stderr.strip()[:160]!r})")

        token_a, token_b = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        sha_a = hashlib.sha256(token_a.encode()).hexdigest()
        sha_b = hashlib.sha256(token_b.encode()).hexdigest()
        t0 = time.time()
        ns.apply(worker_pod("wpod-a", sha_a))
        ns.apply(worker_pod("wpod-b", sha_b, env={"PIP_INDEX_URL": index_url,
                                                   "PIP_TRUSTED_HOST": bridge}))
        ready_a = nl.check(ns.wait_ready("wpod-a", timeout=180),
                           "pod A (the contract's pod) Ready under restricted")
        ready_b = nl.check(ns.wait_ready("wpod-b", timeout=180), "pod B Ready")
        print(f"     both Ready {time.time() - t0:.1f} s after create", flush=True)
        if not (ready_a and ready_b):
            print(ns.kubectl("logs", "wpod-a", check=False).stdout[-3000:])
            return nl.finish()

        # ---- pod A: the control API by the hashed token, add_one over Flight ----
        pod = ns.pod("wpod-a")
        ip = pod["status"]["podIP"]
        nl.check(pod["spec"]["containers"][0]["securityContext"]["readOnlyRootFilesystem"],
                 "the admitted pod keeps readOnlyRootFilesystem")
        status, body = control(ip, "GET", "/readyz")
        nl.check(status == 200, f"GET /readyz idle and warm, no token: {status} {body!r}")
        status, text = control(ip, "GET", "/v1/status", token_a)
        st = json.loads(text) if status == 200 else {}
        nl.check(status == 200 and st.get("state") == "idle" and st.get("zygote") is True,
                 f"status with the right token: {status} {text[:200]}")
        for bad, what in ((token_b, "another pod's token"), (sha_a, "the hash itself"),
                          (token_a + "x", "a longer token")):
            status, _ = control(ip, "GET", "/v1/status", bad)
            nl.check(status == 401, f"{what} -> {status}")
        body = wl.structured(input_types=["INT NULL"], result_type="INT NULL")
        status, _ = control(ip, "POST", "/v1/specialize", "wrong-token", body)
        nl.check(status == 401, f"specialize with a wrong token -> {status}")
        t1 = time.time()
        status, text = control(ip, "POST", "/v1/specialize", token_a, body)
        nl.check(status == 202, f"specialize add_one -> {status} {text}")
        st = wait_state(ip, token_a, 60)
        nl.check(st is not None and st["state"] == "ready" and st["from_zygote"],
                 f"ready from the zygote in {1000 * (time.time() - t1):.0f} ms: {st}")
        if st and st["state"] == "ready":
            values = list(range(1000)) + [None]
            table = wl.call(8815, "add_one", wl.int_batch(values), body["token"], host=ip)
            nl.check(table.column(0).to_pylist() == [None if v is None else v + 1
                                                      for v in values],
                     "add_one over Flight at the pod IP")
        status, _ = control(ip, "GET", "/readyz")
        nl.check(status == 200, f"/readyz once serving -> {status}")
        deadline = time.time() + 10
        while time.time() < deadline and not all(
                c["status"] == "True" for c in ns.pod("wpod-a")["status"]["conditions"]
                if c["type"] == "Ready"):
            time.sleep(0.5)
        pod = ns.pod("wpod-a")
        ready = [c["status"] for c in pod["status"]["conditions"] if c["type"] == "Ready"]
        nl.check(ready == ["True"], f"pod A Ready while serving: {ready}")
        nl.check(pod["status"]["containerStatuses"][0]["restartCount"] == 0, "no restarts")

        # ---- pod B: a package from the index, and what the UDF can see ----
        ip_b = ns.pod("wpod-b")["status"]["podIP"]
        body = wl.structured(function="probe", handler="probe", input_types=["VARCHAR"],
                             result_type="VARCHAR", code=PROBE, packages=["tinypkg==1.0"])
        status, text = control(ip_b, "POST", "/v1/specialize", token_b, body)
        nl.check(status == 202, f"specialize with a package -> {status} {text}")
        st = wait_state(ip_b, token_b, 180)
        nl.check(st is not None and st["state"] == "ready",
                 f"package installed under a read-only root: {st}")
        nl.check("/simple/tinypkg/" in GETS, f"the pod fetched from the host's index: {GETS}")
        if not (st and st["state"] == "ready"):
            print(ns.kubectl("logs", "wpod-b", check=False).stdout[-4000:])
            return nl.finish()
        table = wl.call(8815, "probe", pa_strings([token_b]), body["token"], host=ip_b)
        got = json.loads(table.column(0).to_pylist()[0])
        print(f"     probe: {got}", flush=True)
        nl.check(got["tinypkg"] == "tiny" and got["tinypkg_file"].startswith("/app/.packages/"),
                 f"the package imports from /app/.packages: {got['tinypkg_file']}")
        nl.check(got["kernel"] != host_kernel,
                 f"the UDF runs on gVisor's kernel ({got['kernel']!r}, host {host_kernel!r})")
        nl.check(got["uid"] == 10001, f"the UDF runs as uid 10001: {got['uid']}")
        nl.check(got["root"] == "EROFS" and got["root_ro"],
                 f"the root filesystem is read-only: writing the image's HOME -> {got['root']}")
        nl.check(got["home"].startswith("/tmp/") and got["home_writable"],
                 f"HOME is writable under /tmp: {got['home']}")
        nl.check(got["hash_file"] == sha_b, "the downward-API file holds the annotation's hash")
        nl.check(got["scanned"] > 0 and got["found"] == [],
                 f"the control token is in none of {got['scanned']} readable files, nor in "
                 f"any process's environ/cmdline: {got['found']}")
        nl.check(got["pid1_mem"] != "readable",
                 f"the worker's memory is closed to the UDF: {got['pid1_mem']}")
        r = ns.kubectl("exec", "wpod-b", "--", "ls", "/app/.packages", check=False)
        nl.check("tinypkg" in r.stdout.split(), f"/app/.packages holds tinypkg: {r.stdout!r}")
    index.shutdown()
    return nl.finish()


def pa_strings(values):
    import pyarrow as pa

    schema = pa.schema([pa.field("arg1", pa.string(), True)])
    return pa.record_batch([pa.array(values, type=pa.string())], schema=schema)


if __name__ == "__main__":
    sys.exit(main())
