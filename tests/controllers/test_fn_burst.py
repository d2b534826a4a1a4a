"""Many functions created at once against a small warm pool (the issue's 30 functions against
5 idle pods, scaled to what this 2-core machine holds: FN_BURST_N functions, default 12,
against FN_BURST_POOL idle pods, default 4): at least as many warm claims as idle pods, the
rest cold starts, no pod owned twice, every function Ready, and the pods the API server saw
created (this test's own watch) == the number of functions: each warm claim replaced once by
the pool, each cold start one pod."""

import os
import sys
import time

import fnlib as fl
import poollib as pl
from udfop import wait_for

N = int(os.environ.get("FN_BURST_N", "12"))
POOL = int(os.environ.get("FN_BURST_POOL", "4"))


def fn_manifest(i):
    m = fl.example("add-one.yaml")
    m["metadata"]["name"] = f"f{i:03d}"
    m["spec"]["code"] = f"def add_one(x: int) -> int:\n    return x + {i}\n"
    return m


def check_ownership(ns, names):
    """Every function Ready on exactly one pod of its own; no pod shared; no stray claims."""
    fns = {f["metadata"]["name"]: f for f in pl.kjson("-n", ns, "get", "udffunctions")["items"]}
    pods = [p for p in pl.kjson("-n", ns, "get", "pods")["items"]
            if p["metadata"]["labels"].get("udf.sandbox.io/state") == "claimed"
            and not p["metadata"].get("deletionTimestamp")]
    by_uid = {}
    for p in pods:
        by_uid.setdefault(p["metadata"]["labels"]["udf.sandbox.io/function-uid"], []).append(p)
    uids = {f["metadata"]["uid"]: n for n, f in fns.items()}
    leaked = [p["metadata"]["name"] for p in pods
              if p["metadata"]["labels"]["udf.sandbox.io/function-uid"] not in uids]
    doubled = {uids[u]: [p["metadata"]["name"] for p in ps] for u, ps in by_uid.items()
               if u in uids and len(ps) > 1}
    missing = [n for n in names if fns.get(n) is None
               or fl.cond(fns[n], "Ready").get("status") != "True"
               or len(by_uid.get(fns[n]["metadata"]["uid"], [])) != 1]
    endpoints = [f["status"].get("endpoint") for f in fns.values()]
    return leaked, doubled, missing, len(set(endpoints)) == len(endpoints), fns


def main():
    kubeconfig = pl.ensure_node(worker_image=True)
    with fl.Namespace("fn-burst") as ns, \
            fl.operator(kubeconfig, "--default-pool", f"{ns.name}/warm") as op:
        pl.apply(ns.name, pl.pool_manifest("warm", POOL))
        fl.wait_idle_ready(ns.name, "warm", POOL, 300)
        with pl.CreateWatch(ns.name) as watch:
            since = time.monotonic()
            t0 = time.monotonic()
            pl.k("-n", ns.name, "apply", "-f", "-", input="\n---\n".join(
                __import__("json").dumps(fn_manifest(i)) for i in range(N)))
            names = [f"f{i:03d}" for i in range(N)]

            def all_ready():
                leaked, doubled, missing, distinct, _ = check_ownership(ns.name, names)
                return not missing
            wait_for(all_ready, 600, interval=1, what=f"{N} functions Ready")
            took = time.monotonic() - t0
            leaked, doubled, missing, distinct, fns = check_ownership(ns.name, names)
            pl.check(not missing, f"{N} functions Ready in {took:.1f}s")
            pl.check(not doubled and distinct, f"no pod owned twice ({doubled})")
            pl.check(not leaked, f"no stray claimed pod ({leaked})")
            warm = sum(1 for f in fns.values() if f["status"].get("launchType") == "warm")
            cold = sum(1 for f in fns.values() if f["status"].get("launchType") == "cold")
            pl.check(warm >= POOL and warm + cold == N,
                     f"{warm} warm claims (>= {POOL}), {cold} cold starts")
            # The pool refills what was claimed from it; then the count is final.
            fl.wait_idle_ready(ns.name, "warm", POOL, 300)
            time.sleep(3)
            created = watch.count(since)
            pl.check(created == N, f"pods created == {N}: {created} (warm claims replaced "
                     "once each, cold starts one pod each)")
            pool = pl.pool(ns.name, "warm")["status"]
            pl.check(pool.get("warmHits") == warm and pool.get("coldStarts") == cold,
                     f"pool status warmHits {pool.get('warmHits')} coldStarts "
                     f"{pool.get('coldStarts')}")
            for name in names[:3]:
                f = fns[name]
                i = int(name[1:])
                got = fl.call(f["status"]["endpoint"], "add_one", [1], fl.token(ns.name, f),
                              ns.name)
                pl.check(got == [1 + i], f"{name} serves its own code: {got}")
            m = pl.metrics(op)
            reqs = [ln for ln in m.splitlines() if ln.startswith("udf_function_api_requests")]
            pl.log(f"function controller API requests: {reqs} for {N} claims")
    return pl.finish()


if __name__ == "__main__":
    sys.exit(main())
