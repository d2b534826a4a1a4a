/* The UdfFunction status reader (udf/function.c), the TTL sweep's judgement (api/gc.c) and
 * the Secret token reader (api/tokens.c) on any object. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/gc.h"
#include "api/tokens.h"
#include "udf/function.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	cJSON *obj = cJSON_ParseWithLength((const char *)data, size);
	if (!obj)
		return 0;
	struct fn_status st;
	fn_read_status(obj, &st);
	if (st.ready && (!st.endpoint || !st.token_secret || st.failed))
		__builtin_trap(); /* the hot path copies both */
	if (st.endpoint)
		(void)strlen(st.endpoint);
	if (st.message)
		(void)strlen(st.message);
	(void)fn_matches(obj, "tenant", "key");
	(void)gc_expired(obj, 60, time(NULL));
	char *tok = tokens_of_secret(obj);
	if (tok && !*tok)
		__builtin_trap();
	free(tok);
	cJSON_Delete(obj);
	return 0;
}
