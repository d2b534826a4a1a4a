"""kube_rest_roundtrip: create, conditional update and 409, merge / JSON (test op) /
server-side apply patches, delete with preconditions and propagation, status and scale."""

import base64
import os
import tempfile
import urllib.parse

from kubehelp import fresh_namespace, kubectl, kubetool, log, fail
import cluster
from faultproxy import _read_kubeconfig


def tls_variants(kc):
    """tls-server-name, insecure-skip-tls-verify, file paths relative to the kubeconfig, and a
    CA that does not match: each either connects or fails the way it should."""
    f = _read_kubeconfig(kc)
    d = tempfile.mkdtemp(prefix="kube-tls-")
    os.mkdir(os.path.join(d, "pki"))
    for key, name in (("certificate-authority-data", "ca.crt"),
                      ("client-certificate-data", "admin.crt"),
                      ("client-key-data", "admin.key")):
        with open(os.path.join(d, "pki", name), "wb") as out:
            out.write(base64.b64decode(f[key]))
    server = urllib.parse.urlparse(f["server"])
    user = "{client-certificate: pki/admin.crt, client-key: pki/admin.key}"

    def try_config(cluster_fields, want_ok):
        path = os.path.join(d, "kubeconfig")
        with open(path, "w") as out:
            out.write("current-context: c\n"
                      f"clusters: [{{name: k, cluster: {{{cluster_fields}}}}}]\n"
                      "contexts: [{name: c, context: {cluster: k, user: u}}]\n"
                      f"users: [{{name: u, user: {user}}}]\n")
        out = kubetool(path, "get", "/version", check=False)
        ok = out.stdout.startswith("200 ")
        if ok != want_ok:
            fail(f"{cluster_fields}: expected {'success' if want_ok else 'failure'}, got "
                 f"{out.stdout.strip()[:200]} {out.stderr.strip()[:200]}")
        log(f"{'connects' if ok else 'refused as it should'}: {cluster_fields}")

    url = f"https://{server.hostname}:{server.port}"
    try_config(f"server: '{url}', certificate-authority: pki/ca.crt", True)
    # The apiserver's certificate names "kubernetes" (and 127.0.0.1), not "not-in-the-cert".
    try_config(f"server: '{url}', certificate-authority: pki/ca.crt, "
               "tls-server-name: kubernetes", True)
    try_config(f"server: '{url}', certificate-authority: pki/ca.crt, "
               "tls-server-name: not-in-the-cert", False)
    try_config(f"server: '{url}', certificate-authority: pki/admin.crt", False)
    try_config(f"server: '{url}', insecure-skip-tls-verify: true", True)


def main():
    kc = cluster.ensure_cluster()
    ns = fresh_namespace(kc, "kube-rest")
    try:
        out = kubetool(kc, "roundtrip", ns)
        log(out.stdout.strip())
        if "ROUNDTRIP OK" not in out.stdout:
            fail("roundtrip did not finish")
        # Errors come back as parsed Status, and a missing object is its own error.
        out = kubetool(kc, "get", f"/api/v1/namespaces/{ns}/configmaps/none", check=False)
        if not out.stdout.startswith("404 ") or '"reason":"NotFound"' not in out.stdout:
            fail(f"unexpected answer for a missing object: {out.stdout[:300]}")
        tls_variants(kc)
        print("PASS kube_rest_roundtrip")
    finally:
        kubectl(kc, "delete", "namespace", ns, "--wait=false", check=False)


if __name__ == "__main__":
    main()
