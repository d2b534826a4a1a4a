"""A pool converges to N Ready gVisor pods of the worker image, built to the pod contract, with
each pod's control token derivable from the pool key and only its hash in the pod; it follows
`kubectl scale` up and down, replaces a deleted pod, reports status and Events and /metrics,
and when deleted takes its idle pods with it but never a claimed one."""

import hashlib
import json
import sys
import time

import poollib as pl
from udfop import wait_for


def main():
    kubeconfig = pl.ensure_node(worker_image=True)
    with pl.Namespace("pool-life") as ns, pl.CreateWatch(ns.name) as watch, \
            pl.operator(kubeconfig) as op:
        pl.apply(ns.name, pl.pool_manifest("warm", 2))
        t0 = time.monotonic()
        ready = pl.wait_ready_idle(ns.name, "warm", 2, 240)
        pl.log(f"2 Ready pods after {time.monotonic() - t0:.1f}s")

        # The pods: gVisor, the contract's template, owned by the pool.
        pool = pl.pool(ns.name, "warm")
        for p in ready:
            name = p["metadata"]["name"]
            spec = p["spec"]
            c = spec["containers"][0]
            pl.check(spec.get("runtimeClassName") == "gvisor", f"{name}: runtimeClassName gvisor")
            uname = pl.k("-n", ns.name, "exec", name, "--", "cat", "/proc/version",
                         check=False).stdout
            dmesg = pl.k("-n", ns.name, "exec", name, "--", "dmesg", check=False).stdout
            pl.check("gVisor" in dmesg or "gvisor" in uname.lower(),
                     f"{name}: the kernel is gVisor's ({uname.strip()!r})")
            ref = [r for r in p["metadata"]["ownerReferences"] if r.get("controller")]
            pl.check(len(ref) == 1 and ref[0]["uid"] == pool["metadata"]["uid"]
                     and ref[0].get("blockOwnerDeletion") is True,
                     f"{name}: controller ownerReference is the pool")
            labels = p["metadata"]["labels"]
            pl.check(labels.get("udf.sandbox.io/state") == "idle"
                     and labels.get("app.kubernetes.io/managed-by") == "udf-operator"
                     and labels.get("app.kubernetes.io/name") == "udf-worker",
                     f"{name}: labels")
            pl.check(spec.get("automountServiceAccountToken") is False
                     and spec.get("enableServiceLinks") is False
                     and spec.get("restartPolicy") == "Never", f"{name}: no token, no links")
            sc = c.get("securityContext", {})
            pl.check(sc.get("readOnlyRootFilesystem") and sc.get("allowPrivilegeEscalation") is False
                     and sc.get("capabilities", {}).get("drop") == ["ALL"]
                     and spec["securityContext"].get("runAsNonRoot"),
                     f"{name}: restricted security context")
            lim = c.get("resources", {}).get("limits", {})
            pl.check(all(r in lim for r in ("cpu", "memory", "ephemeral-storage")),
                     f"{name}: cpu, memory and ephemeral-storage limits {lim}")
            token = pl.control_token(ns.name, "warm", name)
            anno = p["metadata"]["annotations"].get("udf.sandbox.io/control-token-sha256")
            pl.check(anno == hashlib.sha256(token.encode()).hexdigest(),
                     f"{name}: annotation is sha256 of HMAC(pool key, pod name)")
            pl.check(token not in json.dumps(p), f"{name}: the token is not in the pod")
            inside = pl.k("-n", ns.name, "exec", name, "--", "cat",
                          "/etc/udf-worker/control/token-sha256", check=False).stdout.strip()
            pl.check(inside == anno, f"{name}: the pod reads the hash through the downward API")

        st = pool.get("status", {})
        pl.check(st.get("replicas") == 2 and st.get("readyReplicas") == 2,
                 f"status replicas/readyReplicas 2/2: {st.get('replicas')}/{st.get('readyReplicas')}")
        pl.check(st.get("observedGeneration") == pool["metadata"]["generation"],
                 "status.observedGeneration")
        pl.check(st.get("selector") == "app.kubernetes.io/managed-by=udf-operator,"
                 "udf.sandbox.io/pool=warm,udf.sandbox.io/state=idle", "status.selector")
        pl.check(pl.condition(pool, "Ready").get("status") == "True", "Ready=True")
        pl.check(pl.condition(pool, "ScaleUpBlocked").get("status") == "False",
                 "ScaleUpBlocked=False")

        # kubectl scale goes through the scale subresource (status.selector makes it work).
        pl.k("-n", ns.name, "scale", "udfwarmpool/warm", "--replicas=3")
        pl.wait_ready_idle(ns.name, "warm", 3, 240)
        pl.check(True, "scaled up to 3 Ready pods")
        scale = json.loads(pl.k("get", "--raw", f"/apis/udf.sandbox.io/v1alpha1/namespaces/"
                                f"{ns.name}/udfwarmpools/warm/scale").stdout)
        pl.check(scale["status"].get("replicas") == 3 and "udf.sandbox.io/pool=warm"
                 in scale["status"].get("selector", ""), f"scale subresource: {scale['status']}")
        pl.k("-n", ns.name, "scale", "udfwarmpool/warm", "--replicas=1")
        left = pl.wait_ready_idle(ns.name, "warm", 1, 120)
        pl.check(True, "scaled down to 1 pod")

        # A deleted pod is replaced.
        gone = left[0]["metadata"]["name"]
        pl.k("-n", ns.name, "delete", "pod", gone, "--wait=false")
        now = pl.wait_ready_idle(ns.name, "warm", 1, 240)
        pl.check(now[0]["metadata"]["name"] != gone, f"deleted pod {gone} replaced by "
                 f"{now[0]['metadata']['name']}")

        created = watch.count()
        pl.check(created == 4, f"pods created: 2 + 1 (scale up) + 1 (replacement) = {created}")

        events = pl.kjson("-n", ns.name, "get", "events",
                          "--field-selector", "involvedObject.name=warm")["items"]
        reasons = {e["reason"] for e in events}
        pl.check("PodCreated" in reasons, f"Events on the pool: {sorted(reasons)}")

        m = pl.metrics(op)
        for needle in (f'udf_pool_pods_created_total{{namespace="{ns.name}",pool="warm"}} 4',
                       f'udf_pool_ready_pods{{namespace="{ns.name}",pool="warm"}} 1',
                       f'udf_pool_idle_pods{{namespace="{ns.name}",pool="warm"}} 1',
                       'workqueue_depth{name="udfwarmpool"}',
                       'workqueue_adds_total{name="udfwarmpool"}',
                       'workqueue_retries_total{name="udfwarmpool"}',
                       'udf_controller_reconciles_total{controller="udfwarmpool",result="success"}',
                       'udf_controller_reconcile_duration_seconds_count{controller="udfwarmpool"}'):
            pl.check(needle in m, f"/metrics has {needle}")

        # A claim (the function controller's job) moves the pod's controller off the pool.
        claimed = now[0]["metadata"]["name"]
        cm = pl.kjson("-n", ns.name, "create", "configmap", "claimer")
        pl.k("-n", ns.name, "patch", "pod", claimed, "--type=merge", "-p", json.dumps({
            "metadata": {"labels": {"udf.sandbox.io/state": "claimed"},
                         "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap",
                                              "name": "claimer", "uid": cm["metadata"]["uid"],
                                              "controller": True}]}}))
        wait_for(lambda: len([p for p in pl.idle(ns.name, "warm") if pl.is_ready(p)]) == 1,
                 240, interval=1, what="the pool refilled after the claim")
        pl.check(True, "the pool refilled after a claim")

        # Tokens never reach the operator's log, Events or status.
        text = op.output() + json.dumps(events) + json.dumps(pl.pool(ns.name, "warm"))
        leaked = [p["metadata"]["name"] for p in pl.pods(ns.name, "warm")
                  if pl.control_token(ns.name, "warm", p["metadata"]["name"]) in text]
        pl.check(not leaked, f"no control token in log, Events or status ({leaked})")

        # Deleting the pool deletes its idle pods (garbage collector), never the claimed one.
        pl.k("-n", ns.name, "delete", "udfwarmpool", "warm", "--wait=false")
        wait_for(lambda: not pl.idle(ns.name, "warm"), 120, interval=1,
                 what="idle pods deleted with the pool")
        survivor = pl.k("-n", ns.name, "get", "pod", claimed, check=False)
        pl.check(survivor.returncode == 0 and "Terminating" not in survivor.stdout,
                 "the claimed pod outlives its pool")
    return pl.finish()


if __name__ == "__main__":
    sys.exit(main())
