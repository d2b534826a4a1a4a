"""Pools that cannot get pods stop trying:
- an image that cannot be pulled: ScaleUpBlocked=True with a reason naming the image, and over
  the next minute (a watch of the test's own counts every pod create the API server saw) at
  most the one retry the backoff allows;
- a runtime class outside --allowed-runtime-classes: ScaleUpBlocked, and no pod ever;
- an allowed runtime class that does not exist: the API server rejects the pods, the pool says
  so, and the creates stop."""

import sys
import time

import poollib as pl
from udfop import wait_for

MISSING_IMAGE = "localhost/udf-worker:no-such-tag"
WINDOW_S = 60


def blocked(ns, name):
    c = pl.condition(pl.pool(ns, name), "ScaleUpBlocked")
    return c if c.get("status") == "True" else None


def main():
    kubeconfig = pl.ensure_node(worker_image=False)
    with pl.Namespace("pool-blocked") as ns, pl.CreateWatch(ns.name) as watch, \
            pl.operator(kubeconfig, "--allowed-runtime-classes", "gvisor,no-such-class") as op:
        # 1. An image that cannot be pulled (the node's registry lookup fails at once).
        pl.apply(ns.name, pl.pool_manifest("pull", 2, image=MISSING_IMAGE))
        cond = wait_for(lambda: blocked(ns.name, "pull"), 240, interval=1,
                        what="ScaleUpBlocked on the pool with a missing image")
        pl.check(cond.get("reason") == "ImagePullFailed" and MISSING_IMAGE in cond["message"],
                 f"ScaleUpBlocked names the image: {cond.get('reason')}: {cond.get('message')}")
        progressing = pl.condition(pl.pool(ns.name, "pull"), "Progressing")
        pl.check(progressing.get("status") == "False", "Progressing=False while blocked")
        before = watch.count()
        t = time.monotonic()
        pl.log(f"blocked after {before} creates; counting creates for {WINDOW_S}s")

        # 2. A runtime class the operator does not allow.
        pl.apply(ns.name, pl.pool_manifest("runc", 1, runtime_class="runc"))
        cond = wait_for(lambda: blocked(ns.name, "runc"), 60, interval=1,
                        what="ScaleUpBlocked on the runc pool")
        pl.check(cond.get("reason") == "RuntimeClassNotAllowed" and "runc" in cond["message"],
                 f"runc refused: {cond.get('message')}")

        # 3. An allowed runtime class that does not exist: rejected at admission.
        pl.apply(ns.name, pl.pool_manifest("ghost", 1, runtime_class="no-such-class"))
        cond = wait_for(lambda: blocked(ns.name, "ghost"), 240, interval=1,
                        what="ScaleUpBlocked on the pool with a missing RuntimeClass")
        pl.check(cond.get("reason") == "PodCreateRejected" and "no-such-class" in cond["message"],
                 f"missing RuntimeClass named: {cond.get('message')}")

        time.sleep(max(0, WINDOW_S - (time.monotonic() - t)))
        after = watch.count(since=t)
        pl.check(after <= 1, f"at most one retry in the {WINDOW_S}s after ScaleUpBlocked: "
                 f"{after} creates (all creates: {watch.count()})")
        pl.check(not pl.pods(ns.name, "runc"), "no pod for the runc pool")
        pl.check(not pl.pods(ns.name, "ghost"), "no pod for the pool with a missing class")
        pl.check(watch.count() <= before + 1, "the runc and ghost pools created nothing")
        events = pl.kjson("-n", ns.name, "get", "events")["items"]
        blocked_events = {e["involvedObject"]["name"] for e in events
                          if e["reason"] == "ScaleUpBlocked"}
        pl.check(blocked_events >= {"pull", "runc", "ghost"},
                 f"ScaleUpBlocked Events: {sorted(blocked_events)}")
        replaced = [e for e in events if e["reason"] == "PodReplaced"]
        pl.check(replaced and all(e["type"] == "Warning" for e in replaced),
                 f"PodReplaced Warning Events: {len(replaced)}")

        # A fixed spec gets a fresh try at once.
        pl.k("-n", ns.name, "patch", "udfwarmpool", "pull", "--type=merge", "-p",
             '{"spec":{"runtime":{"image":"%s"}}}' % pl.WORKER_IMAGE)
        wait_for(lambda: pl.condition(pl.pool(ns.name, "pull"), "ScaleUpBlocked")
                 .get("status") == "False", 60, interval=1, what="unblocked by a spec change")
        pl.check(True, "a spec change unblocks the pool")
        if op.proc.poll() is not None:
            pl.check(False, "the operator kept running")
    return pl.finish()


if __name__ == "__main__":
    sys.exit(main())
