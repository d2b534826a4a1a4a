/*
 * udf/labels: every label, annotation, finalizer and API name the operator writes or reads on
 * Kubernetes objects, in one place. Constants only.
 *
 * Sandbox pods live in their pool's namespace. While idle a pod is labelled
 * pool=<pool name>, state=idle and its controller ownerReference is the pool; a claim
 * relabels it state=claimed with the function's uid and tenant.
 */
#ifndef UDF_UDF_LABELS_H
#define UDF_UDF_LABELS_H

#define UDF_API_GROUP	"udf.sandbox.io"
#define UDF_API_VERSION "udf.sandbox.io/v1alpha1"
#define UDF_KIND_POOL	"UdfWarmPool"
#define UDF_KIND_FN	"UdfFunction"

/* Kubernetes' recommended labels. */
#define UDF_LABEL_NAME	     "app.kubernetes.io/name"
#define UDF_LABEL_MANAGED_BY "app.kubernetes.io/managed-by"
#define UDF_MANAGER	     "udf-operator"
#define UDF_WORKER_APP	     "udf-worker" /* app.kubernetes.io/name of sandbox pods */

/* Sandbox pods. */
#define UDF_LABEL_POOL	       "udf.sandbox.io/pool"
#define UDF_LABEL_STATE	       "udf.sandbox.io/state"
#define UDF_STATE_IDLE	       "idle"
#define UDF_STATE_CLAIMED      "claimed"
#define UDF_LABEL_FUNCTION_UID "udf.sandbox.io/function-uid"
#define UDF_LABEL_TENANT       "udf.sandbox.io/tenant" /* a label-safe form of the tenant */
/* The hex sha256 of the pod's control token; the worker reads it through the downward API. */
#define UDF_ANNO_CONTROL_TOKEN_SHA256 "udf.sandbox.io/control-token-sha256"
/* On a claimed pod: "<namespace>/<name>" of its function, the spec hash it is specialized for,
 * and how it came (warm: claimed from the pool; cold: created for the function). */
#define UDF_ANNO_FUNCTION    "udf.sandbox.io/function"
#define UDF_ANNO_SPEC_HASH   "udf.sandbox.io/spec-hash"
#define UDF_ANNO_LAUNCH_TYPE "udf.sandbox.io/launch-type"

/* Tenant namespaces and UdfFunctions. */
#define UDF_ANNO_TENANT	     "udf.sandbox.io/tenant"	       /* exact tenant name */
#define UDF_LABEL_TENANT_NS  "udf.sandbox.io/tenant-namespace" /* "true" */
#define UDF_ANNO_CONTENT_KEY "udf.sandbox.io/content-key"
#define UDF_ANNO_UPDATED_AT  "udf.sandbox.io/updated-at"
#define UDF_LABEL_PROTOCOL   "udf.sandbox.io/protocol" /* Databend protocol 1..3 */
#define UDF_FINALIZER_PODS   "udf.sandbox.io/sandbox-pods"
/* On a UdfFunction: the newest presigned urls a call brought, a JSON object
 * {"<location>": "<url>"}, written by the gRPC service and never part of the content key;
 * every specialization uses them in place of spec.imports[].url. */
#define UDF_ANNO_IMPORT_URLS "udf.sandbox.io/import-urls"

#endif
