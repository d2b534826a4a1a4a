"""udf-worker as a plain process, structured form: specialize over the control API, then call
it with pyarrow Flight exactly like a Databend query node (descriptor [handler], fields
arg1..argN, the query's metadata plus the token, 65536-row batches)."""

import datetime
import decimal
import json
import sys
import time

import pyarrow as pa
import pyarrow.flight as flight

import workerlib as wl

ROWS = 65536
failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)


def expect_flight_error(fn, kind, what):
    try:
        fn()
    except kind as e:
        check(True, f"{what}: {type(e).__name__}")
        return str(e)
    except Exception as e:  # noqa: BLE001
        check(False, f"{what}: wrong error {type(e).__name__}: {str(e)[:200]}")
        return str(e)
    check(False, f"{what}: call succeeded")
    return ""


def typed_case(input_type, result_type, code, arrow_in, values, expected, handler="f"):
    """Specializes a fresh worker for one function and checks values and result nullability."""
    body = wl.structured(function=handler, handler=handler, input_types=[input_type],
                         result_type=result_type, code=code)
    with wl.Worker() as w:
        status, _ = w.specialize(body)
        check(status == 202, f"{result_type}: specialize 202")
        st = w.wait_state()
        check(st["state"] == "ready", f"{result_type}: ready ({st})")
        reps = ROWS // len(values)
        arr = pa.array(values * reps, type=arrow_in)
        batch = pa.record_batch([arr], schema=pa.schema([pa.field("arg1", arrow_in, True)]))
        t = wl.call(w.flight_port, handler, batch, body["token"])
        field = t.schema.field(0)
        want_nullable = result_type.upper().endswith(" NULL")
        check(t.num_rows == len(values) * reps, f"{result_type}: row count {t.num_rows}")
        check(field.nullable == want_nullable,
              f"{result_type}: result nullable={field.nullable}, want {want_nullable}")
        got = t.column(0).to_pylist()[:len(values)]
        check(got == expected, f"{result_type}: values {got[:4]}")
        return field


