/* kube/leader: Lease-based leader election (client-go's LeaderElector, in C). */
#include "kube/leader.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "util/log.h"

static const struct kube_res leases = {"apis/coordination.k8s.io/v1", "leases"};

struct kube_leader {
	struct kube_client *c;
	char *ns, *name, *identity;
	int lease_s, renew_deadline_s, retry_s;
	void (*on_started)(void *);
	void (*on_stopped)(void *);
	void (*on_new_leader)(void *, const char *);
	void *arg;

	pthread_t thread;
	int started;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int stop;
	atomic_int leading;

	/* elector thread only */
	char *observed;	      /* the last Lease spec seen, serialized */
	uint64_t observed_ms; /* monotonic time it was first seen */
	char *observed_rv;
	char *last_holder;
	int held_by_me;
};

static uint64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* metav1.MicroTime: RFC 3339 with microseconds, UTC. */
static void micro_time(char *buf, size_t len)
{
	struct timespec ts;
	struct tm tm;
	char base[32];
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf, len, "%s.%06ldZ", base, ts.tv_nsec / 1000);
}

int kube_leader_new(struct kube_client *c, const struct kube_leader_opts *o,
		    struct kube_leader **out)
{
	struct kube_leader *le;
	*out = NULL;
	if (!o->ns || !o->name)
		return -EINVAL;
	le = calloc(1, sizeof(*le));
	if (!le)
		return -ENOMEM;
	le->c = c;
	le->ns = strdup(o->ns);
	le->name = strdup(o->name);
	if (o->identity) {
		le->identity = strdup(o->identity);
	} else {
		char host[256] = "unknown";
		unsigned int r = 0;
		gethostname(host, sizeof(host) - 1);
		if (getrandom(&r, sizeof(r), 0) != sizeof(r))
			r = (unsigned int)mono_ms() ^ (unsigned int)getpid();
		if (asprintf(&le->identity, "%s_%08x", host, r) < 0)
			le->identity = NULL;
	}
	if (!le->ns || !le->name || !le->identity) {
		kube_leader_free(le);
		return -ENOMEM;
	}
	le->lease_s = o->lease_s > 0 ? o->lease_s : 15;
	le->renew_deadline_s = o->renew_deadline_s > 0 ? o->renew_deadline_s : 10;
	le->retry_s = o->retry_s > 0 ? o->retry_s : 2;
	le->on_started = o->on_started_leading;
	le->on_stopped = o->on_stopped_leading;
	le->on_new_leader = o->on_new_leader;
	le->arg = o->arg;
	pthread_mutex_init(&le->mu, NULL);
	{
		pthread_condattr_t ca;
		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&le->cv, &ca);
		pthread_condattr_destroy(&ca);
	}
	*out = le;
	return 0;
}

/* The part of the Lease that changes when its holder acts, for change detection. */
static char *record_of(const cJSON *lease)
{
	const cJSON *spec = cJSON_GetObjectItemCaseSensitive(lease, "spec");
	return spec ? cJSON_PrintUnformatted(spec) : strdup("{}");
}

static void observe(struct kube_leader *le, const cJSON *lease)
{
	char *rec = record_of(lease);
	const char *holder = k8s_str(lease, "spec.holderIdentity");
	const char *rv = k8s_str(lease, "metadata.resourceVersion");

	if (!rec)
		return;
	if (!le->observed || strcmp(rec, le->observed) != 0) {
		free(le->observed);
		le->observed = rec;
		le->observed_ms = mono_ms();
	} else {
		free(rec);
	}
	free(le->observed_rv);
	le->observed_rv = rv ? strdup(rv) : NULL;
	if (holder && *holder && (!le->last_holder || strcmp(holder, le->last_holder) != 0)) {
		free(le->last_holder);
		le->last_holder = strdup(holder);
		log_info("kube", "lease %s/%s: leader is now %s", le->ns, le->name, holder);
		if (le->on_new_leader)
			le->on_new_leader(le->arg, holder);
	}
}

/* Returns 1 when this process holds the lease after the call, 0 when another does, or a
 * negative error. */
