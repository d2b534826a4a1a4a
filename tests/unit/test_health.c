#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "grpc/health.h"
#include "health.pb-c.h"

static int decode_status(const uint8_t *buf, size_t len)
{
	Grpc__Health__V1__HealthCheckResponse *r =
	    grpc__health__v1__health_check_response__unpack(NULL, len, buf);
	assert_non_null(r);
	int st = r->status;
	grpc__health__v1__health_check_response__free_unpacked(r, NULL);
	return st;
}

static size_t request(const char *service, uint8_t *buf)
{
	Grpc__Health__V1__HealthCheckRequest req = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
	req.service = (char *)service;
	return grpc__health__v1__health_check_request__pack(&req, buf);
}

static void serving_follows_the_flag(void **state)
{
	struct health_state *h;
	uint8_t req[256], *resp = NULL;
	size_t len = request("", req), rlen = 0;
	const char *msg = NULL;

	assert_int_equal(health_state_new(&h), 0);
	assert_int_equal(health_check(h, req, len, &resp, &rlen, &msg), RPC_OK);
	assert_int_equal(decode_status(resp, rlen),
			 GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING);
	free(resp);
	health_set_serving(h, 1);
	assert_int_equal(health_check(h, req, len, &resp, &rlen, &msg), RPC_OK);
	assert_int_equal(decode_status(resp, rlen),
			 GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING);
	free(resp);
	health_state_free(h);
}

static void named_services(void **state)
{
	struct health_state *h;
	uint8_t req[256], *resp = NULL;
	size_t rlen = 0;
	const char *msg = NULL;

	assert_int_equal(health_state_new(&h), 0);
	health_set_serving(h, 1);
	size_t len = request("resourceproto.WorkerService", req);
	assert_int_equal(health_check(h, req, len, &resp, &rlen, &msg), RPC_OK);
	free(resp);
	resp = NULL;
	len = request("nope.Service", req);
	assert_int_equal(health_check(h, req, len, &resp, &rlen, &msg), RPC_NOT_FOUND);
	assert_null(resp);
	assert_string_equal(msg, "unknown service");
	health_state_free(h);
}

static void garbage_is_invalid_argument(void **state)
{
	struct health_state *h;
	/* Field 1 declared as a 100-byte string with 2 bytes present. */
	const uint8_t bad[] = {0x0a, 100, 'a', 'b'};
	uint8_t *resp = NULL;
	size_t rlen = 0;
	const char *msg = NULL;

	assert_int_equal(health_state_new(&h), 0);
	assert_int_equal(health_check(h, bad, sizeof(bad), &resp, &rlen, &msg),
			 RPC_INVALID_ARGUMENT);
	assert_null(resp);
	assert_non_null(strstr(msg, "HealthCheckRequest"));
	health_state_free(h);
}

static void empty_request_means_whole_server(void **state)
{
	struct health_state *h;
	uint8_t *resp = NULL;
	size_t rlen = 0;
	const char *msg = NULL;

	assert_int_equal(health_state_new(&h), 0);
	assert_int_equal(health_check(h, (const uint8_t *)"", 0, &resp, &rlen, &msg), RPC_OK);
	free(resp);
	health_state_free(h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(serving_follows_the_flag),
	    cmocka_unit_test(named_services),
	    cmocka_unit_test(garbage_is_invalid_argument),
	    cmocka_unit_test(empty_request_means_whole_server),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
