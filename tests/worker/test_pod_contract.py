"""The worker's side of the pod contract (worker/README.md, "Pod contract"), as a plain
process: --control-token-sha256-file authenticates by the token's hash, re-read on every call
and with a trailing newline tolerated; the worker refuses both token flags at once; GET
/readyz needs no token and is 503 until the zygote is warm, 200 while idle and warm, 503 while
specializing, 200 once serving, 503 once failed; children get a writable HOME when the
worker's is not; the script form's `python -m pip install` (from a local index) lands in the
work directory's .packages, on the UDF's path."""

import hashlib
import http.server
import os
import secrets
import subprocess
import sys
import threading
import time

import test_script
import wheels
import workerlib as wl

failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)


def hashed_worker(token, **kw):
    w = wl.Worker(**kw)
    w.control_token = token
    w.hash_file = os.path.join(w.dir, "token-sha256")
    with open(w.hash_file, "w") as f:
        f.write(hashlib.sha256(token.encode()).hexdigest() + "\n")
    os.unlink(w.token_file)  # the worker must not need the token itself
    w.args = [a for a in w.args if not a.startswith("--control-token-file=")]
    w.args.append(f"--control-token-sha256-file={w.hash_file}")
    return w


def readyz(w):
    status, body = w.request("GET", "/readyz", auth=False)
    return status, body.decode(errors="replace")


def wait_readyz(w, want, timeout=30):
    deadline = time.time() + timeout
    status = None
    while time.time() < deadline:
        status, _ = readyz(w)
        if status == want:
            return True
        time.sleep(0.02)
    print(f"/readyz stayed {status}, wanted {want}\n{w.logs()}")
    return False


