"""The object store and package index of the outside host (run inside its network namespace).

Serves every file of DIR on PORT the way a stage's presigned GET urls do: any query string
(the signature) is accepted, an ETag per file, one-byte Range reads (the operator's content
key), HEAD refused (a GET-presigned url refuses it). /simple/<name>/ is a PEP 503 page listing
DIR's wheels of that project, so pip can install from it. Each request is printed as one line
("GET /path range") so the test can see who fetched what.

    python outside_server.py DIR ADDRESS PORT
"""

import hashlib
import http.server
import os
import re
import socketserver
import sys
import urllib.parse


def main():
    root, address, port = sys.argv[1], sys.argv[2], int(sys.argv[3])

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def send_body(self, status, body, extra=()):
            self.send_response(status)
            for k, v in extra:
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_HEAD(self):
            self.send_response(403)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_GET(self):
            path = urllib.parse.urlparse(self.path).path
            rng = self.headers.get("Range")
            print("GET %s %s" % (path, rng or "-"), flush=True)
            m = re.fullmatch(r"/simple/([A-Za-z0-9_.-]+)/?", path)
            if m:
                project = re.sub(r"[-_.]+", "_", m.group(1)).lower()
                links = "".join('<a href="/%s">%s</a>\n' % (n, n) for n in sorted(os.listdir(root))
                                if n.endswith(".whl") and n.split("-")[0].lower() == project)
                if not links:
                    return self.send_body(404, b"")
                return self.send_body(200, ("<html><body>\n%s</body></html>\n" % links).encode(),
                                      [("Content-Type", "text/html")])
            name = path.lstrip("/")
            full = os.path.join(root, name)
            if "/" in name or not os.path.isfile(full):
                return self.send_body(404, b"")
            with open(full, "rb") as f:
                body = f.read()
            etag = ("ETag", '"%s"' % hashlib.md5(body).hexdigest())
            if rng == "bytes=0-0" and body:
                return self.send_body(206, body[:1], [etag, ("Content-Range", "bytes 0-0/%d" % len(body))])
            self.send_body(200, body, [etag])

        def log_message(self, *args):
            pass

    class Server(http.server.ThreadingHTTPServer):
        def server_bind(self):
            # HTTPServer.server_bind looks up the address's name, which waits on a resolver
            # the outside host cannot reach.
            socketserver.TCPServer.server_bind(self)
            self.server_name, self.server_port = address, port

    server = Server((address, port), Handler)
    print("listening on %s:%d" % (address, port), flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
