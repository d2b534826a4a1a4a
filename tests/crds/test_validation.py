"""Table-driven validation of UdfFunction and UdfWarmPool against the real kube-apiserver.

Each invalid object must be rejected with the message a person acts on; each valid one must be
accepted with the defaults filled in. Server-side dry run: the API server validates and defaults
exactly as for a real create, and nothing is stored.
"""

import copy
import json

from crdtest import Failure, check, run_cases, shared_namespace

GROUP_VERSION = "udf.sandbox.io/v1alpha1"
CODE = "def add_one(x: int) -> int:\n    return x + 1\n"
STRUCTURED = {"handler": "add_one", "inputTypes": ["INT NULL"], "resultType": "INT NULL", "code": CODE}
SCRIPT = "set -euo pipefail\ncd /app\nexec python /app/server.py\n"
POOL = {"runtime": {"image": "localhost/udf-worker:dev"}}


def fn(spec, name="add-one"):
    return {"apiVersion": GROUP_VERSION, "kind": "UdfFunction", "metadata": {"name": name}, "spec": spec}


def pool(spec, name="default"):
    return {"apiVersion": GROUP_VERSION, "kind": "UdfWarmPool", "metadata": {"name": name}, "spec": spec}


def sel_exprs(*exprs):
    return {"matchExpressions": list(exprs)}


POOL_DEFAULTS = {"spec.replicas": 2, "spec.runtime.runtimeClassName": "gvisor",
                 "spec.runtime.resources.limits": {"cpu": "1", "memory": "512Mi", "ephemeral-storage": "2Gi"},
                 "spec.runtime.resources.requests": {"cpu": "100m", "memory": "128Mi"},
                 "spec.runtime.workDirSizeLimit": "1Gi", "spec.runtime.tmpSizeLimit": "256Mi",
                 "spec.refill.maxPodsPerSecond": 5, "spec.refill.maxInFlight": 10,
                 "spec.readinessTimeoutSeconds": 120, "spec.functionNamespaceSelector": "<missing>",
                 "spec.runtime.image": "<missing>"}


def with_(base, **fields):
    spec = copy.deepcopy(base)
    spec.update(fields)
    return spec


