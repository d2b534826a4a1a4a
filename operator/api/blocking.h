/*
 * api/blocking: the threads that do the API's blocking work (Kubernetes requests of worker
 * records, presigned-url ETag reads), so no gRPC completion-queue thread ever waits on the
 * network. A queue of jobs served by a fixed number of threads; a job runs exactly once, or
 * its submit fails.
 *
 * Every job carries its tenant, and the queue is bounded three ways so that one tenant's slow
 * work (a script with 64 slow import urls, say) cannot stall the others' calls: a tenant runs
 * at most max_running_per_tenant jobs at once (a thread takes the oldest job whose tenant is
 * under that share, so other tenants' jobs pass a busy tenant's), has at most
 * max_queued_per_tenant jobs waiting, and all tenants together at most max_queued.
 */
#ifndef UDF_API_BLOCKING_H
#define UDF_API_BLOCKING_H

struct blocking;

struct blocking_limits {
	int max_queued;		    /* waiting jobs of all tenants (0: 256) */
	int max_queued_per_tenant;  /* waiting jobs of one tenant (0: 16) */
	int max_running_per_tenant; /* threads one tenant holds at once (0: a quarter, >= 1) */
};

/* n threads (> 0); lim may be NULL (the defaults). They start with blocking_start(). */
int blocking_new(int n, const struct blocking_limits *lim, struct blocking **out);
int blocking_start(struct blocking *b);
/* Queues fn(arg) for tenant. 0; -EBUSY when the tenant already has its share waiting,
 * -EAGAIN when the whole queue is full, -ESHUTDOWN once blocking_stop() began, -ENOMEM.
 * Thread-safe. */
int blocking_submit(struct blocking *b, const char *tenant, void (*fn)(void *arg), void *arg);
/* The limits in force (defaults filled in). */
void blocking_get_limits(const struct blocking *b, struct blocking_limits *out);
/* Refuses new jobs, runs every queued one, joins the threads. */
void blocking_stop(struct blocking *b);
/* Stops (as above) and frees. */
void blocking_free(struct blocking *b);

#endif
