/*
 * grpc/script: the bash script protocols 2 and 3 send (docs/PROTOCOL.md "The script"), and its
 * content key. The presigned urls inside it change on every call, so the key replaces each
 * import url with its scheme, host and path plus the content tag of the file (its ETag,
 * read with a ranged GET: etag.h). The same UDF with a fresh presign keeps its key; changed
 * code, packages or files change it.
 *
 * Import urls are the "url"s of the /app/imports.json manifest the script writes (with their
 * "headers", sent with the GET too); every occurrence of one in the script is normalized.
 * A script without a manifest that parses falls back to urls that look presigned (a query
 * string with a signature or expiry parameter). Other urls (say, one the UDF's code calls)
 * are left as they are and never fetched.
 *
 * Pure, thread-safe. The struct owns its strings.
 */
#ifndef UDF_GRPC_SCRIPT_H
#define UDF_GRPC_SCRIPT_H

#include <stddef.h>

#define SCRIPT_MAX_BYTES   1310720 /* the UdfFunction CRD's limit on spec.script */
#define SCRIPT_MAX_URLS	   128	   /* occurrences */
#define SCRIPT_MAX_IMPORTS 64
#define SCRIPT_MAX_URL	   8192
#define SCRIPT_MAX_HEADERS 32

struct script_import {
	char *url;
	char *headers[SCRIPT_MAX_HEADERS]; /* "Name: value" */
	size_t n_headers;
};

struct script_url {
	size_t start, end; /* byte offsets of the occurrence in the script */
	size_t import;	   /* index into imports */
};

struct script_info {
	struct script_import imports[SCRIPT_MAX_IMPORTS];
	size_t n_imports;
	struct script_url urls[SCRIPT_MAX_URLS];
	size_t n_urls;
	int from_manifest; /* 1: imports came from /app/imports.json */
};

/* Checks the script (non-empty, bounded, no NUL) and finds its imports and every occurrence
 * of their urls. 0, or -EINVAL with a readable reason in err, or -ENOMEM. */
int script_scan(const char *script, size_t len, struct script_info *out, char *err, size_t errlen);
void script_info_free(struct script_info *in);

/* The content key (hex, out[65]) with tags[i] the content tag of in->imports[i]. */
int script_content_key(const char *script, size_t len, const struct script_info *in,
		       const char *const *tags, char out[65]);

#endif
