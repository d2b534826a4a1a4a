/* The probes and metrics server's request reader (http/httpd.c), on what one connection may
 * send: at most 8 KiB, NUL-terminated where the server stops reading. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "http/httpd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char buf[8192 + 1];
	char path[1024];
	if (size > 8192)
		return 0;
	memcpy(buf, data, size);
	buf[size] = '\0';
	int rc = httpd_parse_request(buf, size, path, sizeof(path));
	if (rc == 0 && (!memchr(path, '\0', sizeof(path)) || strchr(path, '?')))
		__builtin_trap();
	(void)httpd_parse_request(buf, size, NULL, 0);
	return 0;
}
