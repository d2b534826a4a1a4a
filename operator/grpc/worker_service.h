/*
 * grpc/worker_service: protocol 3, resourceproto.WorkerService.
 * - CreateWorker with an empty script records a worker (tags, options) without provisioning
 *   and answers an empty endpoint; with a script (type "udf", name = the UDF's SQL name) it
 *   provisions the UDF in the worker's UdfFunction (script_apply.h) and answers like
 *   protocol 1; a changed script rolls the same function.
 * - AlterWorker sets / unsets tags and options; Suspend scales to zero and records option
 *   suspended=true, Resume scales back and records suspended=false.
 * - DropWorker deletes; ListWorkers renders every worker of the tenant.
 * Tenant: x-databend-tenant, else tenant_id. Workers persist as UdfFunctions (workers.h).
 * Errors: unknown worker NOT_FOUND (Drop without if_exists too), existing record without
 * if_not_exists ALREADY_EXISTS, missing name INVALID_ARGUMENT, API server down UNAVAILABLE.
 */
#ifndef UDF_GRPC_WORKER_SERVICE_H
#define UDF_GRPC_WORKER_SERVICE_H

#include "api/functions.h"
#include "grpc/rpc.h"

#include <stddef.h>
#include <stdint.h>

int worker_service_register(struct rpc_server *s, struct functions *f);

enum worker_method { WORKER_CREATE, WORKER_ALTER, WORKER_DROP, WORKER_LIST };

/* Decodes and checks one request as the method's handler does, without acting (for tests
 * and fuzzing). md_tenant: the x-databend-tenant metadata or NULL. 0, or -EINVAL with err. */
int worker_service_decode(enum worker_method m, const uint8_t *req, size_t len,
			  const char *md_tenant, char *err, size_t errlen);

#endif
