/*
 * api/parked: gRPC calls waiting for their function, and the deadline sweeper that answers
 * each one on time (its answer_at) even while a thread is stuck in a slow API request for
 * that function. Calls are keyed by the function's "namespace/name".
 *
 * A call is answered exactly once: whoever takes it from here answers it (the API when the
 * function settles, the sweeper's due callback when its time is up, shutdown otherwise).
 * Thread-safe; one sweeper thread.
 */
#ifndef UDF_API_PARKED_H
#define UDF_API_PARKED_H

#include <stdint.h>

#include "api/outcome.h"

typedef void (*fn_apply_cb)(void *arg, const struct fn_outcome *o);

struct parked_call {
	fn_apply_cb cb;
	void *arg;
	int64_t answer_at; /* CLOCK_MONOTONIC ms */
	struct parked_call *next;
};

/* Called on the sweeper thread, without locks, for each call whose time is up; it answers
 * and frees c. */
typedef void (*parked_due_fn)(void *arg, const char *key, struct parked_call *c);

struct parked;

int parked_new(parked_due_fn due, void *due_arg, struct parked **out);
int parked_start(struct parked *p);
/* Stops the sweeper; every call still parked is answered FN_SHUTDOWN. */
void parked_free(struct parked *p);

/* Parks c (takes ownership) under key. 0 or -ENOMEM (c is not taken). */
int parked_add(struct parked *p, const char *key, struct parked_call *c);
/* Does any call wait under key? */
int parked_waiting(struct parked *p, const char *key);
/* Takes the calls of key due at or before until (INT64_MAX: all of them); *next_due: the
 * earliest answer_at left under key, INT64_MAX when none. */
struct parked_call *parked_take(struct parked *p, const char *key, int64_t until,
				int64_t *next_due);
/* Answers every parked call with r and message now (shutdown). */
void parked_answer_all(struct parked *p, enum fn_result r, const char *message);

/* Answers c with the outcome and frees it. */
void parked_answer(struct parked_call *c, enum fn_result r, const char *endpoint, const char *token,
		   const char *message);

int64_t parked_now_ms(void);

#endif
