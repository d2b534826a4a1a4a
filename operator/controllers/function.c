#include "controllers/function.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include "controllers/claim.h"
#include "controllers/endpoint.h"
#include "controllers/expectations.h"
#include "controllers/runner.h"
#include "controllers/specialize.h"
#include "controllers/token.h"
#include "kube/strmap.h"
#include "kube/workqueue.h"
#include "udf/function_pod.h"
#include "udf/event.h"
#include "udf/labels.h"
#include "udf/pool_pod.h"
#include "udf/selector.h"
#include "util/log.h"

#define COMPONENT "function"
#define SWEEP_KEY "~sweep" /* not a namespace/name: the periodic sweep */
#define SWEEP_MS  60000
#define RESYNC_MS 60000
/* A specialization in progress is read again after this. */
#define POLL_MS 250
/* ... and in its first seconds, when most finish (a warm zygote specializes in 100-500 ms):
 * the difference is latency a query sees. A /v1/status read is one local HTTP request. */
#define POLL_FAST_MS   40
#define POLL_FAST_SPAN 3000
/* A specialization that has not ended after this is given up (SpecializeTimeout). */
#define SPECIALIZE_GIVEUP_MS 300000
/* A failure is tried again after this (a fresh presigned url or a package index back up). */
#define FAILURE_RETRY_MS 300000
/* Lost pods: replaced after 1 s doubling to 60 s. */
#define LOST_BASE_MS 1000
#define LOST_MAX_MS  60000
#define SYNC_WAIT_MS 200
#define TOKEN_MAX    256

static const struct kube_res res_functions = {"apis/udf.sandbox.io/v1alpha1", "udffunctions"};
static const struct kube_res res_pods = {"api/v1", "pods"};
static const struct kube_res res_secrets = {"api/v1", "secrets"};
static const struct kube_res res_events = {"api/v1", "events"};

