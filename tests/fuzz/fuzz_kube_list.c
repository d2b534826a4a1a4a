/* LIST bodies (kube/informer.c): pages of items into an informer cache that trims each
 * object as the operator's UdfFunction informer does (udf/function_pod.h: fn_cache_trim) and
 * drops fields; the cache must stay readable after each, and hold no payload. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kube/informer.h"
#include "udf/function_pod.h"

static struct kube_informer *inf;

static void on_add(void *arg, const cJSON *obj)
{
	char key[512];
	if (kube_object_key(obj, key, sizeof(key)) != 0)
		__builtin_trap(); /* only keyed objects are cached */
}

static void setup(void)
{
	static const char *cfgtext =
	    "current-context: c\n"
	    "clusters: [{name: k, cluster: {server: 'http://127.0.0.1:9'}}]\n"
	    "contexts: [{name: c, context: {cluster: k}}]\n";
	static const struct kube_res fns = {"apis/udf.sandbox.io/v1alpha1", "udffunctions"};
	static const char *const drop[] = {"status.conditions[].message", NULL};
	static const char *const idx[] = {"pool", NULL};
	static struct kube_handlers h = {on_add, NULL, NULL, NULL};
	struct kube_config *cfg;
	struct kube_client *client;
	struct kube_informers *loop;
	char err[256];
	struct kube_informer_opts o = {.res = &fns,
				       .drop_fields = drop,
				       .index_labels = idx,
				       .handlers = &h,
				       .transform = fn_cache_trim};
	if (kube_config_parse(cfgtext, strlen(cfgtext), NULL, &cfg, err, sizeof(err)) != 0 ||
	    kube_client_new(cfg, &client) != 0 || kube_informers_new(client, &loop) != 0 ||
	    kube_informer_add(loop, &o, &inf) != 0)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!inf)
		setup();
	(void)kube_informer_feed_list(inf, (const char *)data, size);
	cJSON *all = kube_informer_list(inf);
	const cJSON *it;
	cJSON_ArrayForEach(it, all)
	{
		const cJSON *spec = cJSON_GetObjectItemCaseSensitive(it, "spec");
		char hash[FN_SPEC_HASH_HEX + 1];
		if (cJSON_GetObjectItemCaseSensitive(spec, "code") ||
		    cJSON_GetObjectItemCaseSensitive(spec, "script") ||
		    cJSON_GetObjectItemCaseSensitive(spec, "env") ||
		    cJSON_GetObjectItemCaseSensitive(spec, "imports"))
			__builtin_trap(); /* the payload reached the cache */
		if (fn_spec_hash(it, hash) != 0)
			__builtin_trap(); /* every cached function has its digest */
	}
	if ((size_t)cJSON_GetArraySize(all) != kube_informer_count(inf))
		__builtin_trap();
	cJSON_Delete(all);
	cJSON_Delete(kube_informer_by_label(inf, "pool", "warm"));
	return 0;
}
