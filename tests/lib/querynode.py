"""Calls a UDF the way a Databend query node does: the operator's gRPC first, then Arrow Flight.

    from querynode import QueryNode
    qn = QueryNode("10.96.0.12:50051", tenant="demo")
    ep = qn.apply_udf_resource(spec_json)        # udfproto.UdfService/ApplyUdfResource
    table = qn.exchange(ep, "add_one", "add_one", batch)

As a command (what `make run` prints), it creates `add_one(INT) -> INT` for a tenant, calls it
on a few rows and prints the rows and how long each step took:

    ~/.cache/udf-sandbox/venv/bin/python tests/lib/querynode.py --address 10.96.0.12:50051

What it sends is docs/PROTOCOL.md: metadata `x-databend-tenant`, `x-databend-user`,
`x-databend-query-id`, `udf_client_version` and a 5 s `grpc-timeout` on the gRPC call; then
DoExchange with descriptor path [handler], `x-databend-function`, `x-databend-function-handler`,
`x-databend-query-id` and every header the operator answered, input fields arg1..argN, at most
65,536 rows a batch. A refused Flight connection is retried as Databend does: 50 ms, doubling,
8 tries.
"""

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import grpc  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.flight as flight  # noqa: E402

import stubs  # noqa: E402

GRPC_TIMEOUT = 5.0  # Databend's default grpc-timeout
MAX_ROWS = 65536  # rows of one DoExchange batch
RETRY_FIRST = 0.05
RETRY_TRIES = 8

# INT NULL in, INT NULL out: Databend passes NULL rows to the function as None.
ADD_ONE = "def add_one(x):\n    return None if x is None else x + 1\n"


class Endpoint:
    """What the control plane answered: a Flight address and the headers to send with it."""

    def __init__(self, endpoint, headers):
        self.endpoint = endpoint
        self.headers = dict(headers)

    def location(self):
        # The operator answers http://HOST:PORT (as Databend's own resource services do); Flight
        # speaks gRPC over plaintext HTTP/2 there.
        for scheme in ("http://", "grpc://", "grpc+tcp://"):
            if self.endpoint.startswith(scheme):
                return "grpc+tcp://" + self.endpoint[len(scheme):]
        return "grpc+tcp://" + self.endpoint


def udf_spec(handler="add_one", code=ADD_ONE, input_types=("INT NULL",), result_type="INT NULL",
             imports=(), packages=()):
    """The compact spec JSON of protocol 1, keys in Databend's order."""
    return json.dumps({"version": 1, "kind": "udf", "language": "python", "handler": handler,
                       "input_types": list(input_types), "result_type": result_type,
                       "imports": list(imports), "packages": list(packages),
                       "runtime_version": "3.12.2", "code": code}, separators=(",", ":"))


# The server stub Databend's scripts (protocols 2 and 3) write to /app/server.py: databend-udf's
# UDFServer on $UDF_SERVER_ADDR with the handler from /app/udf.py, HTTP /health and /stats on
# $RESOURCE_STATUS_ADDR, the imports directory on sys.path.
SERVER_STUB = r'''
import importlib, json, os, sys, threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from databend_udf import UDFServer, udf as make_udf

IMPORTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "imports")
sys._xoptions["databend_import_directory"] = IMPORTS

class Status(BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"1" if self.path == "/health" else json.dumps({"request_count": 0}).encode()
        self.send_response(200)
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass

def main():
    host, port = os.getenv("RESOURCE_STATUS_ADDR", "0.0.0.0:8080").rsplit(":", 1)
    threading.Thread(target=HTTPServer((host, int(port)), Status).serve_forever, daemon=True).start()
    if os.path.isdir(IMPORTS):
        sys.path.insert(0, IMPORTS)
        for name in sorted(os.listdir(IMPORTS)):
            if name.endswith((".zip", ".whl", ".egg")):
                sys.path.append(os.path.join(IMPORTS, name))
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    code = importlib.import_module("udf")
    server = UDFServer(location=os.getenv("UDF_SERVER_ADDR", "0.0.0.0:8815"))
    server.add_function(make_udf(name="@HANDLER@", input_types=@INPUTS@,
                                 result_type="@RESULT@")(getattr(code, "@HANDLER@")))
    server.serve()

if __name__ == "__main__":
    main()
'''


