#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "http/httpd.h"

static void split_addresses(void **state)
{
	char host[64];
	int port;

	assert_int_equal(httpd_split_address(":8081", host, sizeof(host), &port), 0);
	assert_string_equal(host, "");
	assert_int_equal(port, 8081);
	assert_int_equal(httpd_split_address("127.0.0.1:0", host, sizeof(host), &port), 0);
	assert_string_equal(host, "127.0.0.1");
	assert_int_equal(port, 0);
	assert_int_equal(httpd_split_address("[::1]:9", host, sizeof(host), &port), 0);
	assert_string_equal(host, "::1");
	assert_int_equal(port, 9);
	assert_true(httpd_split_address("8081", host, sizeof(host), &port) < 0);
	assert_true(httpd_split_address(":99999", host, sizeof(host), &port) < 0);
	assert_true(httpd_split_address(":80x", host, sizeof(host), &port) < 0);
	assert_true(httpd_split_address("::1:80", host, sizeof(host), &port) < 0);
	assert_true(httpd_split_address("[::1]80", host, sizeof(host), &port) < 0);
	assert_true(httpd_split_address("", host, sizeof(host), &port) < 0);
	assert_true(httpd_split_address(NULL, host, sizeof(host), &port) < 0);
}

static void handler(const char *path, int *status, char **body, const char **ctype, void *arg)
{
	(*(int *)arg)++;
	if (strcmp(path, "/ok") == 0) {
		*status = 200;
		*body = strdup("fine\n");
	} else {
		*status = 404;
	}
}

static int request(int port, const char *req, char *out, size_t outlen)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(send(fd, req, strlen(req), 0), (ssize_t)strlen(req));
	size_t n = 0;
	ssize_t r;
	while (n < outlen - 1 && (r = recv(fd, out + n, outlen - 1 - n, 0)) > 0)
		n += (size_t)r;
	out[n] = '\0';
	close(fd);
	return (int)n;
}

static void serves_get_and_rejects_others(void **state)
{
	struct httpd *h;
	char err[128], buf[1024];
	int calls = 0;

	assert_int_equal(httpd_start("127.0.0.1:0", handler, &calls, &h, err, sizeof(err)), 0);
	int port = httpd_port(h);
	assert_true(port > 0);
	request(port, "GET /ok?x=1 HTTP/1.1\r\nHost: x\r\n\r\n", buf, sizeof(buf));
	assert_non_null(strstr(buf, "HTTP/1.1 200 OK"));
	assert_non_null(strstr(buf, "Content-Length: 5\r\n"));
	assert_non_null(strstr(buf, "\r\n\r\nfine\n"));
	request(port, "GET /missing HTTP/1.1\r\n\r\n", buf, sizeof(buf));
	assert_non_null(strstr(buf, "404 Not Found"));
	request(port, "POST /ok HTTP/1.1\r\n\r\n", buf, sizeof(buf));
	assert_non_null(strstr(buf, "405"));
	assert_int_equal(calls, 2);
	httpd_stop(h);
}

static void oversized_request_is_dropped(void **state)
{
	struct httpd *h;
	char err[128], buf[256];
	int calls = 0;
	char *big = malloc(20000);
	memset(big, 'a', 19999);
	big[19999] = '\0';
	memcpy(big, "GET /", 5);

	assert_int_equal(httpd_start("127.0.0.1:0", handler, &calls, &h, err, sizeof(err)), 0);
	int n = request(httpd_port(h), big, buf, sizeof(buf));
	assert_int_equal(n, 0);
	assert_int_equal(calls, 0);
	free(big);
	httpd_stop(h);
}

static void disabled_and_bad_addresses(void **state)
{
	struct httpd *h = (void *)1;
	char err[128];

	assert_int_equal(httpd_start("0", handler, NULL, &h, err, sizeof(err)), 0);
	assert_null(h);
	assert_true(httpd_start("nonsense", handler, NULL, &h, err, sizeof(err)) < 0);
	assert_non_null(strstr(err, "nonsense"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(split_addresses),
	    cmocka_unit_test(serves_get_and_rejects_others),
	    cmocka_unit_test(oversized_request_is_dropped),
	    cmocka_unit_test(disabled_and_bad_addresses),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
