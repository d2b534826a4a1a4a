"""Crashes and cores: a UDF that calls os.abort() or segfaults costs the calls in flight, not
the pod; the worker restarts the process and the next call works. With --processes 2 both
processes serve behind the one Flight port. A UDF's exception reaches the caller unchanged.
SIGTERM drains and exits."""

import os
import sys
import time

import pyarrow as pa
import pyarrow.flight as flight

import workerlib as wl

failures = []

CODE = """
import ctypes, os
def f(x):
    if x == -1:
        os.abort()
    if x == -2:
        ctypes.string_at(0)
    if x == -3:
        raise ValueError("negative three is not allowed")
    return os.getpid()
"""


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)


def call_until_ok(w, token, timeout=10):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            return wl.call(w.flight_port, "f", wl.int_batch([1]), token), last
        except (flight.FlightError, pa.ArrowException) as e:
            last = e
            time.sleep(0.05)
    raise AssertionError(f"no successful call within {timeout}s: {last}")


def scenario(processes, zygote):
    label = f"processes={processes} zygote={zygote}"
    body = wl.structured(function="f", handler="f", input_types=["INT"],
                         result_type="INT", code=CODE)
    with wl.Worker(processes=processes, zygote=zygote) as w:
        w.specialize(body)
        st = w.wait_state()
        check(st["state"] == "ready" and st["processes"] == processes, f"{label}: ready {st}")
        # Separate connections spread over the processes.
        pids = set()
        for _ in range(4 * processes):
            t = wl.call(w.flight_port, "f", wl.int_batch([1]), body["token"])
            pids.add(t.column(0)[0].as_py())
        check(len(pids) == processes, f"{label}: calls reached {len(pids)} process(es)")

        try:
            wl.call(w.flight_port, "f", wl.int_batch([-3]), body["token"])
            check(False, f"{label}: exception call succeeded")
        except (flight.FlightError, pa.ArrowException) as e:
            check("negative three is not allowed" in str(e),
                  f"{label}: the UDF's exception message reaches the caller")

        for bad, what in ((-1, "os.abort()"), (-2, "segfault")):
            t0 = time.time()
            try:
                wl.call(w.flight_port, "f", wl.int_batch([bad]), body["token"])
                check(False, f"{label}: {what} call succeeded")
            except (flight.FlightError, pa.ArrowException):
                check(True, f"{label}: the {what} call fails")
            t, err = call_until_ok(w, body["token"])
            check(t.num_rows == 1, f"{label}: next call works after {what} "
                                   f"({1000 * (time.time() - t0):.0f} ms)")
        st = w.wait_state()
        deadline = time.time() + 10
        while st["processes"] < processes and time.time() < deadline:
            time.sleep(0.05)
            st = w.status()
        check(st["state"] == "ready" and st["restarts"] == 2 and st["processes"] == processes,
              f"{label}: restarts counted, all serving again: {st}")
        t0 = time.time()
        code = w.stop()
        check(code == 0 and time.time() - t0 < 10,
              f"{label}: SIGTERM drains, exit {code} in {time.time() - t0:.1f}s")


def zombies_of(pid):
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] == "Z" and int(fields[1]) == pid:
            out.append(int(entry))
    return out


def reaping():
    """Orphans the UDF leaves behind are re-parented to the worker and reaped."""
    code = ("import os, time\n"
            "def f(x):\n"
            "    for _ in range(5):\n"
            "        if os.fork() == 0:\n"
            "            if os.fork() == 0:\n"
            "                time.sleep(0.2)\n"
            "                os._exit(0)\n"
            "            os._exit(0)\n"
            "    return x\n")
    body = wl.structured(function="f", handler="f", input_types=["INT"], result_type="INT",
                         code=code)
    with wl.Worker() as w:
        w.specialize(body)
        check(w.wait_state()["state"] == "ready", "reaping: ready")
        wl.call(w.flight_port, "f", wl.int_batch([1]), body["token"])
        time.sleep(1.5)
        z = zombies_of(w.proc.pid)
        check(not z, f"reaping: no zombie children of the worker ({z})")
        check(w.status()["restarts"] == 0, "reaping: orphans are not mistaken for servers")


def main():
    reaping()
    scenario(1, True)
    scenario(2, True)
    scenario(1, False)
    if failures:
        print(f"{len(failures)} failure(s)")
        return 1
    print("all passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