static const double latency_buckets[] = {0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
#define NBUCKETS (sizeof(latency_buckets) / sizeof(latency_buckets[0]))

/* What one claimed pod's specialization looks like to us. Keyed "podns/podname". */
struct pod_memo {
	char hash[FN_SPEC_HASH_HEX + 1]; /* serving this spec hash, when serving */
	int serving;
	int64_t posted_ms; /* specialize sent (monotonic); 0: not yet */
	int64_t claimed_ms;
	char pool_key[320]; /* "ns/pool", for the metrics */
	int cold;
};

/* What the controller remembers of one function between reconciles. */
struct fn_state {
	char uid[64];
	char token[TOKEN_MAX];
	/* the last failure: sticks for its generation, spec hash and urls until retried */
	int64_t fail_gen;
	char fail_hash[FN_SPEC_HASH_HEX + 1];
	char fail_urls[65];
	int64_t fail_ms;
	char fail_type[32], fail_reason[48], fail_message[1024];
	/* lost pods */
	int lost;
	int64_t next_claim_ms;
	char last_ready_reason[48];
	/* --endpoint-mode=service */
	char cluster_ip[64];
	char slice_sig[1024]; /* the pods the EndpointSlice lists, as last applied */
};

struct pool_key {
	char uid[64];
	unsigned char key[POOL_KEY_BYTES];
};

struct counter {
	char *labels;
	unsigned long long n;
};

struct function_controller {
	struct kube_client *kube;
	struct kube_informer *functions, *pools, *pods, *namespaces;
	char *default_pool;
	char *worker_image;
	char *allowed;
	cJSON *ns_selector; /* {"matchLabels": {...}} or NULL */
	int workers;
	int endpoint_service;
	struct runner run; /* its workers and workqueue */
	struct expectations *exp;

	pthread_mutex_t mu;
	struct strmap states;	/* "ns/name" -> struct fn_state */
	struct strmap memos;	/* "podns/pod" -> struct pod_memo */
	struct strmap keys;	/* "ns/pool" -> struct pool_key */
	struct strmap counters; /* metric line labels -> struct counter */
	struct strmap vanished; /* "ns/name" of a function -> a pod of it deleted by someone else */

	atomic_ullong reconciles_ok, reconciles_err, api_requests;
	unsigned long long ready_le[NBUCKETS], ready_count; /* under mu */
	double ready_sum;
};

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t parse_time(const char *s)
{
	struct tm tm = {0};
	if (!s || !strptime(s, "%Y-%m-%dT%H:%M:%S", &tm))
		return 0;
	return (int64_t)timegm(&tm);
}

static void count(struct function_controller *fc, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void count(struct function_controller *fc, const char *fmt, ...)
{
	char labels[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(labels, sizeof(labels), fmt, ap);
	va_end(ap);
	pthread_mutex_lock(&fc->mu);
	struct counter *c = strmap_get(&fc->counters, labels);
	if (!c) {
		c = calloc(1, sizeof(*c));
		if (c && (!(c->labels = strdup(labels)) ||
			  strmap_put(&fc->counters, labels, c, NULL) < 0)) {
			free(c->labels);
			free(c);
			c = NULL;
		}
	}
	if (c)
		c->n++;
	pthread_mutex_unlock(&fc->mu);
}

/* ---- queue and handlers ---- */

static void enqueue(struct function_controller *fc, const char *key)
{
	wq_add(fc->run.wq, key);
}

static void enqueue_after(struct function_controller *fc, const char *key, int64_t ms)
{
	wq_add_after(fc->run.wq, key, (uint64_t)(ms < 0 ? 0 : ms) * 1000);
}

static void on_fn(void *arg, const cJSON *obj)
{
	char key[320];
	if (kube_object_key(obj, key, sizeof(key)) == 0)
		enqueue(arg, key);
}

static void on_fn_update(void *arg, const cJSON *old, const cJSON *obj)
{
	(void)old;
	on_fn(arg, obj);
}

/* first_going: this event is the first sign that the pod goes (a deletionTimestamp appeared,
 * or it was deleted without one): only then does the expectation say whether it was ours. */
static void pod_event(struct function_controller *fc, const cJSON *pod, int deleted,
		      int first_going)
{
	const char *fkey = k8s_annotation(pod, UDF_ANNO_FUNCTION);
	const char *name = k8s_str(pod, "metadata.name");
	if (!fkey || !name || !k8s_label(pod, UDF_LABEL_FUNCTION_UID))
		return;
	exp_observe(fc->exp, fkey, EXP_CREATE, name);
	int going = deleted || k8s_get(pod, "metadata.deletionTimestamp");
	if (first_going && !exp_has(fc->exp, fkey, EXP_DELETE, name) &&
	    strcmp(k8s_label(pod, UDF_LABEL_STATE) ? k8s_label(pod, UDF_LABEL_STATE) : "",
		   UDF_STATE_CLAIMED) == 0) {
		/* Not our delete (kubectl, an eviction): the function lost a pod. */
		pthread_mutex_lock(&fc->mu);
		if (!strmap_has(&fc->vanished, fkey))
			strmap_put(&fc->vanished, fkey, NULL, NULL);
		pthread_mutex_unlock(&fc->mu);
	}
	if (going)
		exp_observe(fc->exp, fkey, EXP_DELETE, name);
	enqueue(fc, fkey);
}

static void on_pod_add(void *arg, const cJSON *obj)
{
	pod_event(arg, obj, 0, 0);
}

static void on_pod_update(void *arg, const cJSON *old, const cJSON *obj)
{
	pod_event(arg, obj, 0,
		  !k8s_get(old, "metadata.deletionTimestamp") &&
		      k8s_get(obj, "metadata.deletionTimestamp"));
}

static void on_pod_delete(void *arg, const cJSON *obj)
{
	pod_event(arg, obj, 1, !k8s_get(obj, "metadata.deletionTimestamp"));
}

/* ---- events ---- */

__attribute__((format(printf, 5, 6))) static void fn_event(struct function_controller *fc,
							   const cJSON *fn, int warning,
							   const char *reason, const char *fmt, ...)
{
	char msg[1024];
	cJSON *ev = NULL;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (udf_event_object(fn, UDF_KIND_FN, warning, reason, msg, (int64_t)time(NULL), &ev) < 0)
		return;
	atomic_fetch_add(&fc->api_requests, 1);
	kube_create(fc->kube, &res_events, k8s_str(fn, "metadata.namespace"), ev, NULL);
	cJSON_Delete(ev);
}

/* ---- state ---- */

static struct fn_state *state_get(struct function_controller *fc, const char *key, const char *uid)
{
	pthread_mutex_lock(&fc->mu);
	struct fn_state *st = strmap_get(&fc->states, key);
	if (st && strcmp(st->uid, uid) != 0) {
		/* another function of the same name: nothing carries over */
		OPENSSL_cleanse(st, sizeof(*st));
		snprintf(st->uid, sizeof(st->uid), "%s", uid);
	}
	if (!st) {
		st = calloc(1, sizeof(*st));
		if (st && strmap_put(&fc->states, key, st, NULL) < 0) {
			free(st);
			st = NULL;
		}
		if (st)
			snprintf(st->uid, sizeof(st->uid), "%s", uid);
	}
	pthread_mutex_unlock(&fc->mu);
	return st;
}

static void free_state(void *v)
{
	OPENSSL_cleanse(v, sizeof(struct fn_state));
	free(v);
}

static void state_drop(struct function_controller *fc, const char *key)
{
	void *v = NULL;
	pthread_mutex_lock(&fc->mu);
	if (strmap_del(&fc->states, key, &v) && v)
		free_state(v);
	pthread_mutex_unlock(&fc->mu);
}

/* A copy of the pod's memo (zeroed when none). */
static void memo_get(struct function_controller *fc, const char *pkey, struct pod_memo *out)
{
	pthread_mutex_lock(&fc->mu);
	struct pod_memo *m = strmap_get(&fc->memos, pkey);
	if (m)
		*out = *m;
	else
		memset(out, 0, sizeof(*out));
	pthread_mutex_unlock(&fc->mu);
}

static void memo_put(struct function_controller *fc, const char *pkey, const struct pod_memo *m)
{
	pthread_mutex_lock(&fc->mu);
	struct pod_memo *cur = strmap_get(&fc->memos, pkey);
	if (!cur) {
		cur = malloc(sizeof(*cur));
		if (cur && strmap_put(&fc->memos, pkey, cur, NULL) < 0) {
			free(cur);
			cur = NULL;
		}
	}
	if (cur)
		*cur = *m;
	pthread_mutex_unlock(&fc->mu);
}

static void memo_drop(struct function_controller *fc, const char *pkey)
{
	void *v = NULL;
	pthread_mutex_lock(&fc->mu);
	if (strmap_del(&fc->memos, pkey, &v))
		free(v);
	pthread_mutex_unlock(&fc->mu);
}

static int owned_by(const cJSON *obj, const char *uid)
{
	const cJSON *ref;
	cJSON_ArrayForEach(ref, k8s_get(obj, "metadata.ownerReferences"))
	{
		const char *u = k8s_str(ref, "uid");
		if (u && strcmp(u, uid) == 0)
			return 1;
	}
	return 0;
}

/* The pool's control key (cached by pool uid); read from the pool's Secret, which is created
 * here when pool (the object) is given and the pool controller has not made it yet (a pool of
 * 0 idle pods has none until its first pod; a cold start needs it). */
static int pool_key_get(struct function_controller *fc, const char *pool_ns, const char *pool_name,
			const char *pool_uid, const cJSON *pool, unsigned char key[POOL_KEY_BYTES])
{
	char k[320], sname[POOL_POD_NAME_MAX + 1];
	snprintf(k, sizeof(k), "%s/%s", pool_ns, pool_name);
	pthread_mutex_lock(&fc->mu);
	struct pool_key *pk = strmap_get(&fc->keys, k);
	int hit = pk && (!pool_uid || strcmp(pk->uid, pool_uid) == 0);
	if (hit)
		memcpy(key, pk->key, POOL_KEY_BYTES);
	pthread_mutex_unlock(&fc->mu);
	if (hit)
		return 0;
	int rc = pool_key_secret_name(pool_name, sname, sizeof(sname));
	cJSON *secret = NULL;
	if (rc == 0) {
		atomic_fetch_add(&fc->api_requests, 1);
		rc = kube_get_object(fc->kube, &res_secrets, pool_ns, sname, &secret);
	}
	if (rc == KUBE_ENOTFOUND && pool) {
		cJSON *fresh = NULL;
		rc = pool_key_generate(key);
		if (rc == 0)
			rc = pool_key_secret_build(pool, key, &fresh);
		if (rc == 0) {
			atomic_fetch_add(&fc->api_requests, 1);
			rc = kube_create(fc->kube, &res_secrets, pool_ns, fresh, &secret);
		}
		cJSON_Delete(fresh);
		if (rc == KUBE_EALREADY_EXISTS) { /* the pool controller was first: theirs */
			atomic_fetch_add(&fc->api_requests, 1);
			rc = kube_get_object(fc->kube, &res_secrets, pool_ns, sname, &secret);
		}
	}
	if (rc == 0 && pool_uid && !owned_by(secret, pool_uid))
		rc = -EAGAIN; /* an earlier pool's, about to be collected: no token from it */
	if (rc == 0)
		rc = pool_key_from_secret(secret, key);
	cJSON_Delete(secret);
	if (rc < 0)
		return rc;
	pthread_mutex_lock(&fc->mu);
	pk = strmap_get(&fc->keys, k);
	if (!pk) {
		pk = calloc(1, sizeof(*pk));
		if (pk && strmap_put(&fc->keys, k, pk, NULL) < 0) {
			free(pk);
			pk = NULL;
		}
	}
	if (pk) {
		memcpy(pk->key, key, POOL_KEY_BYTES);
		snprintf(pk->uid, sizeof(pk->uid), "%s", pool_uid ? pool_uid : "");
	}
	pthread_mutex_unlock(&fc->mu);
	return 0;
}

static void pool_key_forget(struct function_controller *fc, const char *pool_ns,
			    const char *pool_name)
{
	char k[320];
	void *v = NULL;
	snprintf(k, sizeof(k), "%s/%s", pool_ns, pool_name);
	pthread_mutex_lock(&fc->mu);
	if (strmap_del(&fc->keys, k, &v) && v) {
		OPENSSL_cleanse(v, sizeof(struct pool_key));
		free(v);
	}
	pthread_mutex_unlock(&fc->mu);
}

/* The control token of a claimed pod: its pool label and namespace name the key. */
static int pod_control_token(struct function_controller *fc, const cJSON *pod,
			     char token[POOL_TOKEN_HEX + 1])
{
	const char *pool = k8s_label(pod, UDF_LABEL_POOL);
	const char *ns = k8s_str(pod, "metadata.namespace");
	unsigned char key[POOL_KEY_BYTES];
	char pkey[320];
	if (!pool || !ns)
		return -EINVAL;
	snprintf(pkey, sizeof(pkey), "%s/%s", ns, pool);
	cJSON *p = kube_informer_get(fc->pools, pkey);
	int rc = pool_key_get(fc, ns, pool, p ? k8s_str(p, "metadata.uid") : NULL, NULL, key);
	cJSON_Delete(p);
	if (rc == 0)
		rc = pool_pod_token(key, k8s_str(pod, "metadata.name"), token);
	OPENSSL_cleanse(key, sizeof(key));
	return rc;
}

/* ---- writes ---- */

static int delete_pod(struct function_controller *fc, const char *key, const cJSON *pod)
{
	const char *ns = k8s_str(pod, "metadata.namespace");
	const char *name = k8s_str(pod, "metadata.name");
	char pkey[400];
	snprintf(pkey, sizeof(pkey), "%s/%s", ns, name);
	if (exp_has(fc->exp, key, EXP_DELETE, name))
		return 0;
	exp_expect(fc->exp, key, EXP_DELETE, name);
	atomic_fetch_add(&fc->api_requests, 1);
	int rc = kube_delete(fc->kube, &res_pods, ns, name, "Background",
			     k8s_str(pod, "metadata.uid"), NULL, NULL);
	if (rc == KUBE_ENOTFOUND || rc == KUBE_ECONFLICT)
		rc = 0;
	if (rc < 0) {
		exp_observe(fc->exp, key, EXP_DELETE, name);
		log_warn(COMPONENT, "%s: delete pod %s: %s", key, pkey, kube_strerror(rc));
	} else {
		memo_drop(fc, pkey);
	}
	return rc;
}

/* Adds or removes our finalizer with a JSON patch that touches only that entry (a removal is
 * guarded by a test of the entry), so it does not conflict with the gRPC service's status and
 * annotation writes the way a resourceVersion precondition would. */
static int set_finalizer(struct function_controller *fc, const cJSON *fn, int want)
{
	const cJSON *list = k8s_get(fn, "metadata.finalizers");
	int idx = -1, i = 0;
	const cJSON *f;
	cJSON_ArrayForEach(f, list)
	{
		if (cJSON_IsString(f) && strcmp(f->valuestring, UDF_FINALIZER_PODS) == 0)
			idx = i;
		i++;
	}
	char body[256];
	if (want && idx >= 0)
		return 0;
	if (!want && idx < 0)
		return 0;
	if (want && cJSON_IsArray(list))
		snprintf(body, sizeof(body),
			 "[{\"op\":\"add\",\"path\":\"/metadata/finalizers/-\",\"value\":\"%s\"}]",
			 UDF_FINALIZER_PODS);
	else if (want)
		snprintf(body, sizeof(body),
			 "[{\"op\":\"add\",\"path\":\"/metadata/finalizers\",\"value\":[\"%s\"]}]",
			 UDF_FINALIZER_PODS);
	else
		snprintf(body, sizeof(body),
			 "[{\"op\":\"test\",\"path\":\"/metadata/finalizers/%d\",\"value\":\"%s\"},"
			 "{\"op\":\"remove\",\"path\":\"/metadata/finalizers/%d\"}]",
			 idx, UDF_FINALIZER_PODS, idx);
	atomic_fetch_add(&fc->api_requests, 1);
	int rc =
	    kube_patch(fc->kube, &res_functions, k8s_str(fn, "metadata.namespace"),
		       k8s_str(fn, "metadata.name"), NULL, KUBE_PATCH_JSON, body, NULL, 0, NULL);
	if (rc == KUBE_EINVALID && !want)
		rc = -EAGAIN; /* the list moved under us: read it again */
	return rc == KUBE_ENOTFOUND ? 0 : rc;
}

static int has_finalizer(const cJSON *fn)
{
	const cJSON *f;
	cJSON_ArrayForEach(f, k8s_get(fn, "metadata.finalizers"))
	{
		if (cJSON_IsString(f) && strcmp(f->valuestring, UDF_FINALIZER_PODS) == 0)
			return 1;
	}
	return 0;
}

/* ---- status ---- */

struct cond {
	const char *type;
	const char *status; /* "True", "False", "Unknown" */
	const char *reason;
	const char *message;
};

static cJSON *condition(const cJSON *old_status, const struct cond *c, int64_t gen)
{
	char now[32];
	const char *ltt = NULL;
	const cJSON *o;
	cJSON_ArrayForEach(o, k8s_get(old_status, "conditions"))
	{
		const char *t = k8s_str(o, "type"), *s = k8s_str(o, "status");
		if (t && s && strcmp(t, c->type) == 0 && strcmp(s, c->status) == 0)
			ltt = k8s_str(o, "lastTransitionTime");
	}
	udf_time_rfc3339((int64_t)time(NULL), now);
	cJSON *j = cJSON_CreateObject();
	cJSON_AddStringToObject(j, "type", c->type);
	cJSON_AddStringToObject(j, "status", c->status);
	cJSON_AddNumberToObject(j, "observedGeneration", (double)gen);
	cJSON_AddStringToObject(j, "lastTransitionTime", ltt ? ltt : now);
	cJSON_AddStringToObject(j, "reason", c->reason);
	cJSON_AddStringToObject(j, "message", c->message[0] ? c->message : c->reason);
	return j;
}

static int same_str(const cJSON *a, const cJSON *b, const char *path)
{
	const char *x = k8s_str(a, path), *y = k8s_str(b, path);
	return (!x && !y) || (x && y && strcmp(x, y) == 0);
}

static int status_same(const cJSON *old, const cJSON *fresh)
{
	static const char *const ints[] = {"replicas", "readyReplicas", "observedGeneration"};
	static const char *const strs[] = {"endpoint", "tokenSecretName", "selector", "specHash",
					   "launchType"};
	for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++)
		if (k8s_int(old, ints[i], -1) != k8s_int(fresh, ints[i], -1))
			return 0;
	for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++) {
		/* a null in the patch removes the field */
		const cJSON *f = cJSON_GetObjectItemCaseSensitive(fresh, strs[i]);
		if (cJSON_IsNull(f) ? k8s_str(old, strs[i]) != NULL
				    : !same_str(old, fresh, strs[i]))
			return 0;
	}
	const cJSON *oc = k8s_get(old, "conditions"), *nc = k8s_get(fresh, "conditions");
	if (cJSON_GetArraySize(oc) != cJSON_GetArraySize(nc))
		return 0;
	const cJSON *n;
	cJSON_ArrayForEach(n, nc)
	{
		int found = 0;
		const cJSON *o;
		cJSON_ArrayForEach(o, oc)
		{
			found |= same_str(o, n, "type") && same_str(o, n, "status") &&
				 same_str(o, n, "reason") && same_str(o, n, "message") &&
				 k8s_int(o, "observedGeneration", -1) ==
				     k8s_int(n, "observedGeneration", -1);
		}
		if (!found)
			return 0;
	}
	return 1;
}

/* ---- reconcile ---- */

/* What the function's pods look like this round. */
struct census {
	int alive;     /* current-hash pods not terminating */
	int serving;   /* ... specialized and serving */
	int old_alive; /* pods of an older spec hash */
	int old_serving;
	int starting;		 /* current pods still specializing (or waiting for an IP) */
	const char *endpoint_ip; /* borrowed from pods */
	const char *launch;
	int endpoint_serving;
	int poll; /* something is in progress: read again in this many ms (0: not) */
	/* a failure seen this round */
	char fail_type[32], fail_reason[48], fail_message[1024];
	int lost; /* pods found dead this round */
	/* every pod with an IP, for the EndpointSlice (borrowed) */
	const char *ips[64];
	int ready[64];
	size_t n_ips;
};

static void poll_in(struct census *c, int ms)
{
	if (!c->poll || ms < c->poll)
		c->poll = ms;
}

static void add_ip(struct census *c, const char *ip, int ready)
{
	if (!ip)
		return;
	for (size_t i = 0; i < c->n_ips; i++)
		if (strcmp(c->ips[i], ip) == 0) {
			c->ready[i] |= ready;
			return;
		}
	if (c->n_ips < sizeof(c->ips) / sizeof(c->ips[0])) {
		c->ips[c->n_ips] = ip;
		c->ready[c->n_ips++] = ready;
	}
}

static const char *step_condition(const char *step, const char **reason)
{
	if (strcmp(step, "import") == 0) {
		*reason = "ImportFetchFailed";
		return "ImportsFetched";
	}
	if (strcmp(step, "packages") == 0) {
		*reason = "PackageInstallFailed";
		return "PackagesInstalled";
	}
	if (strcmp(step, "load") == 0) {
		*reason = "CodeLoadFailed";
		return "CodeLoaded";
	}
	*reason = "SpecializeFailed";
	return "Specialized";
}

static void set_failure(struct census *c, const char *type, const char *reason, const char *msg)
{
	if (c->fail_type[0])
		return;
	snprintf(c->fail_type, sizeof(c->fail_type), "%s", type);
	snprintf(c->fail_reason, sizeof(c->fail_reason), "%s", reason);
	snprintf(c->fail_message, sizeof(c->fail_message), "%s", msg);
}

static int pod_ready(const cJSON *pod)
{
	return k8s_condition_is(pod, "Ready", "True", NULL);
}

static int pod_dead(const cJSON *pod)
{
	const char *phase = k8s_str(pod, "status.phase");
	if (phase && (strcmp(phase, "Failed") == 0 || strcmp(phase, "Succeeded") == 0))
		return 1;
	const cJSON *cs = cJSON_GetArrayItem(k8s_get(pod, "status.containerStatuses"), 0);
	return cs && k8s_get(cs, "state.terminated") != NULL;
}

static void observe_ready_latency(struct function_controller *fc, const struct pod_memo *m)
{
	if (!m->claimed_ms)
		return;
	double s = (double)(mono_ms() - m->claimed_ms) / 1000.0;
	pthread_mutex_lock(&fc->mu);
	fc->ready_count++;
	fc->ready_sum += s;
	for (size_t i = 0; i < NBUCKETS; i++)
		if (s <= latency_buckets[i])
			fc->ready_le[i]++;
	pthread_mutex_unlock(&fc->mu);
}

/* The function as the API server has it, into *served (once per reconcile). The cache keeps
 * no code, script, env or import urls (udf/function_pod.h), and a specialization needs them,
 * so it is read when a pod is to be specialized, on this worker thread. -ESTALE when the
 * server has no such function, another one of that name, or a spec of another hash: the
 * cache is behind, and the event that brings it up to date reconciles again. So a pod is
 * never specialized with a spec other than the one its spec-hash annotation names. */
static int served_function(struct function_controller *fc, const char *key, const cJSON *fn,
			   cJSON **served)
{
	cJSON *obj = NULL;
	if (*served)
		return 0;
	atomic_fetch_add(&fc->api_requests, 1);
	int rc = kube_get_object(fc->kube, &res_functions, k8s_str(fn, "metadata.namespace"),
				 k8s_str(fn, "metadata.name"), &obj);
	if (rc == 0)
		rc = fn_served_matches(fn, obj);
	if (rc == KUBE_ENOTFOUND)
		rc = -ESTALE;
	if (rc == -ESTALE)
		log_info(COMPONENT, "%s: the cache is behind the API server (spec or uid): waiting",
			 key);
	else if (rc < 0)
		log_warn(COMPONENT, "%s: cannot read the function to specialize it: %s", key,
			 kube_strerror(rc));
	if (rc < 0) {
		cJSON_Delete(obj);
		return rc;
	}
	*served = obj;
	return 0;
}

/* Drives one current-spec pod's specialization one step; fills the census. *served: the
 * function as served, read here when first needed (the caller frees it). */
static void drive_pod(struct function_controller *fc, const char *key, const cJSON *fn,
		      const cJSON *pod, const char *hash, const char *tenant, const char *token,
		      cJSON **served, struct census *c)
{
	const char *ns = k8s_str(pod, "metadata.namespace");
	const char *name = k8s_str(pod, "metadata.name");
	const char *ip = k8s_str(pod, "status.podIP");
	char pkey[400], ctoken[POOL_TOKEN_HEX + 1], err[1200];
	struct pod_memo m;
	snprintf(pkey, sizeof(pkey), "%s/%s", ns, name);
	memo_get(fc, pkey, &m);
	const char *launch = k8s_annotation(pod, UDF_ANNO_LAUNCH_TYPE);
	if (!c->endpoint_ip && ip) {
		c->endpoint_ip = ip;
		c->launch = launch;
	}
	add_ip(c, ip, m.serving && strcmp(m.hash, hash) == 0);
	if (m.serving && strcmp(m.hash, hash) == 0) {
		c->serving++;
		if (!c->endpoint_serving) {
			c->endpoint_ip = ip;
			c->launch = launch;
			c->endpoint_serving = 1;
		}
		/* Trusted until the pod ends (the worker restarts crashed servers itself); the
		 * pod's Ready condition lags the worker by a probe period, so it is not asked. */
		return;
	}
	if (!ip) {
		c->starting++;
		return; /* its IP comes with a pod event */
	}
	if (pod_control_token(fc, pod, ctoken) < 0) {
		c->starting++;
		poll_in(c, POLL_MS);
		return;
	}
	struct worker_status ws;
	int rc = specialize_status(ip, ctoken, &ws, err, sizeof(err));
	if (rc == -EPROTO) {
		/* a wrong token (the pool's key changed?) answers 401: read the key again */
		pool_key_forget(fc, ns, k8s_label(pod, UDF_LABEL_POOL));
	}
	if (rc < 0) {
		OPENSSL_cleanse(ctoken, sizeof(ctoken));
		c->starting++;
		poll_in(c, POLL_MS);
		return;
	}
	if (ws.state == WORKER_IDLE) {
		char *body = NULL;
		long http = 0;
		int wait_ms = POLL_FAST_MS;
		rc = served_function(fc, key, fn, served);
		if (rc == 0) {
			const char *urls_text = k8s_annotation(*served, UDF_ANNO_IMPORT_URLS);
			cJSON *urls = urls_text ? cJSON_Parse(urls_text) : NULL;
			rc = fn_specialize_body(*served, tenant, token, urls, &body);
			cJSON_Delete(urls);
		} else {
			wait_ms = POLL_MS;
		}
		if (rc == 0)
			rc = specialize_post(ip, ctoken, body, &http, err, sizeof(err));
		if (body) {
			OPENSSL_cleanse(body, strlen(body)); /* it holds the function's token */
			free(body);
		}
		if (rc == 0 && http == 202) {
			if (!m.posted_ms)
				m.posted_ms = mono_ms();
			if (!m.claimed_ms)
				m.claimed_ms = m.posted_ms;
			memo_put(fc, pkey, &m);
			log_info(COMPONENT, "%s: specializing pod %s", key, pkey);
		} else if (rc == 0 && (http == 400 || http == 409)) {
			set_failure(c, "Specialized", "SpecializeFailed", err);
		}
		c->starting++;
		poll_in(c, wait_ms);
	} else if (ws.state == WORKER_SPECIALIZING) {
		if (!m.posted_ms) {
			m.posted_ms = mono_ms(); /* after a restart: time it from now */
			memo_put(fc, pkey, &m);
		}
		if (mono_ms() - m.posted_ms > SPECIALIZE_GIVEUP_MS) {
			char msg[256];
			snprintf(msg, sizeof(msg),
				 "pod %s did not finish specializing within %d s (step %s)", pkey,
				 SPECIALIZE_GIVEUP_MS / 1000, ws.step[0] ? ws.step : "?");
			set_failure(c, "Specialized", "SpecializeTimeout", msg);
		} else {
			c->starting++;
			poll_in(c,
				mono_ms() - m.posted_ms < POLL_FAST_SPAN ? POLL_FAST_MS : POLL_MS);
		}
	} else if (ws.state == WORKER_READY) {
		if (!m.serving) {
			observe_ready_latency(fc, &m);
			log_info(COMPONENT, "%s: pod %s serves (specialized in %ld ms)", key, pkey,
				 ws.specialize_ms);
		}
		m.serving = 1;
		snprintf(m.hash, sizeof(m.hash), "%s", hash);
		memo_put(fc, pkey, &m);
		add_ip(c, ip, 1);
		c->serving++;
		if (!c->endpoint_serving) {
			c->endpoint_ip = ip;
			c->launch = launch;
			c->endpoint_serving = 1;
		}
	} else {
		const char *reason;
		const char *type = step_condition(ws.step, &reason);
		set_failure(c, type, reason, ws.reason[0] ? ws.reason : "specialization failed");
	}
	OPENSSL_cleanse(ctoken, sizeof(ctoken));
}

struct try_arg {
	struct function_controller *fc;
	const char *key;
};

static void on_try(void *arg, const char *pod_name, int sent_ok)
{
	struct try_arg *t = arg;
	if (sent_ok)
		exp_expect(t->fc->exp, t->key, EXP_CREATE, pod_name);
	else
		exp_observe(t->fc->exp, t->key, EXP_CREATE, pod_name);
}

/* --endpoint-mode=service: the Service and its EndpointSlice follow the census; the endpoint
 * published becomes the Service's address (once a pod has an IP, as in pod mode). Only what
 * changed is written. */
static int service_endpoint(struct function_controller *fc, const char *key, const cJSON *fn,
			    struct fn_state *st, struct census *c)
{
	int requests = 0, rc = 0;
	char sig[1024] = "";
	for (size_t i = 0; i < c->n_ips; i++) {
		size_t l = strlen(sig);
		snprintf(sig + l, sizeof(sig) - l, "%s=%d,", c->ips[i], c->ready[i]);
	}
	if (!st->cluster_ip[0] && c->n_ips) {
		rc = endpoint_service_apply(fc->kube, fn, st->cluster_ip, &requests);
		if (rc < 0)
			log_warn(COMPONENT, "%s: Service: %s", key, kube_strerror(rc));
	}
	if (rc == 0 && st->cluster_ip[0] && strcmp(sig, st->slice_sig) != 0) {
		rc = endpoint_slice_apply(fc->kube, fn, c->ips, c->ready, c->n_ips, &requests);
		if (rc == 0)
			snprintf(st->slice_sig, sizeof(st->slice_sig), "%s", sig);
		else
			log_warn(COMPONENT, "%s: EndpointSlice: %s", key, kube_strerror(rc));
	}
	atomic_fetch_add(&fc->api_requests, (unsigned)requests);
	c->endpoint_ip = c->n_ips && st->cluster_ip[0] ? st->cluster_ip : NULL;
	return rc;
}

/* Brings one more pod: a warm claim, else a cold start. 0 with *claimed set, or an error;
 * pool_reason/pool_msg say why none could be had. */
static int get_pod(struct function_controller *fc, const char *key, const cJSON *fn,
		   const cJSON *pool, const char *tenant_label, const char *hash, char *why_reason,
		   size_t rlen, char *why_msg, size_t mlen, cJSON **claimed)
{
	int requests = 0;
	struct try_arg ta = {fc, key};
	struct claim_req r = {fc->kube, pool, fn, tenant_label, hash, &requests, on_try, &ta};
	const char *pool_ns = k8s_str(pool, "metadata.namespace");
	const char *pool_name = k8s_str(pool, "metadata.name");
	char pod[POOL_POD_NAME_MAX + 1], pool_key[320];
	snprintf(pool_key, sizeof(pool_key), "%s/%s", pool_ns, pool_name);
	cJSON *cands = kube_informer_by_label(fc->pods, UDF_LABEL_POOL, pool_name);
	int rc = cands ? claim_warm(&r, cands, pod, claimed) : -ENOMEM;
	cJSON_Delete(cands);
	int cold = 0;
	if (rc == -ENOENT) {
		const char *rclass = NULL;
		unsigned char k[POOL_KEY_BYTES];
		char rejected[512];
		if (pool_pod_runtime_class(pool, fc->allowed, &rclass) < 0) {
			snprintf(why_reason, rlen, "RuntimeClassNotAllowed");
			snprintf(why_msg, mlen,
				 "pool %s has no idle pod and its runtimeClassName %s is not "
				 "allowed here",
				 pool_key, rclass);
			atomic_fetch_add(&fc->api_requests, (unsigned)requests);
			return -EPERM;
		}
		rc = pool_key_get(fc, pool_ns, pool_name, k8s_str(pool, "metadata.uid"), pool, k);
		if (rc == 0)
			rc = claim_cold(&r, k, pool_pod_image(pool, fc->worker_image), rclass, pod,
					rejected, sizeof(rejected));
		OPENSSL_cleanse(k, sizeof(k));
		if (rc < 0 && rejected[0]) {
			snprintf(why_reason, rlen, "PodCreateRejected");
			snprintf(why_msg, mlen, "the API server rejects the pod: %s", rejected);
		}
		cold = 1;
	}
	if (rc < 0 && !why_reason[0])
		log_warn(COMPONENT, "%s: no pod from pool %s: %s", key, pool_key,
			 kube_strerror(rc));
	if (rc == 0) {
		char pkey[400];
		struct pod_memo m = {0};
		snprintf(pkey, sizeof(pkey), "%s/%s", pool_ns, pod);
		m.claimed_ms = mono_ms();
		m.cold = cold;
		snprintf(m.pool_key, sizeof(m.pool_key), "%s", pool_key);
		memo_put(fc, pkey, &m);
		count(fc, "udf_function_claims_total{namespace=\"%s\",pool=\"%s\",launch=\"%s\"}",
		      pool_ns, pool_name, cold ? "cold" : "warm");
		claim_count(&r, cold ? "coldStarts" : "warmHits");
		log_info(COMPONENT, "%s: %s pod %s", key, cold ? "cold-started" : "claimed", pkey);
		fn_event(fc, fn, 0, cold ? "ColdStart" : "Claimed",
			 cold ? "Pool %s had no Ready idle pod: created pod %s"
			      : "Claimed warm pod %s of pool %s",
			 cold ? pool_key : pkey, cold ? pkey : pool_key);
	}
	atomic_fetch_add(&fc->api_requests, (unsigned)requests);
	return rc;
}

/* The pool a function claims from: spec.poolRef (namespace default: the function's), else
 * the default pool. */
static void pool_ref(struct function_controller *fc, const cJSON *fn, char out[320])
{
	const char *name = k8s_str(fn, "spec.poolRef.name");
	const char *ns = k8s_str(fn, "spec.poolRef.namespace");
	if (name && *name)
		snprintf(out, 320, "%s/%s", ns && *ns ? ns : k8s_str(fn, "metadata.namespace"),
			 name);
	else
		snprintf(out, 320, "%s", fc->default_pool);
}

/* Pods the spec asks for, before the idle timeout. */
static int desired_replicas(const cJSON *fn)
{
	if (!fn_runs_code(fn))
		return 0;
	const char *susp = k8s_str(fn, "spec.options.suspended");
	if (susp && strcmp(susp, "true") == 0)
		return 0;
	long long r = k8s_int(fn, "spec.replicas", 1);
	long long lo = k8s_int(fn, "spec.minReplicas", 0), hi = k8s_int(fn, "spec.maxReplicas", -1);
	if (r < lo)
		r = lo;
	if (hi >= 0 && r > hi)
		r = hi;
	return (int)r;
}

/* The idle timeout: 0 pods once spec.idleTimeoutSeconds passed since the last use, which is
 * status.lastUsedTime (the gRPC service's), the creation, or, asked only when those say it is
 * time, the newest Flight call a pod's worker counted (/stats: functions applied with kubectl
 * are called without the gRPC service). *last_used_s gets a newer use found that way (to be
 * written to the status), *wake_s when to look again. */
static int idle_expired(const cJSON *fn, const cJSON *pods, long long *last_used_s, int64_t *wake_s)
{
	long long idle = k8s_int(fn, "spec.idleTimeoutSeconds", 0);
	*last_used_s = 0;
	if (idle <= 0)
		return 0;
	int64_t last = parse_time(k8s_str(fn, "status.lastUsedTime"));
	int64_t created = parse_time(k8s_str(fn, "metadata.creationTimestamp"));
	int64_t now = (int64_t)time(NULL);
	if (created > last)
		last = created;
	if (now - last < idle) {
		*wake_s = last + idle - now + 1;
		return 0;
	}
	const cJSON *pod;
	cJSON_ArrayForEach(pod, pods)
	{
		const char *ip = k8s_str(pod, "status.podIP");
		long long used = 0;
		char err[256];
		if (ip && !k8s_get(pod, "metadata.deletionTimestamp") &&
		    specialize_last_use(ip, &used, err, sizeof(err)) == 0 && used > last)
			last = used;
	}
	if (now - last < idle) {
		*last_used_s = last;
		*wake_s = last + idle - now + 1;
		return 0;
	}
	return 1;
}

static int finalize(struct function_controller *fc, const char *key, const cJSON *fn,
		    const cJSON *pods)
{
	int left = 0, rc = 0;
	const cJSON *pod;
	cJSON_ArrayForEach(pod, pods)
	{
		if (!k8s_get(pod, "metadata.deletionTimestamp") && delete_pod(fc, key, pod) < 0)
			rc = -EAGAIN;
		left++;
	}
	if (rc == 0 && exp_pending(fc->exp, key, EXP_CREATE) == 0 && has_finalizer(fn)) {
		rc = set_finalizer(fc, fn, 0);
		if (rc == 0 && left)
			log_info(COMPONENT, "%s: deleted; its %d pod(s) are going", key, left);
	}
	return rc;
}

static int reconcile(struct function_controller *fc, const char *key)
{
	cJSON *fn = kube_informer_get(fc->functions, key);
	if (!fn) {
		exp_forget(fc->exp, key);
		state_drop(fc, key);
		return 0;
	}
	const char *ns = k8s_str(fn, "metadata.namespace");
	const char *uid = k8s_str(fn, "metadata.uid");
	cJSON *ns_obj = kube_informer_get(fc->namespaces, ns);
	cJSON *pods = NULL, *pool = NULL, *patch = NULL, *served = NULL;
	int rc = 0;
	int64_t wake_ms = RESYNC_MS, wake_s = 0;

	if (fc->ns_selector) {
		int match = 0;
		udf_selector_matches(fc->ns_selector, k8s_get(ns_obj, "metadata.labels"), &match);
		if (!match)
			goto out;
	}
	pods = kube_informer_by_label(fc->pods, UDF_LABEL_FUNCTION_UID, uid);
	if (!pods) {
		rc = -ENOMEM;
		goto out;
	}
	if (k8s_get(fn, "metadata.deletionTimestamp")) {
		rc = finalize(fc, key, fn, pods);
		goto out;
	}
	if (!has_finalizer(fn)) {
		/* Before any pod exists; the reconcile goes on (a query may be waiting) with the
		 * object it read, whose later writes are all to the status. */
		rc = set_finalizer(fc, fn, 1);
		if (rc < 0)
			goto out;
	}
	struct fn_state *st = state_get(fc, key, uid);
	if (!st) {
		rc = -ENOMEM;
		goto out;
	}
	int requests = 0;
	if (!st->token[0]) {
		rc = token_ensure(fc->kube, fn, st->token, sizeof(st->token), &requests);
		atomic_fetch_add(&fc->api_requests, (unsigned)requests);
		if (rc < 0) {
			log_warn(COMPONENT, "%s: token Secret: %s", key, kube_strerror(rc));
			goto out;
		}
		fn_event(fc, fn, 0, "TokenCreated", "The token is in Secret %s" FN_TOKEN_SUFFIX,
			 k8s_str(fn, "metadata.name"));
	}
	const char *tenant = fn_tenant(fn, ns_obj);
	char tenant_label[64], hash[FN_SPEC_HASH_HEX + 1], pkey[320], urls_hash[65] = "";
	/* From the cache's digest of the spec: the cache keeps no code (udf/function_pod.h). */
	if (fn_tenant_label(tenant, tenant_label) < 0 || fn_spec_hash(fn, hash) < 0 ||
	    fn_import_urls_hash(fn, urls_hash) < 0) {
		rc = -EINVAL;
		goto out;
	}
	int64_t gen = k8s_int(fn, "metadata.generation", 0);
	long long used_s = 0;
	int desired = desired_replicas(fn);
	if (desired > 0 && idle_expired(fn, pods, &used_s, &wake_s))
		desired = 0;
	if (wake_s > 0 && wake_s * 1000 < wake_ms)
		wake_ms = wake_s * 1000;

	/* A failure sticks for its spec until retried. */
	int sticky = st->fail_type[0] && st->fail_gen == gen && strcmp(st->fail_hash, hash) == 0 &&
		     strcmp(st->fail_urls, urls_hash) == 0 &&
		     mono_ms() - st->fail_ms < FAILURE_RETRY_MS;
	if (st->fail_type[0] && !sticky)
		st->fail_type[0] = '\0';

	/* Census. */
	struct census c = {0};
	const cJSON *pod;
	cJSON *current = cJSON_CreateArray(), *old = cJSON_CreateArray();
	if (!current || !old) {
		cJSON_Delete(current);
		cJSON_Delete(old);
		rc = -ENOMEM;
		goto out;
	}
	cJSON_ArrayForEach(pod, pods)
	{
		const char *pname = k8s_str(pod, "metadata.name");
		exp_observe(fc->exp, key, EXP_CREATE, pname);
		if (k8s_get(pod, "metadata.deletionTimestamp") ||
		    exp_has(fc->exp, key, EXP_DELETE, pname))
			continue;
		if (pod_dead(pod)) {
			c.lost++;
			log_warn(COMPONENT, "%s: pod %s/%s is lost (%s)", key,
				 k8s_str(pod, "metadata.namespace"), pname,
				 k8s_str(pod, "status.phase"));
			fn_event(fc, fn, 1, "PodLost", "Pod %s/%s ended (%s): replacing it",
				 k8s_str(pod, "metadata.namespace"), pname,
				 k8s_str(pod, "status.phase"));
			count(fc, "udf_function_pods_lost_total");
			delete_pod(fc, key, pod);
			continue;
		}
		const char *ph = k8s_annotation(pod, UDF_ANNO_SPEC_HASH);
		cJSON_AddItemReferenceToArray(ph && strcmp(ph, hash) == 0 ? current : old,
					      (cJSON *)pod);
	}
	cJSON_ArrayForEach(pod, current)
	{
		c.alive++;
		if (!sticky && desired > 0)
			drive_pod(fc, key, fn, pod, hash, tenant, st->token, &served, &c);
	}
	cJSON_ArrayForEach(pod, old)
	{
		char mk[400];
		struct pod_memo m;
		snprintf(mk, sizeof(mk), "%s/%s", k8s_str(pod, "metadata.namespace"),
			 k8s_str(pod, "metadata.name"));
		memo_get(fc, mk, &m);
		c.old_alive++;
		add_ip(&c, k8s_str(pod, "status.podIP"), pod_ready(pod));
		/* a claimed pod of an older spec that is Ready was specialized for it */
		if (pod_ready(pod)) {
			c.old_serving++;
			if (!c.serving && !c.endpoint_serving) {
				c.endpoint_ip = k8s_str(pod, "status.podIP");
				c.launch = k8s_annotation(pod, UDF_ANNO_LAUNCH_TYPE);
				c.endpoint_serving = 1;
			}
		}
	}

	/* A failure this round: record it, give the pods back (they ran the failing spec). */
	if (c.fail_type[0]) {
		snprintf(st->fail_type, sizeof(st->fail_type), "%s", c.fail_type);
		snprintf(st->fail_reason, sizeof(st->fail_reason), "%s", c.fail_reason);
		snprintf(st->fail_message, sizeof(st->fail_message), "%s", c.fail_message);
		snprintf(st->fail_hash, sizeof(st->fail_hash), "%s", hash);
		snprintf(st->fail_urls, sizeof(st->fail_urls), "%s", urls_hash);
		st->fail_gen = gen;
		st->fail_ms = mono_ms();
		sticky = 1;
		log_warn(COMPONENT, "%s: %s: %s", key, c.fail_reason, c.fail_message);
		fn_event(fc, fn, 1, c.fail_reason, "%s", c.fail_message);
		count(fc, "udf_function_specialize_failures_total{reason=\"%s\"}", c.fail_reason);
		cJSON_ArrayForEach(pod, current)
		{
			if (!c.serving)
				delete_pod(fc, key, pod);
		}
		if (!c.serving)
			c.alive = 0;
		c.poll = 0;
	}
	pthread_mutex_lock(&fc->mu);
	int vanished = strmap_del(&fc->vanished, key, NULL);
	pthread_mutex_unlock(&fc->mu);
	if (vanished && !k8s_get(fn, "metadata.deletionTimestamp")) {
		c.lost++;
		log_warn(COMPONENT, "%s: a pod of the function was deleted by someone else", key);
		fn_event(fc, fn, 1, "PodLost", "A pod of the function was deleted: replacing it");
		count(fc, "udf_function_pods_lost_total");
	}
	if (c.lost) {
		st->lost++;
		int shift = st->lost - 1 < 6 ? st->lost - 1 : 6;
		int64_t backoff = (int64_t)LOST_BASE_MS << shift;
		if (backoff > LOST_MAX_MS)
			backoff = LOST_MAX_MS;
		st->next_claim_ms = mono_ms() + backoff;
		if (backoff < wake_ms)
			wake_ms = backoff;
	} else if (c.serving) {
		st->lost = 0;
	}

	/* Pool. */
	char why_reason[48] = "", why_msg[768] = "";
	pool_ref(fc, fn, pkey);
	pool = kube_informer_get(fc->pools, pkey);
	int pending = exp_pending(fc->exp, key, EXP_CREATE);
	int have = c.alive + pending;
	if (desired > 0 && have < desired && !sticky) {
		int admitted = 0;
		if (!pool) {
			snprintf(why_reason, sizeof(why_reason), "PoolNotFound");
			snprintf(why_msg, sizeof(why_msg),
				 "UdfWarmPool %s does not exist (or this operator does not "
				 "reconcile it)",
				 pkey);
			if (30000 < wake_ms)
				wake_ms = 30000;
		} else if (udf_pool_admits_namespace(pool, ns_obj, &admitted), !admitted) {
			snprintf(why_reason, sizeof(why_reason), "PoolNotAllowed");
			snprintf(why_msg, sizeof(why_msg),
				 "UdfWarmPool %s does not admit namespace %s: its "
				 "functionNamespaceSelector does not select it",
				 pkey, ns);
			if (30000 < wake_ms)
				wake_ms = 30000;
		} else if (mono_ms() < st->next_claim_ms) {
			snprintf(why_reason, sizeof(why_reason), "PodLost");
			snprintf(why_msg, sizeof(why_msg),
				 "a pod of the function was lost; replacing it after a backoff");
		} else {
			for (int i = have; i < desired; i++) {
				cJSON *claimed = NULL;
				int grc =
				    get_pod(fc, key, fn, pool, tenant_label, hash, why_reason,
					    sizeof(why_reason), why_msg, sizeof(why_msg), &claimed);
				if (grc < 0) {
					if (!why_reason[0])
						rc = -EAGAIN;
					break;
				}
				/* A warm pod has its IP already: specialize it now rather than
				 * after the watch shows the claim (a query is waiting). */
				if (claimed && cJSON_AddItemToArray(current, claimed)) {
					c.alive++;
					drive_pod(fc, key, fn, claimed, hash, tenant, st->token,
						  &served, &c);
				} else {
					cJSON_Delete(claimed);
				}
			}
		}
	}
	/* Roll and scale down: old pods go once enough current ones serve; extra pods go. */
	if (c.serving >= desired || desired == 0) {
		cJSON_ArrayForEach(pod, old)
		{
			delete_pod(fc, key, pod);
		}
		c.old_alive = c.old_serving = 0;
		int extra = c.alive - desired;
		/* drop the ones not serving first: walk twice */
		for (int pass = 0; pass < 2 && extra > 0; pass++) {
			cJSON_ArrayForEach(pod, current)
			{
				if (extra <= 0)
					break;
				char mk[400];
				struct pod_memo m;
				snprintf(mk, sizeof(mk), "%s/%s",
					 k8s_str(pod, "metadata.namespace"),
					 k8s_str(pod, "metadata.name"));
				memo_get(fc, mk, &m);
				if (pass == 0 && m.serving)
					continue;
				if (pass == 1 && !m.serving)
					continue;
				if (delete_pod(fc, key, pod) == 0) {
					extra--;
					if (m.serving)
						c.serving--;
					c.alive--;
				}
			}
		}
		if (desired == 0) {
			c.endpoint_ip = NULL;
			c.serving = 0;
			c.n_ips = 0;
		}
	}
	if (fc->endpoint_service && service_endpoint(fc, key, fn, st, &c) < 0)
		rc = -EAGAIN;

	/* Status. */
	const cJSON *old_status = k8s_get(fn, "status");
	patch = cJSON_CreateObject();
	cJSON *s = cJSON_AddObjectToObject(patch, "status");
	cJSON *conds = cJSON_AddArrayToObject(s, "conditions");
	if (!conds) {
		rc = -ENOMEM;
		goto free_lists;
	}
	char endpoint[128], sel[128], tsecret[300];
	fn_token_secret_name(k8s_str(fn, "metadata.name"), tsecret, sizeof(tsecret));
	snprintf(sel, sizeof(sel), UDF_LABEL_FUNCTION_UID "=%s", uid);
	if (c.endpoint_ip) {
		snprintf(endpoint, sizeof(endpoint), "http://%s:%d", c.endpoint_ip, FN_FLIGHT_PORT);
		cJSON_AddStringToObject(s, "endpoint", endpoint);
	} else {
		cJSON_AddNullToObject(s, "endpoint");
	}
	cJSON_AddStringToObject(s, "tokenSecretName", tsecret);
	cJSON_AddNumberToObject(s, "replicas", c.alive + c.old_alive);
	cJSON_AddNumberToObject(s, "readyReplicas", c.serving + c.old_serving);
	cJSON_AddStringToObject(s, "selector", sel);
	cJSON_AddStringToObject(s, "specHash", hash);
	if (c.launch && (strcmp(c.launch, "warm") == 0 || strcmp(c.launch, "cold") == 0))
		cJSON_AddStringToObject(s, "launchType", c.launch);
	else
		cJSON_AddNullToObject(s, "launchType");
	cJSON_AddNumberToObject(s, "observedGeneration", (double)gen);
	char used[32];
	if (used_s) {
		udf_time_rfc3339(used_s, used);
		cJSON_AddStringToObject(s, "lastUsedTime", used);
	}

	char msg[1024];
	struct cond ready = {"Ready", "False", "Specializing", ""};
	static const char *const steps[] = {"ImportsFetched", "PackagesInstalled", "CodeLoaded",
					    "Specialized"};
	int serving = c.serving > 0 && c.serving >= (desired < 1 ? 1 : desired);
	if (c.serving > 0 && !sticky) {
		snprintf(msg, sizeof(msg), "%d of %d pod(s) serve Flight calls at %s", c.serving,
			 desired, c.endpoint_ip ? c.endpoint_ip : "?");
		ready = (struct cond){"Ready", "True", "Serving", msg};
	} else if (sticky) {
		ready = (struct cond){"Ready", "False", st->fail_reason, st->fail_message};
	} else if (desired == 0) {
		const char *why = !fn_runs_code(fn) ? "NothingToRun"
				  : k8s_int(fn, "spec.idleTimeoutSeconds", 0) > 0 &&
					  k8s_int(fn, "spec.replicas", 1) > 0
				      ? "ScaledToZero"
				      : "NoReplicas";
		snprintf(msg, sizeof(msg), "%s",
			 strcmp(why, "NothingToRun") == 0
			     ? "the function has no code yet: no pod runs it"
			 : strcmp(why, "ScaledToZero") == 0
			     ? "idle for spec.idleTimeoutSeconds: no pod; the next call starts one"
			     : "replicas is 0 (or the worker is suspended): no pod");
		ready = (struct cond){"Ready", "False", why, msg};
	} else if (c.old_serving) {
		/* The previous spec still serves: Ready, whatever holds the new pods up. */
		snprintf(msg, sizeof(msg),
			 "serving the previous spec while pods for spec %s start%s%s", hash,
			 why_reason[0] ? ": " : "", why_reason[0] ? why_msg : "");
		ready = (struct cond){"Ready", "True", "Rolling", msg};
	} else if (why_reason[0]) {
		ready = (struct cond){"Ready", "False", why_reason, why_msg};
	} else {
		int any_cold = 0;
		cJSON_ArrayForEach(pod, current)
		{
			const char *l = k8s_annotation(pod, UDF_ANNO_LAUNCH_TYPE);
			any_cold |= l && strcmp(l, "cold") == 0;
		}
		if (any_cold && !c.endpoint_serving) {
			snprintf(msg, sizeof(msg),
				 "pool %s had no Ready idle pod: a pod is being started for the "
				 "function",
				 pkey);
			ready = (struct cond){"Ready", "False", "PoolEmpty", msg};
		} else {
			snprintf(msg, sizeof(msg), "%d pod(s) claimed, being specialized", c.alive);
			ready = (struct cond){"Ready", "False", "Specializing", msg};
		}
	}
	(void)serving;
	cJSON_AddItemToArray(conds, condition(old_status, &ready, gen));
	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		struct cond sc = {steps[i], "Unknown", "InProgress", "not reached yet"};
		if (c.serving > 0 && !sticky)
			sc = (struct cond){steps[i], "True", "Done", "done"};
		else if (sticky && strcmp(st->fail_type, steps[i]) == 0)
			sc = (struct cond){steps[i], "False", st->fail_reason, st->fail_message};
		else if (desired == 0 && !sticky)
			continue;
		cJSON_AddItemToArray(conds, condition(old_status, &sc, gen));
	}
	if (used_s || !status_same(old_status, s)) {
		char *body = cJSON_PrintUnformatted(patch);
		if (body) {
			atomic_fetch_add(&fc->api_requests, 1);
			int prc =
			    kube_patch(fc->kube, &res_functions, ns, k8s_str(fn, "metadata.name"),
				       "status", KUBE_PATCH_MERGE, body, NULL, 0, NULL);
			if (prc < 0 && prc != KUBE_ENOTFOUND) {
				log_warn(COMPONENT, "%s: status: %s", key, kube_strerror(prc));
				rc = -EAGAIN;
			}
		}
		free(body);
		/* Every change of state is an Event; failures had theirs when they happened. */
		if (strcmp(st->last_ready_reason, ready.reason) != 0) {
			int failure = sticky && strcmp(ready.reason, st->fail_reason) == 0;
			int warning = strcmp(ready.reason, "PoolNotAllowed") == 0 ||
				      strcmp(ready.reason, "PoolNotFound") == 0 ||
				      strcmp(ready.reason, "PodLost") == 0 ||
				      strcmp(ready.reason, "PodCreateRejected") == 0 ||
				      strcmp(ready.reason, "RuntimeClassNotAllowed") == 0;
			if (!failure)
				fn_event(fc, fn, warning,
					 strcmp(ready.reason, "Serving") == 0 ? "Ready"
									      : ready.reason,
					 "%s", ready.message);
			snprintf(st->last_ready_reason, sizeof(st->last_ready_reason), "%s",
				 ready.reason);
		}
	}
	if (c.poll && c.poll < wake_ms)
		wake_ms = c.poll;
	enqueue_after(fc, key, wake_ms);
free_lists:
	cJSON_Delete(current);
	cJSON_Delete(old);
out:
	cJSON_Delete(served);
	cJSON_Delete(patch);
	cJSON_Delete(pool);
	cJSON_Delete(pods);
	cJSON_Delete(ns_obj);
	cJSON_Delete(fn);
	return rc;
}

