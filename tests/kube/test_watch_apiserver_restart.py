"""kube_watch_apiserver_restart: an informer loses no event while kube-apiserver is killed and
started again and another client keeps writing (private cluster)."""

import threading
import time

from kubehelp import (Informer, PrivateCluster, configmap_list, kubectl, log, fail)


class Writer(threading.Thread):
    """Creates and deletes ConfigMaps without pause, retrying each step until the server
    takes it (it is down part of the time)."""

    def __init__(self, kc, ns):
        super().__init__(daemon=True)
        self.kc, self.ns = kc, ns
        self.stop = threading.Event()
        self.created, self.deleted, self.failures = [], [], 0

    def do(self, *args):
        while True:
            out = kubectl(self.kc, *args, "-n", self.ns, check=False)
            if out.returncode == 0 or "AlreadyExists" in out.stderr or "NotFound" in out.stderr:
                return
            self.failures += 1
            time.sleep(0.3)

    def run(self):
        i = 0
        while not self.stop.is_set():
            name = f"w-{i:04d}"
            self.do("create", "configmap", name, f"--from-literal=i={i}")
            self.created.append(name)
            if i % 3 == 2:
                victim = self.created[i - 2]
                self.do("delete", "configmap", victim)
                self.deleted.append(victim)
            i += 1


def main():
    with PrivateCluster(31443) as pc:
        kc = pc.kubeconfig
        ns = "restart"
        kubectl(kc, "create", "namespace", ns)
        kubectl(kc, "create", "-f", "-", input=configmap_list(ns, [f"s-{i}" for i in range(20)]))
        inf = Informer(kc, ns)
        inf.converge(kc, ns, 60)
        w = Writer(kc, ns)
        w.start()
        time.sleep(3)
        pc.kill_apiserver()
        time.sleep(2)
        pc.start_apiserver()
        time.sleep(5)
        w.stop.set()
        w.join(60)
        log(f"writer: {len(w.created)} created, {len(w.deleted)} deleted, "
            f"{w.failures} failed attempts while the server was down")
        if w.failures == 0:
            fail("the writer never hit the outage: did the apiserver really go down?")
        snap = inf.converge(kc, ns, 90)
        seen_deleted = set(snap["deleted"])
        missed = [d for d in w.deleted if f"{ns}/{d}" not in seen_deleted]
        if missed:
            fail(f"deletes the informer never delivered: {missed[:10]}")
        log(f"converged: {snap['count']} objects, {snap['watches']} watches, "
            f"{snap['lists']} lists ({snap['relists_gone']} after 410), {snap['errors']} errors")
        inf.stop()
        print("PASS kube_watch_apiserver_restart")


if __name__ == "__main__":
    main()
