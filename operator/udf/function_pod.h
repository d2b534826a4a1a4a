/*
 * udf/function_pod: what the function controller writes, as Kubernetes objects and request
 * bodies: a pod claimed for (or created for) a function, the function's token Secret, the
 * spec hash that says which pods run the current spec, the tenant a function serves, and the
 * worker's POST /v1/specialize body. Pure functions (the token's randomness aside), no threads.
 *
 * A claimed pod keeps its pool label (its control token is derived from that pool's key and
 * its name, udf/pool_pod.h) but loses the pool's controller ownerReference, and is labelled
 * state=claimed, function-uid=<uid>, tenant=<label-safe tenant>; annotations name the
 * function ("ns/name"), the spec hash and the launch type. Pods live in their pool's
 * namespace, which need not be the function's, so they carry no ownerReference to it.
 *
 * The cached form of a function. A UdfFunction holds up to ~1.3 MiB of code or script, and
 * env values, import urls and headers that are credentials; the shared UdfFunction cache
 * keeps none of them. fn_cache_trim() (main.c's informer transform) removes the runtime
 * payload, the fields the spec hash covers (handler, inputTypes, resultType, code, packages,
 * imports, runtimeVersion, script, env) and the import-urls annotation, and keeps in their
 * place a digest: the top-level object FN_CACHE_DIGEST = {"specHash", "runsCode",
 * "importUrls"}. The API server prunes unknown top-level fields, so an object it serves never
 * has one. fn_spec_hash(), fn_runs_code() and fn_import_urls_hash() give the same answer for
 * an object as served and for its trimmed copy; what needs the payload itself (the specialize
 * body) reads the object from the API server.
 */
#ifndef UDF_UDF_FUNCTION_POD_H
#define UDF_UDF_FUNCTION_POD_H

#include <cjson/cJSON.h>
#include <stddef.h>

#define FN_TOKEN_BYTES	 24 /* 192 random bits */
#define FN_TOKEN_HEX	 (2 * FN_TOKEN_BYTES)
#define FN_SPEC_HASH_HEX 16
#define FN_TOKEN_SUFFIX	 "-token"
#define FN_FLIGHT_PORT	 8815
#define FN_CONTROL_PORT	 9000
#define FN_STATUS_PORT	 8080

/* The tenant fn serves: spec.tenant, else the namespace's udf.sandbox.io/tenant annotation,
 * else the namespace's name (ns_obj may be NULL: then the function's namespace). Borrowed. */
const char *fn_tenant(const cJSON *fn, const cJSON *ns_obj);

/* A label-safe form of tenant ("t-<readable>-<10 hex>") into out[64]. */
int fn_tenant_label(const char *tenant, char out[64]);

/* Lower-case hex of the first 64 bits of sha256 over what the pods run: handler, types, code,
 * packages, import locations and tags (not urls), runtime version, script, env. A trimmed
 * object's is its digest's. */
int fn_spec_hash(const cJSON *fn, char out[FN_SPEC_HASH_HEX + 1]);

/* Does fn run anything (a structured form or a script)? A bare worker record does not. */
int fn_runs_code(const cJSON *fn);

/* sha256 hex of the import-urls annotation's text into out ("" when there is none): a
 * specialization failure sticks until the urls change. */
int fn_import_urls_hash(const cJSON *fn, char out[65]);

/* The top-level key of a trimmed function's digest. */
#define FN_CACHE_DIGEST "operatorCache"

/* Trims fn (an object as the API server serves it) to its cached form, in place. 0, or
 * -ENOMEM with fn as it was (-EINVAL: not an object). Pure; the informer's transform. */
int fn_cache_trim(cJSON *fn);

/* Is served (the function as the API server serves it, read to specialize a pod) the one
 * cached (its trimmed form) describes: the same uid, the same spec hash? 0; -ESTALE when not
 * (the cache is behind); -EINVAL when either lacks a uid or a hash. */
int fn_served_matches(const cJSON *cached, const cJSON *served);

/* "<name>-token" into buf. -ENAMETOOLONG when it does not fit. */
int fn_token_secret_name(const char *fn_name, char *buf, size_t len);
/* FN_TOKEN_BYTES random bytes (getrandom) as lower-case hex. 0 or a negative errno. */
int fn_token_generate(char out[FN_TOKEN_HEX + 1]);
/* The token Secret of fn, owned by fn (caller frees). */
int fn_token_secret_build(const cJSON *fn, const char *token, cJSON **out);
/* The token a Secret read back holds, borrowed-free copy into out. -EINVAL when none. */
int fn_token_from_secret(const cJSON *secret, char *out, size_t len);

/* The pod as claimed by fn: a copy of pod (its resourceVersion kept, so the update is
 * conditional) without pool_uid's controller ownerReference, relabelled and annotated as
 * above (caller frees). */
int fn_claim_pod(const cJSON *pod, const cJSON *fn, const char *pool_uid, const char *tenant_label,
		 const char *spec_hash, const char *launch_type, cJSON **out);

/* The claim as a merge patch of pod (caller frees): metadata.resourceVersion (the API server
 * answers 409 when the pod changed since it was read), the labels and annotations above, and
 * the ownerReferences without the pool's. */
int fn_claim_patch(const cJSON *pod, const cJSON *fn, const char *pool_uid,
		   const char *tenant_label, const char *spec_hash, const char *launch_type,
		   cJSON **out);

/* The worker's POST /v1/specialize body for fn (caller frees the string): function, tenant,
 * token, env, and spec (camelCase fields mapped to the worker's) or script. url_overrides may
 * be NULL or the import-urls annotation's object: a location found there gets that url. */
int fn_specialize_body(const cJSON *fn, const char *tenant, const char *token,
		       const cJSON *url_overrides, char **out);

/* --endpoint-mode=service: the function's Service (named as the function, in its namespace,
 * owned by it, no selector: its pods live in the pool's namespace) and the EndpointSlice
 * "<function>-flight" listing the pods (ips[i], ready[i]: serving). Caller frees. */
int fn_service_build(const cJSON *fn, cJSON **out);
int fn_endpointslice_build(const cJSON *fn, const char *const *ips, const int *ready, size_t n,
			   cJSON **out);

#endif
