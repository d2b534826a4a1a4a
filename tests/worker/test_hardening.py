"""What a tenant's code, or anyone who reaches a port, must not be able to do to the worker
(issue 15, "The worker"):

- no token (the function's, the control API's) reaches status reasons, the worker's log or
  Flight errors, even from a UDF that dumps its environment and every file it can read;
- the control API answers an unauthenticated request before reading its body; the status
  port takes no body;
- a script that starts `python -I` (no hook) with its own Flight server serves no call
  without the token;
- the Flight port caps connections, closes idle ones, does not spin when out of file
  descriptors, and stays small and responsive under thousands of connections;
- a stopped zygote does not wedge /health or /readyz;
- a dead server's process group goes with it;
- /stats clamps what the UDF's processes wrote to shared memory.
"""

import json
import os
import re
import resource
import secrets
import signal
import socket
import struct
import sys
import time

import pyarrow.flight as flight

import workerlib as wl

failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)


# ---- tokens ----------------------------------------------------------------------------------

# Every run of 32+ hex digits the UDF can find in its environment and in every file under the
# worker's directory (and its parent's /proc files): what a UDF hunting for tokens would send
# out. The test's tokens are 32 hex digits; the canaries prove the hunt reaches env and files.
HUNT = r'''
import os, re
def _hunt(root):
    found = []
    texts = ["\n".join(f"{k}={v}" for k, v in os.environ.items())]
    paths = [f"/proc/{os.getppid()}/{n}" for n in ("environ", "cmdline", "mem")]
    for dp, dn, fn in os.walk(root):
        paths += [os.path.join(dp, f) for f in fn]
    for p in paths:
        try:
            with open(p, "rb") as f:
                texts.append(f.read(1 << 20).decode("utf-8", "replace"))
        except Exception:
            pass
    for t in texts:
        for m in re.findall(r"[0-9a-f]{32,}", t):
            if m not in found:
                found.append(m)
    return " ".join(found[:60])
'''


def token_leaks():
    ftoken = secrets.token_hex(16)
    ctoken = secrets.token_hex(16)
    env_canary = secrets.token_hex(16)
    file_canary = secrets.token_hex(16)

    def no_token(text, where):
        check(ftoken not in text and ctoken not in text, f"no token in {where}")

    # Structured form: the module prints what it found at load; the handler raises it.
    with wl.Worker(control_token=ctoken, control_sha256=True) as w:
        with open(os.path.join(w.dir, "canary.txt"), "w") as f:
            f.write(file_canary)
        code = HUNT + f'''
print("found at load:", _hunt({w.dir!r}), flush=True)
def leak(x):
    raise RuntimeError("found: " + _hunt({w.dir!r}))
'''
        body = wl.structured(function="leak", handler="leak", code=code, token=ftoken,
                             env={"CANARY": env_canary})
        status, _ = w.specialize(body)
        st = w.wait_state()
        check(st["state"] == "ready", f"the dumping UDF serves: {st}")
        try:
            wl.call(w.flight_port, "leak", wl.int_batch([1]), ftoken)
            msg = ""
        except flight.FlightError as e:
            msg = str(e)
        check(env_canary in msg and file_canary in msg,
              "the Flight error carries what the UDF found (canaries from env and a file)")
        no_token(msg, "the Flight error")
        no_token(json.dumps(w.status()), "/v1/status")
        w.stop()
        logs = open(w.log_path, encoding="utf-8", errors="replace").read()
        check(file_canary in logs, "the worker's log has what the UDF printed")
        no_token(logs, "the worker's log (structured)")

    # Load failure: the reason is the exception's last line.
    with wl.Worker(control_token=ctoken, control_sha256=True) as w:
        code = HUNT + f'raise RuntimeError("found: " + _hunt({w.dir!r}))\n'
        body = wl.structured(function="leak", handler="leak", code=code, token=ftoken,
                             env={"CANARY": env_canary})
        w.specialize(body)
        st = w.wait_state()
        check(st["state"] == "failed" and env_canary in st["reason"],
              f"a load failure's reason carries what the UDF found: {st['reason'][:80]}")
        no_token(json.dumps(st), "/v1/status of a failed load")
        w.stop()
        no_token(open(w.log_path, errors="replace").read(), "the worker's log (load)")

    # Script form: the script itself hunts, prints everything, and fails with its findings.
    with wl.Worker(control_token=ctoken, control_sha256=True) as w:
        script = f"""#!/usr/bin/env bash
set -uo pipefail
env
find {w.dir} /proc/$PPID/environ -type f -exec cat {{}} + 2>/dev/null | head -c 1000000
echo
echo "found: $( (env; find {w.dir} -type f -exec cat {{}} + 2>/dev/null) | \
grep -aoE '[0-9a-f]{{32,}}' | sort -u | tr '\\n' ' ')"
exit 3
"""
        body = {"function": "leak", "tenant": "test_tenant", "token": ftoken,
                "env": {"CANARY": env_canary}, "script": script}
        w.specialize(body)
        st = w.wait_state()
        check(st["state"] == "failed" and env_canary in st["reason"],
              f"a failing script's reason carries what it found: {st['reason'][:80]}")
        no_token(json.dumps(st), "/v1/status of a failed script")
        w.stop()
        no_token(open(w.log_path, errors="replace").read(), "the worker's log (script)")


