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


class QueryNode:
    def __init__(self, address, tenant="demo", user="'root'@'%'"):
        self.address = address
        self.tenant = tenant
        self.user = user
        self.query_id = "q-%d" % time.time_ns()
        self.channel = grpc.insecure_channel(address)
        self.udf_pb2, udf_grpc = stubs.load("udf")
        self.udf = udf_grpc.UdfServiceStub(self.channel)

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
