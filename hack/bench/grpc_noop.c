/*
 * grpc_noop: the baseline of hack/bench/grpc.sh. A unary server on the same gRPC core wrapper
 * (operator/grpc/rpc.c) as udf-operator, answering udfproto.UdfService/ApplyUdfResource with a
 * fixed response and doing nothing else. Prints its port, serves until SIGTERM or SIGINT.
 *
 * usage: grpc_noop [BIND_ADDRESS]   (default 127.0.0.1:0)
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include "grpc/rpc.h"
#include "udf.pb-c.h"

static uint8_t *answer;
static size_t answer_len;

static void on_call(struct rpc_call *call, const uint8_t *req, size_t len, void *arg)
{
	rpc_call_reply(call, answer, answer_len);
}

int main(int argc, char **argv)
{
	struct rpc_server_options o = {.bind_address = argc > 1 ? argv[1] : "127.0.0.1:0"};
	struct rpc_server *s;
	char err[256];
	sigset_t sigs;
	int sig;

	if (argc > 1 && argv[1][0] == '-') {
		printf("usage: grpc_noop [BIND_ADDRESS]\n");
		return 0;
	}
	Udfproto__ApplyUdfResourceResponse out = UDFPROTO__APPLY_UDF_RESOURCE_RESPONSE__INIT;
	Udfproto__ApplyUdfResourceResponse__HeadersEntry h =
	    UDFPROTO__APPLY_UDF_RESOURCE_RESPONSE__HEADERS_ENTRY__INIT;
	Udfproto__ApplyUdfResourceResponse__HeadersEntry *hs[1] = {&h};
	out.endpoint = "http://10.96.0.1:8815";
	h.key = "x-authorization";
	h.value = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
	out.n_headers = 1;
	out.headers = hs;
	answer_len = udfproto__apply_udf_resource_response__get_packed_size(&out);
	answer = malloc(answer_len);
	if (!answer)
		return 1;
	udfproto__apply_udf_resource_response__pack(&out, answer);

	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	if (rpc_server_new(&o, &s, err, sizeof(err)) < 0) {
		fprintf(stderr, "grpc_noop: %s\n", err);
		return 1;
	}
	if (rpc_server_add_method(s, "/udfproto.UdfService/ApplyUdfResource", on_call, NULL) < 0 ||
	    rpc_server_start(s) < 0) {
		fprintf(stderr, "grpc_noop: cannot start\n");
		return 1;
	}
	printf("%d\n", rpc_server_port(s));
	fflush(stdout);
	sigwait(&sigs, &sig);
	rpc_server_stop(s, 1000);
	free(answer);
	return 0;
}
