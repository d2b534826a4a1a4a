#include "functions.h"
#include "functions_internal.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

#include "informer.h"
#include "log.h"
#include "naming.h"
#include "strmap.h"
#include "udf/netpol.h"
#include "workqueue.h"

#define ANNO_TENANT	 "udf.sandbox.io/tenant"
#define ANNO_CONTENT_KEY "udf.sandbox.io/content-key"
#define LABEL_TENANT_NS	 "udf.sandbox.io/tenant-namespace"
#define LABEL_PROTOCOL	 "udf.sandbox.io/protocol"
#define LABEL_MANAGED_BY "app.kubernetes.io/managed-by"
/* How often one function's use is written to status.lastUsedTime (idle scale-down reads it
 * with a granularity of minutes). */
#define TOUCH_EVERY_MS 30000
/* A cached token is re-read from its Secret after this long (tokens can rotate). */
#define TOKEN_TTL_MS 300000
/* A call without a deadline still gets an answer. */
#define MAX_WAIT_MS    60000
#define UPDATE_RETRIES 5

static const struct kube_res res_functions = {"apis/udf.sandbox.io/v1alpha1", "udffunctions"};
static const struct kube_res res_namespaces = {"api/v1", "namespaces"};
static const struct kube_res res_secrets = {"api/v1", "secrets"};
static const struct kube_res res_netpols = {"apis/networking.k8s.io/v1", "networkpolicies"};

struct waiter {
	fn_apply_cb cb;
	void *arg;
	int64_t answer_at;
	struct waiter *next;
};

/* One function some call asked for, keyed "ns/name". */
struct entry {
	char ns[64];
	char name[254];
	char *tenant;
	char content_key[65];
	cJSON *desired; /* the object to create; NULL when only touched */
	int ensured;	/* the namespace and the object with content_key exist */
	struct waiter *waiters;
	int64_t last_touch_ms;
	int touch_due;
};

struct ready_fn {
	char *tenant;
	char *content_key;
	char *endpoint;
	char *token_secret;
};

struct token {
	char *value;
	int64_t fetched_ms;
};

struct job {
	void (*fn)(void *arg);
	void *arg;
	struct job *next;
};

#define OPS_THREADS 16 /* mostly waiting on the network (API server, presigned urls) */

struct functions {
	struct kube_client *kube;
	char prefix[NAMING_PREFIX_MAX + 1];
	int n_workers;
	struct kube_informers *loop;
	struct kube_informer *inf_fn;
	struct kube_informer *inf_ns;
	struct udf_netpol *netpol; /* the sandbox NetworkPolicy stamped into tenant namespaces */
	struct workqueue *wq;
	pthread_mutex_t lock;
	struct strmap entries; /* "ns/name" -> struct entry */
	struct strmap tokens;  /* "ns/secret" -> struct token */
	/* Kept by the informer handlers so a hot call copies no object: */
	struct strmap ready;	  /* "ns/name" of a Ready function -> struct ready_fn */
	struct strmap ns_tenants; /* tenant namespace -> its tenant annotation (char *) */
	atomic_int shutting_down;
	int started;
	/* one-off blocking operations (worker records): a FIFO served by OPS_THREADS */
	pthread_t ops[OPS_THREADS];
	int n_ops;
	struct job *jobs_head, *jobs_tail;
	pthread_cond_t jobs_cond;
	int ops_stop;
	/* The deadline sweeper answers parked calls on time even while a worker is stuck in a
	 * slow API request for their function. */
	pthread_t sweeper;
	int sweeper_started;
	pthread_cond_t sweep_cond;
	int64_t next_deadline; /* earliest answer_at of any parked call, INT64_MAX: none */
};

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- the status contract ---- */

static const cJSON *condition(const cJSON *obj, const char *type)
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

