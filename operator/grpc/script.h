/*
 * grpc/script: the bash script generations 2 and 3 send (PROTOCOL.md "The script"), and its
 * content key. The presigned urls inside it change on every call, so the key replaces each
 * url with its scheme, host and path plus the content tag of the file (its ETag, read with
 * a ranged GET: etag.h). The same UDF with a fresh presign keeps its key; changed code,
 * packages or files change it.
 *
 * Pure, thread-safe. The struct owns its strings.
 */
#ifndef UDF_GRPC_SCRIPT_H
#define UDF_GRPC_SCRIPT_H

#include <stddef.h>

#define SCRIPT_MAX_BYTES 1310720 /* the UdfFunction CRD's limit on spec.script */
#define SCRIPT_MAX_URLS	 64
#define SCRIPT_MAX_URL	 8192

struct script_url {
	size_t start, end; /* byte offsets of the url in the script */
	char *url;
};

struct script_info {
	struct script_url urls[SCRIPT_MAX_URLS];
	size_t n_urls;
};

/* Checks the script (non-empty, bounded, no NUL, a shell script) and finds its http(s)
 * urls. 0, or -EINVAL with a readable reason in err, or -ENOMEM. */
int script_scan(const char *script, size_t len, struct script_info *out, char *err, size_t errlen);
void script_info_free(struct script_info *in);

/* The content key (hex, out[65]) with tags[i] the content tag of in->urls[i]. */
int script_content_key(const char *script, size_t len, const struct script_info *in,
		       const char *const *tags, char out[65]);

#endif
