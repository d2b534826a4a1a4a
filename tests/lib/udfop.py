"""Runs the real operator binary for tests, on free loopback ports.

    with OperatorProcess(kubeconfig) as op:
        channel = grpc.insecure_channel(op.grpc_address)

The binary is the ASan + UBSan build (build/operator/udf-operator-san) unless
UDF_OPERATOR_BINARY names another (the gRPC concurrency test runs udf-operator-tsan once). Any
sanitizer report in the operator's output fails the test when the operator is stopped, a leak
report at exit included.
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


# What the sanitizers print: a report in the log is a failed test, whatever the exit code.
SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                     "WARNING: ThreadSanitizer", "ERROR: ThreadSanitizer",
                     "Sanitizer has encountered a fatal error")
# halt_on_error: the first ASan/UBSan report ends the process (and the test); TSan reports
# every race it sees and exits 66 at the end. The suppressions name races inside uninstrumented
# libraries (tests/grpc/tsan.supp says why each one is there).
SANITIZER_ENV = {
    # A 64 MiB quarantine (default 256) keeps the resident set of a test that measures it
    # meaningful while still catching a use after free of any recent allocation.
    "ASAN_OPTIONS": "detect_leaks=1:halt_on_error=1:abort_on_error=0:quarantine_size_mb=64",
    "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1",
    "TSAN_OPTIONS": "halt_on_error=0:exitcode=66:second_deadlock_stack=1:suppressions="
                    + os.path.join(SOURCE_DIR, "tests", "grpc", "tsan.supp"),
}


def operator_binary():
    """$UDF_OPERATOR_BINARY, else the ASan + UBSan build; missing is an error, not a fallback."""
    path = os.environ.get("UDF_OPERATOR_BINARY") or os.path.join(BUILD_DIR, "operator",
                                                                 "udf-operator-san")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} is not built (run `make`)")
    return path


def operator_env():
    """The environment the operator runs in: this one plus the sanitizers' options."""
    return {**os.environ, **SANITIZER_ENV}


def sanitizer_reports(text):
    """The lines of text that are a sanitizer's report."""
    return [line for line in text.splitlines() if any(m in line for m in SANITIZER_MARKERS)]


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class OperatorProcess:
    def __init__(self, kubeconfig, *extra_args, nofile=None):
        """nofile: the operator's RLIMIT_NOFILE as (soft, hard), to run out of descriptors."""
        self.nofile = nofile
        self.grpc_port = free_port()
        self.http_port = free_port()
        self.grpc_address = f"127.0.0.1:{self.grpc_port}"
        self.http_address = f"127.0.0.1:{self.http_port}"
        self.log = tempfile.NamedTemporaryFile(prefix="udf-operator-", suffix=".log", delete=False)
        if not any(a.startswith("--pool-selector") for a in extra_args):
            # The cluster is shared: a test's operator reconciles no pool it did not ask for.
            extra_args = (*extra_args, "--pool-selector", f"udf.sandbox.io/test-pools=none-{os.getpid()}")
        if not any(a.startswith("--tenant-namespace-labels") for a in extra_args):
            # The tenant namespaces it creates are a test's: an operator installed by
            # `make run` (--function-namespace-selector !udf-test-run) leaves their functions alone.
            extra_args = (*extra_args, "--tenant-namespace-labels", f"udf-test-run=op-{os.getpid()}")
        if not any(a.startswith(("--function-namespace-selector", "--controllers")) for a in extra_args):
            # ... and no function outside the namespaces it asked for.
            extra_args = (*extra_args, "--function-namespace-selector",
                          f"udf.sandbox.io/test-functions=none-{os.getpid()}")
        self.args = [operator_binary(), "--kubeconfig", kubeconfig,
                     "--grpc-bind-address", self.grpc_address,
                     "--health-bind-address", self.http_address, *extra_args]
        self.proc = None

    def __enter__(self):
        limit = None
        if self.nofile:
            import resource
            limit = lambda: resource.setrlimit(resource.RLIMIT_NOFILE, self.nofile)  # noqa: E731
        self.proc = subprocess.Popen(self.args, stdout=self.log, stderr=subprocess.STDOUT,
                                     env=operator_env(), preexec_fn=limit)
        return self

    def stop(self, timeout=30, check=True):
        """SIGTERM, then wait; returns the exit code (SIGKILL and None if it hung). With check,
        raises AssertionError (printing the log) if a sanitizer reported anything."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                return None
        if check:
            self.check_sanitizers()
        return self.proc.returncode

    def check_sanitizers(self):
        reports = sanitizer_reports(self.output())
        if reports:
            print("---- operator log ----")
            print(self.output())
            raise AssertionError(f"sanitizer report in the operator's log: {reports[0]}")

    def __exit__(self, *exc):
        # A test that already failed keeps its own exception; the log shows any report.
        self.stop(check=exc[0] is None)
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