# (case, object, the messages the rejection must carry)
INVALID = [
    ("function: script and structured form together",
     fn(with_(STRUCTURED, script=SCRIPT)),
     ['spec.script: Forbidden: script and the structured form exclude each other: remove script, '
      'or remove the structured fields ["handler", "resultType", "code", "inputTypes"]']),
    ("function: script with imports",
     fn({"script": SCRIPT, "imports": [{"location": "@s/helper.py"}]}),
     ['spec.script: Forbidden', 'remove the structured fields ["imports"]']),
    ("function: script with packages and runtimeVersion",
     fn({"script": SCRIPT, "packages": ["numpy"], "runtimeVersion": "3.12"}),
     ['remove the structured fields ["packages", "runtimeVersion"]']),
    ("function: handler alone",
     fn({"handler": "add_one"}),
     ['spec: Required value: the structured form needs handler, resultType and code together; '
      'missing ["resultType", "code"]']),
    ("function: code and resultType without handler",
     fn({"code": CODE, "resultType": "INT NULL"}),
     ['the structured form needs handler, resultType and code together; missing ["handler"]']),
    ("function: inputTypes alone",
     fn({"inputTypes": ["INT NULL"]}),
     ['missing ["handler", "resultType", "code"]']),
    ("function: packages alone",
     fn({"packages": ["numpy==2.1.3"]}),
     ['missing ["handler", "resultType", "code"]']),
    ("function: handler not a Python identifier",
     fn(with_(STRUCTURED, handler="add-one")),
     ["spec.handler: Invalid value", "handler must be a Python identifier, e.g. add_one"]),
    ("function: empty handler",
     fn(with_(STRUCTURED, handler="")),
     ["spec.handler: Invalid value", "should be at least 1 chars long"]),
    ("function: replicas below minReplicas",
     fn(with_(STRUCTURED, replicas=1, minReplicas=2)),
     ["spec.replicas: Invalid value", "replicas (1) is below minReplicas (2): raise replicas or lower minReplicas"]),
    ("function: replicas above maxReplicas",
     fn(with_(STRUCTURED, replicas=5, maxReplicas=3)),
     ["replicas (5) is above maxReplicas (3): lower replicas or raise maxReplicas"]),
    ("function: default replicas above maxReplicas 0",
     fn(with_(STRUCTURED, maxReplicas=0)),
     ["replicas (1) is above maxReplicas (0)"]),
    ("function: negative replicas",
     fn(with_(STRUCTURED, replicas=-1)),
     ["spec.replicas: Invalid value: -1", "greater than or equal to 0"]),
    ("function: lower-case env key",
     fn(with_(STRUCTURED, env={"api_key": "x", "OK_KEY": "y"})),
     ['spec.env: Invalid value', 'env keys must be upper-case letters, digits and _, not starting with a '
      'digit (e.g. API_TIMEOUT); rename ["api_key"]']),
    ("function: env key starting with a digit or holding a dash",
     fn(with_(STRUCTURED, env={"1ST": "x", "A-B": "y"})),
     # CEL iterates a map in no fixed order: both keys, in either order.
     ['env keys must be upper-case letters', 'rename [', '"1ST"', '"A-B"']),
    ("function: reserved env UDF_SERVER_ADDR",
     fn(with_(STRUCTURED, env={"UDF_SERVER_ADDR": "0.0.0.0:1"})),
     ['env ["UDF_SERVER_ADDR"]: reserved, the worker sets UDF_SERVER_ADDR and RESOURCE_STATUS_ADDR',
      'remove them from spec.env']),
    ("function: reserved env RESOURCE_STATUS_ADDR",
     fn({"script": SCRIPT, "env": {"RESOURCE_STATUS_ADDR": "0.0.0.0:1"}}),
     ['env ["RESOURCE_STATUS_ADDR"]: reserved']),
    ("function: empty import location",
     fn(with_(STRUCTURED, imports=[{"location": "@s/a.py", "tag": "1"}, {"location": "", "tag": "2"}])),
     ["spec.imports[1].location: Invalid value",
      "each import needs its stage location as written in the UDF, e.g. @udf_import_stage/imports/helper.py"]),
    ("function: blank import location",
     fn(with_(STRUCTURED, imports=[{"location": "   "}])),
     ["spec.imports[0].location", "each import needs its stage location"]),
    ("function: import without location",
     fn(with_(STRUCTURED, imports=[{"url": "http://127.0.0.1/x", "tag": "1"}])),
     ['spec.imports[0].location: Required value']),
    ("function: more than 64 imports",
     fn(with_(STRUCTURED, imports=[{"location": "@s/%d.py" % i} for i in range(65)])),
     ["spec.imports: Too many: 65: must have at most 64 items"]),
    ("function: code over 1 MiB",
     fn(with_(STRUCTURED, code="#" * (1048576 + 1))),
     ["spec.code: Too long: may not be more than 1048576 bytes"]),
    ("function: runtimeVersion not a version",
     fn(with_(STRUCTURED, runtimeVersion="latest")),
     ["spec.runtimeVersion: Invalid value", "runtimeVersion is a Python version such as 3.12 or 3.12.2"]),
    ("function: SQL name as metadata.name",
     fn(STRUCTURED, name="add_one"),
     ["metadata.name add_one cannot name the function Service", "keep the SQL name (e.g. add_one) in spec.functionName"]),
    ("function: metadata.name longer than a Service name",
     fn(STRUCTURED, name="f" * 64),
     ["cannot name the function Service: use at most 63 lower-case letters"]),
    ("function: misspelt field",
     fn(with_(STRUCTURED, replica=2)),
     ['unknown field "spec.replica"']),
    ("function: bad resource quantity",
     fn(with_(STRUCTURED, resources={"limits": {"memory": "lots"}})),
     ["spec.resources.limits.memory: Invalid value", "should match"]),
    ("function: empty poolRef name",
     fn(with_(STRUCTURED, poolRef={"name": ""})),
     ["spec.poolRef.name: Invalid value", "at least 1 chars long"]),
    ("pool: negative replicas",
     pool(with_(POOL, replicas=-1)),
     ["spec.replicas: Invalid value: -1", "greater than or equal to 0"]),
    ("pool: refill of zero pods per second",
     pool(with_(POOL, refill={"maxPodsPerSecond": 0})),
     ["spec.refill.maxPodsPerSecond: Invalid value: 0", "greater than or equal to 1"]),
    ("pool: zero readiness timeout",
     pool(with_(POOL, readinessTimeoutSeconds=0)),
     ["spec.readinessTimeoutSeconds: Invalid value: 0"]),
    ("pool: toleration Exists with a value",
     pool({"runtime": {"image": "w", "tolerations": [{"key": "k", "operator": "Exists", "value": "v"}]}}),
     ["spec.runtime.tolerations[0]: Invalid value",
      "a toleration with operator Exists matches every value: leave value empty, or use operator Equal"]),
    ("pool: toleration without key",
     pool({"runtime": {"image": "w", "tolerations": [{"operator": "Equal", "value": "v"}]}}),
     ["a toleration without a key must use operator Exists"]),
    ("pool: unsupported pull policy",
     pool({"runtime": {"image": "w", "imagePullPolicy": "Sometimes"}}),
     ['spec.runtime.imagePullPolicy: Unsupported value: "Sometimes"']),
    ("pool: bad cpu quantity",
     pool({"runtime": {"image": "w", "resources": {"requests": {"cpu": "two"}}}}),
     ["spec.runtime.resources.requests.cpu: Invalid value"]),
    ("pool: more than 64 packages",
     pool(with_(POOL, packages=["p%d" % i for i in range(65)])),
     ["spec.packages: Too many: 65: must have at most 64 items"]),
    ("pool: empty image",
     pool({"runtime": {"image": ""}}),
     ["spec.runtime.image: Invalid value", "at least 1 chars long"]),
    ("pool: selector operator not a selector operator",
     pool(with_(POOL, functionNamespaceSelector=sel_exprs({"key": "team", "operator": "Equals", "values": ["a"]}))),
     ['spec.functionNamespaceSelector.matchExpressions[0].operator: Unsupported value: "Equals": '
      'supported values: "In", "NotIn", "Exists", "DoesNotExist"']),
    ("pool: selector Exists with values",
     pool(with_(POOL, functionNamespaceSelector=sel_exprs({"key": "team", "operator": "Exists", "values": ["a"]}))),
     ["spec.functionNamespaceSelector.matchExpressions[0].values: Forbidden: operator Exists tests the key "
      "alone: remove values, or use operator In to match on them"]),
    ("pool: selector DoesNotExist with values",
     pool(with_(POOL, functionNamespaceSelector=sel_exprs({"key": "ok", "operator": "In", "values": ["a"]},
                                                          {"key": "team", "operator": "DoesNotExist",
                                                           "values": [""]}))),
     ["spec.functionNamespaceSelector.matchExpressions[1].values: Forbidden: operator DoesNotExist tests the "
      "key alone: remove values, or use operator NotIn to match on them"]),
    ("pool: selector In without values",
     pool(with_(POOL, functionNamespaceSelector=sel_exprs({"key": "team", "operator": "In"}))),
     ["spec.functionNamespaceSelector.matchExpressions[0].values: Required value: operator In needs at least "
      "one entry in values: the label value(s) to require"]),
    ("pool: selector NotIn with empty values",
     pool(with_(POOL, functionNamespaceSelector=sel_exprs({"key": "team", "operator": "NotIn", "values": []}))),
     ["matchExpressions[0].values: Required value: operator NotIn needs at least one entry in values: the "
      "label value(s) to exclude"]),
    ("pool: selector expression without operator",
     pool(with_(POOL, functionNamespaceSelector=sel_exprs({"key": "team"}))),
     ["spec.functionNamespaceSelector.matchExpressions[0].operator: Required value"]),
    ("pool: selector expression key not a label key",
     pool(with_(POOL, functionNamespaceSelector=sel_exprs({"key": "-team", "operator": "Exists"}))),
     ["spec.functionNamespaceSelector.matchExpressions[0].key: Invalid value",
      "-team is not a label key: a key is an optional DNS subdomain prefix and /, then at most 63 letters"]),
    ("pool: selector expression key name over 63 characters",
     pool(with_(POOL, functionNamespaceSelector=sel_exprs({"key": "example.com/" + "k" * 64,
                                                           "operator": "Exists"}))),
     ["example.com/" + "k" * 64 + " is not a label key"]),
    ("pool: selector expression value not a label value",
     pool(with_(POOL, functionNamespaceSelector=sel_exprs({"key": "team", "operator": "In",
                                                           "values": ["ok", "not ok"]}))),
     ["spec.functionNamespaceSelector.matchExpressions[0].values[1]: Invalid value",
      "a label value is empty or letters, digits, -, _ and ., starting and ending with a letter or digit"]),
    ("pool: selector matchLabels keys not label keys",
     pool(with_(POOL, functionNamespaceSelector={"matchLabels": {"udf.sandbox.io/tenant-namespace": "true",
                                                                 "a/b/c": "x", "Upper.Case/k": "x"}})),
     # The keys come in the map's order, which the API server does not fix.
     ["spec.functionNamespaceSelector.matchLabels: Invalid value", "matchLabels keys [",
      '"Upper.Case/k"', '"a/b/c"', "] are not label keys"]),
    ("pool: selector matchLabels value not a label value",
     pool(with_(POOL, functionNamespaceSelector={"matchLabels": {"team": "a b"}})),
     ["spec.functionNamespaceSelector.matchLabels[team]: Invalid value", "a label value is empty or letters"]),
    ("pool: selector misspelt field",
     pool(with_(POOL, functionNamespaceSelector={"matchLabel": {"team": "a"}})),
     ['unknown field "spec.functionNamespaceSelector.matchLabel"']),
    ("pool: refill over 100 pods per second",
     pool(with_(POOL, refill={"maxPodsPerSecond": 101})),
     ["spec.refill.maxPodsPerSecond: Invalid value: 101", "less than or equal to 100"]),
    ("pool: refill of zero pods in flight",
     pool(with_(POOL, refill={"maxInFlight": 0})),
     ["spec.refill.maxInFlight: Invalid value: 0", "greater than or equal to 1"]),
    ("pool: refill of 1001 pods in flight",
     pool(with_(POOL, refill={"maxInFlight": 1001})),
     ["spec.refill.maxInFlight: Invalid value: 1001", "less than or equal to 1000"]),
    ("pool: readiness timeout below 10 s",
     pool(with_(POOL, readinessTimeoutSeconds=9)),
     ["spec.readinessTimeoutSeconds: Invalid value: 9", "greater than or equal to 10"]),
    ("pool: a resource other than cpu, memory, ephemeral-storage",
     pool({"runtime": {"resources": {"limits": {"cpu": "1", "memory": "1Gi", "ephemeral-storage": "2Gi",
                                                "nvidia.com/gpu": 1}}}}),
     ['spec.runtime.resources.limits: Forbidden: limits ["nvidia.com/gpu"]: a sandbox pod takes only cpu, '
      'memory and ephemeral-storage']),
    ("pool: limits without memory and ephemeral-storage",
     pool({"runtime": {"resources": {"limits": {"cpu": "2"}}}}),
     ['spec.runtime.resources.limits: Required value: limits must set cpu, memory and ephemeral-storage, '
      'missing ["memory", "ephemeral-storage"]: a sandbox pod always runs bounded']),
    ("pool: request above its limit",
     pool({"runtime": {"resources": {"requests": {"cpu": "1500m", "memory": "64Mi"},
                                     "limits": {"cpu": "1", "memory": "1Gi", "ephemeral-storage": "2Gi"}}}}),
     ['spec.runtime.resources.requests: Invalid value', 'requests above limits for ["cpu"]: a request is at most '
      'its limit']),
    ("pool: default memory request above a small limit",
     pool({"runtime": {"resources": {"limits": {"cpu": "1", "memory": "64Mi", "ephemeral-storage": "2Gi"}}}}),
     ['requests above limits for ["memory"]', "requests left out default to cpu 100m, memory 128Mi"]),
    ("pool: directories larger than the ephemeral-storage limit",
     pool({"runtime": {"workDirSizeLimit": "1Gi", "tmpSizeLimit": "512Mi",
                       "resources": {"limits": {"cpu": "1", "memory": "1Gi", "ephemeral-storage": "1Gi"}}}}),
     ["spec.runtime.resources.limits: Invalid value", "workDirSizeLimit (1Gi) plus tmpSizeLimit (512Mi) exceed "
      "resources.limits.ephemeral-storage (1Gi): the kubelet would evict the pod"]),
    ("pool: size limit not a quantity",
     pool({"runtime": {"workDirSizeLimit": "lots", "tmpSizeLimit": "0"}}),
     ["spec.runtime.workDirSizeLimit: Invalid value", "workDirSizeLimit lots is not a positive quantity",
      "spec.runtime.tmpSizeLimit: Invalid value", "tmpSizeLimit 0 is not a positive quantity"]),
    ("function: poolRef namespace not a namespace name",
     fn(with_(STRUCTURED, poolRef={"name": "shared", "namespace": "Udf_Sandboxes"})),
     ["spec.poolRef.namespace: Invalid value", "poolRef.namespace Udf_Sandboxes is not a namespace name"]),
    ("function: poolRef with a namespace but no name",
     fn(with_(STRUCTURED, poolRef={"namespace": "udf-sandboxes"})),
     ["spec.poolRef.name: Required value"]),
]

