/*
 * The Flight port's admission check (worker/flight_auth.c) on arbitrary bytes, as the proxy
 * hands it what a client sent first: up to the proxy's 256 KiB buffer. Must never crash,
 * leak or read out of bounds; also checks that the refusal always fits.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>

#include "flight_auth.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned char out[512];
	uint32_t stream_id;
	int rc;

	if (size > 256 * 1024)
		return 0;
	rc = flight_auth_check(data, size, "0123456789abcdef0123456789abcdef", "tenant1",
			       &stream_id);
	if (rc != 0 && rc != -EAGAIN && rc != -EACCES && rc != -EPROTO && rc != -ENOMEM)
		__builtin_trap();
	if (flight_auth_refusal(stream_id, "refused", out, sizeof(out)) <= 0)
		__builtin_trap();
	return 0;
}
