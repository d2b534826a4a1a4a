"""The operator image as the chart deploys it, on the local cluster's node, with its pool warm.

The chart is rendered with names of the test's own (namespace, operator name, ClusterRole) so
it can share the cluster: the operator reconciles only its own pool (operator.poolSelector), a
pool of one gVisor pod in the test's namespace, and takes its Lease there. Then, with what the
chart renders applied: the operator's pods (localhost/udf-operator:dev, hack/image.sh) run as
uid 65532 on a read-only root with the projected service-account token (no kubeconfig) and the
chart's RBAC, their probes go green, one holds the Lease, the pool becomes Ready with a warm
gVisor pod, and neither log shows a refused request.

A cluster made before hack/cluster.sh's API address (apiserver on 127.0.0.1) has no endpoint
for Service "kubernetes" that pods reach; there the pod runs on the host's network, one replica,
with KUBERNETES_SERVICE_HOST/PORT naming 127.0.0.1 (still in-cluster config with the projected
token), and says so. On a cluster with the API address it runs exactly as rendered, 2 replicas.
"""

import json
import os
import socket
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "node"))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "crds"))

import crdtest  # noqa: E402
from cluster import cluster_env, kubectl  # noqa: E402
from nodelib import IMAGE_SH, check, ensure_node, finish, run  # noqa: E402

PID = os.getpid() % 100000
NS = "udfdep-%d" % PID
NAME = "udf-op-%d" % PID


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def render(legacy):
    helm = crdtest.helm_path()
    values = ["namespace.name=" + NS, "namespace.create=false", "operator.name=" + NAME,
              "runtimeClass.create=false", "defaultPool.namespace=" + NS, "defaultPool.createNamespace=false",
              "defaultPool.name=warm", "defaultPool.replicas=1", "operator.logFormat=text",
              "operator.poolSelector=app.kubernetes.io/name=" + NAME,
              # Functions other tests left on the shared cluster are not this operator's.
              "operator.functionNamespaceSelector=kubernetes.io/metadata.name=" + NS,
              "operator.replicas=%d" % (1 if legacy else 2)]
    argv = [helm, "template", "udfdep-%d" % PID, crdtest.CHART_DIR]
    for v in values:
        argv += ["--set", v]
    return crdtest.load_docs(run(*argv).stdout)


def host_network(dep, server):
    """The old cluster's apiserver is on the host's 127.0.0.1: run the pod on the host's network
    with the in-cluster variables naming it, on free ports, probed on 127.0.0.1."""
    host, port = server.rsplit(":", 1)
    grpc_port, http_port = free_port(), free_port()
    spec = dep["spec"]["template"]["spec"]
    spec["hostNetwork"] = True
    c = spec["containers"][0]
    c["args"] = [a for a in c["args"] if not a.startswith(("--grpc-bind-address", "--health-bind-address"))]
    c["args"] += ["--grpc-bind-address=127.0.0.1:%d" % grpc_port, "--health-bind-address=127.0.0.1:%d" % http_port]
    c["ports"] = [{"name": "grpc", "containerPort": grpc_port, "protocol": "TCP"},
                  {"name": "http", "containerPort": http_port, "protocol": "TCP"}]
    for probe in ("livenessProbe", "readinessProbe"):
        c[probe]["httpGet"]["host"] = "127.0.0.1"
    c["env"] += [{"name": "KUBERNETES_SERVICE_HOST", "value": host.split("//")[-1]},
                 {"name": "KUBERNETES_SERVICE_PORT", "value": port}]


