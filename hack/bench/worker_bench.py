"""udf-worker's benchmark (run by hack/bench/worker.sh): rows/s of add_one(INT) in 65536-row
calls through our stub with 1 and N processes, beside databend-udf's own server, a plain
Python loop and a bare pyarrow Flight echo server; the script form; and specialize -> first
answer latency, plain and under runsc, with and without the zygote."""

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests",
                                "worker"))

import pyarrow as pa  # noqa: E402
import pyarrow.compute as pc  # noqa: E402
import pyarrow.flight as flight  # noqa: E402

import workerlib as wl  # noqa: E402
import test_script  # noqa: E402

ROWS = 65536
BATCH = wl.int_batch(list(range(ROWS)))


def line(name, value, unit, extra=""):
    print(f"{name:<58} {value:>14,.0f} {unit}{('  ' + extra) if extra else ''}", flush=True)


def rows_per_second(port, handler, token, seconds, clients=1, host="127.0.0.1"):
    """Calls from `clients` threads, each on its own connection, for `seconds`."""
    done = [0] * clients
    stop = time.time() + seconds

    def run(i):
        client = flight.connect(f"grpc://{host}:{port}")
        while time.time() < stop:
            t = wl.call(port, handler, BATCH, token, host=host, client=client)
            assert t.num_rows == ROWS
            done[i] += ROWS
        client.close()

    # One warm-up call.
    wl.call(port, handler, BATCH, token, host=host)
    t0 = time.time()
    threads = [threading.Thread(target=run, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(done) / (time.time() - t0)


def plain_loop_rate():
    def add_one(x):
        return x + 1

    n = 0
    t0 = time.time()
    while time.time() - t0 < 2:
        col = BATCH.column(0).to_pylist()
        out = [add_one(x) for x in col]
        pa.array(out, type=pa.int32())
        n += ROWS
    return n / (time.time() - t0)


ECHO = r'''
import sys, pyarrow as pa, pyarrow.compute as pc, pyarrow.flight as flight
class Echo(flight.FlightServerBase):
    def do_exchange(self, context, descriptor, reader, writer):
        schema = pa.schema([pa.field("output", pa.int32(), False)])
        writer.begin(schema)
        for chunk in reader:
            col = pc.add(chunk.data.column(0), 1)
            writer.write_batch(pa.record_batch([col], schema=schema))
s = Echo("grpc://127.0.0.1:" + sys.argv[1])
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
s = UDFServer("127.0.0.1:" + sys.argv[1])
s.add_function(add_one)
s.add_function(add_one_batch)
print("ready", flush=True)
s.serve()
'''


def start_server(source):
    port = wl.free_port()
    proc = subprocess.Popen([sys.executable, "-c", source, str(port)], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout.readline().strip() == "ready"
    return proc, port


def one_call_rate(port, handler, rows):
    batch = wl.int_batch(list(range(rows)))
    t0 = time.time()
    t = wl.call(port, handler, batch, "unused")
    assert t.num_rows == rows
    return rows / (time.time() - t0)


def specialize_latency(make_worker, body, runs):
    """Median and each run of POST /v1/specialize -> the first successful Flight answer."""
    times = []
    for _ in range(runs):
        w = make_worker()
        with w:
            time.sleep(1.5)  # an idle pool pod: the zygote (if any) is warm
            t0 = time.time()
            status, _ = w.specialize(body)
            assert status == 202
            while True:
                try:
                    wl.call(w.flight_port, body["spec"]["handler"], wl.int_batch([1]),
                            body["token"], host=w.host)
                    break
                except (flight.FlightError, pa.ArrowException):
                    time.sleep(0.002)
            times.append(1000 * (time.time() - t0))
    times.sort()
    return times[len(times) // 2], times


def runsc_worker(**kw):
    import random

    w = wl.Worker(**kw)
    ip = f"192.168.{random.randint(100, 250)}.2"
    w.host = ip
    w.args = [wl.RUNSC, "--platform=systrap", "--network=sandbox", "do", "-ip", ip, "-quiet",
              *[a.replace("127.0.0.1:", ":") for a in w.args]]
    return w


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=float, default=4)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--skip-databend-udf-row", action="store_true",
                    help="skip databend-udf's row mode (one 65536-row call takes ~12 s)")
    args = ap.parse_args()
    cores = os.cpu_count() or 1

    plain = plain_loop_rate()
    line("plain Python loop (to_pylist, add_one, pa.array)", plain, "rows/s")

    proc, port = start_server(ECHO)
    echo = rows_per_second(port, "add_one", None, args.seconds)
    proc.terminate()
    line("bare pyarrow Flight echo server (pc.add), 1 client", echo, "rows/s")

    proc, port = start_server(DATABEND_UDF)
    batch_rate = rows_per_second(port, "add_one_batch", None, args.seconds)
    line("databend-udf 0.2.20 server, batch_mode=True", batch_rate, "rows/s")
    if not args.skip_databend_udf_row:
        row_rate = one_call_rate(port, "add_one", ROWS)
        line("databend-udf 0.2.20 server, row mode (io_threads=32)", row_rate, "rows/s")
    else:
        row_rate = None
    proc.terminate()

    body = wl.structured()
    results = {}
    for processes, clients in ((1, 1), (cores, cores)):
        with wl.Worker(processes=processes) as w:
            w.specialize(body)
            assert w.wait_state()["state"] == "ready"
            rate = rows_per_second(w.flight_port, "add_one", body["token"], args.seconds,
                                   clients=clients)
            results[processes] = rate
            line(f"udf-worker stub, {processes} process(es), {clients} client(s)", rate,
                 "rows/s", f"{rate / plain:.2f}x plain loop, {rate / echo:.3f}x echo")

    with wl.Worker(processes=1) as w:
        token = "bench-token"
        sbody = {"function": "add_one", "tenant": "test_tenant", "token": token,
                 "script": test_script.make_script(w.work_dir, "add_one", ["INT"], "INT",
                                                   "def add_one(x):\n    return x + 1\n")}
        w.specialize(sbody)
        assert w.wait_state()["state"] == "ready"
        rate = rows_per_second(w.flight_port, "add_one", token, args.seconds)
        line("udf-worker script form (Databend-style stub + hook), 1 process", rate, "rows/s",
             f"{rate / plain:.2f}x plain loop")

    if row_rate:
        line("ratio: our stub (1 process) / databend-udf row mode", results[1] / row_rate, "x")

    if os.access(wl.RUNSC, os.X_OK):
        with runsc_worker(processes=1) as w:
            w.specialize(body)
            assert w.wait_state()["state"] == "ready"
            rate = rows_per_second(w.flight_port, "add_one", body["token"], args.seconds,
                                   host=w.host)
            line("udf-worker stub under runsc systrap, 1 process, 1 client", rate, "rows/s",
                 f"{rate / results[1]:.2f}x plain process")

    for zygote in (True, False):
        med, all_ = specialize_latency(lambda: wl.Worker(zygote=zygote), body, args.runs)
        line(f"specialize -> first answer, plain process, zygote={'on' if zygote else 'off'}",
             med, "ms", "runs: " + ", ".join(f"{t:.0f}" for t in all_))
    if os.access(wl.RUNSC, os.X_OK):
        for zygote in (True, False):
            med, all_ = specialize_latency(lambda: runsc_worker(zygote=zygote), body, args.runs)
            line(f"specialize -> first answer, runsc systrap, zygote={'on' if zygote else 'off'}",
                 med, "ms", "runs: " + ", ".join(f"{t:.0f}" for t in all_))
    else:
        print(f"(no runsc at {wl.RUNSC}: runsc latency skipped)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
