"""A function's life with kubectl: scaled up and down through the scale subresource; a spec
change rolls to new pods with Ready never False once it was True; a pod killed under load is
replaced (and calls work again on the new endpoint); an idle timeout scales it to zero (its
worker's /stats count as use), a recorded use brings it back; generation-3 SUSPEND (options
suspended=true) keeps no pod and RESUME brings one; a pool that does not admit the namespace
gives PoolNotAllowed; an empty pool means a cold start."""

import json
import sys
import threading
import time

import fnlib as fl
import poollib as pl
from udfop import wait_for


def ready_sampler(ns, name, stop, samples):
    while not stop.is_set():
        try:
            fn = fl.function(ns, name)
            samples.append((fl.cond(fn, "Ready").get("status"), fn["status"].get("endpoint")))
        except Exception:  # noqa: BLE001 - the API server may be busy; sample again
            pass
        stop.wait(0.2)


def patch(ns, name, body, sub=None):
    args = ["-n", ns, "patch", "udffunction", name, "--type=merge", "-p", json.dumps(body)]
    if sub:
        args.append(f"--subresource={sub}")
    pl.k(*args)


def main():
    kubeconfig = pl.ensure_node(worker_image=True)
    with fl.Namespace("fn-life") as ns, \
            fl.operator(kubeconfig, "--default-pool", f"{ns.name}/warm") as op:
        pl.apply(ns.name, pl.pool_manifest("warm", 2))
        fl.wait_idle_ready(ns.name, "warm", 2, 240)
        m = fl.example("add-one.yaml")
        fl.apply_fn(ns.name, m)
        fn = fl.wait_function(ns.name, "add-one", 120)
        tok = fl.token(ns.name, fn)
        pl.check(fl.call(fn["status"]["endpoint"], "add_one", [1], tok, ns.name) == [2],
                 "serves")

        # Scale through the scale subresource.
        pl.k("-n", ns.name, "scale", "udffunction/add-one", "--replicas=2")
        fn = fl.wait_function(ns.name, "add-one", 120,
                              pred=lambda f: f["status"].get("readyReplicas") == 2,
                              what="2 ready replicas")
        pl.check(len(fl.claimed_pods(ns.name, fn)) == 2, "scaled to 2 pods")
        pl.k("-n", ns.name, "scale", "udffunction/add-one", "--replicas=1")
        fn = fl.wait_function(ns.name, "add-one", 60,
                              pred=lambda f: f["status"].get("readyReplicas") == 1
                              and len([p for p in fl.claimed_pods(ns.name, f)
                                       if not p["metadata"].get("deletionTimestamp")]) == 1,
                              what="back to 1 replica")
        pl.check(True, "scaled back to 1 pod")

        # A spec change rolls: Ready stays True, the new code serves, the old pod goes.
        stop, samples = threading.Event(), []
        th = threading.Thread(target=ready_sampler, args=(ns.name, "add-one", stop, samples))
        th.start()
        old_pod = [p["metadata"]["name"] for p in fl.claimed_pods(ns.name, fn)
                   if not p["metadata"].get("deletionTimestamp")][0]
        patch(ns.name, "add-one",
              {"spec": {"code": "def add_one(x: int) -> int:\n    return x + 100\n"}})
        t0 = time.monotonic()

        def new_code():
            f = fl.function(ns.name, "add-one")
            ep = f["status"].get("endpoint")
            try:
                return ep and f["status"].get("observedGeneration") == f["metadata"]["generation"] \
                    and fl.call(ep, "add_one", [1], tok, ns.name, timeout=5) == [101]
            except Exception:  # noqa: BLE001
                return False
        wait_for(new_code, 120, interval=0.3, what="the new code serving")
        pl.log(f"new spec serving after {time.monotonic() - t0:.2f}s")
        wait_for(lambda: pl.k("-n", ns.name, "get", "pod", old_pod, check=False).returncode != 0
                 or pl.kjson("-n", ns.name, "get", "pod", old_pod)["metadata"]
                 .get("deletionTimestamp"), 60, interval=0.5, what="old pod retired")
        # A roll can be done in a fraction of a second: sample at least 3 s from the patch.
        time.sleep(max(1.0, 3.0 - (time.monotonic() - t0)))
        stop.set()
        th.join()
        not_ready = [s for s in samples if s[0] != "True"]
        pl.check(len(samples) > 5 and not not_ready,
                 f"Ready=True in all {len(samples)} samples during the roll ({not_ready[:3]})")
        pl.check(True, "the old pod is retired once the new one serves")

        # A pod killed under load is replaced.
        fn = fl.function(ns.name, "add-one")
        victim = [p for p in fl.claimed_pods(ns.name, fn)
                  if not p["metadata"].get("deletionTimestamp")][0]["metadata"]["name"]
        errors, calls, stop = [0], [0], threading.Event()

        def load():
            while not stop.is_set():
                try:
                    ep = fl.function(ns.name, "add-one")["status"].get("endpoint")
                    if ep:
                        fl.call(ep, "add_one", [1], tok, ns.name, timeout=3)
                        calls[0] += 1
                except Exception:  # noqa: BLE001 - the killed pod's calls fail
                    errors[0] += 1
                    time.sleep(0.1)
        th = threading.Thread(target=load)
        th.start()
        time.sleep(2)
        pl.k("-n", ns.name, "delete", "pod", victim, "--grace-period=0", "--force", check=False)
        t0 = time.monotonic()
        fn = fl.wait_function(ns.name, "add-one", 120,
                              pred=lambda f: fl.cond(f, "Ready").get("status") == "True"
                              and victim not in [p["metadata"]["name"]
                                                 for p in fl.claimed_pods(ns.name, f)])
        took = time.monotonic() - t0
        before = calls[0]
        time.sleep(2)
        stop.set()
        th.join()
        pl.check(calls[0] > before, f"killed pod replaced in {took:.1f}s; calls succeed again "
                 f"({calls[0]} ok, {errors[0]} failed around the kill)")
        evs = pl.kjson("-n", ns.name, "get", "events",
                       "--field-selector", "involvedObject.name=add-one")["items"]
        pl.check(any(e["reason"] == "PodLost" for e in evs), "a PodLost Event")

        # Idle timeout: Flight calls count (worker /stats); then no calls -> zero pods.
        patch(ns.name, "add-one", {"spec": {"idleTimeoutSeconds": 15}})
        t_end = time.monotonic() + 20
        while time.monotonic() < t_end:  # in use past the timeout: must stay up
            fl.call(fn["status"]["endpoint"], "add_one", [1], tok, ns.name)
            time.sleep(1)
        fn = fl.function(ns.name, "add-one")
        pl.check(fl.cond(fn, "Ready").get("status") == "True",
                 "calls within the idle timeout keep it up (the worker's /stats)")
        t0 = time.monotonic()
        fn = fl.wait_function(ns.name, "add-one", 90,
                              pred=lambda f: fl.cond(f, "Ready").get("reason") == "ScaledToZero",
                              what="scaled to zero")
        wait_for(lambda: not [p for p in fl.claimed_pods(ns.name, fn)
                              if not p["metadata"].get("deletionTimestamp")], 30,
                 what="no pod")
        pl.check(True, f"idle: scaled to zero {time.monotonic() - t0:.0f}s after the last call")
        # A recorded use (what the gRPC service writes on a call) brings it back.
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        patch(ns.name, "add-one", {"status": {"lastUsedTime": now}}, sub="status")
        t0 = time.monotonic()
        fn = fl.wait_function(ns.name, "add-one", 60)
        pl.check(True, f"a recorded use wakes it: Ready in {time.monotonic() - t0:.2f}s "
                 f"({fn['status'].get('launchType')})")
        patch(ns.name, "add-one", {"spec": {"idleTimeoutSeconds": 0}})

        # Generation 3 SUSPEND / RESUME (what ALTER WORKER records).
        patch(ns.name, "add-one", {"spec": {"options": {"suspended": "true"}}})
        fn = fl.wait_function(ns.name, "add-one", 60,
                              pred=lambda f: fl.cond(f, "Ready").get("reason") == "NoReplicas"
                              and not [p for p in fl.claimed_pods(ns.name, f)
                                       if not p["metadata"].get("deletionTimestamp")],
                              what="suspended: no pod")
        pl.check(True, "SUSPEND: no pod")
        patch(ns.name, "add-one", {"spec": {"options": {"suspended": "false"}}})
        fl.wait_function(ns.name, "add-one", 60)
        pl.check(True, "RESUME: Ready again")

        # A pool that does not admit the namespace.
        with fl.Namespace("fn-other") as other:
            pl.apply(other.name, pl.pool_manifest("closed", 0))
            bad = fl.example("add-one.yaml")
            bad["spec"]["poolRef"] = {"name": "closed", "namespace": other.name}
            fl.apply_fn(ns.name, bad)
            fn = fl.wait_function(ns.name, "add-one", 60,
                                  pred=lambda f: fl.cond(f, "Ready").get("reason") in
                                  ("PoolNotAllowed", "Rolling", "Serving")
                                  and f["status"].get("observedGeneration") ==
                                  f["metadata"]["generation"], what="PoolNotAllowed")
            # the old pod keeps serving the old spec; no pod comes from the closed pool
            pl.check(not pl.pods(other.name, "closed"), "no pod from a pool that does not admit")
            c = fl.cond(fn, "Ready")
            pl.check(c.get("reason") == "PoolNotAllowed" or c.get("reason") == "Rolling",
                     f"Ready reason {c.get('reason')}: {c.get('message')}")
            pl.k("-n", ns.name, "delete", "udffunction", "add-one", "--timeout=60s")
            # Cold start: a pool with no idle pod.
            pl.apply(ns.name, pl.pool_manifest("empty", 0))
            cold = fl.example("add-one.yaml")
            cold["metadata"]["name"] = "add-one-cold"
            cold["spec"]["poolRef"] = {"name": "empty"}
            fl.apply_fn(ns.name, cold)
            t0 = time.monotonic()
            fn = fl.wait_function(ns.name, "add-one-cold", 180)
            pl.check(fn["status"].get("launchType") == "cold",
                     f"empty pool: cold start, Ready in {time.monotonic() - t0:.1f}s")
            pool = pl.pool(ns.name, "empty")
            pl.check(pool["status"].get("coldStarts") == 1,
                     f"the pool counts the cold start: {pool['status'].get('coldStarts')}")
            pl.check(fl.call(fn["status"]["endpoint"], "add_one", [5], fl.token(ns.name, fn),
                             ns.name) == [6], "the cold pod serves")
    return pl.finish()


if __name__ == "__main__":
    sys.exit(main())
