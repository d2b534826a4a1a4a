#include "udf/naming.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>

void naming_sha256_hex(const void *data, size_t len, char out[65])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	static const char hex[] = "0123456789abcdef";

	if (!EVP_Digest(data, len, md, &n, EVP_sha256(), NULL) || n != 32) {
		memset(out, '0', 64);
		out[64] = '\0';
		return;
	}
	for (unsigned int i = 0; i < 32; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 15];
	}
	out[64] = '\0';
}

int naming_tenant_check(const char *tenant, char *err, size_t errlen)
{
	size_t n = tenant ? strlen(tenant) : 0;
	if (n == 0) {
		snprintf(err, errlen, "the tenant is empty: send x-databend-tenant metadata");
		return -EINVAL;
	}
	if (n > NAMING_TENANT_MAX) {
		snprintf(err, errlen, "the tenant name is %zu bytes long; at most %d are allowed",
			 n, NAMING_TENANT_MAX);
		return -EINVAL;
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)tenant[i];
		if (c < 0x20 || c > 0x7e) {
			snprintf(
			    err, errlen,
			    "the tenant name has a byte 0x%02x at offset %zu that is not printable "
			    "ASCII",
			    c, i);
			return -EINVAL;
		}
	}
	return 0;
}

int naming_prefix_valid(const char *prefix)
{
	size_t n = prefix ? strlen(prefix) : 0;
	if (n == 0 || n > NAMING_PREFIX_MAX || prefix[0] < 'a' || prefix[0] > 'z')
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = prefix[i];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
			return 0;
	}
	return 1;
}

int naming_dns_label(const char *prefix, const char *exact, const char *hash_hex, char out[64])
{
	char digest[65];
	size_t plen = strlen(prefix);

	if (!naming_prefix_valid(prefix))
		return -EINVAL;
	if (!hash_hex) {
		naming_sha256_hex(exact, strlen(exact), digest);
		hash_hex = digest;
	}
	if (strlen(hash_hex) < NAMING_HASH_HEX)
		return -EINVAL;
	/* room for the readable part: 63 - prefix - '-' - hash */
	size_t room = NAMING_DNS_LABEL - plen - 1 - NAMING_HASH_HEX;
	size_t o = 0;
	memcpy(out, prefix, plen);
	o = plen;
	size_t start = o;
	int dash = prefix[plen - 1] == '-';
	for (const char *p = exact; *p && o - start < room; p++) {
		char c = *p;
		if (c >= 'A' && c <= 'Z')
			c = (char)(c - 'A' + 'a');
		if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) {
			out[o++] = c;
			dash = 0;
		} else if (!dash) {
			out[o++] = '-';
			dash = 1;
		}
	}
	if (o > 0 && out[o - 1] != '-')
		out[o++] = '-';
	memcpy(out + o, hash_hex, NAMING_HASH_HEX);
	o += NAMING_HASH_HEX;
	out[o] = '\0';
	return 0;
}

int naming_tenant_namespace(const char *prefix, const char *tenant, char out[64])
{
	return naming_dns_label(prefix, tenant, NULL, out);
}

int naming_function_udf(const char *handler, const char *content_key, char out[64])
{
	return naming_dns_label("udf-", handler, content_key, out);
}

int naming_function_resource(const char *content_key, char out[64])
{
	return naming_dns_label("r-", "", content_key, out);
}

int naming_function_record(const char *worker_name, char out[64])
{
	return naming_dns_label("w-", worker_name, NULL, out);
}
