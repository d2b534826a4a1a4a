"""udf-worker under gVisor: `runsc --platform=systrap --network=sandbox do udf-worker ...`.
The worker is PID 1 of the sandbox; it is reached at the sandbox's own address. Covers the
structured form (token, NOT NULL typing, values), the script form, an os.abort() restart and
a SIGTERM drain, and TCP_NODELAY on the Flight connection the server accepted (gVisor does not
inherit it from the listener; worker/preload.c sets it). Fails when runsc is not built (`make prereqs` or hack/runsc.sh builds it)."""

import os
import sys
import time

import pyarrow as pa
import pyarrow.flight as flight

import workerlib as wl
import test_script

failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)


def sandboxed(processes=1):
    w = wl.Worker(processes=processes)
    ip = wl.sandbox_ip()
    w.host = ip
    args = [a.replace("127.0.0.1:", ":") for a in w.args]
    w.args = [wl.RUNSC, "--platform=systrap", "--network=sandbox", "do", "-ip", ip, "-quiet",
              *args]
    return w


CODE = """
import os
def f(x):
    if x == -1:
        os.abort()
    return x + 1
"""

# The connections this server process accepted (not listening, with a peer): 1 when every one
# has TCP_NODELAY, 0 when one has Nagle on, -1 when there is none.
NODELAY_CODE = """
import os, socket
def f(x):
    seen, worst = 0, 1
    for fd in os.listdir("/proc/self/fd"):
        try:
            s = socket.socket(fileno=os.dup(int(fd)))
        except (OSError, ValueError):
            continue
        try:
            if (s.family not in (socket.AF_INET, socket.AF_INET6) or s.type != socket.SOCK_STREAM
                    or s.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)):
                continue
            try:
                s.getpeername()
            except OSError:
                continue
            seen += 1
            worst = min(worst, 1 if s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) else 0)
        finally:
            s.close()
    return worst if seen else -1
"""


def main():
    if not os.access(wl.RUNSC, os.X_OK):
        print(f"FAIL runsc is not built: no executable {wl.RUNSC}; "
              "run `make prereqs` (or hack/runsc.sh) first")
        return 1
    body = wl.structured(function="f", handler="f", input_types=["INT"], result_type="INT",
                         code=CODE)
    t0 = time.time()
    w = sandboxed()
    with w:
        check(True, f"runsc: control API answers after {time.time() - t0:.2f}s")
        time.sleep(0.5)  # let the zygote warm up, as an idle pool pod would
        t0 = time.time()
        status, _ = w.specialize(body)
        st = w.wait_state()
        check(status == 202 and st["state"] == "ready",
              f"runsc: specialize -> ready in {1000 * (time.time() - t0):.0f} ms "
              f"(zygote={st['from_zygote']})")
        values = list(range(65536))
        t = wl.call(w.flight_port, "f", wl.int_batch(values), body["token"], host=w.host)
        check(t.column(0).to_pylist() == [v + 1 for v in values], "runsc: values")
        check(t.schema.field(0).nullable is False, "runsc: INT result NOT NULL")
        try:
            wl.call(w.flight_port, "f", wl.int_batch([1]), "wrong", host=w.host)
            check(False, "runsc: wrong token accepted")
        except flight.FlightUnauthenticatedError:
            check(True, "runsc: wrong token -> UNAUTHENTICATED")
        try:
            wl.call(w.flight_port, "f", wl.int_batch([-1]), body["token"], host=w.host)
            check(False, "runsc: abort call succeeded")
        except (flight.FlightError, pa.ArrowException):
            check(True, "runsc: the os.abort() call fails")
        deadline = time.time() + 15
        ok = False
        while time.time() < deadline and not ok:
            try:
                wl.call(w.flight_port, "f", wl.int_batch([1]), body["token"], host=w.host)
                ok = True
            except (flight.FlightError, pa.ArrowException):
                time.sleep(0.05)
        check(ok, "runsc: the next call works")
        check(w.status()["restarts"] == 1, "runsc: one restart")
        check(w.stop() == 0, "runsc: SIGTERM drains, exit 0")

    # Two processes behind the one Flight port, inside the sandbox.
    body = wl.structured(function="f", handler="f", input_types=["INT"], result_type="INT",
                         code="import os\ndef f(x):\n    return os.getpid()\n")
    w = sandboxed(processes=2)
    with w:
        w.specialize(body)
        st = w.wait_state()
        check(st["state"] == "ready" and st["processes"] == 2, f"runsc 2 processes: {st}")
        pids = {wl.call(w.flight_port, "f", wl.int_batch([1]), body["token"],
                        host=w.host).column(0)[0].as_py() for _ in range(6)}
        check(len(pids) == 2, f"runsc 2 processes: calls reached {len(pids)} process(es)")

    # Nagle off on the accepted Flight connection: with it on, a reply's trailers wait for
    # the client's delayed ACK (40 ms) on every other call of a reused connection.
    body = wl.structured(function="f", handler="f", input_types=["INT"], result_type="INT",
                         code=NODELAY_CODE)
    w = sandboxed()
    with w:
        w.specialize(body)
        st = w.wait_state()
        got = wl.call(w.flight_port, "f", wl.int_batch([1]), body["token"],
                      host=w.host).column(0)[0].as_py() if st["state"] == "ready" else None
        check(got == 1, f"runsc: the accepted Flight connection has TCP_NODELAY (UDF saw {got}; "
                        "0 = Nagle on, -1 = no connection found)")

    w = sandboxed()
    with w:
        token = "script-token"
        body = {"function": "add_one", "tenant": "test_tenant", "token": token,
                "script": test_script.make_script(w.work_dir, "add_one", ["INT"], "INT",
                                                  "def add_one(x):\n    return x + 1\n")}
        t0 = time.time()
        w.specialize(body)
        st = w.wait_state()
        check(st["state"] == "ready",
              f"runsc script: ready in {1000 * (time.time() - t0):.0f} ms: {st['state']}")
        t = wl.call(w.flight_port, "add_one", wl.int_batch([1, 2]), token, host=w.host)
        check(t.column(0).to_pylist() == [2, 3] and not t.schema.field(0).nullable,
              "runsc script: values, NOT NULL")
    if failures:
        print(f"{len(failures)} failure(s)")
        return 1
    print("all passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
