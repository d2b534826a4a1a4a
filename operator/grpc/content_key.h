/*
 * grpc/content_key: the identity of what a function runs, as a SHA-256 over length-prefixed
 * fields (so "ab","c" and "a","bc" differ). Feed it only runtime-relevant fields: code,
 * types, packages, import locations and content tags, never presigned urls.
 * Not thread-safe per object; no I/O.
 */
#ifndef UDF_GRPC_CONTENT_KEY_H
#define UDF_GRPC_CONTENT_KEY_H

#include <stddef.h>

struct content_key;

/* domain names the form ("udf/1", "script/1") so keys of different forms never meet. */
struct content_key *content_key_new(const char *domain);
void content_key_add(struct content_key *k, const void *data, size_t len);
void content_key_add_str(struct content_key *k, const char *s);
/* Writes the hex digest into out[65] and frees k. */
void content_key_finish(struct content_key *k, char out[65]);

#endif
