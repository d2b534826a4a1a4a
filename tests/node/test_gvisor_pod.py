"""A pod with runtimeClassName gvisor on the real node: it reaches Running, the kernel inside
is gVisor's, its HTTP port answers from the host at the pod IP and through a ClusterIP Service
(kube-proxy), `kubectl exec` and `kubectl logs` work, and a runc pod beside it sees the host's
kernel."""

import sys

import nodelib as nl


def main():
    nl.ensure_node(worker_image=True)
    with nl.Namespace("node-gvisor") as ns:
        ns.apply(nl.pod_manifest("gv", nl.WORKER_IMAGE, runtime_class="gvisor",
                                 command=nl.KERNEL_SERVER, port=8080))
        ns.apply(nl.pod_manifest("rc", nl.WORKER_IMAGE, command=nl.KERNEL_SERVER, port=8080))
        for pod in ("gv", "rc"):
            nl.check(ns.wait_ready(pod), f"pod {pod} Ready")
        gv, rc = ns.pod("gv"), ns.pod("rc")
        nl.check(gv["status"]["phase"] == "Running", "gVisor pod Running")
        nl.check(gv["spec"].get("runtimeClassName") == "gvisor", "gVisor pod has runtimeClassName")

        uname = ns.kubectl("exec", "gv", "--", "uname", "-r", check=False).stdout.strip()
        nl.check("gvisor" in uname, f"kernel in the gVisor pod is gVisor's: {uname!r}")
        host_kernel = nl.run("uname", "-r").stdout.strip()
        uname_rc = ns.kubectl("exec", "rc", "--", "uname", "-r", check=False).stdout.strip()
        nl.check(uname_rc == host_kernel, f"runc pod sees the host kernel: {uname_rc!r}")

        ip = gv["status"].get("podIP")
        status, body = nl.http_get(f"http://{ip}:8080/")
        nl.check(status == 200 and "gvisor" in body,
                 f"gVisor pod's port answers from the host at {ip}: {status} {body!r}")

        ns.kubectl("expose", "pod", "gv", "--name", "gv", "--port", "80", "--target-port", "8080")
        cip = ns.kubectl("get", "svc", "gv", "-o", "jsonpath={.spec.clusterIP}").stdout.strip()
        status, body = nl.http_get(f"http://{cip}/")
        nl.check(status == 200 and "gvisor" in body,
                 f"ClusterIP Service {cip} reaches the gVisor pod from the host: {status}")
        # From inside gVisor to the Service that leads back to the same pod (hairpin).
        r = ns.kubectl("exec", "gv", "--", "/opt/udf/venv/bin/python", "-c",
                       "import urllib.request;"
                       f"print(urllib.request.urlopen('http://{cip}/', timeout=5).read().decode())",
                       check=False)
        nl.check(r.returncode == 0 and "gvisor" in r.stdout,
                 f"gVisor pod reaches its own Service (hairpin): {r.stdout.strip()!r}")

        logs = ns.kubectl("logs", "gv", check=False)
        nl.check(logs.returncode == 0 and '"GET / HTTP' in logs.stdout + logs.stderr,
                 "kubectl logs shows the gVisor pod's requests")
    return nl.finish()


if __name__ == "__main__":
    sys.exit(main())
