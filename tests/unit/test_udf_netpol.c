/* udf/netpol: the stamped sandbox NetworkPolicy is manifests/50-networkpolicy.yaml, with only
 * its namespace and the operator's namespace changed. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "udf/netpol.h"

static char *read_manifest(size_t *len)
{
	const char *src = getenv("UDF_SOURCE_DIR");
	char path[4096];
	assert_non_null(src);
	snprintf(path, sizeof(path), "%s/manifests/50-networkpolicy.yaml", src);
	FILE *f = fopen(path, "rb");
	assert_non_null(f);
	char *buf = calloc(1, 1 << 16);
	assert_non_null(buf);
	*len = fread(buf, 1, (1 << 16) - 1, f);
	assert_true(feof(f));
	fclose(f);
	return buf;
}

static const cJSON *at(const cJSON *obj, const char *path)
{
	char buf[256], *save = NULL;
	snprintf(buf, sizeof(buf), "%s", path);
	for (char *p = strtok_r(buf, ".", &save); p && obj; p = strtok_r(NULL, ".", &save)) {
		if (*p >= '0' && *p <= '9')
			obj = cJSON_GetArrayItem(obj, atoi(p));
		else
			obj = cJSON_GetObjectItemCaseSensitive(obj, p);
	}
	return obj;
}

static void set_string(cJSON *obj, const char *parent, const char *key, const char *value)
{
	cJSON *p = (cJSON *)at(obj, parent);
	assert_non_null(cJSON_GetObjectItemCaseSensitive(p, key));
	assert_true(cJSON_ReplaceItemInObjectCaseSensitive(p, key, cJSON_CreateString(value)));
}

/* The embedded text is the file in the tree (the build did not go stale), and stamping
 * changes exactly the two values: the manifest, edited by hand in those two places, equals
 * the stamped object. */
static void stamped_equals_manifest(void **state)
{
	size_t len, elen;
	char *text = read_manifest(&len);
	const char *embedded = udf_netpol_manifest_text(&elen);
	assert_int_equal(elen, len);
	assert_memory_equal(embedded, text, len);
	assert_int_equal(embedded[elen], '\0');

	struct udf_netpol *np = NULL;
	assert_int_equal(udf_netpol_new("op-ns", &np), 0);
	assert_string_equal(udf_netpol_operator_namespace(np), "op-ns");
	assert_int_equal(udf_netpol_count(np), 2);
	cJSON *got = NULL;
	assert_int_equal(udf_netpol_object(np, 0, "tenant-a", &got), 0);

	/* The expected objects, from the file through the same parser but not stamped. */
	struct udf_netpol *raw = NULL;
	assert_int_equal(udf_netpol_parse(text, len, "udf-system", &raw), 0);
	assert_int_equal(udf_netpol_count(raw), 2);
	cJSON *want = NULL;
	assert_int_equal(udf_netpol_object(raw, 0, "udf-sandboxes", &want), 0);
	set_string(want, "metadata", "namespace", "tenant-a");
	set_string(want, "spec.ingress.1.from.0.namespaceSelector.matchLabels",
		   "kubernetes.io/metadata.name", "op-ns");
	assert_true(cJSON_Compare(got, want, 1));
	/* The egress policy names no operator namespace: only its namespace changes. */
	cJSON *got_e = NULL, *want_e = NULL;
	assert_int_equal(udf_netpol_object(np, 1, "tenant-a", &got_e), 0);
	assert_int_equal(udf_netpol_object(raw, 1, "udf-sandboxes", &want_e), 0);
	set_string(want_e, "metadata", "namespace", "tenant-a");
	assert_true(cJSON_Compare(got_e, want_e, 1));
	cJSON_Delete(got_e);
	cJSON_Delete(want_e);

	/* A second stamp is independent of the first: the template is not shared. */
	cJSON *other = NULL;
	assert_int_equal(udf_netpol_object(np, 0, "tenant-b", &other), 0);
	assert_string_equal(at(other, "metadata.namespace")->valuestring, "tenant-b");
	assert_string_equal(at(got, "metadata.namespace")->valuestring, "tenant-a");

	cJSON_Delete(other);
	cJSON_Delete(want);
	cJSON_Delete(got);
	udf_netpol_free(raw);
	udf_netpol_free(np);
	free(text);
}

static int port_of(const cJSON *rule, int i)
{
	const cJSON *p = at(rule, "ports");
	const cJSON *port = at(cJSON_GetArrayItem(p, i), "port");
	assert_true(cJSON_IsNumber(port)); /* a number, as the API server needs */
	return port->valueint;
}

