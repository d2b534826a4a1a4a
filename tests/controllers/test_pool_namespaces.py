"""Two pools in two namespaces, one operator: each keeps its own pods in its own namespace,
with its own control key, and scaling one leaves the other alone. (Which namespaces' functions
may claim from a pool, spec.functionNamespaceSelector, is unit-tested in
tests/unit/test_udf_selector.c: the function controller is what checks it.)"""

import sys

import poollib as pl


def main():
    kubeconfig = pl.ensure_node(worker_image=True)
    with pl.Namespace("pool-ns-a") as a, pl.Namespace("pool-ns-b") as b, \
            pl.CreateWatch(a.name) as wa, pl.CreateWatch(b.name) as wb, pl.operator(kubeconfig):
        pl.apply(a.name, pl.pool_manifest("default", 1))
        pl.apply(b.name, pl.pool_manifest("default", 2))
        pa = pl.wait_ready_idle(a.name, "default", 1, 240)
        pb = pl.wait_ready_idle(b.name, "default", 2, 240)
        pl.check(True, "1 Ready pod in the first namespace, 2 in the second")
        uid_a = pl.pool(a.name, "default")["metadata"]["uid"]
        uid_b = pl.pool(b.name, "default")["metadata"]["uid"]
        pl.check(all(p["metadata"]["ownerReferences"][0]["uid"] == uid_a for p in pa)
                 and all(p["metadata"]["ownerReferences"][0]["uid"] == uid_b for p in pb),
                 "each pod is owned by the pool of its namespace")
        ka = pl.kjson("-n", a.name, "get", "secret", "default-control-key")["data"]["key"]
        kb = pl.kjson("-n", b.name, "get", "secret", "default-control-key")["data"]["key"]
        pl.check(ka != kb, "each pool has its own control key")
        pl.k("-n", b.name, "scale", "udfwarmpool/default", "--replicas=0")
        pl.wait_ready_idle(b.name, "default", 0, 120)
        still = pl.idle(a.name, "default")
        pl.check(len(still) == 1 and still[0]["metadata"]["name"] == pa[0]["metadata"]["name"],
                 "scaling the second pool to 0 leaves the first alone")
        pl.check(wa.count() == 1 and wb.count() == 2,
                 f"creates per namespace: {wa.count()} and {wb.count()}")
    return pl.finish()


if __name__ == "__main__":
    sys.exit(main())
