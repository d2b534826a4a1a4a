/*
 * Generation 1's spec JSON parser and type checker on arbitrary text, with request imports
 * taken from the input's tail (lines "location\turl\ttag" after a NUL), so the multiset
 * pairing is exercised too. Must never crash, leak or read out of bounds.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/databend_type.h"
#include "grpc/udf_spec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[512];
	char *text = malloc(size + 1);
	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	size_t json_len = strlen(text);
	struct udf_import_in imports[UDF_SPEC_MAX_IMPORTS + 2];
	size_t n = 0;
	char *rest = json_len < size ? text + json_len + 1 : NULL;
	while (rest && *rest && n < sizeof(imports) / sizeof(imports[0])) {
		char *line = rest;
		char *nl = strchr(rest, '\n');
		if (nl)
			*nl = '\0';
		rest = nl ? nl + 1 : NULL;
		char *t1 = strchr(line, '\t');
		char *t2 = t1 ? strchr(t1 + 1, '\t') : NULL;
		if (t1)
			*t1 = '\0';
		if (t2)
			*t2 = '\0';
		imports[n++] = (struct udf_import_in){line, t1 ? t1 + 1 : NULL, t2 ? t2 + 1 : NULL};
	}
	struct udf_spec s;
	if (udf_spec_parse(text, json_len, imports, n, &s, err, sizeof(err)) == 0)
		udf_spec_free(&s);
	(void)databend_type_valid(text);
	(void)udf_python_identifier(text);
	free(text);
	return 0;
}