# Databend's scripts fetch the imports with Python (the sandbox image need not have curl): each
# entry of /app/imports.json to /app/imports/<basename of its location>, with its headers.
IMPORTS_FETCHER = """import json, os, urllib.request
with open("/app/imports.json") as f:
    entries = json.load(f)
for i, e in enumerate(entries):
    base = e["location"].rstrip("/").split("/")[-1] or "import_%d" % i
    req = urllib.request.Request(e["url"], headers=e.get("headers") or {})
    with urllib.request.urlopen(req, timeout=30) as r, open(os.path.join("/app/imports", base), "wb") as out:
        out.write(r.read())"""


def databend_script(handler, input_types, result_type, code, imports=(), packages=()):
    """The bash script protocols 2 and 3 carry, shaped as Databend's query node writes it
    (docs/PROTOCOL.md): pip install of the packages, imports.json and a Python fetcher for it
    (imports: (location, presigned url) pairs), the code and the server stub through quoted
    heredocs, then exec python. Types are Databend's bare SQL names."""
    lines = ["#!/usr/bin/env bash", "set -euo pipefail", "mkdir -p /app", "cd /app"]
    if packages:
        lines.append("python -m pip install --no-cache-dir " + " ".join(packages))
    if imports:
        entries = [{"location": loc, "url": url, "headers": {}} for loc, url in imports]
        lines += ["mkdir -p /app/imports", "cat > /app/imports.json <<'UDF_IMPORTS_EOF'",
                  json.dumps(entries), "UDF_IMPORTS_EOF", "python - <<'UDF_FETCH_EOF'", IMPORTS_FETCHER,
                  "UDF_FETCH_EOF"]
    stub = (SERVER_STUB.replace("@HANDLER@", handler).replace("@INPUTS@", json.dumps(list(input_types)))
            .replace("@RESULT@", result_type))
    lines += ["cat > /app/udf.py <<'UDF_CODE_EOF'", code.rstrip("\n"), "UDF_CODE_EOF",
              "cat > /app/server.py <<'UDF_SERVER_EOF'", stub.strip("\n"), "UDF_SERVER_EOF",
              "exec python /app/server.py"]
    return "\n".join(lines) + "\n"


