/* udf/function_pod: what the function controller writes: claims, tokens, the spec hash, the
 * tenant and the worker's specialize body; and the cached form of a function (no payload). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kube/informer.h"
#include "kube/rest.h"
#include "udf/function_pod.h"
#include "udf/labels.h"

static const char fn_json[] =
    "{\"metadata\":{\"name\":\"add-one\",\"namespace\":\"tenant-a\",\"uid\":\"fu-1\"},"
    "\"spec\":{\"functionName\":\"add_one\",\"handler\":\"add_one\","
    "\"inputTypes\":[\"INT NULL\"],\"resultType\":\"INT NULL\","
    "\"code\":\"def add_one(x):\\n    return x + 1\\n\",\"packages\":[\"six\"],"
    "\"imports\":[{\"location\":\"@s/h.py\",\"url\":\"http://old/h.py?sig=1\",\"tag\":\"t1\"}],"
    "\"env\":{\"A\":\"1\"},\"replicas\":1}}";

static const char pod_json[] =
    "{\"metadata\":{\"name\":\"warm-abcde\",\"namespace\":\"sb\",\"resourceVersion\":\"42\","
    "\"labels\":{\"udf.sandbox.io/pool\":\"warm\",\"udf.sandbox.io/state\":\"idle\"},"
    "\"ownerReferences\":[{\"uid\":\"pool-uid\",\"controller\":true,\"kind\":\"UdfWarmPool\"}]},"
    "\"status\":{\"podIP\":\"10.0.0.9\"}}";

static void tenant(void **state)
{
	(void)state;
	cJSON *fn = cJSON_Parse(fn_json);
	cJSON *ns = cJSON_Parse("{\"metadata\":{\"name\":\"tenant-a\",\"annotations\":"
				"{\"udf.sandbox.io/tenant\":\"Tenant_A\"}}}");
	assert_string_equal(fn_tenant(fn, NULL), "tenant-a");
	assert_string_equal(fn_tenant(fn, ns), "Tenant_A");
	cJSON_AddStringToObject(cJSON_GetObjectItem(fn, "spec"), "tenant", "exact");
	assert_string_equal(fn_tenant(fn, ns), "exact");
	char label[64];
	assert_int_equal(fn_tenant_label("Tenant_A", label), 0);
	assert_true(strncmp(label, "t-tenant-a-", 11) == 0);
	char other[64];
	assert_int_equal(fn_tenant_label("tenant-a", other), 0);
	assert_string_not_equal(label, other); /* injective */
	cJSON_Delete(fn);
	cJSON_Delete(ns);
}

static void spec_hash(void **state)
{
	(void)state;
	cJSON *fn = cJSON_Parse(fn_json);
	char a[FN_SPEC_HASH_HEX + 1], b[FN_SPEC_HASH_HEX + 1];
	assert_int_equal(fn_spec_hash(fn, a), 0);
	/* Pinned: pods carry it, so a new definition rolls every function once. */
	assert_string_equal(a, "11baa158da21ca39");
	/* A new presigned url is not a new spec; a new tag, code or replica count is / is not. */
	cJSON *im = cJSON_GetArrayItem(k8s_get(fn, "spec.imports"), 0);
	cJSON_ReplaceItemInObject(im, "url", cJSON_CreateString("http://new/h.py?sig=2"));
	cJSON_ReplaceItemInObject(cJSON_GetObjectItem(fn, "spec"), "replicas",
				  cJSON_CreateNumber(3));
	assert_int_equal(fn_spec_hash(fn, b), 0);
	assert_string_equal(a, b);
	cJSON_ReplaceItemInObject(im, "tag", cJSON_CreateString("t2"));
	assert_int_equal(fn_spec_hash(fn, b), 0);
	assert_string_not_equal(a, b);
	assert_true(fn_runs_code(fn));
	cJSON_Delete(fn);
	fn = cJSON_Parse("{\"spec\":{\"tags\":{}}}");
	assert_false(fn_runs_code(fn)); /* a bare worker record */
	cJSON_Delete(fn);
}

