"""kube_pagination: LIST over 1500+ objects comes back complete, in pages of 500."""

import json
import os
import tempfile

from kubehelp import (Informer, configmap_list, fresh_namespace, kubectl, kubetool, log, fail)
import cluster
from faultproxy import FaultProxy

N = 1510


def main():
    kc = cluster.ensure_cluster()
    ns = fresh_namespace(kc, "kube-pagination")
    try:
        names = [f"cm-{i:05d}" for i in range(N)]
        for start in range(0, N, 500):
            kubectl(kc, "create", "-f", "-", input=configmap_list(ns, names[start:start + 500]))
        log(f"created {N} configmaps in {ns}")

        out = json.loads(kubetool(kc, "list", "api/v1", "configmaps", ns, "500").stdout)
        got = out["names"]
        log(f"list: {out['count']} objects in {out['pages']} pages, rv {out['rv']}")
        want = set(names) | {"kube-root-ca.crt"}
        if len(got) != len(set(got)):
            fail("duplicates across pages")
        if set(got) != want:
            fail(f"list differs: missing {sorted(want - set(got))[:5]}, "
                 f"extra {sorted(set(got) - want)[:5]}")
        if out["pages"] != (len(want) + 499) // 500:
            fail(f"expected {(len(want) + 499) // 500} pages, got {out['pages']}")
        if not out["rv"]:
            fail("no resourceVersion from the list")

        # Small pages too: the continue token carries across many requests.
        out = json.loads(kubetool(kc, "list", "api/v1", "configmaps", ns, "97").stdout)
        if set(out["names"]) != want or out["pages"] != (len(want) + 96) // 97:
            fail(f"page size 97: {out['count']} objects in {out['pages']} pages")
        log(f"page size 97: {out['count']} objects in {out['pages']} pages")

        # A continue token that expires mid-list (410): the list starts over and still comes
        # back complete and consistent.
        proxy = FaultProxy(kc, seed=3).start()
        try:
            proxy.p_gone_continue = 0.5
            pkc = proxy.kubeconfig(os.path.join(tempfile.mkdtemp(), "proxy.kubeconfig"))
            out = json.loads(kubetool(pkc, "list", "api/v1", "configmaps", ns, "500").stdout)
            if set(out["names"]) != want or len(out["names"]) != len(want):
                fail(f"list after an expired continue token: {out['count']} objects")
            if proxy.counts["gone"] == 0 or out["pages"] <= 4:
                fail(f"no continue token expired ({proxy.counts}); pages {out['pages']}")
            log(f"{proxy.counts['gone']} expired continue tokens: relisted, {out['count']} "
                f"objects in {out['pages']} requests")
        finally:
            proxy.stop()

        # The informer's initial list (resourceVersion=0, paginated) sees them all.
        inf = Informer(kc, ns)
        inf.converge(kc, ns, 60)
        inf.stop()
        log("informer cache matches the server")
        print("PASS kube_pagination")
    finally:
        kubectl(kc, "delete", "namespace", ns, "--wait=false", check=False)


if __name__ == "__main__":
    main()
