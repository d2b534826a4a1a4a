"""Imports and packages, the way Databend's sandbox tests use them: imports served by a local
HTTP server that sets ETags while the presigned query string changes on every request; a .py
import used by the code; data files flattened by basename, last wins; a .tar.gz kept as a
file; .zip/.whl/.egg importable; sys._xoptions["databend_import_directory"]; a second
specialization with the same tags downloads nothing. Packages: spec.packages and a PEP 723
block pip-installed from a local index into the per-function target; importable ones skipped."""

import hashlib
import http.server
import io
import os
import secrets
import sys
import tarfile
import threading

import workerlib as wl
from wheels import wheel, zip_bytes

failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)






def tar_gz():
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as t:
        data = b"inside the archive"
        info = tarfile.TarInfo("inside.txt")
        info.size = len(data)
        t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


FILES = {
    "/stage/helper.py": b"def add_one(x):\n    return x + 1\n",
    "/stage/a/data.txt": b"first",
    "/stage/b/data.txt": b"second",
    "/stage/archive.tar.gz": tar_gz(),
    "/stage/zipmod.zip": zip_bytes({"zipmod.py": "VALUE = 'from zip'\n"}),
    "/stage/whlmod-1.0-py3-none-any.whl": zip_bytes({"whlmod.py": "VALUE = 'from whl'\n"}),
    "/stage/eggmod-1.0-py3.egg": zip_bytes({"eggmod.py": "VALUE = 'from egg'\n"}),
    "/simple/tinypkg/": None,  # filled in below
    "/files/tinypkg-1.0-py3-none-any.whl": wheel("tinypkg", "1.0", "VALUE = 'tiny'\n"),
    "/simple/pep723pkg/": None,
    "/files/pep723pkg-2.0-py3-none-any.whl": wheel("pep723pkg", "2.0", "VALUE = 'pep'\n"),
}
FILES["/simple/tinypkg/"] = (b'<html><body><a href="/files/tinypkg-1.0-py3-none-any.whl">'
                            b"tinypkg-1.0-py3-none-any.whl</a></body></html>")
FILES["/simple/pep723pkg/"] = (b'<html><body><a href="/files/pep723pkg-2.0-py3-none-any.whl">'
                              b"pep723pkg-2.0-py3-none-any.whl</a></body></html>")
GETS = {}


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        path = self.path.split("?", 1)[0]
        GETS[path] = GETS.get(path, 0) + 1
        data = FILES.get(path)
        if data is None:
            self.send_response(404)
            self.end_headers()
            return
        if path.startswith("/stage/") and "X-Amz-Signature=" not in self.path:
            self.send_response(403)  # like a presigned url without its signature
            self.end_headers()
            return
        if path.startswith("/stage/") and self.headers.get("x-test-header") != "yes":
            self.send_response(401)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("ETag", '"' + hashlib.md5(data).hexdigest() + '"')
        self.send_header("Content-Length", str(len(data)))
        if path.startswith("/simple/"):
            self.send_header("Content-Type", "text/html")
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def presigned(port, path):
    return f"http://127.0.0.1:{port}{path}?X-Amz-Expires=300&X-Amz-Signature={secrets.token_hex(8)}"


def imports_for(port):
    out = []
    for path in ("/stage/helper.py", "/stage/a/data.txt", "/stage/b/data.txt",
                 "/stage/archive.tar.gz", "/stage/zipmod.zip",
                 "/stage/whlmod-1.0-py3-none-any.whl", "/stage/eggmod-1.0-py3.egg"):
        out.append({"location": "@udf_stage" + path[len("/stage"):],
                    "url": presigned(port, path),
                    "tag": hashlib.md5(FILES[path]).hexdigest(),
                    "headers": {"x-test-header": "yes"}})
    return out


CODE = """
import os, sys
import helper, zipmod, whlmod, eggmod
def f(x):
    d = sys._xoptions["databend_import_directory"]
    data = open(os.path.join(d, "data.txt")).read()
    names = sorted(os.listdir(d))
    return "|".join([str(helper.add_one(x)), data, zipmod.VALUE, whlmod.VALUE, eggmod.VALUE,
                     str("archive.tar.gz" in names), str(os.path.isdir(os.path.join(d, "a")))])
"""


