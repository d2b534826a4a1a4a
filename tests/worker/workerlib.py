"""Helpers for the worker's integration tests: start udf-worker as a plain process (or under
runsc), specialize it over its control API, and call it like a Databend query node does."""

import hashlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

import pyarrow as pa
import pyarrow.flight as flight

SOURCE_DIR = os.environ.get("UDF_SOURCE_DIR") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD_DIR = os.environ.get("UDF_BUILD_DIR") or os.path.join(SOURCE_DIR, "build")
# UDF_WORKER_BINARY: another build of it, e.g. udf-worker-san (the *_san tests).
WORKER = os.environ.get("UDF_WORKER_BINARY") or os.path.join(BUILD_DIR, "worker", "udf-worker")
RUNTIME_DIR = os.path.join(SOURCE_DIR, "worker", "python")
PYTHON = sys.executable
CACHE = os.environ.get("UDF_SANDBOX_CACHE") or os.path.join(
    os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "udf-sandbox")
RUNSC = os.path.join(CACHE, "bin", "runsc")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Worker:
    """One udf-worker process with private ports and directories."""

    def __init__(self, processes=1, zygote=True, extra_args=(), control_token=None, env=None,
                 control_sha256=False):
        self.dir = tempfile.mkdtemp(prefix="udf-worker-test-")
        self.control_port = free_port()
        self.flight_port = free_port()
        self.status_port = free_port()
        self.host = "127.0.0.1"
        self.control_token = control_token or secrets.token_hex(16)
        self.token_file = os.path.join(self.dir, "control-token")
        if control_sha256:  # as in a pod: only the token's hash on disk
            self.token_file = os.path.join(self.dir, "control-token-sha256")
            with open(self.token_file, "w") as f:
                f.write(hashlib.sha256(self.control_token.encode()).hexdigest() + "\n")
        else:
            with open(self.token_file, "w") as f:
                f.write(self.control_token + "\n")
        self.work_dir = os.path.join(self.dir, "app")
        self.cache_dir = os.path.join(self.dir, "cache")
        self.log_path = os.path.join(self.dir, "worker.log")
        self.args = [
            WORKER,
            f"--control-bind-address=127.0.0.1:{self.control_port}",
            f"--flight-port={self.flight_port}",
            f"--status-port={self.status_port}",
            (f"--control-token-sha256-file={self.token_file}" if control_sha256 else
             f"--control-token-file={self.token_file}"),
            f"--work-dir={self.work_dir}",
            f"--python={PYTHON}",
            f"--processes={processes}",
            f"--cache-dir={self.cache_dir}",
            f"--run-dir={os.path.join(self.dir, 'run')}",
            f"--runtime-dir={RUNTIME_DIR}",
            *([] if zygote else ["--no-zygote"]),
            *extra_args,
        ]
        self.env = env  # None: ours
        self.proc = None

    def start(self):
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(self.args, stdout=self.log, stderr=subprocess.STDOUT,
                                     env=self.env)
        self.wait_http()
        return self

    def wait_http(self, timeout=20):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"udf-worker exited: {self.proc.returncode}\n{self.logs()}")
            try:
                status, _ = self.request("GET", "/healthz", auth=False)
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.02)
        raise RuntimeError("udf-worker did not answer /healthz\n" + self.logs())

    def logs(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")[-6000:]
        except OSError:
            return ""

    def request(self, method, path, body=None, auth=True, token=None, port=None, raw=None):
        url = f"http://{self.host}:{port or self.control_port}{path}"
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None
                                            else None)
        req = urllib.request.Request(url, data=data, method=method)
        if auth:
            req.add_header("Authorization", f"Bearer {token or self.control_token}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def specialize(self, body):
        status, text = self.request("POST", "/v1/specialize", body)
        return status, (json.loads(text) if text else None)

    def status(self):
        status, text = self.request("GET", "/v1/status")
        assert status == 200, (status, text)
        return json.loads(text)

    def wait_state(self, states=("ready", "failed"), timeout=60):
        deadline = time.time() + timeout
        st = None
        while time.time() < deadline:
            st = self.status()
            if st["state"] in states:
                return st
            time.sleep(0.01)
        raise AssertionError(f"worker stuck in {st}\n{self.logs()}")

    def stop(self, timeout=30):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc:
            self.log.close()
        return self.proc.returncode if self.proc else None

    def cleanup(self):
        self.stop()
        logs = self.logs()
        shutil.rmtree(self.dir, ignore_errors=True)
        # A sanitizer build (make sanitize) reports into the worker's log: fail loudly.
        for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"):
            if marker in logs:
                raise AssertionError(f"udf-worker log has {marker!r}:\n{logs}")

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        if exc[0] is not None:
            sys.stderr.write("---- worker log ----\n" + self.logs() + "\n")
        self.cleanup()


def structured(function="add_one", handler="add_one", input_types=("INT",), result_type="INT",
               code=None, tenant="test_tenant", token=None, imports=(), packages=(), env=None):
    return {
        "function": function,
        "tenant": tenant,
        "token": token or secrets.token_hex(16),
        "env": env or {},
        "spec": {
            "handler": handler,
            "input_types": list(input_types),
            "result_type": result_type,
            "code": code if code is not None else
            "def add_one(x):\n    return None if x is None else x + 1\n",
            "packages": list(packages),
            "imports": list(imports),
            "runtime_version": "3.12.2",
        },
    }


def databend_options(token, tenant="test_tenant", function="add_one", handler="add_one"):
    """Call options carrying the metadata a Databend query node sends."""
    headers = [
        (b"x-databend-tenant", tenant.encode()),
        (b"x-databend-function", function.encode()),
        (b"x-databend-function-handler", handler.encode()),
        (b"x-databend-query-id", b"q-0001"),
        (b"x-databend-user", b"'root'@'%'"),
    ]
    if token is not None:
        headers.append((b"x-authorization", token.encode()))
    return flight.FlightCallOptions(headers=headers, timeout=60)


def call(port, handler, batch, token, tenant="test_tenant", host="127.0.0.1", client=None):
    """One DoExchange like Databend's: descriptor path [handler], one batch in, all out."""
    own = client is None
    client = client or flight.connect(f"grpc://{host}:{port}")
    try:
        descriptor = flight.FlightDescriptor.for_path(handler)
        writer, reader = client.do_exchange(descriptor,
                                            options=databend_options(token, tenant,
                                                                     handler=handler))
        writer.begin(batch.schema)
        writer.write_batch(batch)
        writer.done_writing()
        table = reader.read_all()
        writer.close()
        return table
    finally:
        if own:
            client.close()


def int_batch(values, type_=pa.int32(), nullable=True):
    schema = pa.schema([pa.field("arg1", type_, nullable)])
    return pa.record_batch([pa.array(values, type=type_)], schema=schema)