static void tokens(void **state)
{
	(void)state;
	char t1[FN_TOKEN_HEX + 1], t2[FN_TOKEN_HEX + 1], back[128];
	assert_int_equal(fn_token_generate(t1), 0);
	assert_int_equal(fn_token_generate(t2), 0);
	assert_int_equal((int)strlen(t1), FN_TOKEN_HEX);
	assert_string_not_equal(t1, t2);
	cJSON *fn = cJSON_Parse(fn_json), *secret = NULL;
	assert_int_equal(fn_token_secret_build(fn, t1, &secret), 0);
	assert_string_equal(k8s_str(secret, "metadata.name"), "add-one-token");
	assert_string_equal(k8s_str(secret, "stringData.token"), t1);
	const cJSON *ref = cJSON_GetArrayItem(k8s_get(secret, "metadata.ownerReferences"), 0);
	assert_string_equal(k8s_str(ref, "uid"), "fu-1");
	assert_string_equal(k8s_str(ref, "kind"), UDF_KIND_FN);
	cJSON_Delete(secret);
	/* what the API server gives back: base64 under data */
	cJSON *read = cJSON_Parse("{\"data\":{\"token\":\"c2VjcmV0LXRva2VuCg==\"}}");
	assert_int_equal(fn_token_from_secret(read, back, sizeof(back)), 0);
	assert_string_equal(back, "secret-token");
	cJSON_Delete(read);
	read = cJSON_Parse("{\"data\":{\"token\":\"!!\"}}");
	assert_int_equal(fn_token_from_secret(read, back, sizeof(back)), -EINVAL);
	cJSON_Delete(read);
	cJSON_Delete(fn);
}

static void claim(void **state)
{
	(void)state;
	cJSON *fn = cJSON_Parse(fn_json), *pod = cJSON_Parse(pod_json), *out = NULL;
	assert_int_equal(fn_claim_pod(pod, fn, "pool-uid", "t-x", "abc", "warm", &out), 0);
	assert_string_equal(k8s_label(out, UDF_LABEL_STATE), UDF_STATE_CLAIMED);
	assert_string_equal(k8s_label(out, UDF_LABEL_FUNCTION_UID), "fu-1");
	assert_string_equal(k8s_label(out, UDF_LABEL_TENANT), "t-x");
	assert_string_equal(k8s_label(out, UDF_LABEL_POOL), "warm"); /* its token's key */
	assert_string_equal(k8s_annotation(out, UDF_ANNO_FUNCTION), "tenant-a/add-one");
	assert_string_equal(k8s_annotation(out, UDF_ANNO_SPEC_HASH), "abc");
	assert_string_equal(k8s_annotation(out, UDF_ANNO_LAUNCH_TYPE), "warm");
	/* the update is conditional on what was read, and the pool lets go */
	assert_string_equal(k8s_str(out, "metadata.resourceVersion"), "42");
	assert_null(k8s_get(out, "metadata.ownerReferences"));
	/* the cache's copy is untouched */
	assert_string_equal(k8s_label(pod, UDF_LABEL_STATE), UDF_STATE_IDLE);
	cJSON_Delete(out);
	/* the same as the merge patch a warm claim sends */
	assert_int_equal(fn_claim_patch(pod, fn, "pool-uid", "t-x", "abc", "warm", &out), 0);
	assert_string_equal(k8s_str(out, "metadata.resourceVersion"), "42");
	assert_string_equal(k8s_label(out, UDF_LABEL_STATE), UDF_STATE_CLAIMED);
	assert_string_equal(k8s_annotation(out, UDF_ANNO_FUNCTION), "tenant-a/add-one");
	assert_int_equal(cJSON_GetArraySize(k8s_get(out, "metadata.ownerReferences")), 0);
	assert_true(cJSON_IsArray(k8s_get(out, "metadata.ownerReferences")));
	assert_null(k8s_get(out, "status"));
	assert_null(k8s_get(out, "spec"));
	cJSON_Delete(out);
	cJSON_Delete(pod);
	cJSON_Delete(fn);
}

