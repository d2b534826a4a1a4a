#include "util/cidr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int parse_one(const char *item, size_t len, struct cidr *c)
{
	char buf[64];
	if (len == 0 || len >= sizeof(buf))
		return -EINVAL;
	memcpy(buf, item, len);
	buf[len] = '\0';
	char *slash = strchr(buf, '/');
	long bits = -1;
	if (slash) {
		char *end;
		*slash = '\0';
		if (!slash[1] || slash[1] < '0' || slash[1] > '9')
			return -EINVAL;
		bits = strtol(slash + 1, &end, 10);
		if (*end)
			return -EINVAL;
	}
	memset(c, 0, sizeof(*c));
	if (inet_pton(AF_INET, buf, c->addr) == 1) {
		c->family = AF_INET;
		if (bits > 32)
			return -EINVAL;
		c->bits = bits < 0 ? 32 : (unsigned int)bits;
	} else if (inet_pton(AF_INET6, buf, c->addr) == 1) {
		c->family = AF_INET6;
		if (bits > 128)
			return -EINVAL;
		c->bits = bits < 0 ? 128 : (unsigned int)bits;
	} else {
		return -EINVAL;
	}
	return 0;
}

int cidr_set_parse(const char *list, struct cidr_set *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof(*out));
	const char *p = list;
	while (p && *p) {
		const char *end = strchr(p, ',');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		while (len && (*p == ' ' || *p == '\t')) {
			p++;
			len--;
		}
		while (len && (p[len - 1] == ' ' || p[len - 1] == '\t'))
			len--;
		if (len) {
			if (out->n == CIDR_MAX) {
				snprintf(err, errlen, "more than %d address ranges", CIDR_MAX);
				return -ENOSPC;
			}
			if (parse_one(p, len, &out->r[out->n]) < 0) {
				snprintf(err, errlen,
					 "\"%.*s\" is not an address range (ADDRESS[/PREFIX], "
					 "IPv4 or IPv6)",
					 (int)(len < 64 ? len : 64), p);
				return -EINVAL;
			}
			out->n++;
		}
		p = end ? end + 1 : NULL;
	}
	return 0;
}

static int prefix_match(const uint8_t *a, const uint8_t *net, unsigned int bits)
{
	unsigned int whole = bits / 8, rest = bits % 8;
	if (memcmp(a, net, whole) != 0)
		return 0;
	if (rest == 0)
		return 1;
	uint8_t mask = (uint8_t)(0xff << (8 - rest));
	return (a[whole] & mask) == (net[whole] & mask);
}

int cidr_set_contains(const struct cidr_set *s, const struct sockaddr *sa)
{
	uint8_t a[16];
	int family;
	static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
		memcpy(a, &in->sin_addr, 4);
		family = AF_INET;
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
		memcpy(a, &in6->sin6_addr, 16);
		family = AF_INET6;
		if (memcmp(a, mapped, 12) == 0) { /* ::ffff:a.b.c.d is a.b.c.d on the wire */
			memmove(a, a + 12, 4);
			family = AF_INET;
		}
	} else {
		return 1;
	}
	for (size_t i = 0; i < s->n; i++)
		if (s->r[i].family == family && prefix_match(a, s->r[i].addr, s->r[i].bits))
			return 1;
	return 0;
}
