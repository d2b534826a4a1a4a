#include "api/functions.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/blocking.h"
#include "api/gc.h"
#include "api/tenants.h"
#include "api/tokens.h"
#include "kube/informer.h"
#include "kube/rest.h"
#include "kube/strmap.h"
#include "kube/workqueue.h"
#include "udf/labels.h"
#include "udf/naming.h"
#include "util/log.h"

/* How often one function's use is written to status.lastUsedTime (idle scale-down reads it
 * with a granularity of minutes). */
#define TOUCH_EVERY_MS 30000
/* A call without a deadline still gets an answer. */
#define MAX_WAIT_MS    60000
#define UPDATE_RETRIES 5
/* How often a function in use gets the newest presigned urls a call brought. They live for
 * hours; a minute keeps a busy function from writing its object on every call. */
#define URLS_EVERY_MS	 60000
#define BLOCKING_THREADS 16 /* mostly waiting on the network (API server, presigned urls) */

static const struct kube_res res_functions = {"apis/udf.sandbox.io/v1alpha1", "udffunctions"};

/* One function some call asked for, keyed "ns/name". */
struct entry {
	char ns[64];
	char name[254];
	char *tenant;
	char content_key[65];
	cJSON *desired; /* the object to create; NULL when only touched */
	int ensured;	/* the namespace and the object with content_key exist */
	int64_t last_touch_ms;
	int touch_due;
	cJSON *urls; /* {"<location>": "<url>"} of the newest call, to record; NULL: none due */
	int64_t urls_ms;
};

/* What the hot path needs of a Ready function, kept by the informer handlers so a hot call
 * copies no object. */
struct ready_fn {
	char *tenant;
	char *content_key;
	char *endpoint;
	char *token_secret;
};

struct functions {
	struct kube_client *kube;
	struct kube_informer *inf_fn;
	int n_threads;
	struct tenants *tenants;
	struct tokens *tokens;
	struct blocking *blocking;
	struct parked *parked;
	struct workqueue *wq;
	pthread_mutex_t lock;
	struct strmap entries; /* "ns/name" -> struct entry */
	struct strmap ready;   /* "ns/name" of a Ready function -> struct ready_fn */
	long long default_idle_timeout_s;
	atomic_int shutting_down;
	/* ---- limits (functions_options) ---- */
	int max_functions_per_tenant;
	struct strmap ns_counts; /* namespace -> its UdfFunctions in the cache (int *) */
	struct gc *gc;
};

static const char *const shutdown_message = "udf-operator is shutting down; retry";

/* ---- entries (under f->lock) ---- */

static void entry_free(void *p)
{
	struct entry *e = p;
	free(e->tenant);
	cJSON_Delete(e->desired);
	cJSON_Delete(e->urls);
	free(e);
}

static struct entry *entry_get_locked(struct functions *f, const char *key, const char *ns,
				      const char *name, const char *tenant)
{
	struct entry *e = strmap_get(&f->entries, key);
	if (e)
		return e;
	e = calloc(1, sizeof(*e));
	if (!e)
		return NULL;
	snprintf(e->ns, sizeof(e->ns), "%s", ns);
	snprintf(e->name, sizeof(e->name), "%s", name);
	e->tenant = strdup(tenant);
	if (!e->tenant || strmap_put(&f->entries, key, e, NULL) < 0) {
		entry_free(e);
		return NULL;
	}
	return e;
}

/* Marks a use of the entry due to be recorded when the last record is old enough. */
static int touch_if_due_locked(struct entry *e, int64_t now)
{
	if (now - e->last_touch_ms < TOUCH_EVERY_MS)
		return 0;
	e->last_touch_ms = now;
	e->touch_due = 1;
	return 1;
}

static void set_ensured(struct functions *f, const char *key, const char *content_key, int v)
{
	pthread_mutex_lock(&f->lock);
	struct entry *e = strmap_get(&f->entries, key);
	if (e && (!content_key || strcmp(e->content_key, content_key) == 0))
		e->ensured = v;
	pthread_mutex_unlock(&f->lock);
}

/* ---- answers ---- */

