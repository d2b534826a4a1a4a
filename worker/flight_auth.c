#include "flight_auth.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <nghttp2/nghttp2.h>
#include <openssl/crypto.h>

#define PREFACE	    "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#define PREFACE_LEN 24
#define FRAME_HDR   9

#define TYPE_HEADERS	  0x1
#define TYPE_SETTINGS	  0x4
#define TYPE_GOAWAY	  0x7
#define TYPE_CONTINUATION 0x9
#define FLAG_END_STREAM	  0x1
#define FLAG_END_HEADERS  0x4
#define FLAG_PADDED	  0x8
#define FLAG_PRIORITY	  0x20

struct frame {
	size_t len;
	unsigned type, flags;
	uint32_t stream;
	const unsigned char *payload;
};

/* The frame at *off, or -EAGAIN while it has not fully arrived. */
static int next_frame(const unsigned char *in, size_t len, size_t *off, struct frame *f)
{
	const unsigned char *h = in + *off;

	if (len - *off < FRAME_HDR)
		return -EAGAIN;
	f->len = (size_t)h[0] << 16 | (size_t)h[1] << 8 | h[2];
	f->type = h[3];
	f->flags = h[4];
	f->stream = ((uint32_t)h[5] << 24 | (uint32_t)h[6] << 16 | (uint32_t)h[7] << 8 | h[8]) &
		    0x7fffffffu;
	if (len - *off - FRAME_HDR < f->len)
		return -EAGAIN;
	f->payload = h + FRAME_HDR;
	*off += FRAME_HDR + f->len;
	return 0;
}

static int value_is(const nghttp2_nv *nv, const char *want)
{
	size_t n = strlen(want);

	return nv->valuelen == n && CRYPTO_memcmp(nv->value, want, n) == 0;
}

/* Decodes one whole header block; 0 when token and tenant are there and nothing contradicts
 * them. The HPACK dynamic table starts empty on a new connection, so the first block decodes
 * on its own. */
static int check_block(const unsigned char *block, size_t len, const char *token,
		       const char *tenant)
{
	nghttp2_hd_inflater *inf;
	int token_ok = 0, tenant_ok = 0, bad = 0, rc = 0;

	if (nghttp2_hd_inflate_new(&inf) != 0)
		return -ENOMEM;
	/* Whatever table size the backend's SETTINGS may have allowed the client. */
	nghttp2_hd_inflate_change_table_size(inf, 1u << 16);
	for (;;) {
		nghttp2_nv nv;
		int flags = 0;
		ssize_t n = nghttp2_hd_inflate_hd2(inf, &nv, &flags, block, len, 1);

		if (n < 0) {
			rc = -EPROTO;
			break;
		}
		block += n;
		len -= (size_t)n;
		if (flags & NGHTTP2_HD_INFLATE_EMIT) {
			if (nv.namelen == 15 && memcmp(nv.name, "x-authorization", 15) == 0) {
				if (value_is(&nv, token))
					token_ok = 1;
				else
					bad = 1;
			} else if (nv.namelen == 17 &&
				   memcmp(nv.name, "x-databend-tenant", 17) == 0) {
				if (value_is(&nv, tenant))
					tenant_ok = 1;
				else
					bad = 1;
			}
		}
		if (flags & NGHTTP2_HD_INFLATE_FINAL) {
			nghttp2_hd_inflate_end_headers(inf);
			break;
		}
		if (n == 0 && !(flags & NGHTTP2_HD_INFLATE_EMIT)) {
			rc = -EPROTO; /* no progress on a final block */
			break;
		}
	}
	nghttp2_hd_inflate_del(inf);
	if (rc)
		return rc;
	return token_ok && tenant_ok && !bad ? 0 : -EACCES;
}

/* Appends a HEADERS or CONTINUATION payload (padding and priority removed) to the block. */
static int add_fragment(const struct frame *f, unsigned char *block, size_t *block_len)
{
	const unsigned char *p = f->payload;
	size_t n = f->len, pad = 0;

	if (f->type == TYPE_HEADERS && (f->flags & FLAG_PADDED)) {
		if (n < 1)
			return -EPROTO;
		pad = p[0];
		p++;
		n--;
	}
	if (f->type == TYPE_HEADERS && (f->flags & FLAG_PRIORITY)) {
		if (n < 5)
			return -EPROTO;
		p += 5;
		n -= 5;
	}
	if (n < pad)
		return -EPROTO;
	n -= pad;
	memcpy(block + *block_len, p, n);
	*block_len += n;
	return 0;
}

