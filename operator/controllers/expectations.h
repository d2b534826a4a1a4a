/*
 * controllers/expectations: the creates and deletes a controller has sent but its informer
 * has not shown yet, per owner key, as client-go's ReplicaSet controller keeps them.
 *
 * Without them a reconcile that runs between a create's answer and its watch event counts
 * the pod as missing and creates another. Each expectation names the pod, so the informer's
 * events (and the cache itself) settle exactly the ones they concern. An expectation the
 * watch never settles (a create that failed after all, a lost event) expires after ttl_ms,
 * after which the cache is believed again.
 *
 * Thread-safe (one mutex): informer handlers observe, reconcilers expect and count.
 */
#ifndef UDF_CONTROLLERS_EXPECTATIONS_H
#define UDF_CONTROLLERS_EXPECTATIONS_H

#include <stdint.h>

struct expectations;

enum exp_kind { EXP_CREATE, EXP_DELETE };

/* ttl_ms 0: 5 minutes (client-go's ExpectationsTimeout). */
int exp_new(int64_t ttl_ms, struct expectations **out);
void exp_free(struct expectations *e);

/* Records that the pod name under owner is about to be created / deleted. Call before
 * sending the request, so an event that races the answer settles it. 0 or -ENOMEM. */
int exp_expect(struct expectations *e, const char *owner, enum exp_kind kind, const char *name);
/* The watch (or the cache) showed it: a create seen, a delete seen (gone or terminating).
 * Also for a request that failed: nothing will come. */
void exp_observe(struct expectations *e, const char *owner, enum exp_kind kind, const char *name);
/* Pending (unexpired) expectations of kind under owner. */
int exp_pending(struct expectations *e, const char *owner, enum exp_kind kind);
/* Is name pending as kind under owner? */
int exp_has(struct expectations *e, const char *owner, enum exp_kind kind, const char *name);
/* Calls fn for each pending name of kind under owner (under the lock: fn must not call back). */
void exp_each(struct expectations *e, const char *owner, enum exp_kind kind,
	      void (*fn)(void *arg, const char *name), void *arg);
/* Forgets everything about owner (it was deleted). */
void exp_forget(struct expectations *e, const char *owner);

#endif
