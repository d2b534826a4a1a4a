#include "api/tenants.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kube/informer.h"
#include "kube/rest.h"
#include "kube/strmap.h"
#include "udf/labels.h"
#include "udf/naming.h"
#include "udf/netpol.h"
#include "udf/tenant.h"
#include "util/log.h"

static const struct kube_res res_namespaces = {"api/v1", "namespaces"};
static const struct kube_res res_netpols = {"apis/networking.k8s.io/v1", "networkpolicies"};
static const struct kube_res res_quotas = {"api/v1", "resourcequotas"};
#define QUOTA_NAME "udf-tenant-quota"

struct tenants {
	struct kube_client *kube;
	struct kube_informer *inf_ns;
	char prefix[NAMING_PREFIX_MAX + 1];
	struct udf_netpol *netpol; /* the sandbox policy every tenant namespace gets */
	pthread_mutex_t lock;
	struct strmap owners; /* tenant namespace -> its tenant annotation (char *) */
	struct tenants_limits lim;
	cJSON *labels; /* extra labels of new namespaces, or NULL */
};

static void note(struct tenants *t, const cJSON *nsobj, int deleted)
{
	const char *name = k8s_str(nsobj, "metadata.name");
	const char *owner = k8s_annotation(nsobj, UDF_ANNO_TENANT);
	char *copy = !deleted && owner ? strdup(owner) : NULL;
	void *old = NULL;
	if (!name)
		return;
	pthread_mutex_lock(&t->lock);
	if (copy) {
		if (strmap_put(&t->owners, name, copy, &old) < 0) {
			free(copy);
			strmap_del(&t->owners, name, &old);
		}
	} else {
		strmap_del(&t->owners, name, &old);
	}
	pthread_mutex_unlock(&t->lock);
	free(old);
}

static void on_add(void *arg, const cJSON *obj)
{
	note(arg, obj, 0);
}

static void on_update(void *arg, const cJSON *old, const cJSON *obj)
{
	note(arg, obj, 0);
}

static void on_delete(void *arg, const cJSON *obj)
{
	note(arg, obj, 1);
}

int tenants_new(struct kube_client *kube, struct kube_informer *inf_ns, const char *prefix,
		struct tenants **out)
{
	if (!naming_prefix_valid(prefix))
		return -EINVAL;
	struct tenants *t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->kube = kube;
	t->inf_ns = inf_ns;
	snprintf(t->prefix, sizeof(t->prefix), "%s", prefix);
	pthread_mutex_init(&t->lock, NULL);
	strmap_init(&t->owners);
	struct kube_handlers h = {on_add, on_update, on_delete, t};
	int rc = udf_netpol_new(NULL, &t->netpol);
	if (rc < 0)
		log_error("tenants",
			  "the built-in sandbox NetworkPolicy (manifests/"
			  "50-networkpolicy.yaml) does not parse: %s",
			  strerror(-rc));
	if (rc == 0)
		rc = kube_informer_add_handlers(inf_ns, &h);
	if (rc < 0) {
		tenants_free(t);
		return rc;
	}
	*out = t;
	return 0;
}

void tenants_free(struct tenants *t)
{
	if (!t)
		return;
	strmap_free(&t->owners, free);
	udf_netpol_free(t->netpol);
	cJSON_Delete(t->labels);
	pthread_mutex_destroy(&t->lock);
	free(t);
}

/* A label key ([prefix/]name) or value as Kubernetes takes them, roughly: 1-63 (keys up to
 * 253 with a prefix) of [A-Za-z0-9._-/]; values may be empty. */
static int label_part_ok(const char *s, size_t max, int key)
{
	size_t n = strlen(s);
	if (n > max || (key && n == 0))
		return 0;
	for (; *s; s++) {
		if (!(isalnum((unsigned char)*s) || *s == '.' || *s == '_' || *s == '-' ||
		      (key && *s == '/')))
			return 0;
	}
	return 1;
}

