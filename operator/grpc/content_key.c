#include "grpc/content_key.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

struct content_key {
	EVP_MD_CTX *ctx;
	int failed;
};

struct content_key *content_key_new(const char *domain)
{
	struct content_key *k = calloc(1, sizeof(*k));
	if (!k)
		return NULL;
	k->ctx = EVP_MD_CTX_new();
	if (!k->ctx || !EVP_DigestInit_ex(k->ctx, EVP_sha256(), NULL)) {
		EVP_MD_CTX_free(k->ctx);
		free(k);
		return NULL;
	}
	content_key_add_str(k, domain);
	return k;
}

void content_key_add(struct content_key *k, const void *data, size_t len)
{
	uint8_t n[8];
	uint64_t v = len;
	for (int i = 0; i < 8; i++)
		n[i] = (uint8_t)(v >> (8 * i));
	if (!EVP_DigestUpdate(k->ctx, n, sizeof(n)) ||
	    (len && !EVP_DigestUpdate(k->ctx, data, len)))
		k->failed = 1;
}

void content_key_add_str(struct content_key *k, const char *s)
{
	content_key_add(k, s ? s : "", s ? strlen(s) : 0);
}

void content_key_finish(struct content_key *k, char out[65])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	if (!EVP_DigestFinal_ex(k->ctx, md, &n) || n != 32 || k->failed)
		memset(md, 0, 32);
	for (int i = 0; i < 32; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 15];
	}
	out[64] = '\0';
	EVP_MD_CTX_free(k->ctx);
	free(k);
}
