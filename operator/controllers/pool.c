#include "controllers/pool.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "controllers/expectations.h"
#include "controllers/runner.h"
#include "kube/strmap.h"
#include "kube/workqueue.h"
#include "udf/event.h"
#include "udf/labels.h"
#include "udf/pool_pod.h"
#include "util/log.h"

#define COMPONENT "pool"
/* Consecutive failed pods after which the pool reports ScaleUpBlocked. */
#define BLOCK_AFTER_FAILURES 3
/* Backoff between failed pods: 10 s doubling to 5 min. */
#define BACKOFF_BASE_MS 10000
#define BACKOFF_MAX_MS	300000
/* Events per pool: a burst of 10, then one every 6 s. */
#define EVENT_BURST	    10
#define EVENT_PER_S	    (1.0 / 6)
#define RESYNC_MS	    60000
#define SYNC_WAIT_MS	    200
#define DEFAULT_REPLICAS    2
#define DEFAULT_MAX_RATE    5
#define DEFAULT_INFLIGHT    10
#define DEFAULT_READINESS_S 120

static const struct kube_res res_pools = {"apis/udf.sandbox.io/v1alpha1", "udfwarmpools"};
static const struct kube_res res_pods = {"api/v1", "pods"};
static const struct kube_res res_secrets = {"api/v1", "secrets"};
static const struct kube_res res_events = {"api/v1", "events"};

/* Latency buckets of udf_controller_reconcile_duration_seconds. */
static const double latency_buckets[] = {0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10};
#define NBUCKETS (sizeof(latency_buckets) / sizeof(latency_buckets[0]))

/* What the controller remembers about one pool between reconciles. Only the worker that
 * holds the pool's key touches it, except the metrics fields, read under pc->mu. */
struct pool_state {
	int64_t generation;  /* the spec the backoff belongs to */
	int failures;	     /* consecutive failed pods */
	int64_t next_try_ms; /* no create before (monotonic) */
	int64_t last_failure_wall_s;
	char block_reason[64];
	char block_message[512];
	double tokens; /* refill pacing */
	int64_t tokens_ms;
	double ev_tokens; /* Event rate limit */
	int64_t ev_ms;
	char key_uid[64]; /* the pool uid the control key was read for */
	unsigned char key[POOL_KEY_BYTES];
	/* metrics, under pc->mu */
	uint64_t pods_created;
	int idle, ready;
};

struct pool_controller {
	struct kube_client *kube;
	struct kube_informer *pools, *pods;
	char *worker_image;
	char *allowed;
	int workers;
	struct runner run; /* its workers and workqueue */
	struct expectations *exp;

	pthread_mutex_t mu;
	struct strmap states; /* "ns/name" -> struct pool_state */

	/* metrics */
	atomic_ullong reconciles_ok, reconciles_err, adds, retries, api_requests;
	atomic_ullong latency_count, latency_us_sum;
	atomic_ullong latency_le[NBUCKETS];
};

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* An RFC 3339 timestamp of the API ("2026-11-29T20:40:29Z") in seconds; 0 when unreadable. */
static int64_t parse_time(const char *s)
{
	struct tm tm = {0};
	if (!s || !strptime(s, "%Y-%m-%dT%H:%M:%S", &tm))
		return 0;
	return (int64_t)timegm(&tm);
}

/* ---- queue ---- */

static void enqueue(struct pool_controller *pc, const char *key)
{
	if (wq_add(pc->run.wq, key) == 0)
		atomic_fetch_add(&pc->adds, 1);
}

static void enqueue_after(struct pool_controller *pc, const char *key, int64_t ms)
{
	if (ms < 0)
		ms = 0;
	if (wq_add_after(pc->run.wq, key, (uint64_t)ms * 1000) == 0)
		atomic_fetch_add(&pc->adds, 1);
}

static void on_pool(void *arg, const cJSON *obj)
{
	char key[320];
	if (kube_object_key(obj, key, sizeof(key)) == 0)
		enqueue(arg, key);
}

static void on_pool_update(void *arg, const cJSON *old, const cJSON *obj)
{
	(void)old;
	on_pool(arg, obj);
}

/* A pod event wakes its pool and settles the expectation it answers. */
static void pod_event(struct pool_controller *pc, const cJSON *pod, int deleted)
{
	const char *pool = k8s_label(pod, UDF_LABEL_POOL);
	const char *ns = k8s_str(pod, "metadata.namespace");
	const char *name = k8s_str(pod, "metadata.name");
	char key[320];
	if (!pool || !ns || !name)
		return;
	if (snprintf(key, sizeof(key), "%s/%s", ns, pool) >= (int)sizeof(key))
		return;
	exp_observe(pc->exp, key, EXP_CREATE, name);
	if (deleted || k8s_get(pod, "metadata.deletionTimestamp"))
		exp_observe(pc->exp, key, EXP_DELETE, name);
	enqueue(pc, key);
}

static void on_pod_add(void *arg, const cJSON *obj)
{
	pod_event(arg, obj, 0);
}

static void on_pod_update(void *arg, const cJSON *old, const cJSON *obj)
{
	pod_event(arg, obj, 0);
	/* A claim relabels a pod: the old pool must see it leave. */
	const char *was = k8s_label(old, UDF_LABEL_POOL);
	const char *is = k8s_label(obj, UDF_LABEL_POOL);
	if (was && (!is || strcmp(was, is) != 0))
		pod_event(arg, old, 0);
}

static void on_pod_delete(void *arg, const cJSON *obj)
{
	pod_event(arg, obj, 1);
}

/* ---- events ---- */

/* A core/v1 Event on the pool, unless the pool's Event budget is spent (a crash loop must
 * not flood the API). Never pass a token in fmt's arguments. */