/* The manifest carries Helm's ownership metadata (so helm adopts what kubectl applied); a
 * stamped copy belongs to no release and drops it, keeping every other label. */
static void stamped_drops_helm_ownership(void **state)
{
	size_t len;
	char *text = read_manifest(&len);
	assert_non_null(strstr(text, "meta.helm.sh/release-name: udf-sandbox"));
	assert_non_null(strstr(text, "app.kubernetes.io/managed-by: Helm"));
	struct udf_netpol *np = NULL;
	cJSON *o = NULL;
	assert_int_equal(udf_netpol_new("op-ns", &np), 0);
	assert_true(udf_netpol_count(np) >= 1);
	for (int i = 0; i < udf_netpol_count(np); i++) {
		assert_int_equal(udf_netpol_object(np, i, "tenant-a", &o), 0);
		assert_null(at(o, "metadata.annotations"));
		const cJSON *labels = at(o, "metadata.labels");
		assert_null(
		    cJSON_GetObjectItemCaseSensitive(labels, "app.kubernetes.io/managed-by"));
		assert_string_equal(
		    cJSON_GetObjectItemCaseSensitive(labels, "app.kubernetes.io/part-of")
			->valuestring,
		    "udf-sandbox");
		cJSON_Delete(o);
	}
	udf_netpol_free(np);

	/* Other annotations stay. */
	const char *y = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n"
			"metadata:\n  name: p\n  annotations:\n    meta.helm.sh/release-name: r\n"
			"    helm.sh/resource-policy: keep\n    note: kept\n"
			"  labels:\n    app.kubernetes.io/managed-by: Helm\n    a: b\n"
			"spec:\n  ingress:\n    - from:\n        - namespaceSelector:\n"
			"            matchLabels:\n              kubernetes.io/metadata.name: x\n";
	assert_int_equal(udf_netpol_parse(y, strlen(y), "op-ns", &np), 0);
	assert_int_equal(udf_netpol_object(np, 0, "t", &o), 0);
	const cJSON *ann = at(o, "metadata.annotations");
	assert_int_equal(cJSON_GetArraySize(ann), 1);
	assert_string_equal(cJSON_GetObjectItemCaseSensitive(ann, "note")->valuestring, "kept");
	assert_int_equal(cJSON_GetArraySize(at(o, "metadata.labels")), 1);
	cJSON_Delete(o);
	udf_netpol_free(np);
	free(text);
}

