#include "controllers/runner.h"

#include <errno.h>
#include <stdlib.h>

#include "util/log.h"

int runner_init(struct runner *r, const char *component, const char *what, int workers,
		wq_handler reconcile, void *arg)
{
	int rc;

	gate_init(&r->gate);
	rc = wq_new(NULL, &r->wq);
	if (rc < 0) {
		gate_destroy(&r->gate);
		r->wq = NULL;
		return rc;
	}
	r->component = component;
	r->what = what;
	r->workers = workers > 0 ? workers : 1;
	r->reconcile = reconcile;
	r->arg = arg;
	atomic_init(&r->started, 0);
	r->threads = NULL;
	r->nthreads = 0;
	return 0;
}

/* The workqueue's loop, on threads of our own so runner_stop() can join them. */
static void *worker_main(void *arg)
{
	struct runner *r = arg;
	char *key;

	while ((key = wq_get(r->wq)) != NULL) {
		if (gate_enter(&r->gate) < 0) {
			wq_done(r->wq, key);
			break;
		}
		if (r->reconcile(r->arg, key) == 0)
			wq_forget(r->wq, key);
		else
			wq_add_rate_limited(r->wq, key);
		gate_leave(&r->gate);
		wq_done(r->wq, key);
	}
	return NULL;
}

int runner_started(struct runner *r)
{
	return atomic_load(&r->started);
}

int runner_start(struct runner *r)
{
	int expected = 0;

	if (!atomic_compare_exchange_strong(&r->started, &expected, 1)) {
		/* Leading again after a lost Lease: the queue kept every key meanwhile. */
		log_info(r->component, "%s resuming", r->what);
		gate_open(&r->gate);
		return 0;
	}
	r->threads = calloc((size_t)r->workers, sizeof(*r->threads));
	if (!r->threads)
		return -ENOMEM;
	for (; r->nthreads < r->workers; r->nthreads++) {
		int rc = pthread_create(&r->threads[r->nthreads], NULL, worker_main, r);

		if (rc)
			return -rc;
	}
	return 0;
}

void runner_pause(struct runner *r)
{
	if (!r->wq || !atomic_load(&r->started))
		return;
	gate_close(&r->gate);
	log_info(r->component, "%s paused", r->what);
}

void runner_stop(struct runner *r)
{
	if (!r->wq)
		return;
	gate_abort(&r->gate);
	wq_shutdown(r->wq);
	for (int i = 0; i < r->nthreads; i++)
		pthread_join(r->threads[i], NULL);
	r->nthreads = 0;
}

void runner_destroy(struct runner *r)
{
	if (!r->wq)
		return;
	runner_stop(r);
	gate_destroy(&r->gate);
	free(r->threads);
	r->threads = NULL;
	wq_free(r->wq);
	r->wq = NULL;
}
