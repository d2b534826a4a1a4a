/*
 * api/gc: the gRPC side's garbage. Databend never drops the functions it provisions, so a
 * UdfFunction the gRPC services made (label app.kubernetes.io/managed-by=udf-operator) that
 * no call used for the TTL (status.lastUsedTime, which api/functions writes at most every
 * 30 s of use; creationTimestamp when never used) is deleted by a periodic sweep of the
 * shared UdfFunction informer's cache. With leader election the sweep runs on the leader
 * only. A bare worker record (CREATE WORKER without code, no content key) is kept: it is
 * Databend's declaration, not provisioned code.
 */
#ifndef UDF_API_GC_H
#define UDF_API_GC_H

#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

struct kube_client;
struct kube_informer;
struct gc;

/* ttl_s > 0. leading: sweep only while *leading != 0 (NULL: always). Borrowed pointers
 * outlive the gc. */
int gc_new(struct kube_client *kube, struct kube_informer *inf_functions, int64_t ttl_s,
	   atomic_int *leading, struct gc **out);
/* Starts the sweeper thread (a sweep every ttl/4, between 1 s and 60 s). */
int gc_start(struct gc *g);
/* Stops the thread and frees. */
void gc_free(struct gc *g);

/* Exposed for tests: is obj (a UdfFunction) garbage at now? 1 yes, 0 no. */
int gc_expired(const void *obj, int64_t ttl_s, time_t now);

#endif