__attribute__((format(printf, 6, 7))) static void
pool_event(struct pool_controller *pc, struct pool_state *st, const cJSON *pool, int warning,
	   const char *reason, const char *fmt, ...)
{
	int64_t now = mono_ms();
	st->ev_tokens += (double)(now - st->ev_ms) / 1000.0 * EVENT_PER_S;
	if (st->ev_tokens > EVENT_BURST)
		st->ev_tokens = EVENT_BURST;
	st->ev_ms = now;
	if (st->ev_tokens < 1)
		return;
	st->ev_tokens -= 1;

	char msg[1024];
	cJSON *ev = NULL;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (udf_event_object(pool, UDF_KIND_POOL, warning, reason, msg, (int64_t)time(NULL), &ev) <
	    0)
		return;
	const char *ns = k8s_str(pool, "metadata.namespace");
	atomic_fetch_add(&pc->api_requests, 1);
	int rc = kube_create(pc->kube, &res_events, ns, ev, NULL);
	if (rc < 0)
		log_debug(COMPONENT, "Event %s on %s/%s: %s", reason, ns,
			  k8s_str(pool, "metadata.name"), kube_strerror(rc));
	cJSON_Delete(ev);
}

/* ---- the pool's control key ---- */

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

/* Reads (or creates) the pool's key Secret; cached per pool uid. */
static int ensure_key(struct pool_controller *pc, struct pool_state *st, const cJSON *pool)
{
	const char *uid = k8s_str(pool, "metadata.uid");
	const char *ns = k8s_str(pool, "metadata.namespace");
	const char *name = k8s_str(pool, "metadata.name");
	char sname[POOL_POD_NAME_MAX + 1];
	cJSON *secret = NULL;
	int rc;

	if (strcmp(st->key_uid, uid) == 0)
		return 0;
	rc = pool_key_secret_name(name, sname, sizeof(sname));
	if (rc < 0)
		return rc;
	atomic_fetch_add(&pc->api_requests, 1);
	rc = kube_get_object(pc->kube, &res_secrets, ns, sname, &secret);
	if (rc == KUBE_ENOTFOUND) {
		cJSON *fresh = NULL;
		unsigned char key[POOL_KEY_BYTES];
		rc = pool_key_generate(key);
		if (rc == 0)
			rc = pool_key_secret_build(pool, key, &fresh);
		OPENSSL_cleanse(key, sizeof(key));
		if (rc == 0) {
			atomic_fetch_add(&pc->api_requests, 1);
			rc = kube_create(pc->kube, &res_secrets, ns, fresh, &secret);
		}
		cJSON_Delete(fresh);
		if (rc == KUBE_EALREADY_EXISTS) { /* another writer won: use theirs */
			atomic_fetch_add(&pc->api_requests, 1);
			rc = kube_get_object(pc->kube, &res_secrets, ns, sname, &secret);
		}
	}
	if (rc == 0 && !owned_by(secret, uid)) {
		/* An earlier pool of this name left it; the garbage collector takes it soon, and
		 * pods must not get tokens from a key that is about to go. */
		log_warn(COMPONENT,
			 "pool %s/%s: control key Secret %s belongs to an earlier pool "
			 "of this name; waiting for the garbage collector",
			 ns, name, sname);
		cJSON_Delete(secret);
		return -EAGAIN;
	}
	if (rc == 0)
		rc = pool_key_from_secret(secret, st->key);
	cJSON_Delete(secret);
	if (rc < 0) {
		log_warn(COMPONENT, "pool %s/%s: control key Secret %s: %s", ns, name, sname,
			 rc == -EINVAL ? "holds no 32-byte key" : kube_strerror(rc));
		return rc;
	}
	snprintf(st->key_uid, sizeof(st->key_uid), "%s", uid);
	return 0;
}

/* ---- reading pods ---- */

struct census {
	int alive;	   /* idle pods not terminating (ready or not) */
	int ready;	   /* ... Ready */
	int starting;	   /* ... scheduled, not Ready yet, within the readiness timeout */
	int unschedulable; /* ... the scheduler cannot place: held */
	int terminating;
	int64_t next_deadline_s; /* earliest readiness deadline of a starting pod (wall) */
	int64_t newest_ready_s;	 /* creation time of the newest Ready pod */
	cJSON *replace;		 /* [{pod, reason, message}] to delete and replace */
	cJSON *scale_down;	 /* alive pods, least useful first */
};

/* The worker container's waiting or terminated state, if any. */
static void container_state(const cJSON *pod, const char **waiting, const char **wmsg,
			    const char **terminated, long long *exit_code)
{
	*waiting = *wmsg = *terminated = NULL;
	*exit_code = 0;
	const cJSON *cs = cJSON_GetArrayItem(k8s_get(pod, "status.containerStatuses"), 0);
	if (!cs)
		return;
	*waiting = k8s_str(cs, "state.waiting.reason");
	*wmsg = k8s_str(cs, "state.waiting.message");
	*terminated = k8s_str(cs, "state.terminated.reason");
	*exit_code = k8s_int(cs, "state.terminated.exitCode", 0);
}

static int image_pull_failure(const char *waiting)
{
	static const char *const reasons[] = {"ErrImagePull", "ImagePullBackOff",
					      "InvalidImageName", "ErrImageNeverPull"};
	for (size_t i = 0; waiting && i < sizeof(reasons) / sizeof(reasons[0]); i++)
		if (strcmp(waiting, reasons[i]) == 0)
			return 1;
	return 0;
}

static int container_start_failure(const char *waiting)
{
	return waiting && (strcmp(waiting, "CreateContainerConfigError") == 0 ||
			   strcmp(waiting, "CreateContainerError") == 0 ||
			   strcmp(waiting, "RunContainerError") == 0);
}

static void add_replace(struct census *c, const cJSON *pod, const char *reason, const char *fmt,
			...) __attribute__((format(printf, 4, 5)));
static void add_replace(struct census *c, const cJSON *pod, const char *reason, const char *fmt,
			...)
{
	char msg[768];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	cJSON *r = cJSON_CreateObject();
	if (!r)
		return;
	cJSON_AddItemToObject(r, "pod", cJSON_Duplicate(pod, 1));
	cJSON_AddStringToObject(r, "reason", reason);
	cJSON_AddStringToObject(r, "message", msg);
	cJSON_AddItemToArray(c->replace, r);
}