int tenants_parse_labels(const char *spec, cJSON **out)
{
	*out = NULL;
	if (!spec || !*spec)
		return 0;
	cJSON *labels = cJSON_CreateObject();
	char *copy = strdup(spec);
	int rc = labels && copy ? 0 : -ENOMEM;
	char *save = NULL;
	for (char *tok = rc ? NULL : strtok_r(copy, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(tok, '=');
		if (!eq) {
			rc = -EINVAL;
			break;
		}
		*eq = '\0';
		if (!label_part_ok(tok, 253, 1) || !label_part_ok(eq + 1, 63, 0)) {
			rc = -EINVAL;
			break;
		}
		cJSON_AddStringToObject(labels, tok, eq + 1);
	}
	free(copy);
	if (rc < 0) {
		cJSON_Delete(labels);
		return rc;
	}
	*out = labels;
	return 0;
}

int tenants_set_labels(struct tenants *t, const char *spec)
{
	cJSON *labels;
	int rc = tenants_parse_labels(spec, &labels);
	if (rc == 0) {
		cJSON_Delete(t->labels);
		t->labels = labels;
	}
	return rc;
}

void tenants_set_limits(struct tenants *t, const struct tenants_limits *l)
{
	t->lim = *l;
}

/* Tenant namespaces of this operator's prefix in the cache. */
static int count_own(struct tenants *t)
{
	struct strmap_iter it;
	const char *name;
	void *val;
	int n = 0;
	size_t plen = strlen(t->prefix);
	pthread_mutex_lock(&t->lock);
	strmap_iter_init(&t->owners, &it);
	while (strmap_iter_next(&t->owners, &it, &name, &val))
		n += strncmp(name, t->prefix, plen) == 0;
	pthread_mutex_unlock(&t->lock);
	return n;
}

/* The ResourceQuota of a tenant namespace, or NULL when no limit asks for one. */
static cJSON *quota_object(const struct tenants *t, const char *ns)
{
	char v[32];
	if (t->lim.max_pods <= 0 && t->lim.max_functions <= 0)
		return NULL;
	cJSON *q = cJSON_CreateObject();
	cJSON *md = cJSON_AddObjectToObject(q, "metadata");
	cJSON *labels = cJSON_AddObjectToObject(md, "labels");
	cJSON *hard = cJSON_AddObjectToObject(cJSON_AddObjectToObject(q, "spec"), "hard");
	cJSON_AddStringToObject(q, "apiVersion", "v1");
	cJSON_AddStringToObject(q, "kind", "ResourceQuota");
	cJSON_AddStringToObject(md, "name", QUOTA_NAME);
	cJSON_AddStringToObject(md, "namespace", ns);
	cJSON_AddStringToObject(labels, UDF_LABEL_MANAGED_BY, UDF_MANAGER);
	if (t->lim.max_pods > 0) {
		snprintf(v, sizeof(v), "%d", t->lim.max_pods);
		cJSON_AddStringToObject(hard, "pods", v);
	}
	if (t->lim.max_functions > 0) {
		snprintf(v, sizeof(v), "%d", t->lim.max_functions);
		cJSON_AddStringToObject(hard, "count/udffunctions." UDF_API_GROUP, v);
	}
	return q;
}

int tenants_namespace(struct tenants *t, const char *tenant, char ns[64])
{
	return naming_tenant_namespace(t->prefix, tenant, ns);
}

int tenants_owner_known(struct tenants *t, const char *ns, const char *tenant)
{
	pthread_mutex_lock(&t->lock);
	const char *owner = strmap_get(&t->owners, ns);
	int known = !owner ? 0 : strcmp(owner, tenant) == 0 ? 1 : -1;
	pthread_mutex_unlock(&t->lock);
	return known;
}

int tenants_synced(struct tenants *t)
{
	return kube_informer_has_synced(t->inf_ns);
}

static int fail(int rc, enum fn_result r, enum fn_result *res)
{
	*res = r;
	return rc;
}

/* Creates the namespace, or checks the one there is the tenant's. */
static int ensure_namespace(struct tenants *t, const char *ns, const char *tenant,
			    enum fn_result *res, char *msg, size_t msglen)
{
	cJSON *nsobj = NULL;
	int known = tenants_owner_known(t, ns, tenant);
	if (known > 0)
		return 0;
	if (known < 0) {
		snprintf(msg, msglen, "namespace %s belongs to another tenant", ns);
		return fail(-EEXIST, FN_CONFLICT, res);
	}
	int rc = kube_get_object(t->kube, &res_namespaces, NULL, ns, &nsobj);
	if (rc == 0) {
		int owned = tenant_namespace_owned(nsobj, tenant);
		cJSON_Delete(nsobj);
		if (owned)
			return 0;
		snprintf(msg, msglen,
			 "namespace %s exists but does not carry the annotation %s=%s; it "
			 "belongs to another tenant or was not made by udf-operator",
			 ns, UDF_ANNO_TENANT, tenant);
		return fail(-EEXIST, FN_CONFLICT, res);
	}
	if (rc != KUBE_ENOTFOUND) {
		snprintf(msg, msglen, "cannot read namespace %s: %s", ns, kube_strerror(rc));
		return fail(rc, fn_result_of_kube_error(rc), res);
	}
	/* A new tenant. The count is the cache's: tenants racing past it overshoot by at most
	 * the calls in flight, which the blocking queue's bound limits. */
	int have = t->lim.max_tenants > 0 ? count_own(t) : 0;
	if (t->lim.max_tenants > 0 && have >= t->lim.max_tenants) {
		snprintf(msg, msglen,
			 "udf-operator serves %d tenants, its limit (--max-tenants=%d); tenant "
			 "\"%.64s\" is not admitted",
			 have, t->lim.max_tenants, tenant);
		return fail(-EDQUOT, FN_EXHAUSTED, res);
	}
	rc = tenant_namespace_object(ns, tenant, &nsobj);
	cJSON *nslabels = rc == 0
			      ? cJSON_GetObjectItemCaseSensitive(
				    cJSON_GetObjectItemCaseSensitive(nsobj, "metadata"), "labels")
			      : NULL;
	const cJSON *extra;
	cJSON_ArrayForEach(extra, t->labels)
	{
		if (nslabels && !cJSON_GetObjectItemCaseSensitive(nslabels, extra->string))
			cJSON_AddStringToObject(nslabels, extra->string, extra->valuestring);
	}
	if (rc == 0)
		rc = kube_create(t->kube, &res_namespaces, NULL, nsobj, NULL);
	cJSON_Delete(nsobj);
	if (rc == KUBE_EALREADY_EXISTS) /* a race with another operator: check again */
		return ensure_namespace(t, ns, tenant, res, msg, msglen);
	if (rc < 0) {
		snprintf(msg, msglen, "cannot create namespace %s: %s", ns, kube_strerror(rc));
		return fail(rc, fn_result_of_kube_error(rc), res);
	}
	log_info("tenants", "created namespace %s for tenant \"%s\"", ns, tenant);
	return 0;
}

/* Does the live policy differ from the stamped one? Its spec must be the stamped spec and its
 * labels must include the stamped labels (added labels and annotations are left alone). */
static int netpol_drifted(const cJSON *want, const cJSON *live)
{
	const cJSON *wl = k8s_get(want, "metadata.labels");
	const cJSON *l;
	if (!cJSON_Compare(k8s_get(want, "spec"), k8s_get(live, "spec"), 1))
		return 1;
	cJSON_ArrayForEach(l, wl)
	{
		const char *have = k8s_label(live, l->string);
		if (!have || !cJSON_IsString(l) || strcmp(have, l->valuestring) != 0)
			return 1;
	}
	return 0;
}

/* Appends {"op": op, "path": path, "value": value} to ops; takes value (freed on failure). */
static int add_op(cJSON *ops, const char *op, const char *path, cJSON *value)
{
	cJSON *o = value ? cJSON_CreateObject() : NULL;
	if (!o || !cJSON_AddStringToObject(o, "op", op) ||
	    !cJSON_AddStringToObject(o, "path", path)) {
		cJSON_Delete(o);
		cJSON_Delete(value);
		return -ENOMEM;
	}
	cJSON_AddItemToObject(o, "value", value);
	cJSON_AddItemToArray(ops, o);
	return 0;
}

/* JSON patch that puts the stamped spec and labels back, on the condition that the object is
 * still the one read (resourceVersion rv). NULL on -ENOMEM. */
static char *restore_patch(const cJSON *want, const char *rv)
{
	cJSON *ops = cJSON_CreateArray();
	char *text = NULL;
	if (ops && add_op(ops, "test", "/metadata/resourceVersion", cJSON_CreateString(rv)) == 0 &&
	    add_op(ops, "replace", "/spec", cJSON_Duplicate(k8s_get(want, "spec"), 1)) == 0 &&
	    add_op(ops, "add", "/metadata/labels",
		   cJSON_Duplicate(k8s_get(want, "metadata.labels"), 1)) == 0)
		text = cJSON_PrintUnformatted(ops);
	cJSON_Delete(ops);
	return text;
}

/* Creates the namespace's sandbox policy when missing and puts it back when someone changed
 * it (a policy opened by hand would let every sandbox of the tenant reach what the policy
 * denies). A concurrent change is re-read: a few rounds, then the error. */
static int ensure_netpol(struct tenants *t, int i, const char *ns, enum fn_result *res, char *msg,
			 size_t msglen)
{
	cJSON *want = NULL, *live = NULL;
	const char *what = "stamp";
	int rc = udf_netpol_object(t->netpol, i, ns, &want);
	const char *name = rc == 0 ? k8s_str(want, "metadata.name") : NULL;
	if (rc == 0 && !name)
		rc = -EINVAL;
	for (int round = 0; rc == 0 && round < 3; round++) {
		rc = kube_get_object(t->kube, &res_netpols, ns, name, &live);
		if (rc == KUBE_ENOTFOUND) {
			what = "create";
			rc = kube_create(t->kube, &res_netpols, ns, want, NULL);
			if (rc != KUBE_EALREADY_EXISTS) /* else: made meanwhile, read it */
				break;
			rc = 0;
			continue;
		}
		what = "read";
		if (rc < 0 || !netpol_drifted(want, live))
			break;
		what = "restore";
		const char *rv = k8s_str(live, "metadata.resourceVersion");
		char *patch = restore_patch(want, rv ? rv : "");
		rc = patch ? kube_patch(t->kube, &res_netpols, ns, name, NULL, KUBE_PATCH_JSON,
					patch, NULL, 0, NULL)
			   : -ENOMEM;
		free(patch);
		cJSON_Delete(live);
		live = NULL;
		if (rc == 0) {
			log_warn("tenants",
				 "the NetworkPolicy %s/%s had drifted from the sandbox policy; "
				 "restored",
				 ns, name);
			break;
		}
		if (kube_error_transient(rc) || rc == -ENOMEM)
			break;
		rc = round < 2 ? 0 : rc; /* changed since read (the test op failed): again */
	}
	if (rc < 0)
		snprintf(msg, msglen, "cannot %s the NetworkPolicy %s of namespace %s: %s", what,
			 name ? name : "", ns, kube_strerror(rc));
	cJSON_Delete(live);
	cJSON_Delete(want);
	return rc < 0 ? fail(rc, fn_result_of_kube_error(rc), res) : 0;
}

int tenants_ensure(struct tenants *t, const char *tenant, char ns[64], enum fn_result *res,
		   char *msg, size_t msglen)
{
	if (naming_tenant_namespace(t->prefix, tenant, ns) < 0) {
		snprintf(msg, msglen, "the tenant name cannot be mapped to a namespace");
		return fail(-EINVAL, FN_INVALID, res);
	}
	int rc = ensure_namespace(t, ns, tenant, res, msg, msglen);
	for (int i = 0; rc == 0 && i < udf_netpol_count(t->netpol); i++)
		rc = ensure_netpol(t, i, ns, res, msg, msglen);
	if (rc < 0)
		return rc;
	cJSON *q = quota_object(t, ns);
	rc = q ? kube_create(t->kube, &res_quotas, ns, q, NULL) : 0;
	cJSON_Delete(q);
	if (rc < 0 && rc != KUBE_EALREADY_EXISTS) {
		snprintf(msg, msglen, "cannot create the ResourceQuota of namespace %s: %s", ns,
			 kube_strerror(rc));
		return fail(rc, fn_result_of_kube_error(rc), res);
	}
	return 0;
}
