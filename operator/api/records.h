/*
 * api/records: Databend's worker records (protocol 3, resourceproto.WorkerService: CREATE /
 * ALTER / DROP / SHOW WORKERS), persisted as UdfFunction resources so an operator restart
 * loses nothing. "Worker" here is Databend's word for such a record; it is not the
 * udf-worker binary that serves a sandbox pod.
 *
 * A worker "n" of a tenant is the UdfFunction naming_function_record(n) in the tenant's
 * namespace, label udf.sandbox.io/protocol=3, with spec.functionName = n and its
 * tags and options in spec.tags / spec.options. A record without a script has nothing to
 * run (the function controller keeps it at zero pods). SUSPEND records option
 * suspended=true and scales the function to zero; RESUME records suspended=false and scales
 * it back to one.
 *
 * Every call answers through its callback exactly once, from a blocking thread
 * (api/blocking: they wait on the API server). Arguments are borrowed for the duration of the call.
 */
#ifndef UDF_API_RECORDS_H
#define UDF_API_RECORDS_H

#include <stddef.h>

#include "api/functions.h"

#define RECORD_NAME_MAX 256

struct record_info {
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
typedef void (*record_cb)(void *arg, enum fn_result r, const char *message,
			  const struct record_info *workers, size_t n_workers);

/* The UdfFunction name of worker `name` (pure). */
int naming_function_record(const char *name, char out[64]);

/* Records a worker with nothing to run. FN_EXISTS when it exists and !if_not_exists
 * (with if_not_exists the existing worker is answered unchanged). */
int records_create(struct functions *f, const char *tenant, const char *name,
		   const struct fn_kv *tags, size_t n_tags, const struct fn_kv *options,
		   size_t n_options, int if_not_exists, record_cb cb, void *arg);

enum record_state_action { RECORD_STATE_KEEP = 0, RECORD_SUSPEND = 1, RECORD_RESUME = 2 };

struct record_change {
	const struct fn_kv *set_tags;
	size_t n_set_tags;
	const char *const *unset_tags;
	size_t n_unset_tags;
	const struct fn_kv *set_options;
	size_t n_set_options;
	const char *const *unset_options;
	size_t n_unset_options;
	enum record_state_action state;
};

/* FN_NOT_FOUND for an unknown worker. */
int records_alter(struct functions *f, const char *tenant, const char *name,
		  const struct record_change *c, record_cb cb, void *arg);

/* FN_NOT_FOUND for an unknown worker unless if_exists. */
int records_drop(struct functions *f, const char *tenant, const char *name, int if_exists,
		 record_cb cb, void *arg);

/* Every worker of the tenant, sorted by name (a consistent read from the API server). */
int records_list(struct functions *f, const char *tenant, record_cb cb, void *arg);

#endif