/* Sorts the census' idle pods for scale-down: unschedulable, then starting, then Ready,
 * newest first within each. */
static int down_rank(const cJSON *pod)
{
	if (k8s_condition_is(pod, "Ready", "True", NULL))
		return 2;
	const char *why = NULL;
	if (k8s_condition_is(pod, "PodScheduled", "False", &why))
		return 0;
	return 1;
}

static int by_down_rank(const void *a, const void *b)
{
	const cJSON *pa = *(const cJSON *const *)a, *pb = *(const cJSON *const *)b;
	int ra = down_rank(pa), rb = down_rank(pb);
	if (ra != rb)
		return ra - rb;
	int64_t ta = parse_time(k8s_str(pa, "metadata.creationTimestamp"));
	int64_t tb = parse_time(k8s_str(pb, "metadata.creationTimestamp"));
	return ta > tb ? -1 : ta < tb;
}

/* Classifies the pool's idle pods from the cache. */
static void take_census(struct pool_controller *pc, const char *key, const cJSON *pool,
			const cJSON *pods, struct census *c)
{
	const char *uid = k8s_str(pool, "metadata.uid");
	const char *ns = k8s_str(pool, "metadata.namespace");
	const char *image = pool_pod_image(pool, pc->worker_image);
	int64_t timeout_s = k8s_int(pool, "spec.readinessTimeoutSeconds", DEFAULT_READINESS_S);
	int64_t now = (int64_t)time(NULL);
	const cJSON *pod;

	cJSON_ArrayForEach(pod, pods)
	{
		const char *pns = k8s_str(pod, "metadata.namespace");
		const char *name = k8s_str(pod, "metadata.name");
		const char *state = k8s_label(pod, UDF_LABEL_STATE);
		if (!pns || strcmp(pns, ns) != 0 || !name)
			continue;
		/* Only idle pods the pool controls; a claimed pod's controller is its function. */
		const cJSON *ref, *ctl = NULL;
		cJSON_ArrayForEach(ref, k8s_get(pod, "metadata.ownerReferences"))
		{
			if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(ref, "controller")))
				ctl = ref;
		}
		const char *ctl_uid = ctl ? k8s_str(ctl, "uid") : NULL;
		if (!ctl_uid || strcmp(ctl_uid, uid) != 0 || !state ||
		    strcmp(state, UDF_STATE_IDLE) != 0)
			continue;

		exp_observe(pc->exp, key, EXP_CREATE, name); /* the cache shows it */
		if (k8s_get(pod, "metadata.deletionTimestamp")) {
			exp_observe(pc->exp, key, EXP_DELETE, name);
			c->terminating++;
			continue;
		}
		/* Deleted by us, but the watch has not said so yet: already on its way out. */
		if (exp_has(pc->exp, key, EXP_DELETE, name)) {
			c->terminating++;
			continue;
		}
		const char *phase = k8s_str(pod, "status.phase");
		const char *waiting, *wmsg, *terminated, *why = NULL;
		long long exit_code;
		container_state(pod, &waiting, &wmsg, &terminated, &exit_code);
		int64_t created = parse_time(k8s_str(pod, "metadata.creationTimestamp"));

		if (phase && (strcmp(phase, "Failed") == 0 || strcmp(phase, "Succeeded") == 0)) {
			add_replace(c, pod, "PodFailed", "pod %s ended (%s%s%s, exit code %lld)",
				    name, phase, terminated ? ": " : "",
				    terminated ? terminated : "", exit_code);
		} else if (image_pull_failure(waiting)) {
			add_replace(c, pod, "ImagePullFailed",
				    "image %s cannot be pulled (%s: %.400s)", image, waiting,
				    wmsg ? wmsg : "");
		} else if (container_start_failure(waiting)) {
			add_replace(c, pod, "ContainerStartFailed",
				    "pod %s cannot start its container (%s: %.400s)", name, waiting,
				    wmsg ? wmsg : "");
		} else if (k8s_condition_is(pod, "Ready", "True", NULL)) {
			c->alive++;
			c->ready++;
			if (created > c->newest_ready_s)
				c->newest_ready_s = created;
			cJSON_AddItemToArray(c->scale_down, cJSON_Duplicate(pod, 1));
		} else if (k8s_condition_is(pod, "PodScheduled", "False", &why) && why &&
			   strcmp(why, "Unschedulable") == 0) {
			/* Held: recreating it would not make the cluster any bigger. */
			c->alive++;
			c->unschedulable++;
			cJSON_AddItemToArray(c->scale_down, cJSON_Duplicate(pod, 1));
		} else if (created && now - created >= timeout_s) {
			char detail[128] = "";
			if (waiting)
				snprintf(detail, sizeof(detail), " (waiting: %s)", waiting);
			add_replace(c, pod, "ReadinessTimeout", "pod %s not Ready after %llds%s",
				    name, (long long)timeout_s, detail);
		} else {
			c->alive++;
			c->starting++;
			int64_t deadline = created + timeout_s;
			if (!c->next_deadline_s || deadline < c->next_deadline_s)
				c->next_deadline_s = deadline;
			cJSON_AddItemToArray(c->scale_down, cJSON_Duplicate(pod, 1));
		}
	}
}

/* ---- failures and backoff ---- */

static void record_failure(struct pool_state *st, const char *reason, const char *message)
{
	st->failures++;
	int shift = st->failures - 1 < 10 ? st->failures - 1 : 10;
	int64_t backoff = (int64_t)BACKOFF_BASE_MS << shift;
	if (backoff > BACKOFF_MAX_MS)
		backoff = BACKOFF_MAX_MS;
	st->next_try_ms = mono_ms() + backoff;
	st->last_failure_wall_s = (int64_t)time(NULL);
	snprintf(st->block_reason, sizeof(st->block_reason), "%s", reason);
	snprintf(st->block_message, sizeof(st->block_message), "%s", message);
}

