"""The memory a server process keeps between calls (worker/preload.c, "the arena cache", and
udf-worker's glibc settings). Without them a 65,536-row call of a Python UDF freed about 4 MiB
back to the kernel and faulted it in again on the next call (about 1,000 page faults per
call; under gVisor each one a round trip through the sentry).

- As a plain process, structured form with and without the zygote, and the script form: the
  server's arena allocator is libudf-preload.so's, its environment has glibc's settings, and
  50 calls of 65,536 rows cost fewer than 50 page faults per call (counted from /proc).
- Under runsc (`runsc --platform=systrap --network=sandbox do`), structured form: the same
  allocator inside gVisor (gVisor's /proc counts no faults, so the count is plain-only).
Fails when runsc is not built (`make prereqs` or hack/runsc.sh builds it)."""

import os
import sys

import pyarrow.flight as flight

import test_script
import workerlib as wl
from test_runsc import sandboxed

sys.path.insert(0, os.path.join(wl.SOURCE_DIR, "tests", "lib"))
from checks import check, finish  # noqa: E402

# x == 0: what this process keeps (1: arenas in libudf-preload.so's cache, 2: glibc's
# settings in its environment); x == 1: its pid; else x + 1.
CODE = """
import ctypes, os

class _Arena(ctypes.Structure):
    _fields_ = [("ctx", ctypes.c_void_p), ("alloc", ctypes.c_void_p), ("free", ctypes.c_void_p)]

def kept():
    a = _Arena()
    ctypes.pythonapi.PyObject_GetArenaAllocator(ctypes.byref(a))
    try:
        ours = ctypes.cast(ctypes.CDLL(None).udf_arena_alloc, ctypes.c_void_p).value
    except AttributeError:
        ours = None
    glibc = all(os.environ.get(k) for k in
                ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_"))
    return (1 if ours and a.alloc == ours else 0) | (2 if glibc else 0)

def f(x):
    if x == 0:
        return kept()
    if x == 1:
        return os.getpid()
    return x + 1
"""

ROWS = 65536
CALLS = 50
MAX_FAULTS_PER_CALL = 50


def minor_faults(pid):
    with open(f"/proc/{pid}/stat") as f:
        stat = f.read()
    return int(stat[stat.rindex(")") + 2:].split()[7])


def one(w, token, label, count_faults):
    st = w.wait_state()
    check(st["state"] == "ready", f"{label}: ready ({st['state']}: {st.get('reason')})")
    if st["state"] != "ready":
        return

    def value(x):
        return wl.call(w.flight_port, "f", wl.int_batch([x]), token,
                       host=w.host).column(0)[0].as_py()

    kept = value(0)
    check(kept & 1, f"{label}: pymalloc's arenas go to libudf-preload.so's cache (saw {kept})")
    check(kept & 2, f"{label}: glibc's MALLOC_* settings are in the server's environment")
    if not count_faults:
        return
    pid = value(1)
    batch = wl.int_batch(list(range(2, ROWS + 2)))
    client = flight.connect(f"grpc://{w.host}:{w.flight_port}")
    for _ in range(5):  # the first calls grow what is kept
        wl.call(w.flight_port, "f", batch, token, host=w.host, client=client)
    before = minor_faults(pid)
    for _ in range(CALLS):
        t = wl.call(w.flight_port, "f", batch, token, host=w.host, client=client)
    per_call = (minor_faults(pid) - before) / CALLS
    client.close()
    check(t.num_rows == ROWS and t.column(0)[0].as_py() == 3, f"{label}: values")
    check(per_call < MAX_FAULTS_PER_CALL,
          f"{label}: {per_call:.1f} page faults per {ROWS}-row call "
          f"(< {MAX_FAULTS_PER_CALL}; about 1,000 without the cache)")


def main():
    body = wl.structured(function="f", handler="f", input_types=["INT"], result_type="INT",
                         code=CODE)
    for zygote in (True, False):
        with wl.Worker(zygote=zygote) as w:
            w.specialize(body)
            one(w, body["token"], f"plain, structured, zygote {'on' if zygote else 'off'}",
                True)

    with wl.Worker() as w:
        w.specialize({"function": "f", "tenant": "test_tenant", "token": body["token"],
                      "env": {},
                      "script": test_script.make_script(w.work_dir, "f", ["INT"], "INT", CODE)})
        one(w, body["token"], "plain, script form", True)

    if not os.access(wl.RUNSC, os.X_OK):
        check(False, f"runsc is not built: no executable {wl.RUNSC}; run `make prereqs` "
                     "(or hack/runsc.sh) first")
        return finish()
    w = sandboxed()
    with w:
        w.specialize(body)
        one(w, body["token"], "runsc, structured", False)
    return finish()


if __name__ == "__main__":
    sys.exit(main())
