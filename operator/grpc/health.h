/*
 * grpc/health: grpc.health.v1.Health/Check, so kubelet gRPC probes and load balancers can
 * ask whether the operator serves. The serving flag is set by whoever knows (main: the API
 * server is reachable); thread-safe.
 */
#ifndef UDF_GRPC_HEALTH_H
#define UDF_GRPC_HEALTH_H

#include "grpc/rpc.h"

struct health_state;

int health_state_new(struct health_state **out);
void health_state_free(struct health_state *h);
void health_set_serving(struct health_state *h, int serving);
int health_is_serving(const struct health_state *h);

/* Registers Check (and answers Watch with UNIMPLEMENTED through the server's default). */
int health_register(struct rpc_server *s, struct health_state *h);

/* Serializes the answer to one Check request; exposed for unit tests and fuzzing.
 * Returns the gRPC status; *resp (malloc'd) and *len on RPC_OK, *msg on error. */
enum rpc_status health_check(const struct health_state *h, const uint8_t *req, size_t len,
			     uint8_t **resp, size_t *resp_len, const char **msg);

#endif
