"""The local cluster for Python tests: brings it up when it is not, hands out the kubeconfig.

    from cluster import ensure_cluster, kubectl
    kubeconfig = ensure_cluster()
    kubectl("get", "--raw", "/readyz")

A test that breaks the API server (restarts it, compacts etcd) asks for a private cluster:
`ensure_cluster(state_dir=..., port_base=...)`, and tears it down with `cluster_down(...)`.
"""

import os
import subprocess

SOURCE_DIR = os.environ.get(
    "UDF_SOURCE_DIR", os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
)
CLUSTER_SH = os.path.join(SOURCE_DIR, "hack", "cluster.sh")


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
