"""Pod start latency on the real node, for hack/bench/node.sh: creates N pods per runtime,
runc and gVisor alternating, each only after the previous one is Ready, and times create ->
Running and create -> Ready from a watch on the namespace (client-side clock, sub-second);
with --containerd-log, also the runtime's own share from containerd's CRI log. Prints one
JSON line per runtime."""

import argparse
import base64
import json
import os
import re
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request


def client(kubectl, kubeconfig):
    raw = json.loads(subprocess.run(
        [kubectl, "--kubeconfig", kubeconfig, "config", "view", "--raw", "--minify", "-o", "json"],
        check=True, capture_output=True, text=True).stdout)
    cluster, user = raw["clusters"][0]["cluster"], raw["users"][0]["user"]
    cfg = {"server": cluster["server"], **cluster, **user}
    tmp = tempfile.mkdtemp(prefix="node-bench-")
    paths = {}
    for key in ("certificate-authority-data", "client-certificate-data", "client-key-data"):
        p = os.path.join(tmp, key)
        with open(p, "wb") as f:
            f.write(base64.b64decode(cfg[key]))
        paths[key] = p
    try:
        ctx = ssl.create_default_context(cafile=paths["certificate-authority-data"])
        ctx.load_cert_chain(paths["client-certificate-data"], paths["client-key-data"])
    finally:
        # The key is loaded; leave no copy of the admin credentials behind.
        shutil.rmtree(tmp, ignore_errors=True)
    opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=ctx),
                                         urllib.request.ProxyHandler({}))
    return cfg["server"], opener


def request(server, opener, method, path, body=None, timeout=30):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(server + path, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    return opener.open(req, timeout=timeout)


def pod(name, runtime_class, image):
    spec = {"automountServiceAccountToken": False, "terminationGracePeriodSeconds": 0,
            "containers": [{"name": "main", "image": image, "imagePullPolicy": "Never"}]}
    if runtime_class:
        spec["runtimeClassName"] = runtime_class
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


def containerd_times(log_path, namespace):
    """From containerd's CRI log: per pod name, seconds from RunPodSandbox's start to its
    return (sandbox) and to StartContainer's return (sandbox + container)."""
    from datetime import datetime
    ts = re.compile(r'time="([^"]+)"')
    start, sandbox_done, sid_of, cid_sid, started = {}, {}, {}, {}, {}

    def t(line):
        v = ts.search(line).group(1).rstrip("Z")
        whole, _, frac = v.partition(".")
        return datetime.fromisoformat(whole).timestamp() + float("0." + (frac or "0"))

    with open(log_path, errors="replace") as f:
        for line in f:
            if f"Namespace:{namespace}," in line and "RunPodSandbox for &PodSandboxMetadata" in line:
                name = re.search(r"Name:([^,]+),", line).group(1)
                m = re.search(r'returns sandbox id \\"([0-9a-f]+)', line)
                if m:
                    sandbox_done[name] = t(line)
                    sid_of[m.group(1)] = name
                else:
                    start[name] = t(line)
            elif "CreateContainer within sandbox" in line and "returns container id" in line:
                sid = re.search(r'sandbox \\"([0-9a-f]+)', line).group(1)
                cid = re.search(r'returns container id \\"([0-9a-f]+)', line).group(1)
                cid_sid[cid] = sid
            elif "StartContainer for" in line and "returns successfully" in line:
                cid = re.search(r'StartContainer for \\"([0-9a-f]+)', line).group(1)
                name = sid_of.get(cid_sid.get(cid, ""))
                if name:
                    started[name] = t(line)
    out = {}
    for name, t0 in start.items():
        if name in sandbox_done and name in started:
            out[name] = (sandbox_done[name] - t0, started[name] - t0)
    return out


def pct(values, p):
    s = sorted(values)
    k = (len(s) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kubectl", required=True)
    ap.add_argument("--kubeconfig", required=True)
    ap.add_argument("--namespace", required=True)
    ap.add_argument("--pods", type=int, default=20)
    ap.add_argument("--image", default="localhost/pause:dev")
    ap.add_argument("--containerd-log", help="containerd's log, for the runtime-side times")
    args = ap.parse_args()
    server, opener = client(args.kubectl, args.kubeconfig)
    ns = args.namespace
    events = {}  # pod name -> {"running": t, "ready": t}
    cond = threading.Condition()

    def watch():
        path = f"/api/v1/namespaces/{ns}/pods?watch=1&allowWatchBookmarks=false"
        with request(server, opener, "GET", path, timeout=3600) as r:
            for line in r:
                now = time.monotonic()
                obj = json.loads(line)["object"]
                name = obj["metadata"]["name"]
                st = obj.get("status", {})
                with cond:
                    e = events.setdefault(name, {})
                    if st.get("phase") == "Running" and "running" not in e:
                        e["running"] = now
                    ready = any(c["type"] == "Ready" and c["status"] == "True"
                                for c in st.get("conditions", []))
                    if ready and "ready" not in e:
                        e["ready"] = now
                    cond.notify_all()

    threading.Thread(target=watch, daemon=True).start()
    time.sleep(0.5)
    # Alternate the runtimes so both see the same node (load, pods already running).
    runtimes = (("runc", None), ("runsc", "gvisor"))
    to_running = {r: [] for r, _ in runtimes}
    to_ready = {r: [] for r, _ in runtimes}
    for i in range(args.pods):
        for runtime, rc in runtimes:
            name = f"{runtime}-{i:02d}"
            t0 = time.monotonic()
            request(server, opener, "POST", f"/api/v1/namespaces/{ns}/pods",
                    pod(name, rc, args.image)).read()
            with cond:
                if not cond.wait_for(lambda: "ready" in events.get(name, {}), timeout=120):
                    print(f"pod {name} not Ready within 120 s", file=sys.stderr)
                    return 1
                e = events[name]
            to_running[runtime].append(e["running"] - t0)
            to_ready[runtime].append(e["ready"] - t0)
    results = []
    for runtime, _ in runtimes:
        results.append({
            "runtime": runtime, "pods": args.pods,
            "running_p50_ms": 1000 * statistics.median(to_running[runtime]),
            "running_p90_ms": 1000 * pct(to_running[runtime], 90),
            "ready_p50_ms": 1000 * statistics.median(to_ready[runtime]),
            "ready_p90_ms": 1000 * pct(to_ready[runtime], 90),
        })
    if args.containerd_log:
        time.sleep(0.5)
        times = containerd_times(args.containerd_log, ns)
        for r in results:
            mine = [v for k, v in times.items() if k.startswith(r["runtime"] + "-")]
            if mine:
                r["sandbox_p50_ms"] = 1000 * statistics.median(v[0] for v in mine)
                r["sandbox_p90_ms"] = 1000 * pct([v[0] for v in mine], 90)
                r["started_p50_ms"] = 1000 * statistics.median(v[1] for v in mine)
                r["started_p90_ms"] = 1000 * pct([v[1] for v in mine], 90)
    for r in results:
        print(json.dumps(r), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
