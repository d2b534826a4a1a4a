/* Fuzzes the grpc.health.v1 Check decoder: any bytes a client sends get an answer or an
 * error status, never a crash or a leak. */
#include <stdint.h>
#include <stdlib.h>

#include "grpc/health.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct health_state *h;
	uint8_t *resp = NULL;
	size_t len = 0;
	const char *msg = NULL;

	if (!h && health_state_new(&h) < 0)
		return 0;
	health_set_serving(h, size & 1);
	if (health_check(h, data, size, &resp, &len, &msg) == RPC_OK && !resp)
		abort();
	free(resp);
	return 0;
}
