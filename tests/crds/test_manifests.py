"""The CRDs, the plain manifests and the Helm chart, checked statically and on a real API server.

Static: the chart's crds/ are byte-identical to crds/; every field of both CRDs has a
description; `helm lint --strict` is clean; `helm template` with default values equals
crds/ + manifests/*.yaml after normalizing only YAML formatting, comments and document order
(and a changed value must make that comparison fail); non-default values render what they say.

On a private cluster (fixed cluster-wide names like udf-system, ClusterRole udf-operator and
RuntimeClass gvisor must not touch the shared one): server-side dry run of every CRD and
manifest, `kubectl apply -f crds/` then `-f manifests/` exactly as a user runs it (the default
pool needs its CRD established first), server-side apply of the same, the default pool and its
namespace as the API server stores them, Pod Security "restricted" admits the operator's pod and
refuses a root pod in both namespaces, the operator's service account has exactly the
permissions it should, then `helm install` / `helm upgrade` / `helm uninstall` of the chart, and
`helm install` where users meet it: over objects `kubectl apply -f manifests/` made, beside a
RuntimeClass gvisor the node made (and refused when that class has another handler).
"""

import difflib
import filecmp
import json
import os
import re
import time

import yaml

from crdtest import (CHART_DIR, CRDS_DIR, EXAMPLES_DIR, MANIFESTS_DIR, SOURCE_DIR, Failure, check, helm_path,
                     finish, load_docs, load_files, private_cluster, run, run_cases, yaml_files)

HELM = None


def helm(*args, kubeconfig=None, check_rc=True):
    env = dict(os.environ)
    # helm's own config, cache and data (repositories, plugins) stay in the project's cache.
    home = os.path.join(os.path.dirname(os.path.dirname(HELM)), "helm")
    for var in ("CONFIG", "CACHE", "DATA"):
        env.setdefault("HELM_%s_HOME" % var, os.path.join(home, var.lower()))
    argv = [HELM, *args]
    if kubeconfig:
        argv += ["--kubeconfig", kubeconfig]
    return run(argv, check_rc, env=env)


def object_key(doc):
    md = doc.get("metadata", {})
    return "%s/%s %s/%s" % (doc.get("apiVersion"), doc.get("kind"), md.get("namespace", ""), md.get("name"))


def normalized(docs):
    """key -> canonical YAML text. Only formatting, comments, key order and document order go."""
    out = {}
    for d in docs:
        k = object_key(d)
        check(k not in out, "object %s appears twice" % k)
        out[k] = yaml.safe_dump(d, sort_keys=True, default_flow_style=False, width=1000)
    return out


def compare(want_docs, got_docs, want_name, got_name):
    """A unified diff of the two sets of objects; empty when they are equal."""
    want, got = normalized(want_docs), normalized(got_docs)
    lines = []
    for k in sorted(set(want) | set(got)):
        a, b = want.get(k, ""), got.get(k, "")
        if a != b:
            lines += difflib.unified_diff(a.splitlines(True), b.splitlines(True),
                                         "%s: %s" % (want_name, k), "%s: %s" % (got_name, k))
    return "".join(lines)


def plain_docs():
    return load_files(yaml_files(CRDS_DIR) + yaml_files(MANIFESTS_DIR))


def template(*sets):
    """helm template with --set NAME=VALUE each; "json:NAME=JSON" is --set-json (--set reads 0.25
    as a string)."""
    args = ["template", "udf-sandbox", CHART_DIR, "--include-crds"]
    for s in sets:
        args += ["--set-json", s[5:]] if s.startswith("json:") else ["--set", s]
    return load_docs(helm(*args).stdout)


def find(docs, kind, name):
    hits = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    check(len(hits) == 1, "want one %s %s, found %d" % (kind, name, len(hits)))
    return hits[0]


# ---- static ----------------------------------------------------------------------------------

def chart_crds_are_crds():
    chart_crds = os.path.join(CHART_DIR, "crds")
    names = sorted(os.listdir(CRDS_DIR))
    check(sorted(os.listdir(chart_crds)) == names, "chart crds/ holds %s, crds/ holds %s"
          % (sorted(os.listdir(chart_crds)), names))
    for n in names:
        check(filecmp.cmp(os.path.join(CRDS_DIR, n), os.path.join(chart_crds, n), shallow=False),
              "%s differs from crds/%s: cp crds/*.yaml manifests/helm/udf-sandbox/crds/" % (n, n))


def every_field_described():
    missing = []

    def walk(schema, path):
        for name, sub in schema.get("properties", {}).items():
            if path.count(".") == 0 and name in ("metadata",):
                continue  # an API server forbids describing metadata
            if "description" not in sub:
                missing.append(path + "." + name)
            walk(sub, path + "." + name)
        if "items" in schema:
            walk(schema["items"], path + "[]")

    for crd in load_files(yaml_files(CRDS_DIR)):
        v = crd["spec"]["versions"][0]
        walk(v["schema"]["openAPIV3Schema"], crd["spec"]["names"]["kind"])
    check(not missing, "fields without a description: %s" % missing)


def lint():
    p = helm("lint", "--strict", CHART_DIR)
    out = p.stdout + p.stderr
    for level in ("[ERROR]", "[WARNING]", "[INFO]"):
        check(level not in out, "helm lint reports %s:\n%s" % (level, out))
    check("1 chart(s) linted, 0 chart(s) failed" in out, out)


def template_equals_plain():
    diff = compare(plain_docs(), template(), "manifests", "helm template")
    check(not diff, "helm template differs from crds/ + manifests/:\n" + diff)
    return "     | %d objects equal" % len(plain_docs())


