"""e2e_deployed: the system as users deploy it, called as Databend calls it, through faults.

`make run`'s path (hack/run.sh: cluster and node, images, CRDs, the chart with two operator
replicas and leader election) with the gRPC port opened to the outside host; then, from the
outside host (e2elib.py), client.py as a query node:
  - protocols 1, 2 and 3 with imports (.py, data file, zip, whl, egg) from the outside host's
    presigned-style server, a package from its index, two tenants;
  - a claimed pod killed under load: replaced, the client's next statement succeeds;
  - the leader operator pod deleted mid-burst of new UDFs: the other replica leads, no call
    answered DEADLINE_EXCEEDED, every UDF served, no pod leaked or published twice;
  - kube-apiserver stopped and started mid-burst: hot calls keep answering, new UDFs are
    served once it is back, nothing leaked.
The release stays installed (`make run` leaves it too); the test's tenant namespaces go.
"""

import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import e2elib as e  # noqa: E402
from e2elib import check  # noqa: E402

TAG = "e2e%d" % (e.PID % 100000)


def summarize(records):
    out = {}
    for r in records:
        k = out.setdefault(r["kind"], {"ok": 0, "failed": 0, "codes": {}})
        if r["ok"]:
            k["ok"] += 1
        else:
            k["failed"] += 1
            key = "%s:%s" % (r.get("stage"), r.get("code"))
            k["codes"][key] = k["codes"].get(key, 0) + 1
    return out