# ---- control and status ports -----------------------------------------------------------------


def raw_http(port, head, send_body=b"", timeout=3):
    """Sends a request head (and maybe part of a body); returns (status line, seconds)."""
    t0 = time.time()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(head + send_body)
        data = b""
        try:
            while b"\r\n" not in data:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        except socket.timeout:
            return None, time.time() - t0
    return data.split(b"\r\n", 1)[0].decode(), time.time() - t0


def control_bodies():
    with wl.Worker() as w:
        head = (b"POST /v1/specialize HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: 8000000\r\n\r\n")
        line, took = raw_http(w.control_port, head, b"{" * 1000)
        check(line is not None and " 401 " in line,
              f"unauthenticated 8 MB specialize answered before its body: {line} "
              f"in {took:.2f} s")
        bad = head.replace(b"Host: x\r\n", b"Host: x\r\nAuthorization: Bearer wrong\r\n")
        line, _ = raw_http(w.control_port, bad, b"{" * 1000)
        check(line is not None and " 401 " in line, f"wrong token: {line}")
        big = head.replace(b"8000000", b"9000000").replace(
            b"Host: x\r\n", f"Host: x\r\nAuthorization: Bearer {w.control_token}\r\n".encode())
        line, _ = raw_http(w.control_port, big)
        check(line is not None and " 413 " in line, f"declared length over the limit: {line}")
        line, _ = raw_http(w.status_port, b"POST /stats HTTP/1.1\r\nHost: x\r\n"
                           b"Content-Length: 1000000\r\n\r\n", b"x" * 100)
        check(line is not None and " 405 " in line, f"status port, POST with a body: {line}")
        line, _ = raw_http(w.status_port, b"GET /stats HTTP/1.1\r\nHost: x\r\n"
                           b"Content-Length: 1000000\r\n\r\n", b"x" * 100)
        check(line is not None and " 413 " in line, f"status port, GET with a body: {line}")
        status, _ = w.request("GET", "/health", auth=False, port=w.status_port)
        check(status == 503, f"status port still answers: {status}")
        status, _ = w.specialize(wl.structured())
        check(status == 202, f"an authenticated specialize still works: {status}")


# ---- the script form without our hook ---------------------------------------------------------

OWN_SERVER = r'''
import os
from databend_udf import UDFServer, udf

@udf(input_types=["INT"], result_type="INT")
def add_one(x):
    return x + 1

server = UDFServer(location=os.environ["UDF_SERVER_ADDR"])
server.add_function(add_one)
server.serve()
'''