static void answer_calls(struct parked_call *c, enum fn_result r, const char *endpoint,
			 const char *token, const char *message)
{
	while (c) {
		struct parked_call *n = c->next;
		parked_answer(c, r, endpoint, token, message);
		c = n;
	}
}

/* The one place a status becomes an answer. */
static void answer_status(struct parked_call *c, const struct fn_status *st, const char *token)
{
	if (st->ready && token)
		parked_answer(c, FN_READY, st->endpoint, token, NULL);
	else if (st->failed)
		parked_answer(c, FN_FAILED, st->endpoint, NULL,
			      st->message ? st->message : "provisioning failed");
	else if (st->endpoint)
		parked_answer(c, FN_STARTING, st->endpoint, token, st->message);
	else
		parked_answer(c, FN_PROVISIONING, NULL, NULL, st->message);
}

/* The sweeper's answer for a call whose time is up: what the caches say now (no I/O). */
static void on_due(void *arg, const char *key, struct parked_call *c)
{
	struct functions *f = arg;
	char ns[64];
	const char *slash = strchr(key, '/');
	cJSON *obj = atomic_load(&f->shutting_down) ? NULL : kube_informer_get(f->inf_fn, key);
	struct fn_status st = {0};
	char *token = NULL;
	if (atomic_load(&f->shutting_down)) { /* the informers may be gone */
		cJSON_Delete(obj);
		parked_answer(c, FN_SHUTDOWN, NULL, NULL, shutdown_message);
		return;
	}
	snprintf(ns, sizeof(ns), "%.*s", slash ? (int)(slash - key) : 0, key);
	if (obj)
		fn_read_status(obj, &st);
	if (st.token_secret)
		tokens_cached(f->tokens, ns, st.token_secret, parked_now_ms(), &token);
	answer_status(c, &st, token);
	free(token);
	cJSON_Delete(obj);
}

/* ---- Kubernetes side (workqueue threads only: these block) ---- */

/* Spec fields a new UDF body keeps: worker records (tags, options) and what people set. */
static const char *const kept_spec_fields[] = {"tags",	      "options",     "replicas",
					       "minReplicas", "maxReplicas", "idleTimeoutSeconds",
					       "poolRef",     "env",	     "resources"};

/* cur (same name, other content) with desired's spec: roll the function. */
static int replace_spec(struct functions *f, cJSON *cur, const cJSON *desired, cJSON **out)
{
	const char *ns = k8s_str(desired, "metadata.namespace");
	const char *key = k8s_annotation(desired, UDF_ANNO_CONTENT_KEY);
	cJSON *md = cJSON_GetObjectItemCaseSensitive(cur, "metadata");
	cJSON *annos = cJSON_GetObjectItemCaseSensitive(md, "annotations");
	if (!annos)
		annos = cJSON_AddObjectToObject(md, "annotations");
	cJSON_DeleteItemFromObjectCaseSensitive(annos, UDF_ANNO_CONTENT_KEY);
	cJSON_AddStringToObject(annos, UDF_ANNO_CONTENT_KEY, key);
	cJSON *spec = cJSON_Duplicate(k8s_get(desired, "spec"), 1);
	const cJSON *old_spec = k8s_get(cur, "spec");
	for (size_t i = 0; spec && old_spec && i < sizeof(kept_spec_fields) / sizeof(char *); i++) {
		const cJSON *v = cJSON_GetObjectItemCaseSensitive(old_spec, kept_spec_fields[i]);
		if (v && !cJSON_GetObjectItemCaseSensitive(spec, kept_spec_fields[i]))
			cJSON_AddItemToObject(spec, kept_spec_fields[i], cJSON_Duplicate(v, 1));
	}
	cJSON_ReplaceItemInObjectCaseSensitive(cur, "spec", spec);
	return kube_update(f->kube, &res_functions, ns, cur, NULL, out);
}

/* Creates the object, or reuses the existing one, replacing its spec when its content key
 * differs. *out: the object as the server has it. 0, or a negative code with *res and msg. */