/* What the policy must say, whatever the YAML looks like (issue 11). */
static void policy_says_what_it_must(void **state)
{
	struct udf_netpol *np = NULL;
	cJSON *o = NULL, *e = NULL;
	assert_int_equal(udf_netpol_new("op-ns", &np), 0);
	assert_int_equal(udf_netpol_object(np, 0, "tenant-a", &o), 0);
	assert_int_equal(udf_netpol_object(np, 1, "tenant-a", &e), 0);
	assert_int_equal(udf_netpol_object(np, 2, "tenant-a", &e), -ENOENT);

	/* One object per direction (kube-router applies a policy of both types to every packet
	 * from or to its pods, so one sandbox's ingress rule would admit another's egress). */
	assert_string_equal(at(o, "kind")->valuestring, "NetworkPolicy");
	assert_string_equal(at(o, "metadata.name")->valuestring, "udf-sandbox");
	assert_int_equal(cJSON_GetArraySize(at(o, "spec.policyTypes")), 1);
	assert_string_equal(at(o, "spec.policyTypes.0")->valuestring, "Ingress");
	assert_null(at(o, "spec.egress"));
	assert_string_equal(at(e, "kind")->valuestring, "NetworkPolicy");
	assert_string_equal(at(e, "metadata.name")->valuestring, "udf-sandbox-egress");
	assert_int_equal(cJSON_GetArraySize(at(e, "spec.policyTypes")), 1);
	assert_string_equal(at(e, "spec.policyTypes.0")->valuestring, "Egress");
	assert_null(at(e, "spec.ingress"));
	assert_true(cJSON_Compare(at(o, "spec.podSelector"), at(e, "spec.podSelector"), 1));
	assert_string_equal(at(o, "spec.podSelector.matchLabels")->child->valuestring,
			    "udf-worker");
	const cJSON *ingress = at(o, "spec.ingress");
	assert_int_equal(cJSON_GetArraySize(ingress), 2);
	const cJSON *callers = cJSON_GetArrayItem(ingress, 0);
	assert_null(at(callers, "from"));
	assert_int_equal(cJSON_GetArraySize(at(callers, "ports")), 2);
	assert_int_equal(port_of(callers, 0), 8815);
	assert_int_equal(port_of(callers, 1), 8080);
	const cJSON *control = cJSON_GetArrayItem(ingress, 1);
	assert_int_equal(cJSON_GetArraySize(at(control, "ports")), 1);
	assert_int_equal(port_of(control, 0), 9000);
	assert_int_equal(cJSON_GetArraySize(at(control, "from")), 1);
	const cJSON *ml = at(control, "from.0.namespaceSelector.matchLabels");
	assert_int_equal(cJSON_GetArraySize(ml), 1);
	assert_string_equal(ml->child->string, "kubernetes.io/metadata.name");
	assert_string_equal(ml->child->valuestring, "op-ns");
	assert_string_equal(at(control, "from.0.podSelector.matchLabels")->child->valuestring,
			    "udf-operator");

	const cJSON *egress = at(e, "spec.egress");
	assert_int_equal(cJSON_GetArraySize(egress), 2);
	const cJSON *dns = cJSON_GetArrayItem(egress, 0);
	assert_int_equal(port_of(dns, 0), 53);
	assert_int_equal(port_of(dns, 1), 53);
	assert_string_equal(at(dns, "to.0.podSelector.matchLabels")->child->valuestring,
			    "kube-dns");
	const cJSON *web = cJSON_GetArrayItem(egress, 1);
	assert_int_equal(cJSON_GetArraySize(at(web, "ports")), 2);
	assert_int_equal(port_of(web, 0), 443);
	assert_int_equal(port_of(web, 1), 80);
	assert_string_equal(at(web, "to.0.ipBlock.cidr")->valuestring, "0.0.0.0/0");
	assert_string_equal(at(web, "to.0.ipBlock.except.0")->valuestring, "169.254.0.0/16");
	assert_string_equal(at(web, "to.1.ipBlock.cidr")->valuestring, "::/0");
	assert_string_equal(at(web, "to.1.ipBlock.except.0")->valuestring, "fe80::/10");
	/* Cluster-internal ranges are blocked too (pods, Services, nodes, the API). */
	assert_string_equal(at(web, "to.0.ipBlock.except.1")->valuestring, "10.0.0.0/8");
	assert_string_equal(at(web, "to.1.ipBlock.except.2")->valuestring, "fc00::/7");

	cJSON_Delete(e);
	cJSON_Delete(o);
	udf_netpol_free(np);
}

static void operator_namespace_from_environment(void **state)
{
	struct udf_netpol *np = NULL;
	unsetenv("POD_NAMESPACE");
	assert_int_equal(udf_netpol_new(NULL, &np), 0);
	assert_string_equal(udf_netpol_operator_namespace(np), UDF_NETPOL_OPERATOR_NS_DEFAULT);
	udf_netpol_free(np);

	setenv("POD_NAMESPACE", "udf-elsewhere", 1);
	assert_int_equal(udf_netpol_new(NULL, &np), 0);
	cJSON *o = NULL;
	assert_int_equal(udf_netpol_object(np, 0, "t", &o), 0);
	assert_string_equal(
	    at(o, "spec.ingress.1.from.0.namespaceSelector.matchLabels")->child->valuestring,
	    "udf-elsewhere");
	cJSON_Delete(o);
	udf_netpol_free(np);

	setenv("POD_NAMESPACE", "Not_A_Label", 1);
	assert_int_equal(udf_netpol_new(NULL, &np), -EINVAL);
	unsetenv("POD_NAMESPACE");
}

