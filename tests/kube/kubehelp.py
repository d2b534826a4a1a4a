"""Shared by the kube integration tests: the kubetool driver, informer snapshots, server state.

kubetool (tests/kube/kubetool.c, built with ASan+UBSan) is the C side; these helpers start it,
read what it reports, and compare with what the API server says through kubectl.
"""

import json
import os
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))

import cluster  # noqa: E402  (tests/lib)

BUILD_DIR = os.environ.get("UDF_BUILD_DIR", os.path.join(cluster.SOURCE_DIR, "build"))
KUBETOOL = os.path.join(BUILD_DIR, "tests", "kube", "kubetool")


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def fail(msg):
    log("FAIL: " + msg)
    sys.exit(1)


def kubetool(kubeconfig, *args, check=True, timeout=120):
    out = subprocess.run([KUBETOOL, "--kubeconfig", kubeconfig, *args], capture_output=True,
                         text=True, timeout=timeout)
    if check and out.returncode != 0:
        fail(f"kubetool {' '.join(args)} exited {out.returncode}:\n{out.stdout}\n{out.stderr}")
    return out


def kubectl(kubeconfig, *args, check=True, input=None):
    out = cluster.kubectl(*args, kubeconfig=kubeconfig, check=False, input=input)
    if check and out.returncode != 0:
        fail(f"kubectl {' '.join(args)}: {out.stderr.strip()}")
    return out


def fresh_namespace(kubeconfig, prefix):
    """Creates a namespace and waits for the controller-manager to publish kube-root-ca.crt
    into it, so tests that compare every ConfigMap never race that controller (it can take
    seconds on a cluster that has just started)."""
    ns = f"{prefix}-{os.getpid()}"
    kubectl(kubeconfig, "create", "namespace", ns)
    deadline = time.monotonic() + 60
    while kubectl(kubeconfig, "get", "configmap", "kube-root-ca.crt", "-n", ns,
                  check=False).returncode != 0:
        if time.monotonic() > deadline:
            fail(f"kube-root-ca.crt never appeared in namespace {ns}")
        time.sleep(0.2)
    return ns


def server_state(kubeconfig, ns, resource="configmaps"):
    """{"ns/name": resourceVersion} of every object, as the server has it now."""
    out = kubectl(kubeconfig, "get", resource, "-n", ns, "-o", "json")
    items = json.loads(out.stdout)["items"]
    return {f"{i['metadata']['namespace']}/{i['metadata']['name']}":
            i["metadata"]["resourceVersion"] for i in items}


def configmap_list(ns, names, data=None):
    """A v1 List manifest of ConfigMaps, for one kubectl call that creates many."""
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "ConfigMap",
         "metadata": {"name": n, "namespace": ns, "labels": {"kube-test": "yes"}},
         "data": data or {"v": n}} for n in names]})


class Informer:
    """A kubetool informer process writing its cache's snapshot every 200 ms."""

    def __init__(self, kubeconfig, ns, *extra, resource=("api/v1", "configmaps"), env=None):
        self.dir = tempfile.mkdtemp(prefix="kube-informer-")
        self.snapshot_path = os.path.join(self.dir, "snapshot.json")
        self.log_path = os.path.join(self.dir, "informer.log")
        self.logf = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [KUBETOOL, "--kubeconfig", kubeconfig, "informer", resource[0], resource[1], ns,
             self.snapshot_path, *extra],
            stdout=self.logf, stderr=subprocess.STDOUT, env=env)

    def snapshot(self):
        try:
            with open(self.snapshot_path) as f:
                return json.load(f)
        except (OSError, ValueError):
            return None

    def wait(self, predicate, timeout, what):
        deadline = time.time() + timeout
        snap = None
        while time.time() < deadline:
            if self.proc.poll() is not None:
                fail(f"informer exited with {self.proc.returncode} while waiting for {what}; "
                     f"log:\n{self.log()}")
            snap = self.snapshot()
            if snap and predicate(snap):
                return snap
            time.sleep(0.2)
        fail(f"timed out after {timeout}s waiting for {what}; last snapshot: "
             f"{json.dumps(snap)[:2000]}\nlog tail:\n{self.log()[-4000:]}")

    def converge(self, kubeconfig, ns, timeout, resource="configmaps"):
        """Waits until the cache holds exactly what the server holds (names and versions)."""
        deadline = time.time() + timeout
        while True:
            want = server_state(kubeconfig, ns, resource)
            snap = self.snapshot()
            if snap and snap.get("synced") and snap["objects"] == want:
                return snap
            if time.time() > deadline:
                have = snap["objects"] if snap else {}
                missing = sorted(set(want) - set(have))[:10]
                extra = sorted(set(have) - set(want))[:10]
                stale = sorted(k for k in want if k in have and have[k] != want[k])[:10]
                fail(f"cache did not converge in {timeout}s: missing {missing}, extra {extra}, "
                     f"stale {stale}; stats {({k: v for k, v in (snap or {}).items() if k not in ('objects', 'deleted')})}"
                     f"\nlog tail:\n{self.log()[-4000:]}")
            time.sleep(0.3)

    def log(self):
        self.logf.flush()
        with open(self.log_path) as f:
            return f.read()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                fail("informer did not stop on SIGTERM")
        self.logf.close()
        if self.proc.returncode != 0:
            fail(f"informer exited {self.proc.returncode} (sanitizer report?):\n{self.log()[-6000:]}")