static int ensure_object(struct functions *f, const cJSON *desired, const char *tenant, cJSON **out,
			 enum fn_result *res, char *msg, size_t msglen)
{
	const char *ns = k8s_str(desired, "metadata.namespace");
	const char *name = k8s_str(desired, "metadata.name");
	const char *key = k8s_annotation(desired, UDF_ANNO_CONTENT_KEY);
	struct kube_status st = {0};
	int rc = kube_create_status(f->kube, &res_functions, ns, desired, out, &st);
	if (rc == 0) {
		log_info("functions", "created UdfFunction %s/%s", ns, name);
		return 0;
	}
	for (int attempt = 0;
	     rc == KUBE_EALREADY_EXISTS || (rc == KUBE_ECONFLICT && attempt < UPDATE_RETRIES);
	     attempt++) {
		cJSON *cur = NULL;
		rc = kube_get_object(f->kube, &res_functions, ns, name, &cur);
		if (rc == KUBE_ENOTFOUND) { /* deleted meanwhile */
			rc = kube_create(f->kube, &res_functions, ns, desired, out);
			if (rc == KUBE_EALREADY_EXISTS)
				continue;
			break;
		}
		if (rc < 0)
			break;
		const char *t = k8s_str(cur, "spec.tenant");
		if (!t || strcmp(t, tenant) != 0) {
			cJSON_Delete(cur);
			snprintf(msg, msglen, "UdfFunction %s/%s belongs to another tenant", ns,
				 name);
			*res = FN_CONFLICT;
			return -EEXIST;
		}
		if (fn_matches(cur, tenant, key)) {
			*out = cur;
			return 0;
		}
		rc = replace_spec(f, cur, desired, out);
		cJSON_Delete(cur);
		if (rc == 0) {
			log_info("functions", "UdfFunction %s/%s: new content, spec replaced", ns,
				 name);
			return 0;
		}
	}
	if (kube_quota_pending(rc, &st)) {
		snprintf(
		    msg, msglen,
		    "cannot create UdfFunction %s/%s yet: the namespace's ResourceQuota is not "
		    "counted yet by kube-controller-manager; retry the statement in a few "
		    "seconds",
		    ns, name);
		*res = FN_PROVISIONING;
		return rc;
	}
	if (rc == KUBE_ENOTFOUND)
		snprintf(msg, msglen,
			 "cannot create UdfFunction %s/%s: the API server does not serve "
			 "udffunctions.udf.sandbox.io (install the CRDs: kubectl apply "
			 "--server-side -f crds/)",
			 ns, name);
	else
		snprintf(msg, msglen, "cannot create UdfFunction %s/%s: %s", ns, name,
			 kube_strerror(rc));
	*res = fn_result_of_kube_error(rc);
	return rc;
}

static void touch(struct functions *f, const char *ns, const char *name)
{
	char ts[40];
	char patch[128];
	time_t t = time(NULL);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);
	snprintf(patch, sizeof(patch), "{\"status\":{\"lastUsedTime\":\"%s\"}}", ts);
	int rc = kube_patch(f->kube, &res_functions, ns, name, "status", KUBE_PATCH_MERGE, patch,
			    NULL, 0, NULL);
	if (rc < 0 && rc != KUBE_ENOTFOUND)
		log_debug("functions", "recording use of %s/%s: %s", ns, name, kube_strerror(rc));
}

/* Keeps the call's presigned urls in the function's import-urls annotation, which the
 * function controller uses for every later specialization (the urls in the spec expire). */
static void record_urls(struct functions *f, const char *ns, const char *name, const cJSON *urls)
{
	char *text = cJSON_PrintUnformatted(urls);
	cJSON *patch = cJSON_CreateObject();
	cJSON *md = cJSON_AddObjectToObject(patch, "metadata");
	cJSON *annos = cJSON_AddObjectToObject(md, "annotations");
	char *body = NULL;
	if (text && annos && cJSON_AddStringToObject(annos, UDF_ANNO_IMPORT_URLS, text))
		body = cJSON_PrintUnformatted(patch);
	if (body) {
		int rc = kube_patch(f->kube, &res_functions, ns, name, NULL, KUBE_PATCH_MERGE, body,
				    NULL, 0, NULL);
		if (rc < 0 && rc != KUBE_ENOTFOUND)
			log_debug("functions", "recording the urls of %s/%s: %s", ns, name,
				  kube_strerror(rc));
	}
	free(body);
	free(text);
	cJSON_Delete(patch);
}

