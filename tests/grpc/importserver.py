"""A stand-in for a stage's object store on a loopback address (127.0.0.1 unless told): serves
files with ETags, honours one-byte Range requests, refuses HEAD (like a GET-presigned url) and
counts requests. The operator refuses loopback import urls by default (--blocked-cidrs), so a
test that must reach this server runs its operator with a block list that leaves the server's
address out (an alias such as 127.0.0.2: all of 127/8 reaches the loopback interface).

    with ImportServer({"helper.py": b"def f(x): return x"}) as srv:
        url = srv.presign("helper.py")   # a new query string on every call
"""

import hashlib
import http.server
import itertools
import threading
import time
import urllib.parse


class ImportServer:
    def __init__(self, files, etags=True, host="127.0.0.1", delay=0.0, answer=None):
        """delay: seconds each GET waits first; answer: (status, headers, body) sent to every
        GET instead of the file."""
        self.files = dict(files)
        self.host = host
        self.delay = delay
        self.answer = answer
        self.valid_from = 0  # presigned urls numbered below this have expired (403)
        self.etags = etags
        self.requests = []
        self._seq = itertools.count(1)
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_HEAD(self):
                self.send_response(403)
                self.end_headers()

            def do_GET(self):
                parsed = urllib.parse.urlparse(self.path)
                path = parsed.path.lstrip("/")
                server.requests.append((path, self.headers.get("Range")))
                if server.delay:
                    time.sleep(server.delay)
                if server.answer:
                    status, headers, payload = server.answer
                    self.send_response(status)
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                date = urllib.parse.parse_qs(parsed.query).get("X-Amz-Date", ["2026"])[0]
                if int(date[4:] or 0) < server.valid_from:
                    self.send_response(403)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = server.files.get(path)
                if body is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                rng = self.headers.get("Range")
                if rng == "bytes=0-0" and body:
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes 0-0/{len(body)}")
                    part = body[:1]
                else:
                    self.send_response(200)
                    part = body
                if server.etags:
                    self.send_header("ETag", '"' + hashlib.md5(body).hexdigest() + '"')
                self.send_header("Content-Length", str(len(part)))
                self.end_headers()
                self.wfile.write(part)

            def log_message(self, *args):
                pass

        class Server(http.server.ThreadingHTTPServer):
            def handle_error(self, request, client_address):
                pass  # a client that hung up early (the operator reads headers only)

        self.httpd = Server((host, 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def presign(self, name):
        n = next(self._seq)
        return (f"http://{self.host}:{self.port}/{name}?X-Amz-Date=2026{n:08d}"
                f"&X-Amz-Signature={hashlib.sha256(str(n).encode()).hexdigest()}")

    def expire_all(self):
        """Every url presigned so far expires (answers 403), as presigned urls do."""
        self.valid_from = next(self._seq) + 1

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
