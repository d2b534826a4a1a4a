"""udf-worker's benchmark (run by hack/bench/worker.sh). Numbers only: nothing passes or fails
on time.

Production runs every UDF under gVisor, so the headline numbers compare the same worker under
`runsc --platform=systrap --network=sandbox` with a plain process, measured as interleaved
pairs (plain, runsc, plain, runsc, ...; both stay up between turns) so that the machine's
drift lands on both sides of each pair; each case ends with the median of the pair ratios
(read it with the load average printed beside the case: with many more runnable threads than
cores, the sandbox's many threads win it a larger share of the CPU and the ratio goes above 1):

    runsc/plain median pair ratio: 0.NN (N pairs)

Cases: add_one(INT) 1 process 1 client on a reused connection, and with a new connection per
call (Databend often opens one per 65,536-row mini-batch); a STRING UDF fed Utf8View batches
(what Databend sends); N processes with N clients; N processes with 4 clients; the bare pyarrow
Flight echo server (what bounds the rest from above); and, on the local node, a runsc pod
beside a runc pod of the worker image, called from this host at the pod IP, at a cpu limit of
1 (the pools' default) and of 2 (gVisor's sentry, its network stack too, runs inside it). Then
specialize -> first answer, with its breakdown (fork from the zygote, code, server, first
call), and the single-process references (plain loop, databend-udf, the script form)."""

import argparse
import hashlib
import os
import re
import secrets
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
for sub in ("tests/worker", "tests/lib", "tests/node"):
    sys.path.insert(0, os.path.join(ROOT, sub))

import pyarrow as pa  # noqa: E402
import pyarrow.flight as flight  # noqa: E402

import workerlib as wl  # noqa: E402
import test_script  # noqa: E402

ROWS = 65536
INT_BATCH = wl.int_batch(list(range(ROWS)))
STRING_BATCH = pa.record_batch(
    [pa.array([f"value-{i:08d}" for i in range(ROWS)], type=pa.string_view())],
    schema=pa.schema([pa.field("arg1", pa.string_view(), False)]))
STRING_CODE = "def tag(s):\n    return s + '!'\n"


def line(name, value, unit, extra=""):
    print(f"{name:<58} {value:>14,.0f} {unit}{('  ' + extra) if extra else ''}", flush=True)


# ---- targets: something that answers DoExchange, plain or under runsc ------------------------


class Target:
    """Where calls go: host, port, handler, token, batch."""

    def __init__(self, host, port, handler, token, batch):
        self.host, self.port, self.handler, self.token, self.batch = (host, port, handler,
                                                                      token, batch)

    def call(self, client=None):
        t = wl.call(self.port, self.handler, self.batch, self.token, host=self.host,
                    client=client)
        assert t.num_rows == self.batch.num_rows
        return t.num_rows


