/*
 * grpc/script_apply: protocols 2 and 3 provision a UDF from a script. Checks the script,
 * reads the content tag of every presigned url in it (etag.h, on a blocking-work thread,
 * never the completion-queue thread), computes the content key (script.h), then creates or
 * reuses the UdfFunction and answers the call like protocol 1 (service_answer_apply).
 */
#ifndef UDF_GRPC_SCRIPT_APPLY_H
#define UDF_GRPC_SCRIPT_APPLY_H

#include <stddef.h>

#include "api/functions.h"
#include "grpc/rpc.h"
#include "grpc/service.h"

/* Per-URL limit on the ranged GET, further bounded by the call's deadline. */
#define SCRIPT_ETAG_TIMEOUT_MS 2000

struct script_apply {
	const char *tenant;
	const char *name;	   /* the UdfFunction's name; NULL: "r-<content key>" */
	const char *function_name; /* SQL name, may be NULL */
	enum fn_protocol protocol;
	const char *script;
	size_t script_len;
	const struct fn_kv *tags;
	size_t n_tags;
	const struct fn_kv *options;
	size_t n_options;
	const char *what; /* names the function in messages */
	service_pack_fn pack;
	void *pack_arg; /* taken: freed with pack_free after the answer */
	void (*pack_free)(void *pack_arg);
};

/* Answers the call exactly once (also on every error). Arguments are borrowed. */
void script_apply_start(struct functions *f, struct rpc_call *call, const struct script_apply *a);

#endif
