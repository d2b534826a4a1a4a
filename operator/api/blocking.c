#include "api/blocking.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

struct job {
	void (*fn)(void *arg);
	void *arg;
	struct job *next;
};

struct blocking {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct job *head, *tail;
	int stopping;
	int n;
	int n_started;
	pthread_t *threads;
};

int blocking_new(int n, struct blocking **out)
{
	struct blocking *b = calloc(1, sizeof(*b));
	if (!b || n <= 0 || !(b->threads = calloc((size_t)n, sizeof(pthread_t)))) {
		free(b);
		return n <= 0 ? -EINVAL : -ENOMEM;
	}
	b->n = n;
	pthread_mutex_init(&b->lock, NULL);
	pthread_cond_init(&b->cond, NULL);
	*out = b;
	return 0;
}

static void *serve(void *arg)
{
	struct blocking *b = arg;
	for (;;) {
		pthread_mutex_lock(&b->lock);
		while (!b->head && !b->stopping)
			pthread_cond_wait(&b->cond, &b->lock);
		struct job *j = b->head;
		if (j) {
			b->head = j->next;
			if (!b->head)
				b->tail = NULL;
		}
		pthread_mutex_unlock(&b->lock);
		if (!j) /* stopping and the queue is drained */
			return NULL;
		j->fn(j->arg);
		free(j);
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

int blocking_submit(struct blocking *b, void (*fn)(void *arg), void *arg)
{
	struct job *j = calloc(1, sizeof(*j));
	if (!j)
		return -ENOMEM;
	j->fn = fn;
	j->arg = arg;
	pthread_mutex_lock(&b->lock);
	if (b->stopping) {
		pthread_mutex_unlock(&b->lock);
		free(j);
		return -ESHUTDOWN;
	}
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
	for (struct job *j = b->head, *n; j; j = n) {
		n = j->next;
		j->fn(j->arg);
		free(j);
	}
	b->head = b->tail = NULL;
}

void blocking_free(struct blocking *b)
{
	if (!b)
		return;
	blocking_stop(b);
	pthread_cond_destroy(&b->cond);
	pthread_mutex_destroy(&b->lock);
	free(b->threads);
	free(b);
}
