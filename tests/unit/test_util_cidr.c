/* util/cidr: parsing address-range lists and matching addresses, IPv4-mapped IPv6 included. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "util/cidr.h"

static int has(const struct cidr_set *s, const char *addr)
{
	struct sockaddr_in in = {.sin_family = AF_INET};
	struct sockaddr_in6 in6 = {.sin6_family = AF_INET6};
	if (inet_pton(AF_INET, addr, &in.sin_addr) == 1)
		return cidr_set_contains(s, (struct sockaddr *)&in);
	assert_int_equal(inet_pton(AF_INET6, addr, &in6.sin6_addr), 1);
	return cidr_set_contains(s, (struct sockaddr *)&in6);
}

static void default_list_blocks_internal_addresses(void **state)
{
	struct cidr_set s;
	char err[128];
	assert_int_equal(cidr_set_parse(CIDR_DEFAULT_BLOCKED, &s, err, sizeof(err)), 0);
	const char *blocked[] = {
	    "127.0.0.1",       "127.9.9.9",   "::1",	    "169.254.1.2", "fe80::1",
	    "febf::1",	       "0.0.0.0",     "::",	    "10.96.0.1",   "172.16.0.1",
	    "172.31.255.255",  "192.168.1.1", "100.64.0.1", "fd00::1",	   "::ffff:127.0.0.1",
	    "::ffff:10.0.0.1", "224.0.0.1"};
	const char *allowed[] = {"8.8.8.8", "172.32.0.1",     "192.169.0.1", "2001:db8::1",
				 "fec0::1", "::ffff:8.8.8.8", "100.128.0.1", "11.0.0.1"};
	for (size_t i = 0; i < sizeof(blocked) / sizeof(*blocked); i++)
		assert_true(has(&s, blocked[i]));
	for (size_t i = 0; i < sizeof(allowed) / sizeof(*allowed); i++)
		assert_false(has(&s, allowed[i]));
}

static void custom_lists(void **state)
{
	struct cidr_set s;
	char err[128];
	assert_int_equal(
	    cidr_set_parse(" 127.0.0.1/32 , 127.0.0.3,2001:db8::/33", &s, err, sizeof(err)), 0);
	assert_int_equal(s.n, 3);
	assert_true(has(&s, "127.0.0.1"));
	assert_false(has(&s, "127.0.0.2"));
	assert_true(has(&s, "127.0.0.3"));
	assert_true(has(&s, "2001:db8:7fff::1"));
	assert_false(has(&s, "2001:db8:8000::1"));
	assert_int_equal(cidr_set_parse("", &s, err, sizeof(err)), 0);
	assert_int_equal(s.n, 0);
	assert_false(has(&s, "127.0.0.1"));
	assert_int_equal(cidr_set_parse("0.0.0.0/0", &s, err, sizeof(err)), 0);
	assert_true(has(&s, "8.8.8.8"));
	assert_false(has(&s, "2001:db8::1")); /* an IPv4 range says nothing of IPv6 */
}

static void bad_lists(void **state)
{
	struct cidr_set s;
	char err[128];
	const char *bad[] = {"10.0.0.0/33", "::/129",	  "example.com", "10.0.0.0/",
			     "10.0.0.0/x",  "1.2.3.4/-1", "10.0.0/8",	 "10.0.0.0/8/8"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		assert_int_equal(cidr_set_parse(bad[i], &s, err, sizeof(err)), -EINVAL);
		assert_non_null(strstr(err, "is not an address range"));
	}
	char many[CIDR_MAX * 12 + 20] = "";
	for (int i = 0; i <= CIDR_MAX; i++)
		strcat(many, "10.0.0.1/32,");
	assert_int_equal(cidr_set_parse(many, &s, err, sizeof(err)), -ENOSPC);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(default_list_blocks_internal_addresses),
	    cmocka_unit_test(custom_lists),
	    cmocka_unit_test(bad_lists),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
