"""The worker image (hack/image.sh, built from bin/udf-worker and worker/python without
Docker) as a gVisor pod on the real node: udf-worker is PID 1, runs as uid 10001, serves
/healthz on its control port 9000 and /health on 8080, and the image's venv imports pyarrow
and databend-udf."""

import sys

import nodelib as nl

TOKEN_SECRET = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "control-token"},
                "stringData": {"control-token": "node-test-token"}}


def main():
    nl.ensure_node(worker_image=True)
    with nl.Namespace("node-worker") as ns:
        ns.apply(TOKEN_SECRET)
        pod = nl.pod_manifest(
            "worker", nl.WORKER_IMAGE, runtime_class="gvisor", port=9000, probe_path="/healthz",
            volumes=[{"name": "token", "secret": {"secretName": "control-token"}}],
            mounts=[{"name": "token", "mountPath": "/var/run/udf-sandbox"}])
        ns.apply(pod)
        nl.check(ns.wait_ready("worker"), "worker pod Ready under gVisor")
        ip = ns.pod("worker")["status"].get("podIP")

        status, body = nl.http_get(f"http://{ip}:9000/healthz")
        nl.check(status == 200 and body.strip() == "ok", f"GET /healthz on :9000: {status} {body!r}")
        status, body = nl.http_get(f"http://{ip}:8080/health")
        nl.check(status in (200, 503), f"GET /health on :8080 answers: {status} {body!r}")

        r = ns.kubectl("exec", "worker", "--", "id", "-u", check=False)
        nl.check(r.stdout.strip() == "10001", f"runs as uid 10001: {r.stdout.strip()!r}")
        r = ns.kubectl("exec", "worker", "--", "cat", "/proc/1/cmdline", check=False)
        nl.check(r.stdout.split("\0")[0] == "/usr/local/bin/udf-worker",
                 f"udf-worker is PID 1: {r.stdout.split(chr(0))[0]!r}")
        r = ns.kubectl("exec", "worker", "--", "uname", "-r", check=False)
        nl.check("gvisor" in r.stdout, f"under gVisor: {r.stdout.strip()!r}")
        r = ns.kubectl("exec", "worker", "--", "/opt/udf/venv/bin/python", "-c",
                       "import pyarrow, pyarrow.flight, databend_udf; print(pyarrow.__version__)",
                       check=False)
        nl.check(r.returncode == 0, f"venv imports pyarrow {r.stdout.strip()} and databend_udf")
        restarts = ns.pod("worker")["status"]["containerStatuses"][0]["restartCount"]
        nl.check(restarts == 0, f"worker container never restarted: {restarts}")
        logs = ns.kubectl("logs", "worker", check=False).stdout
        nl.check("control API on" in logs, "worker log shows the control API listening")
    return nl.finish()


if __name__ == "__main__":
    sys.exit(main())
