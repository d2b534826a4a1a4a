"""Helpers shared by the tests in tests/crds: kubectl and helm runs, YAML documents, a private
cluster and a throwaway namespace on the shared one.

The CRDs are cluster-scoped and the same for everyone, so the tests apply them to the shared
cluster as they are in crds/ and leave them there; every namespaced object lives in a namespace
of the test's own that is deleted at the end. Objects with fixed cluster-wide names (udf-system,
the ClusterRole, the RuntimeClass) are only ever created in a private cluster.
"""

import contextlib
import glob
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import yaml

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
import cluster  # noqa: E402  (tests/lib, also on PYTHONPATH under ctest)

SOURCE_DIR = cluster.SOURCE_DIR
CRDS_DIR = os.path.join(SOURCE_DIR, "crds")
MANIFESTS_DIR = os.path.join(SOURCE_DIR, "manifests")
EXAMPLES_DIR = os.path.join(MANIFESTS_DIR, "examples")
CHART_DIR = os.path.join(MANIFESTS_DIR, "helm", "udf-sandbox")
CRD_NAMES = ["udffunctions.udf.sandbox.io", "udfwarmpools.udf.sandbox.io"]
FIELD_MANAGER = "udf-crds-tests"


class Failure(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Failure(what)


def log(msg):
    print(msg, flush=True)


def yaml_files(directory):
    """The .yaml files directly in directory, in the order kubectl applies them."""
    return sorted(glob.glob(os.path.join(directory, "*.yaml")))


def load_docs(text):
    """Parsed YAML documents of text, empty ones dropped."""
    return [d for d in yaml.safe_load_all(text) if d is not None]


def load_files(paths):
    docs = []
    for p in paths:
        with open(p) as f:
            docs.extend(load_docs(f.read()))
    return docs


def helm_path():
    """The cached helm (hack/helm.sh); a test never builds it (that takes minutes)."""
    script = os.path.join(SOURCE_DIR, "hack", "helm.sh")
    out = subprocess.run([script, "--print-path"], check=True, capture_output=True, text=True)
    path = out.stdout.strip()
    if not os.access(path, os.X_OK):
        raise Failure("helm is not built: no executable %s; run `make prereqs` (or hack/helm.sh) "
                      "first" % path)
    return path


def run(argv, check_rc=True, input=None, env=None):
    p = subprocess.run(argv, capture_output=True, text=True, input=input, env=env)
    if check_rc and p.returncode != 0:
        raise Failure("%s failed (exit %d):\n%s%s" % (" ".join(argv), p.returncode, p.stdout, p.stderr))
    return p


class Kube:
    """kubectl (the cluster's v1.34 build) against one kubeconfig."""

    def __init__(self, kubeconfig):
        self.kubeconfig = kubeconfig
        self.kubectl_bin = cluster.kubectl_path()

    def kubectl(self, *args, check_rc=True, input=None):
        return run([self.kubectl_bin, "--kubeconfig", self.kubeconfig, *args], check_rc, input)

    def apply_crds(self):
        self.kubectl("apply", "--server-side", "--force-conflicts", "--field-manager", FIELD_MANAGER,
                     "-f", CRDS_DIR)
        self.kubectl("wait", "--for=condition=Established", "--timeout=60s",
                     *["crd/" + n for n in CRD_NAMES])

    def create_namespace(self, name):
        self.kubectl("create", "namespace", name)
        self.kubectl("label", "namespace", name, "udf.sandbox.io/test=crds")

    def delete_namespace(self, name):
        self.kubectl("delete", "namespace", name, "--wait=false", "--ignore-not-found", check_rc=False)


def free_port_base(span=5):
    """A port p with p..p+span-1 free on loopback (for a private cluster)."""
    for _ in range(200):
        base = random.randrange(20000, 30000, 10)
        ok = True
        for port in range(base, base + span):
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    ok = False
                    break
        if ok:
            return base
    raise Failure("no free port range for a private cluster")


@contextlib.contextmanager
def private_cluster():
    """A control plane of the test's own (state dir and ports), torn down at the end."""
    state = tempfile.mkdtemp(prefix="udf-crds-cluster-")
    port_base = free_port_base()
    t0 = time.monotonic()
    try:
        kubeconfig = cluster.ensure_cluster(state_dir=state, port_base=port_base)
        log("private cluster up, apiserver port %d, in %.1fs" % (port_base, time.monotonic() - t0))
        yield Kube(kubeconfig)
    finally:
        try:
            cluster.cluster_down(state_dir=state, port_base=port_base)
        finally:
            shutil.rmtree(state, ignore_errors=True)


@contextlib.contextmanager
def shared_namespace(prefix):
    """The shared cluster with the CRDs applied, and a namespace of the test's own."""
    kube = Kube(cluster.ensure_cluster())
    kube.apply_crds()
    ns = "%s-%d" % (prefix, os.getpid())
    kube.create_namespace(ns)
    try:
        yield kube, ns
    finally:
        kube.delete_namespace(ns)


def run_cases(cases, exit_on_failure=True):
    """Runs (name, fn) pairs and reports each (with the text fn returns, if any). Returns the
    names that failed; with exit_on_failure, exits non-zero when there are any."""
    failed = []
    for name, fn in cases:
        t0 = time.monotonic()
        try:
            detail = fn()
            log("PASS %-60s %5.1fs" % (name, time.monotonic() - t0))
            if detail:
                log(detail)
        except Exception as e:  # a failing case must not hide the ones after it
            failed.append(name)
            log("FAIL %-60s %5.1fs\n%s" % (name, time.monotonic() - t0, e))
    if exit_on_failure:
        finish(failed, len(cases))
    return failed


def finish(failed, total):
    if failed:
        log("%d of %d failed: %s" % (len(failed), total, ", ".join(failed)))
        sys.exit(1)
    log("all %d passed" % total)
