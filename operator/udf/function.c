#include "udf/function.h"

#include <errno.h>
#include <string.h>

#include "kube/rest.h"
#include "udf/labels.h"

const cJSON *fn_condition(const cJSON *obj, const char *type)
{
	const cJSON *conds = k8s_get(obj, "status.conditions");
	const cJSON *c;
	if (!cJSON_IsArray(conds))
		return NULL;
	cJSON_ArrayForEach(c, conds)
	{
		const cJSON *t = cJSON_GetObjectItemCaseSensitive(c, "type");
		if (cJSON_IsString(t) && strcmp(t->valuestring, type) == 0)
			return c;
	}
	return NULL;
}

static const char *cond_str(const cJSON *c, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(c, key);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);
	return n >= m && strcmp(s + n - m, suffix) == 0;
}

void fn_read_status(const cJSON *obj, struct fn_status *st)
{
	static const char *const failing_steps[] = {"ImportsFetched", "PackagesInstalled",
						    "Specialized", "CodeLoaded"};
	memset(st, 0, sizeof(*st));
	/* A status written for an older spec says nothing about the current one: its endpoint
	 * may serve the old code, its failure may be fixed. */
	long long gen = k8s_int(obj, "metadata.generation", 0);
	long long seen = k8s_int(obj, "status.observedGeneration", 0);
	if (seen < gen)
		return;
	const char *ep = k8s_str(obj, "status.endpoint");
	st->endpoint = ep && *ep ? ep : NULL;
	const char *sec = k8s_str(obj, "status.tokenSecretName");
	st->token_secret = sec && *sec ? sec : NULL;

	const cJSON *ready = fn_condition(obj, "Ready");
	const char *rs = ready ? cond_str(ready, "status") : NULL;
	if (rs && strcmp(rs, "True") == 0) {
		st->ready = st->endpoint && st->token_secret;
		return;
	}
	if (ready)
		st->message = cond_str(ready, "message");
	for (size_t i = 0; i < sizeof(failing_steps) / sizeof(failing_steps[0]); i++) {
		const cJSON *c = fn_condition(obj, failing_steps[i]);
		const char *s = c ? cond_str(c, "status") : NULL;
		if (s && strcmp(s, "False") == 0) {
			st->failed = 1;
			st->message = cond_str(c, "message");
			return;
		}
	}
	const char *reason = ready ? cond_str(ready, "reason") : NULL;
	if (rs && strcmp(rs, "False") == 0 && reason && ends_with(reason, "Failed"))
		st->failed = 1;
}

static cJSON *string_array(const char *const *v, size_t n)
{
	cJSON *a = cJSON_CreateArray();
	for (size_t i = 0; a && i < n; i++) {
		if (!cJSON_AddItemToArray(a, cJSON_CreateString(v[i]))) {
			cJSON_Delete(a);
			return NULL;
		}
	}
	return a;
}

static cJSON *kv_object(const struct fn_kv *kv, size_t n)
{
	cJSON *o = cJSON_CreateObject();
	for (size_t i = 0; o && i < n; i++) {
		cJSON_DeleteItemFromObjectCaseSensitive(o, kv[i].key);
		if (!cJSON_AddStringToObject(o, kv[i].key, kv[i].value)) {
			cJSON_Delete(o);
			return NULL;
		}
	}
	return o;
}

static int add_structured(cJSON *spec, const struct fn_desc *d)
{
	int ok = cJSON_AddStringToObject(spec, "handler", d->handler) &&
		 cJSON_AddItemToObject(spec, "inputTypes",
				       string_array(d->input_types, d->n_input_types)) &&
		 cJSON_AddStringToObject(spec, "resultType", d->result_type) &&
		 cJSON_AddStringToObject(spec, "code", d->code);
	if (ok && d->n_packages)
		ok = cJSON_AddItemToObject(spec, "packages",
					   string_array(d->packages, d->n_packages));
	if (ok && d->runtime_version && *d->runtime_version)
		ok = cJSON_AddStringToObject(spec, "runtimeVersion", d->runtime_version) != NULL;
	if (ok && d->n_imports) {
		cJSON *imps = cJSON_AddArrayToObject(spec, "imports");
		ok = imps != NULL;
		for (size_t i = 0; ok && i < d->n_imports; i++) {
			cJSON *im = cJSON_CreateObject();
			ok = cJSON_AddItemToArray(imps, im) &&
			     cJSON_AddStringToObject(im, "location", d->imports[i].location) &&
			     cJSON_AddStringToObject(im, "url", d->imports[i].url) &&
			     cJSON_AddStringToObject(im, "tag", d->imports[i].tag);
		}
	}
	return ok;
}

int fn_object(const struct fn_desc *d, const char *ns, cJSON **out)
{
	char proto[2] = {(char)('0' + d->protocol), '\0'};
	cJSON *obj = cJSON_CreateObject();
	cJSON *md = cJSON_AddObjectToObject(obj, "metadata");
	cJSON *labels = cJSON_AddObjectToObject(md, "labels");
	cJSON *annos = cJSON_AddObjectToObject(md, "annotations");
	cJSON *spec = cJSON_AddObjectToObject(obj, "spec");
	int ok = obj && md && labels && annos && spec;

	*out = NULL;
	ok = ok && cJSON_AddStringToObject(obj, "apiVersion", UDF_API_VERSION);
	ok = ok && cJSON_AddStringToObject(obj, "kind", UDF_KIND_FN);
	ok = ok && cJSON_AddStringToObject(md, "name", d->name);
	ok = ok && cJSON_AddStringToObject(md, "namespace", ns);
	ok = ok && cJSON_AddStringToObject(labels, UDF_LABEL_MANAGED_BY, UDF_MANAGER);
	ok = ok && cJSON_AddStringToObject(labels, UDF_LABEL_PROTOCOL, proto);
	ok = ok && cJSON_AddStringToObject(annos, UDF_ANNO_CONTENT_KEY, d->content_key);
	ok = ok && cJSON_AddStringToObject(spec, "tenant", d->tenant);
	if (ok && d->function_name)
		ok = cJSON_AddStringToObject(spec, "functionName", d->function_name) != NULL;
	if (ok && d->script)
		ok = cJSON_AddStringToObject(spec, "script", d->script) != NULL;
	else if (ok && d->handler)
		ok = add_structured(spec, d);
	if (ok && d->n_tags)
		ok = cJSON_AddItemToObject(spec, "tags", kv_object(d->tags, d->n_tags));
	if (ok && d->n_options)
		ok = cJSON_AddItemToObject(spec, "options", kv_object(d->options, d->n_options));
	if (!ok) {
		cJSON_Delete(obj);
		return -ENOMEM;
	}
	*out = obj;
	return 0;
}

int fn_matches(const cJSON *obj, const char *tenant, const char *content_key)
{
	const char *t = k8s_str(obj, "spec.tenant");
	const char *k = k8s_annotation(obj, UDF_ANNO_CONTENT_KEY);
	return t && k && strcmp(t, tenant) == 0 && strcmp(k, content_key) == 0;
}