class QueryNode:
    def __init__(self, address, tenant="demo", user="'root'@'%'"):
        self.address = address
        self.tenant = tenant
        self.user = user
        self.query_id = "q-%d" % time.time_ns()
        self.channel = grpc.insecure_channel(address)
        self.udf_pb2, udf_grpc = stubs.load("udf")
        self.udf = udf_grpc.UdfServiceStub(self.channel)
        self.res_pb2, res_grpc = stubs.load("resource")
        self.resource = res_grpc.ResourceServiceStub(self.channel)
        self.workers = res_grpc.WorkerServiceStub(self.channel)

    def _md(self, version_key):
        return [("x-databend-tenant", self.tenant), ("x-databend-user", self.user),
                ("x-databend-query-id", self.query_id), (version_key, "v1")]

    def apply_resource(self, script):
        """Protocol 2: ResourceService/ApplyResource with a script."""
        resp = self.resource.ApplyResource(self.res_pb2.ApplyResourceRequest(type="udf", script=script),
                                           metadata=self._md("resource_client_version"),
                                           timeout=GRPC_TIMEOUT)
        return Endpoint(resp.endpoint, resp.headers)

    def create_worker(self, name, script="", tags=None, options=None, if_not_exists=True):
        """Protocol 3: WorkerService/CreateWorker (an empty script records the worker only)."""
        req = self.res_pb2.CreateWorkerRequest(tenant_id=self.tenant, name=name, if_not_exists=if_not_exists,
                                               tags=tags or {}, options=options or {}, type="udf" if script else "",
                                               script=script)
        resp = self.workers.CreateWorker(req, metadata=self._md("worker_client_version"),
                                         timeout=GRPC_TIMEOUT)
        return resp, Endpoint(resp.endpoint, resp.headers)

    def alter_worker(self, name, action=None, set_tags=None, set_options=None):
        """Protocol 3: AlterWorker; action "suspend" or "resume"."""
        kw = {"tenant_id": self.tenant, "name": name, "set_tags": set_tags or {},
              "set_options": set_options or {}}
        if action:
            enum = self.res_pb2.AlterWorkerRequest.WorkerStateAction
            kw["state_action"] = {"suspend": enum.Suspend, "resume": enum.Resume}[action]
        return self.workers.AlterWorker(self.res_pb2.AlterWorkerRequest(**kw),
                                        metadata=self._md("worker_client_version"), timeout=GRPC_TIMEOUT)

    def list_workers(self):
        resp = self.workers.ListWorkers(self.res_pb2.ListWorkersRequest(tenant_id=self.tenant),
                                        metadata=self._md("worker_client_version"), timeout=GRPC_TIMEOUT)
        return list(resp.workers)

    def drop_worker(self, name, if_exists=False):
        return self.workers.DropWorker(self.res_pb2.DropWorkerRequest(tenant_id=self.tenant, name=name,
                                                                      if_exists=if_exists),
                                       metadata=self._md("worker_client_version"), timeout=GRPC_TIMEOUT)

    def close(self):
        self.channel.close()

    def metadata(self):
        return [("x-databend-tenant", self.tenant), ("x-databend-user", self.user),
                ("x-databend-query-id", self.query_id), ("udf_client_version", "v1")]

    def apply_udf_resource(self, spec_json, imports=()):
        """Protocol 1. imports: (location, presigned url, tag) triples."""
        req = self.udf_pb2.ApplyUdfResourceRequest(
            spec=spec_json,
            imports=[self.udf_pb2.UdfImport(location=loc, url=url, tag=tag) for loc, url, tag in imports])
        resp = self.udf.ApplyUdfResource(req, metadata=self.metadata(), timeout=GRPC_TIMEOUT)
        if not resp.endpoint:
            raise RuntimeError("ApplyUdfResource answered an empty endpoint (Databend fails the query)")
        return Endpoint(resp.endpoint, resp.headers)

    def exchange(self, ep, function, handler, batch):
        """One DoExchange of one batch (at most 65,536 rows); returns the reply as a Table."""
        if batch.num_rows > MAX_ROWS:
            raise ValueError("a Databend batch has at most %d rows" % MAX_ROWS)
        headers = [(b"x-databend-tenant", self.tenant.encode()),
                   (b"x-databend-user", self.user.encode()),
                   (b"x-databend-function", function.encode()),
                   (b"x-databend-function-handler", handler.encode()),
                   (b"x-databend-query-id", self.query_id.encode())]
        headers += [(k.encode(), v.encode()) for k, v in sorted(ep.headers.items())]
        options = flight.FlightCallOptions(headers=headers, timeout=60)
        delay = RETRY_FIRST
        for attempt in range(RETRY_TRIES):
            client = flight.connect(ep.location())
            try:
                writer, reader = client.do_exchange(flight.FlightDescriptor.for_path(handler), options=options)
                writer.begin(batch.schema)
                writer.write_batch(batch)
                writer.done_writing()
                table = reader.read_all()
                writer.close()
                return table
            except flight.FlightUnavailableError:
                # Refused or not yet listening: Databend's backoff, then the same call again.
                if attempt == RETRY_TRIES - 1:
                    raise
                time.sleep(delay)
                delay *= 2
            finally:
                client.close()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--address", required=True, help="the operator's gRPC address HOST:PORT")
    ap.add_argument("--tenant", default="demo")
    ap.add_argument("--rows", type=int, default=5, help="rows to send (at most 65536)")
    args = ap.parse_args(argv)

    qn = QueryNode(args.address, tenant=args.tenant)
    try:
        t0 = time.monotonic()
        try:
            ep = qn.apply_udf_resource(udf_spec())
        except grpc.RpcError as e:
            print("gRPC ApplyUdfResource: %s: %s" % (e.code().name, e.details()), file=sys.stderr)
            return 1
        t1 = time.monotonic()
        print("%-56s %8.1f ms" % ("gRPC   ApplyUdfResource(add_one) -> " + ep.endpoint, (t1 - t0) * 1e3))
        values = [None if i == 2 else i * 10 for i in range(args.rows)]
        batch = pa.record_batch([pa.array(values, type=pa.int32())],
                                schema=pa.schema([pa.field("arg1", pa.int32(), True)]))
        t2 = time.monotonic()
        try:
            table = qn.exchange(ep, "add_one", "add_one", batch)
        except (flight.FlightError, pa.ArrowException) as e:
            print("Flight DoExchange on %s: %s" % (ep.location(), str(e).splitlines()[0]), file=sys.stderr)
            return 1
        t3 = time.monotonic()
        print("%-56s %8.1f ms" % ("Flight DoExchange(add_one, %d rows)" % batch.num_rows, (t3 - t2) * 1e3))
        out = table.column(0).to_pylist()
        if len(out) != len(values):
            print("reply has %d rows for %d sent" % (len(out), len(values)), file=sys.stderr)
            return 1
        print("  x     add_one(x)")
        for x, y in zip(values, out):
            print("  %-5s %s" % ("NULL" if x is None else x, "NULL" if y is None else y))
        print("%-56s %8.1f ms" % ("total", (t3 - t0) * 1e3))
        return 0
    finally:
        qn.close()


if __name__ == "__main__":
    sys.exit(main())