def script_without_hook():
    token = secrets.token_hex(16)
    with wl.Worker() as w:
        app = w.work_dir
        script = f"""#!/usr/bin/env bash
set -euo pipefail
mkdir -p {app}
cat > {app}/own.py <<'EOF'
{OWN_SERVER}
EOF
exec python -I {app}/own.py
"""
        body = {"function": "add_one", "tenant": "test_tenant", "token": token, "env": {},
                "script": script}
        status, _ = w.specialize(body)
        st = w.wait_state(timeout=60)
        check(st["state"] == "ready", f"python -I with its own server becomes ready: {st}")
        t = wl.call(w.flight_port, "add_one", wl.int_batch([1, 2]), token)
        check(t.column(0).to_pylist() == [2, 3], "with the token: served")
        for tok, tenant, what in ((None, "test_tenant", "no token"),
                                  ("wrong", "test_tenant", "wrong token"),
                                  (token, "other", "wrong tenant")):
            try:
                wl.call(w.flight_port, "add_one", wl.int_batch([1]), tok, tenant=tenant)
                check(False, f"python -I: {what} served")
            except flight.FlightUnauthenticatedError:
                check(True, f"python -I: {what} -> UNAUTHENTICATED")
            except flight.FlightError as e:
                check(False, f"python -I: {what} -> {type(e).__name__} {e}")
        # Another server of the script's on the Flight port itself cannot exist: we hold it.
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            try:
                s.bind(("0.0.0.0", w.flight_port))
                check(False, "another process could bind the Flight port")
            except OSError:
                check(True, "the Flight port is the worker's alone")


# ---- the Flight port's limits -----------------------------------------------------------------


def hpack_literal(name, value):
    n, v = name.encode(), value.encode()
    return bytes([0x00, len(n)]) + n + bytes([len(v)]) + v


def h2_first_call(token, tenant="test_tenant"):
    """Preface, SETTINGS and the HEADERS of a ListFlights call, as a gRPC client sends them."""
    path = b"/arrow.flight.protocol.FlightService/ListFlights"
    block = (b"\x83\x86" + bytes([0x04, len(path)]) + path + bytes([0x01, 9]) + b"localhost" + bytes([0x0f, 0x10, 16]) + b"application/grpc"
             + hpack_literal("te", "trailers") + hpack_literal("x-authorization", token)
             + hpack_literal("x-databend-tenant", tenant))
    frame = struct.pack(">I", len(block))[1:] + bytes([0x1, 0x4]) + struct.pack(">I", 1)
    return (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
            + frame + block)


def seconds_to_eof(sock, timeout):
    t0 = time.time()
    sock.settimeout(timeout)
    try:
        while sock.recv(65536):
            pass
    except (socket.timeout, ConnectionResetError):
        if time.time() - t0 >= timeout:
            return None
    return time.time() - t0


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def flight_limits():
    token = secrets.token_hex(16)
    with wl.Worker(extra_args=["--max-connections=4", "--flight-idle-seconds=2"]) as w:
        w.specialize(wl.structured(token=token))
        check(w.wait_state()["state"] == "ready", "ready")
        # An admitted connection that then says nothing is closed after the idle time.
        s = socket.create_connection(("127.0.0.1", w.flight_port))
        s.sendall(h2_first_call(token))
        took = seconds_to_eof(s, 10)
        s.close()
        check(took is not None and 1.5 <= took <= 5, f"idle admitted connection closed ({took})")
        # The cap: four silent connections take every place; a call waits, then gets one.
        held = [socket.create_connection(("127.0.0.1", w.flight_port)) for _ in range(4)]
        time.sleep(0.3)
        try:
            client = flight.connect(f"grpc://127.0.0.1:{w.flight_port}")
            opts = wl.databend_options(token)
            opts = flight.FlightCallOptions(headers=opts.headers, timeout=1.5)
            list(client.list_flights(options=opts))
            check(False, "a fifth connection was served past --max-connections=4")
        except flight.FlightError:
            check(True, "a fifth connection waits while four are open")
        for s in held:
            s.close()
        time.sleep(0.3)
        t = wl.call(w.flight_port, "add_one", wl.int_batch([1]), token)
        check(t.column(0).to_pylist() == [2], "served once the others closed")
        # Unadmitted connections that send nothing are closed after 10 s.
        s = socket.create_connection(("127.0.0.1", w.flight_port))
        took = seconds_to_eof(s, 15)
        s.close()
        check(took is not None and 8 <= took <= 13, f"silent connection closed ({took})")

    # Out of file descriptors: no spinning, and recovery.
    with wl.Worker() as w:
        w.specialize(wl.structured(token=token))
        check(w.wait_state()["state"] == "ready", "ready")
        pid = w.proc.pid
        nfds = len(os.listdir(f"/proc/{pid}/fd"))
        old = resource.prlimit(pid, resource.RLIMIT_NOFILE)
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (nfds + 6, old[1]))
        held = []
        for _ in range(60):
            held.append(socket.create_connection(("127.0.0.1", w.flight_port)))
        time.sleep(0.5)
        c0 = cpu_seconds(pid)
        time.sleep(3)
        used = cpu_seconds(pid) - c0
        check(used < 0.5, f"out of descriptors: the worker used {used:.2f} s CPU in 3 s")
        for s in held:
            s.close()
        resource.prlimit(pid, resource.RLIMIT_NOFILE, old)
        time.sleep(0.5)
        t = wl.call(w.flight_port, "add_one", wl.int_batch([41]), token)
        check(t.column(0).to_pylist() == [42], "serves again once descriptors are back")