/* Claimed pods of this operator's pools whose function is gone (or is another function of
 * that name now): deleted. Also forgets memos of pods no longer in the cache. */
static void sweep(struct function_controller *fc)
{
	cJSON *all = kube_informer_list(fc->pods);
	const cJSON *pod;
	struct strmap live;
	strmap_init(&live);
	cJSON_ArrayForEach(pod, all)
	{
		char pkey[400];
		const char *ns = k8s_str(pod, "metadata.namespace");
		const char *name = k8s_str(pod, "metadata.name");
		snprintf(pkey, sizeof(pkey), "%s/%s", ns, name);
		strmap_put(&live, pkey, NULL, NULL);
		const char *state = k8s_label(pod, UDF_LABEL_STATE);
		const char *fuid = k8s_label(pod, UDF_LABEL_FUNCTION_UID);
		const char *fkey = k8s_annotation(pod, UDF_ANNO_FUNCTION);
		const char *pool = k8s_label(pod, UDF_LABEL_POOL);
		char poolkey[320];
		if (!state || strcmp(state, UDF_STATE_CLAIMED) != 0 || !fuid || !pool ||
		    k8s_get(pod, "metadata.deletionTimestamp"))
			continue;
		snprintf(poolkey, sizeof(poolkey), "%s/%s", ns, pool);
		cJSON *p = kube_informer_get(fc->pools, poolkey);
		int ours = p != NULL;
		cJSON_Delete(p);
		if (!ours)
			continue; /* another operator's pool (tests share a cluster) */
		cJSON *fn = fkey ? kube_informer_get(fc->functions, fkey) : NULL;
		const char *uid = fn ? k8s_str(fn, "metadata.uid") : NULL;
		if (!uid || strcmp(uid, fuid) != 0) {
			log_info(COMPONENT, "sweep: pod %s belongs to function %s, which is gone",
				 pkey, fkey ? fkey : "?");
			delete_pod(fc, fkey ? fkey : SWEEP_KEY, pod);
		}
		cJSON_Delete(fn);
	}
	pthread_mutex_lock(&fc->mu);
	struct strmap_iter it;
	const char *k;
	void *v;
	cJSON *gone = cJSON_CreateArray();
	strmap_iter_init(&fc->memos, &it);
	while (strmap_iter_next(&fc->memos, &it, &k, &v))
		if (!strmap_has(&live, k))
			cJSON_AddItemToArray(gone, cJSON_CreateString(k));
	pthread_mutex_unlock(&fc->mu);
	const cJSON *g;
	cJSON_ArrayForEach(g, gone)
	{
		memo_drop(fc, g->valuestring);
	}
	cJSON_Delete(gone);
	strmap_free(&live, NULL);
	cJSON_Delete(all);
}

