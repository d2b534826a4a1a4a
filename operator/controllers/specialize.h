/*
 * controllers/specialize: the client of a sandbox pod's control API (worker/README.md,
 * "Control API"), the only code that talks to a worker. Each call is one short HTTP request to
 * http://<pod IP>:9000 with the pod's control token (udf/pool_pod.h) as a Bearer token; none
 * waits for specialization to end: the caller reads /v1/status again later (a workqueue
 * requeue), so no reconcile thread sleeps on a worker.
 *
 * Tokens never reach a log line or an error message. Thread-safe (one curl handle per call).
 */
#ifndef UDF_CONTROLLERS_SPECIALIZE_H
#define UDF_CONTROLLERS_SPECIALIZE_H

#include <stddef.h>

/* Per request: connect and answer within this (the pod is on this node's network). */
#define SPECIALIZE_TIMEOUT_MS 3000

/* POST /v1/specialize with body. *http_status: 202 accepted (also for the same request
 * again), 400 with the worker's reason in err, 409 when the pod runs something else, 401/403
 * for a wrong control token. Returns 0 when the worker answered, a negative errno when it
 * could not be reached (err says how). */
int specialize_post(const char *pod_ip, const char *control_token, const char *body,
		    long *http_status, char *err, size_t errlen);

enum worker_state { WORKER_IDLE, WORKER_SPECIALIZING, WORKER_READY, WORKER_FAILED };

struct worker_status {
	enum worker_state state;
	char step[32];	   /* import, packages, load, serve, script; may be empty */
	char reason[1024]; /* the worker's message on failure */
	long specialize_ms;
};

/* GET /v1/status. 0 with *st, -EPROTO when the answer is not a status, or a negative errno
 * when the worker could not be reached; err says which. */
int specialize_status(const char *pod_ip, const char *control_token, struct worker_status *st,
		      char *err, size_t errlen);

/* GET /stats on the worker's status port (8080, no token): the last time a Flight call reached
 * the function, in seconds since the epoch (0: never). 0 or a negative errno. */
int specialize_last_use(const char *pod_ip, long long *last_s, char *err, size_t errlen);

#endif