/* Notes the call's urls for recording when the last record is a minute old; 1 when due. */
static int note_urls(struct functions *f, const struct fn_desc *d, const char *key, int64_t now)
{
	if (d->n_imports == 0)
		return 0;
	cJSON *urls = cJSON_CreateObject();
	for (size_t i = 0; urls && i < d->n_imports; i++)
		if (d->imports[i].location && d->imports[i].url && d->imports[i].url[0])
			cJSON_AddStringToObject(urls, d->imports[i].location, d->imports[i].url);
	int due = 0;
	pthread_mutex_lock(&f->lock);
	struct entry *e = strmap_get(&f->entries, key);
	/* A function not Ready is about to be specialized (created, woken, replaced): its urls
	 * must be the newest. A Ready one records them once a minute. */
	if (e && urls && (now - e->urls_ms >= URLS_EVERY_MS || !strmap_has(&f->ready, key))) {
		/* the first call after a start records too: the object may hold old urls */
		e->urls_ms = now;
		cJSON_Delete(e->urls);
		e->urls = urls;
		urls = NULL;
		due = 1;
	}
	pthread_mutex_unlock(&f->lock);
	cJSON_Delete(urls);
	return due;
}

/* Answers the calls whose question the object settles; reschedules the rest. */
static void evaluate(struct functions *f, const char *key, const char *ns, const cJSON *obj)
{
	struct fn_status st;
	char *token = NULL;
	fn_read_status(obj, &st);
	if (st.token_secret && (st.ready || st.endpoint))
		tokens_fetch(f->tokens, ns, st.token_secret, parked_now_ms(), &token);
	if (st.ready && !token)
		st.ready = 0; /* the Secret is not there yet */

	int64_t now = parked_now_ms(), next = INT64_MAX;
	struct parked_call *done =
	    parked_take(f->parked, key, st.ready || st.failed ? INT64_MAX : now, &next);
	if (done) {
		pthread_mutex_lock(&f->lock);
		struct entry *e = strmap_get(&f->entries, key);
		if (e)
			touch_if_due_locked(e, now);
		pthread_mutex_unlock(&f->lock);
	}
	for (struct parked_call *c = done, *n; c; c = n) {
		n = c->next;
		answer_status(c, &st, token);
	}
	free(token);
	if (next != INT64_MAX)
		wq_add_after(f->wq, key, (uint64_t)(next > now ? next - now : 0) * 1000);
}

/* The object to evaluate for a call: ensured from desired when not yet, else the cache's
 * (or the server's, when the cache has not seen it). 0 with *obj; 1 when the key was
 * requeued; a negative code when the calls were answered with the failure. */
static int current_object(struct functions *f, const char *key, const char *ns, const char *name,
			  const char *tenant, const cJSON *desired, cJSON **obj)
{
	char msg[768] = "";
	enum fn_result res = FN_REJECTED;
	int rc;
	if (desired) {
		char tns[64];
		rc = tenants_ensure(f->tenants, tenant, tns, &res, msg, sizeof(msg));
		if (rc == 0)
			rc = ensure_object(f, desired, tenant, obj, &res, msg, sizeof(msg));
		if (rc == 0) {
			set_ensured(f, key, k8s_annotation(desired, UDF_ANNO_CONTENT_KEY), 1);
			return 0;
		}
		log_warn("functions", "%s: %s", key, msg);
	} else {
		if ((*obj = kube_informer_get(f->inf_fn, key)))
			return 0;
		/* Not in the cache yet (just created) or deleted: ask the server. */
		rc = kube_get_object(f->kube, &res_functions, ns, name, obj);
		if (rc == 0)
			return 0;
		if (rc == KUBE_ENOTFOUND) {
			set_ensured(f, key, NULL, 0);
			wq_add(f->wq, key);
			return 1;
		}
		snprintf(msg, sizeof(msg), "cannot read UdfFunction %s: %s", key,
			 kube_strerror(rc));
		res = fn_result_of_kube_error(rc);
	}
	answer_calls(parked_take(f->parked, key, INT64_MAX, NULL), res, NULL, NULL, msg);
	return rc;
}

