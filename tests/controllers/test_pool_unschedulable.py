"""A pool whose pods cannot be scheduled (a node selector no node matches) creates exactly
`replicas` pods and holds them, however long it waits, even past its readiness timeout: a
recreated pod would not make the cluster any bigger."""

import sys
import time

import poollib as pl
from udfop import wait_for

REPLICAS = 3
READINESS_TIMEOUT_S = 10
WAIT_S = 45


def main():
    kubeconfig = pl.ensure_node(worker_image=False)
    with pl.Namespace("pool-unsched") as ns, pl.CreateWatch(ns.name) as watch, \
            pl.operator(kubeconfig):
        pl.apply(ns.name, pl.pool_manifest("nowhere", REPLICAS,
                                           node_selector={"udf.sandbox.io/no-such-node": "x"},
                                           readiness_timeout=READINESS_TIMEOUT_S))
        wait_for(lambda: len(pl.pods(ns.name, "nowhere")) == REPLICAS, 60, interval=0.5,
                 what=f"{REPLICAS} pods")
        pl.log(f"{REPLICAS} pods exist; waiting {WAIT_S}s "
               f"(readinessTimeoutSeconds {READINESS_TIMEOUT_S})")
        time.sleep(WAIT_S)
        ps = pl.pods(ns.name, "nowhere")
        pl.check(len(ps) == REPLICAS and watch.count() == REPLICAS,
                 f"exactly {REPLICAS} pods, {REPLICAS} created: {len(ps)} pods, "
                 f"{watch.count()} created")
        pl.check(all(p["status"].get("phase") == "Pending" and not p["metadata"].get(
            "deletionTimestamp") for p in ps), "all Pending, none deleted")
        pool = pl.pool(ns.name, "nowhere")
        prog = pl.condition(pool, "Progressing")
        pl.check(prog.get("reason") == "PodsUnschedulable",
                 f"Progressing says why: {prog.get('reason')}: {prog.get('message')}")
        pl.check(pl.condition(pool, "ScaleUpBlocked").get("status") == "False",
                 "not ScaleUpBlocked: nothing failed")
        pl.check(pool["status"].get("replicas") == REPLICAS
                 and pool["status"].get("readyReplicas") == 0, "status 3 replicas, 0 Ready")
        # Scaling down removes the held pods first.
        pl.k("-n", ns.name, "scale", "udfwarmpool/nowhere", "--replicas=1")
        wait_for(lambda: len(pl.pods(ns.name, "nowhere")) == 1, 90, interval=1,
                 what="1 pod after scaling down")
        pl.check(watch.count() == REPLICAS, "scaling down created nothing")
    return pl.finish()


if __name__ == "__main__":
    sys.exit(main())