void functions_read_status(const cJSON *obj, struct fn_status *st)
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

	const cJSON *ready = condition(obj, "Ready");
	const char *rs = ready ? cond_str(ready, "status") : NULL;
	if (rs && strcmp(rs, "True") == 0) {
		st->ready = st->endpoint && st->token_secret;
		return;
	}
	if (ready)
		st->message = cond_str(ready, "message");
	for (size_t i = 0; i < sizeof(failing_steps) / sizeof(failing_steps[0]); i++) {
		const cJSON *c = condition(obj, failing_steps[i]);
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

/* ---- the objects ---- */

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

cJSON *functions_object(const struct fn_desc *d, const char *ns)
{
	char proto[2] = {(char)('0' + d->protocol), '\0'};
	cJSON *obj = cJSON_CreateObject();
	cJSON *md = cJSON_AddObjectToObject(obj, "metadata");
	cJSON *labels = cJSON_AddObjectToObject(md, "labels");
	cJSON *annos = cJSON_AddObjectToObject(md, "annotations");
	cJSON *spec = cJSON_AddObjectToObject(obj, "spec");
	int ok = obj && md && labels && annos && spec;

	ok = ok && cJSON_AddStringToObject(obj, "apiVersion", "udf.sandbox.io/v1alpha1");
	ok = ok && cJSON_AddStringToObject(obj, "kind", "UdfFunction");
	ok = ok && cJSON_AddStringToObject(md, "name", d->name);
	ok = ok && cJSON_AddStringToObject(md, "namespace", ns);
	ok = ok && cJSON_AddStringToObject(labels, LABEL_MANAGED_BY, "udf-operator");
	ok = ok && cJSON_AddStringToObject(labels, LABEL_PROTOCOL, proto);
	ok = ok && cJSON_AddStringToObject(annos, ANNO_CONTENT_KEY, d->content_key);
	ok = ok && cJSON_AddStringToObject(spec, "tenant", d->tenant);
	if (ok && d->function_name)
		ok = cJSON_AddStringToObject(spec, "functionName", d->function_name) != NULL;
	if (ok && d->script) {
		ok = cJSON_AddStringToObject(spec, "script", d->script) != NULL;
	} else if (ok && d->handler) {
		ok = cJSON_AddStringToObject(spec, "handler", d->handler) &&
		     cJSON_AddItemToObject(spec, "inputTypes",
					   string_array(d->input_types, d->n_input_types)) &&
		     cJSON_AddStringToObject(spec, "resultType", d->result_type) &&
		     cJSON_AddStringToObject(spec, "code", d->code);
		if (ok && d->n_packages)
			ok = cJSON_AddItemToObject(spec, "packages",
						   string_array(d->packages, d->n_packages));
		if (ok && d->runtime_version && *d->runtime_version)
			ok = cJSON_AddStringToObject(spec, "runtimeVersion", d->runtime_version) !=
			     NULL;
		if (ok && d->n_imports) {
			cJSON *imps = cJSON_AddArrayToObject(spec, "imports");
			ok = imps != NULL;
			for (size_t i = 0; ok && i < d->n_imports; i++) {
				cJSON *im = cJSON_CreateObject();
				ok = cJSON_AddItemToArray(imps, im) &&
				     cJSON_AddStringToObject(im, "location",
							     d->imports[i].location) &&
				     cJSON_AddStringToObject(im, "url", d->imports[i].url) &&
				     cJSON_AddStringToObject(im, "tag", d->imports[i].tag);
			}
		}
	}
	if (ok && d->n_tags)
		ok = cJSON_AddItemToObject(spec, "tags", kv_object(d->tags, d->n_tags));
	if (ok && d->n_options)
		ok = cJSON_AddItemToObject(spec, "options", kv_object(d->options, d->n_options));
	if (!ok) {
		cJSON_Delete(obj);
		return NULL;
	}
	return obj;
}

static const char *annotation(const cJSON *obj, const char *key)
{
	const cJSON *a = k8s_get(obj, "metadata.annotations");
	const cJSON *v = a ? cJSON_GetObjectItemCaseSensitive(a, key) : NULL;
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int object_matches(const cJSON *obj, const char *tenant, const char *content_key)
{
	const char *t = k8s_str(obj, "spec.tenant");
	const char *k = annotation(obj, ANNO_CONTENT_KEY);
	return t && k && strcmp(t, tenant) == 0 && strcmp(k, content_key) == 0;
}

/* ---- tokens ---- */

static char *base64_decode(const char *in)
{
	size_t n = strlen(in);
	if (n % 4 != 0)
		return NULL;
	char *out = malloc(n / 4 * 3 + 1);
	if (!out)
		return NULL;
	int len = n ? EVP_DecodeBlock((unsigned char *)out, (const unsigned char *)in, (int)n) : 0;
	if (len < 0) {
		free(out);
		return NULL;
	}
	for (size_t i = n; i > 0 && in[i - 1] == '='; i--)
		len--;
	out[len] = '\0';
	return out;
}

/* A copy of the cached token of ns/secret when fresh, else NULL. Caller holds no lock. */
static char *token_cached(struct functions *f, const char *ns, const char *secret)
{
	char key[320];
	char *out = NULL;
	snprintf(key, sizeof(key), "%s/%s", ns, secret);
	pthread_mutex_lock(&f->lock);
	struct token *t = strmap_get(&f->tokens, key);
	if (t && now_ms() - t->fetched_ms < TOKEN_TTL_MS)
		out = strdup(t->value);
	pthread_mutex_unlock(&f->lock);
	return out;
}

/* Reads the token from the Secret (blocking); NULL when there is none yet. */
static char *token_fetch(struct functions *f, const char *ns, const char *secret)
{
	char *tok = token_cached(f, ns, secret);
	if (tok)
		return tok;
	cJSON *obj = NULL;
	int rc = kube_get_object(f->kube, &res_secrets, ns, secret, &obj);
	if (rc < 0) {
		if (rc != KUBE_ENOTFOUND)
			log_warn("functions", "reading Secret %s/%s: %s", ns, secret,
				 kube_strerror(rc));
		return NULL;
	}
	const char *b64 = k8s_str(obj, "data.token");
	tok = b64 ? base64_decode(b64) : NULL;
	cJSON_Delete(obj);
	if (!tok || !*tok) {
		free(tok);
		return NULL;
	}
	char key[320];
	snprintf(key, sizeof(key), "%s/%s", ns, secret);
	struct token *t = malloc(sizeof(*t));
	char *copy = strdup(tok);
	if (t && copy) {
		t->value = copy;
		t->fetched_ms = now_ms();
		void *old = NULL;
		pthread_mutex_lock(&f->lock);
		if (strmap_put(&f->tokens, key, t, &old) < 0) {
			free(copy);
			free(t);
			old = NULL;
		}
		pthread_mutex_unlock(&f->lock);
		if (old) {
			free(((struct token *)old)->value);
			free(old);
		}
	} else {
		free(t);
		free(copy);
	}
	return tok;
}

static void token_free(void *p)
{
	struct token *t = p;
	free(t->value);
	free(t);
}

/* ---- entries ---- */

static void entry_free(void *p)
{
	struct entry *e = p;
	free(e->tenant);
	cJSON_Delete(e->desired);
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

static void answer(fn_apply_cb cb, void *arg, enum fn_result r, const char *endpoint,
		   const char *token, const char *message)
{
	struct fn_outcome o = {r, endpoint ? endpoint : "", token ? token : "",
			       message ? message : ""};
	cb(arg, &o);
}

/* Answers every waiter of the entry with the same outcome. */
static void fail_waiters(struct functions *f, const char *key, enum fn_result r,
			 const char *message)
{
	pthread_mutex_lock(&f->lock);
	struct entry *e = strmap_get(&f->entries, key);
	struct waiter *w = e ? e->waiters : NULL;
	if (e)
		e->waiters = NULL;
	pthread_mutex_unlock(&f->lock);
	while (w) {
		struct waiter *next = w->next;
		answer(w->cb, w->arg, r, NULL, NULL, message);
		free(w);
		w = next;
	}
}

/* ---- Kubernetes side (worker threads only: these block) ---- */

static int is_unreachable(int rc)
{
	return rc > -KUBE_E_BASE || rc <= -(KUBE_E_BASE + 500) || rc == KUBE_ETOOMANY;
}

static enum fn_result classify(int rc)
{
	if (rc == KUBE_EINVALID)
		return FN_INVALID;
	return is_unreachable(rc) ? FN_UNREACHABLE : FN_REJECTED;
}

static int ns_owned_by(const cJSON *nsobj, const char *tenant)
{
	const char *t = annotation(nsobj, ANNO_TENANT);
	return t && strcmp(t, tenant) == 0;
}

static int ensure_namespace(struct functions *f, const char *ns, const char *tenant, char *msg,
			    size_t msglen)
{
	cJSON *nsobj = kube_informer_get(f->inf_ns, ns);
	if (nsobj) {
		int owned = ns_owned_by(nsobj, tenant);
		cJSON_Delete(nsobj);
		if (owned)
			return 0;
		snprintf(msg, msglen, "namespace %s belongs to another tenant", ns);
		return FN_CONFLICT;
	}
	int rc = kube_get_object(f->kube, &res_namespaces, NULL, ns, &nsobj);
	if (rc == 0) {
		int owned = ns_owned_by(nsobj, tenant);
		cJSON_Delete(nsobj);
		if (!owned) {
			snprintf(msg, msglen,
				 "namespace %s exists but does not carry the annotation %s=%s; it "
				 "belongs to another tenant or was not made by udf-operator",
				 ns, ANNO_TENANT, tenant);
			return FN_CONFLICT;
		}
	} else if (rc == KUBE_ENOTFOUND) {
		cJSON *obj = cJSON_CreateObject();
		cJSON *md = cJSON_AddObjectToObject(obj, "metadata");
		cJSON *labels = cJSON_AddObjectToObject(md, "labels");
		cJSON *annos = cJSON_AddObjectToObject(md, "annotations");
		int ok = obj && md && labels && annos &&
			 cJSON_AddStringToObject(obj, "apiVersion", "v1") &&
			 cJSON_AddStringToObject(obj, "kind", "Namespace") &&
			 cJSON_AddStringToObject(md, "name", ns) &&
			 cJSON_AddStringToObject(labels, LABEL_MANAGED_BY, "udf-operator") &&
			 cJSON_AddStringToObject(labels, LABEL_TENANT_NS, "true") &&
			 cJSON_AddStringToObject(labels, "pod-security.kubernetes.io/enforce",
						 "restricted") &&
			 cJSON_AddStringToObject(
			     labels, "pod-security.kubernetes.io/enforce-version", "latest") &&
			 cJSON_AddStringToObject(annos, ANNO_TENANT, tenant);
		rc = ok ? kube_create(f->kube, &res_namespaces, NULL, obj, NULL) : -ENOMEM;
		cJSON_Delete(obj);
		if (rc == KUBE_EALREADY_EXISTS) /* a race with another operator: check again */
			return ensure_namespace(f, ns, tenant, msg, msglen);
		if (rc < 0) {
			snprintf(msg, msglen, "cannot create namespace %s: %s", ns,
				 kube_strerror(rc));
			return classify(rc);
		}
		log_info("functions", "created namespace %s for tenant \"%s\"", ns, tenant);
	} else {
		snprintf(msg, msglen, "cannot read namespace %s: %s", ns, kube_strerror(rc));
		return classify(rc);
	}
	cJSON *np = NULL;
	rc = udf_netpol_object(f->netpol, ns, &np);
	if (rc == 0)
		rc = kube_create(f->kube, &res_netpols, ns, np, NULL);
	cJSON_Delete(np);
	if (rc < 0 && rc != KUBE_EALREADY_EXISTS) {
		snprintf(msg, msglen, "cannot create the NetworkPolicy of namespace %s: %s", ns,
			 kube_strerror(rc));
		return classify(rc);
	}
	return 0;
}

/* Creates the object, or reuses the existing one, replacing its spec when its content key
 * differs. *out: the object as the server has it. */
static int ensure_object(struct functions *f, const cJSON *desired, const char *tenant, cJSON **out,
			 char *msg, size_t msglen)
{
	const char *ns = k8s_str(desired, "metadata.namespace");
	const char *name = k8s_str(desired, "metadata.name");
	const char *key = annotation(desired, ANNO_CONTENT_KEY);
	int rc = kube_create(f->kube, &res_functions, ns, desired, out);
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
			return FN_CONFLICT;
		}
		if (object_matches(cur, tenant, key)) {
			*out = cur;
			return 0;
		}
		/* Same name, other content (a generation 3 worker whose UDF changed): roll it. */
		cJSON *md = cJSON_GetObjectItemCaseSensitive(cur, "metadata");
		cJSON *annos = cJSON_GetObjectItemCaseSensitive(md, "annotations");
		if (!annos)
			annos = cJSON_AddObjectToObject(md, "annotations");
		cJSON_DeleteItemFromObjectCaseSensitive(annos, ANNO_CONTENT_KEY);
		cJSON_AddStringToObject(annos, ANNO_CONTENT_KEY, key);
		cJSON *spec = cJSON_Duplicate(k8s_get(desired, "spec"), 1);
		/* Worker records (tags, options) and replica settings survive a new UDF body. */
		const char *keep[] = {"tags",	     "options",	    "replicas",
				      "minReplicas", "maxReplicas", "idleTimeoutSeconds",
				      "poolRef",     "env",	    "resources"};
		const cJSON *old_spec = k8s_get(cur, "spec");
		for (size_t i = 0; spec && old_spec && i < sizeof(keep) / sizeof(keep[0]); i++) {
			const cJSON *v = cJSON_GetObjectItemCaseSensitive(old_spec, keep[i]);
			if (v && !cJSON_GetObjectItemCaseSensitive(spec, keep[i]))
				cJSON_AddItemToObject(spec, keep[i], cJSON_Duplicate(v, 1));
		}
		cJSON_ReplaceItemInObjectCaseSensitive(cur, "spec", spec);
		rc = kube_update(f->kube, &res_functions, ns, cur, NULL, out);
		cJSON_Delete(cur);
		if (rc == 0) {
			log_info("functions", "UdfFunction %s/%s: new content, spec replaced", ns,
				 name);
			return 0;
		}
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
	return classify(rc);
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

/* Answers the waiters whose question the object settles; reschedules the rest. */
static void evaluate(struct functions *f, const char *key, const char *ns, const cJSON *obj)
{
	struct fn_status st;
	functions_read_status(obj, &st);
	char *token = NULL;
	if (st.token_secret && (st.ready || st.endpoint))
		token = token_fetch(f, ns, st.token_secret);
	if (st.ready && !token)
		st.ready = 0; /* the Secret is not there yet */
	char endpoint[1025] = "", message[1024] = "";
	if (st.endpoint)
		snprintf(endpoint, sizeof(endpoint), "%s", st.endpoint);
	if (st.message)
		snprintf(message, sizeof(message), "%s", st.message);

	int64_t now = now_ms();
	struct waiter *done = NULL, *keep = NULL;
	int64_t next = INT64_MAX;
	pthread_mutex_lock(&f->lock);
	struct entry *e = strmap_get(&f->entries, key);
	struct waiter *w = e ? e->waiters : NULL;
	if (e)
		e->waiters = NULL;
	while (w) {
		struct waiter *n = w->next;
		if (st.ready || st.failed || now >= w->answer_at) {
			w->next = done;
			done = w;
		} else {
			w->next = keep;
			keep = w;
			if (w->answer_at < next)
				next = w->answer_at;
		}
		w = n;
	}
	if (e) {
		e->waiters = keep;
		if (done && now - e->last_touch_ms >= TOUCH_EVERY_MS) {
			e->last_touch_ms = now;
			e->touch_due = 1;
		}
	}
	pthread_mutex_unlock(&f->lock);

	while (done) {
		struct waiter *n = done->next;
		if (st.ready)
			answer(done->cb, done->arg, FN_READY, endpoint, token, NULL);
		else if (st.failed)
			answer(done->cb, done->arg, FN_FAILED, endpoint, NULL,
			       message[0] ? message : "provisioning failed");
		else if (endpoint[0])
			answer(done->cb, done->arg, FN_STARTING, endpoint, token, message);
		else
			answer(done->cb, done->arg, FN_PROVISIONING, NULL, NULL, message);
		free(done);
		done = n;
	}
	free(token);
	if (next != INT64_MAX)
		wq_add_after(f->wq, key, (uint64_t)(next > now ? next - now : 0) * 1000);
}

static int process(void *arg, const char *key)
{
	struct functions *f = arg;
	char msg[768] = "";
	cJSON *desired = NULL;
	char *tenant = NULL;
	char ns[64], name[254];
	int ensured, touch_due;

	pthread_mutex_lock(&f->lock);
	struct entry *e = strmap_get(&f->entries, key);
	if (!e) {
		pthread_mutex_unlock(&f->lock);
		return 0;
	}
	ensured = e->ensured || !e->desired;
	if (!ensured && e->waiters)
		desired = cJSON_Duplicate(e->desired, 1);
	tenant = strdup(e->tenant);
	snprintf(ns, sizeof(ns), "%s", e->ns);
	snprintf(name, sizeof(name), "%s", e->name);
	touch_due = e->touch_due;
	e->touch_due = 0;
	int has_waiters = e->waiters != NULL;
	pthread_mutex_unlock(&f->lock);
	if (!tenant) {
		cJSON_Delete(desired);
		return 1;
	}

	cJSON *obj = NULL;
	if (!has_waiters)
		goto out_touch;
	if (desired) {
		int r = ensure_namespace(f, ns, tenant, msg, sizeof(msg));
		if (r == 0)
			r = ensure_object(f, desired, tenant, &obj, msg, sizeof(msg));
		if (r != 0) {
			log_warn("functions", "%s: %s", key, msg);
			fail_waiters(f, key, (enum fn_result)r, msg);
			goto out;
		}
		pthread_mutex_lock(&f->lock);
		e = strmap_get(&f->entries, key);
		const char *want = annotation(desired, ANNO_CONTENT_KEY);
		if (e && want && strcmp(e->content_key, want) == 0)
			e->ensured = 1;
		pthread_mutex_unlock(&f->lock);
	} else {
		obj = kube_informer_get(f->inf_fn, key);
		if (!obj) {
			/* Not in the cache yet (just created) or deleted: ask the server. */
			int rc = kube_get_object(f->kube, &res_functions, ns, name, &obj);
			if (rc == KUBE_ENOTFOUND) {
				pthread_mutex_lock(&f->lock);
				e = strmap_get(&f->entries, key);
				if (e)
					e->ensured = 0;
				pthread_mutex_unlock(&f->lock);
				wq_add(f->wq, key);
				goto out;
			}
			if (rc < 0) {
				snprintf(msg, sizeof(msg), "cannot read UdfFunction %s: %s", key,
					 kube_strerror(rc));
				fail_waiters(f, key, classify(rc), msg);
				goto out;
			}
		}
	}
	evaluate(f, key, ns, obj);
	/* Ensured and nobody waiting: the object to create (code included) is not needed. */
	pthread_mutex_lock(&f->lock);
	e = strmap_get(&f->entries, key);
	if (e && e->ensured && !e->waiters) {
		cJSON_Delete(e->desired);
		e->desired = NULL;
	}
	pthread_mutex_unlock(&f->lock);
out_touch:
	pthread_mutex_lock(&f->lock);
	e = strmap_get(&f->entries, key);
	if (e && e->touch_due) {
		touch_due = 1;
		e->touch_due = 0;
	}
	pthread_mutex_unlock(&f->lock);
	if (touch_due)
		touch(f, ns, name);
out:
	cJSON_Delete(obj);
	cJSON_Delete(desired);
	free(tenant);
	return 0;
}

/* What the caches say about key now, for a call whose time is up (no I/O). */
static void answer_from_cache(struct functions *f, const char *key, const char *ns,
			      struct waiter *w)
{
	cJSON *obj = kube_informer_get(f->inf_fn, key);
	struct fn_status st = {0};
	char *token = NULL;
	if (obj)
		functions_read_status(obj, &st);
	if (st.token_secret)
		token = token_cached(f, ns, st.token_secret);
	if (st.ready && token)
		answer(w->cb, w->arg, FN_READY, st.endpoint, token, NULL);
	else if (st.failed)
		answer(w->cb, w->arg, FN_FAILED, st.endpoint, NULL,
		       st.message ? st.message : "provisioning failed");
	else if (st.endpoint)
		answer(w->cb, w->arg, FN_STARTING, st.endpoint, token, st.message);
	else
		answer(w->cb, w->arg, FN_PROVISIONING, NULL, NULL, st.message);
	free(token);
	cJSON_Delete(obj);
}

struct due {
	struct waiter *w;
	char key[320];
	char ns[64];
	struct due *next;
};

static void *sweeper_thread(void *arg)
{
	struct functions *f = arg;
	pthread_mutex_lock(&f->lock);
	while (!f->ops_stop) {
		int64_t now = now_ms();
		if (f->next_deadline > now) {
			struct timespec ts;
			int64_t wait =
			    f->next_deadline == INT64_MAX ? 1000 : f->next_deadline - now;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_sec += wait / 1000;
			ts.tv_nsec += (wait % 1000) * 1000000;
			if (ts.tv_nsec >= 1000000000) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000;
			}
			pthread_cond_timedwait(&f->sweep_cond, &f->lock, &ts);
			continue;
		}
		/* Take every call whose time is up; recompute the next deadline. */
		struct due *due = NULL;
		int64_t next = INT64_MAX;
		struct strmap_iter it;
		const char *key;
		void *val;
		strmap_iter_init(&f->entries, &it);
		while (strmap_iter_next(&f->entries, &it, &key, &val)) {
			struct entry *e = val;
			struct waiter **pp = &e->waiters;
			while (*pp) {
				struct waiter *w = *pp;
				struct due *d = w->answer_at <= now ? malloc(sizeof(*d)) : NULL;
				if (d) {
					*pp = w->next;
					d->w = w;
					snprintf(d->key, sizeof(d->key), "%s", key);
					snprintf(d->ns, sizeof(d->ns), "%s", e->ns);
					d->next = due;
					due = d;
					continue;
				}
				if (w->answer_at < next)
					next = w->answer_at;
				pp = &w->next;
			}
		}
		f->next_deadline = next;
		pthread_mutex_unlock(&f->lock);
		while (due) {
			struct due *n = due->next;
			answer_from_cache(f, due->key, due->ns, due->w);
			free(due->w);
			free(due);
			due = n;
		}
		pthread_mutex_lock(&f->lock);
	}
	pthread_mutex_unlock(&f->lock);
	return NULL;
}

/* ---- informer handlers (loop thread: only enqueue) ---- */

static void wake(struct functions *f, const cJSON *obj)
{
	char key[320];
	if (kube_object_key(obj, key, sizeof(key)) < 0)
		return;
	pthread_mutex_lock(&f->lock);
	struct entry *e = strmap_get(&f->entries, key);
	int waiting = e && e->waiters;
	pthread_mutex_unlock(&f->lock);
	if (waiting)
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

/* Keeps f->ready in step with the cache (loop thread). */
static void note_ready(struct functions *f, const cJSON *obj, int deleted)
{
	char key[320];
	struct fn_status st;
	struct ready_fn *r = NULL;
	void *old = NULL;
	if (kube_object_key(obj, key, sizeof(key)) < 0)
		return;
	functions_read_status(obj, &st);
	const char *tenant = k8s_str(obj, "spec.tenant");
	const char *ck = annotation(obj, ANNO_CONTENT_KEY);
	if (!deleted && st.ready && tenant && ck) {
		r = calloc(1, sizeof(*r));
		if (r) {
			r->tenant = strdup(tenant);
			r->content_key = strdup(ck);
			r->endpoint = strdup(st.endpoint);
			r->token_secret = strdup(st.token_secret);
			if (!r->tenant || !r->content_key || !r->endpoint || !r->token_secret) {
				ready_free(r);
				r = NULL;
			}
		}
	}
	pthread_mutex_lock(&f->lock);
	if (r) {
		if (strmap_put(&f->ready, key, r, &old) < 0) {
			ready_free(r);
			strmap_del(&f->ready, key, &old);
		}
	} else {
		strmap_del(&f->ready, key, &old);
	}
	pthread_mutex_unlock(&f->lock);
	ready_free(old);
}

static void on_add(void *arg, const cJSON *obj)
{
	note_ready(arg, obj, 0);
	wake(arg, obj);
}

static void on_update(void *arg, const cJSON *old, const cJSON *obj)
{
	note_ready(arg, obj, 0);
	wake(arg, obj);
}

static void note_ns(struct functions *f, const cJSON *nsobj, int deleted)
{
	const char *name = k8s_str(nsobj, "metadata.name");
	const char *t = annotation(nsobj, ANNO_TENANT);
	char *copy = !deleted && t ? strdup(t) : NULL;
	void *old = NULL;
	if (!name)
		return;
	pthread_mutex_lock(&f->lock);
	if (copy) {
		if (strmap_put(&f->ns_tenants, name, copy, &old) < 0) {
			free(copy);
			strmap_del(&f->ns_tenants, name, &old);
		}
	} else {
		strmap_del(&f->ns_tenants, name, &old);
	}
	pthread_mutex_unlock(&f->lock);
	free(old);
}

static void on_ns_add(void *arg, const cJSON *obj)
{
	note_ns(arg, obj, 0);
}

static void on_ns_update(void *arg, const cJSON *old, const cJSON *obj)
{
	note_ns(arg, obj, 0);
}

static void on_ns_delete(void *arg, const cJSON *obj)
{
	note_ns(arg, obj, 1);
}

static void on_delete(void *arg, const cJSON *obj)
{
	struct functions *f = arg;
	char key[320];
	note_ready(f, obj, 1);
	if (kube_object_key(obj, key, sizeof(key)) < 0)
		return;
	pthread_mutex_lock(&f->lock);
	struct entry *e = strmap_get(&f->entries, key);
	if (e)
		e->ensured = 0;
	int waiting = e && e->waiters;
	pthread_mutex_unlock(&f->lock);
	if (waiting)
		wq_add(f->wq, key);
}

/* ---- public ---- */

int functions_new(const struct functions_options *o, struct functions **out)
{
	if (!o->kube || !naming_prefix_valid(o->ns_prefix))
		return -EINVAL;
	struct functions *f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->kube = o->kube;
	snprintf(f->prefix, sizeof(f->prefix), "%s", o->ns_prefix);
	f->n_workers = o->workers > 0 ? o->workers : 8;
	pthread_mutex_init(&f->lock, NULL);
	pthread_cond_init(&f->jobs_cond, NULL);
	pthread_cond_init(&f->sweep_cond, NULL);
	f->next_deadline = INT64_MAX;
	strmap_init(&f->entries);
	strmap_init(&f->tokens);
	strmap_init(&f->ready);
	strmap_init(&f->ns_tenants);

	static const struct kube_handlers fn_handlers_template = {on_add, on_update, on_delete,
								  NULL};
	struct kube_handlers h = fn_handlers_template;
	h.arg = f;
	struct kube_informer_opts fo = {.res = &res_functions, .handlers = &h};
	struct kube_handlers nsh = {on_ns_add, on_ns_update, on_ns_delete, f};
	struct kube_informer_opts nso = {
	    .res = &res_namespaces, .label_selector = LABEL_TENANT_NS "=true", .handlers = &nsh};
	/* The policy is parsed once, here: a manifest the operator cannot read stops it at
	 * start-up rather than at the first tenant. */
	int rc = udf_netpol_new(NULL, &f->netpol);
	if (rc < 0)
		log_error("functions", "cannot parse the embedded sandbox NetworkPolicy: %s",
			  strerror(-rc));
	if (rc == 0)
		rc = kube_informers_new(f->kube, &f->loop);
	if (rc == 0)
		rc = kube_informer_add(f->loop, &fo, &f->inf_fn);
	if (rc == 0)
		rc = kube_informer_add(f->loop, &nso, &f->inf_ns);
	if (rc == 0)
		rc = wq_new(NULL, &f->wq);
	if (rc < 0) {
		functions_free(f);
		return rc;
	}
	*out = f;
	return 0;
}

static void *ops_thread(void *arg)
{
	struct functions *f = arg;
	for (;;) {
		pthread_mutex_lock(&f->lock);
		while (!f->jobs_head && !f->ops_stop)
			pthread_cond_wait(&f->jobs_cond, &f->lock);
		struct job *j = f->jobs_head;
		if (j) {
			f->jobs_head = j->next;
			if (!f->jobs_head)
				f->jobs_tail = NULL;
		}
		pthread_mutex_unlock(&f->lock);
		if (!j)
			return NULL;
		j->fn(j->arg);
		free(j);
	}
}

int functions_submit(struct functions *f, void (*fn)(void *arg), void *arg)
{
	if (atomic_load(&f->shutting_down))
		return -ESHUTDOWN;
	struct job *j = calloc(1, sizeof(*j));
	if (!j)
		return -ENOMEM;
	j->fn = fn;
	j->arg = arg;
	pthread_mutex_lock(&f->lock);
	if (f->jobs_tail)
		f->jobs_tail->next = j;
	else
		f->jobs_head = j;
	f->jobs_tail = j;
	pthread_cond_signal(&f->jobs_cond);
	pthread_mutex_unlock(&f->lock);
	return 0;
}

int functions_run_blocking(struct functions *f, void (*fn)(void *arg), void *arg)
{
	return functions_submit(f, fn, arg);
}

struct kube_client *functions_kube(struct functions *f)
{
	return f->kube;
}

int functions_namespace(struct functions *f, const char *tenant, char ns[64])
{
	return naming_tenant_namespace(f->prefix, tenant, ns);
}

int functions_ensure_namespace(struct functions *f, const char *tenant, char ns[64], char *msg,
			       size_t msglen)
{
	int rc = naming_tenant_namespace(f->prefix, tenant, ns);
	if (rc < 0) {
		snprintf(msg, msglen, "the tenant name cannot be mapped to a namespace");
		return FN_INVALID;
	}
	return ensure_namespace(f, ns, tenant, msg, msglen);
}

int functions_tenant_namespace_known(struct functions *f, const char *tenant, char ns[64])
{
	if (naming_tenant_namespace(f->prefix, tenant, ns) < 0)
		return -1;
	cJSON *nsobj = kube_informer_get(f->inf_ns, ns);
	if (!nsobj)
		return 0;
	int owned = ns_owned_by(nsobj, tenant);
	cJSON_Delete(nsobj);
	return owned ? 1 : -1;
}

cJSON *functions_cached(struct functions *f, const char *ns, const char *name)
{
	char key[320];
	snprintf(key, sizeof(key), "%s/%s", ns, name);
	return kube_informer_get(f->inf_fn, key);
}

cJSON *functions_cached_list(struct functions *f)
{
	return kube_informer_list(f->inf_fn);
}

int functions_synced(struct functions *f)
{
	return kube_informer_has_synced(f->inf_fn) && kube_informer_has_synced(f->inf_ns);
}

int functions_start(struct functions *f)
{
	for (int i = 0; i < OPS_THREADS; i++) {
		if (pthread_create(&f->ops[i], NULL, ops_thread, f) != 0)
			return -EAGAIN;
		f->n_ops++;
	}
	if (pthread_create(&f->sweeper, NULL, sweeper_thread, f) != 0)
		return -EAGAIN;
	f->sweeper_started = 1;
	int rc = kube_informers_start(f->loop);
	if (rc == 0)
		rc = wq_run(f->wq, f->n_workers, process, f);
	if (rc == 0)
		f->started = 1;
	return rc;
}

static void answer_all(struct functions *f, enum fn_result r, const char *message)
{
	struct strmap_iter it;
	const char *key;
	void *val;
	struct waiter *all = NULL;
	pthread_mutex_lock(&f->lock);
	strmap_iter_init(&f->entries, &it);
	while (strmap_iter_next(&f->entries, &it, &key, &val)) {
		struct entry *e = val;
		while (e->waiters) {
			struct waiter *w = e->waiters;
			e->waiters = w->next;
			w->next = all;
			all = w;
		}
	}
	pthread_mutex_unlock(&f->lock);
	while (all) {
		struct waiter *n = all->next;
		answer(all->cb, all->arg, r, NULL, NULL, message);
		free(all);
		all = n;
	}
}

void functions_shutdown(struct functions *f)
{
	if (!f)
		return;
	atomic_store(&f->shutting_down, 1);
	answer_all(f, FN_SHUTDOWN, "udf-operator is shutting down; retry");
}

void functions_free(struct functions *f)
{
	if (!f)
		return;
	functions_shutdown(f);
	if (f->wq) {
		wq_shutdown(f->wq);
		wq_free(f->wq);
	}
	pthread_mutex_lock(&f->lock);
	f->ops_stop = 1; /* the queue drains first: every submitted job answers its call */
	pthread_cond_broadcast(&f->jobs_cond);
	pthread_cond_broadcast(&f->sweep_cond);
	pthread_mutex_unlock(&f->lock);
	for (int i = 0; i < f->n_ops; i++)
		pthread_join(f->ops[i], NULL);
	if (f->sweeper_started)
		pthread_join(f->sweeper, NULL);
	kube_informers_free(f->loop);
	/* A worker may have parked a call after the first sweep. */
	answer_all(f, FN_SHUTDOWN, "udf-operator is shutting down; retry");
	strmap_free(&f->entries, entry_free);
	strmap_free(&f->tokens, token_free);
	strmap_free(&f->ready, ready_free);
	strmap_free(&f->ns_tenants, free);
	udf_netpol_free(f->netpol);
	pthread_cond_destroy(&f->jobs_cond);
	pthread_cond_destroy(&f->sweep_cond);
	pthread_mutex_destroy(&f->lock);
	free(f);
}

int functions_apply(struct functions *f, const struct fn_desc *d, int64_t answer_at_ms,
		    fn_apply_cb cb, void *arg)
{
	char ns[64], key[320];
	int rc = naming_tenant_namespace(f->prefix, d->tenant, ns);
	if (rc < 0)
		return rc;
	snprintf(key, sizeof(key), "%s/%s", ns, d->name);
	if (atomic_load(&f->shutting_down)) {
		answer(cb, arg, FN_SHUTDOWN, NULL, NULL, "udf-operator is shutting down; retry");
		return 0;
	}

	/* Hot: the caches already know the function is ready (no object is copied). */
	char endpoint[1025], token[4097];
	int hot = 0, touch_now = 0;
	int64_t now = now_ms();
	pthread_mutex_lock(&f->lock);
	struct ready_fn *r = strmap_get(&f->ready, key);
	const char *owner = strmap_get(&f->ns_tenants, ns);
	if (r && owner && strcmp(owner, d->tenant) == 0 && strcmp(r->tenant, d->tenant) == 0 &&
	    strcmp(r->content_key, d->content_key) == 0) {
		char tkey[320];
		snprintf(tkey, sizeof(tkey), "%s/%s", ns, r->token_secret);
		struct token *t = strmap_get(&f->tokens, tkey);
		if (t && now - t->fetched_ms < TOKEN_TTL_MS && strlen(t->value) < sizeof(token) &&
		    strlen(r->endpoint) < sizeof(endpoint)) {
			strcpy(endpoint, r->endpoint);
			strcpy(token, t->value);
			hot = 1;
			struct entry *e = entry_get_locked(f, key, ns, d->name, d->tenant);
			if (e && now - e->last_touch_ms >= TOUCH_EVERY_MS) {
				e->last_touch_ms = now;
				e->touch_due = 1;
				touch_now = 1;
			}
		}
	}
	pthread_mutex_unlock(&f->lock);
	if (hot) {
		answer(cb, arg, FN_READY, endpoint, token, NULL);
		if (touch_now)
			wq_add(f->wq, key);
		return 0;
	}

	/* Slow: park the call; a worker creates or reuses the function and answers. */
	struct waiter *w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->cb = cb;
	w->arg = arg;
	w->answer_at = answer_at_ms - now > MAX_WAIT_MS ? now + MAX_WAIT_MS : answer_at_ms;
	cJSON *desired = NULL;

	pthread_mutex_lock(&f->lock);
	struct entry *e = entry_get_locked(f, key, ns, d->name, d->tenant);
	if (e && (!e->desired || strcmp(e->content_key, d->content_key) != 0 ||
		  strcmp(e->tenant, d->tenant) != 0)) {
		pthread_mutex_unlock(&f->lock);
		desired = functions_object(d, ns); /* outside the lock: it copies the code */
		pthread_mutex_lock(&f->lock);
		e = entry_get_locked(f, key, ns, d->name, d->tenant);
		if (e && desired) {
			char *t = strdup(d->tenant);
			if (t) {
				free(e->tenant);
				e->tenant = t;
				cJSON_Delete(e->desired);
				e->desired = desired;
				desired = NULL;
				snprintf(e->content_key, sizeof(e->content_key), "%s",
					 d->content_key);
				e->ensured = 0;
			}
		}
	}
	int ok = e && e->desired && strcmp(e->content_key, d->content_key) == 0;
	if (ok) {
		/* A parked call is use too: it is what wakes a function scaled to zero. */
		if (now - e->last_touch_ms >= TOUCH_EVERY_MS) {
			e->last_touch_ms = now;
			e->touch_due = 1;
		}
		w->next = e->waiters;
		e->waiters = w;
		if (w->answer_at < f->next_deadline) {
			f->next_deadline = w->answer_at;
			pthread_cond_signal(&f->sweep_cond);
		}
	}
	pthread_mutex_unlock(&f->lock);
	cJSON_Delete(desired);
	if (!ok) {
		free(w);
		return -ENOMEM;
	}
	wq_add(f->wq, key);
	return 0;
}