def ownership_metadata():
    # Every plain object carries Helm's ownership metadata, so `helm install udf-sandbox` adopts
    # what `kubectl apply -f manifests/` made (the chart renders the same, by the equality above).
    missing = []
    for d in load_files(yaml_files(MANIFESTS_DIR)):
        md = d["metadata"]
        if (md.get("labels", {}).get("app.kubernetes.io/managed-by") != "Helm"
                or md.get("annotations", {}).get("meta.helm.sh/release-name") != "udf-sandbox"
                or md.get("annotations", {}).get("meta.helm.sh/release-namespace") != "default"):
            missing.append(object_key(d))
    check(not missing, "objects without Helm's ownership metadata: %s" % missing)


def comparison_really_diffs():
    # A single changed value must show up, or the equality above proves nothing.
    for s, want in [("operator.replicas=3", "replicas: 3"),
                    ("operator.logLevel=debug", "- --log-level=debug"),
                    ("defaultPool.replicas=3", "replicas: 3"),
                    ("worker.image.tag=v2", "- --worker-image=localhost/udf-worker:v2"),
                    ("defaultPool.resources.limits.memory=1Gi", "memory: 1Gi"),
                    ("runtimeClass.handler=runc", "handler: runc")]:
        diff = compare(plain_docs(), template(s), "manifests", "helm template")
        added = [line for line in diff.splitlines() if line.startswith("+") and not line.startswith("+++")]
        check(len(added) == 1 and want in added[0], "--set %s: want one added line with %r:\n%s" % (s, want, diff))


