"""A fault-injecting HTTP proxy in front of the real kube-apiserver, for faults a healthy
server will not show on demand.

Clients speak plain HTTP/1.1 to the proxy (one request per connection: the proxy always
answers with `Connection: close`); the proxy speaks TLS to the apiserver with the kubeconfig's
client certificate. Per request, with the configured probabilities, it:
  - answers 429 (with Retry-After) or 500 itself, with a Kubernetes Status body;
  - drops the connection without an answer;
  - stalls before relaying the answer;
  - for LIST pages with a continue token, answers 410 Expired (the token "expired");
  - for watches (`watch=1` in the query): relays a random number of bytes and then cuts the
    stream, usually in the middle of an event;
and otherwise relays faithfully. `mode = "refuse"` drops every connection at once (the server
"is down"); `mode = "blackhole"` reads requests and never answers (the server hangs);
`mode = "pass"` relays everything.

    proxy = FaultProxy(kubeconfig_path, seed=1)
    proxy.start()              # proxy.url -> "http://127.0.0.1:PORT"
    proxy.p_cut = 0.5 ...
    proxy.stop()

Also runnable: `python3 tests/lib/faultproxy.py KUBECONFIG [--port N]` (probabilities from the
flags; --help).
"""

import argparse
import base64
import json
import os
import random
import socket
import ssl
import tempfile
import threading
import time
import urllib.parse


def _read_kubeconfig(path):
    """The server URL and, as PEM bytes, the CA and client credentials. Our kubeconfigs carry
    them inline (*-data), which is what hack/cluster.sh writes; no YAML library needed."""
    fields = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            for key in ("server", "certificate-authority-data", "client-certificate-data",
                        "client-key-data"):
                if line.startswith(key + ":"):
                    fields[key] = line.split(":", 1)[1].strip().strip("'\"")
    return fields


