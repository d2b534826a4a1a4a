"""The operator SIGKILLed at random moments (12 times) while a pool scales from 0 to 8 (paced
at one pod a second, so most kills land mid-scale), and the test deleting 2 of the pool's
pods on the way: after the last restart exactly 8 idle pods exist, and the pods created
(counted by a watch of the test's own) never exceed 8 plus the 2 the test deleted.
Level-triggered reconciles and expectations are what make this hold: a restarted operator
trusts only its fresh caches."""

import random
import signal
import sys
import time

import poollib as pl

KILLS = 12
REPLICAS = 8
DELETED_BY_TEST = 2


def main():
    seed = int(time.time())
    random.seed(seed)
    pl.log(f"random seed {seed}")
    kubeconfig = pl.ensure_node(worker_image=True)
    with pl.Namespace("pool-crash") as ns, pl.CreateWatch(ns.name) as watch:
        pl.apply(ns.name, pl.pool_manifest("crash", 0, refill={"maxPodsPerSecond": 1,
                                                               "maxInFlight": 10}))
        deleted = 0
        logs = []
        for i in range(KILLS):
            op = pl.operator(kubeconfig).__enter__()
            if i == 0:
                pl.k("-n", ns.name, "scale", "udfwarmpool/crash", f"--replicas={REPLICAS}")
            time.sleep(random.uniform(0.1, 1.5))
            op.proc.send_signal(signal.SIGKILL)
            op.proc.wait()
            logs.append(op.output())
            live = [p for p in pl.pods(ns.name, "crash")
                    if not p["metadata"].get("deletionTimestamp")]
            pl.log(f"kill {i + 1}: {len(live)} pods live, {watch.count()} created so far")
            if i >= 3 and i % 3 == 0 and live and deleted < DELETED_BY_TEST:
                victim = random.choice(live)["metadata"]["name"]
                pl.k("-n", ns.name, "delete", "pod", victim, "--wait=false")
                deleted += 1
                pl.log(f"deleted pod {victim}")
        pl.check(deleted == DELETED_BY_TEST, f"the test deleted {deleted} pods")

        with pl.operator(kubeconfig) as op:
            t0 = time.monotonic()
            pl.wait_ready_idle(ns.name, "crash", REPLICAS, 600)
            pl.log(f"{REPLICAS} Ready after the last restart in {time.monotonic() - t0:.0f}s")
            time.sleep(10)  # anything extra would show up by now
            ps = pl.pods(ns.name, "crash")
            pl.check(len(ps) == REPLICAS and all(pl.is_ready(p) and not p["metadata"].get(
                "deletionTimestamp") for p in ps),
                f"exactly {REPLICAS} idle Ready pods after the last restart: {len(ps)}")
            created = watch.count()
            pl.check(created <= REPLICAS + deleted,
                     f"pods created {created} <= {REPLICAS} + {deleted} deleted by the test")
            if pl.failures:
                print("---- last operator log ----\n" + op.output())
    return pl.finish()


if __name__ == "__main__":
    sys.exit(main())
