#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "util/log.h"

static void text_line_has_level_component_and_message(void **state)
{
	char buf[256];
	int n = log_format_line(buf, sizeof(buf), LOG_FORMAT_TEXT, LOG_LEVEL_WARN, "kube",
				"watch restarted", "2026-01-01T00:00:00.000Z");
	assert_int_equal(n, (int)strlen(buf));
	assert_string_equal(buf, "2026-01-01T00:00:00.000Z warn  kube: watch restarted\n");
}

static void json_line_escapes_quotes_and_controls(void **state)
{
	char buf[256];
	log_format_line(buf, sizeof(buf), LOG_FORMAT_JSON, LOG_LEVEL_ERROR, "grpc",
			"bad \"spec\"\n\\x", "T");
	assert_string_equal(buf, "{\"ts\":\"T\",\"level\":\"error\",\"component\":\"grpc\","
				 "\"msg\":\"bad \\\"spec\\\"\\u000a\\\\x\"}\n");
}

static void text_line_flattens_newlines(void **state)
{
	char buf[128];
	log_format_line(buf, sizeof(buf), LOG_FORMAT_TEXT, LOG_LEVEL_INFO, "m", "a\nb", "T");
	assert_string_equal(buf, "T info  m: a b\n");
}

static void long_message_is_truncated_but_still_one_line(void **state)
{
	char buf[100];
	char msg[1000];
	memset(msg, 'x', sizeof(msg) - 1);
	msg[sizeof(msg) - 1] = '\0';
	int n = log_format_line(buf, sizeof(buf), LOG_FORMAT_JSON, LOG_LEVEL_INFO, "m", msg, "T");
	assert_true(n < (int)sizeof(buf));
	assert_int_equal(buf[n - 1], '\n');
	assert_memory_equal(buf + n - 3, "\"}\n", 3);
	assert_null(strchr(buf, '\n') == buf + n - 1 ? NULL : buf);
}

static void parse_level_and_format(void **state)
{
	enum log_level l;
	enum log_format f;
	assert_int_equal(log_parse_level("debug", &l), 0);
	assert_int_equal(l, LOG_LEVEL_DEBUG);
	assert_int_equal(log_parse_level("error", &l), 0);
	assert_int_equal(l, LOG_LEVEL_ERROR);
	assert_true(log_parse_level("verbose", &l) < 0);
	assert_true(log_parse_level(NULL, &l) < 0);
	assert_int_equal(log_parse_format("json", &f), 0);
	assert_int_equal(f, LOG_FORMAT_JSON);
	assert_true(log_parse_format("xml", &f) < 0);
}

static void level_filter(void **state)
{
	log_setup(LOG_LEVEL_WARN, LOG_FORMAT_TEXT);
	assert_false(log_enabled(LOG_LEVEL_INFO));
	assert_true(log_enabled(LOG_LEVEL_ERROR));
	log_setup(LOG_LEVEL_INFO, LOG_FORMAT_TEXT);
	assert_true(log_enabled(LOG_LEVEL_INFO));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(text_line_has_level_component_and_message),
	    cmocka_unit_test(json_line_escapes_quotes_and_controls),
	    cmocka_unit_test(text_line_flattens_newlines),
	    cmocka_unit_test(long_message_is_truncated_but_still_one_line),
	    cmocka_unit_test(parse_level_and_format),
	    cmocka_unit_test(level_filter),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
