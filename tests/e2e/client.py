"""A Databend-like query node for the end-to-end tests, run on the outside host (inside its
network namespace): the operator's gRPC Service first, then Arrow Flight to the endpoint it
answers, as tests/lib/querynode.py does (Databend's metadata, 5 s grpc-timeout, 65,536-row
batches, refused connections retried 50 ms doubling, 8 tries).

    client.py protocols GRPC_ADDR FILES_URL    protocols 1, 2, 3, imports, a package, tenants
    client.py load GRPC_ADDR --mode hot|burst|mixed --seconds S [--concurrency N] [--count C]

Load modes: hot (one UDF, the same statement again and again), burst (each thread makes C new
UDFs, re-running a statement the operator answers UNAVAILABLE as a user would, then uses them
again), mixed (hot statements and protocol 3 cycles: CreateWorker with a new script, SUSPEND,
RESUME, DROP).

`protocols` prints one "ok"/"FAIL" line per check and exits 1 on any failure. `load` runs until
S seconds pass, SIGTERM or --stop-file FILE exists, and prints one JSON line per statement ({"t0", "t", "kind", "ok",
"code", "stage", "ms", "udf", "tenant", "attempt"}), then a {"summary": ...} line.
"""

import argparse
import json
import os
import random
import signal
import sys
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "lib"))

import grpc  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.flight as flight  # noqa: E402

import querynode as qn  # noqa: E402
from checks import check, finish  # noqa: E402

ROWS = 65536


def int_batch(n=ROWS, nulls=True):
    values = [None if nulls and i % 1000 == 7 else i for i in range(n)]
    return values, pa.record_batch([pa.array(values, type=pa.int32())],
                                   schema=pa.schema([pa.field("arg1", pa.int32(), True)]))


def add_k_code(name, k):
    return "def %s(x):\n    return None if x is None else x + %d\n" % (name, k)


def statement(node, ep_fn, name, k, rows=ROWS, nulls=True):
    """One SQL statement's worth: ApplyUdfResource-like call, then DoExchange of one batch;
    checks every row. Returns (stage, code, detail) on failure, None on success. nulls: the
    argument is nullable (INT NULL), so some rows are NULL."""
    try:
        ep = ep_fn()
    except grpc.RpcError as e:
        return "grpc", e.code().name, e.details()
    values, batch = int_batch(rows, nulls)
    try:
        table = node.exchange(ep, name, name, batch)
    except (flight.FlightError, pa.ArrowException, OSError) as e:
        return "flight", type(e).__name__, (str(e).splitlines() or [""])[0][:300]
    got = table.column(0).to_pylist()
    if got != [None if v is None else v + k for v in values]:
        return "flight", "WRONG_RESULT", "rows differ"
    return None


def again(call, seconds=60):
    """call() as a user runs a statement the operator answered UNAVAILABLE ("retry the statement
    in a few seconds"): again each second, for up to `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return call()
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.UNAVAILABLE or time.monotonic() > deadline:
                raise
            time.sleep(1)


def why(err):
    return "" if err is None else "%s %s: %s" % err


# ---- protocols ------------------------------------------------------------------------------

IMPORTS_CODE = """import os, sys
import helper, zipmod, whlmod, eggmod

def imports_udf(x):
    d = sys._xoptions["databend_import_directory"]
    with open(os.path.join(d, "data.txt")) as f:
        data = f.read().strip()
    return "%s|%s|%s|%s|%s|%s" % (helper.NAME, zipmod.NAME, whlmod.NAME, eggmod.NAME, data, x)