static void reset_failures(struct pool_state *st)
{
	st->failures = 0;
	st->next_try_ms = 0;
	st->block_reason[0] = st->block_message[0] = '\0';
}

/* ---- writes ---- */

/* Deletes one idle pod (uid precondition: never another pod of the same name). */
static int delete_pod(struct pool_controller *pc, const char *key, const cJSON *pod)
{
	const char *ns = k8s_str(pod, "metadata.namespace");
	const char *name = k8s_str(pod, "metadata.name");
	const char *uid = k8s_str(pod, "metadata.uid");
	int rc = exp_expect(pc->exp, key, EXP_DELETE, name);
	if (rc < 0)
		return rc;
	atomic_fetch_add(&pc->api_requests, 1);
	rc = kube_delete(pc->kube, &res_pods, ns, name, "Background", uid, NULL, NULL);
	if (rc == KUBE_ENOTFOUND || rc == KUBE_ECONFLICT)
		rc = 0; /* already gone (or replaced by another pod of the name) */
	if (rc < 0) {
		exp_observe(pc->exp, key, EXP_DELETE, name);
		log_warn(COMPONENT, "pool %s: delete pod %s: %s", key, name, kube_strerror(rc));
	}
	return rc;
}

/* Creates one pod. *rejected gets the API server's reason when it refused the pod itself
 * (admission: a missing RuntimeClass, Pod Security), as opposed to failing to answer. */
static int create_pod(struct pool_controller *pc, struct pool_state *st, const char *key,
		      const cJSON *pool, const char *runtime_class, char *rejected, size_t rlen)
{
	const char *pool_name = k8s_str(pool, "metadata.name");
	const char *ns = k8s_str(pool, "metadata.namespace");
	char name[POOL_POD_NAME_MAX + 1], token[POOL_TOKEN_HEX + 1], sha[65], path[1024];
	cJSON *pod = NULL;
	char *body = NULL;
	struct kube_response resp = {0};

	int rc = pool_pod_name(pool_name, name);
	if (rc == 0)
		rc = pool_pod_token(st->key, name, token);
	if (rc < 0)
		return rc;
	pool_pod_token_sha256(token, sha);
	OPENSSL_cleanse(token, sizeof(token));
	rc = pool_pod_build(pool, pool_pod_image(pool, pc->worker_image), runtime_class, name, sha,
			    &pod);
	if (rc < 0)
		return rc;
	body = cJSON_PrintUnformatted(pod);
	rc = body ? kube_path(path, sizeof(path), &res_pods, ns, NULL, NULL) : -ENOMEM;
	if (rc < 0)
		goto out;
	rc = exp_expect(pc->exp, key, EXP_CREATE, name);
	if (rc < 0)
		goto out;
	atomic_fetch_add(&pc->api_requests, 1);
	rc = kube_request(pc->kube, "POST", path, "application/json", body, strlen(body), &resp);
	if (rc == 0)
		rc = kube_error_from_status(resp.http_status, &resp.status);
	if (rc < 0) {
		exp_observe(pc->exp, key, EXP_CREATE, name);
		if (rc == KUBE_EFORBIDDEN || rc == KUBE_EINVALID || rc == KUBE_EBADREQUEST)
			snprintf(rejected, rlen, "%s", resp.status.message);
		log_warn(COMPONENT, "pool %s: create pod %s: %s%s%s", key, name, kube_strerror(rc),
			 resp.status.message[0] ? ": " : "", resp.status.message);
		goto out;
	}
	pthread_mutex_lock(&pc->mu);
	st->pods_created++;
	pthread_mutex_unlock(&pc->mu);
	log_info(COMPONENT, "pool %s: created pod %s", key, name);
	pool_event(pc, st, pool, 0, "PodCreated", "Created pod %s", name);
out:
	kube_response_free(&resp);
	free(body);
	cJSON_Delete(pod);
	return rc;
}

/* ---- status ---- */

static cJSON *condition(const cJSON *old_status, const char *type, int status, const char *reason,
			const char *message, int64_t generation)
{
	char now[32];
	const char *s = status ? "True" : "False";
	const char *ltt = NULL;
	const cJSON *c;
	cJSON_ArrayForEach(c, k8s_get(old_status, "conditions"))
	{
		const char *t = k8s_str(c, "type");
		const char *os = k8s_str(c, "status");
		if (t && os && strcmp(t, type) == 0 && strcmp(os, s) == 0)
			ltt = k8s_str(c, "lastTransitionTime");
	}
	udf_time_rfc3339((int64_t)time(NULL), now);
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "type", type);
	cJSON_AddStringToObject(o, "status", s);
	cJSON_AddNumberToObject(o, "observedGeneration", (double)generation);
	cJSON_AddStringToObject(o, "lastTransitionTime", ltt ? ltt : now);
	cJSON_AddStringToObject(o, "reason", reason);
	cJSON_AddStringToObject(o, "message", message);
	return o;
}

/* Does the status already say what the new one says (timestamps aside)? */
static int status_same(const cJSON *old, const cJSON *fresh)
{
	static const char *const scalars[] = {"replicas", "readyReplicas", "observedGeneration"};
	for (size_t i = 0; i < sizeof(scalars) / sizeof(scalars[0]); i++)
		if (k8s_int(old, scalars[i], -1) != k8s_int(fresh, scalars[i], -2))
			return 0;
	const char *a = k8s_str(old, "selector"), *b = k8s_str(fresh, "selector");
	if (!a || !b || strcmp(a, b) != 0)
		return 0;
	const cJSON *oc = k8s_get(old, "conditions"), *fc = k8s_get(fresh, "conditions");
	if (cJSON_GetArraySize(oc) != cJSON_GetArraySize(fc))
		return 0;
	const cJSON *f;
	cJSON_ArrayForEach(f, fc)
	{
		const cJSON *o;
		int found = 0;
		cJSON_ArrayForEach(o, oc)
		{
			static const char *const keys[] = {"type", "status", "reason", "message"};
			int same = 1;
			for (size_t i = 0; i < 4; i++) {
				const char *x = k8s_str(o, keys[i]), *y = k8s_str(f, keys[i]);
				same &= x && y && strcmp(x, y) == 0;
			}
			same &= k8s_int(o, "observedGeneration", -1) ==
				k8s_int(f, "observedGeneration", -2);
			found |= same;
		}
		if (!found)
			return 0;
	}
	return 1;
}

