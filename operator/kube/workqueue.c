/* kube/workqueue: FIFO + dirty/processing sets + a min-heap of delayed keys + rate limiter. */
#include "kube/workqueue.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kube/strmap.h"

struct fifo_node {
	struct fifo_node *next;
	char key[];
};

struct delayed {
	uint64_t ready_us;
	size_t idx; /* position in the heap */
	char *key;
};

struct workqueue {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct fifo_node *head, *tail;
	int qlen;
	struct strmap dirty;	  /* key -> NULL: wanted (queued or to be requeued) */
	struct strmap processing; /* key -> NULL: handed to a worker */
	struct strmap waiting;	  /* key -> struct delayed* */
	struct delayed **heap;
	size_t nheap, capheap;
	struct strmap failures; /* key -> (uintptr_t) count */
	struct wq_limits lim;
	double tokens;
	uint64_t last_us;
	int shutting_down;
	pthread_t *workers;
	int nworkers;
	wq_handler fn;
	void *arg;
};

static uint64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

int wq_new(const struct wq_limits *limits, struct workqueue **out)
{
	struct workqueue *q = calloc(1, sizeof(*q));
	pthread_condattr_t ca;

	*out = NULL;
	if (!q)
		return -ENOMEM;
	pthread_mutex_init(&q->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&q->cv, &ca);
	pthread_condattr_destroy(&ca);
	strmap_init(&q->dirty);
	strmap_init(&q->processing);
	strmap_init(&q->waiting);
	strmap_init(&q->failures);
	if (limits)
		q->lim = *limits;
	if (!q->lim.base_delay_us)
		q->lim.base_delay_us = 5000;
	if (!q->lim.max_delay_us)
		q->lim.max_delay_us = 1000ull * 1000000u;
	if (q->lim.qps <= 0)
		q->lim.qps = 10;
	if (q->lim.burst <= 0)
		q->lim.burst = 100;
	q->tokens = q->lim.burst;
	q->last_us = now_us();
	*out = q;
	return 0;
}

/* ---- FIFO ---- */

static int fifo_push(struct workqueue *q, const char *key)
{
	size_t n = strlen(key);
	struct fifo_node *node = malloc(sizeof(*node) + n + 1);
	if (!node)
		return -ENOMEM;
	memcpy(node->key, key, n + 1);
	node->next = NULL;
	if (q->tail)
		q->tail->next = node;
	else
		q->head = node;
	q->tail = node;
	q->qlen++;
	return 0;
}

/* ---- heap of delayed keys ---- */

static void heap_swap(struct workqueue *q, size_t a, size_t b)
{
	struct delayed *t = q->heap[a];
	q->heap[a] = q->heap[b];
	q->heap[b] = t;
	q->heap[a]->idx = a;
	q->heap[b]->idx = b;
}

static void heap_up(struct workqueue *q, size_t i)
{
	while (i > 0 && q->heap[(i - 1) / 2]->ready_us > q->heap[i]->ready_us) {
		heap_swap(q, i, (i - 1) / 2);
		i = (i - 1) / 2;
	}
}

static void heap_down(struct workqueue *q, size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;
		if (l < q->nheap && q->heap[l]->ready_us < q->heap[m]->ready_us)
			m = l;
		if (r < q->nheap && q->heap[r]->ready_us < q->heap[m]->ready_us)
			m = r;
		if (m == i)
			return;
		heap_swap(q, i, m);
		i = m;
	}
}

static struct delayed *heap_pop(struct workqueue *q)
{
	struct delayed *top = q->heap[0];
	q->nheap--;
	if (q->nheap) {
		q->heap[0] = q->heap[q->nheap];
		q->heap[0]->idx = 0;
		heap_down(q, 0);
	}
	return top;
}

/* Caller holds mu. */
static int add_locked(struct workqueue *q, const char *key)
{
	int rc;
	if (q->shutting_down)
		return -ESHUTDOWN;
	if (strmap_has(&q->dirty, key))
		return 0;
	rc = strmap_put(&q->dirty, key, NULL, NULL);
	if (rc)
		return rc;
	if (strmap_has(&q->processing, key))
		return 0; /* queued again at wq_done */
	rc = fifo_push(q, key);
	if (rc) {
		strmap_del(&q->dirty, key, NULL);
		return rc;
	}
	pthread_cond_signal(&q->cv);
	return 0;
}

