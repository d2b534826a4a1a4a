/*
 * controllers/workers: Databend's worker records (generation 3: CREATE / ALTER / DROP /
 * SHOW WORKERS), persisted as UdfFunction resources so an operator restart loses nothing.
 *
 * A worker "n" of a tenant is the UdfFunction "w-<readable n>-<10 hex of sha256(n)>" in the
 * tenant's namespace, label udf.sandbox.io/protocol=3, with spec.functionName = n and its
 * tags and options in spec.tags / spec.options. A record without a script has nothing to
 * run (the function controller keeps it at zero pods). SUSPEND records option
 * suspended=true and scales the function to zero; RESUME records suspended=false and scales
 * it back to one.
 *
 * Every call answers through its callback exactly once, from an operations thread (they
 * block on the API server). Arguments are borrowed for the duration of the call.
 */
#ifndef UDF_CONTROLLERS_WORKERS_H
#define UDF_CONTROLLERS_WORKERS_H

#include <stddef.h>

#include "functions.h"

#define WORKER_NAME_MAX 256

struct worker_info {
	const char *name;
	const struct fn_kv *tags;
	size_t n_tags;
	const struct fn_kv *options;
	size_t n_options;
	const char *created_at; /* RFC 3339 */
	const char *updated_at;
};

/* r: FN_READY on success (workers/n_workers set for list, one worker for create/alter,
 * none for drop), else the error with message. */
typedef void (*worker_cb)(void *arg, enum fn_result r, const char *message,
			  const struct worker_info *workers, size_t n_workers);

/* The UdfFunction name of worker `name` (pure). */
int workers_object_name(const char *name, char out[64]);

/* Records a worker with nothing to run. FN_EXISTS when it exists and !if_not_exists
 * (with if_not_exists the existing worker is answered unchanged). */
int workers_create(struct functions *f, const char *tenant, const char *name,
		   const struct fn_kv *tags, size_t n_tags, const struct fn_kv *options,
		   size_t n_options, int if_not_exists, worker_cb cb, void *arg);

enum worker_state_action { WORKER_STATE_KEEP = 0, WORKER_SUSPEND = 1, WORKER_RESUME = 2 };

struct worker_change {
	const struct fn_kv *set_tags;
	size_t n_set_tags;
	const char *const *unset_tags;
	size_t n_unset_tags;
	const struct fn_kv *set_options;
	size_t n_set_options;
	const char *const *unset_options;
	size_t n_unset_options;
	enum worker_state_action state;
};

/* FN_NOT_FOUND for an unknown worker. */
int workers_alter(struct functions *f, const char *tenant, const char *name,
		  const struct worker_change *c, worker_cb cb, void *arg);

/* FN_NOT_FOUND for an unknown worker unless if_exists. */
int workers_drop(struct functions *f, const char *tenant, const char *name, int if_exists,
		 worker_cb cb, void *arg);

/* Every worker of the tenant, sorted by name (a consistent read from the API server). */
int workers_list(struct functions *f, const char *tenant, worker_cb cb, void *arg);

#endif
