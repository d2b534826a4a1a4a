/*
 * udf/pool_pod: what a warm pool's sandbox pod is, as a Kubernetes object; the pool's control
 * key Secret; and the control tokens derived from that key.
 *
 * The pod follows worker/README.md's "Pod contract": the worker image, gVisor (or another
 * allowed runtime class), Pod Security `restricted`, a read-only root with two size-limited
 * emptyDirs (/app, /tmp), readiness on the control port's /readyz, and the control token's
 * sha256 (never the token) through an annotation and a downward-API file.
 *
 * Control tokens: each pool has 32 random bytes (the pool key) in the Secret
 * "<pool>-control-key" (data key "key"), owned by the pool. A pod's token is
 * hex(HMAC-SHA256(pool key, pod name)), so the operator can derive it for any pod, before the
 * pod exists, and a pod learns nothing that controls another. Tokens must never reach a
 * status, Event or log line.
 *
 * Pure functions except the random ones (getrandom); thread-safe.
 */
#ifndef UDF_UDF_POOL_POD_H
#define UDF_UDF_POOL_POD_H

#include <cjson/cJSON.h>
#include <stddef.h>

#define POOL_KEY_BYTES		   32
#define POOL_TOKEN_HEX		   64
#define POOL_POD_NAME_MAX	   253
#define POOL_DEFAULT_IMAGE	   "localhost/udf-worker:dev"
#define POOL_DEFAULT_RUNTIME_CLASS "gvisor"
/* The downward-API file the worker reads the token's hash from. */
#define POOL_TOKEN_DIR	"/etc/udf-worker/control"
#define POOL_TOKEN_FILE "token-sha256"

/* The runtime class a pool's pods get: spec.runtime.runtimeClassName, default gvisor.
 * 0 when it is in allowed (a comma list such as "gvisor,runc"), -EPERM when it is not. */
int pool_pod_runtime_class(const cJSON *pool, const char *allowed, const char **rc);

/* The image: spec.runtime.image, else default_image (--worker-image). */
const char *pool_pod_image(const cJSON *pool, const char *default_image);

/* "<pool>-<5 random [a-z0-9]>" into out. -ENAMETOOLONG when the pool name is too long,
 * or a negative errno when no randomness is available. */
int pool_pod_name(const char *pool, char out[POOL_POD_NAME_MAX + 1]);

/* The selector of a pool's idle pods in string form (status.selector, the scale subresource):
 * "app.kubernetes.io/managed-by=udf-operator,udf.sandbox.io/pool=<pool>,
 * udf.sandbox.io/state=idle". -ENAMETOOLONG when it does not fit. */
int pool_pod_selector(const char *pool, char *buf, size_t len);

/* The token of pod_name under key, lower-case hex, and its sha256 (of the hex text, as the
 * worker hashes what follows "Bearer "). */
int pool_pod_token(const unsigned char key[POOL_KEY_BYTES], const char *pod_name,
		   char token[POOL_TOKEN_HEX + 1]);
void pool_pod_token_sha256(const char *token, char out[65]);

/* The pod to create (caller frees): pool is the UdfWarmPool (its name, namespace and uid are
 * used for the pod's namespace, labels and controller ownerReference), runtime_class from
 * pool_pod_runtime_class(). -EINVAL when the pool lacks metadata, -ENOMEM. */
int pool_pod_build(const cJSON *pool, const char *image, const char *runtime_class,
		   const char *pod_name, const char *token_sha256, cJSON **out);

/* "<pool>-control-key". -ENAMETOOLONG when it does not fit. */
int pool_key_secret_name(const char *pool, char *buf, size_t len);
/* A new Secret holding key, owned by pool (caller frees). */
int pool_key_secret_build(const cJSON *pool, const unsigned char key[POOL_KEY_BYTES], cJSON **out);
/* The key in a Secret read back from the API. -EINVAL when it holds no 32-byte key. */
int pool_key_from_secret(const cJSON *secret, unsigned char key[POOL_KEY_BYTES]);
/* 32 random bytes (getrandom). 0 or a negative errno. */
int pool_key_generate(unsigned char key[POOL_KEY_BYTES]);

#endif