class PrivateCluster:
    """A control plane of our own (own state dir and ports), for tests that kill the
    apiserver or compact etcd: the shared cluster is never disturbed."""

    def __init__(self, port_base):
        self.state = tempfile.mkdtemp(prefix="kube-private-")
        self.port_base = port_base
        self.kubeconfig = None

    def __enter__(self):
        t = time.time()
        try:
            self.kubeconfig = cluster.ensure_cluster(state_dir=self.state,
                                                     port_base=self.port_base)
        except BaseException:
            self.__exit__()
            raise
        log(f"private cluster up on port {self.port_base} in {time.time() - t:.1f}s")
        return self

    def __exit__(self, *exc):
        try:
            cluster.cluster_down(state_dir=self.state, port_base=self.port_base)
        except Exception as e:  # noqa: BLE001 - cleanup goes on below
            log(f"cluster down failed: {e}")
        # Whatever still runs with our private state directory in its arguments was started
        # by this test: stop it by pid, so a failed run never leaves a control plane behind.
        for pid in self._our_pids():
            try:
                os.kill(pid, signal.SIGKILL)
                log(f"killed leftover pid {pid}")
            except ProcessLookupError:
                pass

    def _our_pids(self):
        pids = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    if self.state.encode() in f.read():
                        pids.append(int(entry))
            except OSError:
                pass
        return pids

    def pid(self, component):
        with open(os.path.join(self.state, "run", f"{component}.pid")) as f:
            return int(f.read().strip())

    def kill_apiserver(self):
        pid = self.pid("kube-apiserver")
        os.kill(pid, signal.SIGKILL)
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                with open(f"/proc/{pid}/stat") as f:
                    if f.read().split()[2] == "Z":
                        break
            except OSError:
                break
            time.sleep(0.1)
        log(f"kube-apiserver (pid {pid}) killed")

    def start_apiserver(self):
        t = time.time()
        for attempt in range(3):
            try:
                cluster.ensure_cluster(state_dir=self.state, port_base=self.port_base)
                break
            except Exception:  # noqa: BLE001 - a slow machine: one more try
                if attempt == 2:
                    raise
                log("cluster.sh up failed; trying again")
                time.sleep(2)
        log(f"kube-apiserver back in {time.time() - t:.1f}s")

    def etcdctl(self, *args):
        etcdctl = os.path.join(cluster.cluster_env("bin"), "etcdctl")
        out = subprocess.run([etcdctl, "--endpoints", f"http://127.0.0.1:{self.port_base + 1}",
                              *args], capture_output=True, text=True, check=True)
        return out.stdout

    def compact(self):
        rev = json.loads(self.etcdctl("endpoint", "status", "-w", "json"))[0]["Status"][
            "header"]["revision"]
        self.etcdctl("compact", str(rev))
        log(f"etcd compacted at revision {rev}")
        return rev