static void specialize_body(void **state)
{
	(void)state;
	cJSON *fn = cJSON_Parse(fn_json);
	cJSON *urls = cJSON_Parse("{\"@s/h.py\":\"http://fresh/h.py?sig=9\"}");
	char *text = NULL;
	assert_int_equal(fn_specialize_body(fn, "tenant-a", "tok", urls, &text), 0);
	cJSON *b = cJSON_Parse(text);
	assert_string_equal(k8s_str(b, "function"), "add_one");
	assert_string_equal(k8s_str(b, "tenant"), "tenant-a");
	assert_string_equal(k8s_str(b, "token"), "tok");
	assert_string_equal(k8s_str(b, "env.A"), "1");
	assert_string_equal(k8s_str(b, "spec.handler"), "add_one");
	assert_string_equal(k8s_str(b, "spec.result_type"), "INT NULL");
	assert_int_equal(cJSON_GetArraySize(k8s_get(b, "spec.input_types")), 1);
	assert_int_equal(cJSON_GetArraySize(k8s_get(b, "spec.packages")), 1);
	const cJSON *im = cJSON_GetArrayItem(k8s_get(b, "spec.imports"), 0);
	assert_string_equal(k8s_str(im, "url"), "http://fresh/h.py?sig=9");
	assert_string_equal(k8s_str(im, "tag"), "t1");
	cJSON_Delete(b);
	free(text);
	/* without fresh urls, the spec's */
	assert_int_equal(fn_specialize_body(fn, "tenant-a", "tok", NULL, &text), 0);
	b = cJSON_Parse(text);
	im = cJSON_GetArrayItem(k8s_get(b, "spec.imports"), 0);
	assert_string_equal(k8s_str(im, "url"), "http://old/h.py?sig=1");
	cJSON_Delete(b);
	free(text);
	/* the script form */
	cJSON *sfn = cJSON_Parse("{\"metadata\":{\"name\":\"r-1\",\"namespace\":\"n\"},"
				 "\"spec\":{\"script\":\"#!/bin/bash\\n\"}}");
	assert_int_equal(fn_specialize_body(sfn, "t", "tok", NULL, &text), 0);
	b = cJSON_Parse(text);
	assert_string_equal(k8s_str(b, "script"), "#!/bin/bash\n");
	assert_string_equal(k8s_str(b, "function"), "r-1");
	assert_null(k8s_get(b, "spec"));
	cJSON_Delete(b);
	free(text);
	cJSON_Delete(sfn);
	cJSON_Delete(urls);
	cJSON_Delete(fn);
}

/* tests/unit/fixtures/udffunctions.json: a UdfFunctionList as the API server serves it (a
 * function applied with kubectl, a script the gRPC service made, a bare worker record); every
 * value the cache must not keep contains SECRET. Caller frees. */
static cJSON *served_functions(void)
{
	const char *src = getenv("UDF_SOURCE_DIR");
	char path[4096];
	snprintf(path, sizeof(path), "%s/tests/unit/fixtures/udffunctions.json", src ? src : ".");
	FILE *f = fopen(path, "rb");
	assert_non_null(f);
	char *buf = calloc(1, 1 << 16);
	assert_non_null(buf);
	size_t len = fread(buf, 1, (1 << 16) - 1, f);
	assert_true(feof(f));
	fclose(f);
	cJSON *list = cJSON_ParseWithLength(buf, len);
	free(buf);
	assert_non_null(list);
	return list;
}

static int same(const cJSON *a, const cJSON *b)
{
	return (!a && !b) || cJSON_Compare(a, b, 1);
}

/* The trimmed copy answers what the controller asks as the object as served does, keeps
 * what the readers read, and holds no payload. */