def backend_connections(port):
    """ESTABLISHED loopback TCP connections whose server side is port (the Python server)."""
    n = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):  # gRPC's listener is dual-stack
        with open(table) as f:
            for line in f.readlines()[1:]:
                local, state = line.split()[1], line.split()[3]
                if state == "01" and int(local.rsplit(":", 1)[1], 16) == port:
                    n += 1
    return n


def wait_count(port, want, timeout=5):
    deadline = time.time() + timeout
    while time.time() < deadline and backend_connections(port) != want:
        time.sleep(0.05)
    return backend_connections(port)


def spares():
    """The proxy keeps one backend connection made ahead of the next client (proxy.c,
    "spares"): a new connection's first call takes it; a drain drops it, so the server's
    shutdown does not wait on it."""
    token = secrets.token_hex(16)
    w = wl.Worker()
    with w:
        w.specialize(wl.structured(token=token))
        check(w.wait_state()["state"] == "ready", "ready")
        with open(os.path.join(w.dir, "run", "config.json")) as f:
            port = json.load(f)["backend_ports"][0]
        got = wait_count(port, 1)
        check(got == 1, f"with no client, one spare connection waits at the server ({got})")
        client = flight.connect(f"grpc://127.0.0.1:{w.flight_port}")
        t = wl.call(w.flight_port, "add_one", wl.int_batch([1]), token, client=client)
        check(t.column(0).to_pylist() == [2], "a new connection is served (on the spare)")
        got = wait_count(port, 2)
        check(got == 2, f"the client's connection and a new spare ({got})")
        client.close()
        got = wait_count(port, 1)
        check(got == 1, f"the client gone, the spare stays ({got})")
        t0 = time.time()
        code = w.stop(timeout=20)
        took = time.time() - t0
        check(code == 0 and took < 5, f"SIGTERM drains with a spare open: exit {code} in "
                                      f"{took:.1f} s")


def many_connections():
    """A caller that opens thousands of connections: the cap holds, the worker stays small
    and answers its probes, and serves once they are gone."""
    token = secrets.token_hex(16)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192), hard))
    with wl.Worker(extra_args=["--max-connections=256"]) as w:
        w.specialize(wl.structured(token=token))
        check(w.wait_state()["state"] == "ready", "ready")
        held = []
        try:
            for _ in range(2000):
                s = socket.socket()
                s.setblocking(False)
                s.connect_ex(("127.0.0.1", w.flight_port))
                held.append(s)
            time.sleep(1)
            pid = w.proc.pid
            fds = len(os.listdir(f"/proc/{pid}/fd"))
            check(fds < 2 * 256 + 64, f"2000 connections: the worker holds {fds} descriptors")
            with open(f"/proc/{pid}/status") as f:
                rss = next(int(ln.split()[1]) for ln in f if ln.startswith("VmRSS:"))
            check(rss < 200 * 1024, f"2000 connections: the worker's RSS is {rss // 1024} MiB")
            t0 = time.time()
            status, _ = w.request("GET", "/health", auth=False, port=w.status_port)
            check(status == 200 and time.time() - t0 < 1,
                  f"/health answers while flooded: {status} in {time.time() - t0:.2f} s")
        finally:
            for s in held:
                s.close()
        time.sleep(0.5)
        t = wl.call(w.flight_port, "add_one", wl.int_batch([1]), token)
        check(t.column(0).to_pylist() == [2], "serves once the flood is gone")
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


