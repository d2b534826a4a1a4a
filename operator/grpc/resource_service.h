/*
 * grpc/resource_service: protocol 2, resourceproto.ResourceService/ApplyResource
 * {type, script} -> {endpoint, headers}. The tenant comes from x-databend-tenant; type is
 * "udf" (or empty); the UdfFunction is "r-<content key of the script>" (script.h), answered
 * as in protocol 1 (udf_service.h).
 */
#ifndef UDF_GRPC_RESOURCE_SERVICE_H
#define UDF_GRPC_RESOURCE_SERVICE_H

#include "api/functions.h"
#include "grpc/rpc.h"

#include <stddef.h>
#include <stdint.h>

int resource_service_register(struct rpc_server *s, struct functions *f);

/* Decodes and checks one request (type, script) without acting: 0, or -EINVAL with err. */
int resource_service_decode(const uint8_t *req, size_t len, char *err, size_t errlen);

#endif
