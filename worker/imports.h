/*
 * imports: downloads a specialization's imports into one flat directory.
 *
 * Each import lands in dir/<basename of its location>; a later import with the same basename
 * replaces an earlier one (Databend's rule: last wins). Downloads are cached in cache_dir by
 * (location, tag), so the same content is fetched once however often its presigned url
 * changes. Blocking (libcurl easy API); call from a worker thread, never the HTTP loop.
 */
#ifndef UDF_WORKER_IMPORTS_H
#define UDF_WORKER_IMPORTS_H

#include <stddef.h>

#include "spec.h"

struct imports_limits {
	long timeout_seconds; /* per download */
	long long max_bytes;  /* per file */
};

struct imports_stats {
	int downloaded;
	int cached;
};

/*
 * Fetches every import of req into dir (created if missing). 0 on success; a negative errno
 * otherwise, with a sentence for the SQL user in reason (the location and what failed).
 */
int imports_fetch(const struct spec_request *req, const char *dir, const char *cache_dir,
		  const struct imports_limits *limits, struct imports_stats *stats, char *reason,
		  size_t reason_len);

/* The cache file name for (location, tag): 16 hex digits of a 64-bit FNV-1a hash of both. */
void imports_cache_key(const char *location, const char *tag, char out[17]);

/* Basename of a stage location ("@stage/a/b.py" -> "b.py"); never empty for a parsed spec. */
const char *imports_basename(const char *location);

#endif
