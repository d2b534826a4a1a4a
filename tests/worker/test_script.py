"""The script form: udf-worker runs a Databend-style bash script (writes the code and a server
stub through quoted heredocs, then `exec python server.py`). The worker's sitecustomize hook
must add the token and tenant check to the script's own databend-udf server, read the bare
types the stub passes as NOT NULL, and replace the row path. With --processes 2 the second
process runs the same Python command line."""

import json
import sys
import time

import pyarrow as pa
import pyarrow.flight as flight

import workerlib as wl

failures = []

STUB = r'''
import importlib, os, sys, threading, json, time
from http.server import BaseHTTPRequestHandler, HTTPServer
from databend_udf import UDFServer, udf as make_udf

IMPORTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "imports")
sys._xoptions["databend_import_directory"] = IMPORTS
COUNT = {"n": 0}

class Status(BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"1" if self.path == "/health" else json.dumps({"request_count": COUNT["n"]}).encode()
        self.send_response(200)
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass

def status_server():
    host, port = os.getenv("RESOURCE_STATUS_ADDR", "0.0.0.0:8080").rsplit(":", 1)
    HTTPServer((host, int(port)), Status).serve_forever()

def main():
    threading.Thread(target=status_server, daemon=True).start()
    if os.path.isdir(IMPORTS):
        sys.path.insert(0, IMPORTS)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    code = importlib.import_module("udf")
    server = UDFServer(location=os.getenv("UDF_SERVER_ADDR", "0.0.0.0:8815"))
    fn = getattr(code, "HANDLER")
    if not hasattr(fn, "_name"):
        fn = make_udf(name="HANDLER", input_types=INPUTS, result_type="RESULT")(fn)
    server.add_function(fn)
    server.serve()

if __name__ == "__main__":
    main()
'''


def make_script(app, handler, inputs, result, code):
    stub = (STUB.replace("HANDLER", handler).replace("INPUTS", json.dumps(inputs))
            .replace("RESULT", result))
    return f"""#!/usr/bin/env bash
set -euo pipefail
cd {app}
mkdir -p {app}/imports
cat > {app}/udf.py <<'UDF_CODE_EOF'
{code}
UDF_CODE_EOF
cat > {app}/server.py <<'UDF_SERVER_EOF'
{stub}
UDF_SERVER_EOF
exec python {app}/server.py
"""


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)


def main():
    code = "import os\ndef add_one(x):\n    return x + 1\n\ndef pid(x):\n    return os.getpid()\n"
    for processes in (1, 2):
        label = f"script, processes={processes}"
        w = wl.Worker(processes=processes)
        with w:
            token = "tok-" + str(processes)
            body = {"function": "add_one", "tenant": "test_tenant", "token": token,
                    "env": {}, "script": make_script(w.work_dir, "add_one", ["INT"], "INT", code)}
            t0 = time.time()
            status, reply = w.specialize(body)
            check(status == 202, f"{label}: specialize -> {status} {reply}")
            st = w.wait_state()
            check(st["state"] == "ready" and st["processes"] == processes,
                  f"{label}: ready in {1000 * (time.time() - t0):.0f} ms: {st}")
            values = list(range(65536))
            t = wl.call(w.flight_port, "add_one", wl.int_batch(values), token)
            check(t.column(0).to_pylist() == [v + 1 for v in values], f"{label}: values")
            check(t.schema.field(0).nullable is False,
                  f"{label}: bare INT from the script's stub is NOT NULL on the wire")
            for tok, tenant, what in ((None, "test_tenant", "no token"),
                                      ("wrong", "test_tenant", "wrong token"),
                                      (token, "other", "wrong tenant")):
                try:
                    wl.call(w.flight_port, "add_one", wl.int_batch([1]), tok, tenant=tenant)
                    check(False, f"{label}: {what} accepted")
                except flight.FlightUnauthenticatedError:
                    check(True, f"{label}: {what} -> UNAUTHENTICATED")
            status, text = w.request("GET", "/stats", auth=False, port=w.status_port)
            stats = json.loads(text)
            check(stats["request_count"] >= 1, f"{label}: /stats counts script calls {stats}")
            check(w.stop() == 0, f"{label}: drained")

    # A failing script: the reason is the script's last line, the step is "script".
    w = wl.Worker()
    with w:
        body = {"function": "bad", "tenant": "t", "token": "x",
                "script": "#!/usr/bin/env bash\nset -euo pipefail\n"
                          "echo 'ERROR: No matching distribution found for nopkg' >&2\nexit 1\n"}
        w.specialize(body)
        st = w.wait_state()
        check(st["state"] == "failed" and st["step"] == "script" and
              "No matching distribution" in st["reason"], f"failing script: {st}")
    # A script that never serves fails at its step once --specialize-timeout passes.
    w = wl.Worker(extra_args=["--specialize-timeout=2"])
    with w:
        body = {"function": "slow", "tenant": "t", "token": "x",
                "script": "#!/usr/bin/env bash\nsleep 60\n"}
        w.specialize(body)
        st = w.wait_state(timeout=20)
        check(st["state"] == "failed" and st["step"] == "script" and
              "not ready after 2 s" in st["reason"], f"hanging script: {st}")
        check(w.stop() == 0, "hanging script: the worker still drains")

    if failures:
        print(f"{len(failures)} failure(s)")
        return 1
    print("all passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