# ---- the supervisor ---------------------------------------------------------------------------


def children(pid):
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                if int(fields[1]) == pid:
                    out.append(int(d))
            except OSError:
                pass
    return out


def cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def stopped_zygote():
    with wl.Worker() as w:
        deadline = time.time() + 30
        while time.time() < deadline and not w.status()["zygote"]:
            time.sleep(0.05)
        zygote = [p for p in children(w.proc.pid) if "zygote.py" in cmdline(p)]
        check(len(zygote) == 1, f"found the zygote: {zygote}")
        os.kill(zygote[0], signal.SIGSTOP)
        try:
            w.specialize(wl.structured())
            slow = []
            deadline = time.time() + 30
            st = None
            while time.time() < deadline:
                for path, port in (("/health", w.status_port), ("/readyz", w.control_port)):
                    t0 = time.time()
                    try:
                        w.request("GET", path, auth=False, port=port)
                    except OSError:
                        pass
                    if time.time() - t0 > 1.5:
                        slow.append((path, round(time.time() - t0, 2)))
                st = w.status()
                if st["state"] in ("ready", "failed"):
                    break
                time.sleep(0.05)
            check(not slow, f"/health and /readyz answer within 1.5 s: {slow}")
            check(st and st["state"] == "ready" and not st["from_zygote"],
                  f"ready without the stopped zygote: {st}")
        finally:
            try:
                os.kill(zygote[0], signal.SIGCONT)
            except OSError:
                pass


def process_group_killed():
    token = secrets.token_hex(16)
    with wl.Worker() as w:
        marker = os.path.join(w.dir, "child.pid")
        code = f'''
import os, subprocess
child = subprocess.Popen(["sleep", "300"])
with open({marker!r}, "a") as f:
    f.write(f"{{child.pid}}\\n")
def crash(x):
    if x == 13:
        os.abort()
    return x
'''
        w.specialize(wl.structured(function="crash", handler="crash", code=code, token=token))
        check(w.wait_state()["state"] == "ready", "ready")
        first = int(open(marker).read().split()[0])
        check(os.path.exists(f"/proc/{first}"), "the UDF's child runs")
        try:
            wl.call(w.flight_port, "crash", wl.int_batch([13]), token)
        except flight.FlightError:
            pass
        deadline = time.time() + 20
        while time.time() < deadline and w.status()["restarts"] < 1:
            time.sleep(0.05)
        while time.time() < deadline and w.status()["processes"] < 1:
            time.sleep(0.05)
        gone = not os.path.exists(f"/proc/{first}") or "sleep" not in cmdline(first)
        check(gone, "the dead server's child went with its process group")


def stats_clamped():
    with wl.Worker() as w:
        path = os.path.join(w.dir, "run", "stats")
        with open(path, "r+b") as f:
            f.write(struct.pack("<Qdd", 2**64 - 1, float("inf"), float("nan")))
            f.seek(32)
            f.write(struct.pack("<Qdd", 2**63, -1e300, 1e300))
            f.seek(64)
            f.write(struct.pack("<Qdd", 3, 1.7e9, 1.7e9))
        status, text = w.request("GET", "/stats", auth=False, port=w.status_port)
        check(status == 200, f"/stats answers: {status}")
        stats = json.loads(text)
        n = stats["request_count"]
        check(isinstance(n, (int, float)) and 0 <= n <= 2**53,
              f"request_count clamped to an exact number: {n}")
        for k in ("first_request_time", "last_request_time"):
            v = stats[k]
            check(v is None or re.fullmatch(r"20\d\d-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00", v),
                  f"{k} is a sane date: {v}")


def main():
    for test in (control_bodies, token_leaks, script_without_hook, flight_limits, spares,
                 many_connections, stopped_zygote, process_group_killed, stats_clamped):
        print(f"---- {test.__name__}", flush=True)
        try:
            test()
        except Exception as e:  # noqa: BLE001 - one broken part must not hide the others
            check(False, f"{test.__name__} raised {type(e).__name__}: {e}")
    if failures:
        print(f"{len(failures)} check(s) failed", flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
