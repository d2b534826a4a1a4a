/*
 * api/blocking: the threads that do the API's blocking work (Kubernetes requests of worker
 * records, presigned-url ETag reads), so no gRPC completion-queue thread ever waits on the
 * network. A FIFO of jobs served by a fixed number of threads; a job runs exactly once, or
 * its submit fails.
 */
#ifndef UDF_API_BLOCKING_H
#define UDF_API_BLOCKING_H

struct blocking;

/* n threads (> 0). They start with blocking_start(). */
int blocking_new(int n, struct blocking **out);
int blocking_start(struct blocking *b);
/* Queues fn(arg). 0, or -ESHUTDOWN once blocking_stop() began, -ENOMEM. Thread-safe. */
int blocking_submit(struct blocking *b, void (*fn)(void *arg), void *arg);
/* Refuses new jobs, runs every queued one, joins the threads. */
void blocking_stop(struct blocking *b);
/* Stops (as above) and frees. */
void blocking_free(struct blocking *b);

#endif
