"""The sandbox NetworkPolicy the real operator stamps into a tenant namespace (two objects, one
per direction) is manifests/50-networkpolicy.yaml (read here with PyYAML, not the operator's parser), except for
its namespace and the operator's namespace, which is the one the operator runs in
(POD_NAMESPACE). The tenant namespace and its policy come from a gRPC call, as a Databend query
node makes it; the object compared is the one the API server stored. A policy changed or
deleted by hand (kubectl) is put back by the next call that ensures the tenant's namespace, and
one that has not drifted is left alone (its resourceVersion does not move).
"""

import copy
import json
import os
import unittest

import grpc
import yaml

import grpctest as gt
from cluster import kubectl
from grpctest import metadata, request, spec

MANIFEST = os.path.join(gt.SOURCE_DIR, "manifests", "50-networkpolicy.yaml")
# Not the manifest's udf-system: the test must see the operator put its own namespace there.
OPERATOR_NS = f"np-op-{gt.PID}"
NS_LABEL = "kubernetes.io/metadata.name"


NAMES = ("udf-sandbox", "udf-sandbox-egress")


def manifest():
    """The manifest's policies by name: one per direction."""
    with open(MANIFEST, encoding="utf-8") as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    assert [d["metadata"]["name"] for d in docs] == list(NAMES), \
        f"{MANIFEST} holds {[d['metadata']['name'] for d in docs]}"
    return {d["metadata"]["name"]: d for d in docs}


def operator_peers(policy):
    return [peer for rule in policy["spec"].get("ingress", []) for peer in rule.get("from", [])
            if NS_LABEL in peer.get("namespaceSelector", {}).get("matchLabels", {})]


