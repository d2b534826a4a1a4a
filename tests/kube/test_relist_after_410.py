"""kube_relist_after_410: etcd is compacted past the informer's resourceVersion while the
informer is away; its re-watch gets 410 Gone, it relists, and the cache converges, including
a delete that happened during the gap (private cluster)."""

import signal
import time

from kubehelp import (Informer, PrivateCluster, configmap_list, kubectl, log, fail)


def main():
    with PrivateCluster(32443) as pc:
        kc = pc.kubeconfig
        ns = "relist"
        kubectl(kc, "create", "namespace", ns)
        kubectl(kc, "create", "-f", "-", input=configmap_list(ns, [f"cm-{i}" for i in range(30)]))
        inf = Informer(kc, ns, "--backoff-max-ms", "2000")
        snap = inf.converge(kc, ns, 60)
        rv_before = snap["rv"]

        # Freeze the informer, and break its stream before anything changes, so nothing
        # written in the gap can reach it through the old connection.
        inf.proc.send_signal(signal.SIGSTOP)
        pc.kill_apiserver()
        pc.start_apiserver()
        kubectl(kc, "delete", "configmap", "cm-0", "cm-1", "cm-2", "-n", ns)
        kubectl(kc, "create", "-f", "-", input=configmap_list(ns, ["gap-a", "gap-b", "gap-c"]))
        kubectl(kc, "delete", "configmap", "gap-c", "-n", ns)
        kubectl(kc, "patch", "configmap", "cm-3", "-n", ns, "--type", "merge",
                "-p", '{"data":{"v":"changed in the gap"}}')
        rev = pc.compact()
        if int(rv_before) >= rev:
            fail(f"compaction at {rev} is not past the informer's version {rv_before}")
        # A fresh apiserver's watch cache starts after the compaction too.
        pc.kill_apiserver()
        pc.start_apiserver()
        inf.proc.send_signal(signal.SIGCONT)
        log(f"informer resumed at resourceVersion {rv_before}, compacted at {rev}")

        snap = inf.converge(kc, ns, 90)
        if snap["relists_gone"] < 1:
            fail(f"converged without a relist after 410: {snap['lists']} lists")
        deleted = set(snap["deleted"])
        for name in ("cm-0", "cm-1", "cm-2"):
            if f"{ns}/{name}" not in deleted:
                fail(f"the delete of {name} during the gap was never delivered")
        if f"{ns}/gap-c" in snap["objects"]:
            fail("gap-c (created and deleted in the gap) is in the cache")
        log(f"relisted after 410 ({snap['relists_gone']}x); gap deletes delivered; "
            f"cache = server ({snap['count']} objects)")
        inf.stop()
        print("PASS kube_relist_after_410")


if __name__ == "__main__":
    main()
