"""kube_leader_failover: two processes, one leads; SIGKILL the leader and the other leads
within 20 s; never two leaders at once (checked on the Lease's history, recorded by a watch).
Then the survivor, cut off from the server, must stop leading and exit non-zero once its
renew deadline passes; and a clean shutdown releases the lease."""

import json
import os
import queue
import signal
import subprocess
import tempfile
import threading
import time

from kubehelp import KUBETOOL, fresh_namespace, kubectl, log, fail
import cluster
from faultproxy import FaultProxy

LEASE = "kube-test-leader"


class Contender:
    def __init__(self, kubeconfig, ns, ident):
        self.ident = ident
        self.lines = queue.Queue()
        self.log = []
        self.proc = subprocess.Popen([KUBETOOL, "--kubeconfig", kubeconfig, "leader", ns, LEASE,
                                      ident], stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.log.append(line.rstrip())
            if line.startswith(("LEADING", "RELEASED")):
                self.lines.put((line.split()[0], float(line.split()[2])))

    def leading_at(self, timeout):
        try:
            while True:
                what, t = self.lines.get(timeout=timeout)
                if what == "LEADING":
                    return t
        except queue.Empty:
            return None


def lease_history(kc, ns, stop, out):
    """Every version of the Lease, as a watch delivers it."""
    proc = subprocess.Popen([cluster.kubectl_path(), "--kubeconfig", kc, "get", "lease", LEASE,
                             "-n", ns, "--watch", "-o", "json", "--output-watch-events"],
                            stdout=subprocess.PIPE, text=True)
    dec = json.JSONDecoder()
    buf = ""
    while not stop.is_set():
        line = proc.stdout.readline()
        if not line:
            break
        buf += line
        try:
            ev, end = dec.raw_decode(buf.lstrip())
        except ValueError:
            continue
        buf = buf.lstrip()[end:]
        spec = ev["object"].get("spec", {})
        out.append((time.time(), spec.get("holderIdentity", ""),
                    spec.get("leaseTransitions", 0)))
    proc.kill()
    proc.wait()


def main():
    kc = cluster.ensure_cluster()
    ns = fresh_namespace(kc, "kube-leader")
    proxy = FaultProxy(kc, seed=1).start()
    pkc = proxy.kubeconfig(os.path.join(tempfile.mkdtemp(), "proxy.kubeconfig"))
    history, stop = [], threading.Event()
    procs = []
    try:
        a = Contender(kc, ns, "contender-a")
        procs.append(a)
        t_a = a.leading_at(30)
        if t_a is None:
            fail(f"the first contender never led: {a.log}")
        watcher = threading.Thread(target=lease_history, args=(kc, ns, stop, history),
                                   daemon=True)
        watcher.start()
        # b talks to the server through the proxy, so it can be cut off later.
        b = Contender(pkc, ns, "contender-b")
        procs.append(b)
        if b.leading_at(8) is not None:
            fail("two leaders: b led while a held the lease")
        log("a leads, b waits")

        a.proc.send_signal(signal.SIGKILL)
        t_kill = time.time()
        t_b = b.leading_at(25)
        if t_b is None:
            fail(f"b never took over: {b.log}")
        took = t_b - t_kill
        log(f"b leads {took:.1f}s after a was killed")
        if took > 20:
            fail(f"failover took {took:.1f}s (> 20 s)")
        if took < 10:
            fail(f"b took over after {took:.1f}s: before a's lease could have expired")
        time.sleep(2.5)

        holders = [h for _, h, _ in history]
        seq = [h for i, h in enumerate(holders) if h and (i == 0 or holders[i - 1] != h)]
        if seq != ["contender-a", "contender-b"]:
            fail(f"lease holders went {seq}, expected a then b: {history}")
        transitions = [tr for _, h, tr in history if h == "contender-b"]
        if not transitions or transitions[0] != max(tr for _, h, tr in history
                                                   if h == "contender-a") + 1:
            fail(f"leaseTransitions did not step by one at the takeover: {history}")
        log(f"lease history: {len(history)} versions, holders {seq}")

        # Cut b off (the server hangs: requests are read and never answered): it must give up
        # leadership and exit non-zero once the renew deadline passes.
        proxy.mode = "blackhole"
        t_cut = time.time()
        try:
            rc = b.proc.wait(timeout=25)
        except subprocess.TimeoutExpired:
            fail("b kept running with no way to renew its lease")
        gave_up = time.time() - t_cut
        log(f"b exited {rc} {gave_up:.1f}s after losing the server")
        if rc == 0 or gave_up < 8:
            fail(f"b exited {rc} after {gave_up:.1f}s; want non-zero after the 10 s deadline")

        # A clean shutdown releases the lease: the next contender leads at once.
        proxy.mode = "pass"
        c = Contender(kc, ns, "contender-c")
        procs.append(c)
        if c.leading_at(30) is None:
            fail(f"c never led: {c.log}")
        d = Contender(kc, ns, "contender-d")
        procs.append(d)
        time.sleep(1)
        c.proc.send_signal(signal.SIGTERM)
        if c.proc.wait(timeout=20) != 0:
            fail(f"c exited {c.proc.returncode} on SIGTERM: {c.log}")
        t_rel = time.time()
        if d.leading_at(10) is None:
            fail("d did not lead soon after c released the lease")
        log(f"after c released the lease, d led within {time.time() - t_rel:.1f}s")
        d.proc.send_signal(signal.SIGTERM)
        d.proc.wait(timeout=20)
        out = kubectl(kc, "get", "lease", LEASE, "-n", ns, "-o", "json").stdout
        if json.loads(out)["spec"].get("holderIdentity", ""):
            fail(f"lease still held after a clean shutdown: {out}")
        print("PASS kube_leader_failover")
    finally:
        stop.set()
        for p in procs:
            if p.proc.poll() is None:
                p.proc.kill()
        proxy.stop()
        kubectl(kc, "delete", "namespace", ns, "--wait=false", check=False)


if __name__ == "__main__":
    main()
