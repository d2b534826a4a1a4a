"""--endpoint-mode=service: a function's endpoint is a Service of its own (selectorless, its
EndpointSlice lists the pods in the pool's namespace); Flight through it works, a spec change
keeps the same endpoint and serves the new code, and deleting the function removes the
Service."""

import json
import sys
import time

import fnlib as fl
import poollib as pl
from udfop import wait_for


def main():
    kubeconfig = pl.ensure_node(worker_image=True)
    with fl.Namespace("fn-svc") as ns, fl.Namespace("fn-svc-pool") as pool_ns, \
            fl.operator(kubeconfig, "--default-pool", f"{pool_ns.name}/warm",
                        "--endpoint-mode=service"):
        pool = pl.pool_manifest("warm", 1)
        pool["spec"]["functionNamespaceSelector"] = {"matchLabels": {pl.POOL_LABEL: pl.RUN_ID}}
        pl.apply(pool_ns.name, pool)
        fl.wait_idle_ready(pool_ns.name, "warm", 1, 240)
        fl.apply_fn(ns.name, fl.example("add-one.yaml"))
        fn = fl.wait_function(ns.name, "add-one", 120)
        svc = pl.kjson("-n", ns.name, "get", "service", "add-one")
        ip = svc["spec"]["clusterIP"]
        pl.check(fn["status"]["endpoint"] == f"http://{ip}:8815",
                 f"endpoint is the Service: {fn['status']['endpoint']}")
        pl.check(not svc["spec"].get("selector"), "the Service has no selector")
        pod = fl.claimed_pods(pool_ns.name, fn)[0]
        sl = pl.kjson("-n", ns.name, "get", "endpointslice", "add-one-flight")
        pl.check([e["addresses"][0] for e in sl["endpoints"]] == [pod["status"]["podIP"]],
                 "the EndpointSlice lists the pod in the pool's namespace")
        tok = fl.token(ns.name, fn)

        def answers(want):
            try:
                return fl.call(fn["status"]["endpoint"], "add_one", [1], tok, ns.name,
                               timeout=5) == want
            except Exception:  # noqa: BLE001 - kube-proxy rules lag the slice by a moment
                return False
        wait_for(lambda: answers([2]), 30, interval=0.3, what="Flight through the Service")
        pl.check(True, "Flight through the Service answers")
        pl.k("-n", ns.name, "patch", "udffunction", "add-one", "--type=merge", "-p",
             json.dumps({"spec": {"code": "def add_one(x: int) -> int:\n    return x + 10\n"}}))
        wait_for(lambda: answers([11]), 120, interval=0.3, what="the new code via the Service")
        fn2 = fl.function(ns.name, "add-one")
        pl.check(fn2["status"]["endpoint"] == fn["status"]["endpoint"],
                 "a roll keeps the endpoint")
        pl.k("-n", ns.name, "delete", "udffunction", "add-one", "--timeout=60s")
        wait_for(lambda: pl.k("-n", ns.name, "get", "service", "add-one",
                              check=False).returncode != 0, 60, interval=0.5,
                 what="Service gone")
        pl.check(True, "deleting the function removes its Service")
    return pl.finish()


if __name__ == "__main__":
    sys.exit(main())
