"""The local cluster for Python tests: brings it up when it is not, hands out the kubeconfig.

    from cluster import ensure_cluster, kubectl
    kubeconfig = ensure_cluster()
    kubectl("get", "--raw", "/readyz")

A test that breaks the API server (restarts it, compacts etcd) asks for a private cluster:
`ensure_cluster(state_dir=..., port_base=...)`, and tears it down with `cluster_down(...)`.
Tests that run pods use `ensure_node()` (the cluster with its node, optionally the worker image
refreshed from bin/udf-worker) and a `Namespace` of their own.
"""

import json
import os
import subprocess
import sys
import time

SOURCE_DIR = os.environ.get(
    "UDF_SOURCE_DIR", os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
)
CLUSTER_SH = os.path.join(SOURCE_DIR, "hack", "cluster.sh")
NODE_SH = os.path.join(SOURCE_DIR, "hack", "node.sh")
IMAGE_SH = os.path.join(SOURCE_DIR, "hack", "image.sh")


def _env(state_dir=None, port_base=None):
    env = dict(os.environ)
    if state_dir:
        env["UDF_SANDBOX_STATE"] = state_dir
    if port_base:
        env["UDF_CLUSTER_PORT_BASE"] = str(port_base)
    return env


def ensure_cluster(state_dir=None, port_base=None, control_plane_only=True):
    """Starts the cluster if needed (idempotent, locked) and returns the admin kubeconfig."""
    env = _env(state_dir, port_base)
    args = [CLUSTER_SH, "up"]
    if control_plane_only:
        args.append("--control-plane-only")
    subprocess.run(args, check=True, env=env, stdout=subprocess.DEVNULL)
    return cluster_env("kubeconfig", state_dir, port_base)


def cluster_down(state_dir=None, port_base=None):
    subprocess.run([CLUSTER_SH, "down"], check=True, env=_env(state_dir, port_base),
                   stdout=subprocess.DEVNULL)


def cluster_env(what, state_dir=None, port_base=None):
    out = subprocess.run([CLUSTER_SH, "env", what], check=True, capture_output=True, text=True,
                         env=_env(state_dir, port_base))
    return out.stdout.strip()


def kubectl_path():
    return os.path.join(cluster_env("bin"), "kubectl")


def kubectl(*args, kubeconfig=None, check=True, input=None):
    """Runs the cluster's kubectl (v1.34.4, not the system one); returns CompletedProcess."""
    kubeconfig = kubeconfig or cluster_env("kubeconfig")
    return subprocess.run([kubectl_path(), "--kubeconfig", kubeconfig, *args], check=check,
                          capture_output=True, text=True, input=input)


def ensure_node(worker_image=False):
    """Brings up the cluster and its node; with worker_image, refreshes the worker image from
    bin/udf-worker first (seconds: `make prereqs` built its base) and imports it. Returns the
    admin kubeconfig."""
    if worker_image:
        out = subprocess.run([IMAGE_SH, "worker"], capture_output=True, text=True)
        if out.returncode != 0:
            sys.stderr.write(out.stdout + out.stderr)
            raise SystemExit("FAIL hack/image.sh worker failed (`make prereqs` builds the image)")
    kubeconfig = ensure_cluster(control_plane_only=False)
    if worker_image:
        # A node that was already up imports the new image here.
        subprocess.run([NODE_SH, "up"], check=True, capture_output=True, text=True)
    return kubeconfig


class Namespace:
    """A namespace for one test (name: prefix-pid), deleted (without waiting) on exit."""

    def __init__(self, prefix):
        self.name = f"{prefix}-{os.getpid()}"

    def __enter__(self):
        kubectl("create", "namespace", self.name)
        # Pods need the default ServiceAccount to exist even with the token not mounted.
        deadline = time.time() + 30
        while kubectl("-n", self.name, "get", "serviceaccount", "default",
                      check=False).returncode != 0:
            if time.time() > deadline:
                raise RuntimeError("no default ServiceAccount")
            time.sleep(0.2)
        return self

    def __exit__(self, *exc):
        kubectl("delete", "namespace", self.name, "--wait=false", check=False)

    def apply(self, manifest):
        return kubectl("-n", self.name, "apply", "-f", "-", input=json.dumps(manifest))

    def kubectl(self, *args, check=True):
        return kubectl("-n", self.name, *args, check=check)

    def wait_ready(self, pod, timeout=120):
        r = self.kubectl("wait", "--for=condition=Ready", f"pod/{pod}", f"--timeout={timeout}s",
                         check=False)
        if r.returncode != 0:
            print(self.kubectl("describe", "pod", pod, check=False).stdout[-3000:])
        return r.returncode == 0

    def pod(self, name):
        return json.loads(self.kubectl("get", "pod", name, "-o", "json").stdout)
