/*
 * controllers/functions_internal: what the other modules of controllers/ (workers.c) use of
 * functions.c. Not for grpc/: it hands out Kubernetes objects.
 */
#ifndef UDF_CONTROLLERS_FUNCTIONS_INTERNAL_H
#define UDF_CONTROLLERS_FUNCTIONS_INTERNAL_H

#include <cjson/cJSON.h>

#include "functions.h"

#define FN_ANNO_TENANT	    "udf.sandbox.io/tenant"
#define FN_ANNO_CONTENT_KEY "udf.sandbox.io/content-key"
#define FN_ANNO_UPDATED_AT  "udf.sandbox.io/updated-at"
#define FN_LABEL_PROTOCOL   "udf.sandbox.io/protocol"

/* Runs fn(arg) on one of the blocking-operation threads. -ESHUTDOWN once shutting down. */
int functions_submit(struct functions *f, void (*fn)(void *arg), void *arg);
struct kube_client *functions_kube(struct functions *f);
/* The tenant's namespace name (pure). */
int functions_namespace(struct functions *f, const char *tenant, char ns[64]);
/* Blocking: creates the tenant's namespace if needed and checks its tenant annotation.
 * 0, or an enum fn_result with msg. */
int functions_ensure_namespace(struct functions *f, const char *tenant, char ns[64], char *msg,
			       size_t msglen);
/* From the cache: 1 the namespace exists and is the tenant's, 0 unknown, -1 another's. */
int functions_tenant_namespace_known(struct functions *f, const char *tenant, char ns[64]);
/* Copies from the UdfFunction cache (caller frees). */
cJSON *functions_cached(struct functions *f, const char *ns, const char *name);
cJSON *functions_cached_list(struct functions *f);
int functions_synced(struct functions *f);

#endif
