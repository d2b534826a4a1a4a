/*
 * worker: the state of one sandbox worker and the supervisor of its processes.
 *
 * One worker specializes at most once, into one function. The HTTP thread calls
 * worker_specialize()/worker_*_json(); a specializer thread fetches imports and packages; the
 * supervisor thread (worker_supervise) owns every child process: it starts the Python
 * servers (from the zygote when there is one), reads their ready pipes and output, reaps
 * them, restarts crashed ones with backoff, and drains them on SIGTERM.
 * All public calls are thread-safe.
 */
#ifndef UDF_WORKER_WORKER_H
#define UDF_WORKER_WORKER_H

#include <stddef.h>

#include "options.h"
#include "spec.h"

/* Blocks SIGCHLD/SIGTERM/SIGINT in the calling thread (call first, in main), creates the
 * run directory and the shared stats file, and starts the zygote. 0 or a negative errno. */
int worker_init(const struct worker_options *opts);

/* Only what worker_init() keeps of opts (borrowed), starting nothing: for tests and fuzzers
 * that drive control_handle() without children. */
void worker_use_options(const struct worker_options *opts);

/* Runs the supervisor until the worker has drained after SIGTERM/SIGINT. */
void worker_supervise(void);

/* Set once the supervisor has finished; the HTTP loop exits when it sees it. */
int worker_done(void);

/* Hook called when worker_done() becomes true (to wake the HTTP loop). */
void worker_set_wakeup(void (*fn)(void));

/*
 * Takes ownership of *req on 202 (and zeroes it); on 409 *req is untouched and msg says why.
 * Returns the HTTP status: 202 accepted (or already had), 409 conflict, 503 shutting down.
 */
int worker_specialize(struct spec_request *req, char *msg, size_t msg_len);

/* malloc'd JSON documents for GET /v1/status and GET /stats. */
char *worker_status_json(void);
char *worker_stats_json(void);

/* 1 while every server process serves. */
int worker_ready(void);

/*
 * The readiness probe (GET /readyz): 1 while idle with the zygote warm (or idle without a
 * zygote, --no-zygote: nothing to warm), or specialized with a process serving; 0 while the
 * zygote imports, while specializing, once failed, and while draining.
 */
int worker_readyz(void);

/*
 * 1 when header is "Bearer <the control token>": compared in constant time with the
 * --control-token-file, or, with --control-token-sha256-file, the token's sha256 compared
 * in constant time with the file's hex digest. Both files are re-read on each call.
 */
int worker_check_authorization(const char *header);

/* 1 when sha256(token) is want_hex (64 hex digits, either case); token must not be empty. */
int worker_token_matches_sha256(const char *token, const char *want_hex);

/* Constant-time comparison of two NUL-terminated strings; 1 when equal. */
int worker_token_equal(const char *a, const char *b);

#endif
