/*
 * controllers/runner: a controller's workers and its workqueue. Each worker takes a key and
 * calls the controller's reconcile (0: done, the key's failure count is forgotten; non-zero:
 * the key is queued again, rate limited), only while this replica leads: runner_pause() (the
 * Lease lost) waits for the reconciles in progress and starts none until runner_start() is
 * called again (controllers/gate.h); the queue keeps every key meanwhile.
 */
#ifndef UDF_CONTROLLERS_RUNNER_H
#define UDF_CONTROLLERS_RUNNER_H

#include <pthread.h>
#include <stdatomic.h>

#include "controllers/gate.h"
#include "kube/workqueue.h"

struct runner {
	struct workqueue *wq;  /* the controller enqueues here */
	const char *component; /* the controller's log component */
	const char *what;      /* "UdfWarmPool controller": what the log lines name */
	wq_handler reconcile;
	void *arg;
	int workers;
	atomic_int started;
	struct gate gate; /* closed while this replica does not lead */
	pthread_t *threads;
	int nthreads;
};

/* The queue and the gate; no thread yet. 0 or -ENOMEM. */
int runner_init(struct runner *r, const char *component, const char *what, int workers,
		wq_handler reconcile, void *arg);
/* 1 once runner_start() was called. */
int runner_started(struct runner *r);
/* Starts the workers; called again (leading again after a lost Lease), reopens the gate. 0 or
 * a negative errno. */
int runner_start(struct runner *r);
/* Waits for the reconciles in progress; no other starts until runner_start(). */
void runner_pause(struct runner *r);
/* For good: shuts the queue down and joins the workers. */
void runner_stop(struct runner *r);
/* Stops, then frees the queue. Harmless on a zeroed runner or one whose init failed. */
void runner_destroy(struct runner *r);

#endif
