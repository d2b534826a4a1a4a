/*
 * grpc/service: what every service module shares: the tenant of a call, when a waiting call
 * must be answered, and how a controller outcome becomes a gRPC answer a SQL user can read.
 */
#ifndef UDF_GRPC_SERVICE_H
#define UDF_GRPC_SERVICE_H

#include <stddef.h>
#include <stdint.h>

#include "api/functions.h"
#include "grpc/rpc.h"

/* The tenant: md_tenant (x-databend-tenant metadata, may be NULL), else fallback (a
 * request's tenant_id, may be NULL). 0, or -EINVAL with a readable reason in err (a tenant
 * the --tenant-pattern does not match is refused too, the message naming the pattern). */
int service_tenant(const char *md_tenant, const char *fallback, const char **tenant, char *err,
		   size_t errlen);
/* --tenant-pattern: from now on service_tenant() refuses a tenant that the POSIX extended
 * regular expression does not match whole. Call once before serving. 0, or -EINVAL with a
 * reason in err. */
int service_set_tenant_pattern(const char *ere, char *err, size_t errlen);
/* The x-databend-tenant metadata of the call, or NULL. */
const char *service_md_tenant(struct rpc_call *call);

/* Answers a request that failed to decode or validate with rc (a negative errno):
 * RESOURCE_EXHAUSTED for -ENOMEM, else INVALID_ARGUMENT; err is the message (it names
 * the field). */
void service_fail_request(struct rpc_call *call, int rc, const char *err);

/* Answers a call whose work functions_run_blocking() (or what submits through it) refused
 * with rc: RESOURCE_EXHAUSTED naming the limit for a full share or queue, else UNAVAILABLE. */
void service_fail_submit(struct rpc_call *call, struct functions *f, int rc, const char *tenant);

/* When to answer a waiting call: its deadline minus a margin for the answer to travel
 * (a fifth of the time left, between 100 and 500 ms); 30 s from now without a deadline. */
int64_t service_answer_at(int64_t deadline_ms, int64_t now_ms);

/* Packs {endpoint, headers} into the service's response message; malloc'd into *buf. */
typedef int (*service_pack_fn)(const char *endpoint, const char *token, uint8_t **buf, size_t *len,
			       void *arg);

/*
 * Answers call from an apply outcome. what names the function for messages ("UDF
 * \"add_one\""). FN_READY, and FN_STARTING with a token: OK with the endpoint and
 * headers {"x-authorization": token}. Otherwise the status and message described in
 * udf_service.h.
 */
void service_answer_apply(struct rpc_call *call, const struct fn_outcome *o, const char *what,
			  service_pack_fn pack, void *pack_arg);

#endif
