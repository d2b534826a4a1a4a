"""The operator as the chart deploys it, run as its pods run it, on a private control plane.

The chart is installed with helm as a user installs it. Then two replicas of bin/udf-operator
run the way the Deployment's pods do, minus the container: the Deployment's own args (bind
addresses moved to free ports), uid 65532, POD_NAME/POD_NAMESPACE, no kubeconfig, and in a
mount namespace of their own the service-account directory a pod gets at
/var/run/secrets/kubernetes.io/serviceaccount: a token of the chart's ServiceAccount (never
admin, so the chart's RBAC is what they have), the namespace, and ca.crt from the
kube-root-ca.crt ConfigMap. KUBERNETES_SERVICE_HOST/PORT name the endpoint of Service
"kubernetes" as the API server publishes it (hack/cluster.sh's API address). One replica runs
in a network namespace of the test's own with a pod's address, routed through the host as a pod
is through the node's bridge, so the address is shown reachable from outside the host's network
namespace; from a neighbour's address it is not.

Checked: the Service's endpoint is the API address (not loopback) and the certificate names
it; both replicas go Ready; one holds the Lease; the leader reconciles the default pool with the
chart's RBAC (its status, its pods; nothing forbidden in either log); a rotated token is
re-read (the old token's bound object is deleted, so the old token stops working, and the
replicas keep working); killing the leader hands the Lease and the pool to the other.

No node is needed (the pool's pods stay Pending): a private control plane, because the chart
creates cluster-wide names (udf-system, ClusterRole udf-operator, RuntimeClass gvisor).
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "crds"))
from crdtest import (CHART_DIR, Failure, check, finish, helm_path, load_docs, log, private_cluster,  # noqa: E402
                     run_cases)
import cluster  # noqa: E402

SA_MOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"
NETNS = "udfdep%d" % (os.getpid() % 100000)
# The test's own link between the host and its namespace: a /30 of the cluster CIDR outside the
# node's pod subnet, so the namespace's source address is a pod's; and a /30 outside every
# cluster range, a neighbour's, from which the API address must not answer.
HOST_IP, NS_IP = "10.244.250.1", "10.244.250.2"
HOST_OTHER_IP, NS_OTHER_IP = "192.168.254.1", "192.168.254.2"
UID = 65532


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what, fn, timeout=60, interval=0.5):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            v = fn()
            if v:
                return v
        except Exception as e:  # keep polling; report the last error
            last = e
        time.sleep(interval)
    raise Failure("timed out after %ds waiting for %s%s" % (timeout, what, ": %s" % last if last else ""))


def http_status(url):
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


class Replica:
    """bin/udf-operator run as one of the Deployment's pods."""

    def __init__(self, name, binary, args, sa_dir, api_host, api_port, logdir, netns=None):
        self.name = name
        self.grpc_port, self.http_port = free_port(), free_port()
        self.host = NS_IP if netns else "127.0.0.1"
        bind = "0.0.0.0" if netns else "127.0.0.1"
        args = [a for a in args if not a.startswith(("--grpc-bind-address=", "--health-bind-address="))]
        args += ["--grpc-bind-address=%s:%d" % (bind, self.grpc_port),
                 "--health-bind-address=%s:%d" % (bind, self.http_port)]
        # The pod's view: an empty /run with only the service-account directory in it.
        script = ('mount -t tmpfs -o mode=755 tmpfs /run && mkdir -p "%s" && mount --bind "$SA_DIR" "%s"'
                  ' && exec setpriv --reuid=%d --regid=%d --clear-groups --no-new-privs "$@"'
                  % (SA_MOUNT, SA_MOUNT, UID, UID))
        argv = ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", binary, *args]
        if netns:
            argv = ["ip", "netns", "exec", netns, *argv]
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "SA_DIR": sa_dir, "POD_NAME": name,
               "POD_NAMESPACE": "udf-system", "KUBERNETES_SERVICE_HOST": api_host,
               "KUBERNETES_SERVICE_PORT": str(api_port), "HOME": "/nonexistent"}
        self.log_path = os.path.join(logdir, name + ".log")
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(argv, env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def url(self, path):
        return "http://%s:%d%s" % (self.host, self.http_port, path)

    def ready(self):
        check(self.proc.poll() is None, "%s exited %s:\n%s" % (self.name, self.proc.returncode, self.output()))
        return http_status(self.url("/readyz")) == 200 and http_status(self.url("/healthz")) == 200

    def metrics(self):
        with urllib.request.urlopen(self.url("/metrics"), timeout=2) as r:
            return r.read().decode()

    def output(self):
        with open(self.log_path) as f:
            return f.read()

    def kill(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.log.close()


def netns_up():
    cmds = [["ip", "netns", "add", NETNS],
            ["ip", "link", "add", NETNS + "h", "type", "veth", "peer", "name", NETNS + "n"],
            ["ip", "link", "set", NETNS + "n", "netns", NETNS],
            ["ip", "addr", "add", HOST_IP + "/30", "dev", NETNS + "h"],
            ["ip", "addr", "add", HOST_OTHER_IP + "/30", "dev", NETNS + "h"],
            ["ip", "netns", "exec", NETNS, "ip", "addr", "add", NS_OTHER_IP + "/30", "dev", NETNS + "n"],
            ["ip", "link", "set", NETNS + "h", "up"],
            ["ip", "netns", "exec", NETNS, "ip", "addr", "add", NS_IP + "/30", "dev", NETNS + "n"],
            ["ip", "netns", "exec", NETNS, "ip", "link", "set", NETNS + "n", "up"],
            ["ip", "netns", "exec", NETNS, "ip", "link", "set", "lo", "up"],
            ["ip", "netns", "exec", NETNS, "ip", "route", "add", "default", "via", HOST_IP]]
    for c in cmds:
        subprocess.run(c, check=True, capture_output=True)


def netns_down():
    subprocess.run(["ip", "netns", "del", NETNS], capture_output=True)
    subprocess.run(["ip", "link", "del", NETNS + "h"], capture_output=True)


def main():
    helm_bin = helm_path()
    build = os.environ.get("UDF_BUILD_DIR", os.path.join(cluster.SOURCE_DIR, "build"))
    binary = os.path.join(build, "operator", "udf-operator")
    check(os.access(binary, os.X_OK), "udf-operator is not built: no executable %s; run `make`" % binary)
    work = tempfile.mkdtemp(prefix="udf-deploy-")
    os.chmod(work, 0o755)
    replicas = []
    with private_cluster() as kube:
        kubeconfig = kube.kubeconfig
        state = os.path.dirname(kubeconfig)
        env = dict(os.environ, UDF_SANDBOX_STATE=state)
        api_address = subprocess.run([cluster.CLUSTER_SH, "env", "api-address"], env=env, check=True,
                                     capture_output=True, text=True).stdout.strip()
        ctx = {}

        def helm(*args, check_rc=True):
            e = dict(os.environ)
            home = os.path.join(os.path.dirname(os.path.dirname(helm_bin)), "helm")
            for var in ("CONFIG", "CACHE", "DATA"):
                e.setdefault("HELM_%s_HOME" % var, os.path.join(home, var.lower()))
            p = subprocess.run([helm_bin, *args, "--kubeconfig", kubeconfig], capture_output=True, text=True, env=e)
            check(not check_rc or p.returncode == 0, "helm %s: %s%s" % (" ".join(args), p.stdout, p.stderr))
            return p

        def kjson(*args):
            return json.loads(kube.kubectl(*args, "-o", "json").stdout)

        def token(secret):
            # A token bound to a Secret: deleting the Secret revokes it, as the kubelet's
            # projected tokens are revoked with their pod.
            kube.kubectl("create", "secret", "generic", "-n", "udf-system", secret)
            return kube.kubectl("create", "token", "-n", "udf-system", "udf-operator", "--duration=1h",
                                "--bound-object-kind=Secret", "--bound-object-name=" + secret).stdout.strip()

        def write_token(sa_dir, tok):
            # Like the kubelet's atomic writer: a new file renamed over the old one.
            tmp = os.path.join(sa_dir, ".token.tmp")
            with open(tmp, "w") as f:
                f.write(tok)
            os.chmod(tmp, 0o644)
            os.rename(tmp, os.path.join(sa_dir, "token"))

        def endpoint_is_the_api_address():
            check(not api_address.startswith("127."), "the API address is loopback: %s" % api_address)
            sl = kjson("get", "endpointslices", "-n", "default", "-l", "kubernetes.io/service-name=kubernetes")
            addrs = [a for s in sl["items"] for e in s["endpoints"] for a in e["addresses"]]
            ports = [p["port"] for s in sl["items"] for p in s["ports"]]
            check(addrs == [api_address], "Service kubernetes endpoints %s, want [%s]" % (addrs, api_address))
            ctx["port"] = ports[0]
            svc = kjson("get", "svc", "-n", "default", "kubernetes")
            ctx["cluster_ip"] = svc["spec"]["clusterIP"]
            # The serving certificate names the address and the Service's names.
            cert = subprocess.run(["openssl", "x509", "-noout", "-ext", "subjectAltName", "-in",
                                   os.path.join(state, "pki", "apiserver.crt")], capture_output=True, text=True,
                                  check=True).stdout
            for name in ["IP Address:" + api_address, "IP Address:" + ctx["cluster_ip"], "DNS:kubernetes.default.svc"]:
                check(name in cert, "apiserver certificate lacks %s: %s" % (name, cert))
            return "     | kubernetes -> %s:%d (ClusterIP %s)" % (api_address, ports[0], ctx["cluster_ip"])

        def reachable_from(src):
            # A TCP connection to the API address from the test's namespace, from source src.
            code = ("import socket,sys\ntry:\n    socket.create_connection((%r, %d), timeout=3, source_address=(%r, 0))"
                    ".close()\n    print('open')\nexcept OSError as e:\n    print(type(e).__name__)\n"
                    % (api_address, ctx["port"], src))
            return subprocess.run(["ip", "netns", "exec", NETNS, sys.executable, "-c", code], capture_output=True,
                                  text=True, check=True).stdout.strip()

        def host_and_pods_only():
            netns_up()
            got = reachable_from(NS_IP)
            check(got == "open", "from a pod address (%s): %s" % (NS_IP, got))
            got = reachable_from(NS_OTHER_IP)
            check(got != "open", "from a neighbour's address (%s) the API address answered" % NS_OTHER_IP)
            return "     | from %s: open; from %s: %s" % (NS_IP, NS_OTHER_IP, got)

        def helm_install():
            kube.kubectl("apply", "--server-side", "-f", os.path.join(cluster.SOURCE_DIR, "crds"))
            kube.kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd", "--all")
            out = helm("install", "udf-sandbox", CHART_DIR, "--namespace", "default").stdout
            check("STATUS: deployed" in out, out)
            manifest = load_docs(helm("get", "manifest", "udf-sandbox", "--namespace", "default").stdout)
            dep = [d for d in manifest if d["kind"] == "Deployment"][0]
            check(dep["spec"]["replicas"] == 2, dep["spec"]["replicas"])
            pod = dep["spec"]["template"]["spec"]
            c = pod["containers"][0]
            check(pod["serviceAccountName"] == "udf-operator" and pod["securityContext"]["runAsUser"] == UID
                  and "--leader-elect=true" in c["args"], pod)
            check(c["readinessProbe"]["httpGet"]["path"] == "/readyz"
                  and c["livenessProbe"]["httpGet"]["path"] == "/healthz", c)
            ctx["args"] = c["args"]

        def start_replicas():
            # What a pod's projected volume holds: the controller-manager publishes it per namespace.
            ca = wait_for("ConfigMap udf-system/kube-root-ca.crt",
                          lambda: kjson("get", "configmap", "-n", "udf-system", "kube-root-ca.crt"),
                          timeout=30)["data"]["ca.crt"]
            for i, name in enumerate(["udf-operator-a", "udf-operator-b"]):
                sa_dir = os.path.join(work, name)
                os.makedirs(sa_dir)
                os.chmod(sa_dir, 0o755)
                for fname, text in [("ca.crt", ca), ("namespace", "udf-system")]:
                    with open(os.path.join(sa_dir, fname), "w") as f:
                        f.write(text)
                    os.chmod(os.path.join(sa_dir, fname), 0o644)
                write_token(sa_dir, token("%s-tok1" % name))
                r = Replica(name, binary, ctx["args"], sa_dir, api_address, ctx["port"], work,
                            netns=NETNS if i == 1 else None)
                r.sa_dir = sa_dir
                replicas.append(r)
                wait_for("%s Ready (/readyz, /healthz)" % name, r.ready, timeout=30)
                if i == 0:
                    # a first: it takes the Lease, b waits on it.
                    wait_for("the Lease", lambda: kjson("get", "lease", "-n", "udf-system", "udf-operator"),
                             timeout=30)
            lease = kjson("get", "lease", "-n", "udf-system", "udf-operator")
            ctx["holder"] = lease["spec"]["holderIdentity"]
            return "     | Lease udf-system/udf-operator held by %s; b serves from netns %s (%s)" % (
                ctx["holder"], NETNS, NS_IP)

        def leader_reconciles_pool():
            def pods():
                return kjson("get", "pods", "-n", "udf-sandboxes")["items"]
            wait_for("2 pods of the default pool", lambda: len(pods()) == 2, timeout=60)
            pool = wait_for("the pool's status", lambda: kjson("get", "udfpool", "-n", "udf-sandboxes", "default")
                            .get("status", {}).get("observedGeneration"), timeout=30)
            check(pool, pool)
            for r in replicas:
                out = r.output().lower()
                check("forbidden" not in out and " 403" not in out, "%s logged a refusal:\n%s" % (r.name, r.output()))
                check(r.ready(), r.name)
            m = replicas[0].metrics()
            check('udf_controller_reconciles_total{controller="udfwarmpool",result="success"}' in m, m[:2000])

        def api_status(tok):
            # GET /api as a pod would, through the API address, with the CA a pod gets.
            import ssl
            sslctx = ssl.create_default_context(cafile=os.path.join(replicas[0].sa_dir, "ca.crt"))
            req = urllib.request.Request("https://%s:%d/api" % (api_address, ctx["port"]),
                                         headers={"Authorization": "Bearer " + tok})
            try:
                with urllib.request.urlopen(req, timeout=5, context=sslctx) as resp:
                    return resp.status
            except urllib.error.HTTPError as e:
                return e.code

        def token_rotation():
            old = {}
            for r in replicas:
                with open(os.path.join(r.sa_dir, "token")) as f:
                    old[r.name] = f.read()
                check(api_status(old[r.name]) == 200, "the first token of %s does not work" % r.name)
                write_token(r.sa_dir, token("%s-tok2" % r.name))
            # The first tokens stop working: their bound Secrets go, as a pod's token goes with
            # its pod. A replica that kept the token it read at start would now be refused.
            for r in replicas:
                kube.kubectl("delete", "secret", "-n", "udf-system", "%s-tok1" % r.name)
            for r in replicas:
                wait_for("the revoked token of %s refused" % r.name, lambda: api_status(old[r.name]) == 401,
                         timeout=30)
            # Still Ready, and the leader still acts: scale the pool, a third pod appears.
            kube.kubectl("scale", "-n", "udf-sandboxes", "udfpool/default", "--replicas=3")
            wait_for("a third pool pod after the rotation",
                     lambda: len(kjson("get", "pods", "-n", "udf-sandboxes")["items"]) == 3, timeout=60)
            time.sleep(3)
            for r in replicas:
                check(r.ready(), "%s not Ready after its token rotated:\n%s" % (r.name, r.output()[-3000:]))
            return "     | tokens rotated; the old ones answer 401, the replicas stay Ready"

        def leader_failover():
            leader = replicas[0]
            other = replicas[1]
            leader.kill()
            lease = wait_for("the other replica to take the Lease",
                             lambda: (lambda l: l if l["spec"].get("holderIdentity") not in (None, ctx["holder"])
                                      else None)(kjson("get", "lease", "-n", "udf-system", "udf-operator")),
                             timeout=60)
            kube.kubectl("scale", "-n", "udf-sandboxes", "udfpool/default", "--replicas=4")
            wait_for("a fourth pool pod from the new leader",
                     lambda: len(kjson("get", "pods", "-n", "udf-sandboxes")["items"]) == 4, timeout=60)
            check(other.ready(), other.name)
            return "     | Lease now held by %s" % lease["spec"]["holderIdentity"]

        cases = [("Service kubernetes: the API address, named by the certificate", endpoint_is_the_api_address),
                 ("the API address answers this host's pods, not its neighbours", host_and_pods_only),
                 ("helm install (the operator's Deployment as the chart renders it)", helm_install),
                 ("two replicas in-cluster (SA token, no kubeconfig), one leads", start_replicas),
                 ("the leader reconciles the default pool with the chart's RBAC", leader_reconciles_pool),
                 ("a rotated token is re-read; the revoked one is not needed", token_rotation),
                 ("the leader killed: the other takes the Lease and the pool", leader_failover)]
        failed = ["setup"]
        try:
            # Each case needs the one before: stop at the first failure.
            failed = []
            for case in cases:
                failed = run_cases([case], exit_on_failure=False)
                if failed:
                    break
        finally:
            for r in replicas:
                r.kill()
            netns_down()
            if not failed:
                shutil.rmtree(work, ignore_errors=True)
        if failed:
            for r in replicas:
                log("---- %s log (last 40 lines)" % r.name)
                log("\n".join(r.output().splitlines()[-40:]))
    finish(failed, len(cases))


if __name__ == "__main__":
    try:
        main()
    except Failure as e:
        print("FAIL: %s" % e)
        raise SystemExit(1)
