"""Runs bin/udf-operator (the real binary) for tests, on free loopback ports.

    with OperatorProcess(kubeconfig) as op:
        channel = grpc.insecure_channel(op.grpc_address)
"""

import os
import signal
import socket
import subprocess
import tempfile
import time

SOURCE_DIR = os.environ.get(
    "UDF_SOURCE_DIR", os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
)
BUILD_DIR = os.environ.get("UDF_BUILD_DIR", os.path.join(SOURCE_DIR, "build"))


def operator_binary():
    built = os.path.join(BUILD_DIR, "operator", "udf-operator")
    return built if os.path.exists(built) else os.path.join(SOURCE_DIR, "bin", "udf-operator")


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class OperatorProcess:
    def __init__(self, kubeconfig, *extra_args):
        self.grpc_port = free_port()
        self.http_port = free_port()
        self.grpc_address = f"127.0.0.1:{self.grpc_port}"
        self.http_address = f"127.0.0.1:{self.http_port}"
        self.log = tempfile.NamedTemporaryFile(prefix="udf-operator-", suffix=".log", delete=False)
        if not any(a.startswith("--pool-selector") for a in extra_args):
            # The cluster is shared: a test's operator reconciles no pool it did not ask for.
            extra_args = (*extra_args, "--pool-selector", f"udf.sandbox.io/test-pools=none-{os.getpid()}")
        if not any(a.startswith(("--function-namespace-selector", "--controllers")) for a in extra_args):
            # ... and no function outside the namespaces it asked for.
            extra_args = (*extra_args, "--function-namespace-selector",
                          f"udf.sandbox.io/test-functions=none-{os.getpid()}")
        self.args = [operator_binary(), "--kubeconfig", kubeconfig,
                     "--grpc-bind-address", self.grpc_address,
                     "--health-bind-address", self.http_address, *extra_args]
        self.proc = None

    def __enter__(self):
        self.proc = subprocess.Popen(self.args, stdout=self.log, stderr=subprocess.STDOUT)
        return self

    def stop(self, timeout=15):
        """SIGTERM, then wait; returns the exit code (SIGKILL and None if it hung)."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None

    def __exit__(self, *exc):
        self.stop()
        if exc[0] is not None:
            print("---- operator log ----")
            print(self.output())

    def output(self):
        with open(self.log.name, encoding="utf-8", errors="replace") as f:
            return f.read()


def wait_for(predicate, timeout, interval=0.1, what="condition"):
    """Polls predicate() until it returns a truthy value; raises AssertionError on timeout."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
            if last:
                return last
        except Exception as e:  # the thing polled may not be up yet
            last = e
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")