def main():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    port = httpd.server_address[1]
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    cache = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"udf-import-cache-{os.getpid()}")

    for round_ in (1, 2):
        body = wl.structured(function="f", handler="f", input_types=["INT"],
                             result_type="VARCHAR", code=CODE, imports=imports_for(port))
        before = dict(GETS)
        with wl.Worker(extra_args=[f"--cache-dir={cache}"]) as w:
            w.specialize(body)
            st = w.wait_state()
            check(st["state"] == "ready", f"round {round_}: ready {st}")
            if st["state"] != "ready":
                print(w.logs())
                continue
            t = wl.call(w.flight_port, "f", wl.int_batch([41]), body["token"])
            got = t.column(0).to_pylist()[0]
            check(got == "42|second|from zip|from whl|from egg|True|False",
                  f"round {round_}: imports visible to the UDF: {got}")
        fetched = {p: GETS.get(p, 0) - before.get(p, 0) for p in GETS}
        stage_gets = sum(n for p, n in fetched.items() if p.startswith("/stage/"))
        if round_ == 1:
            check(stage_gets == 7, f"round 1 downloads every import once ({stage_gets})")
        else:
            check(stage_gets == 0, f"round 2, same tags, new presigned urls: no download "
                                   f"({stage_gets})")

    # A missing import fails at step "import", naming the location and the HTTP status.
    bad = [{"location": "@udf_stage/missing.py", "url": presigned(port, "/stage/missing.py"),
            "tag": "abc", "headers": {"x-test-header": "yes"}}]
    body = wl.structured(imports=bad)
    with wl.Worker(extra_args=[f"--cache-dir={cache}"]) as w:
        w.specialize(body)
        st = w.wait_state()
        check(st["state"] == "failed" and st["step"] == "import" and
              "@udf_stage/missing.py" in st["reason"] and "404" in st["reason"],
              f"missing import: {st}")

    # Packages from a local index: one from spec.packages, one from a PEP 723 block; an
    # importable one (pyarrow) is skipped.
    code = ("# /// script\n# dependencies = [\n#   \"pep723pkg>=2\",\n#   \"pyarrow\",\n# ]\n"
            "# ///\nimport tinypkg, pep723pkg\n"
            "def f(x):\n    return tinypkg.VALUE + pep723pkg.VALUE\n")
    body = wl.structured(function="f", handler="f", input_types=["INT"], result_type="VARCHAR",
                         code=code, packages=["tinypkg==1.0"])
    os.environ["PIP_INDEX_URL"] = f"http://127.0.0.1:{port}/simple/"
    os.environ["PIP_TRUSTED_HOST"] = "127.0.0.1"
    try:
        with wl.Worker() as w:
            w.specialize(body)
            st = w.wait_state(timeout=180)
            check(st["state"] == "ready", f"packages: ready {st}")
            if st["state"] == "ready":
                t = wl.call(w.flight_port, "f", wl.int_batch([1]), body["token"])
                check(t.column(0).to_pylist() == ["tinypep"], "packages importable by the UDF")
                check(os.path.isdir(os.path.join(w.work_dir, ".packages", "tinypkg")),
                      "installed into the per-function target")
            check(GETS.get("/simple/pyarrow/", 0) == 0, "importable pyarrow was not fetched")
        body = wl.structured(packages=["nosuchpkg==9"])
        with wl.Worker() as w:
            w.specialize(body)
            st = w.wait_state(timeout=180)
            check(st["state"] == "failed" and st["step"] == "packages" and
                  "nosuchpkg" in st["reason"], f"missing package: {st}")
    finally:
        del os.environ["PIP_INDEX_URL"]
        del os.environ["PIP_TRUSTED_HOST"]
    httpd.shutdown()
    import shutil

    shutil.rmtree(cache, ignore_errors=True)
    if failures:
        print(f"{len(failures)} failure(s)")
        return 1
    print("all passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
