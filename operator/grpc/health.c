#include "grpc/health.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "health.pb-c.h"

struct health_state {
	atomic_int serving;
};

/* Names a probe may ask for: "" means the whole server. */
static const char *const known_services[] = {
    "",
    "udfproto.UdfService",
    "resourceproto.ResourceService",
    "resourceproto.WorkerService",
};

int health_state_new(struct health_state **out)
{
	struct health_state *h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	*out = h;
	return 0;
}

void health_state_free(struct health_state *h)
{
	free(h);
}

void health_set_serving(struct health_state *h, int serving)
{
	atomic_store(&h->serving, serving ? 1 : 0);
}

int health_is_serving(const struct health_state *h)
{
	return atomic_load(&((struct health_state *)h)->serving);
}

enum rpc_status health_check(const struct health_state *h, const uint8_t *req, size_t len,
			     uint8_t **resp, size_t *resp_len, const char **msg)
{
	Grpc__Health__V1__HealthCheckRequest *in =
	    grpc__health__v1__health_check_request__unpack(NULL, len, req);
	if (!in) {
		*msg = "the HealthCheckRequest could not be decoded";
		return RPC_INVALID_ARGUMENT;
	}
	int known = 0;
	for (size_t i = 0; i < sizeof(known_services) / sizeof(known_services[0]); i++) {
		if (strcmp(in->service, known_services[i]) == 0)
			known = 1;
	}
	grpc__health__v1__health_check_request__free_unpacked(in, NULL);
	if (!known) {
		*msg = "unknown service";
		return RPC_NOT_FOUND;
	}
	Grpc__Health__V1__HealthCheckResponse out = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
	out.status = health_is_serving(h)
			 ? GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING
			 : GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING;
	size_t n = grpc__health__v1__health_check_response__get_packed_size(&out);
	uint8_t *buf = malloc(n ? n : 1);
	if (!buf) {
		*msg = "out of memory";
		return RPC_RESOURCE_EXHAUSTED;
	}
	grpc__health__v1__health_check_response__pack(&out, buf);
	*resp = buf;
	*resp_len = n;
	return RPC_OK;
}

static void on_check(struct rpc_call *call, const uint8_t *req, size_t len, void *arg)
{
	uint8_t *resp = NULL;
	size_t resp_len = 0;
	const char *msg = NULL;
	enum rpc_status st = health_check(arg, req, len, &resp, &resp_len, &msg);
	if (st == RPC_OK)
		rpc_call_reply(call, resp, resp_len);
	else
		rpc_call_fail(call, st, msg);
	free(resp);
}

int health_register(struct rpc_server *s, struct health_state *h)
{
	return rpc_server_add_method(s, "/grpc.health.v1.Health/Check", on_check, h);
}
