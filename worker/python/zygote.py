"""The warm Python that udf-worker keeps while idle.

It imports pyarrow, pyarrow.flight, databend-udf and udf_stub once, then waits on the unix
socket udf-worker gave it (fd UDF_WORKER_ZYGOTE_FD). For each request -- JSON
{"args": [...], "env": ["K=V", ...], "cwd": DIR} with two file descriptors (stdout/stderr,
ready pipe) -- it double-forks so the server process becomes udf-worker's child (the worker is
a subreaper), and answers "pid N". The zygote itself never loads user code.
"""

import ctypes
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
    # Wait until the intermediate has exited and we belong to the worker.
    deadline = time.monotonic() + 5
    while os.getppid() == intermediate and time.monotonic() < deadline:
        time.sleep(0.0005)
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


def main():
    fd = int(os.environ.pop("UDF_WORKER_ZYGOTE_FD"))
    sock = socket.socket(fileno=fd)
    _set_pdeathsig()
    sock.send(b"ready")
    while True:
        try:
            msg, fds, _, _ = socket.recv_fds(sock, 1 << 20, 2)
            t_request = time.time()
        except (ConnectionError, OSError):
            return 0
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
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            sock.close()
            me = os.getpid()
            grandchild = os.fork()
            if grandchild == 0:
                os.close(w)
                _run_server(req, fds, me, t_request)
            os.write(w, str(grandchild).encode())
            os._exit(0)
        os.close(w)
        data = os.read(r, 32)
        os.close(r)
        os.waitpid(pid, 0)
        for f in fds:
            os.close(f)
        sock.send(b"pid " + data if data else b"error fork failed")


if __name__ == "__main__":
    sys.exit(main())
