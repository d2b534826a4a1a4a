/* kubeconfig and in-cluster parsing: sample files are written to a temp dir per test. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "kube/config.h"

static char dir[256];

static int setup(void **state)
{
	snprintf(dir, sizeof(dir), "/tmp/test_kube_config.XXXXXX");
	assert_non_null(mkdtemp(dir));
	return 0;
}

static int teardown(void **state)
{
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static void write_file(const char *name, const char *text, int mode)
{
	char p[512];
	FILE *f;
	snprintf(p, sizeof(p), "%s/%s", dir, name);
	f = fopen(p, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	if (mode)
		chmod(p, (mode_t)mode);
}

/* A few rotating buffers so one call can use several paths. */
static char *path_of(const char *name)
{
	static char p[4][512];
	static int next;
	char *out = p[next++ % 4];
	snprintf(out, sizeof(p[0]), "%s/%s", dir, name);
	return out;
}

/* "-----BEGIN CERTIFICATE-----\nCA\n" and friends, base64 */
#define CA_B64	 "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCkNBCg=="
#define CERT_B64 "Q0VSVA=="
#define KEY_B64	 "S0VZ"

static const char *full_config = "apiVersion: v1\n"
				 "kind: Config\n"
				 "current-context: dev\n"
				 "clusters:\n"
				 "- name: other\n"
				 "  cluster: {server: 'https://10.0.0.1'}\n"
				 "- name: local\n"
				 "  cluster:\n"
				 "    server: https://127.0.0.1:6443/\n"
				 "    certificate-authority-data: " CA_B64 "\n"
				 "    tls-server-name: kubernetes\n"
				 "contexts:\n"
				 "- name: dev\n"
				 "  context: {cluster: local, user: admin, namespace: team-a}\n"
				 "users:\n"
				 "- name: admin\n"
				 "  user:\n"
				 "    client-certificate-data: " CERT_B64 "\n"
				 "    client-key-data: " KEY_B64 "\n"
				 "    token: s3cret\n";

static void full_kubeconfig_with_inline_data(void **state)
{
	struct kube_config *cfg;
	char err[256] = "", *tok;
	const struct kube_tls *tls;

	write_file("config", full_config, 0);
	assert_int_equal(kube_config_load(path_of("config"), &cfg, err, sizeof(err)), 0);
	assert_string_equal(kube_config_server(cfg), "https://127.0.0.1:6443");
	assert_string_equal(kube_config_namespace(cfg), "team-a");
	tls = kube_config_tls(cfg);
	assert_int_equal(tls->ca_len, strlen("-----BEGIN CERTIFICATE-----\nCA\n"));
	assert_memory_equal(tls->ca, "-----BEGIN CERTIFICATE-----\nCA\n", tls->ca_len);
	assert_int_equal(tls->cert_len, 4);
	assert_memory_equal(tls->cert, "CERT", 4);
	assert_memory_equal(tls->key, "KEY", 3);
	assert_string_equal(tls->server_name, "kubernetes");
	assert_false(tls->insecure);
	assert_int_equal(kube_config_token(cfg, &tok, err, sizeof(err)), 0);
	assert_string_equal(tok, "s3cret");
	free(tok);
	kube_config_free(cfg);
}

static void relative_paths_resolve_against_kubeconfig_dir(void **state)
{
	struct kube_config *cfg;
	char err[256] = "", *tok, cwd[512];

	mkdir(path_of("pki"), 0700);
	write_file("pki/ca.crt", "CAFILE", 0);
	write_file("pki/client.crt", "CERTFILE", 0);
	write_file("pki/client.key", "KEYFILE", 0);
	write_file("tok", "  tok-1\n", 0);
	write_file("config",
		   "current-context: c\n"
		   "clusters: [{name: k, cluster: {server: 'http://[::1]:8080', "
		   "certificate-authority: pki/ca.crt, insecure-skip-tls-verify: true}}]\n"
		   "contexts: [{name: c, context: {cluster: k, user: u}}]\n"
		   "users: [{name: u, user: {client-certificate: pki/client.crt, "
		   "client-key: pki/client.key, tokenFile: tok}}]\n",
		   0);
	/* From another working directory: paths must still resolve to the config's dir. */
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	assert_int_equal(chdir("/"), 0);
	assert_int_equal(kube_config_load(path_of("config"), &cfg, err, sizeof(err)), 0);
	assert_int_equal(chdir(cwd), 0);
	assert_string_equal(kube_config_server(cfg), "http://[::1]:8080");
	assert_string_equal(kube_config_namespace(cfg), "default");
	assert_memory_equal(kube_config_tls(cfg)->ca, "CAFILE", 6);
	assert_memory_equal(kube_config_tls(cfg)->cert, "CERTFILE", 8);
	assert_memory_equal(kube_config_tls(cfg)->key, "KEYFILE", 7);
	assert_true(kube_config_tls(cfg)->insecure);
	assert_int_equal(kube_config_token(cfg, &tok, err, sizeof(err)), 0);
	assert_string_equal(tok, "tok-1");
	free(tok);

	/* Rotation: a changed file (new inode, like kubelet's atomic swap) is read at once. */
	write_file("tok.new", "tok-2-longer\n", 0);
	assert_int_equal(rename(path_of("tok.new"), path_of("tok")), 0);
	assert_int_equal(kube_config_token(cfg, &tok, err, sizeof(err)), 0);
	assert_string_equal(tok, "tok-2-longer");
	free(tok);
	kube_config_free(cfg);
}