struct verdict {
	int blocked;
	const char *block_reason;
	const char *block_message;
};

/* Writes status through the status subresource with a merge patch: the counters the function
 * controller increments (warmHits, coldStarts) are not in the patch, so they stay. */
static int write_status(struct pool_controller *pc, const char *key, const cJSON *pool,
			const struct census *c, const struct verdict *v)
{
	const cJSON *old = k8s_get(pool, "status");
	int64_t gen = k8s_int(pool, "metadata.generation", 0);
	int replicas = (int)k8s_int(pool, "spec.replicas", DEFAULT_REPLICAS);
	char sel[600], msg[256];
	if (pool_pod_selector(k8s_str(pool, "metadata.name"), sel, sizeof(sel)) < 0)
		return -ENAMETOOLONG;

	cJSON *patch = cJSON_CreateObject();
	cJSON *st = cJSON_AddObjectToObject(patch, "status");
	cJSON *conds = cJSON_AddArrayToObject(st, "conditions");
	if (!conds) {
		cJSON_Delete(patch);
		return -ENOMEM;
	}
	cJSON_AddNumberToObject(st, "replicas", c->alive);
	cJSON_AddNumberToObject(st, "readyReplicas", c->ready);
	cJSON_AddStringToObject(st, "selector", sel);
	cJSON_AddNumberToObject(st, "observedGeneration", (double)gen);

	snprintf(msg, sizeof(msg), "%d of %d idle pods Ready", c->ready, replicas);
	cJSON_AddItemToArray(
	    conds,
	    condition(old, "Ready", c->ready >= replicas,
		      c->ready >= replicas ? "EnoughReadyPods" : "NotEnoughReadyPods", msg, gen));
	const char *preason;
	int progressing = 1;
	if (v->blocked) {
		progressing = 0;
		preason = "ScaleUpBlocked";
	} else if (c->alive + c->terminating > replicas) {
		preason = "ScalingDown";
	} else if (c->alive < replicas) {
		preason = c->unschedulable ? "PodsUnschedulable" : "CreatingPods";
	} else if (c->ready < replicas) {
		preason = c->unschedulable ? "PodsUnschedulable" : "WaitingForReadiness";
	} else {
		progressing = 0;
		preason = "Stable";
	}
	snprintf(msg, sizeof(msg),
		 "%d idle (%d Ready, %d starting, %d unschedulable), %d terminating, %d wanted",
		 c->alive, c->ready, c->starting, c->unschedulable, c->terminating, replicas);
	cJSON_AddItemToArray(conds, condition(old, "Progressing", progressing, preason, msg, gen));
	cJSON_AddItemToArray(
	    conds, condition(old, "ScaleUpBlocked", v->blocked,
			     v->blocked ? v->block_reason : "NotBlocked",
			     v->blocked ? v->block_message : "pods are created as needed", gen));
	int rc = 0;
	if (!status_same(old, st)) {
		char *body = cJSON_PrintUnformatted(patch);
		rc = body ? 0 : -ENOMEM;
		if (body) {
			atomic_fetch_add(&pc->api_requests, 1);
			rc = kube_patch(pc->kube, &res_pools, k8s_str(pool, "metadata.namespace"),
					k8s_str(pool, "metadata.name"), "status", KUBE_PATCH_MERGE,
					body, NULL, 0, NULL);
		}
		free(body);
		if (rc == KUBE_ENOTFOUND)
			rc = 0; /* deleted meanwhile */
		if (rc < 0)
			log_warn(COMPONENT, "pool %s: status: %s", key, kube_strerror(rc));
	}
	cJSON_Delete(patch);
	return rc;
}

/* ---- reconcile ---- */

static struct pool_state *state_get(struct pool_controller *pc, const char *key)
{
	pthread_mutex_lock(&pc->mu);
	struct pool_state *st = strmap_get(&pc->states, key);
	if (!st) {
		st = calloc(1, sizeof(*st));
		if (st && strmap_put(&pc->states, key, st, NULL) < 0) {
			free(st);
			st = NULL;
		}
		if (st) {
			st->ev_tokens = EVENT_BURST;
			st->ev_ms = mono_ms();
			st->tokens_ms = mono_ms();
			st->tokens = -1; /* full on first use: the bucket's size is the spec's */
		}
	}
	pthread_mutex_unlock(&pc->mu);
	return st;
}

static void state_drop(struct pool_controller *pc, const char *key)
{
	void *v = NULL;
	pthread_mutex_lock(&pc->mu);
	if (strmap_del(&pc->states, key, &v) && v) {
		OPENSSL_cleanse(((struct pool_state *)v)->key, POOL_KEY_BYTES);
		free(v);
	}
	pthread_mutex_unlock(&pc->mu);
}

/* Token bucket of spec.refill.maxPodsPerSecond (burst the same): how many creates now, and
 * when the next one is allowed. */
static int pace(struct pool_state *st, int rate, int want, int64_t *wait_ms)
{
	int64_t now = mono_ms();
	if (st->tokens < 0)
		st->tokens = rate;
	st->tokens += (double)(now - st->tokens_ms) / 1000.0 * rate;
	if (st->tokens > rate)
		st->tokens = rate;
	st->tokens_ms = now;
	int n = (int)floor(st->tokens);
	if (n > want)
		n = want;
	if (n < 0)
		n = 0;
	st->tokens -= n;
	*wait_ms =
	    n < want ? (int64_t)ceil((1.0 - (st->tokens - floor(st->tokens))) * 1000.0 / rate) : 0;
	return n;
}

