/* An exec credential plugin's output (kube/config.c): the ExecCredential reader. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kube/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *token = NULL;
	time_t expiry = -1;
	int rc = kube_exec_credential_parse((const char *)data, size, &token, &expiry);
	if (rc == 0 && (!token || !*token || expiry < 0))
		__builtin_trap();
	if (rc < 0 && token)
		__builtin_trap();
	free(token);
	return 0;
}
