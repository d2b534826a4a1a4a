/*
 * http/httpd: a small HTTP/1.1 server for the operator's probes and metrics
 * (/healthz, /readyz, /metrics). One thread, poll(2), one request per connection, GET only;
 * requests over 8 KiB or slower than 5 s are dropped. Not for anything a client must trust.
 */
#ifndef UDF_HTTPD_H
#define UDF_HTTPD_H

#include <stddef.h>

struct httpd;

/* Fills *status, and *body (malloc'd; the server frees it) and *content_type (static).
 * Called on the server thread; must not block. */
typedef void (*httpd_handler_fn)(const char *path, int *status, char **body,
				 const char **content_type, void *arg);

/* bind_address: ":8081", "127.0.0.1:8081", "[::1]:8081", "0" disables (returns 0, *out NULL). */
int httpd_start(const char *bind_address, httpd_handler_fn fn, void *arg, struct httpd **out,
		char *err, size_t errlen);
int httpd_port(const struct httpd *h);
void httpd_stop(struct httpd *h);

/* A request as received so far (buf NUL-terminated at len, at most 8 KiB): -EAGAIN until
 * its head is complete; then 0 with a GET's path (query dropped) in path, or -EINVAL (not a
 * GET, or no path that fits). Exposed for fuzzing. */
int httpd_parse_request(const char *buf, size_t len, char *path, size_t pathlen);

/* Splits "host:port" / ":port" / "[v6]:port" into host (may be "") and port. 0 or -EINVAL. */
int httpd_split_address(const char *addr, char *host, size_t hostlen, int *port);

#endif
