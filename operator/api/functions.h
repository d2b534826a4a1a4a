/*
 * api/functions: the UdfFunction API the gRPC services call. Owns the Kubernetes side of a
 * call: the tenant's namespace (api/tenants), create-or-reuse of the UdfFunction, its status
 * from the shared informer cache (the contract is udf/function.h), the token from the
 * function's Secret (api/tokens), and the wait for Ready (api/parked).
 *
 * Threads: the informer loop (handlers only note and enqueue), a workqueue whose threads do
 * the Kubernetes requests of functions_apply(), the blocking threads (api/blocking) for
 * one-off work such as worker records, and the deadline sweeper (api/parked).
 * functions_apply() never blocks: it answers through its callback exactly once, from the
 * calling thread when the caches already have the answer (a hot call), else from a
 * workqueue thread when the function settles, else from the sweeper at the call's time.
 * Everything passed in is borrowed for the duration of the call (copied when needed).
 */
#ifndef UDF_API_FUNCTIONS_H
#define UDF_API_FUNCTIONS_H

#include <stdatomic.h>
#include <stdint.h>

#include <stddef.h>

#include "api/outcome.h"
#include "api/parked.h"
#include "udf/function.h"

struct blocking_limits;
struct kube_client;
struct kube_informer;
struct tenants;
struct functions;

struct functions_options {
	struct kube_client *kube;	     /* borrowed; outlives the functions */
	struct kube_informer *inf_functions; /* shared: UdfFunctions of all namespaces */
	struct kube_informer *inf_tenant_ns; /* shared: namespaces labelled tenant-namespace */
	const char *ns_prefix;		     /* tenant namespace prefix, e.g. "udf-" */
	const char *ns_labels;		     /* "K=V,..." added to new tenant namespaces, or NULL */
	int threads;			     /* workqueue threads (0: 8) */
	/* ---- limits against one tenant hurting the others (0: no limit) ---- */
	int max_functions_per_tenant; /* UdfFunctions in a tenant's namespace */
	int max_pods_per_tenant;      /* pods, by a ResourceQuota in each tenant namespace */
	int max_tenants;	      /* tenant namespaces */
	int64_t function_ttl_s;	      /* delete gRPC-made functions unused this long */
	atomic_int *leading;	      /* the TTL sweep runs only while *leading (NULL: always) */
	const struct blocking_limits
	    *blocking; /* shares of the blocking threads (NULL: defaults) */
	/* ---- end of limits ---- */
	/* spec.idleTimeoutSeconds of the functions a call creates: Databend never drops what it
	 * creates, so an idle UDF must not hold a pod forever (0: none) */
	long long default_idle_timeout_s;
};

/* Adds its handlers to the shared informers: call before their loop starts. */
int functions_new(const struct functions_options *o, struct functions **out);
/* Starts the threads; the informer loop is started by its owner. */
int functions_start(struct functions *f);
/* Answers every parked call (FN_SHUTDOWN) and every later one at once. Call before the
 * gRPC server stops, so it does not wait for parked calls' deadlines. */
void functions_shutdown(struct functions *f);
/* Shuts down (as above), stops the threads, frees. Stop the informer loop first. */
void functions_free(struct functions *f);

/*
 * Create the function (or reuse the one of that name with the same content key; a different
 * key replaces its spec; a call's presigned urls, newer than the function's, are kept in its
 * udf.sandbox.io/import-urls annotation at most once a minute), then answer cb once: when Ready,
 * when it failed, or at answer_at_ms (CLOCK_MONOTONIC ms) with what is known then. Records the call
 * as use of the function. Returns 0, or a negative errno when cb will not be called.
 */
int functions_apply(struct functions *f, const struct fn_desc *d, int64_t answer_at_ms,
		    fn_apply_cb cb, void *arg);

/* Runs fn(arg) on one of the blocking threads (they may wait on the network), within the
 * tenant's share of them (api/blocking.h). 0, or -EBUSY / -EAGAIN (the tenant's share or the
 * whole queue is full), -ESHUTDOWN, -ENOMEM when fn will not run. */
int functions_run_blocking(struct functions *f, const char *tenant, void (*fn)(void *arg),
			   void *arg);
/* For a refusal rc of functions_run_blocking: the gRPC-ready message naming the limit, and
 * 1 when the call should be answered RESOURCE_EXHAUSTED (-EBUSY, -EAGAIN), else 0. */
int functions_refusal(struct functions *f, int rc, const char *tenant, char *msg, size_t len);

/* --max-functions-per-tenant: 1 with the message in msg when ns (the tenant's namespace)
 * already holds the limit and has no function name (a new one would pass it), else 0.
 * Counted from the informer cache; creates racing past it meet the namespace's
 * ResourceQuota (api/tenants). functions_apply() checks it itself. */
int functions_over_limit(struct functions *f, const char *ns, const char *name, const char *tenant,
			 char *msg, size_t len);

/* For api/records.c: the parts it shares. */
struct kube_client *functions_kube(struct functions *f);
struct tenants *functions_tenants(struct functions *f);

#endif
