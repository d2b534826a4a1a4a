/* api/tokens: reading a token out of a Secret object, whatever its data.token holds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "api/tokens.h"

static char *token_of(const char *b64)
{
	cJSON *secret = cJSON_CreateObject();
	cJSON *data = cJSON_AddObjectToObject(secret, "data");
	cJSON_AddStringToObject(data, "token", b64);
	char *tok = tokens_of_secret(secret);
	cJSON_Delete(secret);
	return tok;
}

static void decodes_each_padding(void **state)
{
	(void)state;
	const char *cases[][2] = {
	    {"YWJj", "abc"}, {"YWJjZA==", "abcd"}, {"YWJjZGU=", "abcde"}, {"YWJjZGVm", "abcdef"}};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *tok = token_of(cases[i][0]);
		assert_non_null(tok);
		assert_string_equal(tok, cases[i][1]);
		free(tok);
	}
}

/* Each of these once read past the buffer ("====") or would yield a token that is not what
 * the Secret holds: refused, never cut short. */
static void refuses_what_is_not_a_token(void **state)
{
	(void)state;
	const char *bad[] = {"",
			     "====",
			     "a===",
			     "YW=j",
			     "YWJ",
			     "YWJj=",
			     "AAAA" /* three NUL bytes */,
			     "YQBi" /* a\0b */,
			     "!!!!"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *tok = token_of(bad[i]);
		if (tok)
			fail_msg("data.token \"%s\" gave \"%s\"", bad[i], tok);
	}
}

static void needs_data_token(void **state)
{
	(void)state;
	cJSON *secret = cJSON_Parse("{\"data\":{\"other\":\"YWJj\"}}");
	assert_null(tokens_of_secret(secret));
	cJSON_Delete(secret);
	secret = cJSON_Parse("{\"data\":{\"token\":42}}");
	assert_null(tokens_of_secret(secret));
	cJSON_Delete(secret);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(decodes_each_padding),
	    cmocka_unit_test(refuses_what_is_not_a_token),
	    cmocka_unit_test(needs_data_token),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