/* One pass for a function some call asked for: make it exist, answer whoever waits. */
static int process(void *arg, const char *key)
{
	struct functions *f = arg;
	cJSON *desired = NULL, *obj = NULL;
	char *tenant = NULL;
	char ns[64], name[254];
	int touch_due;

	int waiting = parked_waiting(f->parked, key);
	pthread_mutex_lock(&f->lock);
	struct entry *e = strmap_get(&f->entries, key);
	if (!e) {
		pthread_mutex_unlock(&f->lock);
		return 0;
	}
	if (!e->ensured && e->desired && waiting)
		desired = cJSON_Duplicate(e->desired, 1);
	tenant = strdup(e->tenant);
	snprintf(ns, sizeof(ns), "%s", e->ns);
	snprintf(name, sizeof(name), "%s", e->name);
	pthread_mutex_unlock(&f->lock);
	if (!tenant) {
		cJSON_Delete(desired);
		return 1;
	}

	if (waiting && current_object(f, key, ns, name, tenant, desired, &obj) == 0)
		evaluate(f, key, ns, obj);

	/* Ensured and nobody waiting: the object to create (code included) is not needed. */
	pthread_mutex_lock(&f->lock);
	e = strmap_get(&f->entries, key);
	if (e && e->ensured && !parked_waiting(f->parked, key)) {
		cJSON_Delete(e->desired);
		e->desired = NULL;
	}
	touch_due = e && e->touch_due;
	if (e)
		e->touch_due = 0;
	cJSON *urls = e ? e->urls : NULL;
	if (e)
		e->urls = NULL;
	pthread_mutex_unlock(&f->lock);
	/* the urls first: the use recorded next is what wakes a function scaled to zero */
	if (urls)
		record_urls(f, ns, name, urls);
	if (touch_due)
		touch(f, ns, name);
	cJSON_Delete(urls);
	cJSON_Delete(obj);
	cJSON_Delete(desired);
	free(tenant);
	return 0;
}

/* ---- informer handlers (loop thread: only note and enqueue) ---- */

static void wake(struct functions *f, const cJSON *obj)
{
	char key[320];
	if (kube_object_key(obj, key, sizeof(key)) == 0 && parked_waiting(f->parked, key))
		wq_add(f->wq, key);
}

static void ready_free(void *p)
{
	struct ready_fn *r = p;
	if (!r)
		return;
	free(r->tenant);
	free(r->content_key);
	free(r->endpoint);
	free(r->token_secret);
	free(r);
}

static struct ready_fn *ready_of(const cJSON *obj)
{
	struct fn_status st;
	fn_read_status(obj, &st);
	const char *tenant = k8s_str(obj, "spec.tenant");
	const char *ck = k8s_annotation(obj, UDF_ANNO_CONTENT_KEY);
	if (!st.ready || !tenant || !ck)
		return NULL;
	struct ready_fn *r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	r->tenant = strdup(tenant);
	r->content_key = strdup(ck);
	r->endpoint = strdup(st.endpoint);
	r->token_secret = strdup(st.token_secret);
	if (!r->tenant || !r->content_key || !r->endpoint || !r->token_secret) {
		ready_free(r);
		return NULL;
	}
	return r;
}

/* Keeps f->ready in step with the cache. */
static void note_ready(struct functions *f, const cJSON *obj, int deleted)
{
	char key[320];
	void *old = NULL;
	if (kube_object_key(obj, key, sizeof(key)) < 0)
		return;
	struct ready_fn *r = deleted ? NULL : ready_of(obj);
	pthread_mutex_lock(&f->lock);
	if (!r || strmap_put(&f->ready, key, r, &old) < 0) {
		ready_free(r);
		strmap_del(&f->ready, key, &old);
	}
	pthread_mutex_unlock(&f->lock);
	ready_free(old);
}

