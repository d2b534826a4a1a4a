/*
 * The script scanner and content key (generations 2 and 3), and the ETag response-header
 * reader, on arbitrary bytes. Must never crash, leak or read out of bounds.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "grpc/etag.h"
#include "grpc/script.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[512], key[65], etag[64] = "";
	struct script_info in;
	const char *tags[SCRIPT_MAX_IMPORTS];
	long long total = -1, length = -1;

	if (script_scan((const char *)data, size, &in, err, sizeof(err)) == 0) {
		for (size_t i = 0; i < in.n_imports; i++)
			tags[i] = in.imports[i].url;
		(void)script_content_key((const char *)data, size, &in, tags, key);
		script_info_free(&in);
	}
	etag_header_line((const char *)data, size, etag, sizeof(etag), &total, &length);
	return 0;
}
