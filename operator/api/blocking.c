#include "api/blocking.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "kube/strmap.h"

struct job {
	void (*fn)(void *arg);
	void *arg;
	struct share *share;
	struct job *next;
};

/* One tenant's use of the queue; freed when it has nothing queued or running. */
struct share {
	char *tenant;
	int queued;
	int running;
};

struct blocking {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct job *head, *tail;
	struct strmap shares; /* tenant -> struct share */
	struct blocking_limits lim;
	int queued;
	int stopping;
	int n;
	int n_started;
	pthread_t *threads;
};

int blocking_new(int n, const struct blocking_limits *lim, struct blocking **out)
{
	struct blocking *b = calloc(1, sizeof(*b));
	if (!b || n <= 0 || !(b->threads = calloc((size_t)n, sizeof(pthread_t)))) {
		free(b);
		return n <= 0 ? -EINVAL : -ENOMEM;
	}
	b->n = n;
	if (lim)
		b->lim = *lim;
	if (b->lim.max_queued <= 0)
		b->lim.max_queued = 256;
	if (b->lim.max_queued_per_tenant <= 0)
		b->lim.max_queued_per_tenant = 16;
	if (b->lim.max_running_per_tenant <= 0)
		b->lim.max_running_per_tenant = n / 4 > 0 ? n / 4 : 1;
	strmap_init(&b->shares);
	pthread_mutex_init(&b->lock, NULL);
	pthread_cond_init(&b->cond, NULL);
	*out = b;
	return 0;
}

void blocking_get_limits(const struct blocking *b, struct blocking_limits *out)
{
	*out = b->lim;
}

static void share_free(void *p)
{
	struct share *s = p;
	if (s)
		free(s->tenant);
	free(s);
}

/* Drops the share once idle (under the lock). */
static void share_release_locked(struct blocking *b, struct share *s)
{
	if (s->queued == 0 && s->running == 0) {
		strmap_del(&b->shares, s->tenant, NULL);
		share_free(s);
	}
}

/* The oldest job whose tenant is under its running share (under the lock), unlinked. When
 * stopping, any job: the queue drains regardless of shares. */
static struct job *take_locked(struct blocking *b)
{
	struct job *prev = NULL;
	for (struct job *j = b->head; j; prev = j, j = j->next) {
		if (!b->stopping && j->share->running >= b->lim.max_running_per_tenant)
			continue;
		if (prev)
			prev->next = j->next;
		else
			b->head = j->next;
		if (b->tail == j)
			b->tail = prev;
		j->next = NULL;
		j->share->queued--;
		j->share->running++;
		b->queued--;
		return j;
	}
	return NULL;
}

static void finish(struct blocking *b, struct job *j)
{
	pthread_mutex_lock(&b->lock);
	j->share->running--;
	share_release_locked(b, j->share);
	/* A job of that tenant may have become runnable. */
	pthread_cond_broadcast(&b->cond);
	pthread_mutex_unlock(&b->lock);
	free(j);
}

static void *serve(void *arg)
{
	struct blocking *b = arg;
	for (;;) {
		pthread_mutex_lock(&b->lock);
		struct job *j;
		while (!(j = take_locked(b)) && !(b->stopping && !b->head))
			pthread_cond_wait(&b->cond, &b->lock);
		pthread_mutex_unlock(&b->lock);
		if (!j) /* stopping and the queue is drained */
			return NULL;
		j->fn(j->arg);
		finish(b, j);
	}
}

int blocking_start(struct blocking *b)
{
	while (b->n_started < b->n) {
		if (pthread_create(&b->threads[b->n_started], NULL, serve, b) != 0)
			return -EAGAIN;
		b->n_started++;
	}
	return 0;
}

int blocking_submit(struct blocking *b, const char *tenant, void (*fn)(void *arg), void *arg)
{
	struct job *j = calloc(1, sizeof(*j));
	if (!j)
		return -ENOMEM;
	j->fn = fn;
	j->arg = arg;
	if (!tenant)
		tenant = "";
	pthread_mutex_lock(&b->lock);
	int rc = 0;
	struct share *s = strmap_get(&b->shares, tenant);
	if (b->stopping)
		rc = -ESHUTDOWN;
	else if (s && s->queued >= b->lim.max_queued_per_tenant)
		rc = -EBUSY;
	else if (b->queued >= b->lim.max_queued)
		rc = -EAGAIN;
	else if (!s) {
		s = calloc(1, sizeof(*s));
		if (!s || !(s->tenant = strdup(tenant)) ||
		    strmap_put(&b->shares, tenant, s, NULL) < 0) {
			share_free(s);
			s = NULL;
			rc = -ENOMEM;
		}
	}
	if (rc < 0) {
		pthread_mutex_unlock(&b->lock);
		free(j);
		return rc;
	}
	j->share = s;
	s->queued++;
	b->queued++;
	if (b->tail)
		b->tail->next = j;
	else
		b->head = j;
	b->tail = j;
	pthread_cond_signal(&b->cond);
	pthread_mutex_unlock(&b->lock);
	return 0;
}

void blocking_stop(struct blocking *b)
{
	pthread_mutex_lock(&b->lock);
	b->stopping = 1;
	pthread_cond_broadcast(&b->cond);
	pthread_mutex_unlock(&b->lock);
	for (int i = 0; i < b->n_started; i++)
		pthread_join(b->threads[i], NULL);
	b->n_started = 0;
	/* Never started: run what was queued here, so every submitted job still runs once. */
	for (;;) {
		pthread_mutex_lock(&b->lock);
		struct job *j = take_locked(b);
		pthread_mutex_unlock(&b->lock);
		if (!j)
			break;
		j->fn(j->arg);
		finish(b, j);
	}
}

void blocking_free(struct blocking *b)
{
	if (!b)
		return;
	blocking_stop(b);
	strmap_free(&b->shares, share_free);
	pthread_cond_destroy(&b->cond);
	pthread_mutex_destroy(&b->lock);
	free(b->threads);
	free(b);
}