int flight_auth_check(const unsigned char *in, size_t len, const char *token, const char *tenant,
		      uint32_t *stream_id)
{
	struct frame f;
	unsigned char *block = NULL;
	size_t off = PREFACE_LEN, block_len = 0;
	int rc, frames = 0;

	*stream_id = 0;
	if (len < PREFACE_LEN)
		return memcmp(in, PREFACE, len) == 0 ? -EAGAIN : -EPROTO;
	if (memcmp(in, PREFACE, PREFACE_LEN) != 0)
		return -EPROTO;
	for (;;) {
		rc = next_frame(in, len, &off, &f);
		if (rc)
			return rc;
		if (f.type == TYPE_HEADERS)
			break;
		if (f.type == TYPE_CONTINUATION || ++frames > FLIGHT_AUTH_MAX_FRAMES)
			return -EPROTO;
	}
	*stream_id = f.stream;
	if (f.stream == 0)
		return -EPROTO;
	/* The block is never longer than the bytes that carry it. */
	block = malloc(len - PREFACE_LEN + 1);
	if (!block)
		return -ENOMEM;
	rc = add_fragment(&f, block, &block_len);
	frames = 0;
	while (rc == 0 && !(f.flags & FLAG_END_HEADERS)) {
		rc = next_frame(in, len, &off, &f);
		if (rc)
			break;
		if (f.type != TYPE_CONTINUATION || f.stream != *stream_id ||
		    ++frames > FLIGHT_AUTH_MAX_FRAMES)
			rc = -EPROTO;
		else
			rc = add_fragment(&f, block, &block_len);
	}
	if (rc == 0)
		rc = check_block(block, block_len, token ? token : "", tenant ? tenant : "");
	free(block);
	if (rc == 0 && (!token || !token[0]))
		rc = -EACCES;
	return rc;
}

static unsigned char *put_frame_header(unsigned char *p, size_t len, unsigned type, unsigned flags,
				       uint32_t stream)
{
	*p++ = (unsigned char)(len >> 16);
	*p++ = (unsigned char)(len >> 8);
	*p++ = (unsigned char)len;
	*p++ = (unsigned char)type;
	*p++ = (unsigned char)flags;
	*p++ = (unsigned char)(stream >> 24 & 0x7f);
	*p++ = (unsigned char)(stream >> 16);
	*p++ = (unsigned char)(stream >> 8);
	*p++ = (unsigned char)stream;
	return p;
}

/* An HPACK "literal header field without indexing, new name", lengths < 127, no Huffman. */
static unsigned char *put_literal(unsigned char *p, const char *name, const char *value)
{
	size_t nl = strlen(name), vl = strlen(value);

	*p++ = 0x00;
	*p++ = (unsigned char)nl;
	memcpy(p, name, nl);
	p += nl;
	*p++ = (unsigned char)vl;
	memcpy(p, value, vl);
	return p + vl;
}

int flight_auth_refusal(uint32_t stream_id, const char *message, unsigned char *out, size_t size)
{
	static const unsigned char content_type[] = {
	    0x0f, 0x10, /* literal without indexing, static name 31 (content-type) */
	    16,	  'a',	'p', 'p', 'l', 'i', 'c', 'a', 't', 'i', 'o', 'n', '/', 'g', 'r', 'p', 'c'};
	unsigned char block[256], *b = block, *p = out;
	size_t mlen = strlen(message), blen;

	if (mlen > 120 || size < 3 * FRAME_HDR + 8 + sizeof(block))
		return -ENOSPC;
	*b++ = 0x88; /* :status 200, static index 8 */
	memcpy(b, content_type, sizeof(content_type));
	b += sizeof(content_type);
	b = put_literal(b, "grpc-status", "16");
	b = put_literal(b, "grpc-message", message);
	blen = (size_t)(b - block);
	p = put_frame_header(p, 0, TYPE_SETTINGS, 0, 0);
	if (stream_id) {
		p = put_frame_header(p, blen, TYPE_HEADERS, FLAG_END_STREAM | FLAG_END_HEADERS,
				     stream_id);
		memcpy(p, block, blen);
		p += blen;
	}
	p = put_frame_header(p, 8, TYPE_GOAWAY, 0, 0);
	*p++ = (unsigned char)(stream_id >> 24 & 0x7f);
	*p++ = (unsigned char)(stream_id >> 16);
	*p++ = (unsigned char)(stream_id >> 8);
	*p++ = (unsigned char)stream_id;
	memset(p, 0, 4); /* NO_ERROR: the refusal is in the call's status */
	p += 4;
	return (int)(p - out);
}