/* Keeps f->ns_counts in step with the cache (loop thread; on_add is a new key). */
static void count_ns(struct functions *f, const cJSON *obj, int delta)
{
	const char *ns = k8s_str(obj, "metadata.namespace");
	if (!ns)
		return;
	pthread_mutex_lock(&f->lock);
	int *n = strmap_get(&f->ns_counts, ns);
	if (!n && delta > 0 && (n = calloc(1, sizeof(*n))) &&
	    strmap_put(&f->ns_counts, ns, n, NULL) < 0) {
		free(n);
		n = NULL;
	}
	if (n) {
		*n += delta;
		if (*n <= 0) {
			strmap_del(&f->ns_counts, ns, NULL);
			free(n);
		}
	}
	pthread_mutex_unlock(&f->lock);
}

static void on_add(void *arg, const cJSON *obj)
{
	count_ns(arg, obj, 1);
	note_ready(arg, obj, 0);
	wake(arg, obj);
}

static void on_update(void *arg, const cJSON *old, const cJSON *obj)
{
	note_ready(arg, obj, 0);
	wake(arg, obj);
}

static void on_delete(void *arg, const cJSON *obj)
{
	struct functions *f = arg;
	char key[320];
	count_ns(f, obj, -1);
	note_ready(f, obj, 1);
	if (kube_object_key(obj, key, sizeof(key)) < 0)
		return;
	set_ensured(f, key, NULL, 0);
	if (parked_waiting(f->parked, key))
		wq_add(f->wq, key);
}

/* ---- public ---- */

int functions_new(const struct functions_options *o, struct functions **out)
{
	if (!o->kube || !o->inf_functions || !o->inf_tenant_ns)
		return -EINVAL;
	struct functions *f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->kube = o->kube;
	f->inf_fn = o->inf_functions;
	f->n_threads = o->threads > 0 ? o->threads : 8;
	f->max_functions_per_tenant = o->max_functions_per_tenant;
	f->default_idle_timeout_s = o->default_idle_timeout_s;
	pthread_mutex_init(&f->lock, NULL);
	strmap_init(&f->entries);
	strmap_init(&f->ready);
	strmap_init(&f->ns_counts);
	struct kube_handlers h = {on_add, on_update, on_delete, f};
	int rc = tenants_new(o->kube, o->inf_tenant_ns, o->ns_prefix, &f->tenants);
	if (rc == 0) {
		struct tenants_limits tl = {.max_tenants = o->max_tenants,
					    .max_pods = o->max_pods_per_tenant,
					    .max_functions = o->max_functions_per_tenant};
		tenants_set_limits(f->tenants, &tl);
		rc = tenants_set_labels(f->tenants, o->ns_labels);
	}
	if (rc == 0)
		rc = tokens_new(o->kube, &f->tokens);
	if (rc == 0)
		rc = blocking_new(BLOCKING_THREADS, o->blocking, &f->blocking);
	if (rc == 0 && o->function_ttl_s > 0)
		rc = gc_new(o->kube, o->inf_functions, o->function_ttl_s, o->leading, &f->gc);
	if (rc == 0)
		rc = parked_new(on_due, f, &f->parked);
	if (rc == 0)
		rc = wq_new(NULL, &f->wq);
	if (rc == 0)
		rc = kube_informer_add_handlers(o->inf_functions, &h);
	if (rc < 0) {
		functions_free(f);
		return rc;
	}
	*out = f;
	return 0;
}

int functions_start(struct functions *f)
{
	int rc = blocking_start(f->blocking);
	if (rc == 0)
		rc = parked_start(f->parked);
	if (rc == 0)
		rc = wq_run(f->wq, f->n_threads, process, f);
	if (rc == 0 && f->gc)
		rc = gc_start(f->gc);
	return rc;
}

int functions_run_blocking(struct functions *f, const char *tenant, void (*fn)(void *arg),
			   void *arg)
{
	if (atomic_load(&f->shutting_down))
		return -ESHUTDOWN;
	return blocking_submit(f->blocking, tenant, fn, arg);
}

