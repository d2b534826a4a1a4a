/*
 * common/databend_type on arbitrary text. Beyond "never crash, leak or read out of bounds":
 * parse and valid agree; DATABEND_TYPE_CANONICAL_SIZE is always room enough; a canonical
 * spelling is valid, uses the same kinds and is its own canonical spelling; a short buffer
 * (sized exactly, so ASan sees an overrun) gives -ENOSPC, never a partial success.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/databend_type.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text, *once, *twice, *small;
	uint32_t kinds = 0, kinds_again = 0;
	size_t small_size;
	int rc;

	if (size == 0 || size > DATABEND_TYPE_MAX_BYTES + 16)
		return 0;
	/* The first byte picks the short buffer's size; the rest is the type. */
	small_size = data[0];
	text = malloc(size);
	once = malloc(DATABEND_TYPE_CANONICAL_SIZE);
	twice = malloc(DATABEND_TYPE_CANONICAL_SIZE);
	small = malloc(small_size ? small_size : 1);
	if (!text || !once || !twice || !small)
		goto out;
	memcpy(text, data + 1, size - 1);
	text[size - 1] = '\0';

	rc = databend_type_parse(text, once, DATABEND_TYPE_CANONICAL_SIZE, &kinds);
	if (rc != 0 && rc != -EINVAL)
		abort();
	if ((rc == 0) != databend_type_valid(text))
		abort();
	if (rc == 0) {
		if (strlen(once) >= DATABEND_TYPE_CANONICAL_SIZE)
			abort();
		if (databend_type_parse(once, twice, DATABEND_TYPE_CANONICAL_SIZE, &kinds_again))
			abort();
		if (strcmp(once, twice) != 0 || kinds != kinds_again)
			abort();
		rc = databend_type_parse(text, small, small_size, NULL);
		if (strlen(once) < small_size ? rc != 0 : rc != -ENOSPC)
			abort();
		if (rc == 0 && strcmp(small, once) != 0)
			abort();
	}
out:
	free(text);
	free(once);
	free(twice);
	free(small);
	return 0;
}
