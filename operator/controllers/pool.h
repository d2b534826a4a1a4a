/*
 * controllers/pool: the UdfWarmPool controller. Keeps spec.replicas idle, Ready sandbox pods
 * (udf/pool_pod.h) in each pool's namespace and reports them in the pool's status.
 *
 * Level-triggered: a reconcile reads the informers' caches and moves the world one safe step
 * toward the spec, so a crash at any line loses nothing. Pods in flight are counted through
 * expectations (controllers/expectations.h), terminating pods count too, an unschedulable pod
 * is held rather than recreated, creation is paced by spec.refill, and failing pods are
 * replaced under a per-pool exponential backoff that ends in ScaleUpBlocked.
 *
 * The informers belong to the caller's shared loop (one watch per resource per process);
 * pool_controller_new() adds this controller's handlers to them, so it must run before the
 * loop starts. Handlers only enqueue keys; the workers that reconcile start with
 * pool_controller_start(), which the caller makes when this replica leads.
 */
#ifndef UDF_CONTROLLERS_POOL_H
#define UDF_CONTROLLERS_POOL_H

#include "kube/informer.h"
#include "kube/rest.h"

struct pool_controller;

struct pool_controller_opts {
	struct kube_client *kube;    /* borrowed */
	struct kube_informer *pools; /* UdfWarmPools of all namespaces; borrowed */
	struct kube_informer *pods;  /* sandbox pods, indexed on udf.sandbox.io/pool */
	const char *worker_image;    /* pods of pools without spec.runtime.image; NULL: default */
	const char *allowed_runtime_classes; /* comma list; NULL: "gvisor" */
	int workers;			     /* reconcile threads; 0: 2 */
};

/* Strings in o are copied. Adds handlers to both informers (-EBUSY once the loop runs). */
int pool_controller_new(const struct pool_controller_opts *o, struct pool_controller **out);
/* Starts the reconcile workers (once; later calls do nothing). */
int pool_controller_start(struct pool_controller *pc);
/* Stops the workers after their current reconcile (joins them). Handlers may still run and
 * enqueue meanwhile (ignored), so the order at shutdown is: stop, free the informer loop, free. */
/* Waits until no reconcile runs and starts none until the next pool_controller_start()
 * (this replica lost the Lease; the queue keeps its keys). */
void pool_controller_pause(struct pool_controller *c);
void pool_controller_stop(struct pool_controller *pc);
void pool_controller_free(struct pool_controller *pc);

/* Prometheus text for /metrics (caller frees): reconciles and latency, the workqueue's
 * client-go metrics, pods created, idle and ready pods per pool. NULL on ENOMEM. */
char *pool_controller_metrics(struct pool_controller *pc);

#endif
