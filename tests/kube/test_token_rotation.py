"""kube_token_rotation: with in-cluster config, when the service-account token file changes
the next request carries the new token (the server sees another identity)."""

import base64
import os
import subprocess
import tempfile
import time
import urllib.parse

from kubehelp import KUBETOOL, fresh_namespace, kubectl, log, fail
import cluster
from faultproxy import _read_kubeconfig


def write_atomic(path, text):
    """As kubelet does: write a new file, then rename it over the old one."""
    tmp = path + ".new"
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, path)


def main():
    kc = cluster.ensure_cluster()
    ns = fresh_namespace(kc, "kube-token")
    proc = None
    try:
        for sa in ("sa-one", "sa-two", "sa-three"):
            kubectl(kc, "create", "serviceaccount", sa, "-n", ns)
        tokens = {sa: kubectl(kc, "create", "token", sa, "-n", ns, "--duration", "1h")
                  .stdout.strip() for sa in ("sa-one", "sa-two", "sa-three")}

        fields = _read_kubeconfig(kc)
        server = urllib.parse.urlparse(fields["server"])
        sa_dir = tempfile.mkdtemp(prefix="kube-sa-")
        with open(os.path.join(sa_dir, "ca.crt"), "wb") as f:
            f.write(base64.b64decode(fields["certificate-authority-data"]))
        with open(os.path.join(sa_dir, "namespace"), "w") as f:
            f.write(ns)
        token_path = os.path.join(sa_dir, "token")
        write_atomic(token_path, tokens["sa-one"])

        env = dict(os.environ, KUBERNETES_SERVICE_HOST=server.hostname,
                   KUBERNETES_SERVICE_PORT=str(server.port))
        proc = subprocess.Popen([KUBETOOL, "--in-cluster", sa_dir, "whoami"], env=env,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

        def whoami():
            proc.stdin.write("?\n")
            proc.stdin.flush()
            return proc.stdout.readline().strip()

        def expect(sa):
            got = whoami()
            want = f"201 system:serviceaccount:{ns}:{sa}"
            if got != want:
                fail(f"expected '{want}', got '{got}'")
            log(f"request authenticated as {sa}")

        expect("sa-one")
        expect("sa-one")
        write_atomic(token_path, tokens["sa-two"])  # rotated: new inode
        expect("sa-two")
        with open(token_path, "w") as f:  # rewritten in place: same inode, new content
            f.write(tokens["sa-three"] + "\n")
        expect("sa-three")
        write_atomic(token_path, "not-a-token")
        got = whoami()
        if not got.startswith("401"):
            fail(f"a bad token should get 401, got '{got}'")
        log("a bad token gets 401 (after one refresh and retry)")
        write_atomic(token_path, tokens["sa-one"])
        expect("sa-one")
        proc.stdin.close()
        if proc.wait(timeout=20) != 0:
            fail(f"kubetool exited {proc.returncode}")
        proc = None

        # An exec credential plugin: its token is kept until it expires or is rejected;
        # a 401 runs the plugin again.
        exec_dir = tempfile.mkdtemp(prefix="kube-exec-")
        source = os.path.join(exec_dir, "current-token")
        write_atomic(source, tokens["sa-two"])
        plugin = os.path.join(exec_dir, "plugin.sh")
        with open(plugin, "w") as f:
            f.write("#!/bin/sh\n"
                    "echo run >> \"$(dirname \"$0\")/runs\"\n"
                    "printf '{\"apiVersion\":\"client.authentication.k8s.io/v1\",'\n"
                    "printf '\"kind\":\"ExecCredential\",\"status\":{\"token\":\"%s\"}}' "
                    "\"$(cat \"$(dirname \"$0\")/current-token\")\"\n")
        os.chmod(plugin, 0o755)
        kcfg = os.path.join(exec_dir, "kubeconfig")
        with open(kcfg, "w") as f:
            f.write("current-context: c\n"
                    f"clusters: [{{name: k, cluster: {{server: '{fields['server']}', "
                    f"certificate-authority: {sa_dir}/ca.crt}}}}]\n"
                    "contexts: [{name: c, context: {cluster: k, user: u}}]\n"
                    "users:\n- name: u\n  user:\n    exec:\n"
                    "      apiVersion: client.authentication.k8s.io/v1\n"
                    "      command: ./plugin.sh\n")
        proc = subprocess.Popen([KUBETOOL, "--kubeconfig", kcfg, "whoami"],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        expect("sa-two")
        write_atomic(source, tokens["sa-three"])
        expect("sa-two")  # not expired, not rejected: the plugin is not run again
        runs = lambda: len(open(os.path.join(exec_dir, "runs")).read().split())
        if runs() != 1:
            fail(f"the plugin ran {runs()} times for an unexpired token")
        # Deleting the service account revokes its tokens: 401, the plugin runs again.
        kubectl(kc, "delete", "serviceaccount", "sa-two", "-n", ns)
        deadline = time.time() + 30
        while whoami().endswith(":sa-two"):  # until the server's lookup cache notices
            if time.time() > deadline:
                fail("the deleted service account's token was still accepted after 30 s")
            time.sleep(0.5)
        expect("sa-three")
        if runs() != 2:
            fail(f"the plugin ran {runs()} times; expected once more after the 401")
        log("exec plugin: token kept while valid, plugin re-run after a 401")
        proc.stdin.close()
        if proc.wait(timeout=20) != 0:
            fail(f"kubetool exited {proc.returncode}")
        proc = None
        print("PASS kube_token_rotation")
    finally:
        if proc:
            proc.kill()
        kubectl(kc, "delete", "namespace", ns, "--wait=false", check=False)


if __name__ == "__main__":
    main()
