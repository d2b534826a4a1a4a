/*
 * The specialize request parser (POST /v1/specialize's body) on arbitrary bytes, plus the
 * type-string and PEP 723 readers it uses. Must never crash, leak or read out of bounds.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "spec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct spec_request req;
	char err[256], *text, **deps = NULL;
	size_t n = 0, i;

	if (spec_parse((const char *)data, size, &req, err, sizeof(err)) == 0)
		spec_free(&req);
	text = malloc(size + 1);
	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	(void)spec_type_servable(text);
	(void)spec_python_identifier(text);
	(void)spec_pep723_dependencies(text, &deps, &n, SPEC_MAX_PACKAGES);
	for (i = 0; i < n; i++)
		free(deps[i]);
	free(deps);
	free(text);
	return 0;
}