static void cached_form_answers_as_served(void **state)
{
	(void)state;
	cJSON *list = served_functions();
	const cJSON *served;
	int n = 0;
	cJSON_ArrayForEach(served, cJSON_GetObjectItem(list, "items"))
	{
		char h1[FN_SPEC_HASH_HEX + 1], h2[FN_SPEC_HASH_HEX + 1], u1[65], u2[65];
		cJSON *c = cJSON_Duplicate(served, 1);
		assert_int_equal(fn_cache_trim(c), 0);
		assert_int_equal(fn_spec_hash(served, h1), 0);
		assert_int_equal(fn_spec_hash(c, h2), 0);
		assert_string_equal(h1, h2);
		assert_int_equal(fn_runs_code(served), fn_runs_code(c));
		assert_int_equal(fn_import_urls_hash(served, u1), 0);
		assert_int_equal(fn_import_urls_hash(c, u2), 0);
		assert_string_equal(u1, u2);
		static const char *const gone[] = {"handler", "inputTypes", "resultType",
						   "code",    "packages",   "imports",
						   "script",  "env",	    "runtimeVersion"};
		for (size_t i = 0; i < sizeof(gone) / sizeof(gone[0]); i++)
			assert_null(cJSON_GetObjectItem(k8s_get(c, "spec"), gone[i]));
		assert_null(k8s_annotation(c, UDF_ANNO_IMPORT_URLS));
		static const char *const kept[] = {"metadata.uid",
						   "metadata.generation",
						   "spec.tenant",
						   "spec.functionName",
						   "spec.replicas",
						   "spec.poolRef",
						   "spec.tags",
						   "spec.options",
						   "spec.idleTimeoutSeconds",
						   "status",
						   "metadata.finalizers"};
		for (size_t i = 0; i < sizeof(kept) / sizeof(kept[0]); i++)
			assert_true(same(k8s_get(served, kept[i]), k8s_get(c, kept[i])));
		assert_true(
		    same(k8s_get(served, "metadata.labels"), k8s_get(c, "metadata.labels")));
		const char *ck = k8s_annotation(served, UDF_ANNO_CONTENT_KEY);
		if (ck)
			assert_string_equal(ck, k8s_annotation(c, UDF_ANNO_CONTENT_KEY));
		/* The digest is made from the payload alone: one the object came with is not
		 * believed (the API server prunes it anyway). */
		cJSON *forged = cJSON_Duplicate(served, 1);
		cJSON *fd = cJSON_AddObjectToObject(forged, FN_CACHE_DIGEST);
		cJSON_AddStringToObject(fd, "specHash", "0000000000000000");
		cJSON_AddBoolToObject(fd, "runsCode", 1);
		assert_int_equal(fn_cache_trim(forged), 0);
		assert_true(cJSON_Compare(forged, c, 1));
		cJSON_Delete(forged);
		cJSON_Delete(c);
		n++;
	}
	assert_int_equal(n, 3);
	/* the structured form and the script run code; the bare worker record does not */
	assert_true(fn_runs_code(cJSON_GetArrayItem(cJSON_GetObjectItem(list, "items"), 0)));
	assert_true(fn_runs_code(cJSON_GetArrayItem(cJSON_GetObjectItem(list, "items"), 1)));
	assert_false(fn_runs_code(cJSON_GetArrayItem(cJSON_GetObjectItem(list, "items"), 2)));
	cJSON_Delete(list);
}

/* The payload changes the digest as it changes the hash: new code rolls the pods, a new
 * presigned url does not (it changes importUrls only). */
static void digest_follows_the_payload(void **state)
{
	(void)state;
	cJSON *list = served_functions();
	cJSON *fn = cJSON_Duplicate(cJSON_GetArrayItem(cJSON_GetObjectItem(list, "items"), 0), 1);
	cJSON *a = cJSON_Duplicate(fn, 1), *b = cJSON_Duplicate(fn, 1), *c = cJSON_Duplicate(fn, 1);
	char ha[FN_SPEC_HASH_HEX + 1], hb[FN_SPEC_HASH_HEX + 1], hc[FN_SPEC_HASH_HEX + 1];
	char ua[65], uc[65];
	cJSON_ReplaceItemInObject(cJSON_GetObjectItem(b, "spec"), "code",
				  cJSON_CreateString("def add_one(x):\n    return x + 2\n"));
	cJSON *annos = cJSON_GetObjectItem(cJSON_GetObjectItem(c, "metadata"), "annotations");
	cJSON_ReplaceItemInObject(
	    annos, UDF_ANNO_IMPORT_URLS,
	    cJSON_CreateString("{\"@stage/imports/helper.py\":\"https://n/\"}"));
	cJSON_ReplaceItemInObject(cJSON_GetArrayItem(k8s_get(c, "spec.imports"), 0), "url",
				  cJSON_CreateString("https://store.example/renewed"));
	assert_int_equal(fn_cache_trim(a), 0);
	assert_int_equal(fn_cache_trim(b), 0);
	assert_int_equal(fn_cache_trim(c), 0);
	assert_int_equal(fn_spec_hash(a, ha), 0);
	assert_int_equal(fn_spec_hash(b, hb), 0);
	assert_int_equal(fn_spec_hash(c, hc), 0);
	assert_string_not_equal(ha, hb);
	assert_string_equal(ha, hc);
	assert_int_equal(fn_import_urls_hash(a, ua), 0);
	assert_int_equal(fn_import_urls_hash(c, uc), 0);
	assert_string_not_equal(ua, uc);
	/* A digest that is not one (a hand-made object) is an error, not a made-up hash. */
	cJSON_ReplaceItemInObject(cJSON_GetObjectItem(a, FN_CACHE_DIGEST), "specHash",
				  cJSON_CreateString("short"));
	assert_int_equal(fn_spec_hash(a, ha), -EINVAL);
	cJSON_Delete(a);
	cJSON_Delete(b);
	cJSON_Delete(c);
	cJSON_Delete(fn);
	cJSON_Delete(list);
}

