/* The Flight port's admission check, on header blocks encoded by a real HPACK encoder
 * (nghttp2's, Huffman where shorter, as gRPC clients do). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <nghttp2/nghttp2.h>

#include "flight_auth.h"

#define TOKEN	"0123456789abcdef0123456789abcdef"
#define TENANT	"tenant1"
#define PREFACE "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

struct msg {
	unsigned char b[8192];
	size_t len;
};

static void put(struct msg *m, const void *p, size_t n)
{
	assert_true(m->len + n <= sizeof(m->b));
	memcpy(m->b + m->len, p, n);
	m->len += n;
}

static void frame(struct msg *m, unsigned type, unsigned flags, uint32_t stream,
		  const unsigned char *payload, size_t n)
{
	unsigned char h[9] = {(unsigned char)(n >> 16),
			      (unsigned char)(n >> 8),
			      (unsigned char)n,
			      (unsigned char)type,
			      (unsigned char)flags,
			      (unsigned char)(stream >> 24),
			      (unsigned char)(stream >> 16),
			      (unsigned char)(stream >> 8),
			      (unsigned char)stream};

	put(m, h, 9);
	put(m, payload, n);
}

#define NV(n, v)                                                                                   \
	{                                                                                          \
		(uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, sizeof(v) - 1, NGHTTP2_NV_FLAG_NONE \
	}

/* A gRPC call's header block with the given token and tenant (NULL: header left out). */
static size_t block(unsigned char *out, size_t size, const char *token, const char *tenant)
{
	nghttp2_nv nv[8] = {
	    NV(":method", "POST"),
	    NV(":scheme", "http"),
	    NV(":path", "/arrow.flight.protocol.FlightService/DoExchange"),
	    NV(":authority", "127.0.0.1:8815"),
	    NV("content-type", "application/grpc"),
	};
	size_t n = 5;
	nghttp2_hd_deflater *d;
	ssize_t len;

	if (token) {
		nv[n] = (nghttp2_nv)NV("x-authorization", "");
		nv[n].value = (uint8_t *)token;
		nv[n++].valuelen = strlen(token);
	}
	if (tenant) {
		nv[n] = (nghttp2_nv)NV("x-databend-tenant", "");
		nv[n].value = (uint8_t *)tenant;
		nv[n++].valuelen = strlen(tenant);
	}
	assert_int_equal(nghttp2_hd_deflate_new(&d, 4096), 0);
	len = nghttp2_hd_deflate_hd(d, out, size, nv, n);
	nghttp2_hd_deflate_del(d);
	assert_true(len > 0);
	return (size_t)len;
}

static void client_start(struct msg *m, const char *token, const char *tenant)
{
	unsigned char b[2048], settings[6] = {0, 4, 0, 0, 0xff, 0xff};
	size_t n = block(b, sizeof(b), token, tenant);

	m->len = 0;
	put(m, PREFACE, 24);
	frame(m, 0x4, 0, 0, settings, sizeof(settings));
	frame(m, 0x8, 0, 0, (const unsigned char *)"\0\0\1\0", 4); /* WINDOW_UPDATE */
	frame(m, 0x1, 0x4, 1, b, n);
}

static int check(const struct msg *m, uint32_t *sid)
{
	return flight_auth_check(m->b, m->len, TOKEN, TENANT, sid);
}

static void admits_token_and_tenant_and_waits_for_every_byte(void **state)
{
	struct msg m;
	uint32_t sid;
	size_t i;

	(void)state;
	client_start(&m, TOKEN, TENANT);
	for (i = 0; i < m.len; i++)
		assert_int_equal(flight_auth_check(m.b, i, TOKEN, TENANT, &sid), -EAGAIN);
	assert_int_equal(check(&m, &sid), 0);
	assert_int_equal(sid, 1);
}

static void refuses_missing_wrong_or_extra(void **state)
{
	struct msg m;
	uint32_t sid;

	(void)state;
	client_start(&m, NULL, TENANT);
	assert_int_equal(check(&m, &sid), -EACCES);
	assert_int_equal(sid, 1);
	client_start(&m, "0123456789abcdef0123456789abcdeX", TENANT);
	assert_int_equal(check(&m, &sid), -EACCES);
	client_start(&m, TOKEN "0", TENANT);
	assert_int_equal(check(&m, &sid), -EACCES);
	client_start(&m, TOKEN, NULL);
	assert_int_equal(check(&m, &sid), -EACCES);
	client_start(&m, TOKEN, "tenant2");
	assert_int_equal(check(&m, &sid), -EACCES);
	client_start(&m, TOKEN, TENANT);
	assert_int_equal(flight_auth_check(m.b, m.len, "", TENANT, &sid), -EACCES);
	assert_int_equal(flight_auth_check(m.b, m.len, NULL, NULL, &sid), -EACCES);
}