static int reconcile_pool(struct pool_controller *pc, const char *key)
{
	if (!kube_informer_has_synced(pc->pools) || !kube_informer_has_synced(pc->pods)) {
		enqueue_after(pc, key, SYNC_WAIT_MS);
		return 0;
	}
	cJSON *pool = kube_informer_get(pc->pools, key);
	if (!pool) {
		/* Its pods go with it through their ownerReferences (garbage collector). */
		exp_forget(pc->exp, key);
		state_drop(pc, key);
		return 0;
	}
	if (k8s_get(pool, "metadata.deletionTimestamp")) {
		cJSON_Delete(pool);
		return 0;
	}
	struct pool_state *st = state_get(pc, key);
	if (!st) {
		cJSON_Delete(pool);
		return -ENOMEM;
	}
	const char *name = k8s_str(pool, "metadata.name");
	int64_t gen = k8s_int(pool, "metadata.generation", 0);
	int replicas = (int)k8s_int(pool, "spec.replicas", DEFAULT_REPLICAS);
	int rate = (int)k8s_int(pool, "spec.refill.maxPodsPerSecond", DEFAULT_MAX_RATE);
	int max_inflight = (int)k8s_int(pool, "spec.refill.maxInFlight", DEFAULT_INFLIGHT);
	int64_t wake_ms = RESYNC_MS;
	const char *runtime_class = NULL;
	char msg[512];
	int rc = 0;
	if (rate < 1)
		rate = 1;
	if (max_inflight < 1)
		max_inflight = 1;

	if (st->generation != gen) {
		/* A new spec deserves a fresh try: the old one's failures say nothing of it. */
		reset_failures(st);
		st->generation = gen;
	}

	struct census c = {.replace = cJSON_CreateArray(), .scale_down = cJSON_CreateArray()};
	cJSON *pods = kube_informer_by_label(pc->pods, UDF_LABEL_POOL, name);
	if (!c.replace || !c.scale_down || !pods) {
		rc = -ENOMEM;
		goto out;
	}
	take_census(pc, key, pool, pods, &c);
	if (c.ready && st->failures && c.newest_ready_s >= st->last_failure_wall_s) {
		log_info(COMPONENT, "pool %s: a new pod is Ready; backoff reset", key);
		reset_failures(st);
	}

	/* Replace failed pods: each one is a failure of the pool's spec. */
	const cJSON *r;
	cJSON_ArrayForEach(r, c.replace)
	{
		const cJSON *pod = cJSON_GetObjectItemCaseSensitive(r, "pod");
		const char *reason = k8s_str(r, "reason"), *message = k8s_str(r, "message");
		if (delete_pod(pc, key, pod) < 0) {
			rc = -EAGAIN;
			continue;
		}
		c.terminating++;
		int was_blocked = st->failures >= BLOCK_AFTER_FAILURES;
		record_failure(st, reason, message);
		log_warn(COMPONENT, "pool %s: replacing pod %s: %s", key,
			 k8s_str(pod, "metadata.name"), message);
		pool_event(pc, st, pool, 1, "PodReplaced", "%s", message);
		if (!was_blocked && st->failures >= BLOCK_AFTER_FAILURES) {
			log_warn(COMPONENT, "pool %s: scale-up blocked after %d failed pods: %s",
				 key, st->failures, message);
			pool_event(pc, st, pool, 1, "ScaleUpBlocked", "%s", message);
		}
	}

	struct verdict v = {0};
	if (pool_pod_runtime_class(pool, pc->allowed, &runtime_class) < 0) {
		snprintf(msg, sizeof(msg),
			 "runtimeClassName %s is not allowed by this operator "
			 "(--allowed-runtime-classes %s)",
			 runtime_class, pc->allowed);
		v = (struct verdict){1, "RuntimeClassNotAllowed", msg};
		if (strcmp(st->block_reason, "RuntimeClassNotAllowed") != 0) {
			snprintf(st->block_reason, sizeof(st->block_reason), "%s",
				 "RuntimeClassNotAllowed");
			pool_event(pc, st, pool, 1, "ScaleUpBlocked", "%s", msg);
			log_warn(COMPONENT, "pool %s: %s", key, msg);
		}
		goto status;
	}
	if (st->failures >= BLOCK_AFTER_FAILURES)
		v = (struct verdict){1, st->block_reason, st->block_message};

	int pending_creates = exp_pending(pc->exp, key, EXP_CREATE);
	int pending_deletes = exp_pending(pc->exp, key, EXP_DELETE);
	/* Everything that exists or will: terminating pods still hold their node's resources
	 * and a create in flight will show up. */
	int counted = c.alive + pending_creates + c.terminating;
	int inflight = c.starting + c.unschedulable + pending_creates;

	if (c.alive + pending_creates < replicas && counted < replicas) {
		int want = replicas - counted;
		if (want > max_inflight - inflight)
			want = max_inflight - inflight;
		if (st->failures > 0) {
			/* Backing off: one pod at a time, once the backoff has passed. */
			int64_t now = mono_ms();
			if (now < st->next_try_ms) {
				want = 0;
				if (st->next_try_ms - now < wake_ms)
					wake_ms = st->next_try_ms - now;
			} else if (want > 1 - inflight) {
				want = 1 - inflight;
			}
		}
		if (want > 0) {
			int64_t pace_ms = 0;
			int n = pace(st, rate, want, &pace_ms);
			if (pace_ms && pace_ms < wake_ms)
				wake_ms = pace_ms;
			if (n > 0 && ensure_key(pc, st, pool) < 0) {
				rc = -EAGAIN;
				n = 0;
			}
			for (int i = 0; i < n; i++) {
				char rejected[512] = "";
				int crc = create_pod(pc, st, key, pool, runtime_class, rejected,
						     sizeof(rejected));
				if (crc == 0)
					continue;
				if (rejected[0]) {
					/* The API server refused the pod itself: as good as a
					 * failed pod. */
					char m[700];
					snprintf(m, sizeof(m), "the API server rejects the pod: %s",
						 rejected);
					int was_blocked = st->failures >= BLOCK_AFTER_FAILURES;
					record_failure(st, "PodCreateRejected", m);
					if (!was_blocked && st->failures >= BLOCK_AFTER_FAILURES)
						pool_event(pc, st, pool, 1, "ScaleUpBlocked", "%s",
							   m);
					if (st->failures >= BLOCK_AFTER_FAILURES)
						v = (struct verdict){1, st->block_reason,
								     st->block_message};
					if (BACKOFF_BASE_MS < wake_ms)
						wake_ms = BACKOFF_BASE_MS;
				} else {
					rc = -EAGAIN;
				}
				break;
			}
		}
	} else if (c.alive > replicas && pending_creates == 0 && pending_deletes == 0) {
		int excess = c.alive - replicas;
		int n = cJSON_GetArraySize(c.scale_down);
		const cJSON **order = calloc((size_t)n + 1, sizeof(*order));
		if (!order) {
			rc = -ENOMEM;
			goto out;
		}
		int i = 0;
		const cJSON *pod;
		cJSON_ArrayForEach(pod, c.scale_down)
		{
			order[i++] = pod;
		}
		qsort(order, (size_t)n, sizeof(*order), by_down_rank);
		int deleted = 0;
		for (i = 0; i < n && deleted < excess; i++)
			if (delete_pod(pc, key, order[i]) == 0)
				deleted++;
		free(order);
		if (deleted) {
			log_info(COMPONENT, "pool %s: scaled down by %d to %d", key, deleted,
				 replicas);
			pool_event(pc, st, pool, 0, "PodsDeleted",
				   "Deleted %d idle pod(s): the pool keeps %d", deleted, replicas);
		}
		if (deleted < excess)
			rc = -EAGAIN;
	}
	if (c.next_deadline_s) {
		int64_t in_ms = (c.next_deadline_s - (int64_t)time(NULL)) * 1000 + 500;
		if (in_ms < wake_ms)
			wake_ms = in_ms;
	}

status:
	if (write_status(pc, key, pool, &c, &v) < 0 && rc == 0)
		rc = -EAGAIN;
	pthread_mutex_lock(&pc->mu);
	st->idle = c.alive;
	st->ready = c.ready;
	pthread_mutex_unlock(&pc->mu);
	enqueue_after(pc, key, wake_ms);
out:
	cJSON_Delete(c.replace);
	cJSON_Delete(c.scale_down);
	cJSON_Delete(pods);
	cJSON_Delete(pool);
	return rc;
}