def wait_for(pred, seconds, step=1.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(step)
    return pred()


def functions_of_tenant(tenant):
    """The UdfFunctions in the namespace the gRPC service made for tenant (its annotation
    udf.sandbox.io/tenant names the tenant exactly)."""
    out = []
    for ns in e.kjson("get", "namespaces")["items"]:
        if ns["metadata"].get("annotations", {}).get("udf.sandbox.io/tenant") == tenant:
            out += e.kjson("-n", ns["metadata"]["name"], "get", "udffunctions")["items"]
    return out


def pods_of(fn):
    pods = e.kjson("-n", e.SANDBOX_NS, "get", "pods", "-l", "%s=%s" % (e.FUNCTION_UID, fn["metadata"]["uid"]))["items"]
    return [p for p in pods if not p["metadata"].get("deletionTimestamp")]


def unserved(records):
    """UDFs of the records that no statement ever served."""
    served = {r["udf"] for r in records if r["ok"]}
    return sorted({r["udf"] for r in records} - served)


def not_retryable(records):
    """Failures a query node cannot simply run again: anything but the operator's UNAVAILABLE
    ("still being provisioned" / "shutting down; retry")."""
    return [r for r in records if not r["ok"] and (r.get("stage"), r.get("code")) != ("grpc", "UNAVAILABLE")]


def wait_settled(path, udfs, threads, again=0, timeout=240):
    """Waits until a burst load has made its new UDFs, every one is served (a statement
    answered UNAVAILABLE is run again a second later: stopping the load before that run would
    leave a UDF unserved by the test, not by the operator), and its threads use them again
    (at least `again` such statements)."""
    def settled():
        recs = load_records(path)
        made = {r["udf"] for r in recs if r["kind"] == "new"}
        reused = [r for r in recs if r["kind"] == "again"]
        return (len(made) >= udfs and len({r["tenant"] for r in reused}) >= threads
                and len(reused) >= again and not unserved(recs))
    wait_for(settled, timeout)


def load_records(path):
    return e.read_load(path)[0]


def fault_pod_killed(outside, addr):
    load, path = outside.client_bg("load", addr, "--mode", "hot", "--seconds", "300", "--concurrency", "2",
                                   "--tag", TAG + "h")
    # The load's tenants are e2e_<TAG>h_0 and _1: kill the pod serving tenant 0's add_one.
    tenant = "e2e_%sh_0" % TAG
    fn = wait_for(lambda: next((f for f in functions_of_tenant(tenant) if pods_of(f)
                                and any(r["ok"] and r["tenant"] == tenant for r in load_records(path))), None), 90)
    if not check(fn is not None, "pod kill: tenant %s's add_one is served by a claimed pod" % tenant):
        e.stop_load(load, path)
        return
    name = pods_of(fn)[0]["metadata"]["name"]
    t_kill = time.time()
    e.kubectl("-n", e.SANDBOX_NS, "delete", "pod", name, "--grace-period=0", "--force", check=False)

    def replaced():
        ready = [p for p in pods_of(fn) if p["metadata"]["name"] != name and any(
            c["type"] == "Ready" and c["status"] == "True" for c in p.get("status", {}).get("conditions", []))]
        return ready[0]["metadata"]["name"] if ready else None
    new = wait_for(replaced, 90)
    t_new = time.time()
    check(bool(new), "pod kill: %s replaced by %s (%.1f s)" % (name, new, t_new - t_kill))
    # The statement in flight at the kill may fail (its endpoint is gone); the next ones not.
    after = lambda: [r for r in load_records(path) if r["tenant"] == tenant and r["t0"] > t_new + 1]  # noqa: E731
    wait_for(lambda: len(after()) >= 5, 120)
    records, _, other = e.stop_load(load, path)
    print("     pod kill: %s" % json.dumps(summarize(records)), flush=True)
    nxt = after()
    check(len(nxt) >= 5 and all(r["ok"] for r in nxt),
          "pod kill: every statement begun after the new pod is Ready succeeds (%d): %s"
          % (len(nxt), [r for r in nxt if not r["ok"]][:2]))
    check(not other, "pod kill: the client printed no errors: %s" % other[:3])


def fault_leader_killed(outside, addr):
    old = e.leader()
    load, path = outside.client_bg("load", addr, "--mode", "burst", "--seconds", "600", "--concurrency", "2",
                                   "--count", "3", "--rows", "4096", "--tag", TAG + "l")
    wait_for(lambda: len(load_records(path)) >= 1, 60, 0.2)
    t_kill = time.time()
    e.kubectl("-n", e.OPERATOR_NS, "delete", "pod", old, "--wait=false")
    new = wait_for(lambda: (lambda ld: ld if ld and ld != old else None)(e.leader()), 60, 0.5)
    check(bool(new), "leader kill: %s deleted, %s leads after %.1f s" % (old, new, time.time() - t_kill))
    wait_settled(path, udfs=6, threads=2)
    records, _, other = e.stop_load(load, path)
    print("     leader kill: %s" % json.dumps(summarize(records)), flush=True)
    deadline = [r for r in records if r.get("code") == "DEADLINE_EXCEEDED"]
    check(not deadline, "leader kill: no call answered DEADLINE_EXCEEDED (%d statements): %s" % (len(records), deadline[:2]))
    check(not unserved(records), "leader kill: every new UDF is served: %s left" % unserved(records))
    bad = not_retryable(records)
    check(not bad, "leader kill: a failed statement is only ever UNAVAILABLE, to run again: %s" % bad[:3])
    check(sum(1 for r in records if r["kind"] == "new" and r["t0"] > t_kill) > 0,
          "leader kill: new UDFs were being made after the kill")
    orphans, shared = e.wait_no_orphans(30)
    check(not orphans and not shared, "leader kill: no pod leaked (%s) or published by two functions (%s)" % (orphans, shared))
    check(not other, "leader kill: the client printed no errors: %s" % other[:3])
    r = e.kubectl("-n", e.OPERATOR_NS, "rollout", "status", "deploy/udf-operator", "--timeout=300s", check=False)
    check(r.returncode == 0, "leader kill: the Deployment has two replicas again: %s" % (r.stdout + r.stderr).strip()[-200:])


def fault_apiserver_restart(outside, addr):
    hot, hpath = outside.client_bg("load", addr, "--mode", "hot", "--seconds", "600", "--concurrency", "1",
                                   "--rows", "4096", "--tag", TAG + "a")
    wait_for(lambda: any(r["ok"] for r in load_records(hpath)), 90)
    burst, bpath = outside.client_bg("load", addr, "--mode", "burst", "--seconds", "600", "--concurrency", "1",
                                     "--count", "3", "--rows", "4096", "--tag", TAG + "b")
    wait_for(lambda: len(load_records(bpath)) >= 1, 60, 0.2)
    cluster = os.path.join(e.ROOT, "hack", "cluster.sh")
    t_stop = time.time()
    e.sh(cluster, "stop", "kube-apiserver")
    time.sleep(6)
    t_start = time.time()
    e.sh(cluster, "up", timeout=300)
    t_up = time.time()
    print("     kube-apiserver down %.1f s, serving again after %.1f s" % (t_start - t_stop, t_up - t_stop), flush=True)
    wait_settled(bpath, udfs=3, threads=1, again=3)
    time.sleep(3)
    hrec, _, hother = e.stop_load(hot, hpath)
    brec, _, bother = e.stop_load(burst, bpath)
    print("     apiserver restart: hot %s; new %s" % (json.dumps(summarize(hrec)), json.dumps(summarize(brec))), flush=True)
    hot_out = [r for r in hrec if r["t0"] >= t_stop and r["t"] <= t_up]
    check(len(hot_out) > 0 and all(r["ok"] for r in hot_out),
          "apiserver restart: hot statements while it was down all succeed (%d): %s"
          % (len(hot_out), [r for r in hot_out if not r["ok"]][:2]))
    check(all(r["ok"] for r in hrec), "apiserver restart: no hot statement failed at all: %s"
          % [r for r in hrec if not r["ok"]][:2])
    check(not unserved(brec), "apiserver restart: every new UDF is served: %s left" % unserved(brec))
    bad = not_retryable(brec) + [r for r in brec if r.get("code") == "DEADLINE_EXCEEDED"]
    check(not bad, "apiserver restart: a failed new-UDF statement is only ever UNAVAILABLE: %s" % bad[:3])
    orphans, shared = e.wait_no_orphans(60)
    check(not orphans and not shared, "apiserver restart: no pod leaked (%s) or published twice (%s)" % (orphans, shared))
    check(not hother and not bother, "apiserver restart: the clients printed no errors: %s" % (hother + bother)[:3])


def main():
    addr = e.deploy()
    def serving():
        pods = [p for p in e.operator_pods() if not p["metadata"].get("deletionTimestamp")]
        ready = [p for p in pods if any(c["type"] == "Ready" and c["status"] == "True"
                                         for c in p["status"].get("conditions", []))]
        return pods if len(pods) == 2 and len(ready) == 2 else None
    pods = wait_for(serving, 120)
    check(bool(pods), "two operator replicas, probes green: %s" % [p["metadata"]["name"] for p in e.operator_pods()])
    pods = pods or []
    check(e.leader() in [p["metadata"]["name"] for p in pods], "one replica holds the Lease: %s" % e.leader())
    pool = e.kjson("-n", e.SANDBOX_NS, "get", "udfpool", "default")
    check(pool.get("status", {}).get("readyReplicas", 0) >= 1, "the default pool is warm: %s" % pool.get("status", {}).get("readyReplicas"))
    with e.OutsideHost() as outside:
        try:
            r = outside.client("protocols", addr, outside.url, timeout=900)
            print(r.stdout + r.stderr, flush=True)
            check(r.returncode == 0, "protocols 1, 2, 3, imports, a package, two tenants (client.py protocols)")
            gets = outside.requests()
            check(any(g.startswith("GET /simple/tinypkg") for g in gets), "a sandbox fetched the package index on the outside host")
            check(any("bytes=0-0" in g for g in gets), "the operator read ETags from the outside host (one-byte ranged GETs)")
            fault_pod_killed(outside, addr)
            fault_leader_killed(outside, addr)
            fault_apiserver_restart(outside, addr)
        finally:
            e.delete_tenants_of(lambda t: t.startswith(("e2e_a_", "e2e_b_")) or TAG in t)
    orphans, shared = e.wait_no_orphans(120)
    check(not orphans, "after the tenants are deleted no claimed pod is left: %s" % orphans)
    sys.exit(e.finish())


if __name__ == "__main__":
    main()