def main():
    # add_one(INT) -> INT: bare types are NOT NULL on the wire.
    body = wl.structured()
    with wl.Worker() as w:
        st = w.status()
        check(st["state"] == "idle", f"idle before specialize: {st['state']}")
        status, health = w.request("GET", "/health", auth=False, port=w.status_port)
        check(status == 503, f"/health before ready -> {status}")
        t0 = time.time()
        status, reply = w.specialize(body)
        check(status == 202, f"specialize -> 202 ({reply})")
        st = w.wait_state()
        print(f"     specialize -> ready in {1000 * (time.time() - t0):.0f} ms "
              f"(worker says {st['specialize_ms']} ms, zygote={st['from_zygote']})")
        check(st["state"] == "ready" and st["processes"] == 1, f"ready: {st}")
        # The same request again is idempotent; another function is a conflict.
        status, _ = w.specialize(body)
        check(status == 202, "same specialize again -> 202")
        other = wl.structured(function="other", token=body["token"])
        status, reply = w.specialize(other)
        check(status == 409 and "add_one" in reply["error"], f"other function -> 409 {reply}")

        values = list(range(ROWS))
        batch = wl.int_batch(values)
        t = wl.call(w.flight_port, "add_one", batch, body["token"])
        check(t.num_rows == ROWS, f"65536 rows in, {t.num_rows} out")
        check(t.column(0).to_pylist() == [v + 1 for v in values], "add_one values")
        check(t.schema.field(0).type == pa.int32(), f"result type {t.schema.field(0).type}")
        check(t.schema.field(0).nullable is False, "INT result is NOT NULL")

        # Token and tenant checks.
        expect_flight_error(lambda: wl.call(w.flight_port, "add_one", batch, None),
                            flight.FlightUnauthenticatedError, "no token")
        expect_flight_error(lambda: wl.call(w.flight_port, "add_one", batch, "wrong"),
                            flight.FlightUnauthenticatedError, "wrong token")
        expect_flight_error(
            lambda: wl.call(w.flight_port, "add_one", batch, body["token"], tenant="other"),
            flight.FlightUnauthenticatedError, "wrong tenant")

        # Several calls at once on one connection.
        client = flight.connect(f"grpc://127.0.0.1:{w.flight_port}")
        for _ in range(3):
            wl.call(w.flight_port, "add_one", batch, body["token"], client=client)
        client.close()

        status, text = w.request("GET", "/health", auth=False, port=w.status_port)
        check(status == 200 and text == b"1", f"/health -> {status} {text!r}")
        status, text = w.request("GET", "/stats", auth=False, port=w.status_port)
        stats = json.loads(text)
        check(status == 200 and stats["request_count"] == 4, f"/stats {stats}")
        check(stats["first_request_time"] is not None and
              stats["last_request_time"].endswith("+00:00"), "stats times are ISO 8601 UTC")
        code = w.stop()
        check(code == 0, f"SIGTERM -> drained, exit {code}")

    # An env var reaches the UDF; a NULL input reaches the handler as None.
    code = ("import os\n"
            "def f(x):\n"
            "    return os.environ['GREETING'] + ':' + ('null' if x is None else str(x))\n")
    body = wl.structured(function="f", handler="f", input_types=["INT NULL"],
                         result_type="VARCHAR", code=code, env={"GREETING": "hi"})
    with wl.Worker() as w:
        w.specialize(body)
        st = w.wait_state()
        check(st["state"] == "ready", f"env: ready {st}")
        t = wl.call(w.flight_port, "f", wl.int_batch([1, None]), body["token"])
        check(t.column(0).to_pylist() == ["hi:1", "hi:null"], f"env: {t.column(0).to_pylist()}")

    # Types: values and the nullability the query node expects.
    typed_case("INT NULL", "INT NULL", "def f(x):\n    return None if x is None else x * 2\n",
               pa.int32(), [1, None, 3, 4], [2, None, 6, 8])
    typed_case("VARCHAR NULL", "VARCHAR NULL",
               "def f(s):\n    return None if s is None else s.upper()\n", pa.string_view(),
               ["ab", None, "c", "dé"], ["AB", None, "C", "DÉ"])
    typed_case("DECIMAL(10, 2) NULL", "DECIMAL(10, 2) NULL",
               "def f(d):\n    return None if d is None else d * 2\n", pa.decimal64(10, 2),
               [decimal.Decimal("1.25"), None, decimal.Decimal("-3.50"), decimal.Decimal("0")],
               [decimal.Decimal("2.50"), None, decimal.Decimal("-7.00"),
                decimal.Decimal("0.00")])
    typed_case("ARRAY(INT32) NULL", "ARRAY(INT32) NULL",
               "def f(a):\n    return None if a is None else [v + 1 for v in a]\n",
               pa.large_list(pa.field("item", pa.int32(), False)),
               [[1, 2], None, [], [5]], [[2, 3], None, [], [6]])
    ts = datetime.datetime(2024, 1, 2, 3, 4, 5, 600000)
    typed_case("TIMESTAMP NULL", "TIMESTAMP NULL",
               "import datetime\n"
               "def f(t):\n    return None if t is None else t + datetime.timedelta(days=1)\n",
               pa.timestamp("us"), [ts, None, ts, ts],
               [ts + datetime.timedelta(days=1), None, ts + datetime.timedelta(days=1),
                ts + datetime.timedelta(days=1)])

    # Every spelling Databend's CREATE FUNCTION accepts reaches the stub in one canonical form:
    # NULLABLE(TINYINT UNSIGNED) is a nullable UInt8, REAL a Float32.
    field = typed_case("NULLABLE(TINYINT UNSIGNED)", "REAL NULL",
                       "def f(x):\n    return None if x is None else x / 2\n", pa.uint8(),
                       [1, None, 4, 255], [0.5, None, 2.0, 127.5])
    check(field.type == pa.float32(), f"REAL NULL: result type {field.type}")

    # A valid Databend type databend-udf has no Arrow form for is refused at specialize,
    # by name, and the worker stays idle for a request it can serve.
    body = wl.structured(function="f", handler="f", input_types=["INT", "ARRAY(GEOMETRY NULL)"],
                         result_type="INT", code="def f(x, g):\n    return x\n")
    with wl.Worker() as w:
        status, reply = w.specialize(body)
        reason = json.dumps(reply)
        check(status == 400 and "spec.input_types[1]" in reason and "GEOMETRY" in reason,
              f"GEOMETRY refused: {status} {reason}")
        check(w.status()["state"] == "idle", "idle after a refused type")

    # Zero arguments: one row with no columns in, one row out.
    body = wl.structured(function="one", handler="one", input_types=[], result_type="INT",
                         code="def one():\n    return 1\n")
    with wl.Worker() as w:
        w.specialize(body)
        check(w.wait_state()["state"] == "ready", "zero-arg: ready")
        empty = pa.RecordBatch.from_struct_array(pa.array([{}], type=pa.struct([])))
        t = wl.call(w.flight_port, "one", empty, body["token"])
        check(t.num_rows == 1 and t.column(0).to_pylist() == [1], f"zero-arg: {t.to_pylist()}")

    # Load failures name the step and the exception's last line.
    for code, handler, want in (("def f(x:\n", "f", "SyntaxError"),
                                ("import no_such_module\ndef f(x):\n    return x\n", "f",
                                 "No module named 'no_such_module'"),
                                ("def g(x):\n    return x\n", "f", "no function named 'f'"),
                                ("def f(x, y):\n    return x\n", "f", "expects 2 data")):
        body = wl.structured(function="f", handler=handler, code=code)
        with wl.Worker() as w:
            w.specialize(body)
            st = w.wait_state()
            check(st["state"] == "failed" and st["step"] == "load" and want in st["reason"],
                  f"load failure {want!r}: {st['step']}: {st['reason']}")

    if failures:
        print(f"{len(failures)} failure(s)")
        return 1
    print("all passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