/* Moves delayed keys whose time has come into the queue. Caller holds mu. */
static void pump_delayed(struct workqueue *q, uint64_t now)
{
	while (q->nheap && q->heap[0]->ready_us <= now) {
		struct delayed *d = heap_pop(q);
		strmap_del(&q->waiting, d->key, NULL);
		add_locked(q, d->key);
		free(d->key);
		free(d);
	}
}

int wq_add(struct workqueue *q, const char *key)
{
	int rc;
	pthread_mutex_lock(&q->mu);
	rc = add_locked(q, key);
	pthread_mutex_unlock(&q->mu);
	return rc;
}

int wq_add_after(struct workqueue *q, const char *key, uint64_t delay_us)
{
	struct delayed *d;
	uint64_t ready;
	int rc = 0;

	if (delay_us == 0)
		return wq_add(q, key);
	ready = now_us() + delay_us;
	pthread_mutex_lock(&q->mu);
	if (q->shutting_down) {
		rc = -ESHUTDOWN;
		goto out;
	}
	d = strmap_get(&q->waiting, key);
	if (d) {
		/* Only ever earlier. */
		if (ready < d->ready_us) {
			d->ready_us = ready;
			heap_up(q, d->idx);
			pthread_cond_broadcast(&q->cv);
		}
		goto out;
	}
	rc = -ENOMEM;
	if (q->nheap == q->capheap) {
		size_t ncap = q->capheap ? q->capheap * 2 : 16;
		struct delayed **nh = realloc(q->heap, ncap * sizeof(*nh));
		if (!nh)
			goto out;
		q->heap = nh;
		q->capheap = ncap;
	}
	d = malloc(sizeof(*d));
	if (!d)
		goto out;
	d->key = strdup(key);
	if (!d->key || strmap_put(&q->waiting, key, d, NULL)) {
		free(d->key);
		free(d);
		goto out;
	}
	d->ready_us = ready;
	d->idx = q->nheap;
	q->heap[q->nheap++] = d;
	heap_up(q, d->idx);
	pthread_cond_broadcast(&q->cv);
	rc = 0;
out:
	pthread_mutex_unlock(&q->mu);
	return rc;
}

uint64_t wq_when(struct workqueue *q, const char *key)
{
	uint64_t exp_delay, bucket_delay = 0, now = now_us();
	uintptr_t n;

	pthread_mutex_lock(&q->mu);
	n = (uintptr_t)strmap_get(&q->failures, key);
	strmap_put(&q->failures, key, (void *)(n + 1), NULL);
	/* 5 ms * 2^n, capped (and safe from overflow for any n). */
	if (n >= 63 || q->lim.base_delay_us > (q->lim.max_delay_us >> n))
		exp_delay = q->lim.max_delay_us;
	else
		exp_delay = q->lim.base_delay_us << n;

	/* Token bucket as golang.org/x/time/rate's Reserve: tokens may go negative, and the
	 * wait is the time until this reservation's token exists. */
	q->tokens += (double)(now - q->last_us) / 1e6 * q->lim.qps;
	if (q->tokens > q->lim.burst)
		q->tokens = q->lim.burst;
	q->last_us = now;
	q->tokens -= 1;
	if (q->tokens < 0)
		bucket_delay = (uint64_t)(-q->tokens / q->lim.qps * 1e6);
	pthread_mutex_unlock(&q->mu);
	return exp_delay > bucket_delay ? exp_delay : bucket_delay;
}

int wq_add_rate_limited(struct workqueue *q, const char *key)
{
	return wq_add_after(q, key, wq_when(q, key));
}

void wq_forget(struct workqueue *q, const char *key)
{
	pthread_mutex_lock(&q->mu);
	strmap_del(&q->failures, key, NULL);
	pthread_mutex_unlock(&q->mu);
}

int wq_num_requeues(struct workqueue *q, const char *key)
{
	int n;
	pthread_mutex_lock(&q->mu);
	n = (int)(uintptr_t)strmap_get(&q->failures, key);
	pthread_mutex_unlock(&q->mu);
	return n;
}

