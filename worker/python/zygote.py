"""The warm Python that udf-worker keeps while idle.

It imports pyarrow, pyarrow.flight, databend-udf and udf_stub once, then waits on the unix
socket udf-worker gave it (fd UDF_WORKER_ZYGOTE_FD). For each request -- JSON
{"args": [...], "env": ["K=V", ...], "cwd": DIR} with two file descriptors (stdout/stderr,
ready pipe) -- it double-forks so the server process becomes udf-worker's child (the worker is
a subreaper), and answers "pid N". The zygote itself never loads user code.
"""

import ctypes
import gc
import json
import os
import signal
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import decimal  # noqa: E402,F401 - warm the modules every UDF call touches
import datetime  # noqa: E402,F401

import pyarrow  # noqa: E402,F401
import pyarrow.flight  # noqa: E402,F401
import databend_udf  # noqa: E402,F401
import databend_udf.udf  # noqa: E402,F401

import udf_stub  # noqa: E402

udf_stub.keep_arenas()  # before the forks: every server inherits it

PR_SET_PDEATHSIG = 1


def _set_pdeathsig():
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except OSError:
        pass


def _run_server(req, fds, intermediate, t_request):
    udf_stub.STARTUP["request"] = t_request
    udf_stub.STARTUP["forked"] = time.time()
    if intermediate is not None:
        _wait_reparented(intermediate)
    _set_pdeathsig()
    os.setpgid(0, 0)
    out_fd, ready_fd = fds
    os.dup2(out_fd, 1)
    os.dup2(out_fd, 2)
    os.dup2(ready_fd, 3)
    os.set_inheritable(3, True)
    for fd in fds:
        if fd not in (1, 2, 3):
            os.close(fd)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    os.environ.clear()
    for item in req.get("env", []):
        key, _, value = item.partition("=")
        os.environ[key] = value
    os.chdir(req.get("cwd") or "/")
    args = req.get("args", [])
    sys.argv = [udf_stub.__file__, *args]
    code = 1
    try:
        code = udf_stub.main(args) or 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:  # noqa: BLE001
        import traceback

        traceback.print_exc()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _fork_detached(child):
    """Double-forks child() into a process that becomes the worker's child; returns its pid."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        me = os.getpid()
        grandchild = os.fork()
        if grandchild == 0:
            os.close(w)
            try:
                child(me)
            finally:
                os._exit(1)
        os.write(w, str(grandchild).encode())
        os._exit(0)
    os.close(w)
    data = os.read(r, 32)
    os.close(r)
    os.waitpid(pid, 0)
    return int(data) if data else None


def _wait_reparented(intermediate):
    # Wait until the intermediate has exited and we belong to the worker.
    deadline = time.monotonic() + 5
    while os.getppid() == intermediate and time.monotonic() < deadline:
        time.sleep(0.0005)


def _rename_argv(old, new):
    """Rewrites this process's command line in place (what /proc/PID/cmdline and ps show),
    `old` -> `new`, same length: the spare must not look like a second zygote to whoever
    looks for the zygote among the worker's children. A no-op where the kernel does not give
    the arguments' address (fields 48-49 of /proc/self/stat)."""
    try:
        with open("/proc/self/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        start, end = int(fields[45]), int(fields[46])
        if not start or end <= start or len(old) != len(new):
            return
        area = (ctypes.c_char * (end - start)).from_address(start)
        at = area.raw.find(old)
        if at >= 0:
            ctypes.memmove(start + at, new, len(new))
    except (OSError, ValueError, IndexError):
        pass


class _Spare:
    """A server process forked ahead of time, waiting for its request.

    Forking a Python that has pyarrow loaded costs 50-90 ms under gVisor (the sentry copies
    the address space twice: the double fork), against a few ms on Linux; done while the pod
    idles, it leaves the first server's startup path. It waits on its end of a socketpair and
    exits when the zygote goes (the socket closes) or the worker does (PDEATHSIG).
    """

    def __init__(self, worker_sock):
        self.sock, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)

        def child(intermediate):
            worker_sock.close()
            self.sock.close()
            _wait_reparented(intermediate)
            _rename_argv(b"zygote.py", b"spare.py\0")
            udf_stub.warm_up()
            theirs.send(b"up")
            try:
                msg, fds, _, _ = socket.recv_fds(theirs, 1 << 20, 2)
            except OSError:
                os._exit(0)
            if not msg or len(fds) != 2:
                os._exit(0)
            t_request, _, msg = msg.partition(b"\n")
            _rename_argv(b"spare.py\0", b"zygote.py")
            _run_server(json.loads(msg), fds, None, float(t_request))

        self.pid = _fork_detached(child)
        theirs.close()
        # Until it says "up" it still looks like the zygote and is warming up: the zygote
        # reports ready (and takes requests) after that.
        self.sock.settimeout(10)
        try:
            self.sock.recv(8)
        except OSError:
            pass
        self.sock.settimeout(None)

    def hand(self, msg, fds, t_request):
        """Gives the request to the spare; False when it is gone (then fork as usual)."""
        try:
            socket.send_fds(self.sock, [b"%f\n" % t_request + msg], fds)
            return True
        except OSError:
            return False
        finally:
            self.sock.close()


def main():
    fd = int(os.environ.pop("UDF_WORKER_ZYGOTE_FD"))
    sock = socket.socket(fileno=fd)
    _set_pdeathsig()
    # Objects imported so far are never collected: keep the collector off their pages, so a
    # forked server does not copy them (each first write to a page is a fault, and under
    # gVisor's systrap platform a costly one).
    gc.freeze()
    spare = _Spare(sock)
    sock.send(b"ready")
    while True:
        try:
            if spare is None:
                sock.settimeout(0.5)  # quiet for a while: make the next spare
            msg, fds, _, _ = socket.recv_fds(sock, 1 << 20, 2)
        except TimeoutError:
            sock.settimeout(None)
            spare = _Spare(sock)
            continue
        except (ConnectionError, OSError):
            return 0
        sock.settimeout(None)
        t_request = time.time()
        if not msg:
            return 0  # the worker is gone
        try:
            req = json.loads(msg)
            if len(fds) != 2:
                raise ValueError("expected two file descriptors")
        except ValueError as exc:
            for f in fds:
                os.close(f)
            sock.send(f"error {exc}".encode())
            continue
        pid = None
        if spare is not None:
            if spare.hand(msg, fds, t_request):
                pid = spare.pid
            spare = None
        if pid is None:
            pid = _fork_detached(lambda me: (sock.close(), _run_server(req, fds, me, t_request)))
        for f in fds:
            os.close(f)
        sock.send(b"pid %d" % pid if pid else b"error fork failed")


if __name__ == "__main__":
    sys.exit(main())