def main():
    # Both token flags at once: refused before anything starts.
    r = subprocess.run([wl.WORKER, "--control-token-file=/x", "--control-token-sha256-file=/y"],
                       capture_output=True, text=True, timeout=10)
    check(r.returncode == 2 and "not both" in r.stderr,
          f"both token flags refused: {r.returncode} {r.stderr.strip()!r}")

    token = secrets.token_urlsafe(24)
    w = hashed_worker(token)
    with w:
        # The zygote imports pyarrow for a while: not ready until it is warm.
        status, body = readyz(w)
        st = w.status()
        check(status == 503 or st["zygote"],
              f"/readyz before the zygote is warm: {status} {body!r} (zygote {st['zygote']})")
        check(wait_readyz(w, 200), "/readyz 200 once the zygote is warm, without a token")
        check(w.status()["zygote"] and w.status()["state"] == "idle",
              "ready means idle with a warm zygote")
        status, _ = w.request("POST", "/readyz", auth=False)
        check(status == 405, f"POST /readyz -> {status}")

        status, _ = w.request("GET", "/v1/status")
        check(status == 200, f"the right token (hash file) -> {status}")
        for bad, what in ((token + "x", "a longer token"), (token[:-1], "a shorter token"),
                          (hashlib.sha256(token.encode()).hexdigest(), "the hash itself")):
            status, _ = w.request("GET", "/v1/status", token=bad)
            check(status == 401, f"{what} -> {status}")
        status, _ = w.request("GET", "/v1/status", auth=False)
        check(status == 401, f"no token -> {status}")

        # Re-read on every call: a new hash takes effect at once.
        token2 = secrets.token_urlsafe(24)
        with open(w.hash_file, "w") as f:
            f.write(hashlib.sha256(token2.encode()).hexdigest().upper())
        status, _ = w.request("GET", "/v1/status", token=token2)
        check(status == 200, f"rotated hash (upper case, no newline) -> {status}")
        status, _ = w.request("GET", "/v1/status", token=token)
        check(status == 401, f"the old token after rotation -> {status}")
        with open(w.hash_file, "w") as f:
            f.write("not-a-hash\n")
        status, _ = w.request("GET", "/v1/status", token=token2)
        check(status == 401, f"a malformed hash file -> {status}")
        os.unlink(w.hash_file)
        status, _ = w.request("GET", "/v1/status", token=token2)
        check(status == 401, f"a missing hash file -> {status}")
        with open(w.hash_file, "w") as f:
            f.write(hashlib.sha256(token.encode()).hexdigest() + "\n")

        # A UDF that sleeps while loading keeps the worker specializing: 503 meanwhile.
        code = ("import time, os\ntime.sleep(1.5)\n"
                "def f(x):\n    return os.environ['HOME']\n")
        body = wl.structured(function="f", handler="f", input_types=["INT"],
                             result_type="VARCHAR", code=code)
        status, _ = w.specialize(body)
        check(status == 202, f"specialize with the hashed token -> {status}")
        status, _ = readyz(w)
        check(status == 503, f"/readyz while specializing -> {status}")
        st = w.wait_state()
        check(st["state"] == "ready", f"specialized: {st}")
        status, _ = readyz(w)
        check(status == 200, f"/readyz once serving -> {status}")
        t = wl.call(w.flight_port, "f", wl.int_batch([1]), body["token"])
        home = os.environ["HOME"]
        want = home if os.access(home, os.W_OK) else os.path.join(w.dir, "run", "home")
        check(t.column(0).to_pylist() == [want],
              f"HOME is ours when writable, else one under the run dir: "
              f"{t.column(0).to_pylist()}")

    # A failed specialization: /readyz 503 for good.
    w = hashed_worker(token)
    with w:
        check(wait_readyz(w, 200), "second worker warm")
        w.specialize(wl.structured(code="raise RuntimeError('boom')\n"))
        st = w.wait_state()
        status, _ = readyz(w)
        check(st["state"] == "failed" and status == 503, f"/readyz once failed -> {status}")

    # --no-zygote has nothing to warm: ready while idle.
    w = hashed_worker(token, zygote=False)
    with w:
        status, _ = readyz(w)
        check(status == 200, f"/readyz idle without a zygote -> {status}")

    # An unwritable HOME (the image's, on a read-only root filesystem): children get one
    # under the run directory. The script form's pip lands in <work-dir>/.packages.
    ro_home = os.path.join(wl.CACHE, "no-such-home-for-udf-worker")
    w = hashed_worker(token, env=dict(os.environ, HOME=ro_home))
    with w:
        script = ("#!/usr/bin/env bash\nset -euo pipefail\n"
                  "python -c 'import os, sys; print(\"pip-target\", os.environ.get(\"PIP_TARGET\"),"
                  " \"home\", os.environ[\"HOME\"], os.path.isdir(os.environ[\"HOME\"]),"
                  " os.access(os.environ[\"HOME\"], os.W_OK), sys.path)'\n"
                  "exit 3\n")
        w.specialize({"function": "s", "tenant": "t", "token": "x", "script": script})
        w.wait_state()
        logs = w.logs()
        line = next((ln for ln in logs.splitlines() if "pip-target" in ln), "")
        packages = os.path.join(w.work_dir, ".packages")
        run_home = os.path.join(w.dir, "run", "home")
        check(f"pip-target {packages} " in line, f"script form: PIP_TARGET is {packages}")
        check(f"home {run_home} True True" in line,
              f"script form: HOME is the writable {run_home}")
        check(f"'{packages}'" in line, "script form: the .packages dir is on sys.path")

    # The script's own `python -m pip install` (from a local index) lands there and imports.
    index = http.server.ThreadingHTTPServer(("127.0.0.1", 0), IndexHandler)
    threading.Thread(target=index.serve_forever, daemon=True).start()
    env = dict(os.environ, PIP_INDEX_URL=f"http://127.0.0.1:{index.server_address[1]}/simple/",
               PIP_TRUSTED_HOST="127.0.0.1")
    w = hashed_worker(token, env=env)
    with w:
        code = "import tinypkg\ndef f(x):\n    return tinypkg.VALUE + '|' + tinypkg.__file__\n"
        script = (test_script.make_script(w.work_dir, "f", ["INT"], "VARCHAR", code)
                  .replace("exec python", "python -m pip install --no-input tinypkg==1.0\n"
                                          "exec python"))
        w.specialize({"function": "f", "tenant": "test_tenant", "token": "tok",
                      "script": script})
        st = w.wait_state(timeout=120)
        check(st["state"] == "ready", f"script form with pip install: {st}")
        if st["state"] != "ready":
            print(w.logs())
        if st["state"] == "ready":
            got = wl.call(w.flight_port, "f", wl.int_batch([1]), "tok").column(0).to_pylist()
            where = os.path.join(w.work_dir, ".packages", "tinypkg")
            check(got == [f"tiny|{where}/__init__.py"],
                  f"script form: pip installed into {where}, importable: {got}")
    index.shutdown()
    return 0 if not failures else 1




INDEX = wheels.tiny_index()


class IndexHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        data = INDEX.get(self.path)
        if data is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/html" if self.path.endswith("/")
                         else "application/octet-stream")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    rc = main()
    print(f"{len(failures)} failure(s)" if failures else "all passed")
    sys.exit(rc)
