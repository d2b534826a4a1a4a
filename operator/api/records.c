#include "api/records.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/tenants.h"
#include "kube/rest.h"
#include "udf/labels.h"
#include "udf/naming.h"
#include "util/log.h"

static const struct kube_res res_functions = {"apis/udf.sandbox.io/v1alpha1", "udffunctions"};

enum record_op { OP_CREATE, OP_ALTER, OP_DROP, OP_LIST };

struct record_job {
	enum record_op op;
	struct functions *f;
	char *tenant;
	char *name;
	char ns[64];
	char object[64];
	cJSON *body; /* create: the object; alter: the merge patch */
	int flag;    /* create: if_not_exists; drop: if_exists */
	record_cb cb;
	void *arg;
};

static void now_rfc3339(char out[32])
{
	time_t t = time(NULL);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static enum fn_result classify(int rc)
{
	return rc == KUBE_ENOTFOUND ? FN_NOT_FOUND : fn_result_of_kube_error(rc);
}

/* kv pairs of a string map (borrowed from obj) into a malloc'd array. */
static struct fn_kv *kv_of(const cJSON *map, size_t *n)
{
	*n = 0;
	if (!cJSON_IsObject(map))
		return NULL;
	size_t count = (size_t)cJSON_GetArraySize(map);
	struct fn_kv *kv = calloc(count ? count : 1, sizeof(*kv));
	if (!kv)
		return NULL;
	const cJSON *it;
	cJSON_ArrayForEach(it, map)
	{
		if (cJSON_IsString(it) && it->string)
			kv[(*n)++] = (struct fn_kv){it->string, it->valuestring};
	}
	return kv;
}

/* Fills w from obj (strings borrowed from it); free w->tags and w->options after use. */
static void render(const cJSON *obj, struct record_info *w)
{
	const cJSON *annos = k8s_get(obj, "metadata.annotations");
	const cJSON *upd =
	    annos ? cJSON_GetObjectItemCaseSensitive(annos, UDF_ANNO_UPDATED_AT) : NULL;
	const char *name = k8s_str(obj, "spec.functionName");
	memset(w, 0, sizeof(*w));
	w->name = name ? name : k8s_str(obj, "metadata.name");
	w->created_at = k8s_str(obj, "metadata.creationTimestamp");
	w->updated_at = cJSON_IsString(upd) ? upd->valuestring : w->created_at;
	if (!w->created_at)
		w->created_at = "";
	if (!w->updated_at)
		w->updated_at = "";
	w->tags = kv_of(k8s_get(obj, "spec.tags"), &w->n_tags);
	w->options = kv_of(k8s_get(obj, "spec.options"), &w->n_options);
}

static void render_free(struct record_info *w)
{
	free((void *)w->tags);
	free((void *)w->options);
}

static void answer_one(struct record_job *j, const cJSON *obj)
{
	struct record_info w;
	render(obj, &w);
	j->cb(j->arg, FN_READY, "", &w, 1);
	render_free(&w);
}

static void job_free(struct record_job *j)
{
	free(j->tenant);
	free(j->name);
	cJSON_Delete(j->body);
	free(j);
}

static int belongs_to(const cJSON *obj, const char *tenant)
{
	const char *t = k8s_str(obj, "spec.tenant");
	return t && strcmp(t, tenant) == 0;
}

/* A dropped worker's UdfFunction lives on until its finalizer has deleted its pods: it is
 * gone for ListWorkers, AlterWorker and DropWorker from the moment it was dropped. */
static int dropped(const cJSON *obj)
{
	return k8s_get(obj, "metadata.deletionTimestamp") != NULL;
}

static void run_create(struct record_job *j)
{
	char msg[768] = "";
	cJSON *out = NULL;
	enum fn_result res;
	if (tenants_ensure(functions_tenants(j->f), j->tenant, j->ns, &res, msg, sizeof(msg)) < 0) {
		j->cb(j->arg, res, msg, NULL, 0);
		return;
	}
	if (functions_over_limit(j->f, j->ns, j->object, j->tenant, msg, sizeof(msg))) {
		j->cb(j->arg, FN_EXHAUSTED, msg, NULL, 0);
		return;
	}
	struct kube_client *kube = functions_kube(j->f);
	struct kube_status st = {0};
	int rc = kube_create_status(kube, &res_functions, j->ns, j->body, &out, &st);
	if (rc == 0) {
		log_info("records", "worker \"%s\" of tenant \"%s\" recorded as %s/%s", j->name,
			 j->tenant, j->ns, j->object);
		answer_one(j, out);
		cJSON_Delete(out);
		return;
	}
	if (rc == KUBE_EALREADY_EXISTS)
		rc = kube_get_object(kube, &res_functions, j->ns, j->object, &out);
	if (rc == 0) {
		if (!belongs_to(out, j->tenant)) {
			snprintf(msg, sizeof(msg),
				 "worker \"%s\": its UdfFunction %s/%s belongs to "
				 "another tenant",
				 j->name, j->ns, j->object);
			j->cb(j->arg, FN_CONFLICT, msg, NULL, 0);
		} else if (dropped(out)) {
			snprintf(msg, sizeof(msg),
				 "worker \"%s\" is being dropped (its pods are being deleted); "
				 "create it again in a few seconds",
				 j->name);
			j->cb(j->arg, FN_PROVISIONING, msg, NULL, 0);
		} else if (!j->flag) {
			snprintf(msg, sizeof(msg), "worker \"%s\" already exists", j->name);
			j->cb(j->arg, FN_EXISTS, msg, NULL, 0);
		} else {
			answer_one(j, out);
		}
		cJSON_Delete(out);
		return;
	}
	if (kube_quota_pending(rc, &st)) {
		snprintf(msg, sizeof(msg),
			 "cannot record worker \"%s\" yet: the namespace's ResourceQuota is not "
			 "counted yet by kube-controller-manager; retry in a few seconds",
			 j->name);
		j->cb(j->arg, FN_PROVISIONING, msg, NULL, 0);
		return;
	}
	snprintf(msg, sizeof(msg), "cannot record worker \"%s\": %s", j->name, kube_strerror(rc));
	j->cb(j->arg, classify(rc), msg, NULL, 0);
}

/* The first step of alter and drop. A namespace of another tenant: answers the job with
 * FN_CONFLICT and returns 1. Else GETs the worker's UdfFunction into *cur (the caller frees
 * it) and returns 0 with *rc the result: KUBE_ENOTFOUND also when it is another tenant's. */
static int get_own_worker(struct record_job *j, cJSON **cur, int *rc)
{
	if (tenants_owner_known(functions_tenants(j->f), j->ns, j->tenant) < 0) {
		char msg[256];
		snprintf(msg, sizeof(msg), "namespace %s belongs to another tenant", j->ns);
		j->cb(j->arg, FN_CONFLICT, msg, NULL, 0);
		return 1;
	}
	*rc = kube_get_object(functions_kube(j->f), &res_functions, j->ns, j->object, cur);
	if (*rc == 0 && (!belongs_to(*cur, j->tenant) || dropped(*cur)))
		*rc = KUBE_ENOTFOUND;
	return 0;
}

static void run_alter(struct record_job *j)
{
	char msg[768] = "";
	cJSON *cur = NULL, *out = NULL;
	struct kube_client *kube = functions_kube(j->f);
	int rc;
	if (get_own_worker(j, &cur, &rc))
		return;
	cJSON_Delete(cur);
	if (rc == 0) {
		char *patch = cJSON_PrintUnformatted(j->body);
		rc = patch ? kube_patch(kube, &res_functions, j->ns, j->object, NULL,
					KUBE_PATCH_MERGE, patch, NULL, 0, &out)
			   : -ENOMEM;
		free(patch);
	}
	if (rc == 0) {
		answer_one(j, out);
		cJSON_Delete(out);
		return;
	}
	if (rc == KUBE_ENOTFOUND)
		snprintf(msg, sizeof(msg), "worker \"%s\" does not exist", j->name);
	else
		snprintf(msg, sizeof(msg), "cannot alter worker \"%s\": %s", j->name,
			 kube_strerror(rc));
	j->cb(j->arg, classify(rc), msg, NULL, 0);
}

static void run_drop(struct record_job *j)
{
	char msg[768] = "";
	cJSON *cur = NULL;
	struct kube_client *kube = functions_kube(j->f);
	int rc;
	if (get_own_worker(j, &cur, &rc))
		return;
	const char *uid = rc == 0 ? k8s_str(cur, "metadata.uid") : NULL;
	if (rc == 0)
		rc = kube_delete(kube, &res_functions, j->ns, j->object, "Background", uid, NULL,
				 NULL);
	cJSON_Delete(cur);
	if (rc == 0 || (rc == KUBE_ENOTFOUND && j->flag)) {
		if (rc == 0)
			log_info("records", "worker \"%s\" of tenant \"%s\" dropped (%s/%s)",
				 j->name, j->tenant, j->ns, j->object);
		j->cb(j->arg, FN_READY, "", NULL, 0);
		return;
	}
	if (rc == KUBE_ENOTFOUND)
		snprintf(msg, sizeof(msg), "worker \"%s\" does not exist", j->name);
	else
		snprintf(msg, sizeof(msg), "cannot drop worker \"%s\": %s", j->name,
			 kube_strerror(rc));
	j->cb(j->arg, classify(rc), msg, NULL, 0);
}

static int by_name(const void *a, const void *b)
{
	const struct record_info *x = a, *y = b;
	return strcmp(x->name, y->name);
}

static void answer_list(struct record_job *j, const cJSON *items)
{
	size_t n = 0, cap = (size_t)cJSON_GetArraySize(items);
	struct record_info *ws = calloc(cap ? cap : 1, sizeof(*ws));
	if (!ws) {
		j->cb(j->arg, FN_REJECTED, "out of memory", NULL, 0);
		return;
	}
	const cJSON *it;
	cJSON_ArrayForEach(it, items)
	{
		const char *ns = k8s_str(it, "metadata.namespace");
		const char *proto = k8s_label(it, UDF_LABEL_PROTOCOL);
		if (ns && proto && strcmp(ns, j->ns) == 0 && strcmp(proto, "3") == 0 &&
		    belongs_to(it, j->tenant) && !dropped(it))
			render(it, &ws[n++]);
	}
	qsort(ws, n, sizeof(*ws), by_name);
	j->cb(j->arg, FN_READY, "", ws, n);
	for (size_t i = 0; i < n; i++)
		render_free(&ws[i]);
	free(ws);
}

static void run_list(struct record_job *j)
{
	char msg[512];
	cJSON *items = NULL;
	int rc = kube_list(functions_kube(j->f), &res_functions, j->ns, UDF_LABEL_PROTOCOL "=3", 0,
			   &items, NULL);
	if (rc == KUBE_ENOTFOUND) {
		j->cb(j->arg, FN_READY, "", NULL, 0);
		return;
	}
	if (rc < 0) {
		snprintf(msg, sizeof(msg), "cannot list the workers: %s", kube_strerror(rc));
		j->cb(j->arg, classify(rc), msg, NULL, 0);
		return;
	}
	answer_list(j, items);
	cJSON_Delete(items);
}

static void run(void *arg)
{
	struct record_job *j = arg;
	switch (j->op) {
	case OP_CREATE:
		run_create(j);
		break;
	case OP_ALTER:
		run_alter(j);
		break;
	case OP_DROP:
		run_drop(j);
		break;
	case OP_LIST:
		run_list(j);
		break;
	}
	job_free(j);
}

static struct record_job *job_new(struct functions *f, enum record_op op, const char *tenant,
				  const char *name, record_cb cb, void *arg)
{
	struct record_job *j = calloc(1, sizeof(*j));
	if (!j)
		return NULL;
	j->op = op;
	j->f = f;
	j->cb = cb;
	j->arg = arg;
	j->tenant = strdup(tenant);
	j->name = strdup(name ? name : "");
	if (!j->tenant || !j->name || tenants_namespace(functions_tenants(f), tenant, j->ns) < 0 ||
	    (name && naming_function_record(name, j->object) < 0)) {
		job_free(j);
		return NULL;
	}
	return j;
}

static int submit(struct record_job *j)
{
	int rc = functions_run_blocking(j->f, j->tenant, run, j);
	if (rc < 0)
		job_free(j);
	return rc;
}

int records_create(struct functions *f, const char *tenant, const char *name,
		   const struct fn_kv *tags, size_t n_tags, const struct fn_kv *options,
		   size_t n_options, int if_not_exists, record_cb cb, void *arg)
{
	struct record_job *j = job_new(f, OP_CREATE, tenant, name, cb, arg);
	if (!j)
		return -ENOMEM;
	struct fn_desc d = {
	    .tenant = tenant,
	    .name = j->object,
	    .function_name = name,
	    .content_key = "",
	    .protocol = FN_PROTO_WORKER_SERVICE,
	    .tags = tags,
	    .n_tags = n_tags,
	    .options = options,
	    .n_options = n_options,
	};
	char now[32];
	now_rfc3339(now);
	cJSON *annos = NULL;
	if (fn_object(&d, j->ns, &j->body) == 0)
		annos = (cJSON *)k8s_get(j->body, "metadata.annotations");
	if (!annos || !cJSON_AddStringToObject(annos, UDF_ANNO_UPDATED_AT, now)) {
		job_free(j);
		return -ENOMEM;
	}
	j->flag = if_not_exists;
	return submit(j);
}

static int add_map(cJSON *spec, const char *field, const struct fn_kv *set, size_t n_set,
		   const char *const *unset, size_t n_unset)
{
	if (!n_set && !n_unset)
		return 0;
	cJSON *m = cJSON_GetObjectItemCaseSensitive(spec, field);
	if (!m)
		m = cJSON_AddObjectToObject(spec, field);
	if (!m)
		return -ENOMEM;
	for (size_t i = 0; i < n_unset; i++) {
		cJSON_DeleteItemFromObjectCaseSensitive(m, unset[i]);
		if (!cJSON_AddNullToObject(m, unset[i]))
			return -ENOMEM;
	}
	for (size_t i = 0; i < n_set; i++) {
		cJSON_DeleteItemFromObjectCaseSensitive(m, set[i].key);
		if (!cJSON_AddStringToObject(m, set[i].key, set[i].value))
			return -ENOMEM;
	}
	return 0;
}

int records_alter(struct functions *f, const char *tenant, const char *name,
		  const struct record_change *c, record_cb cb, void *arg)
{
	struct record_job *j = job_new(f, OP_ALTER, tenant, name, cb, arg);
	if (!j)
		return -ENOMEM;
	char now[32];
	now_rfc3339(now);
	cJSON *patch = cJSON_CreateObject();
	cJSON *md = cJSON_AddObjectToObject(patch, "metadata");
	cJSON *annos = cJSON_AddObjectToObject(md, "annotations");
	cJSON *spec = cJSON_AddObjectToObject(patch, "spec");
	j->body = patch;
	int ok = patch && md && annos && spec &&
		 cJSON_AddStringToObject(annos, UDF_ANNO_UPDATED_AT, now);
	ok = ok &&
	     add_map(spec, "tags", c->set_tags, c->n_set_tags, c->unset_tags, c->n_unset_tags) == 0;
	ok = ok && add_map(spec, "options", c->set_options, c->n_set_options, c->unset_options,
			   c->n_unset_options) == 0;
	if (ok && c->state != RECORD_STATE_KEEP) {
		struct fn_kv s = {"suspended", c->state == RECORD_SUSPEND ? "true" : "false"};
		ok = add_map(spec, "options", &s, 1, NULL, 0) == 0 &&
		     cJSON_AddNumberToObject(spec, "replicas", c->state == RECORD_SUSPEND ? 0 : 1);
	}
	if (!ok) {
		job_free(j);
		return -ENOMEM;
	}
	return submit(j);
}

int records_drop(struct functions *f, const char *tenant, const char *name, int if_exists,
		 record_cb cb, void *arg)
{
	struct record_job *j = job_new(f, OP_DROP, tenant, name, cb, arg);
	if (!j)
		return -ENOMEM;
	j->flag = if_exists;
	return submit(j);
}

int records_list(struct functions *f, const char *tenant, record_cb cb, void *arg)
{
	struct record_job *j = job_new(f, OP_LIST, tenant, NULL, cb, arg);
	if (!j)
		return -ENOMEM;
	/* From the API server, not the cache: SHOW WORKERS right after CREATE WORKER must see it.
	 */
	return submit(j);
}