static int try_acquire_or_renew(struct kube_leader *le)
{
	cJSON *lease = NULL, *out = NULL, *spec;
	char now[40];
	const char *holder;
	int rc, mine;
	long long transitions;

	micro_time(now, sizeof(now));
	rc = kube_get_object(le->c, &leases, le->ns, le->name, &lease);
	if (rc == KUBE_ENOTFOUND) {
		cJSON *obj = cJSON_CreateObject(), *meta, *sp;
		if (!obj)
			return -ENOMEM;
		cJSON_AddStringToObject(obj, "apiVersion", "coordination.k8s.io/v1");
		cJSON_AddStringToObject(obj, "kind", "Lease");
		meta = cJSON_AddObjectToObject(obj, "metadata");
		cJSON_AddStringToObject(meta, "name", le->name);
		cJSON_AddStringToObject(meta, "namespace", le->ns);
		sp = cJSON_AddObjectToObject(obj, "spec");
		cJSON_AddStringToObject(sp, "holderIdentity", le->identity);
		cJSON_AddNumberToObject(sp, "leaseDurationSeconds", le->lease_s);
		cJSON_AddStringToObject(sp, "acquireTime", now);
		cJSON_AddStringToObject(sp, "renewTime", now);
		cJSON_AddNumberToObject(sp, "leaseTransitions", 0);
		rc = kube_create(le->c, &leases, le->ns, obj, &out);
		cJSON_Delete(obj);
		if (rc)
			return rc;
		observe(le, out);
		cJSON_Delete(out);
		return 1;
	}
	if (rc)
		return rc;
	observe(le, lease);
	holder = k8s_str(lease, "spec.holderIdentity");
	mine = holder && strcmp(holder, le->identity) == 0;
	if (holder && *holder && !mine &&
	    mono_ms() < le->observed_ms + (uint64_t)le->lease_s * 1000) {
		cJSON_Delete(lease);
		return 0; /* held by another and not expired by our own clock */
	}
	spec = cJSON_GetObjectItemCaseSensitive(lease, "spec");
	if (!spec)
		spec = cJSON_AddObjectToObject(lease, "spec");
	transitions = k8s_int(lease, "spec.leaseTransitions", 0);
	rc = -ENOMEM;
	if (!spec)
		goto out;
	cJSON_DeleteItemFromObjectCaseSensitive(spec, "holderIdentity");
	cJSON_DeleteItemFromObjectCaseSensitive(spec, "leaseDurationSeconds");
	cJSON_DeleteItemFromObjectCaseSensitive(spec, "renewTime");
	cJSON_AddStringToObject(spec, "holderIdentity", le->identity);
	cJSON_AddNumberToObject(spec, "leaseDurationSeconds", le->lease_s);
	cJSON_AddStringToObject(spec, "renewTime", now);
	if (!mine) {
		cJSON_DeleteItemFromObjectCaseSensitive(spec, "acquireTime");
		cJSON_DeleteItemFromObjectCaseSensitive(spec, "leaseTransitions");
		cJSON_AddStringToObject(spec, "acquireTime", now);
		cJSON_AddNumberToObject(spec, "leaseTransitions", (double)transitions + 1);
	}
	/* metadata.resourceVersion stays: the update is conditional, a race loses with 409. */
	rc = kube_update(le->c, &leases, le->ns, lease, NULL, &out);
	if (rc == 0) {
		observe(le, out);
		rc = 1;
	}
out:
	cJSON_Delete(lease);
	cJSON_Delete(out);
	return rc;
}

static void release(struct kube_leader *le)
{
	cJSON *lease = NULL, *spec;
	char now[40];
	int rc = kube_get_object(le->c, &leases, le->ns, le->name, &lease);
	const char *holder;

	if (rc) {
		log_warn("kube", "lease %s/%s: release: %s", le->ns, le->name, kube_strerror(rc));
		return;
	}
	holder = k8s_str(lease, "spec.holderIdentity");
	if (!holder || strcmp(holder, le->identity) != 0) {
		cJSON_Delete(lease);
		return;
	}
	micro_time(now, sizeof(now));
	spec = cJSON_GetObjectItemCaseSensitive(lease, "spec");
	cJSON_DeleteItemFromObjectCaseSensitive(spec, "holderIdentity");
	cJSON_DeleteItemFromObjectCaseSensitive(spec, "leaseDurationSeconds");
	cJSON_DeleteItemFromObjectCaseSensitive(spec, "renewTime");
	cJSON_DeleteItemFromObjectCaseSensitive(spec, "acquireTime");
	cJSON_AddStringToObject(spec, "holderIdentity", "");
	cJSON_AddNumberToObject(spec, "leaseDurationSeconds", 1);
	cJSON_AddStringToObject(spec, "renewTime", now);
	cJSON_AddStringToObject(spec, "acquireTime", now);
	rc = kube_update(le->c, &leases, le->ns, lease, NULL, NULL);
	if (rc)
		log_warn("kube", "lease %s/%s: release: %s", le->ns, le->name, kube_strerror(rc));
	else
		log_info("kube", "lease %s/%s: released by %s", le->ns, le->name, le->identity);
	cJSON_Delete(lease);
}