static int process(void *arg, const char *key)
{
	struct pool_controller *pc = arg;
	struct timespec a, b;
	clock_gettime(CLOCK_MONOTONIC, &a);
	int rc = reconcile_pool(pc, key);
	clock_gettime(CLOCK_MONOTONIC, &b);
	double s = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
	atomic_fetch_add(&pc->latency_count, 1);
	atomic_fetch_add(&pc->latency_us_sum, (unsigned long long)(s * 1e6));
	for (size_t i = 0; i < NBUCKETS; i++)
		if (s <= latency_buckets[i])
			atomic_fetch_add(&pc->latency_le[i], 1);
	if (rc) {
		atomic_fetch_add(&pc->reconciles_err, 1);
		atomic_fetch_add(&pc->retries, 1);
	} else {
		atomic_fetch_add(&pc->reconciles_ok, 1);
	}
	return rc;
}

/* ---- lifecycle ---- */

int pool_controller_new(const struct pool_controller_opts *o, struct pool_controller **out)
{
	struct pool_controller *pc = calloc(1, sizeof(*pc));
	if (!pc)
		return -ENOMEM;
	pc->kube = o->kube;
	pc->pools = o->pools;
	pc->pods = o->pods;
	pc->workers = o->workers > 0 ? o->workers : 2;
	pc->worker_image = strdup(o->worker_image ? o->worker_image : POOL_DEFAULT_IMAGE);
	pc->allowed = strdup(o->allowed_runtime_classes ? o->allowed_runtime_classes
							: POOL_DEFAULT_RUNTIME_CLASS);
	pthread_mutex_init(&pc->mu, NULL);
	strmap_init(&pc->states);
	int rc = pc->worker_image && pc->allowed ? 0 : -ENOMEM;
	if (rc == 0)
		rc = runner_init(&pc->run, COMPONENT, "UdfWarmPool controller", pc->workers,
				 process, pc);
	if (rc == 0)
		rc = exp_new(0, &pc->exp);
	struct kube_handlers ph = {on_pool, on_pool_update, on_pool, pc};
	struct kube_handlers podh = {on_pod_add, on_pod_update, on_pod_delete, pc};
	if (rc == 0)
		rc = kube_informer_add_handlers(pc->pools, &ph);
	if (rc == 0)
		rc = kube_informer_add_handlers(pc->pods, &podh);
	if (rc < 0) {
		pool_controller_free(pc);
		return rc;
	}
	*out = pc;
	return 0;
}

int pool_controller_start(struct pool_controller *pc)
{
	if (!runner_started(&pc->run))
		log_info(
		    COMPONENT,
		    "UdfWarmPool controller starting (%d workers, image %s, runtime classes %s)",
		    pc->workers, pc->worker_image, pc->allowed);
	return runner_start(&pc->run);
}

void pool_controller_pause(struct pool_controller *pc)
{
	if (pc)
		runner_pause(&pc->run);
}

void pool_controller_stop(struct pool_controller *pc)
{
	if (pc)
		runner_stop(&pc->run);
}

static void free_state(void *v)
{
	struct pool_state *st = v;
	OPENSSL_cleanse(st->key, sizeof(st->key));
	free(st);
}

