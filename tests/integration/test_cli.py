"""udf-operator's command line: --help lists every flag, bad input exits 2 with a message."""

import os
import subprocess
import tempfile
import unittest

from udfop import operator_binary

FLAGS = ["--kubeconfig", "--grpc-bind-address", "--grpc-tls-cert", "--grpc-tls-key",
         "--health-bind-address", "--leader-elect", "--leader-election-namespace",
         "--leader-election-id", "--tenant-namespace-prefix", "--log-format", "--log-level", "--version", "--help"]


def run(*args, env=None):
    return subprocess.run([operator_binary(), *args], capture_output=True, text=True, timeout=20,
                          env=env)


class Cli(unittest.TestCase):
    def test_help_lists_every_flag(self):
        r = run("--help")
        self.assertEqual(r.returncode, 0)
        for flag in FLAGS:
            self.assertIn(flag, r.stdout)

    def test_unknown_flag_exits_2_naming_it(self):
        r = run("--no-such-flag")
        self.assertEqual(r.returncode, 2)
        self.assertIn("--no-such-flag", r.stderr)

    def test_flag_without_value(self):
        r = run("--kubeconfig")
        self.assertEqual(r.returncode, 2)
        self.assertIn("--kubeconfig", r.stderr)

    def test_bad_log_format(self):
        r = run("--log-format", "xml")
        self.assertEqual(r.returncode, 2)
        self.assertIn("xml", r.stderr)

    def test_missing_kubeconfig_names_the_file(self):
        r = run("--kubeconfig", "/nonexistent/kubeconfig")
        self.assertEqual(r.returncode, 2)
        self.assertIn("/nonexistent/kubeconfig", r.stderr)

    def test_malformed_kubeconfig(self):
        with tempfile.NamedTemporaryFile("w", suffix=".yaml") as f:
            f.write("clusters: [\n")
            f.flush()
            r = run("--kubeconfig", f.name)
        self.assertEqual(r.returncode, 2)
        self.assertIn(f.name, r.stderr)

    def test_kubeconfig_without_current_context(self):
        with tempfile.NamedTemporaryFile("w", suffix=".yaml") as f:
            f.write("apiVersion: v1\nkind: Config\nclusters: []\n")
            f.flush()
            r = run("--kubeconfig", f.name)
        self.assertEqual(r.returncode, 2)
        self.assertIn("current-context", r.stderr)

    def test_tls_flags_go_together(self):
        r = run("--grpc-tls-cert", "/tmp/x.pem", "--kubeconfig", "/dev/null")
        self.assertEqual(r.returncode, 2)
        self.assertIn("--grpc-tls-key", r.stderr)

    def test_leader_elect_takes_a_boolean(self):
        r = run("--leader-elect=maybe")
        self.assertEqual(r.returncode, 2)
        self.assertIn("maybe", r.stderr)

    def test_version(self):
        r = run("--version")
        self.assertEqual(r.returncode, 0)
        self.assertTrue(r.stdout.startswith("udf-operator "))


if __name__ == "__main__":
    unittest.main(verbosity=2)
