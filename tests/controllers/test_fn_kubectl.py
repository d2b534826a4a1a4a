"""The kubectl path: a pool and manifests/examples/add-one.yaml applied as a person would; the
function claims a warm gVisor pod, publishes its endpoint and token Secret, and a Flight
DoExchange with the token and tenant returns the right rows, while a call without the token,
with another function's token or with another tenant is refused. Deleting the function takes
its pod and its Secret."""

import sys
import time

import fnlib as fl
import poollib as pl
from udfop import wait_for


def main():
    kubeconfig = pl.ensure_node(worker_image=True)
    with fl.Namespace("fn-kubectl") as ns, \
            fl.operator(kubeconfig, "--default-pool", f"{ns.name}/warm") as op:
        pl.apply(ns.name, pl.pool_manifest("warm", 2))
        pl.wait_ready_idle(ns.name, "warm", 2, 240)
        fl.apply_fn(ns.name, fl.example("add-one.yaml"))
        t0 = time.monotonic()
        fn = fl.wait_function(ns.name, "add-one", 120)
        pl.log(f"add-one Ready after {time.monotonic() - t0:.2f}s")
        st = fn["status"]
        pl.check(st.get("launchType") == "warm", f"launchType warm: {st.get('launchType')}")
        pl.check(st.get("endpoint", "").startswith("http://") and
                 st["endpoint"].endswith(":8815"), f"endpoint {st.get('endpoint')}")
        pl.check(st.get("tokenSecretName") == "add-one-token", "tokenSecretName add-one-token")
        pl.check(st.get("readyReplicas") == 1 and st.get("replicas") == 1,
                 f"replicas/readyReplicas 1/1: {st.get('replicas')}/{st.get('readyReplicas')}")
        for t in ("ImportsFetched", "PackagesInstalled", "CodeLoaded", "Specialized"):
            pl.check(fl.cond(fn, t).get("status") == "True", f"{t}=True")
        secret = pl.kjson("-n", ns.name, "get", "secret", "add-one-token")
        refs = secret["metadata"].get("ownerReferences", [])
        pl.check(len(refs) == 1 and refs[0]["uid"] == fn["metadata"]["uid"],
                 "the Secret is owned by the function")
        tok = fl.token(ns.name, fn)
        pl.check(len(tok) >= 32, f"token of {len(tok) * 4} bits")
        pl.check("udf.sandbox.io/sandbox-pods" in fn["metadata"].get("finalizers", []),
                 "the function has the pods finalizer")

        pods = fl.claimed_pods(ns.name, fn)
        pl.check(len(pods) == 1, f"one claimed pod: {[p['metadata']['name'] for p in pods]}")
        pod = pods[0]
        labels = pod["metadata"]["labels"]
        pl.check(labels.get("udf.sandbox.io/state") == "claimed", "pod state=claimed")
        pl.check(labels.get("udf.sandbox.io/tenant", "").startswith("t-"), "pod tenant label")
        pl.check(not any(r.get("controller") for r in pod["metadata"].get("ownerReferences", [])),
                 "the pool's controller reference is gone")
        pl.check(f"http://{pod['status']['podIP']}:8815" == st["endpoint"],
                 "the endpoint is the claimed pod's IP")

        # Flight: the tenant is the namespace's name (no tenant annotation, no spec.tenant).
        rows = fl.call(st["endpoint"], "add_one", [1, 41, -7], tok, ns.name)
        pl.check(rows == [2, 42, -6], f"add_one([1, 41, -7]) = {rows}")
        pl.check(fl.refused(st["endpoint"], "add_one", None, ns.name), "no token: refused")
        pl.check(fl.refused(st["endpoint"], "add_one", tok, "other_tenant"),
                 "another tenant: refused")

        # A second function: its token does not open the first one.
        two = fl.example("add-one.yaml")
        two["metadata"]["name"] = "add-one-b"
        fl.apply_fn(ns.name, two)
        fn_b = fl.wait_function(ns.name, "add-one-b", 120)
        tok_b = fl.token(ns.name, fn_b)
        pl.check(tok_b != tok, "each function has its own token")
        pl.check(fl.refused(st["endpoint"], "add_one", tok_b, ns.name),
                 "another function's token: refused")
        pl.check(fn_b["status"]["endpoint"] != st["endpoint"], "two functions, two pods")

        # The pool counted the claims and refilled.
        pool = pl.pool(ns.name, "warm")
        pl.check(pool["status"].get("warmHits", 0) >= 2,
                 f"pool warmHits {pool['status'].get('warmHits')}")
        fl.wait_idle_ready(ns.name, "warm", 2, 240)
        pl.check(True, "the pool refilled to 2 idle pods")
        m = pl.metrics(op)
        pl.check('udf_function_claims_total{namespace="%s",pool="warm",launch="warm"} 2'
                 % ns.name in m, "claims metric")
        hist = [ln for ln in m.splitlines() if ln.startswith("udf_function_claim_to_ready")]
        pl.check("udf_function_claim_to_ready_seconds_count 2" in hist
                 and 'udf_function_claim_to_ready_seconds_bucket{le="+Inf"} 2' in hist,
                 f"claim->Ready histogram {hist[-3:]}")

        # Deletion: the pod and the Secret go.
        pod_name = pod["metadata"]["name"]
        pl.k("-n", ns.name, "delete", "udffunction", "add-one", "--wait=true", "--timeout=60s")
        gone = wait_for(lambda: pl.k("-n", ns.name, "get", "pod", pod_name,
                                     check=False).returncode != 0
                        or pl.kjson("-n", ns.name, "get", "pod", pod_name)["metadata"]
                        .get("deletionTimestamp"), 60, interval=0.5, what="pod deleted")
        pl.check(bool(gone), "deleting the function deletes its pod")
        wait_for(lambda: pl.k("-n", ns.name, "get", "secret", "add-one-token",
                              check=False).returncode != 0, 60, interval=0.5,
                 what="Secret gone")
        pl.check(True, "the token Secret is gone with the function")
    return pl.finish()


if __name__ == "__main__":
    sys.exit(main())