/* What the controller specializes with is the object as served (it GETs it): the body carries
 * the code, the env and the newest urls, and its spec hash is the cached one. */
static void specialize_body_from_served(void **state)
{
	(void)state;
	cJSON *list = served_functions();
	const cJSON *served = cJSON_GetArrayItem(cJSON_GetObjectItem(list, "items"), 0);
	cJSON *cached = cJSON_Duplicate(served, 1);
	char hs[FN_SPEC_HASH_HEX + 1], hc[FN_SPEC_HASH_HEX + 1], *text = NULL;
	assert_int_equal(fn_cache_trim(cached), 0);
	assert_int_equal(fn_spec_hash(served, hs), 0);
	assert_int_equal(fn_spec_hash(cached, hc), 0);
	assert_string_equal(hs, hc);
	assert_int_equal(fn_served_matches(cached, served), 0);
	/* The server's copy moved on: new urls or replicas are the same spec; new code, or a new
	 * function of that name, is not (the controller waits for its cache). */
	cJSON *moved = cJSON_Duplicate(served, 1);
	cJSON_ReplaceItemInObject(cJSON_GetObjectItem(moved, "spec"), "replicas",
				  cJSON_CreateNumber(3));
	cJSON_ReplaceItemInObject(cJSON_GetArrayItem(k8s_get(moved, "spec.imports"), 0), "url",
				  cJSON_CreateString("https://store.example/renewed"));
	assert_int_equal(fn_served_matches(cached, moved), 0);
	cJSON_ReplaceItemInObject(cJSON_GetObjectItem(moved, "spec"), "code",
				  cJSON_CreateString("def add_one(x):\n    return x + 2\n"));
	assert_int_equal(fn_served_matches(cached, moved), -ESTALE);
	cJSON_Delete(moved);
	moved = cJSON_Duplicate(served, 1);
	cJSON_ReplaceItemInObject(cJSON_GetObjectItem(moved, "metadata"), "uid",
				  cJSON_CreateString("another-uid"));
	assert_int_equal(fn_served_matches(cached, moved), -ESTALE);
	cJSON_Delete(moved);
	cJSON *urls = cJSON_Parse(k8s_annotation(served, UDF_ANNO_IMPORT_URLS));
	assert_int_equal(fn_specialize_body(served, "tenant-a", "tok", urls, &text), 0);
	cJSON *b = cJSON_Parse(text);
	assert_non_null(strstr(k8s_str(b, "spec.code"), "SECRET-CODE"));
	assert_string_equal(k8s_str(b, "env.API_TOKEN"), "SECRET-ENV-VALUE");
	const cJSON *im = cJSON_GetArrayItem(k8s_get(b, "spec.imports"), 0);
	assert_non_null(strstr(k8s_str(im, "url"), "SECRET-FRESH-URL"));
	cJSON_Delete(b);
	free(text);
	cJSON_Delete(urls);
	cJSON_Delete(cached);
	cJSON_Delete(list);
}

/* An informer set up as main.c's UdfFunction informer: nothing secret reaches the cache (the
 * kubectl annotation and managedFields included), and a function with 1.3 MiB of code is
 * cached in a few KiB. */