/* Sleeps until deadline (monotonic ms) or stop; returns 1 when stopping. */
static int sleep_until(struct kube_leader *le, uint64_t deadline)
{
	struct timespec ts;
	int stop;
	ts.tv_sec = (time_t)(deadline / 1000);
	ts.tv_nsec = (long)(deadline % 1000) * 1000000;
	pthread_mutex_lock(&le->mu);
	while (!le->stop && mono_ms() < deadline)
		pthread_cond_timedwait(&le->cv, &le->mu, &ts);
	stop = le->stop;
	pthread_mutex_unlock(&le->mu);
	return stop;
}

static void *elector_main(void *arg)
{
	struct kube_leader *le = arg;
	uint64_t last_renew = 0, next;
	int rc;

	/* One attempt may not outlive half the renew deadline, so a server that hangs rather
	 * than refuses still makes the leader step down in time. */
	kube_request_timeout_ms((long)le->renew_deadline_s * 500);
	for (;;) {
		next = mono_ms() + (uint64_t)le->retry_s * 1000;
		rc = try_acquire_or_renew(le);
		if (rc == 1) {
			last_renew = mono_ms();
			if (!atomic_load(&le->leading)) {
				atomic_store(&le->leading, 1);
				log_info("kube", "lease %s/%s: %s started leading", le->ns,
					 le->name, le->identity);
				if (le->on_started)
					le->on_started(le->arg);
			}
		} else if (atomic_load(&le->leading)) {
			if (rc < 0)
				log_warn("kube", "lease %s/%s: renew failed: %s", le->ns, le->name,
					 kube_strerror(rc));
			if (rc == 0 ||
			    mono_ms() >= last_renew + (uint64_t)le->renew_deadline_s * 1000) {
				atomic_store(&le->leading, 0);
				log_error("kube", "lease %s/%s: %s lost the lease (%s)", le->ns,
					  le->name, le->identity,
					  rc == 0 ? "taken by another" : "renew deadline passed");
				if (le->on_stopped) {
					le->on_stopped(le->arg);
				} else {
					log_error("kube", "exiting: no longer the leader");
					exit(1);
				}
			}
		}
		if (sleep_until(le, next))
			break;
	}
	if (atomic_load(&le->leading)) {
		release(le);
		atomic_store(&le->leading, 0);
	}
	return NULL;
}

int kube_leader_start(struct kube_leader *le)
{
	int rc;
	if (le->started)
		return -EALREADY;
	rc = pthread_create(&le->thread, NULL, elector_main, le);
	if (rc)
		return -rc;
	le->started = 1;
	return 0;
}

int kube_leader_is_leader(struct kube_leader *le)
{
	return atomic_load(&le->leading);
}

const char *kube_leader_identity(const struct kube_leader *le)
{
	return le->identity;
}

void kube_leader_stop(struct kube_leader *le)
{
	if (!le->started)
		return;
	pthread_mutex_lock(&le->mu);
	le->stop = 1;
	pthread_cond_broadcast(&le->cv);
	pthread_mutex_unlock(&le->mu);
	pthread_join(le->thread, NULL);
	le->started = 0;
}

void kube_leader_free(struct kube_leader *le)
{
	if (!le)
		return;
	kube_leader_stop(le);
	free(le->ns);
	free(le->name);
	free(le->identity);
	free(le->observed);
	free(le->observed_rv);
	free(le->last_holder);
	pthread_mutex_destroy(&le->mu);
	pthread_cond_destroy(&le->cv);
	free(le);
}
