"""kube_rest_roundtrip: create, conditional update and 409, merge / JSON (test op) /
server-side apply patches, delete with preconditions and propagation, status and scale."""

from kubehelp import fresh_namespace, kubectl, kubetool, log, fail
import cluster


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
        print("PASS kube_rest_roundtrip")
    finally:
        kubectl(kc, "delete", "namespace", ns, "--wait=false", check=False)


if __name__ == "__main__":
    main()
