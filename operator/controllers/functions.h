/*
 * controllers/functions: the UdfFunction API the gRPC services call. Owns the Kubernetes side
 * of a call: the tenant's namespace, create-or-reuse of the UdfFunction, its status from an
 * informer cache, the token from the function's Secret, and the wait for Ready.
 *
 * Threads: an informer loop (UdfFunctions and the operator's tenant namespaces), and a small
 * pool of workers that do every blocking Kubernetes request. functions_apply() and the
 * worker calls never block: they answer through a callback, called exactly once, from the
 * calling thread when the cache already has the answer (a hot call), else from a worker.
 * Everything passed in is borrowed for the duration of the call (copied when needed).
 *
 * The contract with the function controller is the UdfFunction's status, read only when it
 * describes the current spec (status.observedGeneration >= metadata.generation):
 * - conditions[type=Ready].status "True" with status.endpoint and status.tokenSecretName:
 *   ready; the Secret keeps the token under the key "token";
 * - status.endpoint set while not ready: the endpoint that will become usable;
 * - provisioning failed: a condition of type ImportsFetched, PackagesInstalled, Specialized
 *   or CodeLoaded with status "False", or Ready "False" with a reason ending in "Failed".
 *   Its message is passed to the caller as the function's own reason.
 */
#ifndef UDF_CONTROLLERS_FUNCTIONS_H
#define UDF_CONTROLLERS_FUNCTIONS_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

#include "rest.h"

struct functions;

struct functions_options {
	struct kube_client *kube; /* borrowed; outlives the functions */
	const char *ns_prefix;	  /* tenant namespace prefix, e.g. "udf-" */
	int workers;		  /* threads doing Kubernetes requests (0: 8) */
};

int functions_new(const struct functions_options *o, struct functions **out);
/* Starts the informers and workers; does not wait for the caches to sync. */
int functions_start(struct functions *f);
/* Answers every parked call (FN_SHUTDOWN) and every later one at once. Call before the
 * gRPC server stops, so it does not wait for parked calls' deadlines. */
void functions_shutdown(struct functions *f);
/* Shuts down (as above), stops the threads, frees. */
void functions_free(struct functions *f);

/* ---- what a function runs (borrowed strings) ---- */
struct fn_import {
	const char *location;
	const char *url;
	const char *tag;
};

struct fn_kv {
	const char *key;
	const char *value;
};

enum fn_protocol { FN_PROTO_UDF = 1, FN_PROTO_RESOURCE = 2, FN_PROTO_WORKER = 3 };

struct fn_desc {
	const char *tenant;	   /* exact tenant name, naming_tenant_valid() */
	const char *name;	   /* the UdfFunction's name: a DNS label */
	const char *function_name; /* SQL name for spec.functionName, may be NULL */
	const char *content_key;   /* hex digest of what the function runs */
	enum fn_protocol protocol;

	/* structured form (handler != NULL) */
	const char *handler;
	const char *const *input_types;
	size_t n_input_types;
	const char *result_type;
	const char *code;
	const char *const *packages;
	size_t n_packages;
	const struct fn_import *imports;
	size_t n_imports;
	const char *runtime_version;

	/* script form (script != NULL) */
	const char *script;

	/* worker records (generation 3) */
	const struct fn_kv *tags;
	size_t n_tags;
	const struct fn_kv *options;
	size_t n_options;
};

/* ---- outcomes ---- */
enum fn_result {
	FN_READY,	 /* endpoint + token */
	FN_STARTING,	 /* endpoint known (token too when it exists), not ready yet */
	FN_PROVISIONING, /* no endpoint known by the deadline */
	FN_FAILED,	 /* provisioning failed: message is the function's own reason */
	FN_UNREACHABLE,	 /* the API server did not answer */
	FN_INVALID,	 /* the API server's validation refused the object (message says why) */
	FN_REJECTED,	 /* the API server refused otherwise (message says why) */
	FN_CONFLICT,	 /* the namespace or name belongs to another tenant / function */
	FN_NOT_FOUND,
	FN_EXISTS,
	FN_SHUTDOWN,
};

struct fn_outcome {
	enum fn_result result;
	const char *endpoint; /* may be empty */
	const char *token;    /* may be empty */
	const char *message;  /* readable reason for anything but FN_READY */
};

typedef void (*fn_apply_cb)(void *arg, const struct fn_outcome *o);

/*
 * Create the function (or reuse the one of that name with the same content key; a different
 * key replaces its spec), then answer cb once: when Ready, when it failed, or at
 * answer_at_ms (CLOCK_MONOTONIC ms) with what is known then. Records the call as use of
 * the function. Returns 0, or a negative errno when cb will not be called (out of memory).
 */
int functions_apply(struct functions *f, const struct fn_desc *d, int64_t answer_at_ms,
		    fn_apply_cb cb, void *arg);

/* Runs fn(arg) on one of the threads for blocking work (they may wait on the network).
 * 0, or -ESHUTDOWN / -ENOMEM when fn will not run. */
int functions_run_blocking(struct functions *f, void (*fn)(void *arg), void *arg);

/* ---- the status contract, exposed for unit tests ---- */
struct fn_status {
	int ready;
	int failed;
	const char *endpoint;	  /* borrowed from the object, NULL when unset */
	const char *token_secret; /* borrowed, NULL when unset */
	const char *message;	  /* borrowed failure / progress message, may be NULL */
};
void functions_read_status(const cJSON *obj, struct fn_status *st);

/* The UdfFunction object for d in namespace ns (caller frees). NULL when out of memory. */
cJSON *functions_object(const struct fn_desc *d, const char *ns);

#endif
