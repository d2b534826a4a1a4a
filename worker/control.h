/*
 * control: the worker's two HTTP/1.1 listeners, on libwebsockets.
 *
 *   control port: GET /healthz and GET /readyz (open), POST /v1/specialize and
 *                 GET /v1/status (bearer token)
 *   status port:  GET /health ("1" once serving) and GET /stats (request counts)
 *
 * control_run() serves on the calling thread until worker_done(); bodies are capped at
 * SPEC_MAX_BODY (413 beyond). Every request is answered from the worker's state; nothing
 * here blocks on a child process.
 */
#ifndef UDF_WORKER_CONTROL_H
#define UDF_WORKER_CONTROL_H

#include <stddef.h>

#include "options.h"

int control_start(const struct worker_options *opts);
void control_run(void);
void control_stop(void);

/* Safe from any thread: wakes control_run() so it notices worker_done(). */
void control_wakeup(void);

/*
 * The routing decision, free of libwebsockets so it can be unit tested: fills *status and a
 * malloc'd *body (JSON or text) and *content_type for one request. authorization may be
 * NULL. Returns 0, or -ENOMEM.
 */
int control_handle(int status_port_vhost, const char *method, const char *path,
		   const char *authorization, const char *body, size_t body_len, int *status,
		   char **out, const char **content_type);

#endif