void pool_controller_free(struct pool_controller *pc)
{
	if (!pc)
		return;
	runner_destroy(&pc->run);
	exp_free(pc->exp);
	strmap_free(&pc->states, free_state);
	pthread_mutex_destroy(&pc->mu);
	free(pc->worker_image);
	free(pc->allowed);
	free(pc);
}

/* ---- metrics ---- */

struct text {
	char *buf;
	size_t len, cap;
	int oom;
};

__attribute__((format(printf, 2, 3))) static void put(struct text *t, const char *fmt, ...)
{
	va_list ap;
	for (;;) {
		size_t room = t->cap - t->len;
		va_start(ap, fmt);
		int n = t->buf ? vsnprintf(t->buf + t->len, room, fmt, ap) : -1;
		va_end(ap);
		if (n >= 0 && (size_t)n < room) {
			t->len += (size_t)n;
			return;
		}
		size_t cap = t->cap ? t->cap * 2 : 4096;
		while (n >= 0 && cap - t->len <= (size_t)n)
			cap *= 2;
		char *nb = realloc(t->buf, cap);
		if (!nb) {
			t->oom = 1;
			return;
		}
		t->buf = nb;
		t->cap = cap;
		if (t->oom)
			return;
	}
}

char *pool_controller_metrics(struct pool_controller *pc)
{
	struct text t = {0};
	const char *c = "controller=\"udfwarmpool\"";
	put(&t,
	    "# HELP udf_controller_reconciles_total Reconciles by controller and result.\n"
	    "# TYPE udf_controller_reconciles_total counter\n"
	    "udf_controller_reconciles_total{%s,result=\"success\"} %llu\n"
	    "udf_controller_reconciles_total{%s,result=\"error\"} %llu\n",
	    c, (unsigned long long)atomic_load(&pc->reconciles_ok), c,
	    (unsigned long long)atomic_load(&pc->reconciles_err));
	put(&t, "# HELP udf_controller_reconcile_duration_seconds Time per reconcile.\n"
		"# TYPE udf_controller_reconcile_duration_seconds histogram\n");
	for (size_t i = 0; i < NBUCKETS; i++)
		put(&t, "udf_controller_reconcile_duration_seconds_bucket{%s,le=\"%g\"} %llu\n", c,
		    latency_buckets[i], (unsigned long long)atomic_load(&pc->latency_le[i]));
	unsigned long long n = atomic_load(&pc->latency_count);
	put(&t,
	    "udf_controller_reconcile_duration_seconds_bucket{%s,le=\"+Inf\"} %llu\n"
	    "udf_controller_reconcile_duration_seconds_sum{%s} %.6f\n"
	    "udf_controller_reconcile_duration_seconds_count{%s} %llu\n",
	    c, n, c, (double)atomic_load(&pc->latency_us_sum) / 1e6, c, n);
	put(&t,
	    "# HELP workqueue_depth Current depth of the workqueue.\n"
	    "# TYPE workqueue_depth gauge\n"
	    "workqueue_depth{name=\"udfwarmpool\"} %d\n"
	    "# HELP workqueue_adds_total Total number of adds handled by the workqueue.\n"
	    "# TYPE workqueue_adds_total counter\n"
	    "workqueue_adds_total{name=\"udfwarmpool\"} %llu\n"
	    "# HELP workqueue_retries_total Total number of retries handled by the workqueue.\n"
	    "# TYPE workqueue_retries_total counter\n"
	    "workqueue_retries_total{name=\"udfwarmpool\"} %llu\n"
	    "# HELP udf_pool_api_requests_total API requests the pool controller sent.\n"
	    "# TYPE udf_pool_api_requests_total counter\n"
	    "udf_pool_api_requests_total %llu\n",
	    wq_len(pc->run.wq), (unsigned long long)atomic_load(&pc->adds),
	    (unsigned long long)atomic_load(&pc->retries),
	    (unsigned long long)atomic_load(&pc->api_requests));

	put(&t, "# HELP udf_pool_pods_created_total Sandbox pods created, per pool.\n"
		"# TYPE udf_pool_pods_created_total counter\n");
	struct strmap_iter it;
	const char *key;
	void *v;
	pthread_mutex_lock(&pc->mu);
	strmap_iter_init(&pc->states, &it);
	while (strmap_iter_next(&pc->states, &it, &key, &v)) {
		const char *slash = strchr(key, '/');
		struct pool_state *st = v;
		put(&t, "udf_pool_pods_created_total{namespace=\"%.*s\",pool=\"%s\"} %llu\n",
		    (int)(slash - key), key, slash + 1, (unsigned long long)st->pods_created);
	}
	put(&t, "# HELP udf_pool_idle_pods Idle pods of a pool, Ready or not.\n"
		"# TYPE udf_pool_idle_pods gauge\n");
	strmap_iter_init(&pc->states, &it);
	while (strmap_iter_next(&pc->states, &it, &key, &v)) {
		const char *slash = strchr(key, '/');
		put(&t, "udf_pool_idle_pods{namespace=\"%.*s\",pool=\"%s\"} %d\n",
		    (int)(slash - key), key, slash + 1, ((struct pool_state *)v)->idle);
	}
	put(&t, "# HELP udf_pool_ready_pods Idle pods of a pool that are Ready.\n"
		"# TYPE udf_pool_ready_pods gauge\n");
	strmap_iter_init(&pc->states, &it);
	while (strmap_iter_next(&pc->states, &it, &key, &v)) {
		const char *slash = strchr(key, '/');
		put(&t, "udf_pool_ready_pods{namespace=\"%.*s\",pool=\"%s\"} %d\n",
		    (int)(slash - key), key, slash + 1, ((struct pool_state *)v)->ready);
	}
	pthread_mutex_unlock(&pc->mu);
	if (t.oom) {
		free(t.buf);
		return NULL;
	}
	return t.buf;
}
