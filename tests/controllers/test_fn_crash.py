"""SIGKILL the operator at random moments while functions are claimed and deleted (the
issue's 60 claims, scaled to this machine: FN_CRASH_N, default 16, with at least 10 kills):
after the last restart everything converges: every remaining function Ready on exactly one
pod of its own, no pod owned twice, no claimed pod of a deleted function (0 leaked), no
function stuck on its finalizer."""

import json
import os
import random
import signal
import sys
import threading
import time

import fnlib as fl
import poollib as pl
from test_fn_burst import check_ownership, fn_manifest
from udfop import wait_for

N = int(os.environ.get("FN_CRASH_N", "16"))
KILLS = int(os.environ.get("FN_CRASH_KILLS", "10"))


def main():
    kubeconfig = pl.ensure_node(worker_image=True)
    rnd = random.Random(os.getpid())
    with fl.Namespace("fn-crash") as ns, \
            fl.operator(kubeconfig, "--default-pool", f"{ns.name}/warm") as op:
        pl.apply(ns.name, pl.pool_manifest("warm", 3))
        fl.wait_idle_ready(ns.name, "warm", 3, 300)
        kills = [0]
        stop = threading.Event()

        def killer():
            while not stop.is_set():
                stop.wait(rnd.uniform(0.5, 2.0))
                op.proc.send_signal(signal.SIGKILL)
                op.proc.wait()
                kills[0] += 1
                time.sleep(rnd.uniform(0.05, 0.5))
                op.__enter__()  # the same flags and ports
        th = threading.Thread(target=killer)
        th.start()
        names, deleted = [], []
        for i in range(0, N, 2):
            batch = [fn_manifest(j) for j in range(i, min(i + 2, N))]
            pl.k("-n", ns.name, "apply", "-f", "-",
                 input="\n---\n".join(json.dumps(m) for m in batch))
            names += [m["metadata"]["name"] for m in batch]
            if i and i % 6 == 0:  # delete one of the earlier ones meanwhile
                victim = names.pop(0)
                pl.k("-n", ns.name, "delete", "udffunction", victim, "--wait=false")
                deleted.append(victim)
            time.sleep(rnd.uniform(0.5, 1.5))
        while kills[0] < KILLS:
            time.sleep(0.5)
        stop.set()
        th.join()
        pl.log(f"{kills[0]} SIGKILLs while {N} functions were created, {len(deleted)} deleted")
        t0 = time.monotonic()
        wait_for(lambda: not check_ownership(ns.name, names)[2], 600, interval=2,
                 what="every function Ready")
        leaked, doubled, missing, distinct, fns = check_ownership(ns.name, names)
        pl.check(kills[0] >= KILLS, f"{kills[0]} kills")
        pl.check(not missing, f"converged {time.monotonic() - t0:.1f}s after the last restart: "
                 f"{len(names)} functions Ready on one pod each")
        pl.check(not doubled and distinct, f"no pod owned twice {doubled}")

        def no_leaks():
            lk = check_ownership(ns.name, names)[0]
            return not lk and all(pl.k("-n", ns.name, "get", "udffunction", d,
                                       check=False).returncode != 0 for d in deleted)
        ok = True
        try:
            wait_for(no_leaks, 120, interval=2, what="no leaked pods, deleted functions gone")
        except AssertionError:
            ok = False
        pl.check(ok, f"0 leaked pods, the {len(deleted)} deleted functions gone "
                 f"({check_ownership(ns.name, names)[0]})")
    return pl.finish()


if __name__ == "__main__":
    sys.exit(main())
