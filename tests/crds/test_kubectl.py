"""What a platform engineer sees with kubectl: printer columns, the udf-sandbox category, the
scale subresource (kubectl scale, an HPA), the status subresource and kubectl explain.

Runs on the shared cluster in a namespace of its own, with the examples from manifests/examples.
The status a controller would write is patched in through the status subresource.
"""

import json
import time

from crdtest import EXAMPLES_DIR, Failure, check, run_cases, shared_namespace

POOL_STATUS = {"replicas": 2, "readyReplicas": 2, "warmHits": 7, "coldStarts": 1,
               "selector": "udf.sandbox.io/pool=shared,udf.sandbox.io/state=idle", "observedGeneration": 1,
               "conditions": [{"type": "ScaleUpBlocked", "status": "False", "reason": "PodsCreated",
                               "message": "pods are created", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}
FN_STATUS = {"endpoint": "http://10.96.0.10:8815", "tokenSecretName": "add-one-token", "replicas": 1,
             "readyReplicas": 1, "selector": "udf.sandbox.io/function=add-one", "launchType": "warm",
             "specHash": "sha256-0123", "observedGeneration": 1,
             "conditions": [{"type": "Ready", "status": "True", "reason": "Serving", "message": "1 of 1 pods ready",
                             "lastTransitionTime": "2026-01-01T00:00:00Z"}]}


def table(text):
    """kubectl's table output as (header columns, rows of columns); one table."""
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[0].split(), [line.split() for line in lines[1:]]


def cells(text):
    """kubectl's table output as (header columns, rows of {column: cell}), cut at the header's
    column starts so that an empty cell stays an empty string."""
    lines = [line for line in text.splitlines() if line.strip()]
    head = lines[0].split()
    starts, pos = [], 0
    for h in head:
        pos = lines[0].index(h, pos)
        starts.append(pos)
        pos += len(h)
    bounds = list(zip(starts, starts[1:] + [None]))
    return head, [{h: line[a:b].strip() for h, (a, b) in zip(head, bounds)} for line in lines[1:]]


def main():
    with shared_namespace("udf-crds-kubectl") as (kube, ns):
        k = lambda *a, **kw: kube.kubectl("-n", ns, *a, **kw)  # noqa: E731

        def get_json(*what):
            return json.loads(k("get", *what, "-o", "json").stdout)

        def setup():
            out = k("apply", "-f", EXAMPLES_DIR).stdout
            for want in ["udfwarmpool.udf.sandbox.io/big", "udfwarmpool.udf.sandbox.io/shared",
                         "udffunction.udf.sandbox.io/add-one", "udffunction.udf.sandbox.io/add-two"]:
                check(want + " created" in out, out)
            k("patch", "udfpool", "shared", "--subresource=status", "--type=merge",
              "-p", json.dumps({"status": POOL_STATUS}))
            k("patch", "udf", "add-one", "--subresource=status", "--type=merge",
              "-p", json.dumps({"status": FN_STATUS}))

        def columns():
            out = k("get", "udf,udfpool").stdout
            tables = [t for t in out.split("\n\n") if t.strip()]
            check(len(tables) == 2, "want two tables:\n" + out)
            head, rows = table(tables[0])
            check(head == ["NAME", "READY", "ENDPOINT", "REPLICAS", "LAUNCH", "AGE"], "function columns: %s" % head)
            check(rows[0][:5] == ["udffunction.udf.sandbox.io/add-one", "True", "http://10.96.0.10:8815", "1", "warm"],
                  "function row: %s" % rows[0])
            head, rows = table(tables[1])
            check(head == ["NAME", "READY", "DESIRED", "HITS", "AGE"], "pool columns: %s" % head)
            # No status yet: READY and HITS are empty, so the row is NAME DESIRED AGE.
            check(rows[0][:2] == ["udfwarmpool.udf.sandbox.io/big", "1"], "pool row: %s" % rows[0])
            check(rows[1][:4] == ["udfwarmpool.udf.sandbox.io/shared", "2", "3", "7"], "pool row: %s" % rows[1])
            return out

        def wide():
            head, rows = table(k("get", "udfpool", "shared", "-o", "wide").stdout)
            check(head == ["NAME", "READY", "DESIRED", "HITS", "COLD", "BLOCKED", "AGE"],
                  "pool wide columns: %s" % head)
            check(rows[0][4:6] == ["1", "False"], "cold starts, blocked: %s" % rows[0])
            head, rows = cells(k("get", "udf", "-o", "wide").stdout)
            check(head[:7] == ["NAME", "READY", "ENDPOINT", "REPLICAS", "LAUNCH", "REASON", "POOL"],
                  "function wide columns: %s" % head)
            # add-one names no pool (the operator's --default-pool): the column is empty.
            check([(r["NAME"], r["REASON"], r["POOL"]) for r in rows] == [("add-one", "Serving", ""),
                                                                           ("add-two", "", "shared")],
                  "function wide rows: %s" % rows)

        def category():
            out = k("get", "udf-sandbox", "-o", "name").stdout.split()
            check(sorted(out) == ["udffunction.udf.sandbox.io/add-one", "udffunction.udf.sandbox.io/add-two",
                                  "udfwarmpool.udf.sandbox.io/big", "udfwarmpool.udf.sandbox.io/shared"],
                  "kubectl get udf-sandbox: %s" % out)

        def scale_pool():
            out = k("scale", "udfpool/shared", "--replicas=5").stdout
            check("scaled" in out, out)
            pool = get_json("udfpool", "shared")
            check(pool["spec"]["replicas"] == 5, "spec.replicas %s" % pool["spec"]["replicas"])
            check(pool["metadata"]["generation"] == 2, "generation %s" % pool["metadata"]["generation"])
            scale = json.loads(kube.kubectl("get", "--raw", "/apis/udf.sandbox.io/v1alpha1/namespaces/%s/"
                                            "udfwarmpools/shared/scale" % ns).stdout)
            check(scale["kind"] == "Scale" and scale["spec"]["replicas"] == 5 and scale["status"]["replicas"] == 2
                  and scale["status"]["selector"] == POOL_STATUS["selector"], "scale: %s" % scale)

        def scale_function_bounds():
            k("scale", "udf/add-one", "--replicas=3")
            check(get_json("udf", "add-one")["spec"]["replicas"] == 3, "function not scaled to 3")
            k("patch", "udf", "add-one", "--type=merge", "-p", '{"spec":{"maxReplicas":3}}')
            p = k("scale", "udf/add-one", "--replicas=4", check_rc=False)
            check(p.returncode != 0, "scaling past maxReplicas was accepted")
            check("replicas (4) is above maxReplicas (3): lower replicas or raise maxReplicas" in p.stderr, p.stderr)
            check(get_json("udf", "add-one")["spec"]["replicas"] == 3, "rejected scale changed replicas")
            return "     | " + p.stderr.strip()

        def status_subresource():
            # Status written through the main resource is dropped; spec through status too.
            k("patch", "udfpool", "shared", "--type=merge", "-p", '{"status":{"warmHits":99}}')
            k("patch", "udfpool", "shared", "--subresource=status", "--type=merge", "-p", '{"spec":{"replicas":9}}')
            pool = get_json("udfpool", "shared")
            check(pool["status"]["warmHits"] == 7, "status changed through the main resource")
            check(pool["spec"]["replicas"] == 5, "spec changed through the status subresource")

        def hpa():
            # The HPA controller (kube-controller-manager) reads the pool through its scale
            # subresource; AbleToScale=True/SucceededGetScale proves it could.
            h = {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
                 "metadata": {"name": "shared-pool"},
                 "spec": {"scaleTargetRef": {"apiVersion": "udf.sandbox.io/v1alpha1", "kind": "UdfWarmPool",
                                             "name": "shared"},
                          "minReplicas": 1, "maxReplicas": 10,
                          "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {
                              "type": "Utilization", "averageUtilization": 50}}}]}}
            k("apply", "-f", "-", input=json.dumps(h))
            deadline = time.monotonic() + 60
            conds = {}
            while time.monotonic() < deadline:
                st = get_json("hpa", "shared-pool").get("status", {})
                conds = {c["type"]: c for c in st.get("conditions", [])}
                if "AbleToScale" in conds:
                    break
                time.sleep(1)
            check(conds.get("AbleToScale", {}).get("status") == "True"
                  and conds["AbleToScale"].get("reason") == "SucceededGetScale",
                  "HPA could not read the pool's scale: %s" % conds)
            return "     | AbleToScale: %s" % conds["AbleToScale"]["message"]

        def explain():
            out = kube.kubectl("explain", "udffunction.spec").stdout
            for want in ["KIND:       UdfFunction", "GROUP:      udf.sandbox.io", "VERSION:    v1alpha1",
                         "The function, how many pods serve it and where they come from",
                         "handler\t<string>", "Structured form. The Python function to call",
                         "script\t<string>", "env\t<map[string]string>", "reserved for the",
                         "idleTimeoutSeconds\t<integer>", "0 means never scale to zero",
                         "poolRef\t<Object>", "replicas\t<integer>"]:
                check(want in out, "kubectl explain udffunction.spec lacks %r:\n%s" % (want, out))
            out = kube.kubectl("explain", "udfwarmpool.spec.refill").stdout
            check("maxPodsPerSecond\t<integer>" in out and "Pod creations per second at most" in out, out)
            out = kube.kubectl("explain", "udfwarmpool.spec.functionNamespaceSelector").stdout
            check("matchExpressions\t<[]Object>" in out and "own namespace is always allowed" in out, out)
            out = kube.kubectl("explain", "udffunction.spec.poolRef.namespace").stdout
            check("when empty, the function's own" in out, out)
            out = kube.kubectl("explain", "udfwarmpool.status").stdout
            check("warmHits\t<integer>" in out and "coldStarts\t<integer>" in out, out)
            # Every field of both kinds carries a description.
            for kind in ["udffunction", "udfwarmpool"]:
                out = kube.kubectl("explain", kind, "--recursive").stdout
                check("<Object>" in out, out)
            return None

        def short_names():
            for name in ["udf", "udfs", "udffunction", "udffunctions", "udfpool", "udfpools", "udfwarmpool"]:
                k("get", name)

        run_cases([
            ("apply the examples and patch in their status", setup),
            ("kubectl get udf,udfpool shows the columns", columns),
            ("kubectl get -o wide shows Cold, Reason, Pool", wide),
            ("kubectl get udf-sandbox lists both kinds", category),
            ("short names resolve", short_names),
            ("kubectl scale udfpool/shared --replicas=5", scale_pool),
            ("kubectl scale udf within min/maxReplicas", scale_function_bounds),
            ("status and spec are separate subresources", status_subresource),
            ("an HPA reads the pool through its scale subresource", hpa),
            ("kubectl explain shows field descriptions", explain),
        ])


if __name__ == "__main__":
    try:
        main()
    except Failure as e:
        print("FAIL: %s" % e)
        raise SystemExit(1)
