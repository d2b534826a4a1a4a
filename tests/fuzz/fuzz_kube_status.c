/* The Kubernetes Status parser, for any body an error answer may carry. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "kube/rest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kube_status st;
	long code = size ? 400 + data[0] % 200 : 500;

	kube_status_parse((const char *)data, size, code, &st);
	if (memchr(st.reason, '\0', sizeof(st.reason)) == NULL ||
	    memchr(st.message, '\0', sizeof(st.message)) == NULL)
		__builtin_trap();
	(void)kube_error_from_status(st.code, &st);
	(void)kube_strerror(kube_error_from_status(code, &st));
	return 0;
}