int functions_refusal(struct functions *f, int rc, const char *tenant, char *msg, size_t len)
{
	struct blocking_limits lim;
	blocking_get_limits(f->blocking, &lim);
	if (rc == -EBUSY) {
		snprintf(msg, len,
			 "tenant \"%.64s\" already has %d calls waiting for slow work (import "
			 "urls, worker records), its limit; retry when they are answered",
			 tenant, lim.max_queued_per_tenant);
		return 1;
	}
	if (rc == -EAGAIN) {
		snprintf(msg, len,
			 "udf-operator has %d calls waiting for slow work, its limit; retry "
			 "shortly",
			 lim.max_queued);
		return 1;
	}
	snprintf(msg, len, "%s",
		 rc == -ESHUTDOWN ? shutdown_message : "udf-operator cannot take the call now");
	return 0;
}

struct kube_client *functions_kube(struct functions *f)
{
	return f->kube;
}

struct tenants *functions_tenants(struct functions *f)
{
	return f->tenants;
}

void functions_shutdown(struct functions *f)
{
	if (!f)
		return;
	atomic_store(&f->shutting_down, 1);
	if (f->parked)
		parked_answer_all(f->parked, FN_SHUTDOWN, shutdown_message);
}

void functions_free(struct functions *f)
{
	if (!f)
		return;
	functions_shutdown(f);
	gc_free(f->gc); /* its thread deletes through the client: stop it first */
	if (f->wq) {
		wq_shutdown(f->wq);
		wq_free(f->wq);
	}
	blocking_free(f->blocking); /* the queue drains first: every job answers its call */
	parked_free(f->parked);	    /* answers what a thread parked after the first sweep */
	tokens_free(f->tokens);
	tenants_free(f->tenants);
	strmap_free(&f->entries, entry_free);
	strmap_free(&f->ready, ready_free);
	strmap_free(&f->ns_counts, free);
	pthread_mutex_destroy(&f->lock);
	free(f);
}

/* The hot path: the caches already know the function is ready (no object is copied).
 * 1 answered, 0 not hot. */
static int answer_hot(struct functions *f, const struct fn_desc *d, const char *ns, const char *key,
		      fn_apply_cb cb, void *arg)
{
	char endpoint[1025], token[4097], secret[254];
	int hot = 0, touch_now = 0;
	int64_t now = parked_now_ms();
	if (tenants_owner_known(f->tenants, ns, d->tenant) <= 0)
		return 0;
	pthread_mutex_lock(&f->lock);
	struct ready_fn *r = strmap_get(&f->ready, key);
	if (r && strcmp(r->tenant, d->tenant) == 0 && strcmp(r->content_key, d->content_key) == 0 &&
	    strlen(r->endpoint) < sizeof(endpoint) && strlen(r->token_secret) < sizeof(secret)) {
		strcpy(endpoint, r->endpoint);
		strcpy(secret, r->token_secret);
		hot = 1;
	}
	pthread_mutex_unlock(&f->lock);
	if (!hot || !tokens_copy(f->tokens, ns, secret, now, token, sizeof(token)))
		return 0;
	pthread_mutex_lock(&f->lock);
	struct entry *e = entry_get_locked(f, key, ns, d->name, d->tenant);
	if (e)
		touch_now = touch_if_due_locked(e, now);
	pthread_mutex_unlock(&f->lock);
	struct fn_outcome o = {FN_READY, endpoint, token, ""};
	cb(arg, &o);
	if (touch_now)
		wq_add(f->wq, key);
	return 1;
}

int functions_over_limit(struct functions *f, const char *ns, const char *name, const char *tenant,
			 char *msg, size_t len)
{
	char key[320];
	if (f->max_functions_per_tenant <= 0)
		return 0;
	pthread_mutex_lock(&f->lock);
	int *n = strmap_get(&f->ns_counts, ns);
	int count = n ? *n : 0;
	pthread_mutex_unlock(&f->lock);
	if (count < f->max_functions_per_tenant)
		return 0;
	snprintf(key, sizeof(key), "%s/%s", ns, name);
	cJSON *have = kube_informer_get(f->inf_fn, key);
	cJSON_Delete(have);
	if (have)
		return 0; /* an existing function: reuse or replace, no new object */
	snprintf(msg, len,
		 "tenant \"%.64s\" has %d UdfFunctions, the limit per tenant "
		 "(--max-functions-per-tenant=%d); drop unused workers or functions first",
		 tenant, count, f->max_functions_per_tenant);
	return 1;
}