static int process(void *arg, const char *key)
{
	struct function_controller *fc = arg;

	if (!kube_informer_has_synced(fc->functions) || !kube_informer_has_synced(fc->pods) ||
	    !kube_informer_has_synced(fc->pools) || !kube_informer_has_synced(fc->namespaces)) {
		enqueue_after(fc, key, SYNC_WAIT_MS);
		return 0;
	}
	if (strcmp(key, SWEEP_KEY) == 0) {
		sweep(fc);
		enqueue_after(fc, key, SWEEP_MS);
		return 0;
	}
	int rc = reconcile(fc, key);
	atomic_fetch_add(rc ? &fc->reconciles_err : &fc->reconciles_ok, 1);
	return rc;
}

/* ---- lifecycle ---- */

/* "K=V,!K,K": matchLabels for K=V, matchExpressions DoesNotExist for !K and Exists for K. */
static int parse_selector(const char *text, cJSON **out)
{
	*out = NULL;
	if (!text || !*text)
		return 0;
	cJSON *sel = cJSON_CreateObject();
	cJSON *ml = cJSON_AddObjectToObject(sel, "matchLabels");
	cJSON *me = cJSON_AddArrayToObject(sel, "matchExpressions");
	char *copy = strdup(text);
	int rc = ml && me && copy ? 0 : -ENOMEM;
	char *save = NULL;
	for (char *tok = rc ? NULL : strtok_r(copy, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(tok, '=');
		if (eq) {
			if (eq == tok) {
				rc = -EINVAL;
				break;
			}
			*eq = '\0';
			cJSON_AddStringToObject(ml, tok, eq + 1);
			continue;
		}
		int absent = tok[0] == '!';
		const char *key = tok + absent;
		cJSON *req = cJSON_CreateObject();
		if (!*key || !req) {
			cJSON_Delete(req);
			rc = *key ? -ENOMEM : -EINVAL;
			break;
		}
		cJSON_AddStringToObject(req, "key", key);
		cJSON_AddStringToObject(req, "operator", absent ? "DoesNotExist" : "Exists");
		cJSON_AddItemToArray(me, req);
	}
	free(copy);
	if (rc < 0) {
		cJSON_Delete(sel);
		return rc;
	}
	*out = sel;
	return 0;
}

int function_controller_new(const struct function_controller_opts *o,
			    struct function_controller **out)
{
	struct function_controller *fc = calloc(1, sizeof(*fc));
	if (!fc)
		return -ENOMEM;
	fc->kube = o->kube;
	fc->functions = o->functions;
	fc->pools = o->pools;
	fc->pods = o->pods;
	fc->namespaces = o->namespaces;
	fc->workers = o->workers > 0 ? o->workers : 4;
	fc->endpoint_service = o->endpoint_service;
	fc->default_pool = strdup(o->default_pool ? o->default_pool : "udf-sandboxes/default");
	fc->worker_image = strdup(o->worker_image ? o->worker_image : POOL_DEFAULT_IMAGE);
	fc->allowed = strdup(o->allowed_runtime_classes ? o->allowed_runtime_classes
							: POOL_DEFAULT_RUNTIME_CLASS);
	pthread_mutex_init(&fc->mu, NULL);
	strmap_init(&fc->states);
	strmap_init(&fc->memos);
	strmap_init(&fc->keys);
	strmap_init(&fc->counters);
	strmap_init(&fc->vanished);
	int rc = fc->default_pool && fc->worker_image && fc->allowed ? 0 : -ENOMEM;
	if (rc == 0)
		rc = parse_selector(o->namespace_selector, &fc->ns_selector);
	if (rc == 0)
		rc = runner_init(&fc->run, COMPONENT, "UdfFunction controller", fc->workers,
				 process, fc);
	if (rc == 0)
		rc = exp_new(60000, &fc->exp);
	struct kube_handlers fh = {on_fn, on_fn_update, on_fn, fc};
	struct kube_handlers ph = {on_pod_add, on_pod_update, on_pod_delete, fc};
	if (rc == 0)
		rc = kube_informer_add_handlers(fc->functions, &fh);
	if (rc == 0)
		rc = kube_informer_add_handlers(fc->pods, &ph);
	if (rc < 0) {
		function_controller_free(fc);
		return rc;
	}
	*out = fc;
	return 0;
}

int function_controller_start(struct function_controller *fc)
{
	if (!runner_started(&fc->run)) {
		log_info(COMPONENT, "UdfFunction controller starting (%d workers, default pool %s)",
			 fc->workers, fc->default_pool);
		/* Functions seen before this replica led were enqueued then; those keys are
		 * still queued, so nothing is lost. */
		enqueue_after(fc, SWEEP_KEY, SWEEP_MS);
	}
	return runner_start(&fc->run);
}

void function_controller_pause(struct function_controller *fc)
{
	if (fc)
		runner_pause(&fc->run);
}

void function_controller_stop(struct function_controller *fc)
{
	if (fc)
		runner_stop(&fc->run);
}

static void free_key(void *v)
{
	OPENSSL_cleanse(v, sizeof(struct pool_key));
	free(v);
}

static void free_counter(void *v)
{
	struct counter *c = v;
	free(c->labels);
	free(c);
}

void function_controller_free(struct function_controller *fc)
{
	if (!fc)
		return;
	runner_destroy(&fc->run);
	exp_free(fc->exp);
	strmap_free(&fc->states, free_state);
	strmap_free(&fc->memos, free);
	strmap_free(&fc->keys, free_key);
	strmap_free(&fc->counters, free_counter);
	strmap_free(&fc->vanished, NULL);
	pthread_mutex_destroy(&fc->mu);
	cJSON_Delete(fc->ns_selector);
	free(fc->default_pool);
	free(fc->worker_image);
	free(fc->allowed);
	free(fc);
}

/* ---- metrics ---- */

static int append(char **buf, size_t *len, size_t *cap, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int append(char **buf, size_t *len, size_t *cap, const char *fmt, ...)
{
	for (;;) {
		va_list ap;
		va_start(ap, fmt);
		int n = vsnprintf(*buf ? *buf + *len : NULL, *buf ? *cap - *len : 0, fmt, ap);
		va_end(ap);
		if (n < 0)
			return -EINVAL;
		if (*buf && *len + (size_t)n < *cap) {
			*len += (size_t)n;
			return 0;
		}
		size_t nc = (*cap ? *cap : 4096);
		while (nc <= *len + (size_t)n)
			nc *= 2;
		char *nb = realloc(*buf, nc);
		if (!nb)
			return -ENOMEM;
		*buf = nb;
		*cap = nc;
	}
}

char *function_controller_metrics(struct function_controller *fc)
{
	char *b = NULL;
	size_t len = 0, cap = 0;
	int rc = append(&b, &len, &cap,
			"# HELP udf_controller_reconciles_total Reconciles by controller and "
			"result.\n"
			"udf_controller_reconciles_total{controller=\"udffunction\",result="
			"\"success\"} %llu\n"
			"udf_controller_reconciles_total{controller=\"udffunction\",result="
			"\"error\"} %llu\n"
			"# HELP udf_function_api_requests_total API requests the function "
			"controller sent.\n"
			"# TYPE udf_function_api_requests_total counter\n"
			"udf_function_api_requests_total %llu\n"
			"# HELP udf_function_claims_total Pods taken for functions, by pool and "
			"launch (warm: claimed idle pod; cold: created).\n"
			"# TYPE udf_function_claims_total counter\n"
			"# HELP udf_function_specialize_failures_total Failed specializations by "
			"reason.\n"
			"# TYPE udf_function_specialize_failures_total counter\n"
			"# HELP udf_function_pods_lost_total Claimed pods that died.\n"
			"# TYPE udf_function_pods_lost_total counter\n",
			(unsigned long long)atomic_load(&fc->reconciles_ok),
			(unsigned long long)atomic_load(&fc->reconciles_err),
			(unsigned long long)atomic_load(&fc->api_requests));
	pthread_mutex_lock(&fc->mu);
	struct strmap_iter it;
	const char *k;
	void *v;
	strmap_iter_init(&fc->counters, &it);
	while (rc == 0 && strmap_iter_next(&fc->counters, &it, &k, &v))
		rc = append(&b, &len, &cap, "%s %llu\n", k, ((struct counter *)v)->n);
	if (rc == 0)
		rc = append(&b, &len, &cap,
			    "# HELP udf_function_claim_to_ready_seconds From a pod's claim to its "
			    "worker serving the function.\n"
			    "# TYPE udf_function_claim_to_ready_seconds histogram\n");
	for (size_t i = 0; rc == 0 && i < NBUCKETS; i++)
		rc = append(&b, &len, &cap,
			    "udf_function_claim_to_ready_seconds_bucket{le=\"%g\"} %llu\n",
			    latency_buckets[i], fc->ready_le[i]);
	if (rc == 0)
		rc = append(&b, &len, &cap,
			    "udf_function_claim_to_ready_seconds_bucket{le=\"+Inf\"} %llu\n"
			    "udf_function_claim_to_ready_seconds_sum %.6f\n"
			    "udf_function_claim_to_ready_seconds_count %llu\n",
			    fc->ready_count, fc->ready_sum, fc->ready_count);
	pthread_mutex_unlock(&fc->mu);
	if (rc < 0) {
		free(b);
		return NULL;
	}
	return b;
}