# (case, object, {dotted path: value the accepted object must have})
VALID = [
    ("function: structured form, defaults filled",
     fn(STRUCTURED),
     {"spec.replicas": 1, "spec.poolRef": "<missing>", "spec.idleTimeoutSeconds": 0,
      "spec.handler": "add_one"}),
    ("function: full structured form",
     fn(with_(STRUCTURED, tenant="test_tenant", functionName="add_one", packages=["numpy==2.1.3"],
              imports=[{"location": "@udf_import_stage/imports/helper.py", "url": "http://127.0.0.1/h",
                        "tag": "\"etag-1\"", "headers": {"X-A": "1"}}],
              runtimeVersion="3.12.2", env={"API_TIMEOUT": "5", "_PRIVATE": "1", "A1": ""},
              poolRef={"name": "big"}, replicas=2, minReplicas=1, maxReplicas=4,
              idleTimeoutSeconds=600, resources={"limits": {"cpu": "2", "memory": "1Gi"}},
              tags={"team": "a"}, options={"suspended": "false"})),
     {"spec.poolRef.name": "big", "spec.replicas": 2, "spec.idleTimeoutSeconds": 600}),
    ("function: zero-argument function",
     fn(with_(STRUCTURED, inputTypes=[])),
     {"spec.inputTypes": []}),
    ("function: script form",
     fn({"script": SCRIPT, "env": {"X": "1"}}),
     {"spec.replicas": 1, "spec.poolRef": "<missing>"}),
    ("function: neither form (a CREATE WORKER with nothing to run)",
     fn({"options": {"size": "small"}}),
     {"spec.replicas": 1, "spec.poolRef": "<missing>", "spec.idleTimeoutSeconds": 0}),
    ("function: empty spec",
     fn({}),
     {"spec.replicas": 1}),
    ("function: replicas equal to min and max",
     fn(with_(STRUCTURED, replicas=3, minReplicas=3, maxReplicas=3)),
     {"spec.replicas": 3}),
    ("function: scaled to zero",
     fn(with_(STRUCTURED, replicas=0, minReplicas=0)),
     {"spec.replicas": 0}),
    ("function: poolRef to a pool in another namespace",
     fn(with_(STRUCTURED, poolRef={"name": "default", "namespace": "udf-sandboxes"})),
     {"spec.poolRef": {"name": "default", "namespace": "udf-sandboxes"}}),
    ("function: poolRef without namespace (the function's own)",
     fn(with_(STRUCTURED, poolRef={"name": "big"})),
     {"spec.poolRef": {"name": "big"}}),
    ("pool: no spec at all, every default filled",
     {k: v for k, v in pool({}).items() if k != "spec"},
     POOL_DEFAULTS),
    ("pool: empty spec, every default filled",
     pool({}),
     POOL_DEFAULTS),
    ("pool: image only, defaults filled",
     pool(POOL),
     dict(POOL_DEFAULTS, **{"spec.runtime.image": "localhost/udf-worker:dev"})),
    ("pool: runtime without image (the operator's --worker-image)",
     pool({"runtime": {"runtimeClassName": "gvisor"}, "replicas": 1}),
     dict(POOL_DEFAULTS, **{"spec.replicas": 1})),
    ("pool: shared by the tenant namespaces",
     pool({"functionNamespaceSelector": {"matchLabels": {"udf.sandbox.io/tenant-namespace": "true"}}}),
     {"spec.functionNamespaceSelector": {"matchLabels": {"udf.sandbox.io/tenant-namespace": "true"}}}),
    ("pool: every selector operator",
     pool({"functionNamespaceSelector": {
         "matchLabels": {"example.com/tier": "gold", "plain": "", "x": "a.b_c-d"},
         "matchExpressions": [{"key": "team", "operator": "In", "values": ["a", "b"]},
                              {"key": "example.com/team", "operator": "NotIn", "values": ["c"]},
                              {"key": "k" * 63, "operator": "Exists"},
                              {"key": "suspended", "operator": "DoesNotExist", "values": []}]}}),
     {"spec.functionNamespaceSelector.matchExpressions": [
         {"key": "team", "operator": "In", "values": ["a", "b"]},
         {"key": "example.com/team", "operator": "NotIn", "values": ["c"]},
         {"key": "k" * 63, "operator": "Exists"},
         {"key": "suspended", "operator": "DoesNotExist", "values": []}]}),
    ("pool: empty selector (every namespace)",
     pool({"functionNamespaceSelector": {}}),
     {"spec.functionNamespaceSelector": {}}),
    ("pool: all three resources, sizes within ephemeral-storage",
     pool({"runtime": {"resources": {"requests": {"cpu": "1", "memory": "1Gi", "ephemeral-storage": "1Gi"},
                                     "limits": {"cpu": 1, "memory": "1Gi", "ephemeral-storage": "3Gi"}},
                       "workDirSizeLimit": "2Gi", "tmpSizeLimit": "1Gi"},
           "refill": {"maxPodsPerSecond": 100, "maxInFlight": 1000}, "readinessTimeoutSeconds": 10}),
     {"spec.runtime.resources.limits.cpu": 1, "spec.runtime.workDirSizeLimit": "2Gi",
      "spec.refill.maxPodsPerSecond": 100, "spec.readinessTimeoutSeconds": 10}),
    ("pool: empty pool with placement and packages",
     pool({"replicas": 0, "packages": ["numpy==2.1.3"],
           "runtime": {"image": "w", "runtimeClassName": "runc-test", "nodeSelector": {"pool": "udf"},
                       "tolerations": [{"operator": "Exists"}, {"key": "k", "operator": "Equal", "value": "v",
                                                                  "effect": "NoSchedule"}],
                       "resources": {"requests": {"cpu": "250m", "memory": "256Mi"}}},
           "refill": {"maxInFlight": 3}}),
     {"spec.replicas": 0, "spec.runtime.runtimeClassName": "runc-test", "spec.refill.maxPodsPerSecond": 5,
      "spec.refill.maxInFlight": 3}),
]