static void expect_error(const char *yaml, const char *needle)
{
	struct kube_config *cfg = (void *)1;
	char err[512] = "";
	write_file("bad", yaml, 0);
	assert_true(kube_config_load(path_of("bad"), &cfg, err, sizeof(err)) < 0);
	assert_null(cfg);
	if (!strstr(err, needle) || !strstr(err, path_of("bad")))
		fail_msg("error \"%s\" does not name \"%s\" and the file", err, needle);
}

static void errors_name_file_and_field(void **state)
{
	expect_error("clusters: []\n", "current-context");
	expect_error("current-context: x\n", "contexts");
	expect_error("current-context: x\ncontexts: [{name: x, context: {cluster: k}}]\n",
		     "no cluster named \"k\"");
	expect_error("current-context: x\ncontexts: [{name: x, context: {cluster: k}}]\n"
		     "clusters: [{name: k, cluster: {}}]\n",
		     "clusters[k].cluster.server");
	expect_error("current-context: x\ncontexts: [{name: x, context: {cluster: k}}]\n"
		     "clusters: [{name: k, cluster: {server: 'https://a', "
		     "certificate-authority-data: '***'}}]\n",
		     "certificate-authority-data");
	expect_error("current-context: x\ncontexts: [{name: x, context: {cluster: k}}]\n"
		     "clusters: [{name: k, cluster: {server: 'https://a', "
		     "certificate-authority: /nonexistent/ca}}]\n",
		     "certificate-authority");
	expect_error("current-context: x\ncontexts: [{name: x, context: {cluster: k, user: u}}]\n"
		     "clusters: [{name: k, cluster: {server: 'https://a'}}]\n"
		     "users: [{name: u, user: {client-certificate-data: " CERT_B64 "}}]\n",
		     "client-key");
	expect_error("current-context: x\ncontexts: [{name: x, context: {cluster: k, user: u}}]\n"
		     "clusters: [{name: k, cluster: {server: 'https://a'}}]\n"
		     "users: [{name: u, user: {tokenFile: missing-token}}]\n",
		     "tokenFile");
	expect_error("current-context: [unclosed\n", "YAML");
}

static void alias_bomb_is_rejected(void **state)
{
	expect_error("a: &a [x, x, x, x, x, x, x, x, x, x]\n"
		     "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
		     "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
		     "d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
		     "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n"
		     "f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n"
		     "current-context: x\n",
		     "YAML");
}

static void kubeconfig_env_first_readable_wins(void **state)
{
	struct kube_config *cfg;
	char err[256], env[1200];

	write_file("second", full_config, 0);
	write_file("third",
		   "current-context: c\n"
		   "clusters: [{name: k, cluster: {server: 'https://third'}}]\n"
		   "contexts: [{name: c, context: {cluster: k}}]\n",
		   0);
	snprintf(env, sizeof(env), "%s:%s:%s", path_of("absent"), path_of("second"),
		 path_of("third"));
	setenv("KUBECONFIG", env, 1);
	assert_int_equal(kube_config_load(NULL, &cfg, err, sizeof(err)), 0);
	assert_string_equal(kube_config_server(cfg), "https://127.0.0.1:6443");
	kube_config_free(cfg);
	unsetenv("KUBECONFIG");
}

static void in_cluster_ipv6_and_namespace(void **state)
{
	struct kube_config *cfg;
	char err[256] = "", *tok;

	write_file("ca.crt", "CA", 0);
	write_file("token", "sa-token\n", 0);
	write_file("namespace", "udf-system\n", 0);
	setenv("KUBERNETES_SERVICE_HOST", "fd00::1", 1);
	setenv("KUBERNETES_SERVICE_PORT", "443", 1);
	assert_int_equal(kube_config_in_cluster_dir(dir, &cfg, err, sizeof(err)), 0);
	assert_string_equal(kube_config_server(cfg), "https://[fd00::1]:443");
	assert_string_equal(kube_config_namespace(cfg), "udf-system");
	assert_int_equal(kube_config_token(cfg, &tok, err, sizeof(err)), 0);
	assert_string_equal(tok, "sa-token");
	free(tok);
	kube_config_free(cfg);

	setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1", 1);
	assert_int_equal(kube_config_in_cluster_dir(dir, &cfg, err, sizeof(err)), 0);
	assert_string_equal(kube_config_server(cfg), "https://10.96.0.1:443");
	kube_config_free(cfg);

	unsetenv("KUBERNETES_SERVICE_HOST");
	assert_true(kube_config_in_cluster_dir(dir, &cfg, err, sizeof(err)) < 0);
	assert_non_null(strstr(err, "KUBERNETES_SERVICE_HOST"));
}

