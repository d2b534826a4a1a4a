"""kube_fault_proxy: an informer behind a proxy that cuts watch streams mid-event, answers
429 and 500, drops connections and stalls still converges to the server's state."""

import os
import random
import tempfile
import time

from kubehelp import (Informer, configmap_list, fresh_namespace, kubectl, log, fail)
import cluster
from faultproxy import FaultProxy


def main():
    kc = cluster.ensure_cluster()
    ns = fresh_namespace(kc, "kube-faults")
    proxy = FaultProxy(kc, seed=4).start()
    inf = None
    try:
        names = [f"cm-{i:03d}" for i in range(60)]
        kubectl(kc, "create", "-f", "-", input=configmap_list(ns, names))
        proxy.p_429, proxy.p_500, proxy.p_drop = 0.15, 0.15, 0.05
        proxy.p_stall, proxy.p_cut = 0.15, 0.6
        pkc = proxy.kubeconfig(os.path.join(tempfile.mkdtemp(), "proxy.kubeconfig"))
        # Short watches and a short backoff cap so many streams are cut in a short test.
        inf = Informer(pkc, ns, "--watch-timeout", "3", "6", "--backoff-max-ms", "2000")
        inf.wait(lambda s: s["synced"], 60, "first sync through the proxy")
        log("synced through the proxy; writing while faults are injected")

        rng = random.Random(7)
        live, deleted, n = set(names), set(), len(names)
        end = time.time() + 25
        while time.time() < end:
            op = rng.random()
            if op < 0.4 or not live:
                name = f"cm-{n:03d}"
                n += 1
                kubectl(kc, "create", "configmap", name, "-n", ns, f"--from-literal=v={n}")
                live.add(name)
            elif op < 0.75:
                name = rng.choice(sorted(live))
                kubectl(kc, "patch", "configmap", name, "-n", ns, "--type", "merge",
                        "-p", f'{{"data":{{"v":"{rng.random()}"}}}}')
            else:
                name = rng.choice(sorted(live))
                kubectl(kc, "delete", "configmap", name, "-n", ns)
                live.discard(name)
                deleted.add(name)
        log(f"writes done: {len(live)} live, {len(deleted)} deleted; proxy {proxy.counts}")

        snap = inf.converge(kc, ns, 90)
        log(f"converged with faults still on: {snap['count']} objects, "
            f"{snap['watches']} watches, {snap['lists']} lists, {snap['errors']} errors")
        missed = {f"{ns}/{d}" for d in deleted} - set(snap["deleted"])
        if missed:
            fail(f"deletes never delivered to the handler: {sorted(missed)[:5]}")
        for fault in ("429", "500", "cut", "stall"):
            if proxy.counts[fault] == 0:
                fail(f"the proxy never injected {fault}: {proxy.counts}")
        if snap["errors"] == 0:
            fail("the informer saw no errors: were the faults on its path?")

        # The server goes away entirely, then comes back: the informer keeps up.
        proxy.mode = "refuse"
        kubectl(kc, "create", "configmap", "while-down", "-n", ns, "--from-literal=v=1")
        time.sleep(4)
        proxy.mode = "faults"
        inf.converge(kc, ns, 60)
        log("converged again after a refused-connection outage")
        print("PASS kube_fault_proxy")
    finally:
        if inf:
            inf.stop()
        proxy.stop()
        kubectl(kc, "delete", "namespace", ns, "--wait=false", check=False)


if __name__ == "__main__":
    main()
