/*
 * grpc/etag: the content tag of a presigned url: a one-byte ranged GET (a GET-presigned url
 * refuses HEAD) and its ETag, or "length:<n>" from Content-Range / Content-Length when the
 * store sends no ETag. Blocks up to timeout_ms: call it from a blocking-work thread only.
 */
#ifndef UDF_GRPC_ETAG_H
#define UDF_GRPC_ETAG_H

#include <stddef.h>

#include "util/cidr.h"

/* The addresses no fetch connects to (copied). Call once before the first fetch; without
 * it, CIDR_DEFAULT_BLOCKED. A url whose host resolves only to blocked addresses fails with
 * -EACCES; redirects are never followed; the error says nothing of what the remote
 * answered beyond readable or not. */
void etag_set_blocked(const struct cidr_set *s);

/* 0 with the tag in out, or a negative errno with a readable reason in err. headers:
 * "Name: value" lines sent with the GET (n may be 0). */
int etag_fetch(const char *url, const char *const *headers, size_t n_headers, long timeout_ms,
	       char *out, size_t outlen, char *err, size_t errlen);

/* Parses one response header line into the tag candidates (exposed for tests/fuzzing):
 * sets etag / total length when the line is ETag / Content-Range / Content-Length. */
void etag_header_line(const char *line, size_t len, char *etag, size_t etaglen,
		      long long *range_total, long long *content_length);

#endif