def main():
    kubeconfig = ensure_node()
    tar = os.path.join(cluster_env("bin"), "..", "images", "udf-operator.tar")
    if not check(os.path.exists(tar), "the operator image is built (%s; `make prereqs` or hack/image.sh "
                 "operator builds it)" % os.path.normpath(tar)):
        return finish()
    run(IMAGE_SH, "import")
    legacy = cluster_env("api-address").startswith("127.")
    if legacy:
        print("note: this cluster's apiserver is on 127.0.0.1 (state older than the API address): the operator "
              "pod runs on the host's network, one replica", flush=True)
    docs = render(legacy)
    dep = [d for d in docs if d["kind"] == "Deployment"][0]
    if legacy:
        server = [line.split()[-1] for line in open(kubeconfig) if line.strip().startswith("server:")][0]
        host_network(dep, server)
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS, "labels": {
        "udf.sandbox.io/test": "deploy"}}}
    if not legacy:
        ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] = "restricted"
    kubectl("apply", "-f", "-", input=json.dumps(ns))
    cluster_scoped = [d for d in docs if d["kind"] in ("ClusterRole", "ClusterRoleBinding")]
    try:
        for _ in range(60):
            if kubectl("-n", NS, "get", "sa", "default", check=False).returncode == 0:
                break
            time.sleep(0.5)
        kubectl("apply", "-f", "-", input="\n---\n".join(json.dumps(d) for d in docs))
        r = kubectl("-n", NS, "rollout", "status", "deploy/" + NAME, "--timeout=300s", check=False)
        why = ""
        if r.returncode != 0:
            # The node is shared: say when it had no room rather than leave a bare timeout.
            why = kubectl("-n", NS, "get", "events", "--field-selector", "reason=FailedScheduling",
                          "-o", "jsonpath={.items[-1:].message}", check=False).stdout
        ok = check(r.returncode == 0, "the operator's pods go Ready (probes green): %s%s"
                   % (r.stdout.strip().splitlines()[-1] if r.stdout.strip() else r.stderr.strip(),
                      " (not scheduled: %s)" % why if why else ""))
        pods = json.loads(kubectl("-n", NS, "get", "pods", "-l", "app.kubernetes.io/name=%s,"
                                  "app.kubernetes.io/component=operator" % NAME, "-o", "json").stdout)["items"]
        check(len(pods) == dep["spec"]["replicas"], "%d operator pods" % len(pods))
        for p in pods:
            sc = p["spec"]["containers"][0]["securityContext"]
            check(p["spec"]["securityContext"]["runAsUser"] == 65532 and sc["readOnlyRootFilesystem"],
                  "%s: uid 65532, read-only root" % p["metadata"]["name"])
            check(p["spec"]["serviceAccountName"] == NAME, "%s runs as ServiceAccount %s" % (p["metadata"]["name"], NAME))
        if ok:
            lease = json.loads(kubectl("-n", NS, "get", "lease", "udf-operator", "-o", "json", check=False).stdout or "{}")
            check(bool(lease.get("spec", {}).get("holderIdentity")),
                  "one replica holds Lease %s/udf-operator (%s)" % (NS, lease.get("spec", {}).get("holderIdentity")))
            r = kubectl("-n", NS, "wait", "--for=condition=Ready", "udfpool/warm", "--timeout=240s", check=False)
            check(r.returncode == 0, "the pool is Ready: a warm gVisor pod")
            warm = json.loads(kubectl("-n", NS, "get", "pods", "-l", "app.kubernetes.io/name=udf-worker", "-o",
                                      "json").stdout)["items"]
            check(any(p["spec"].get("runtimeClassName") == "gvisor" for p in warm), "the warm pod runs under gVisor")
        for p in pods if ok else []:
            log = kubectl("-n", NS, "logs", p["metadata"]["name"], check=False).stdout
            check("in-cluster" in log or "https://10.96.0.1:443" in log or "https://127.0.0.1:" in log,
                  "%s: in-cluster config: %s" % (p["metadata"]["name"], log.splitlines()[0] if log else "(no log)"))
            low = log.lower()
            refused = [ln for ln in log.splitlines() if "forbidden" in ln.lower() or " 403" in ln]
            check(not refused, "%s: no request refused: %s" % (p["metadata"]["name"], refused[:3]))
        if failures_so_far():
            print(kubectl("-n", NS, "get", "all,udfpool", "-o", "wide", check=False).stdout)
            for p in pods:
                print(kubectl("-n", NS, "logs", p["metadata"]["name"], "--tail=40", check=False).stdout)
    finally:
        kubectl("delete", "namespace", NS, "--wait=false", check=False)
        for d in cluster_scoped:
            kubectl("delete", d["kind"].lower(), d["metadata"]["name"], "--ignore-not-found", check=False)
    return finish()


def failures_so_far():
    import nodelib
    return bool(nodelib.failures)


if __name__ == "__main__":
    sys.exit(main())