static void reads_continuation_padding_and_priority(void **state)
{
	unsigned char b[2048], first[512];
	struct msg m = {0};
	uint32_t sid;
	size_t n = block(b, sizeof(b), TOKEN, TENANT), half = n / 2;

	(void)state;
	put(&m, PREFACE, 24);
	/* HEADERS, PADDED|PRIORITY: pad length, 5 bytes of priority, fragment, padding */
	first[0] = 3;
	memset(first + 1, 0, 5);
	memcpy(first + 6, b, half);
	memset(first + 6 + half, 0, 3);
	frame(&m, 0x1, 0x8 | 0x20, 3, first, 6 + half + 3);
	assert_int_equal(check(&m, &sid), -EAGAIN);
	frame(&m, 0x9, 0x4, 3, b + half, n - half);
	assert_int_equal(check(&m, &sid), 0);
	assert_int_equal(sid, 3);
}

static void refuses_what_is_not_a_grpc_start(void **state)
{
	unsigned char b[2048];
	struct msg m = {0};
	uint32_t sid;
	size_t n = block(b, sizeof(b), TOKEN, TENANT);
	int i;

	(void)state;
	put(&m, "GET / HTTP/1.1\r\n\r\n", 18);
	assert_int_equal(check(&m, &sid), -EPROTO);
	m.len = 0;
	put(&m, PREFACE, 24);
	for (i = 0; i <= FLIGHT_AUTH_MAX_FRAMES; i++)
		frame(&m, 0x6, 0, 0, (const unsigned char *)"12345678", 8); /* PING */
	frame(&m, 0x1, 0x4, 1, b, n);
	assert_int_equal(check(&m, &sid), -EPROTO);
	m.len = 0;
	put(&m, PREFACE, 24);
	frame(&m, 0x1, 0, 1, b, n / 2);
	frame(&m, 0x9, 0x4, 5, b + n / 2, n - n / 2); /* another stream's CONTINUATION */
	assert_int_equal(check(&m, &sid), -EPROTO);
	m.len = 0;
	put(&m, PREFACE, 24);
	frame(&m, 0x1, 0x4, 1, (const unsigned char *)"\xff\xff\xff\xff", 4); /* bad HPACK */
	assert_int_equal(check(&m, &sid), -EPROTO);
}

static void refusal_is_a_grpc_unauthenticated_status(void **state)
{
	unsigned char out[512];
	nghttp2_hd_inflater *inf;
	const unsigned char *p;
	int len = flight_auth_refusal(7, "no token", out, sizeof(out)), seen = 0;
	size_t hlen;

	(void)state;
	assert_true(len > 0);
	assert_int_equal(out[3], 0x4);	   /* SETTINGS first */
	assert_int_equal(out[9 + 3], 0x1); /* then HEADERS */
	assert_int_equal(out[9 + 4], 0x5); /* END_STREAM | END_HEADERS */
	assert_int_equal(out[9 + 8], 7);   /* on the call's stream */
	hlen = (size_t)out[9] << 16 | (size_t)out[10] << 8 | out[11];
	assert_int_equal(out[18 + hlen + 3], 0x7); /* then GOAWAY */
	assert_int_equal((size_t)len, 18 + hlen + 9 + 8);
	assert_int_equal(nghttp2_hd_inflate_new(&inf), 0);
	p = out + 18;
	for (;;) {
		nghttp2_nv nv;
		int flags = 0;
		ssize_t n = nghttp2_hd_inflate_hd2(inf, &nv, &flags, p, hlen, 1);

		assert_true(n >= 0);
		p += n;
		hlen -= (size_t)n;
		if (flags & NGHTTP2_HD_INFLATE_EMIT) {
			if (nv.namelen == 11 && memcmp(nv.name, "grpc-status", 11) == 0) {
				assert_memory_equal(nv.value, "16", 2);
				seen |= 1;
			}
			if (nv.namelen == 12 && memcmp(nv.name, "grpc-message", 12) == 0) {
				assert_memory_equal(nv.value, "no token", 8);
				seen |= 2;
			}
		}
		if (flags & NGHTTP2_HD_INFLATE_FINAL)
			break;
	}
	nghttp2_hd_inflate_del(inf);
	assert_int_equal(seen, 3);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(admits_token_and_tenant_and_waits_for_every_byte),
	    cmocka_unit_test(refuses_missing_wrong_or_extra),
	    cmocka_unit_test(reads_continuation_padding_and_priority),
	    cmocka_unit_test(refuses_what_is_not_a_grpc_start),
	    cmocka_unit_test(refusal_is_a_grpc_unauthenticated_status),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
