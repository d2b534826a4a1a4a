/*
 * api/tokens: the functions' access tokens, read from their Secrets (key "token") and kept
 * for TOKENS_TTL_MS, after which they are read again (a token can rotate). Keyed by
 * namespace and Secret name. Thread-safe; only tokens_fetch() blocks (one GET).
 */
#ifndef UDF_API_TOKENS_H
#define UDF_API_TOKENS_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

#define TOKENS_TTL_MS 300000

struct kube_client;
struct tokens;

int tokens_new(struct kube_client *kube, struct tokens **out);
void tokens_free(struct tokens *t);

/* A copy of the cached token when fresh at now_ms into *out (caller frees); *out NULL when
 * there is none. 0 or -ENOMEM. Never blocks on the network. */
int tokens_cached(struct tokens *t, const char *ns, const char *secret, int64_t now_ms, char **out);
/* Copies a fresh cached token into buf[len] without allocating (the hot path): 1 when
 * copied, 0 when none is fresh or it does not fit. */
int tokens_copy(struct tokens *t, const char *ns, const char *secret, int64_t now_ms, char *buf,
		size_t len);
/* The cached token, else the Secret's (blocking GET, then cached) into *out (caller frees);
 * *out NULL when the Secret or its token does not exist yet. 0, or a negative error of the
 * GET (logged). */
int tokens_fetch(struct tokens *t, const char *ns, const char *secret, int64_t now_ms, char **out);

/* The token of a Secret object (base64 data.token, decoded; malloc'd), or NULL when it has
 * none that decodes to a non-empty value. Pure; exposed for fuzzing. */
char *tokens_of_secret(const cJSON *secret);

#endif