class StampedNetworkPolicy(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        os.environ["POD_NAMESPACE"] = OPERATOR_NS
        try:
            cls.env = gt.Env()
        finally:
            del os.environ["POD_NAMESPACE"]
        cls.tenant = f"netpol_tenant_{gt.PID}"

    @classmethod
    def tearDownClass(cls):
        cls.env.close_and_check()

    def stamped(self, code=None):
        # No function controller runs: the call answers UNAVAILABLE by its deadline, after the
        # namespace and its policies exist. A new code is a new function: the operator ensures
        # the tenant's namespace (and its policies) again for it.
        with self.assertRaises(grpc.RpcError) as ctx:
            self.env.udf.ApplyUdfResource(request(spec(code=code)),
                                          metadata=metadata(self.tenant), timeout=1.0)
        self.assertEqual(ctx.exception.code(), grpc.StatusCode.UNAVAILABLE,
                         ctx.exception.details())
        ns = self.env.namespace_of(self.tenant)
        self.assertIsNotNone(ns, "the call made no tenant namespace")
        return ns, {name: self.policy(ns, name) for name in NAMES}

    def policy(self, ns, name):
        return self.env.kube.get(
            f"/apis/networking.k8s.io/v1/namespaces/{ns}/networkpolicies/{name}")

    def kubectl_ok(self, ns, *args):
        r = kubectl("-n", ns, *args, check=False)
        self.assertEqual(r.returncode, 0, f"kubectl {args[0]}: {r.stderr}")

    def test_drifted_policy_is_restored(self):
        ns, first = self.stamped()
        rvs = {n: p["metadata"]["resourceVersion"] for n, p in first.items()}
        _, same = self.stamped(code="def add_one(x: int) -> int:\n    return x + 2\n")
        self.assertEqual({n: p["metadata"]["resourceVersion"] for n, p in same.items()}, rvs,
                         "a policy that has not drifted was written again")

        # Opened by hand: the control port to anyone, egress to anywhere on any port, and a
        # label of the operator's changed.
        opened = [{"op": "replace", "path": "/spec/ingress/1/from",
                   "value": [{"namespaceSelector": {}}]}]
        self.kubectl_ok(ns, "patch", "networkpolicy", "udf-sandbox", "--type=json",
                        "-p", json.dumps(opened))
        opened = [{"op": "replace", "path": "/spec/egress", "value": [{}]}]
        self.kubectl_ok(ns, "patch", "networkpolicy", "udf-sandbox-egress", "--type=json",
                        "-p", json.dumps(opened))
        self.kubectl_ok(ns, "label", "networkpolicy", "udf-sandbox-egress", "--overwrite",
                        "app.kubernetes.io/part-of=someone-else")
        drifted = {name: self.policy(ns, name) for name in NAMES}
        self.assertEqual(drifted["udf-sandbox-egress"]["spec"]["egress"], [{}],
                         "the hand edit did not take")
        _, restored = self.stamped(code="def add_one(x: int) -> int:\n    return x + 3\n")
        for name in NAMES:
            self.assertEqual(restored[name]["spec"], first[name]["spec"], name)
            self.assertEqual(restored[name]["metadata"]["labels"],
                             first[name]["metadata"]["labels"], name)
            gt.log(f"{ns}/{name} opened by kubectl was restored by the next call "
                   f"(resourceVersion {drifted[name]['metadata']['resourceVersion']} -> "
                   f"{restored[name]['metadata']['resourceVersion']})")

        # Deleted by hand: made again.
        self.kubectl_ok(ns, "delete", "networkpolicy", "udf-sandbox-egress")
        _, again = self.stamped(code="def add_one(x: int) -> int:\n    return x + 4\n")
        self.assertEqual(again["udf-sandbox-egress"]["spec"], first["udf-sandbox-egress"]["spec"])

    def test_stamped_policy_is_the_manifest(self):
        ns, got = self.stamped()
        want = manifest()
        peers = [p for doc in want.values() for p in operator_peers(doc)]
        self.assertEqual(len(peers), 1, "the manifest names the operator's namespace once")
        self.assertEqual(peers[0]["namespaceSelector"]["matchLabels"][NS_LABEL], "udf-system")

        for name, doc in want.items():
            self.assertEqual(doc["metadata"]["namespace"], "udf-sandboxes")
            expected = copy.deepcopy(doc)
            expected["metadata"]["namespace"] = ns
            for peer in operator_peers(expected):
                peer["namespaceSelector"]["matchLabels"][NS_LABEL] = OPERATOR_NS
            self.assertEqual(got[name]["spec"], expected["spec"], name)
            # Helm's ownership metadata marks only the release's own copy (udf-sandboxes).
            self.assertEqual(doc["metadata"]["annotations"]["meta.helm.sh/release-name"], "udf-sandbox")
            del expected["metadata"]["labels"]["app.kubernetes.io/managed-by"]
            for key in ("name", "namespace", "labels"):
                self.assertEqual(got[name]["metadata"].get(key), expected["metadata"][key], key)
            self.assertEqual(got[name]["metadata"].get("annotations", {}), {})
            gt.log(f"{ns}/{name} equals {os.path.relpath(MANIFEST, gt.SOURCE_DIR)}'s with the "
                   f"operator's namespace {OPERATOR_NS}, without Helm's ownership metadata")

        # What the policy must say, read from the stored objects (issue 11), one object per
        # direction (kube-router runs a policy of both types for every packet from or to its
        # pods: one sandbox's ingress rule would admit another sandbox's egress).
        s = got["udf-sandbox"]["spec"]
        e = got["udf-sandbox-egress"]["spec"]
        self.assertEqual(s["podSelector"], {"matchLabels": {"app.kubernetes.io/name": "udf-worker"}})
        self.assertEqual(e["podSelector"], s["podSelector"])
        self.assertEqual(s["policyTypes"], ["Ingress"])
        self.assertEqual(e["policyTypes"], ["Egress"])
        self.assertNotIn("egress", s)
        self.assertNotIn("ingress", e)
        open_rules = [r for r in s["ingress"] if not r.get("from")]
        self.assertEqual([sorted((p["protocol"], p["port"]) for p in r["ports"]) for r in open_rules],
                         [[("TCP", 8080), ("TCP", 8815)]])
        control = [r for r in s["ingress"] if r.get("from")]
        self.assertEqual(len(control), 1)
        self.assertEqual(control[0]["ports"], [{"protocol": "TCP", "port": 9000}])
        self.assertEqual(control[0]["from"], [{
            "namespaceSelector": {"matchLabels": {NS_LABEL: OPERATOR_NS}},
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": "udf-operator"}}}])
        ports = sorted((p["protocol"], p["port"]) for r in e["egress"] for p in r["ports"])
        self.assertEqual(ports, [("TCP", 53), ("TCP", 80), ("TCP", 443), ("UDP", 53)])
        dns = [r for r in e["egress"] if any(p["port"] == 53 for p in r["ports"])]
        self.assertEqual(dns[0]["to"], [{
            "namespaceSelector": {"matchLabels": {NS_LABEL: "kube-system"}},
            "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}])
        blocks = {t["ipBlock"]["cidr"]: t["ipBlock"].get("except", [])
                  for r in e["egress"] for t in r.get("to", []) if "ipBlock" in t}
        self.assertEqual(set(blocks), {"0.0.0.0/0", "::/0"})
        for r in ("169.254.0.0/16", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"):
            self.assertIn(r, blocks["0.0.0.0/0"])
        for r in ("fe80::/10", "fc00::/7"):
            self.assertIn(r, blocks["::/0"])


if __name__ == "__main__":
    unittest.main(verbosity=2)