static void bad_input_refused(void **state)
{
	struct udf_netpol *np = NULL;
	cJSON *o = NULL;
	assert_int_equal(udf_netpol_new("op", &np), 0);
	assert_int_equal(udf_netpol_object(np, 0, "", &o), -EINVAL);
	assert_int_equal(udf_netpol_object(np, 0, "UPPER", &o), -EINVAL);
	assert_int_equal(udf_netpol_object(np, 0, "a-", &o), -EINVAL);
	char long_ns[65];
	memset(long_ns, 'a', 64);
	long_ns[64] = '\0';
	assert_int_equal(udf_netpol_object(np, 0, long_ns, &o), -EINVAL);
	long_ns[63] = '\0';
	assert_int_equal(udf_netpol_object(np, 0, long_ns, &o), 0);
	cJSON_Delete(o);
	udf_netpol_free(np);

	static const char *const bad[] = {
	    "",
	    "[1, 2]",
	    "kind: NetworkPolicy\n: x\n",
	    "{unclosed",
	    /* not a NetworkPolicy */
	    "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec: {}\n",
	    /* no operator peer: the control port would be closed or open to all */
	    "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: x}\n"
	    "spec:\n  ingress:\n    - ports: [{port: 9000}]\n",
	    /* two peers selecting a namespace by name: which is the operator's? */
	    "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: x}\n"
	    "spec:\n  ingress:\n    - from:\n"
	    "        - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: a}}\n"
	    "        - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: b}}\n",
	    /* a duplicate key */
	    "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nkind: Pod\n",
	    /* two documents of one name: the second would overwrite the first */
	    "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: x}\n"
	    "spec:\n  ingress:\n    - from:\n"
	    "        - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: a}}\n"
	    "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: x}\n"
	    "spec: {}\n",
	    /* an operator peer in each of two documents */
	    "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: x}\n"
	    "spec:\n  ingress:\n    - from:\n"
	    "        - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: a}}\n"
	    "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: y}\n"
	    "spec:\n  ingress:\n    - from:\n"
	    "        - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: b}}\n",
	    /* a second document that is not a NetworkPolicy */
	    "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: x}\n"
	    "spec:\n  ingress:\n    - from:\n"
	    "        - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: a}}\n"
	    "---\napiVersion: v1\nkind: Pod\nmetadata: {name: y}\nspec: {}\n",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		np = NULL;
		assert_int_equal(udf_netpol_parse(bad[i], strlen(bad[i]), "op", &np), -EINVAL);
		assert_null(np);
	}
	/* An alias bomb stays within the node budget. */
	char bomb[2048];
	int n = snprintf(bomb, sizeof(bomb), "a: &a [x, x, x, x, x, x, x, x]\n");
	for (char c = 'b'; c <= 'j'; c++)
		n += snprintf(bomb + n, sizeof(bomb) - (size_t)n,
			      "%c: &%c [*%c, *%c, *%c, *%c, *%c, *%c, *%c, *%c]\n", c, c, c - 1,
			      c - 1, c - 1, c - 1, c - 1, c - 1, c - 1, c - 1);
	assert_int_equal(udf_netpol_parse(bomb, (size_t)n, "op", &np), -EINVAL);
}

/* Plain scalars are typed as YAML's core schema types them; quoted ones stay strings. */
static void scalars_are_typed(void **state)
{
	static const char yaml[] =
	    "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: x}\n"
	    "spec:\n  ingress:\n    - from:\n"
	    "        - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: a}}\n"
	    "  t: [8815, \"8815\", '9000', -3, true, False, null, ~, 1.5, 0x10, 12a, "
	    "99999999999999999999, endPort]\n";
	struct udf_netpol *np = NULL;
	cJSON *o = NULL;
	assert_int_equal(udf_netpol_parse(yaml, strlen(yaml), "op", &np), 0);
	assert_int_equal(udf_netpol_object(np, 0, "ns", &o), 0);
	const cJSON *t = at(o, "spec.t");
	assert_true(cJSON_IsNumber(at(t, "0")) && at(t, "0")->valueint == 8815);
	assert_string_equal(at(t, "1")->valuestring, "8815");
	assert_string_equal(at(t, "2")->valuestring, "9000");
	assert_true(cJSON_IsNumber(at(t, "3")) && at(t, "3")->valueint == -3);
	assert_true(cJSON_IsTrue(at(t, "4")));
	assert_true(cJSON_IsFalse(at(t, "5")));
	assert_true(cJSON_IsNull(at(t, "6")));
	assert_true(cJSON_IsNull(at(t, "7")));
	assert_string_equal(at(t, "8")->valuestring, "1.5");
	assert_string_equal(at(t, "9")->valuestring, "0x10");
	assert_string_equal(at(t, "10")->valuestring, "12a");
	assert_string_equal(at(t, "11")->valuestring, "99999999999999999999");
	assert_string_equal(at(t, "12")->valuestring, "endPort");
	cJSON_Delete(o);
	udf_netpol_free(np);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(stamped_equals_manifest),
	    cmocka_unit_test(stamped_drops_helm_ownership),
	    cmocka_unit_test(policy_says_what_it_must),
	    cmocka_unit_test(operator_namespace_from_environment),
	    cmocka_unit_test(bad_input_refused),
	    cmocka_unit_test(scalars_are_typed),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