def values_render():
    docs = template("grpc.service.type=LoadBalancer", "grpc.tls.secretName=grpc-tls", "grpc.port=6000",
                    "operator.leaderElection=false",
                    "operator.replicas=3", "operator.image.tag=v1", "operator.image.pullPolicy=IfNotPresent",
                    "runtimeClass.name=gvisor-x", "namespace.name=udf-x", "operator.name=udf-op",
                    "defaultPool.namespace=sandboxes-x", "defaultPool.name=shared", "defaultPool.replicas=7",
                    "defaultPool.refill.maxInFlight=3", "defaultPool.nodeSelector.pool=udf",
                    "defaultPool.packages={numpy==2.1.3}", "defaultPool.readinessTimeoutSeconds=300",
                    "worker.image.repository=registry.test/udf-worker", "worker.image.pullPolicy=IfNotPresent",
                    "sandboxNetworkPolicy.egressPorts={443,9000}",
                    "sandboxNetworkPolicy.blockedCIDRs={10.0.0.0/8,198.51.100.0/24,fc00::/7}")
    svc = find(docs, "Service", "udf-op-grpc")
    check(svc["spec"]["type"] == "LoadBalancer" and svc["spec"]["ports"][0]["port"] == 6000, svc)
    check(find(docs, "Service", "udf-op-metrics")["spec"]["type"] == "ClusterIP", "metrics Service type")
    dep = find(docs, "Deployment", "udf-op")
    c = dep["spec"]["template"]["spec"]["containers"][0]
    check(dep["spec"]["replicas"] == 3 and dep["metadata"]["namespace"] == "udf-x", dep["metadata"])
    check(c["image"] == "localhost/udf-operator:v1" and c["imagePullPolicy"] == "IfNotPresent", c["image"])
    check("--leader-elect=false" in c["args"] and "--grpc-bind-address=:6000" in c["args"], c["args"])
    # The worker image's tag defaults to the chart's appVersion, as the operator's does.
    app_version = yaml.safe_load(open(os.path.join(CHART_DIR, "Chart.yaml")))["appVersion"]
    check(not [a for a in c["args"] if a.startswith("--pool-selector")], c["args"])
    c = find(template("operator.poolSelector=team=a"), "Deployment", "udf-operator")["spec"]["template"]["spec"]["containers"][0]
    check("--pool-selector=team=a" in c["args"], c["args"])
    c = dep["spec"]["template"]["spec"]["containers"][0]
    check("--default-pool=sandboxes-x/shared" in c["args"]
          and "--worker-image=registry.test/udf-worker:%s" % app_version in c["args"], c["args"])
    check(c["ports"][0]["containerPort"] == 6000, c["ports"])
    check(find(docs, "RuntimeClass", "gvisor-x")["handler"] == "runsc", "RuntimeClass")
    pool = find(docs, "UdfWarmPool", "shared")
    spec = pool["spec"]
    check(pool["metadata"]["namespace"] == "sandboxes-x" and spec["replicas"] == 7
          and spec["runtime"]["runtimeClassName"] == "gvisor-x" and spec["runtime"]["imagePullPolicy"] == "IfNotPresent"
          and spec["runtime"]["nodeSelector"] == {"pool": "udf"} and spec["packages"] == ["numpy==2.1.3"]
          and spec["refill"] == {"maxPodsPerSecond": 5, "maxInFlight": 3} and spec["readinessTimeoutSeconds"] == 300
          and "image" not in spec["runtime"], pool)
    ns = find(docs, "Namespace", "sandboxes-x")
    check(ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted", ns)
    np = find(docs, "NetworkPolicy", "udf-sandbox")
    egress = find(docs, "NetworkPolicy", "udf-sandbox-egress")
    ports = [p["port"] for p in egress["spec"]["egress"][1]["ports"]]
    check(ports == [443, 9000], "egress ports %s" % ports)
    blocked = {t["ipBlock"]["cidr"]: t["ipBlock"]["except"] for t in egress["spec"]["egress"][1]["to"]}
    check(blocked == {"0.0.0.0/0": ["10.0.0.0/8", "198.51.100.0/24"], "::/0": ["fc00::/7"]},
          "blockedCIDRs split by family: %s" % blocked)
    frm = np["spec"]["ingress"][1]["from"][0]
    check(frm["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"] == "udf-x"
          and frm["podSelector"]["matchLabels"]["app.kubernetes.io/name"] == "udf-op", frm)
    binding = find(docs, "ClusterRoleBinding", "udf-op")
    check(binding["subjects"][0] == {"kind": "ServiceAccount", "name": "udf-op", "namespace": "udf-x"}, binding)
    docs = template("namespace.create=false", "runtimeClass.create=false", "defaultPool.createNamespace=false")
    kinds = {d["kind"] for d in docs}
    check("Namespace" not in kinds and "RuntimeClass" not in kinds and "UdfWarmPool" in kinds, kinds)
    # No default pool: neither pool nor namespace, but the operator still names the pool to use.
    docs = template("defaultPool.enabled=false")
    check(not [d for d in docs if d["kind"] == "UdfWarmPool" or d["metadata"]["name"] == "udf-sandboxes"],
          "defaultPool.enabled=false still renders the pool or its namespace")
    args = find(docs, "Deployment", "udf-operator")["spec"]["template"]["spec"]["containers"][0]["args"]
    check("--default-pool=udf-sandboxes/default" in args, args)
    # A pool in the operator's own namespace does not create that namespace twice.
    docs = template("defaultPool.namespace=udf-system")
    check(len([d for d in docs if d["kind"] == "Namespace"]) == 1, "udf-system rendered twice")
    # {} selects every namespace; null leaves the selector out (the pool's own namespace only).
    pool = find(template("defaultPool.functionNamespaceSelector.matchLabels=null"), "UdfWarmPool", "default")
    check(pool["spec"]["functionNamespaceSelector"] == {}, pool["spec"])
    pool = find(template("defaultPool.functionNamespaceSelector=null"), "UdfWarmPool", "default")
    check("functionNamespaceSelector" not in pool["spec"], pool["spec"])


def monitoring_render():
    # Off by default (their CRDs are not in every cluster): the equality above already says so.
    kinds = {d["kind"] for d in template()}
    check(not kinds & {"ServiceMonitor", "PrometheusRule"}, kinds)
    docs = template("monitoring.serviceMonitor.enabled=true", "monitoring.prometheusRule.enabled=true",
                    "monitoring.serviceMonitor.interval=15s", "monitoring.serviceMonitor.labels.release=prom",
                    "monitoring.prometheusRule.labels.release=prom", "monitoring.prometheusRule.poolEmptyFor=7m",
                    "monitoring.prometheusRule.reconcileErrorsFor=20m", "monitoring.prometheusRule.severity=critical",
                    "json:monitoring.prometheusRule.specializationFailureRatio=0.25",
                    "namespace.name=udf-x", "operator.name=udf-op")
    sm = find(docs, "ServiceMonitor", "udf-op")
    svc = find(docs, "Service", "udf-op-metrics")
    check(sm["metadata"]["namespace"] == "udf-x" and sm["metadata"]["labels"]["release"] == "prom", sm["metadata"])
    # It selects the metrics Service by its labels and scrapes its port by name.
    sel = sm["spec"]["selector"]["matchLabels"]
    check(all(svc["metadata"]["labels"].get(k) == v for k, v in sel.items()), (sel, svc["metadata"]["labels"]))
    check(sm["spec"]["namespaceSelector"] == {"matchNames": ["udf-x"]}, sm["spec"])
    ep = sm["spec"]["endpoints"]
    check(len(ep) == 1 and ep[0]["port"] == svc["spec"]["ports"][0]["name"] and ep[0]["path"] == "/metrics"
          and ep[0]["interval"] == "15s" and ep[0]["scrapeTimeout"] == "10s", ep)
    rule = find(docs, "PrometheusRule", "udf-op")
    check(rule["metadata"]["labels"]["release"] == "prom", rule["metadata"])
    rules = {r["alert"]: r for g in rule["spec"]["groups"] for r in g["rules"]}
    # Each alert names metrics the operator exports (operator/main.c, operator/controllers/).
    want = {"UdfWarmPoolEmpty": ("udf_pool_ready_pods", "7m"),
            "UdfSpecializationsFailing": ("udf_function_specialize_failures_total", "10m"),
            "UdfReconcileErrors": ('udf_controller_reconciles_total{result="error"}', "20m"),
            "UdfOperatorApiServerUnreachable": ('udf_operator_apiserver_probes_total{result="failed"}', "5m"),
            "UdfOperatorDown": ('up{job="udf-op-metrics", namespace="udf-x"}', "5m")}
    check(sorted(rules) == sorted(want), sorted(rules))
    for name, (metric, duration) in want.items():
        r = rules[name]
        check(metric in r["expr"] and r["for"] == duration and r["labels"]["severity"] == "critical"
              and r["annotations"]["summary"], (name, r))
    # ... and every udf_* metric an alert reads is one the operator's code declares.
    declared = set()
    for d, _, names in os.walk(os.path.join(SOURCE_DIR, "operator")):
        for n in names:
            if n.endswith(".c"):
                with open(os.path.join(d, n)) as f:
                    declared.update(re.findall(r"# TYPE (udf_[a-z_]+)", f.read()))
    for name, r in rules.items():
        used = set(re.findall(r"\b(udf_[a-z_]+)", r["expr"]))
        check(used <= declared, "%s reads metrics no code exports: %s" % (name, sorted(used - declared)))
    check("> 0.25" in rules["UdfSpecializationsFailing"]["expr"], rules["UdfSpecializationsFailing"]["expr"])
    check("{{ $labels.pool }}" in rules["UdfWarmPoolEmpty"]["annotations"]["summary"], "alert templating escaped")
    # One without the other.
    kinds = {d["kind"] for d in template("monitoring.prometheusRule.enabled=true")}
    check("PrometheusRule" in kinds and "ServiceMonitor" not in kinds, kinds)


def schema_rejects():
    # values.schema.json stops a bad value before anything reaches the API server.
    for s, want in [("defaultPool.replicas=-1", "/defaultPool/replicas"),
                    ("defaultPool.refill.maxPodsPerSecond=0", "/defaultPool/refill/maxPodsPerSecond"),
                    ("defaultPool.readinessTimeoutSeconds=5", "/defaultPool/readinessTimeoutSeconds"),
                    ("defaultPool.namespace=Not_A_Namespace", "/defaultPool/namespace"),
                    ("defaultPool.resources.limits.gpu=1", "/defaultPool/resources/limits"),
                    ("defaultPool.resources.limits.memory=null", "memory"),
                    ("defaultPool.functionNamespaceSelector.matchExpressions[0].key=team,"
                     "defaultPool.functionNamespaceSelector.matchExpressions[0].operator=Equals",
                     "/defaultPool/functionNamespaceSelector/matchExpressions/0/operator"),
                    ("worker.image.tag=bad tag", "/worker/image/tag"),
                    ("sandboxNetworkPolicy.blockedCIDRs={10.0.0.0/8}", "/sandboxNetworkPolicy/blockedCIDRs"),
                    ("sandboxNetworkPolicy.blockedCIDRs={10.0.0.0/8,fc00::/7,example.com}",
                     "/sandboxNetworkPolicy/blockedCIDRs/2"),
                    ("monitoring.serviceMonitor.enabled=yes", "/monitoring/serviceMonitor/enabled"),
                    ("monitoring.serviceMonitor.interval=30", "/monitoring/serviceMonitor/interval"),
                    ("monitoring.prometheusRule.poolEmptyFor=five", "/monitoring/prometheusRule/poolEmptyFor"),
                    ("monitoring.prometheusRule.severity=page", "/monitoring/prometheusRule/severity"),
                    ("monitoring.prometheusRule.specializationFailureRatio=0", "specializationFailureRatio"),
                    ("monitoring.prometheusRule.specializationFailureRatio=2", "specializationFailureRatio"),
                    ("monitoring.alerts=true", "/monitoring"),
                    ("operator.poolSelector=5", "/operator/poolSelector"),
                    ("worker.imag=x", "/worker")]:
        p = helm("template", "udf-sandbox", CHART_DIR, "--set", s, check_rc=False)
        check(p.returncode != 0 and "values don't meet the specifications of the schema" in p.stderr
              and want in p.stderr, "--set %s: want a schema error naming %s:\n%s" % (s, want, p.stderr))


def network_policy_shape():
    docs = load_files(yaml_files(MANIFESTS_DIR))
    np = find(docs, "NetworkPolicy", "udf-sandbox")
    egress = find(docs, "NetworkPolicy", "udf-sandbox-egress")
    # One object per direction: kube-router runs a policy of both types for every packet
    # from or to its pods, and one sandbox's ingress rule would admit another's egress.
    check(np["spec"]["policyTypes"] == ["Ingress"] and "egress" not in np["spec"],
          np["spec"]["policyTypes"])
    check(egress["spec"]["policyTypes"] == ["Egress"] and "ingress" not in egress["spec"]
          and egress["spec"]["podSelector"] == np["spec"]["podSelector"], egress["spec"])
    spec = np["spec"]
    ingress_ports = sorted(p["port"] for rule in spec["ingress"] for p in rule["ports"])
    check(ingress_ports == [8080, 8815, 9000], "ingress ports %s" % ingress_ports)
    control = [r for r in spec["ingress"] if any(p["port"] == 9000 for p in r["ports"])][0]
    check(control.get("from"), "the control port is open to everyone")
    blocks = [t["ipBlock"] for rule in egress["spec"]["egress"] for t in rule.get("to", [])
              if "ipBlock" in t]
    check(blocks, "no egress ipBlock")
    for b in blocks:
        if ":" not in b["cidr"]:
            for r in ("169.254.0.0/16", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"):
                check(r in b.get("except", []), "egress %s reaches %s" % (b, r))
        else:
            for r in ("fe80::/10", "fc00::/7"):
                check(r in b.get("except", []), "egress %s reaches %s" % (b, r))


def callers_confined():
    # Issue 15: gRPC only from the named peers, probes and metrics open; no NodePort or
    # LoadBalancer without TLS; TLS and mutual TLS reach the operator's flags.
    np = find(template(), "NetworkPolicy", "udf-operator")
    spec = np["spec"]
    check(spec["podSelector"]["matchLabels"]["app.kubernetes.io/name"] == "udf-operator", spec)
    check(sorted(spec["policyTypes"]) == ["Egress", "Ingress"], spec["policyTypes"])
    grpc_rules = [r for r in spec["ingress"] if any(p["port"] == 50051 for p in r["ports"])]
    check(len(grpc_rules) == 1 and grpc_rules[0]["from"] == [
        {"namespaceSelector": {"matchLabels": {"udf.sandbox.io/query-nodes": "true"}}}], grpc_rules)
    health = [r for r in spec["ingress"] if any(p["port"] == 8081 for p in r["ports"])]
    check(len(health) == 1 and "from" not in health[0], "probes and metrics port: %s" % health)
    np = find(template("grpc.allowedFrom[0].ipBlock.cidr=203.0.113.0/24"), "NetworkPolicy", "udf-operator")
    check(np["spec"]["ingress"][0]["from"] == [{"ipBlock": {"cidr": "203.0.113.0/24"}}], np["spec"]["ingress"])
    # No peers: the gRPC port is closed, never open to all (a rule without from).
    np = find(template("grpc.allowedFrom=null"), "NetworkPolicy", "udf-operator")
    check(all(p["port"] != 50051 for r in np["spec"]["ingress"] for p in r["ports"]), np["spec"]["ingress"])
    for t in ("NodePort", "LoadBalancer"):
        p = helm("template", "udf-sandbox", CHART_DIR, "--set", "grpc.service.type=" + t, check_rc=False)
        check(p.returncode != 0 and "values don't meet the specifications of the schema" in p.stderr
              and "tls" in p.stderr, "%s without TLS was not refused:\n%s" % (t, p.stderr))
    docs = template("grpc.service.type=NodePort", "grpc.tls.secretName=grpc-tls",
                    "grpc.tls.clientCASecretName=query-ca")
    pod = find(docs, "Deployment", "udf-operator")["spec"]["template"]["spec"]
    args = pod["containers"][0]["args"]
    for want in ("--grpc-tls-cert=/etc/udf-operator/tls/tls.crt", "--grpc-tls-key=/etc/udf-operator/tls/tls.key",
                 "--grpc-tls-client-ca=/etc/udf-operator/client-ca/ca.crt"):
        check(want in args, "%s not in %s" % (want, args))
    secrets = sorted(v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v)
    check(secrets == ["grpc-tls", "query-ca"], secrets)
    args = find(template("operator.limits.maxTenants=0", "operator.blockedCIDRs={10.0.0.0/8,fd00::/8}"),
                "Deployment", "udf-operator")["spec"]["template"]["spec"]["containers"][0]["args"]
    check("--max-tenants=0" in args and "--blocked-cidrs=10.0.0.0/8,fd00::/8" in args, args)


def operator_accepts_args():
    # The Deployment's args must be flags udf-operator parses: with --help last, it exits 0
    # only when every flag before it parsed.
    binary = os.path.join(os.environ.get("UDF_BUILD_DIR", os.path.join(SOURCE_DIR, "build")),
                          "operator", "udf-operator")
    check(os.access(binary, os.X_OK), "udf-operator is not built: no executable %s; run `make` "
          "first" % binary)
    dep = find(load_files(yaml_files(MANIFESTS_DIR)), "Deployment", "udf-operator")
    args = dep["spec"]["template"]["spec"]["containers"][0]["args"]
    p = run([binary, *args, "--help"], check_rc=False)
    check(p.returncode == 0, "udf-operator refuses the Deployment's args %s:\n%s" % (args, p.stderr))
    return "     | %s %s" % (os.path.basename(binary), " ".join(args))


# ---- on a private cluster --------------------------------------------------------------------

def cluster_cases(kube):
    kubeconfig = kube.kubeconfig
    sa = "system:serviceaccount:udf-system:udf-operator"

    def dry_run_crds():
        out = kube.kubectl("apply", "--server-side", "--dry-run=server", "-f", CRDS_DIR).stdout
        check(out.count("serverside-applied (server dry run)") == 2, out)

    def apply_like_a_user():
        # As manifests/README.md says: the CRDs, established, then manifests/ (the default pool
        # is a UdfWarmPool, which kubectl can only map once its CRD is served).
        p = kube.kubectl("apply", "-f", CRDS_DIR)
        kube.kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd", "--all")
        q = kube.kubectl("apply", "-f", MANIFESTS_DIR)
        out = p.stdout + q.stdout
        check("Warning" not in p.stderr + q.stderr, "kubectl apply warned:\n" + p.stderr + q.stderr)
        created = [line for line in out.splitlines() if line.endswith(" created")]
        check(len(created) == len(plain_docs()), "created %d of %d:\n%s" % (len(created), len(plain_docs()), out))
        return "\n".join("     | " + line for line in out.splitlines())

    def server_side_apply():
        # On the fresh cluster, server-side: the CRDs, established, then manifests/.
        for path in [CRDS_DIR, MANIFESTS_DIR]:
            p = kube.kubectl("apply", "--server-side", "-f", path)
            check(p.stdout.count("serverside-applied") == len(load_files(yaml_files(path))) and not p.stderr,
                  p.stdout + p.stderr)
            if path == CRDS_DIR:
                kube.kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd", "--all")

    def delete_all():
        # Back to a fresh cluster for the client-side apply below.
        kube.kubectl("delete", "-f", MANIFESTS_DIR, "-f", CRDS_DIR, "--wait=true", "--timeout=120s")

    def default_pool_stored():
        ns = json.loads(kube.kubectl("get", "namespace", "udf-sandboxes", "-o", "json").stdout)
        labels = ns["metadata"]["labels"]
        for mode in ("enforce", "audit", "warn"):
            check(labels.get("pod-security.kubernetes.io/" + mode) == "restricted", labels)
        pool = json.loads(kube.kubectl("get", "-n", "udf-sandboxes", "udfpool", "default", "-o", "json").stdout)
        spec = pool["spec"]
        check(spec["replicas"] == 2 and spec["functionNamespaceSelector"] == {
            "matchLabels": {"udf.sandbox.io/tenant-namespace": "true"}}, spec)
        # The server filled what the manifest leaves out; no image, so --worker-image applies.
        check(spec["runtime"]["workDirSizeLimit"] == "1Gi" and spec["runtime"]["tmpSizeLimit"] == "256Mi"
              and "image" not in spec["runtime"] and spec["runtime"]["runtimeClassName"] == "gvisor", spec)
        dep = json.loads(kube.kubectl("get", "-n", "udf-system", "deploy", "udf-operator", "-o", "json").stdout)
        args = dep["spec"]["template"]["spec"]["containers"][0]["args"]
        check("--default-pool=udf-sandboxes/default" in args
              and "--worker-image=localhost/udf-worker:dev" in args, args)
        out = kube.kubectl("scale", "-n", "udf-sandboxes", "udfpool/default", "--replicas=3").stdout
        check("scaled" in out, out)
        kube.kubectl("scale", "-n", "udf-sandboxes", "udfpool/default", "--replicas=2")

    def dry_run_everything():
        # Same apply mode as the real apply above (client-side), validated by the server.
        for path in [CRDS_DIR, MANIFESTS_DIR]:
            p = kube.kubectl("apply", "--dry-run=server", "-f", path)
            check(p.stdout.count("(server dry run)") == len(load_files(yaml_files(path))) and not p.stderr,
                  p.stdout + p.stderr)
        kube.kubectl("create", "namespace", "tenant-a")
        examples = len(load_files(yaml_files(EXAMPLES_DIR)))
        check(examples >= 4, "examples: %d objects" % examples)
        for mode in ["--server-side", "--server-side=false"]:
            out = kube.kubectl("apply", mode, "--dry-run=server", "-n", "tenant-a", "-f", EXAMPLES_DIR).stdout
            check(out.count("(server dry run)") == examples, out)

    def pod_security_admits_operator():
        # udf-system enforces "restricted": a Pod made from the Deployment's template must pass.
        dep = json.loads(kube.kubectl("get", "-n", "udf-system", "deploy", "udf-operator", "-o", "json").stdout)
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "psa-check", "namespace": "udf-system"},
               "spec": dep["spec"]["template"]["spec"]}
        p = kube.kubectl("create", "--dry-run=server", "-f", "-", input=json.dumps(pod))
        check("Warning" not in p.stderr, p.stderr)
        # And the namespaces really enforce it: a root pod is refused, among the sandboxes too.
        bad = json.loads(json.dumps(pod))
        bad["spec"]["securityContext"] = {}
        bad["spec"]["containers"][0]["securityContext"] = {}
        p = kube.kubectl("create", "--dry-run=server", "-f", "-", input=json.dumps(bad), check_rc=False)
        check(p.returncode != 0 and "violates PodSecurity" in p.stderr, "a root pod was admitted: " + p.stderr)
        # udf-sandboxes admits a sandbox pod made as the issue asks (gVisor, no token, restricted,
        # read-only root, sized emptyDirs) and refuses the same pod running as root.
        kube.kubectl("wait", "-n", "udf-sandboxes", "--for=jsonpath={.metadata.name}=default", "--timeout=60s",
                     "serviceaccount/default")
        restricted = {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                      "capabilities": {"drop": ["ALL"]}}
        sandbox = {"apiVersion": "v1", "kind": "Pod",
                   "metadata": {"name": "sandbox-check", "namespace": "udf-sandboxes"},
                   "spec": {"runtimeClassName": "gvisor", "automountServiceAccountToken": False,
                            "enableServiceLinks": False, "restartPolicy": "Never",
                            "securityContext": {"runAsNonRoot": True, "runAsUser": 10001,
                                                "seccompProfile": {"type": "RuntimeDefault"}},
                            "containers": [{"name": "worker", "image": "localhost/udf-worker:dev",
                                            "securityContext": restricted,
                                            "resources": {"limits": {"cpu": "1", "memory": "512Mi",
                                                                     "ephemeral-storage": "2Gi"}},
                                            "volumeMounts": [{"name": "app", "mountPath": "/app"},
                                                             {"name": "tmp", "mountPath": "/tmp"}]}],
                            "volumes": [{"name": "app", "emptyDir": {"sizeLimit": "1Gi"}},
                                        {"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}}]}}
        p = kube.kubectl("create", "--dry-run=server", "-f", "-", input=json.dumps(sandbox))
        check("Warning" not in p.stderr, p.stderr)
        sandbox["spec"]["securityContext"] = {"runAsUser": 0}
        p = kube.kubectl("create", "--dry-run=server", "-f", "-", input=json.dumps(sandbox), check_rc=False)
        check(p.returncode != 0 and "violates PodSecurity" in p.stderr,
              "a root sandbox pod was admitted in udf-sandboxes: " + p.stderr)

    def least_privilege():
        def can(verb, resource, ns=None, sub=None):
            args = ["auth", "can-i", verb, resource, "--as", sa]
            if ns:
                args += ["-n", ns]
            if sub:
                args += ["--subresource", sub]
            return kube.kubectl(*args, check_rc=False).stdout.strip() == "yes"

        allowed = [("watch", "udfwarmpools.udf.sandbox.io", "tenant-a", None),
                   ("create", "udffunctions.udf.sandbox.io", "tenant-a", None),
                   ("delete", "udffunctions.udf.sandbox.io", "tenant-a", None),
                   ("update", "udfwarmpools.udf.sandbox.io", "tenant-a", "status"),
                   ("patch", "udffunctions.udf.sandbox.io", "tenant-a", "status"),
                   ("create", "pods", "tenant-a", None), ("patch", "pods", "tenant-a", None),
                   ("delete", "pods", "tenant-a", None), ("create", "services", "tenant-a", None),
                   ("patch", "endpointslices.discovery.k8s.io", "tenant-a", None),
                   ("get", "secrets", "tenant-a", None), ("create", "secrets", "tenant-a", None),
                   ("create", "networkpolicies.networking.k8s.io", "tenant-a", None),
                   ("create", "resourcequotas", "tenant-a", None),
                   ("create", "events", "tenant-a", None), ("create", "namespaces", None, None),
                   ("update", "leases.coordination.k8s.io", "udf-system", None),
                   ("create", "leases.coordination.k8s.io", "udf-system", None)]
        denied = [("list", "secrets", "tenant-a", None), ("watch", "secrets", "tenant-a", None),
                  ("update", "udfwarmpools.udf.sandbox.io", "tenant-a", None),
                  ("delete", "udfwarmpools.udf.sandbox.io", "tenant-a", None),
                  ("update", "pods", "tenant-a", None), ("create", "pods", "tenant-a", "exec"),
                  ("delete", "namespaces", None, None), ("delete", "networkpolicies.networking.k8s.io", "tenant-a", None),
                  ("update", "leases.coordination.k8s.io", "tenant-a", None),
                  ("create", "deployments.apps", "tenant-a", None), ("create", "clusterroles.rbac.authorization.k8s.io", None, None),
                  ("update", "customresourcedefinitions.apiextensions.k8s.io", None, None)]
        wrong = ["%s %s%s should be allowed" % (v, r, "/" + s if s else "") for v, r, n, s in allowed if not can(v, r, n, s)]
        wrong += ["%s %s%s should be denied" % (v, r, "/" + s if s else "") for v, r, n, s in denied if can(v, r, n, s)]
        check(not wrong, "; ".join(wrong))

    def delete_plain():
        kube.kubectl("delete", "-f", MANIFESTS_DIR, "--wait=true", "--timeout=120s")
        for ns in ["udf-system", "udf-sandboxes"]:
            p = kube.kubectl("get", "namespace", ns, check_rc=False)
            check(p.returncode != 0, "%s still exists" % ns)

    def helm_install():
        # No --wait: this cluster has no node, so the operator's pod never becomes ready.
        out = helm("install", "udf-sandbox", CHART_DIR, "--namespace", "default", kubeconfig=kubeconfig).stdout
        check("STATUS: deployed" in out and "UdfWarmPool udf-sandboxes/default" in out, out)
        pool = json.loads(kube.kubectl("get", "-n", "udf-sandboxes", "udfpool", "default", "-o", "json").stdout)
        check(pool["spec"]["replicas"] == 2 and pool["spec"]["runtime"]["runtimeClassName"] == "gvisor"
              and pool["spec"]["refill"]["maxInFlight"] == 10
              and pool["spec"]["functionNamespaceSelector"] == {
                  "matchLabels": {"udf.sandbox.io/tenant-namespace": "true"}}, pool["spec"])
        ns = json.loads(kube.kubectl("get", "namespace", "udf-sandboxes", "-o", "json").stdout)
        check(ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted", ns["metadata"])
        for what in [("-n", "udf-system", "deploy/udf-operator"), ("-n", "udf-system", "svc/udf-operator-grpc"),
                     ("runtimeclass/gvisor",), ("clusterrole/udf-operator",)]:
            kube.kubectl("get", *what)

    def helm_upgrade():
        helm("upgrade", "udf-sandbox", CHART_DIR, "--namespace", "default", "--reuse-values",
             "--set", "defaultPool.replicas=4", "--set", "grpc.service.type=NodePort",
             "--set", "grpc.tls.secretName=udf-operator-grpc-tls",
             "--set", "operator.leaderElection=false", kubeconfig=kubeconfig)
        pool = json.loads(kube.kubectl("get", "-n", "udf-sandboxes", "udfpool", "default", "-o", "json").stdout)
        check(pool["spec"]["replicas"] == 4, pool["spec"])
        svc = json.loads(kube.kubectl("get", "-n", "udf-system", "svc", "udf-operator-grpc", "-o", "json").stdout)
        check(svc["spec"]["type"] == "NodePort", svc["spec"])
        dep = json.loads(kube.kubectl("get", "-n", "udf-system", "deploy", "udf-operator", "-o", "json").stdout)
        check("--leader-elect=false" in dep["spec"]["template"]["spec"]["containers"][0]["args"], "args")

    def helm_uninstall():
        helm("uninstall", "udf-sandbox", "--namespace", "default", "--wait", kubeconfig=kubeconfig)
        p = kube.kubectl("get", "-n", "udf-sandboxes", "udfpool", "default", check_rc=False)
        check(p.returncode != 0 and "NotFound" in p.stderr, "pool left behind: " + p.stdout + p.stderr)
        p = kube.kubectl("get", "clusterrole", "udf-operator", check_rc=False)
        check(p.returncode != 0, "ClusterRole left behind")
        # Helm keeps CRDs on uninstall (so users' objects survive); they are still there.
        kube.kubectl("get", "crd", "udffunctions.udf.sandbox.io")
        # And the RuntimeClass (helm.sh/resource-policy: keep): other workloads may use it.
        kube.kubectl("get", "runtimeclass", "gvisor")

    def release_objects():
        manifest = helm("get", "manifest", "udf-sandbox", "--namespace", "default", kubeconfig=kubeconfig).stdout
        return {object_key(d) for d in load_docs(manifest)}

    def helm_adopts_plain():
        # Someone applied manifests/ before (client-side, as the README's first way): every object
        # exists, with the ownership metadata the plain manifests carry, and helm takes them over.
        kube.kubectl("apply", "-f", MANIFESTS_DIR)
        out = helm("install", "udf-sandbox", CHART_DIR, "--namespace", "default", kubeconfig=kubeconfig).stdout
        check("STATUS: deployed" in out, out)
        plain = {object_key(d) for d in load_files(yaml_files(MANIFESTS_DIR))}
        check(release_objects() == plain, "release holds %s, manifests/ %s" % (sorted(release_objects()), sorted(plain)))
        dep = json.loads(kube.kubectl("get", "-n", "udf-system", "deploy", "udf-operator", "-o", "json").stdout)
        check(dep["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm", dep["metadata"])
        helm("uninstall", "udf-sandbox", "--namespace", "default", "--wait", kubeconfig=kubeconfig)
        for what in ["namespace/udf-system", "namespace/udf-sandboxes", "clusterrole/udf-operator"]:
            p = kube.kubectl("get", what, check_rc=False)
            check(p.returncode != 0, "%s left behind by helm uninstall" % what)

    def helm_over_foreign_runtimeclass():
        # The node (hack/node.sh) and GKE Sandbox create RuntimeClass gvisor themselves, without
        # Helm's metadata: the chart uses it as it is and never takes it over or deletes it.
        kube.kubectl("delete", "runtimeclass", "gvisor")
        foreign = "apiVersion: node.k8s.io/v1\nkind: RuntimeClass\nmetadata:\n  name: gvisor\nhandler: runsc\n"
        kube.kubectl("apply", "-f", "-", input=foreign)
        out = helm("install", "udf-sandbox", CHART_DIR, "--namespace", "default", kubeconfig=kubeconfig).stdout
        check("STATUS: deployed" in out, out)
        check("node.k8s.io/v1/RuntimeClass /gvisor" not in release_objects(), release_objects())
        helm("upgrade", "udf-sandbox", CHART_DIR, "--namespace", "default", "--reuse-values",
             "--set", "defaultPool.replicas=3", kubeconfig=kubeconfig)
        check("node.k8s.io/v1/RuntimeClass /gvisor" not in release_objects(), release_objects())
        helm("uninstall", "udf-sandbox", "--namespace", "default", "--wait", kubeconfig=kubeconfig)
        rc = json.loads(kube.kubectl("get", "runtimeclass", "gvisor", "-o", "json").stdout)
        check("meta.helm.sh/release-name" not in rc["metadata"].get("annotations", {}), rc["metadata"])

    def helm_refuses_other_handler():
        # A RuntimeClass of that name with another handler would run sandbox pods on the wrong
        # runtime: the install stops before creating anything and says why.
        kube.kubectl("delete", "runtimeclass", "gvisor")
        other = "apiVersion: node.k8s.io/v1\nkind: RuntimeClass\nmetadata:\n  name: gvisor\nhandler: runc\n"
        kube.kubectl("apply", "-f", "-", input=other)
        p = helm("install", "udf-sandbox", CHART_DIR, "--namespace", "default", kubeconfig=kubeconfig,
                 check_rc=False)
        check(p.returncode != 0 and 'RuntimeClass gvisor exists with handler "runc"' in p.stderr, p.stdout + p.stderr)
        check(kube.kubectl("get", "namespace", "udf-system", check_rc=False).returncode != 0,
              "a refused install created udf-system")
        kube.kubectl("delete", "runtimeclass", "gvisor")

    return [
        ("server-side dry run of crds/ on a fresh cluster", dry_run_crds),
        ("kubectl apply --server-side -f crds/, then -f manifests/", server_side_apply),
        ("the default pool and udf-sandboxes as stored", default_pool_stored),
        ("kubectl delete -f manifests/ -f crds/", delete_all),
        ("kubectl apply -f crds/, then -f manifests/", apply_like_a_user),
        ("server-side dry run of crds/, manifests/, examples/", dry_run_everything),
        ("Pod Security restricted: operator pod in, root pods out", pod_security_admits_operator),
        ("the operator's RBAC: needed verbs only", least_privilege),
        ("kubectl delete -f manifests/", delete_plain),
        ("helm install (default values: the default pool too)", helm_install),
        ("helm upgrade changes pool size, service type, election", helm_upgrade),
        ("helm uninstall", helm_uninstall),
        ("helm install adopts what kubectl apply -f manifests/ made", helm_adopts_plain),
        ("helm install beside the node's RuntimeClass gvisor", helm_over_foreign_runtimeclass),
        ("helm install refuses a gvisor RuntimeClass of another handler", helm_refuses_other_handler),
    ]


def main():
    global HELM
    t0 = time.monotonic()
    HELM = helm_path()
    print("helm: %s (%.1fs)" % (HELM, time.monotonic() - t0), flush=True)
    static = [
        ("chart crds/ equal crds/", chart_crds_are_crds),
        ("every CRD field has a description", every_field_described),
        ("helm lint --strict is clean", lint),
        ("helm template (defaults) equals crds/ + manifests/", template_equals_plain),
        ("every plain object carries Helm's ownership metadata", ownership_metadata),
        ("a changed value makes the comparison fail", comparison_really_diffs),
        ("non-default values render", values_render),
        ("ServiceMonitor and PrometheusRule (off by default)", monitoring_render),
        ("values.schema.json rejects bad values", schema_rejects),
        ("sandbox NetworkPolicy shape", network_policy_shape),
        ("callers confined: operator NetworkPolicy, TLS", callers_confined),
        ("udf-operator accepts the Deployment's args", operator_accepts_args),
    ]
    failed = run_cases(static, exit_on_failure=False)
    with private_cluster() as kube:
        on_cluster = cluster_cases(kube)
        failed += run_cases(on_cluster, exit_on_failure=False)
    finish(failed, len(static) + len(on_cluster))


if __name__ == "__main__":
    try:
        main()
    except Failure as e:
        print("FAIL: %s" % e)
        raise SystemExit(1)