# Updates of a stored function: (case, merge patch, the messages a rejection carries; None when
# the update must be accepted).
STORED = fn(with_(STRUCTURED, tenant="test_tenant", functionName="add_one"), name="stored")
UPDATES = [
    ("another tenant", {"spec": {"tenant": "other_tenant"}},
     ["spec.tenant: Forbidden: tenant cannot change once set (it is test_tenant): a function belongs "
      "to one tenant; create a UdfFunction for the other tenant instead"]),
    ("tenant removed", {"spec": {"tenant": None}}, ["spec.tenant: Forbidden: tenant cannot change once set"]),
    ("another functionName", {"spec": {"functionName": "add_two"}},
     ["spec.functionName: Forbidden: functionName cannot change once set (it is add_one): a renamed "
      "SQL function is another UdfFunction"]),
    ("structured form replaced by a script", {"spec": {"handler": None, "inputTypes": None, "resultType": None,
                                                       "code": None, "script": SCRIPT}}, None),
    ("script added beside the code", {"spec": {"script": SCRIPT}}, ["spec.script: Forbidden"]),
    ("new code, replicas and env", {"spec": {"code": CODE + "\n", "replicas": 2, "env": {"A": "1"}}}, None),
]


def dig(obj, path):
    for part in path.split("."):
        if not isinstance(obj, dict) or part not in obj:
            return "<missing>"
        obj = obj[part]
    return obj


