"""The control API's refusals: 401 without the bearer token, 400 naming the bad field for
every malformed specialize request, 404/405 for the rest; /healthz needs no token."""

import json
import socket
import sys
import time

import workerlib as wl

failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)


def with_spec(**changes):
    body = wl.structured()
    for k, v in changes.items():
        body["spec"][k] = v
    return body


def main():
    with wl.Worker() as w:
        # A kubelet tcpSocket probe connects and closes without a request; so do scanners,
        # sometimes halfway through one. The worker must shrug them off.
        for partial in (b"", b"GET /healthz HTTP/1.1\r\n", b"\x16\x03\x01\x00"):
            with socket.create_connection((w.host, w.control_port), timeout=5) as sock:
                sock.sendall(partial)
        time.sleep(0.2)
        check(w.proc.poll() is None, "worker survives connect-and-close and half requests")
        status, _ = w.request("GET", "/healthz", auth=False)
        check(status == 200, f"/healthz without token -> {status}")
        status, _ = w.request("GET", "/v1/status", auth=False)
        check(status == 401, f"status without token -> {status}")
        status, _ = w.request("GET", "/v1/status", token="not-the-token")
        check(status == 401, f"status with a wrong token -> {status}")
        status, _ = w.request("POST", "/v1/specialize", wl.structured(), auth=False)
        check(status == 401, f"specialize without token -> {status}")
        status, _ = w.request("POST", "/v1/specialize", wl.structured(), token="x")
        check(status == 401, f"specialize with a wrong token -> {status}")
        status, _ = w.request("GET", "/nope")
        check(status == 404, f"unknown path -> {status}")
        status, _ = w.request("GET", "/v1/specialize")
        check(status == 405, f"GET /v1/specialize -> {status}")

        cases = [
            ("malformed JSON", b'{"function": ', "malformed JSON"),
            ("not an object", b"[1, 2]", "JSON object"),
            ("no function", {k: v for k, v in wl.structured().items() if k != "function"},
             "function"),
            ("no token", {k: v for k, v in wl.structured().items() if k != "token"}, "token"),
            ("no tenant", {k: v for k, v in wl.structured().items() if k != "tenant"},
             "tenant"),
            ("no spec", {k: v for k, v in wl.structured().items() if k != "spec"}, "spec"),
            ("unknown input type", with_spec(input_types=["INT", "WIBBLE"]),
             "spec.input_types[1]"),
            ("unknown result type", with_spec(result_type="DECIMAL(100, 2)"),
             "spec.result_type"),
            ("handler not an identifier", with_spec(handler="add-one"), "spec.handler"),
            ("handler a keyword", with_spec(handler="class"), "spec.handler"),
            ("handler an injection", with_spec(handler="x; import os"), "spec.handler"),
            ("code over 1 MiB", with_spec(code="#" * (1024 * 1024 + 1)), "spec.code"),
            ("65 imports", with_spec(imports=[{"location": f"@s/f{i}.py",
                                               "url": "http://127.0.0.1:1/x", "tag": "t"}
                                              for i in range(65)]), "spec.imports"),
            ("import without url", with_spec(imports=[{"location": "@s/a.py"}]),
             "spec.imports[0].url"),
            ("import with a file url", with_spec(imports=[{"location": "@s/a.py",
                                                           "url": "file:///etc/passwd"}]),
             "spec.imports[0].url"),
            ("input_types not an array", with_spec(input_types="INT"), "spec.input_types"),
            ("a package that is a pip option", with_spec(packages=["--index-url=http://x"]),
             "spec.packages[0]"),
            ("env not strings", dict(wl.structured(), env={"A": 1}), "env.A"),
            ("env reserved", dict(wl.structured(), env={"LD_PRELOAD": "/x.so"}),
             "env.LD_PRELOAD"),
            ("spec and script", dict(wl.structured(), script="echo"), "either"),
        ]
        for name, body, field in cases:
            raw = body if isinstance(body, bytes) else json.dumps(body).encode()
            status, text = w.request("POST", "/v1/specialize", raw=raw)
            try:
                err = json.loads(text).get("error", "")
            except ValueError:
                err = text.decode("utf-8", "replace")
            check(status == 400 and field in err, f"{name} -> {status} {err[:90]!r}")
        st = w.status()
        check(st["state"] == "idle", f"still idle after the bad requests: {st['state']}")

    if failures:
        print(f"{len(failures)} failure(s)")
        return 1
    print("all passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