static void cache_holds_no_code_or_script(void **state)
{
	(void)state;
	static const char *cfgtext =
	    "current-context: c\n"
	    "clusters: [{name: k, cluster: {server: 'http://127.0.0.1:9'}}]\n"
	    "contexts: [{name: c, context: {cluster: k}}]\n";
	static const struct kube_res fns = {"apis/udf.sandbox.io/v1alpha1", "udffunctions"};
	struct kube_config *cfg;
	struct kube_client *client;
	struct kube_informers *loop;
	struct kube_informer *inf;
	char err[256];
	struct kube_informer_opts o = {.res = &fns, .transform = fn_cache_trim};
	assert_int_equal(kube_config_parse(cfgtext, strlen(cfgtext), NULL, &cfg, err, sizeof(err)),
			 0);
	assert_int_equal(kube_client_new(cfg, &client), 0);
	assert_int_equal(kube_informers_new(client, &loop), 0);
	assert_int_equal(kube_informer_add(loop, &o, &inf), 0);

	cJSON *list = served_functions();
	/* the first one's code grows to what a big UDF holds */
	cJSON *spec =
	    cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(list, "items"), 0), "spec");
	size_t big = 1300 * 1024;
	char *code = malloc(big + 1);
	assert_non_null(code);
	memset(code, '#', big);
	memcpy(code, "# SECRET-CODE\n", 14);
	code[big] = '\0';
	cJSON_ReplaceItemInObject(spec, "code", cJSON_CreateString(code));
	free(code);
	char *page = cJSON_PrintUnformatted(list);
	assert_true(strlen(page) > big);
	assert_int_equal(kube_informer_feed_list(inf, page, strlen(page)), 0);
	free(page);
	cJSON_Delete(list);

	assert_int_equal(kube_informer_count(inf), 3);
	cJSON *all = kube_informer_list(inf);
	char *text = cJSON_PrintUnformatted(all);
	assert_null(strstr(text, "SECRET"));
	assert_true(strlen(text) < 8 * 1024);
	free(text);
	cJSON_Delete(all);
	cJSON *fn = kube_informer_get(inf, "tenant-a/add-one");
	char hash[FN_SPEC_HASH_HEX + 1];
	assert_int_equal(fn_spec_hash(fn, hash), 0);
	assert_true(fn_runs_code(fn));
	cJSON_Delete(fn);
	kube_informers_free(loop);
	kube_client_free(client);
}

static void service_objects(void **state)
{
	(void)state;
	cJSON *fn = cJSON_Parse(fn_json), *svc = NULL, *sl = NULL;
	assert_int_equal(fn_service_build(fn, &svc), 0);
	assert_string_equal(k8s_str(svc, "metadata.name"), "add-one");
	assert_string_equal(k8s_str(svc, "metadata.namespace"), "tenant-a");
	assert_null(k8s_get(svc, "spec.selector")); /* the pods are in another namespace */
	const cJSON *port = cJSON_GetArrayItem(k8s_get(svc, "spec.ports"), 0);
	assert_int_equal(k8s_int(port, "port", 0), FN_FLIGHT_PORT);
	const char *ips[] = {"10.0.0.1", "10.0.0.2"};
	const int ready[] = {1, 0};
	assert_int_equal(fn_endpointslice_build(fn, ips, ready, 2, &sl), 0);
	assert_string_equal(k8s_str(sl, "metadata.name"), "add-one-flight");
	assert_string_equal(k8s_label(sl, "kubernetes.io/service-name"), "add-one");
	assert_string_equal(k8s_label(sl, "endpointslice.kubernetes.io/managed-by"), UDF_MANAGER);
	const cJSON *eps = k8s_get(sl, "endpoints");
	assert_int_equal(cJSON_GetArraySize(eps), 2);
	assert_true(cJSON_IsTrue(k8s_get(cJSON_GetArrayItem(eps, 0), "conditions.ready")));
	assert_true(cJSON_IsFalse(k8s_get(cJSON_GetArrayItem(eps, 1), "conditions.ready")));
	cJSON_Delete(sl);
	cJSON_Delete(svc);
	cJSON_Delete(fn);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(tenant),
	    cmocka_unit_test(spec_hash),
	    cmocka_unit_test(tokens),
	    cmocka_unit_test(claim),
	    cmocka_unit_test(specialize_body),
	    cmocka_unit_test(service_objects),
	    cmocka_unit_test(cached_form_answers_as_served),
	    cmocka_unit_test(digest_follows_the_payload),
	    cmocka_unit_test(specialize_body_from_served),
	    cmocka_unit_test(cache_holds_no_code_or_script),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
