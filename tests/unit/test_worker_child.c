/* What the worker reads from its children: lines, ready lines, argv, zygote replies, stats. */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "child.h"

struct seen {
	char lines[8][64];
	int n;
};

static void collect(void *arg, char *line)
{
	struct seen *s = arg;

	if (s->n < 8)
		strncpy(s->lines[s->n], line, 63);
	s->n++;
}

static void lines_split_and_overlong_ones_drop_whole(void **state)
{
	static struct child_lines lb;
	static char big[CHILD_LINE_MAX * 2];
	struct seen s = {0};

	(void)state;
	child_lines_feed(&lb, "rea", 3, collect, &s);
	child_lines_feed(&lb, "dy\nfailed x y\npartial", 21, collect, &s);
	assert_int_equal(s.n, 2);
	assert_string_equal(s.lines[0], "ready");
	assert_string_equal(s.lines[1], "failed x y");
	child_lines_feed(&lb, "\n", 1, collect, &s);
	assert_string_equal(s.lines[2], "partial");
	/* An overlong line whose tail reads "ready": nothing of it is a line. */
	memset(big, 'x', sizeof(big));
	memcpy(big + sizeof(big) - 6, "ready\n", 6);
	child_lines_feed(&lb, big, sizeof(big), collect, &s);
	assert_int_equal(s.n, 3);
	child_lines_feed(&lb, "ok\n", 3, collect, &s);
	assert_int_equal(s.n, 4);
	assert_string_equal(s.lines[3], "ok");
}

static void ready_lines(void **state)
{
	struct child_ready r;
	char a[] = "ready", b[] = "ready [\"p\"]", c[] = "failed serve boom: x y", d[] = "readyish",
	     e[] = "failed thisstepnameiswaytoolongforthirtytwobytes r";

	(void)state;
	child_ready_parse(a, &r);
	assert_int_equal(r.kind, CHILD_READY);
	assert_null(r.argv_json);
	child_ready_parse(b, &r);
	assert_string_equal(r.argv_json, "[\"p\"]");
	child_ready_parse(c, &r);
	assert_int_equal(r.kind, CHILD_FAILED);
	assert_string_equal(r.step, "serve");
	assert_string_equal(r.reason, "boom: x y");
	child_ready_parse(d, &r);
	assert_int_equal(r.kind, CHILD_OTHER);
	child_ready_parse(e, &r);
	assert_int_equal(strlen(r.step), 31);
}

static void argv_must_be_strings(void **state)
{
	cJSON *tree;
	char *args[4];

	(void)state;
	assert_int_equal(child_argv_parse("[\"/bin/python\",\"-I\",\"x.py\"]", &tree, args, 4), 3);
	assert_string_equal(args[0], "/bin/python");
	assert_null(args[3]);
	cJSON_Delete(tree);
	assert_int_equal(child_argv_parse("[\"a\",\"b\",\"c\",\"d\"]", &tree, args, 4), -EINVAL);
	assert_int_equal(child_argv_parse("[]", &tree, args, 4), -EINVAL);
	assert_int_equal(child_argv_parse("[\"\"]", &tree, args, 4), -EINVAL);
	assert_int_equal(child_argv_parse("[1]", &tree, args, 4), -EINVAL);
	assert_int_equal(child_argv_parse("{\"a\":\"b\"}", &tree, args, 4), -EINVAL);
	assert_int_equal(child_argv_parse("[\"a\"", &tree, args, 4), -EINVAL);
}

static void zygote_reply_pids(void **state)
{
	pid_t pid = 0;

	(void)state;
	assert_int_equal(child_zygote_reply_parse("pid 4242", &pid), 0);
	assert_int_equal(pid, 4242);
	/* kill(-pid) on 0, 1 or -1 would hit our own group, init or everything we may signal */
	assert_int_equal(child_zygote_reply_parse("pid 0", &pid), -EINVAL);
	assert_int_equal(child_zygote_reply_parse("pid 1", &pid), -EINVAL);
	assert_int_equal(child_zygote_reply_parse("pid -1", &pid), -EINVAL);
	assert_int_equal(child_zygote_reply_parse("pid 99999999999", &pid), -EINVAL);
	assert_int_equal(child_zygote_reply_parse("pid 12x", &pid), -EINVAL);
	assert_int_equal(child_zygote_reply_parse("error fork failed", &pid), -EINVAL);
}

static void put_slot(unsigned char *mem, int i, uint64_t c, double f, double l)
{
	memcpy(mem + i * CHILD_STATS_SLOT_SIZE, &c, 8);
	memcpy(mem + i * CHILD_STATS_SLOT_SIZE + 8, &f, 8);
	memcpy(mem + i * CHILD_STATS_SLOT_SIZE + 16, &l, 8);
}

static void stats_are_clamped(void **state)
{
	unsigned char mem[4 * CHILD_STATS_SLOT_SIZE] = {0};
	struct child_stats s;

	(void)state;
	put_slot(mem, 0, UINT64_MAX, INFINITY, NAN);
	put_slot(mem, 1, 5, -1e300, 1e300);
	put_slot(mem, 2, 3, 1.7e9, 1.70001e9);
	put_slot(mem, 3, 2, 1.6e9, 1.6e9);
	child_stats_sum(mem, 4, 2e9, &s);
	assert_true(s.count == CHILD_STATS_MAX_COUNT + 10);
	assert_true(s.first == 1.6e9);
	assert_true(s.last == 1.70001e9);
	child_stats_sum(NULL, 4, 2e9, &s);
	assert_true(s.count == 0 && s.first == 0 && s.last == 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(lines_split_and_overlong_ones_drop_whole),
	    cmocka_unit_test(ready_lines),
	    cmocka_unit_test(argv_must_be_strings),
	    cmocka_unit_test(zygote_reply_pids),
	    cmocka_unit_test(stats_are_clamped),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
