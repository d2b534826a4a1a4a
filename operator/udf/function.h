/*
 * udf/function: what a UdfFunction is: the object the operator creates for a Databend UDF,
 * and the status contract between the function controller (which writes the status) and
 * the API the gRPC services call (which reads it). Pure functions, no threads.
 *
 * The status is read only when it describes the current spec (status.observedGeneration
 * >= metadata.generation):
 * - conditions[type=Ready].status "True" with status.endpoint and status.tokenSecretName:
 *   ready; the Secret keeps the token under the key "token";
 * - status.endpoint set while not ready: the endpoint that will become usable;
 * - provisioning failed: a condition of type ImportsFetched, PackagesInstalled, Specialized
 *   or CodeLoaded with status "False", or Ready "False" with a reason ending in "Failed".
 *   Its message is passed to the caller as the function's own reason.
 */
#ifndef UDF_UDF_FUNCTION_H
#define UDF_UDF_FUNCTION_H

#include <cjson/cJSON.h>
#include <stddef.h>

/* ---- what a function runs (borrowed strings) ---- */
struct fn_import {
	const char *location;
	const char *url;
	const char *tag;
};

struct fn_kv {
	const char *key;
	const char *value;
};

/* Which of Databend's protocols created the function (label udf.sandbox.io/protocol). */
enum fn_protocol {
	FN_PROTO_UDF_SERVICE = 1,      /* udfproto.UdfService/ApplyUdfResource */
	FN_PROTO_RESOURCE_SERVICE = 2, /* resourceproto.ResourceService/ApplyResource */
	FN_PROTO_WORKER_SERVICE = 3,   /* resourceproto.WorkerService: worker records */
};

struct fn_desc {
	const char *tenant;	   /* exact tenant name, naming_tenant_check() */
	const char *name;	   /* the UdfFunction's name: a DNS label */
	const char *function_name; /* SQL name for spec.functionName, may be NULL */
	const char *content_key;   /* hex digest of what the function runs */
	enum fn_protocol protocol;

	/* structured form (handler != NULL) */
	const char *handler;
	const char *const *input_types;
	size_t n_input_types;
	const char *result_type;
	const char *code;
	const char *const *packages;
	size_t n_packages;
	const struct fn_import *imports;
	size_t n_imports;
	const char *runtime_version;

	/* script form (script != NULL) */
	const char *script;

	/* worker record (protocol 3) */
	const struct fn_kv *tags;
	size_t n_tags;
	const struct fn_kv *options;
	size_t n_options;
};

/* The UdfFunction object for d in namespace ns into *out (caller frees). 0 or -ENOMEM. */
int fn_object(const struct fn_desc *d, const char *ns, cJSON **out);

/* Is obj the function of tenant with this content key? */
int fn_matches(const cJSON *obj, const char *tenant, const char *content_key);

/* ---- the status contract ---- */
struct fn_status {
	int ready;
	int failed;
	const char *endpoint;	  /* borrowed from the object, NULL when unset */
	const char *token_secret; /* borrowed, NULL when unset */
	const char *message;	  /* borrowed failure / progress message, may be NULL */
};
void fn_read_status(const cJSON *obj, struct fn_status *st);

/* The condition of that type in obj's status.conditions, or NULL (borrowed). */
const cJSON *fn_condition(const cJSON *obj, const char *type);

#endif
