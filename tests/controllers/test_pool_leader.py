"""Pools are reconciled only by the replica that holds the lease (--leader-elect): of two
operators only the leader starts the controller, and when it is SIGKILLed the other takes the
lease over and keeps the pool (a pod deleted meanwhile is replaced)."""

import sys
import time

import poollib as pl
from udfop import wait_for


def started(op):
    return "UdfWarmPool controller starting" in op.output()


def main():
    kubeconfig = pl.ensure_node(worker_image=True)
    with pl.Namespace("pool-leader") as ns, pl.CreateWatch(ns.name) as watch:
        args = ("--leader-elect", "--leader-election-namespace", ns.name,
                "--leader-election-id", "pool-test")
        a = pl.operator(kubeconfig, *args).__enter__()
        wait_for(lambda: started(a), 60, what="the first operator leads")
        b = pl.operator(kubeconfig, *args).__enter__()
        try:
            pl.apply(ns.name, pl.pool_manifest("led", 1))
            first = pl.wait_ready_idle(ns.name, "led", 1, 240)[0]["metadata"]["name"]
            time.sleep(3)
            pl.check(not started(b), "the second operator does not reconcile while it follows")
            a.proc.kill()
            a.proc.wait()
            pl.k("-n", ns.name, "delete", "pod", first, "--wait=false")
            t0 = time.monotonic()
            wait_for(lambda: started(b), 60, what="the second operator takes over")
            pl.log(f"took over in {time.monotonic() - t0:.1f}s")
            now = pl.wait_ready_idle(ns.name, "led", 1, 240)[0]["metadata"]["name"]
            pl.check(now != first, f"the new leader replaced the deleted pod: {now}")
            pl.check(watch.count() == 2, f"2 pods created in all: {watch.count()}")
            if pl.failures:
                print(watch.created)
                print(pl.k("-n", ns.name, "get", "events", "--sort-by=.lastTimestamp").stdout)
                print("---- first ----\n" + a.output() + "---- second ----\n" + b.output())
        finally:
            a.__exit__(None, None, None)
            b.__exit__(None, None, None)
    return pl.finish()


if __name__ == "__main__":
    sys.exit(main())
