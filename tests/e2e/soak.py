"""`make soak` (10 minutes) and ctest's e2e_soak (2 minutes): mixed Databend-like load on the
system as `make run` deploys it, from the outside host, then a report.

The load (client.py load --mode mixed, 2 query-node threads, two tenants): hot statements on
one UDF (85%) and protocol 3 cycles (15%: CreateWorker with a new script, SUSPEND, RESUME,
DROP), each statement a gRPC call and a 65,536-row DoExchange; a new UDF's statement the
operator answers UNAVAILABLE is run again a second later, as a user would.

Report: statements by kind and outcome, p50/p99 per kind, pods leaked (claimed pods whose
function is gone, pods two functions publish) once the load's tenants are deleted, and each
operator replica's resident memory at start and end. Fails on any failure a query node could
not simply run again, a UDF never served, a leaked pod, or an operator whose memory more than
doubles (plus 32 MiB) or passes its 256 MiB limit.

    soak.py --seconds 600
"""

import argparse
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import e2elib as e  # noqa: E402
from e2elib import check  # noqa: E402

LIMIT = 256 << 20


def pct(values, q):
    v = sorted(values)
    return v[min(len(v) - 1, int(len(v) * q))] if v else None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=600)
    ap.add_argument("--concurrency", type=int, default=2)
    args = ap.parse_args()
    tag = "soak%d" % (e.PID % 100000)
    addr = e.deploy()
    rss0 = e.operator_rss()
    check(len(rss0) == 2, "operator RSS read from the node for both replicas: %s" % rss0)
    t0 = time.time()
    with e.OutsideHost() as outside:
        try:
            load, path = outside.client_bg("load", addr, "--mode", "mixed", "--seconds", str(args.seconds),
                                           "--concurrency", str(args.concurrency), "--tag", tag)
            load.wait(args.seconds + 300)
            records, _, other = e.stop_load(load, path)
            rss1 = e.operator_rss()
            _, orphans_live, shared_live = e.pod_accounting()
        finally:
            e.delete_tenants_of(lambda t: tag in t)
    orphans, shared = e.wait_no_orphans(120)
    elapsed = time.time() - t0

    print("\nsoak report: %.0f s of load, %d query-node threads, %d statements" % (elapsed, args.concurrency, len(records)))
    print("%-10s %8s %8s %10s %10s  %s" % ("kind", "ok", "failed", "p50 ms", "p99 ms", "failures by code"))
    kinds = sorted({r["kind"] for r in records})
    for k in kinds:
        rs = [r for r in records if r["kind"] == k]
        ok = [r["ms"] for r in rs if r["ok"]]
        codes = {}
        for r in rs:
            if not r["ok"]:
                key = "%s:%s" % (r.get("stage"), r.get("code"))
                codes[key] = codes.get(key, 0) + 1
        print("%-10s %8d %8d %10s %10s  %s" % (k, len(ok), len(rs) - len(ok), pct(ok, 0.5), pct(ok, 0.99), codes or ""))
    print("leaked pods: %d during (%s), %d after the tenants went (%s); pods published twice: %d"
          % (len(orphans_live), orphans_live[:3], len(orphans), orphans[:3], len(shared)))
    for pod in sorted(rss0):
        print("operator %s RSS: %.1f MiB at start, %.1f MiB at end"
              % (pod, rss0[pod] / 2**20, rss1.get(pod, 0) / 2**20))
    print()

    check(len(records) > 0 and any(r["kind"] == "hot" and r["ok"] for r in records), "the load ran statements")
    bad = [r for r in records if not r["ok"] and (r.get("stage"), r.get("code")) != ("grpc", "UNAVAILABLE")]
    check(not bad, "no failure a query node could not run again: %s" % bad[:3])
    check(not any(r.get("code") == "DEADLINE_EXCEEDED" for r in records), "no DEADLINE_EXCEEDED")
    served = {r["udf"] for r in records if r["ok"]}
    never = sorted({r["udf"] for r in records if r["kind"] in ("worker", "hot")} - served)
    # A UDF whose last attempt was cut off by the end of the load is not counted against it.
    never = [u for u in never if not all(r["t"] > t0 + args.seconds - 100 for r in records if r["udf"] == u)]
    check(not never, "every UDF was served: %s never" % never)
    hot = [r for r in records if r["kind"] == "hot"]
    check(hot and all(r["ok"] for r in hot[len(hot) // 10:]), "hot statements after the first tenth all succeed")
    check(not orphans and not shared and not shared_live, "no pod leaked or published twice")
    for pod, start in rss0.items():
        end = rss1.get(pod)
        check(end is not None and end < LIMIT and end <= 2 * start + (32 << 20),
              "operator %s memory stays bounded: %.1f -> %s MiB" % (pod, start / 2**20, end and round(end / 2**20, 1)))
    check(not other, "the client printed no errors: %s" % other[:3])
    sys.exit(e.finish())


if __name__ == "__main__":
    main()