class FaultProxy:
    def __init__(self, kubeconfig, seed=None, port=0):
        kc = _read_kubeconfig(kubeconfig)
        u = urllib.parse.urlparse(kc["server"])
        self.upstream = (u.hostname, u.port or 443)
        self._tmp = tempfile.mkdtemp(prefix="faultproxy-")
        paths = {}
        for key in ("certificate-authority-data", "client-certificate-data", "client-key-data"):
            paths[key] = os.path.join(self._tmp, key)
            fd = os.open(paths[key], os.O_WRONLY | os.O_CREAT, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(base64.b64decode(kc[key]))
        self.ctx = ssl.create_default_context(cafile=paths["certificate-authority-data"])
        self.ctx.load_cert_chain(paths["client-certificate-data"], paths["client-key-data"])
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.mode = "faults"
        self.p_429 = 0.0
        self.p_500 = 0.0
        self.p_drop = 0.0
        self.p_stall = 0.0
        self.stall_s = (1.0, 3.0)
        self.p_cut = 0.0           # watches only
        self.p_gone_continue = 0.0  # LIST pages with a continue token: 410 Expired
        self.cut_bytes = (50, 20000)
        self.counts = {"requests": 0, "429": 0, "500": 0, "drop": 0, "stall": 0, "cut": 0,
                       "refused": 0, "gone": 0, "blackholed": 0}
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(256)
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._stop = False
        self._conns = set()

    def kubeconfig(self, path):
        """Writes a kubeconfig that points at the proxy (no credentials: the proxy has them)."""
        with open(path, "w") as f:
            f.write("apiVersion: v1\nkind: Config\ncurrent-context: proxy\n"
                    f"clusters: [{{name: proxy, cluster: {{server: '{self.url}'}}}}]\n"
                    "contexts: [{name: proxy, context: {cluster: proxy}}]\n")
        return path

    def start(self):
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def stop(self):
        self._stop = True
        try:
            self.sock.close()
        except OSError:
            pass
        with self.lock:
            conns = list(self._conns)
        for c in conns:
            try:
                c.close()
            except OSError:
                pass

    def _count(self, what):
        with self.lock:
            self.counts[what] += 1

    def _roll(self, p):
        with self.lock:
            return self.rng.random() < p

    def _uniform(self, lo, hi):
        with self.lock:
            return self.rng.uniform(lo, hi)

    def _accept(self):
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self._conns.add(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    @staticmethod
    def _read_request(conn):
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return None, None
            data += chunk
            if len(data) > 1 << 20:
                return None, None
        head, body = data.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        length = 0
        for line in lines[1:]:
            k, _, v = line.partition(":")
            if k.strip().lower() == "content-length":
                length = int(v.strip())
        while len(body) < length:
            chunk = conn.recv(65536)
            if not chunk:
                return None, None
            body += chunk
        return lines, body

    @staticmethod
    def _answer(conn, code, reason, retry_after=None):
        body = json.dumps({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                           "message": f"fault proxy: {reason}", "reason": reason,
                           "code": code}).encode()
        extra = f"Retry-After: {retry_after}\r\n" if retry_after else ""
        conn.sendall((f"HTTP/1.1 {code} {reason}\r\nContent-Type: application/json\r\n"
                      f"Content-Length: {len(body)}\r\n{extra}Connection: close\r\n\r\n").encode()
                     + body)

    def _serve(self, conn):
        up = None
        try:
            if self.mode == "refuse":
                self._count("refused")
                return
            lines, body = self._read_request(conn)
            if self.mode == "blackhole":
                self._count("blackholed")
                while not self._stop and self.mode == "blackhole":
                    time.sleep(0.2)
                return
            if lines is None:
                return
            self._count("requests")
            target = lines[0].split(" ")[1] if len(lines[0].split(" ")) > 1 else "/"
            is_watch = "watch=1" in target or "watch=true" in target
            if self.mode == "faults":
                if "continue=" in target and self._roll(self.p_gone_continue):
                    self._count("gone")
                    self._answer(conn, 410, "Expired")
                    return
                if self._roll(self.p_drop):
                    self._count("drop")
                    return
                if self._roll(self.p_429):
                    self._count("429")
                    self._answer(conn, 429, "TooManyRequests", retry_after=1)
                    return
                if self._roll(self.p_500):
                    self._count("500")
                    self._answer(conn, 500, "InternalError")
                    return
            headers = [h for h in lines[1:] if h.split(":", 1)[0].strip().lower()
                       not in ("connection", "host")]
            req = "\r\n".join([lines[0], f"Host: {self.upstream[0]}:{self.upstream[1]}",
                               *headers, "Connection: close", "", ""]).encode() + body
            raw = socket.create_connection(self.upstream, timeout=30)
            up = self.ctx.wrap_socket(raw, server_hostname=self.upstream[0])
            up.settimeout(None)
            up.sendall(req)
            cut_after = None
            stall_at = None
            if self.mode == "faults":
                if is_watch and self._roll(self.p_cut):
                    cut_after = int(self._uniform(*self.cut_bytes))
                if self._roll(self.p_stall):
                    stall_at = int(self._uniform(0, 4000))
            sent = 0
            while not self._stop:
                chunk = up.recv(65536)
                if not chunk:
                    break
                if stall_at is not None and sent + len(chunk) > stall_at:
                    self._count("stall")
                    time.sleep(self._uniform(*self.stall_s))
                    stall_at = None
                if cut_after is not None and sent + len(chunk) >= cut_after:
                    conn.sendall(chunk[:max(0, cut_after - sent)])
                    self._count("cut")
                    # RST rather than FIN: the client sees the stream break mid-event.
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                    b"\x01\x00\x00\x00\x00\x00\x00\x00")
                    return
                conn.sendall(chunk)
                sent += len(chunk)
                if self.mode == "refuse":
                    return
        except OSError:
            pass
        finally:
            for s in (up, conn):
                if s is not None:
                    try:
                        s.close()
                    except OSError:
                        pass
            with self.lock:
                self._conns.discard(conn)


def main():
    ap = argparse.ArgumentParser(description="Fault-injecting proxy in front of kube-apiserver")
    ap.add_argument("kubeconfig")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--seed", type=int, default=None)
    for name in ("429", "500", "drop", "stall", "cut"):
        ap.add_argument(f"--p-{name}", type=float, default=0.0)
    args = ap.parse_args()
    p = FaultProxy(args.kubeconfig, seed=args.seed, port=args.port)
    p.p_429, p.p_500, p.p_drop = args.p_429, args.p_500, args.p_drop
    p.p_stall, p.p_cut = args.p_stall, args.p_cut
    p.start()
    print(p.url, flush=True)
    try:
        while True:
            time.sleep(5)
            print(json.dumps(p.counts), flush=True)
    except KeyboardInterrupt:
        p.stop()


if __name__ == "__main__":
    main()
