/*
 * kube/workqueue: client-go's rate-limited work queue of string keys ("ns/name").
 *
 * Semantics (as client-go's workqueue):
 * - a key is never handed to two workers at once: wq_get() marks it processing until
 *   wq_done(); an add meanwhile marks it dirty and it is queued once more at wq_done();
 * - adds of a key already waiting coalesce into one;
 * - wq_add_after() only ever moves a key's ready time earlier, never later;
 * - wq_add_rate_limited() waits max(per-key exponential 5 ms * 2^n capped at 1000 s,
 *   a token bucket of 10/s with burst 100); wq_forget() resets the key's count.
 *
 * Thread-safe. wq_get() blocks. Keys are copied; the string wq_get() returns belongs to the
 * caller until it passes it to wq_done(), which frees it.
 */
#ifndef UDF_KUBE_WORKQUEUE_H
#define UDF_KUBE_WORKQUEUE_H

#include <stdint.h>

struct workqueue;

/* Rate limiter settings; zeros take client-go's defaults. */
struct wq_limits {
	uint64_t base_delay_us; /* 5000 */
	uint64_t max_delay_us;	/* 1000 s */
	double qps;		/* 10 */
	int burst;		/* 100 */
};

int wq_new(const struct wq_limits *limits, struct workqueue **out);
/* Stops wq_run workers (after their current item) and frees. */
void wq_free(struct workqueue *q);

int wq_add(struct workqueue *q, const char *key);
int wq_add_after(struct workqueue *q, const char *key, uint64_t delay_us);
int wq_add_rate_limited(struct workqueue *q, const char *key);
void wq_forget(struct workqueue *q, const char *key);
int wq_num_requeues(struct workqueue *q, const char *key);

/* The rate limiter's delay for key (counts as a failure). Exposed for tests. */
uint64_t wq_when(struct workqueue *q, const char *key);

/* Blocks until a key is ready or the queue shuts down (then returns NULL). */
char *wq_get(struct workqueue *q);
void wq_done(struct workqueue *q, char *key);

/* Stops handing out keys: wq_get returns NULL once the queue is drained of waiters. */
void wq_shutdown(struct workqueue *q);
int wq_len(struct workqueue *q);

/* Handler for wq_run: return 0 (forget the key), or non-zero to requeue it rate limited. */
typedef int (*wq_handler)(void *arg, const char *key);

/* Starts n worker threads calling fn for each key. Stopped by wq_shutdown/wq_free. */
int wq_run(struct workqueue *q, int n, wq_handler fn, void *arg);

#endif
