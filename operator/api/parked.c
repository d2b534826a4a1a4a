#include "api/parked.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kube/strmap.h"

struct parked {
	parked_due_fn due;
	void *due_arg;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct strmap calls;   /* key -> struct parked_call * (a list) */
	int64_t next_deadline; /* earliest answer_at of any call, INT64_MAX: none */
	int stop;
	int started;
	pthread_t sweeper;
};

int64_t parked_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void parked_answer(struct parked_call *c, enum fn_result r, const char *endpoint, const char *token,
		   const char *message)
{
	struct fn_outcome o = {r, endpoint ? endpoint : "", token ? token : "",
			       message ? message : ""};
	c->cb(c->arg, &o);
	free(c);
}

int parked_new(parked_due_fn due, void *due_arg, struct parked **out)
{
	struct parked *p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->due = due;
	p->due_arg = due_arg;
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->cond, NULL);
	strmap_init(&p->calls);
	p->next_deadline = INT64_MAX;
	*out = p;
	return 0;
}

int parked_add(struct parked *p, const char *key, struct parked_call *c)
{
	int rc = 0;
	pthread_mutex_lock(&p->lock);
	struct parked_call *head = strmap_get(&p->calls, key);
	c->next = head;
	if (strmap_put(&p->calls, key, c, NULL) < 0) {
		c->next = NULL;
		rc = -ENOMEM;
	} else if (c->answer_at < p->next_deadline) {
		p->next_deadline = c->answer_at;
		pthread_cond_signal(&p->cond);
	}
	pthread_mutex_unlock(&p->lock);
	return rc;
}

int parked_waiting(struct parked *p, const char *key)
{
	pthread_mutex_lock(&p->lock);
	int waiting = strmap_get(&p->calls, key) != NULL;
	pthread_mutex_unlock(&p->lock);
	return waiting;
}

/* Under p->lock: splits the list of key into the calls due by until (returned) and the rest
 * (kept); *next_due: the earliest answer_at kept. */
static struct parked_call *take_locked(struct parked *p, const char *key, int64_t until,
				       int64_t *next_due)
{
	struct parked_call *c = strmap_get(&p->calls, key), *due = NULL, *keep = NULL;
	int64_t next = INT64_MAX;
	while (c) {
		struct parked_call *n = c->next;
		if (c->answer_at <= until) {
			c->next = due;
			due = c;
		} else {
			c->next = keep;
			keep = c;
			if (c->answer_at < next)
				next = c->answer_at;
		}
		c = n;
	}
	if (keep)
		strmap_put(&p->calls, key, keep, NULL); /* replaces an existing key: no alloc */
	else
		strmap_del(&p->calls, key, NULL);
	if (next_due)
		*next_due = next;
	return due;
}

struct parked_call *parked_take(struct parked *p, const char *key, int64_t until, int64_t *next_due)
{
	pthread_mutex_lock(&p->lock);
	struct parked_call *due = take_locked(p, key, until, next_due);
	pthread_mutex_unlock(&p->lock);
	return due;
}

struct due {
	struct parked_call *calls;
	char key[320];
	struct due *next;
};

/* Under p->lock: takes every call whose time is up, one entry per key. */
static struct due *take_due_locked(struct parked *p, int64_t now)
{
	struct due *all = NULL;
	int64_t next = INT64_MAX;
	struct strmap_iter it;
	const char *key;
	void *val;
	strmap_iter_init(&p->calls, &it);
	while (strmap_iter_next(&p->calls, &it, &key, &val)) {
		struct parked_call *c;
		int any = 0;
		for (c = val; c; c = c->next) {
			if (c->answer_at <= now)
				any = 1;
			else if (c->answer_at < next)
				next = c->answer_at;
		}
		struct due *d = any ? calloc(1, sizeof(*d)) : NULL;
		if (!d)
			continue; /* out of memory: taken on a later sweep */
		snprintf(d->key, sizeof(d->key), "%s", key);
		d->next = all;
		all = d;
	}
	/* Split after iterating: taking may delete keys. */
	for (struct due *d = all; d; d = d->next)
		d->calls = take_locked(p, d->key, now, NULL);
	p->next_deadline = next;
	return all;
}

static void *sweep(void *arg)
{
	struct parked *p = arg;
	pthread_mutex_lock(&p->lock);
	while (!p->stop) {
		int64_t now = parked_now_ms();
		if (p->next_deadline > now) {
			struct timespec ts;
			int64_t wait =
			    p->next_deadline == INT64_MAX ? 1000 : p->next_deadline - now;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_sec += wait / 1000;
			ts.tv_nsec += (wait % 1000) * 1000000;
			if (ts.tv_nsec >= 1000000000) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000;
			}
			pthread_cond_timedwait(&p->cond, &p->lock, &ts);
			continue;
		}
		struct due *due = take_due_locked(p, now);
		pthread_mutex_unlock(&p->lock);
		while (due) {
			struct due *n = due->next;
			for (struct parked_call *c = due->calls, *cn; c; c = cn) {
				cn = c->next;
				p->due(p->due_arg, due->key, c);
			}
			free(due);
			due = n;
		}
		pthread_mutex_lock(&p->lock);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

int parked_start(struct parked *p)
{
	if (pthread_create(&p->sweeper, NULL, sweep, p) != 0)
		return -EAGAIN;
	p->started = 1;
	return 0;
}

void parked_answer_all(struct parked *p, enum fn_result r, const char *message)
{
	struct parked_call *all = NULL;
	struct strmap_iter it;
	const char *key;
	void *val;
	pthread_mutex_lock(&p->lock);
	strmap_iter_init(&p->calls, &it);
	while (strmap_iter_next(&p->calls, &it, &key, &val)) {
		struct parked_call *c = val;
		while (c) {
			struct parked_call *n = c->next;
			c->next = all;
			all = c;
			c = n;
		}
	}
	strmap_free(&p->calls, NULL);
	strmap_init(&p->calls);
	pthread_mutex_unlock(&p->lock);
	while (all) {
		struct parked_call *n = all->next;
		parked_answer(all, r, NULL, NULL, message);
		all = n;
	}
}

void parked_free(struct parked *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	p->stop = 1;
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
	if (p->started)
		pthread_join(p->sweeper, NULL);
	parked_answer_all(p, FN_SHUTDOWN, "udf-operator is shutting down; retry");
	strmap_free(&p->calls, NULL);
	pthread_cond_destroy(&p->cond);
	pthread_mutex_destroy(&p->lock);
	free(p);
}
