#include "api/gc.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kube/informer.h"
#include "kube/rest.h"
#include "udf/labels.h"
#include "util/log.h"

static const struct kube_res res_functions = {"apis/udf.sandbox.io/v1alpha1", "udffunctions"};

struct gc {
	struct kube_client *kube;
	struct kube_informer *inf;
	int64_t ttl_s;
	atomic_int *leading;
	pthread_t thread;
	int started;
	int stopping;
	pthread_mutex_t lock;
	pthread_cond_t cond;
};

/* "2026-01-02T03:04:05Z" (fractions allowed) into *out. 0 or -EINVAL. */
static int parse_time(const char *s, time_t *out)
{
	struct tm tm = {0};
	const char *end = s ? strptime(s, "%Y-%m-%dT%H:%M:%S", &tm) : NULL;
	if (!end)
		return -EINVAL;
	*out = timegm(&tm);
	return 0;
}

int gc_expired(const void *p, int64_t ttl_s, time_t now)
{
	const cJSON *obj = p;
	const char *mgr = k8s_label(obj, UDF_LABEL_MANAGED_BY);
	time_t at;
	const char *ck = k8s_annotation(obj, UDF_ANNO_CONTENT_KEY);
	if (!mgr || strcmp(mgr, UDF_MANAGER) != 0 || k8s_get(obj, "metadata.deletionTimestamp"))
		return 0;
	if (!ck || !*ck)
		return 0; /* a bare worker record (CREATE WORKER without code): Databend's own */
	const char *used = k8s_str(obj, "status.lastUsedTime");
	if (parse_time(used ? used : k8s_str(obj, "metadata.creationTimestamp"), &at) < 0)
		return 0; /* no time to judge by: keep it */
	return (int64_t)(now - at) >= ttl_s;
}

static void sweep(struct gc *g)
{
	cJSON *all = kube_informer_list(g->inf);
	const cJSON *it;
	time_t now = time(NULL);
	cJSON_ArrayForEach(it, all)
	{
		if (!gc_expired(it, g->ttl_s, now))
			continue;
		const char *ns = k8s_str(it, "metadata.namespace");
		const char *name = k8s_str(it, "metadata.name");
		/* The uid as a precondition: a function recreated meanwhile is not this one. */
		int rc = kube_delete(g->kube, &res_functions, ns, name, "Background",
				     k8s_str(it, "metadata.uid"), NULL, NULL);
		if (rc == 0)
			log_info("gc",
				 "deleted UdfFunction %s/%s: unused for %llds (--function-ttl)", ns,
				 name, (long long)g->ttl_s);
		else if (rc != KUBE_ENOTFOUND && rc != KUBE_ECONFLICT)
			log_warn("gc", "cannot delete unused UdfFunction %s/%s: %s", ns, name,
				 kube_strerror(rc));
	}
	cJSON_Delete(all);
}

static void *run(void *arg)
{
	struct gc *g = arg;
	int64_t every = g->ttl_s / 4;
	if (every < 1)
		every = 1;
	if (every > 60)
		every = 60;
	pthread_mutex_lock(&g->lock);
	while (!g->stopping) {
		struct timespec at;
		clock_gettime(CLOCK_REALTIME, &at);
		at.tv_sec += every;
		pthread_cond_timedwait(&g->cond, &g->lock, &at);
		if (g->stopping)
			break;
		pthread_mutex_unlock(&g->lock);
		if ((!g->leading || atomic_load(g->leading)) && kube_informer_has_synced(g->inf))
			sweep(g);
		pthread_mutex_lock(&g->lock);
	}
	pthread_mutex_unlock(&g->lock);
	return NULL;
}

int gc_new(struct kube_client *kube, struct kube_informer *inf_functions, int64_t ttl_s,
	   atomic_int *leading, struct gc **out)
{
	if (ttl_s <= 0)
		return -EINVAL;
	struct gc *g = calloc(1, sizeof(*g));
	if (!g)
		return -ENOMEM;
	g->kube = kube;
	g->inf = inf_functions;
	g->ttl_s = ttl_s;
	g->leading = leading;
	pthread_mutex_init(&g->lock, NULL);
	pthread_cond_init(&g->cond, NULL);
	*out = g;
	return 0;
}

int gc_start(struct gc *g)
{
	if (pthread_create(&g->thread, NULL, run, g) != 0)
		return -EAGAIN;
	g->started = 1;
	return 0;
}

void gc_free(struct gc *g)
{
	if (!g)
		return;
	pthread_mutex_lock(&g->lock);
	g->stopping = 1;
	pthread_cond_signal(&g->cond);
	pthread_mutex_unlock(&g->lock);
	if (g->started)
		pthread_join(g->thread, NULL);
	pthread_cond_destroy(&g->cond);
	pthread_mutex_destroy(&g->lock);
	free(g);
}