"""
IMPORTS_WANT = "helper|zip|whl|egg|outside-data|"
IMPORT_FILES = ("helper.py", "data.txt", "zipmod.zip", "whlmod-1.0-py3-none-any.whl", "eggmod-1.0-py3.12.egg")


def call_strings(node, ep, name, n=4):
    batch = pa.record_batch([pa.array(list(range(n)), type=pa.int32())],
                            schema=pa.schema([pa.field("arg1", pa.int32(), True)]))
    return node.exchange(ep, name, name, batch).column(0).to_pylist()


def protocols(addr, files_url):
    tag = "%x" % (time.time_ns() % 0xFFFFFF)
    host = files_url.split("//", 1)[1].split("/", 1)[0].split(":")[0]
    a = qn.QueryNode(addr, tenant="e2e_a_" + tag)
    b = qn.QueryNode(addr, tenant="e2e_b_" + tag)
    presign = lambda f: "%s/%s?X-Amz-Signature=%x&X-Amz-Date=2026" % (files_url, f, random.getrandbits(64))  # noqa: E731

    # Protocol 1: the spec JSON and presigned imports.
    t0 = time.monotonic()
    spec = qn.udf_spec(handler="add_one", code=qn.ADD_ONE)
    err = statement(a, lambda: again(lambda: a.apply_udf_resource(spec)), "add_one", 1)
    check(err is None, "protocol 1: add_one over %d rows (%.0f ms, cold or warm) %s" % (ROWS, (time.monotonic() - t0) * 1e3, why(err)))
    t0 = time.monotonic()
    err = statement(a, lambda: a.apply_udf_resource(spec), "add_one", 1)
    check(err is None, "protocol 1: the same statement again, hot (%.0f ms) %s" % ((time.monotonic() - t0) * 1e3, why(err)))

    locs = ["@stage/imports/" + f for f in IMPORT_FILES]
    spec_i = qn.udf_spec(handler="imports_udf", code=IMPORTS_CODE, input_types=("INT NULL",),
                         result_type="VARCHAR NULL", imports=locs)
    try:
        # Databend tags each import with the stage file's ETag.
        tags = [urllib.request.urlopen(urllib.request.Request("%s/%s" % (files_url, f), headers={"Range": "bytes=0-0"}),
                                       timeout=10).headers["ETag"] for f in IMPORT_FILES]
        ep = again(lambda: a.apply_udf_resource(spec_i, imports=[(loc, presign(f), t) for loc, f, t in zip(locs, IMPORT_FILES, tags)]))
        got = call_strings(a, ep, "imports_udf")
        check(got == [IMPORTS_WANT + str(i) for i in range(4)],
              "protocol 1: imports (.py module, data file in databend_import_directory, zip, whl, egg): %s" % got[:1])
    except (grpc.RpcError, flight.FlightError) as e:
        check(False, "protocol 1: imports: %s" % e)

    # Protocol 2: the script, with imports and a package from the index on the outside host.
    pkg = ["--index-url", "%s/simple/" % files_url, "--trusted-host", host, "tinypkg"]
    code2 = ("import tinypkg, helper\n\ndef pkg_udf(x):\n"
             "    return '%s|%s|%s' % (tinypkg.VALUE, helper.NAME, x)\n")
    script = lambda: qn.databend_script("pkg_udf", ["INT"], "VARCHAR", code2, imports=[("@stage/imports/helper.py", presign("helper.py"))], packages=pkg)  # noqa: E731
    try:
        t0 = time.monotonic()
        ep = again(lambda: a.apply_resource(script()))
        got = call_strings(a, ep, "pkg_udf")
        check(got == ["tiny|helper|%d" % i for i in range(4)],
              "protocol 2: script with a package installed from the index and an import (%.0f ms): %s"
              % ((time.monotonic() - t0) * 1e3, got[:1]))
        ep2 = a.apply_resource(script())
        check(ep2.endpoint == ep.endpoint, "protocol 2: a new presign of the same content reuses the function")
    except (grpc.RpcError, flight.FlightError) as e:
        check(False, "protocol 2: %s" % e)

    # Protocol 3: worker records, a UDF through CreateWorker, then ApplyResource, alter, list, drop.
    try:
        resp, ep = again(lambda: a.create_worker("settings_" + tag, tags={"team": "e2e"}, options={"timeout": "30"}))
        check(resp.worker.name == "settings_" + tag and not ep.endpoint and resp.worker.options.get("timeout") == "30",
              "protocol 3: CREATE WORKER with options and tags records it, nothing provisioned")
        code3 = add_k_code("add_three", 3)
        s3 = qn.databend_script("add_three", ["INT"], "INT", code3)
        err = statement(a, lambda: again(lambda: a.create_worker("add_three", script=s3, tags={"kind": "udf"}))[1], "add_three", 3,
                        nulls=False)
        check(err is None, "protocol 3: CreateWorker(udf) then Flight, %d rows %s" % (ROWS, why(err)))
        err = statement(a, lambda: a.apply_resource(s3), "add_three", 3, nulls=False)
        check(err is None, "protocol 3: ApplyResource of the same script %s" % why(err))
        w = a.alter_worker("add_three", "suspend").worker
        check(w.options.get("suspended") == "true", "protocol 3: SUSPEND: %s" % dict(w.options))
        w = a.alter_worker("add_three", "resume", set_tags={"state": "back"}).worker
        check(w.options.get("suspended") == "false" and w.tags.get("state") == "back", "protocol 3: RESUME and a tag")
        err = statement(a, lambda: a.create_worker("add_three", script=s3)[1], "add_three", 3, nulls=False)
        check(err is None, "protocol 3: served after RESUME %s" % why(err))
        names = sorted(w.name for w in a.list_workers())
        check("settings_" + tag in names and "add_three" in names, "protocol 3: ListWorkers: %s" % names)
        a.drop_worker("settings_" + tag)
        a.drop_worker("add_three")
        names = sorted(w.name for w in a.list_workers())
        check("add_three" not in names and "settings_" + tag not in names, "protocol 3: DropWorker: %s left" % names)
        try:
            a.drop_worker("add_three")
            check(False, "protocol 3: a second DropWorker is NOT_FOUND")
        except grpc.RpcError as e:
            check(e.code() == grpc.StatusCode.NOT_FOUND, "protocol 3: a second DropWorker: %s" % e.code().name)
    except grpc.RpcError as e:
        check(False, "protocol 3: %s: %s" % (e.code().name, e.details()))

    # Two tenants, the same UDF text: two functions; one tenant's token opens only its own.
    try:
        ep_a = a.apply_udf_resource(spec)
        err = statement(b, lambda: again(lambda: b.apply_udf_resource(spec)), "add_one", 1)
        check(err is None, "tenant B: the same add_one text is served %s" % why(err))
        ep_b = b.apply_udf_resource(spec)
        check(ep_a.endpoint != ep_b.endpoint, "two tenants, two endpoints: %s, %s" % (ep_a.endpoint, ep_b.endpoint))
        crossed = qn.Endpoint(ep_b.endpoint, ep_a.headers)
        try:
            call_strings(b, crossed, "add_one")
            check(False, "tenant A's token opens tenant B's endpoint")
        except flight.FlightError as e:
            check(True, "tenant A's token on tenant B's endpoint is refused: %s" % type(e).__name__)
    except grpc.RpcError as e:
        check(False, "two tenants: %s: %s" % (e.code().name, e.details()))
    a.close()
    b.close()
    return finish()


# ---- load -----------------------------------------------------------------------------------

class Load:
    def __init__(self, addr, mode, tag, concurrency, rows, count):
        self.addr, self.mode, self.tag, self.rows, self.count = addr, mode, tag, rows, count
        self.concurrency = concurrency
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.seq = 0
        self.results = []

    def emit(self, rec):
        with self.lock:
            self.results.append(rec)
            print(json.dumps(rec), flush=True)

    def next_seq(self):
        with self.lock:
            self.seq += 1
            return self.seq

    def run_statement(self, node, kind, name, k, ep_fn, nulls=True, attempt=1):
        t0 = time.monotonic()
        start = time.time()
        err = statement(node, ep_fn, name, k, self.rows, nulls)
        rec = {"t0": start, "t": time.time(), "kind": kind, "udf": name, "tenant": node.tenant,
               "ok": err is None, "ms": round((time.monotonic() - t0) * 1e3, 1), "attempt": attempt}
        if err:
            rec.update(stage=err[0], code=err[1], detail=err[2][:200])
        self.emit(rec)
        return err

    def new_udf(self, node, kind, name, k, ep_fn, nulls=True):
        """A statement with a UDF never seen: the operator answers UNAVAILABLE ("still being
        provisioned; retry the statement") while no pod is ready, and the user runs it again;
        so does this, each second, for up to 90 s."""
        deadline = time.monotonic() + 90
        attempt = 1
        while True:
            err = self.run_statement(node, kind, name, k, ep_fn, nulls, attempt)
            if not err or err[:2] != ("grpc", "UNAVAILABLE") or time.monotonic() > deadline or self.stop.is_set():
                return err
            attempt += 1
            time.sleep(1)

    def worker(self, idx):
        tenant = "e2e_%s_%d" % (self.tag, idx % 2)
        node = qn.QueryNode(self.addr, tenant=tenant)
        hot_spec = qn.udf_spec(handler="add_one", code=qn.ADD_ONE)
        made = []  # (name, k, spec) of this thread's new UDFs
        try:
            while not self.stop.is_set():
                mode = self.mode
                if mode == "mixed":
                    mode = random.choices(["hot", "worker"], weights=[85, 15])[0]
                if mode == "burst" and len(made) >= self.count:
                    mode = "again"
                if mode == "hot":
                    self.run_statement(node, "hot", "add_one", 1, lambda: node.apply_udf_resource(hot_spec))
                elif mode == "burst":
                    k = self.next_seq() + 1000 * idx
                    name = "add_%s_%d" % (self.tag, k)
                    spec = qn.udf_spec(handler=name, code=add_k_code(name, k))
                    made.append((name, k, spec))
                    self.new_udf(node, "new", name, k, lambda: node.apply_udf_resource(spec))
                elif mode == "again":
                    name, k, spec = made[self.next_seq() % len(made)]
                    self.run_statement(node, "again", name, k, lambda: node.apply_udf_resource(spec))
                else:
                    self.worker_cycle(node)
        finally:
            node.close()

    def worker_cycle(self, node):
        """Protocol 3 as a session's DDL does it: a UDF by CreateWorker, suspend, resume, drop."""
        k = self.next_seq()
        name = "w_%s_%d" % (self.tag, k)
        script = qn.databend_script(name, ["INT"], "INT", add_k_code(name, k))
        self.new_udf(node, "worker", name, k, lambda: node.create_worker(name, script=script)[1], nulls=False)
        for kind, op in (("suspend", lambda: node.alter_worker(name, "suspend")),
                         ("resume", lambda: node.alter_worker(name, "resume")),
                         ("drop", lambda: node.drop_worker(name))):
            t0 = time.monotonic()
            rec = {"t0": time.time(), "kind": kind, "udf": name, "tenant": node.tenant, "ok": True}
            try:
                op()
            except grpc.RpcError as e:
                rec.update(ok=False, stage="grpc", code=e.code().name, detail=(e.details() or "")[:200])
            rec["ms"] = round((time.monotonic() - t0) * 1e3, 1)
            rec["t"] = time.time()
            self.emit(rec)

    def run(self, seconds, stop_file=None):
        threads = [threading.Thread(target=self.worker, args=(i,), daemon=True) for i in range(self.concurrency)]
        for t in threads:
            t.start()
        # The stop file, not only SIGTERM: pyarrow's Flight client takes a signal that lands
        # during a call for itself (it cancels that call) and Python's handler never runs.
        deadline = time.monotonic() + seconds
        while not self.stop.is_set() and time.monotonic() < deadline:
            if stop_file and os.path.exists(stop_file):
                break
            self.stop.wait(0.2)
        self.stop.set()
        for t in threads:
            t.join(timeout=60)
        stuck = sum(1 for t in threads if t.is_alive())
        if stuck:
            print("load: %d thread(s) still inside a statement 60 s after the stop" % stuck, flush=True)
        summary = {}
        for r in self.results:
            s = summary.setdefault(r["kind"], {"ok": 0, "failed": {}, "ms": []})
            if r["ok"]:
                s["ok"] += 1
                s["ms"].append(r["ms"])
            else:
                key = "%s:%s" % (r.get("stage"), r.get("code"))
                s["failed"][key] = s["failed"].get(key, 0) + 1
        for s in summary.values():
            ms = sorted(s.pop("ms"))
            s["p50_ms"] = ms[len(ms) // 2] if ms else None
            s["p99_ms"] = ms[min(len(ms) - 1, int(len(ms) * 0.99))] if ms else None
        print(json.dumps({"summary": summary}), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("protocols")
    p.add_argument("addr")
    p.add_argument("files_url")
    p = sub.add_parser("load")
    p.add_argument("addr")
    p.add_argument("--mode", choices=["hot", "burst", "mixed"], default="hot")
    p.add_argument("--seconds", type=float, default=60)
    p.add_argument("--concurrency", type=int, default=2)
    p.add_argument("--rows", type=int, default=ROWS)
    p.add_argument("--count", type=int, default=3,
                   help="burst: new UDFs per client thread, then statements that use them again")
    p.add_argument("--stop-file", help="stop (finishing the statements in flight) once this file exists")
    p.add_argument("--tag", default="%x" % (time.time_ns() % 0xFFFFFF))
    args = ap.parse_args()
    if args.cmd == "protocols":
        return protocols(args.addr, args.files_url)
    load = Load(args.addr, args.mode, args.tag, args.concurrency, args.rows, args.count)
    signal.signal(signal.SIGTERM, lambda *_: load.stop.set())
    load.run(args.seconds, args.stop_file)
    # A thread still inside a call (it had 60 s to end) would hold grpc's teardown at exit.
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
