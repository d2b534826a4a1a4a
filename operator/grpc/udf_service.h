/*
 * grpc/udf_service: protocol 1, udfproto.UdfService/ApplyUdfResource.
 *
 * The call's tenant (x-databend-tenant) names the namespace; the spec and imports are checked
 * (udf_spec.h) and name the UdfFunction "<handler>-<content key>" there. The function is
 * created or reused, and the call waits for it to become Ready until its deadline minus a
 * margin (service_answer_at), then answers:
 * - OK {endpoint, headers {"x-authorization": token}} when Ready, or when the function
 *   controller has published the endpoint that will become usable (status.endpoint and the
 *   token Secret) though it is not Ready yet: query retries connections for ~12 s;
 * - UNAVAILABLE "... is still being provisioned ..." when no endpoint is known by then;
 * - FAILED_PRECONDITION with the function's own reason when provisioning failed;
 * - INVALID_ARGUMENT naming the field for a bad request or tenant;
 * - UNAVAILABLE when the Kubernetes API server does not answer.
 */
#ifndef UDF_GRPC_UDF_SERVICE_H
#define UDF_GRPC_UDF_SERVICE_H

#include <stddef.h>
#include <stdint.h>

#include "api/functions.h"
#include "grpc/rpc.h"
#include "grpc/udf_spec.h"

int udf_service_register(struct rpc_server *s, struct functions *f);

/* Decodes and checks one request (for tests and fuzzing): 0, or -EINVAL with err. */
int udf_service_decode(const uint8_t *req, size_t len, struct udf_spec *out, char *err,
		       size_t errlen);

#endif