/* A call over the function limit is answered FN_EXHAUSTED at once. 1 answered, 0 go on. */
static int over_function_limit(struct functions *f, const char *ns, const struct fn_desc *d,
			       fn_apply_cb cb, void *arg)
{
	char msg[400];
	if (!functions_over_limit(f, ns, d->name, d->tenant, msg, sizeof(msg)))
		return 0;
	struct fn_outcome o = {FN_EXHAUSTED, "", "", msg};
	cb(arg, &o);
	return 1;
}

/* Makes the entry of key describe d (its object built outside the lock: it copies the
 * code). 0, or -ENOMEM. */
static int entry_want(struct functions *f, const struct fn_desc *d, const char *ns, const char *key)
{
	cJSON *desired = NULL;
	pthread_mutex_lock(&f->lock);
	struct entry *e = entry_get_locked(f, key, ns, d->name, d->tenant);
	int current = e && e->desired && strcmp(e->content_key, d->content_key) == 0 &&
		      strcmp(e->tenant, d->tenant) == 0;
	pthread_mutex_unlock(&f->lock);
	if (!e)
		return -ENOMEM;
	if (current)
		return 0;
	if (fn_object(d, ns, &desired) < 0)
		return -ENOMEM;
	if (f->default_idle_timeout_s > 0 &&
	    !cJSON_AddNumberToObject(cJSON_GetObjectItemCaseSensitive(desired, "spec"),
				     "idleTimeoutSeconds", (double)f->default_idle_timeout_s)) {
		cJSON_Delete(desired);
		return -ENOMEM;
	}
	int rc = -ENOMEM;
	char *tenant = strdup(d->tenant);
	pthread_mutex_lock(&f->lock);
	e = entry_get_locked(f, key, ns, d->name, d->tenant);
	if (e && tenant) {
		free(e->tenant);
		e->tenant = tenant;
		tenant = NULL;
		cJSON_Delete(e->desired);
		e->desired = desired;
		desired = NULL;
		snprintf(e->content_key, sizeof(e->content_key), "%s", d->content_key);
		e->ensured = 0;
		rc = 0;
	}
	pthread_mutex_unlock(&f->lock);
	free(tenant);
	cJSON_Delete(desired);
	return rc;
}

int functions_apply(struct functions *f, const struct fn_desc *d, int64_t answer_at_ms,
		    fn_apply_cb cb, void *arg)
{
	char ns[64], key[320];
	int rc = tenants_namespace(f->tenants, d->tenant, ns);
	if (rc < 0)
		return rc;
	snprintf(key, sizeof(key), "%s/%s", ns, d->name);
	if (atomic_load(&f->shutting_down)) {
		struct fn_outcome o = {FN_SHUTDOWN, "", "", shutdown_message};
		cb(arg, &o);
		return 0;
	}
	if (answer_hot(f, d, ns, key, cb, arg)) {
		if (note_urls(f, d, key, parked_now_ms()))
			wq_add(f->wq, key);
		return 0;
	}
	if (over_function_limit(f, ns, d, cb, arg))
		return 0;

	/* Slow: park the call; a workqueue thread creates or reuses the function and answers. */
	int64_t now = parked_now_ms();
	struct parked_call *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->cb = cb;
	c->arg = arg;
	c->answer_at = answer_at_ms - now > MAX_WAIT_MS ? now + MAX_WAIT_MS : answer_at_ms;
	rc = entry_want(f, d, ns, key);
	if (rc == 0) {
		/* A parked call is use too: it is what wakes a function scaled to zero. */
		pthread_mutex_lock(&f->lock);
		struct entry *e = strmap_get(&f->entries, key);
		if (e)
			touch_if_due_locked(e, now);
		pthread_mutex_unlock(&f->lock);
		rc = parked_add(f->parked, key, c);
		note_urls(f, d, key, now);
	}
	if (rc < 0) {
		free(c);
		return rc;
	}
	wq_add(f->wq, key);
	return 0;
}