char *wq_get(struct workqueue *q)
{
	char *key = NULL;

	pthread_mutex_lock(&q->mu);
	for (;;) {
		pump_delayed(q, now_us());
		if (q->head) {
			struct fifo_node *node = q->head;
			q->head = node->next;
			if (!q->head)
				q->tail = NULL;
			q->qlen--;
			key = strdup(node->key);
			if (!key || strmap_put(&q->processing, node->key, NULL, NULL)) {
				/* Out of memory: put it back and let the caller retry. */
				free(key);
				key = NULL;
				node->next = q->head;
				q->head = node;
				if (!q->tail)
					q->tail = node;
				q->qlen++;
				break;
			}
			strmap_del(&q->dirty, node->key, NULL);
			free(node);
			break;
		}
		if (q->shutting_down)
			break;
		if (q->nheap) {
			struct timespec ts;
			uint64_t at = q->heap[0]->ready_us;
			ts.tv_sec = (time_t)(at / 1000000u);
			ts.tv_nsec = (long)(at % 1000000u) * 1000;
			pthread_cond_timedwait(&q->cv, &q->mu, &ts);
		} else {
			pthread_cond_wait(&q->cv, &q->mu);
		}
	}
	pthread_mutex_unlock(&q->mu);
	return key;
}

void wq_done(struct workqueue *q, char *key)
{
	pthread_mutex_lock(&q->mu);
	strmap_del(&q->processing, key, NULL);
	if (strmap_has(&q->dirty, key)) {
		if (fifo_push(q, key) == 0)
			pthread_cond_signal(&q->cv);
		else
			strmap_del(&q->dirty, key, NULL);
	}
	pthread_mutex_unlock(&q->mu);
	free(key);
}

void wq_shutdown(struct workqueue *q)
{
	pthread_mutex_lock(&q->mu);
	q->shutting_down = 1;
	pthread_cond_broadcast(&q->cv);
	pthread_mutex_unlock(&q->mu);
}

int wq_len(struct workqueue *q)
{
	int n;
	pthread_mutex_lock(&q->mu);
	pump_delayed(q, now_us());
	n = q->qlen;
	pthread_mutex_unlock(&q->mu);
	return n;
}

static void *worker_main(void *p)
{
	struct workqueue *q = p;
	char *key;
	while ((key = wq_get(q)) != NULL) {
		if (q->fn(q->arg, key) == 0)
			wq_forget(q, key);
		else
			wq_add_rate_limited(q, key);
		wq_done(q, key);
	}
	return NULL;
}

int wq_run(struct workqueue *q, int n, wq_handler fn, void *arg)
{
	if (q->workers || n <= 0)
		return -EINVAL;
	q->workers = calloc((size_t)n, sizeof(pthread_t));
	if (!q->workers)
		return -ENOMEM;
	q->fn = fn;
	q->arg = arg;
	for (int i = 0; i < n; i++) {
		int rc = pthread_create(&q->workers[i], NULL, worker_main, q);
		if (rc) {
			wq_shutdown(q);
			for (int j = 0; j < i; j++)
				pthread_join(q->workers[j], NULL);
			free(q->workers);
			q->workers = NULL;
			return -rc;
		}
		q->nworkers++;
	}
	return 0;
}

void wq_free(struct workqueue *q)
{
	struct fifo_node *node, *next;
	if (!q)
		return;
	wq_shutdown(q);
	for (int i = 0; i < q->nworkers; i++)
		pthread_join(q->workers[i], NULL);
	free(q->workers);
	for (node = q->head; node; node = next) {
		next = node->next;
		free(node);
	}
	for (size_t i = 0; i < q->nheap; i++) {
		free(q->heap[i]->key);
		free(q->heap[i]);
	}
	free(q->heap);
	strmap_free(&q->dirty, NULL);
	strmap_free(&q->processing, NULL);
	strmap_free(&q->waiting, NULL);
	strmap_free(&q->failures, NULL);
	pthread_cond_destroy(&q->cv);
	pthread_mutex_destroy(&q->mu);
	free(q);
}