static void exec_plugin_runs_and_reruns_on_rejection(void **state)
{
	struct kube_config *cfg;
	char err[256] = "", *tok, cfgtext[1024];

	/* The plugin counts its runs in a file and issues token-<n>. */
	write_file(
	    "plugin.sh",
	    "#!/bin/sh\n"
	    "n=$(cat \"$COUNTER\" 2>/dev/null || echo 0); n=$((n+1)); echo $n > \"$COUNTER\"\n"
	    "case \"$KUBERNETES_EXEC_INFO\" in *ExecCredential*) ;; *) exit 3;; esac\n"
	    "echo '{\"apiVersion\":\"client.authentication.k8s.io/v1\","
	    "\"kind\":\"ExecCredential\",\"status\":{\"token\":\"token-'$n'\","
	    "\"expirationTimestamp\":\"2999-01-01T00:00:00Z\"}}'\n",
	    0755);
	snprintf(cfgtext, sizeof(cfgtext),
		 "current-context: c\n"
		 "clusters: [{name: k, cluster: {server: 'https://a'}}]\n"
		 "contexts: [{name: c, context: {cluster: k, user: u}}]\n"
		 "users:\n- name: u\n  user:\n    exec:\n"
		 "      apiVersion: client.authentication.k8s.io/v1\n"
		 "      command: ./plugin.sh\n"
		 "      env: [{name: COUNTER, value: '%s/count'}]\n",
		 dir);
	write_file("config", cfgtext, 0);
	assert_int_equal(kube_config_load(path_of("config"), &cfg, err, sizeof(err)), 0);
	assert_int_equal(kube_config_token(cfg, &tok, err, sizeof(err)), 0);
	assert_string_equal(tok, "token-1");
	free(tok);
	/* Still valid: not re-run. */
	assert_int_equal(kube_config_token(cfg, &tok, err, sizeof(err)), 0);
	assert_string_equal(tok, "token-1");
	free(tok);
	/* A 401: re-run. */
	kube_config_token_rejected(cfg);
	assert_int_equal(kube_config_token(cfg, &tok, err, sizeof(err)), 0);
	assert_string_equal(tok, "token-2");
	free(tok);
	kube_config_free(cfg);
}

static void exec_plugin_expired_and_failing(void **state)
{
	struct kube_config *cfg;
	char err[256] = "", *tok;

	write_file("expired.sh",
		   "#!/bin/sh\n"
		   "echo '{\"kind\":\"ExecCredential\",\"status\":{\"token\":\"t-'$$'\","
		   "\"expirationTimestamp\":\"2000-01-01T00:00:00Z\"}}'\n",
		   0755);
	write_file("fail.sh", "#!/bin/sh\necho nope\nexit 7\n", 0755);
	write_file("config",
		   "current-context: c\n"
		   "clusters: [{name: k, cluster: {server: 'https://a'}}]\n"
		   "contexts: [{name: c, context: {cluster: k, user: u}}, "
		   "{name: d, context: {cluster: k, user: f}}]\n"
		   "users: [{name: u, user: {exec: {command: ./expired.sh}}}, "
		   "{name: f, user: {exec: {command: ./fail.sh}}}]\n",
		   0);
	assert_int_equal(kube_config_load(path_of("config"), &cfg, err, sizeof(err)), 0);
	{
		char *a, *b;
		assert_int_equal(kube_config_token(cfg, &a, err, sizeof(err)), 0);
		assert_int_equal(kube_config_token(cfg, &b, err, sizeof(err)), 0);
		/* Expired in the past: every call re-runs (a new pid in the token). */
		assert_string_not_equal(a, b);
		free(a);
		free(b);
	}
	kube_config_free(cfg);

	write_file("config",
		   "current-context: d\n"
		   "clusters: [{name: k, cluster: {server: 'https://a'}}]\n"
		   "contexts: [{name: d, context: {cluster: k, user: f}}]\n"
		   "users: [{name: f, user: {exec: {command: ./fail.sh}}}]\n",
		   0);
	assert_int_equal(kube_config_load(path_of("config"), &cfg, err, sizeof(err)), 0);
	assert_true(kube_config_token(cfg, &tok, err, sizeof(err)) < 0);
	assert_null(tok);
	assert_non_null(strstr(err, "exited with status 7"));
	kube_config_free(cfg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(full_kubeconfig_with_inline_data, setup, teardown),
	    cmocka_unit_test_setup_teardown(relative_paths_resolve_against_kubeconfig_dir, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(errors_name_file_and_field, setup, teardown),
	    cmocka_unit_test_setup_teardown(alias_bomb_is_rejected, setup, teardown),
	    cmocka_unit_test_setup_teardown(kubeconfig_env_first_readable_wins, setup, teardown),
	    cmocka_unit_test_setup_teardown(in_cluster_ipv6_and_namespace, setup, teardown),
	    cmocka_unit_test_setup_teardown(exec_plugin_runs_and_reruns_on_rejection, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(exec_plugin_expired_and_failing, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
