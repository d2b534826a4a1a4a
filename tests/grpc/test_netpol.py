"""The sandbox NetworkPolicy the real operator stamps into a tenant namespace is
manifests/50-networkpolicy.yaml (read here with PyYAML, not the operator's parser), except for
its namespace and the operator's namespace, which is the one the operator runs in
(POD_NAMESPACE). The tenant namespace and its policy come from a gRPC call, as a Databend query
node makes it; the object compared is the one the API server stored.
"""

import copy
import os
import unittest

import grpc
import yaml

import grpctest as gt
from grpctest import metadata, request, spec

MANIFEST = os.path.join(gt.SOURCE_DIR, "manifests", "50-networkpolicy.yaml")
# Not the manifest's udf-system: the test must see the operator put its own namespace there.
OPERATOR_NS = f"np-op-{gt.PID}"
NS_LABEL = "kubernetes.io/metadata.name"


def manifest():
    with open(MANIFEST, encoding="utf-8") as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    assert len(docs) == 1, f"{MANIFEST} holds {len(docs)} documents"
    return docs[0]


def operator_peers(policy):
    return [peer for rule in policy["spec"]["ingress"] for peer in rule.get("from", [])
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

    def stamped(self):
        # No function controller runs: the call answers UNAVAILABLE by its deadline, after the
        # namespace and its policy exist.
        with self.assertRaises(grpc.RpcError) as ctx:
            self.env.udf.ApplyUdfResource(request(spec()), metadata=metadata(self.tenant),
                                          timeout=1.0)
        self.assertEqual(ctx.exception.code(), grpc.StatusCode.UNAVAILABLE,
                         ctx.exception.details())
        ns = self.env.namespace_of(self.tenant)
        self.assertIsNotNone(ns, "the call made no tenant namespace")
        return ns, self.env.kube.get(
            f"/apis/networking.k8s.io/v1/namespaces/{ns}/networkpolicies/udf-sandbox")

    def test_stamped_policy_is_the_manifest(self):
        ns, got = self.stamped()
        want = manifest()
        peers = operator_peers(want)
        self.assertEqual(len(peers), 1, "the manifest names the operator's namespace once")
        self.assertEqual(peers[0]["namespaceSelector"]["matchLabels"][NS_LABEL], "udf-system")
        self.assertEqual(want["metadata"]["namespace"], "udf-sandboxes")

        expected = copy.deepcopy(want)
        expected["metadata"]["namespace"] = ns
        operator_peers(expected)[0]["namespaceSelector"]["matchLabels"][NS_LABEL] = OPERATOR_NS
        self.assertEqual(got["spec"], expected["spec"])
        # Helm's ownership metadata marks only the release's own copy (udf-sandboxes).
        del expected["metadata"]["labels"]["app.kubernetes.io/managed-by"]
        self.assertEqual(want["metadata"]["annotations"]["meta.helm.sh/release-name"], "udf-sandbox")
        for key in ("name", "namespace", "labels"):
            self.assertEqual(got["metadata"].get(key), expected["metadata"][key], key)
        self.assertEqual(got["metadata"].get("annotations", {}), {})
        gt.log(f"{ns}/udf-sandbox equals {os.path.relpath(MANIFEST, gt.SOURCE_DIR)} "
               f"with the operator's namespace {OPERATOR_NS}")

        # What the policy must say, read from the stored object (issue 11).
        s = got["spec"]
        self.assertEqual(s["podSelector"], {"matchLabels": {"app.kubernetes.io/name": "udf-worker"}})
        self.assertEqual(sorted(s["policyTypes"]), ["Egress", "Ingress"])
        open_rules = [r for r in s["ingress"] if not r.get("from")]
        self.assertEqual([sorted((p["protocol"], p["port"]) for p in r["ports"]) for r in open_rules],
                         [[("TCP", 8080), ("TCP", 8815)]])
        control = [r for r in s["ingress"] if r.get("from")]
        self.assertEqual(len(control), 1)
        self.assertEqual(control[0]["ports"], [{"protocol": "TCP", "port": 9000}])
        self.assertEqual(control[0]["from"], [{
            "namespaceSelector": {"matchLabels": {NS_LABEL: OPERATOR_NS}},
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": "udf-operator"}}}])
        ports = sorted((p["protocol"], p["port"]) for r in s["egress"] for p in r["ports"])
        self.assertEqual(ports, [("TCP", 53), ("TCP", 80), ("TCP", 443), ("UDP", 53)])
        dns = [r for r in s["egress"] if any(p["port"] == 53 for p in r["ports"])]
        self.assertEqual(dns[0]["to"], [{
            "namespaceSelector": {"matchLabels": {NS_LABEL: "kube-system"}},
            "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}])
        blocks = {t["ipBlock"]["cidr"]: t["ipBlock"].get("except", [])
                  for r in s["egress"] for t in r.get("to", []) if "ipBlock" in t}
        self.assertEqual(set(blocks), {"0.0.0.0/0", "::/0"})
        self.assertIn("169.254.0.0/16", blocks["0.0.0.0/0"])
        self.assertIn("fe80::/10", blocks["::/0"])


if __name__ == "__main__":
    unittest.main(verbosity=2)
