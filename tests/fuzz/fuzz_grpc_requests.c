/*
 * Every request decoder of the gRPC endpoint on arbitrary bytes: ApplyUdfResource (with the
 * spec JSON inside), ApplyResource (with the script scan), and the four WorkerService
 * requests. The first byte picks the method, the rest is the message. Must never crash, leak
 * or read out of bounds.
 */
#include <stddef.h>
#include <stdint.h>

#include "grpc/resource_service.h"
#include "grpc/udf_service.h"
#include "grpc/worker_service.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[512];
	if (size < 1)
		return 0;
	const uint8_t *msg = data + 1;
	size_t len = size - 1;
	switch (data[0] % 7) {
	case 0: {
		struct udf_spec s;
		if (udf_service_decode(msg, len, &s, err, sizeof(err)) == 0)
			udf_spec_free(&s);
		break;
	}
	case 1:
		(void)resource_service_decode(msg, len, err, sizeof(err));
		break;
	case 2:
		(void)worker_service_decode(WORKER_CREATE, msg, len, NULL, err, sizeof(err));
		break;
	case 3:
		(void)worker_service_decode(WORKER_ALTER, msg, len, "t", err, sizeof(err));
		break;
	case 4:
		(void)worker_service_decode(WORKER_DROP, msg, len, NULL, err, sizeof(err));
		break;
	case 5:
		(void)worker_service_decode(WORKER_LIST, msg, len, NULL, err, sizeof(err));
		break;
	default:
		(void)worker_service_decode(WORKER_CREATE, msg, len, "test_tenant", err,
					    sizeof(err));
		break;
	}
	return 0;
}