def rate(target, seconds, clients=1, new_connection=False):
    """Rows/s from `clients` threads calling for `seconds`, each on its own connection (or a
    new connection per call)."""
    done = [0] * clients
    stop = time.time() + seconds

    def run(i):
        client = None if new_connection else flight.connect(
            f"grpc://{target.host}:{target.port}")
        target.call(client)  # warm this connection (not counted)
        while time.time() < stop:
            done[i] += target.call(client)
        if client:
            client.close()

    t0 = time.time()
    threads = [threading.Thread(target=run, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(done) / (time.time() - t0)


def pairs(title, plain, runsc, args, clients=1, new_connection=False,
          names=("plain", "runsc")):
    """Interleaved pairs; prints both sides' medians and the median pair ratio."""
    ratios, ps, rs = [], [], []
    load0 = os.getloadavg()[0]
    for _ in range(args.pairs):
        p = rate(plain, args.seconds, clients, new_connection)
        r = rate(runsc, args.seconds, clients, new_connection)
        ps.append(p)
        rs.append(r)
        ratios.append(r / p)
    print(f"-- {title} (load average {load0:.1f} -> {os.getloadavg()[0]:.1f})", flush=True)
    line(f"   {names[0]} (median of {len(ps)})", statistics.median(ps), "rows/s",
         f"{ROWS * 1000 / statistics.median(ps):.1f} ms per {ROWS}-row call"
         if clients == 1 else "")
    line(f"   {names[1]} (median of {len(rs)})", statistics.median(rs), "rows/s",
         f"{ROWS * 1000 / statistics.median(rs):.1f} ms per {ROWS}-row call"
         if clients == 1 else "")
    print(f"runsc/plain median pair ratio: {statistics.median(ratios):.2f} "
          f"({len(ratios)} pairs)", flush=True)
    return statistics.median(ratios)


sandbox_ip = wl.sandbox_ip


def runsc_worker(**kw):
    w = wl.Worker(**kw)
    ip = sandbox_ip()
    w.host = ip
    w.args = [wl.RUNSC, "--platform=systrap", "--network=sandbox", "do", "-ip", ip, "-quiet",
              *[a.replace("127.0.0.1:", ":") for a in w.args]]
    return w


def start(w):
    """Starts a worker; a sandbox that does not answer is retried once on another address."""
    try:
        return w.start()
    except RuntimeError:
        if w.host == "127.0.0.1":
            raise
        w.stop()
        w.host = sandbox_ip()
        w.args[w.args.index("-ip") + 1] = w.host
        return w.start()


class WorkerPair:
    """The same function in a plain udf-worker and one under runsc, both up at once."""

    def __init__(self, body, batch, processes=1):
        self.body, self.batch = body, batch
        self.workers = [wl.Worker(processes=processes), runsc_worker(processes=processes)]

    def __enter__(self):
        targets = []
        for w in self.workers:
            start(w)
            w.specialize(self.body)
            st = w.wait_state()
            assert st["state"] == "ready", (st, w.logs())
            targets.append(Target(w.host, w.flight_port, self.body["spec"]["handler"],
                                  self.body["token"], self.batch))
        return targets

    def __exit__(self, *exc):
        for w in self.workers:
            w.cleanup()


# ---- the bare pyarrow Flight echo server ----------------------------------------------------

ECHO = r'''
import sys, pyarrow as pa, pyarrow.compute as pc, pyarrow.flight as flight
class Echo(flight.FlightServerBase):
    def do_exchange(self, context, descriptor, reader, writer):
        schema = pa.schema([pa.field("output", pa.int32(), False)])
        writer.begin(schema)
        for chunk in reader:
            col = pc.add(chunk.data.column(0), 1)
            writer.write_batch(pa.record_batch([col], schema=schema))
s = Echo("grpc://" + sys.argv[1])
print("ready", flush=True)
s.serve()
'''

DATABEND_UDF = r'''
import sys
from databend_udf import udf, UDFServer
@udf(input_types=["INT"], result_type="INT")
def add_one(x):
    return x + 1
@udf(input_types=["INT"], result_type="INT", batch_mode=True)
def add_one_batch(xs):
    return [x + 1 for x in xs]
s = UDFServer(sys.argv[1])
s.add_function(add_one)
s.add_function(add_one_batch)
print("ready", flush=True)
s.serve()
'''


def start_server(source, runsc=False):
    """A Python server from source: (process, host, port); under runsc with its own IP."""
    port = wl.free_port()
    host, where = "127.0.0.1", f"127.0.0.1:{port}"
    cmd = [sys.executable, "-c", source, where]
    if runsc:
        host = sandbox_ip()
        cmd = [wl.RUNSC, "--platform=systrap", "--network=sandbox", "do", "-ip", host,
               "-quiet", sys.executable, "-c", source, f"0.0.0.0:{port}"]
    # The same TCP_NODELAY fix as the worker's servers get (worker/preload.c), so that the
    # bound is gVisor's and not Nagle's.
    env = dict(os.environ)
    lib = os.path.join(os.path.dirname(wl.WORKER), "libudf-preload.so")
    if os.path.exists(lib):
        env["LD_PRELOAD"] = lib
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env=env)
    assert proc.stdout.readline().strip() == "ready"
    return proc, host, port


def stop(proc):
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# ---- pods on the local node ---------------------------------------------------------------


def pod_pairs(args):
    """A runsc pod and a runc pod of the worker image, add_one 1 process, from this host, at
    two cpu limits."""
    try:
        import nodelib as nl
        import test_worker_pod as twp
        from cluster import ensure_cluster
    except ImportError as exc:
        print(f"(pods skipped: {exc})")
        return
    tag = os.environ.get("UDF_WORKER_TAG", "dev")
    image = args.pod_image or f"localhost/udf-worker:{tag}"
    env = dict(os.environ, UDF_WORKER_TAG=tag)
    try:  # first: the image goes into the node's containerd
        ensure_cluster(control_plane_only=False)
    except BaseException as exc:  # noqa: BLE001 - a bench prints what it could not do
        print(f"(pods skipped: no local cluster: {exc})")
        return
    for cmd in ((nl.IMAGE_SH, "worker"), (nl.IMAGE_SH, "import")):
        if args.pod_image:
            break  # an image already on the node, as it is
        r = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if r.returncode != 0:
            print(f"(pods skipped: {' '.join(cmd)} failed: {(r.stdout + r.stderr)[-300:]})")
            return
    for cpu in ("1", "2"):
        pod_pair(args, nl, twp, image, cpu)


def pod_pair(args, nl, twp, image, cpu):
    """The pair at one cpu limit: gVisor's sentry (its network stack too) runs inside it."""
    token = secrets.token_urlsafe(24)
    sha = hashlib.sha256(token.encode()).hexdigest()
    body = wl.structured()
    with nl.Namespace(f"bench-worker-cpu{cpu}") as ns:
        ips = {}
        for name, runtime in (("runc", None), ("runsc", "gvisor")):
            pod = twp.worker_pod(f"w-{name}", sha)
            pod["spec"]["containers"][0]["image"] = image
            # Requests only place the pod (the limit of 1 cpu stays): the shared node's other
            # pods should not keep the benchmark's from being scheduled.
            pod["spec"]["containers"][0]["resources"]["requests"]["cpu"] = "10m"
            pod["spec"]["containers"][0]["resources"]["limits"]["cpu"] = cpu
            if runtime is None:
                del pod["spec"]["runtimeClassName"]
            ns.apply(pod)
        for name in ("runc", "runsc"):
            if not ns.wait_ready(f"w-{name}", timeout=120):
                print(f"(pods skipped: pod w-{name} not Ready: "
                      f"{ns.kubectl('logs', f'w-{name}', check=False).stdout[-500:]})")
                return
            ips[name] = ns.pod(f"w-{name}")["status"]["podIP"]
            status, text = twp.control(ips[name], "POST", "/v1/specialize", token, body)
            assert status == 202, (status, text)
        targets = []
        for name in ("runc", "runsc"):
            st = twp.wait_state(ips[name], token, 60)
            assert st and st["state"] == "ready", st
            targets.append(Target(ips[name], 8815, "add_one", body["token"], INT_BATCH))
        pairs(f"pods on this node ({image}, cpu limit {cpu}, 1 process), add_one(INT), 1 "
              "client, called at the pod IP: plain = runc pod, runsc = gVisor pod",
              targets[0], targets[1], args, names=("runc pod", "runsc pod"))


# ---- specialize -> first answer -------------------------------------------------------------


def specialize_breakdown(make_worker, body, runs):
    """POST /v1/specialize -> first successful Flight answer (a client trying every 2 ms, as
    a query would after its specialize), split by the stub's startup marks (udf_stub.STARTUP,
    printed to the worker's log). With the spare (worker/python/zygote.py) "fork from the
    zygote" is the hand-over of the request to the process forked ahead."""
    rows = []
    for _ in range(runs):
        w = make_worker()
        start(w)
        try:
            rows.append(one_specialize(w, body))
        finally:
            w.cleanup()
    return rows


def one_specialize(w, body):
    time.sleep(1.5)  # an idle pool pod: the zygote (and its spare) are warm
    t0 = time.time()
    status, _ = w.specialize(body)
    assert status == 202
    tries = 0
    while True:
        tries += 1
        try:
            wl.call(w.flight_port, body["spec"]["handler"], wl.int_batch([1]), body["token"],
                    host=w.host)
            break
        except (flight.FlightError, pa.ArrowException):
            time.sleep(0.002)
    t_end = time.time()
    deadline = time.time() + 5
    m = None
    while m is None and time.time() < deadline:
        m = re.search(r"udf_stub: startup ms t0=([0-9.]+) (.*)", w.logs())
        time.sleep(0.02)
    if m is None:  # a worker without the marks: the total only
        return {"total": 1000 * (t_end - t0)}
    marks = dict((k, float(v)) for k, v in re.findall(r"(\w+)=\+([0-9.]+)", m.group(2)))
    t_req = float(m.group(1))
    return {
        "total": 1000 * (t_end - t0),
        "request": 1000 * (t_req - t0),
        "fork": marks.get("forked", 0.0),
        "code": marks.get("code_loaded", 0.0) - marks.get("forked", 0.0),
        "server": marks.get("listening", 0.0) - marks.get("code_loaded", 0.0),
        "answer": 1000 * (t_end - t_req) - marks.get("listening", 0.0),
        "tries": tries,
    }


def print_breakdown(title, rows):
    if not rows:
        print(f"{title}: no startup marks in the worker's log")
        return
    med = {k: statistics.median(r[k] for r in rows if k in r) for k in rows[-1]}
    line(title, med["total"], "ms", "runs: " + ", ".join(f"{r['total']:.0f}" for r in rows))
    if len(med) == 1:
        print("   (no startup marks in the worker's log: no breakdown)")
        return
    print(f"   median breakdown: POST -> zygote has the request {med['request']:.1f} ms, "
          f"fork from the zygote {med['fork']:.1f}, code (imports, udf.py, types) "
          f"{med['code']:.1f}, Flight server up {med['server']:.1f}, listening -> first answer "
          f"{med['answer']:.1f} (the first call, {med['tries']:.0f} tries 2 ms apart)",
          flush=True)


# ---- main -------------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="5 short pairs, fewer references")
    ap.add_argument("--no-pods", action="store_true", help="skip the pods on the local node")
    ap.add_argument("--pod-image", help="run the pods from this image already on the node "
                    "(default: build localhost/udf-worker:$UDF_WORKER_TAG, or :dev, from bin/)")
    args = ap.parse_args()
    args.pairs = 5 if args.quick else 7
    args.seconds = 0.5 if args.quick else 1.2
    runs = 3 if args.quick else 5
    cores = os.cpu_count() or 1
    have_runsc = os.access(wl.RUNSC, os.X_OK)
    if not have_runsc:
        print(f"(no runsc at {wl.RUNSC}: only the plain numbers)")

    print(f"== runsc --platform=systrap --network=sandbox beside a plain process: {args.pairs} "
          f"interleaved pairs of {args.seconds:g} s per side, {ROWS}-row calls", flush=True)
    if have_runsc:
        body = wl.structured()
        with WorkerPair(body, INT_BATCH) as (plain, runsc):
            pairs("add_one(INT), 1 process, 1 client, reused connection", plain, runsc, args)
            pairs("add_one(INT), 1 process, 1 client, a new connection per call", plain, runsc,
                  args, new_connection=True)
        sbody = wl.structured(function="tag", handler="tag", input_types=["STRING"],
                              result_type="STRING", code=STRING_CODE)
        with WorkerPair(sbody, STRING_BATCH) as (plain, runsc):
            pairs("STRING UDF (s + '!'), Utf8View batches, 1 process, 1 client", plain,
                  runsc, args)
        with WorkerPair(body, INT_BATCH, processes=cores) as (plain, runsc):
            pairs(f"add_one(INT), {cores} processes, {cores} clients", plain, runsc, args,
                  clients=cores)
            pairs(f"add_one(INT), {cores} processes, 4 clients", plain, runsc, args,
                  clients=4)
        procs = [start_server(ECHO), start_server(ECHO, runsc=True)]
        try:
            pairs("upper bound: bare pyarrow Flight echo server (pc.add), 1 client",
                  *[Target(h, p, "echo", None, INT_BATCH) for _, h, p in procs], args)
        finally:
            for proc, _, _ in procs:
                stop(proc)
        if not args.no_pods:
            pod_pairs(args)

    print("== specialize -> first answer (structured add_one, zygote on)", flush=True)
    body = wl.structured()
    print_breakdown("plain process", specialize_breakdown(wl.Worker, body, runs))
    if have_runsc:
        print_breakdown("runsc systrap", specialize_breakdown(runsc_worker, body, runs))

    print("== references (plain processes)", flush=True)
    t0, n = time.time(), 0
    while time.time() - t0 < 1:
        pa.array([x + 1 for x in INT_BATCH.column(0).to_pylist()], type=pa.int32())
        n += ROWS
    line("plain Python loop (to_pylist, add_one, pa.array)", n / (time.time() - t0), "rows/s")
    proc, host, port = start_server(DATABEND_UDF)
    line("databend-udf 0.2.20 server, batch_mode=True",
         rate(Target(host, port, "add_one_batch", None, INT_BATCH), args.seconds * 2),
         "rows/s")
    stop(proc)
    with wl.Worker(processes=1) as w:
        token = "bench-token"
        sbody = {"function": "add_one", "tenant": "test_tenant", "token": token,
                 "script": test_script.make_script(w.work_dir, "add_one", ["INT"], "INT",
                                                   "def add_one(x):\n    return x + 1\n")}
        w.specialize(sbody)
        assert w.wait_state()["state"] == "ready"
        line("udf-worker script form (Databend-style stub + hook), 1 process",
             rate(Target(w.host, w.flight_port, "add_one", token, INT_BATCH),
                  args.seconds * 2), "rows/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