def dry_run_create(kube, ns, obj):
    return kube.kubectl("create", "--dry-run=server", "-n", ns, "-o", "json", "-f", "-",
                        input=json.dumps(obj), check_rc=False)


def main():
    with shared_namespace("udf-crds-validation") as (kube, ns):
        def invalid(obj, messages):
            def t():
                p = dry_run_create(kube, ns, obj)
                check(p.returncode != 0, "accepted, should be rejected:\n" + p.stdout[:2000])
                for m in messages:
                    check(m in p.stderr, "rejection lacks %r:\n%s" % (m, p.stderr[:4000]))
                # What the person applying the object reads (kubectl prints the same).
                return "\n".join("     | " + line[:300] for line in p.stderr.strip().splitlines())
            return t

        def valid(obj, want):
            def t():
                p = dry_run_create(kube, ns, obj)
                check(p.returncode == 0, "rejected, should be accepted:\n" + p.stderr)
                got = json.loads(p.stdout)
                for path, value in want.items():
                    check(dig(got, path) == value, "%s is %r, want %r" % (path, dig(got, path), value))
            return t

        def update(patch, messages):
            def t():
                p = kube.kubectl("patch", "-n", ns, "udf", "stored", "--type=merge", "--dry-run=server",
                                 "-p", json.dumps(patch), check_rc=False)
                if messages is None:
                    check(p.returncode == 0, "update rejected, should be accepted:\n" + p.stderr)
                    return None
                check(p.returncode != 0, "update accepted, should be rejected:\n" + p.stdout)
                for m in messages:
                    check(m in p.stderr, "rejection lacks %r:\n%s" % (m, p.stderr[:4000]))
                return "\n".join("     | " + line[:300] for line in p.stderr.strip().splitlines())
            return t

        cases = [("reject " + n, invalid(o, m)) for n, o, m in INVALID]
        cases += [("accept " + n, valid(o, w)) for n, o, w in VALID]
        cases += [("store a function to update", lambda: kube.kubectl("create", "-n", ns, "-f", "-",
                                                                     input=json.dumps(STORED)) and None)]
        cases += [("%s update: %s" % ("accept" if m is None else "reject", n), update(p, m)) for n, p, m in UPDATES]
        run_cases(cases)


if __name__ == "__main__":
    try:
        main()
    except Failure as e:
        print("FAIL: %s" % e)
        raise SystemExit(1)
