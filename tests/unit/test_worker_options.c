#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "options.h"
#include "worker.h"

static int run(struct worker_options *o, int argc, char **argv)
{
	return options_parse(argc, argv, o);
}

static void defaults(void **state)
{
	char *argv[] = {"udf-worker", NULL};
	struct worker_options o;

	unsetenv("UDF_PYTHON");
	assert_int_equal(run(&o, 1, argv), 0);
	assert_null(o.control_host);
	assert_int_equal(o.control_port, 9000);
	assert_int_equal(o.flight_port, 8815);
	assert_int_equal(o.status_port, 8080);
	assert_string_equal(o.control_token_file, "/var/run/udf-sandbox/control-token");
	assert_string_equal(o.work_dir, "/app");
	assert_string_equal(o.python, "python3");
	assert_true(o.processes >= 1);
	assert_true(o.zygote);
	setenv("UDF_PYTHON", "/opt/udf/venv/bin/python", 1);
	assert_int_equal(run(&o, 1, argv), 0);
	assert_string_equal(o.python, "/opt/udf/venv/bin/python");
	unsetenv("UDF_PYTHON");
}

static void flags(void **state)
{
	char *argv[] = {"udf-worker",	  "--control-bind-address=127.0.0.1:9100",
			"--flight-port",  "9815",
			"--processes=3",  "--no-zygote",
			"--python=/x/py", NULL};
	struct worker_options o;

	assert_int_equal(run(&o, 7, argv), 0);
	assert_string_equal(o.control_host, "127.0.0.1");
	assert_int_equal(o.control_port, 9100);
	assert_int_equal(o.flight_port, 9815);
	assert_int_equal(o.processes, 3);
	assert_false(o.zygote);
	assert_string_equal(o.python, "/x/py");
}

static void bad_flags(void **state)
{
	char *a[] = {"udf-worker", "--flight-port=0", NULL};
	char *b[] = {"udf-worker", "--processes=x", NULL};
	char *c[] = {"udf-worker", "--control-bind-address=host", NULL};
	char *d[] = {"udf-worker", "--wat", NULL};
	char *e[] = {"udf-worker", "stray", NULL};
	struct worker_options o;

	assert_int_equal(run(&o, 2, a), -22);
	assert_int_equal(run(&o, 2, b), -22);
	assert_int_equal(run(&o, 2, c), -22);
	assert_int_equal(run(&o, 2, d), -22);
	assert_int_equal(run(&o, 2, e), -22);
}

static void flight_limits(void **state)
{
	char *def[] = {"udf-worker", NULL};
	char *set[] = {"udf-worker", "--max-connections=7", "--flight-idle-seconds", "0", NULL};
	char *neg[] = {"udf-worker", "--max-connections=-1", NULL};
	struct worker_options o;

	assert_int_equal(run(&o, 1, def), 0);
	assert_int_equal(o.max_connections, 512);
	assert_int_equal(o.flight_idle_seconds, 300);
	assert_int_equal(run(&o, 4, set), 0);
	assert_int_equal(o.max_connections, 7);
	assert_int_equal(o.flight_idle_seconds, 0);
	assert_int_equal(run(&o, 2, neg), -22);
}

static void addresses(void **state)
{
	char host[64];
	int port;

	assert_int_equal(options_parse_address(":9000", host, sizeof(host), &port), 0);
	assert_string_equal(host, "");
	assert_int_equal(port, 9000);
	assert_int_equal(options_parse_address("0.0.0.0:1", host, sizeof(host), &port), 0);
	assert_string_equal(host, "");
	assert_int_equal(options_parse_address("[::1]:80", host, sizeof(host), &port), 0);
	assert_string_equal(host, "::1");
	assert_int_equal(options_parse_address("10.0.0.1:65536", host, sizeof(host), &port), -22);
	assert_int_equal(options_parse_address("10.0.0.1:", host, sizeof(host), &port), -22);
}

static void token_compare(void **state)
{
	assert_true(worker_token_equal("abc", "abc"));
	assert_false(worker_token_equal("abc", "abd"));
	assert_false(worker_token_equal("abc", "abcd"));
	assert_false(worker_token_equal("abcd", "abc"));
	assert_false(worker_token_equal("", ""));
}

static void token_sha256_flag(void **state)
{
	char *a[] = {"udf-worker",
		     "--control-token-sha256-file=/etc/udf-worker/control/token-sha256", NULL};
	char *both[] = {"udf-worker", "--control-token-file=/x", "--control-token-sha256-file=/y",
			NULL};
	struct worker_options o;

	assert_int_equal(options_parse(2, a, &o), 0);
	assert_string_equal(o.control_token_sha256_file, "/etc/udf-worker/control/token-sha256");
	assert_int_equal(options_parse(3, both, &o), -22);
	assert_int_equal(options_parse(1, a, &o), 0);
	assert_null(o.control_token_sha256_file);
}

static void token_sha256(void **state)
{
	/* sha256("abc"), FIPS 180-2's first example */
	const char *abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
	const char *upper = "BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD";

	assert_true(worker_token_matches_sha256("abc", abc));
	assert_true(worker_token_matches_sha256("abc", upper));
	assert_false(worker_token_matches_sha256("abd", abc));
	assert_false(worker_token_matches_sha256(abc, abc)); /* the hash is not the token */
	assert_false(worker_token_matches_sha256("", "e3b0c44298fc1c149afbf4c8996fb924"
						     "27ae41e4649b934ca495991b7852b855"));
	assert_false(worker_token_matches_sha256("abc", "ba7816bf"));
	assert_false(worker_token_matches_sha256("abc", "xa7816bf8f01cfea414140de5dae2223b00361a3"
							"96177a9cb410ff61f20015ad"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(defaults),	     cmocka_unit_test(flags),
	    cmocka_unit_test(bad_flags),     cmocka_unit_test(addresses),
	    cmocka_unit_test(token_compare), cmocka_unit_test(token_sha256_flag),
	    cmocka_unit_test(token_sha256),  cmocka_unit_test(flight_limits),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
