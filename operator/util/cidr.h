/*
 * util/cidr: sets of IPv4 / IPv6 address ranges ("10.0.0.0/8,fe80::/10"), and whether an
 * address falls in one. The operator refuses outgoing requests on the caller's behalf (a
 * script's import urls) to any address in its blocked set; the check is made on the address
 * a socket is about to connect to, never on a host name.
 */
#ifndef UDF_UTIL_CIDR_H
#define UDF_UTIL_CIDR_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define CIDR_MAX 64

struct cidr {
	int family;	   /* AF_INET or AF_INET6 */
	uint8_t addr[16];  /* network bytes; 4 used for AF_INET */
	unsigned int bits; /* prefix length */
};

struct cidr_set {
	struct cidr r[CIDR_MAX];
	size_t n;
};

/* What the operator blocks unless told otherwise (cidr_set_parse of this list): loopback,
 * link-local, "this network", private (RFC 1918, where clusters put pods and Services),
 * shared address space (RFC 6598), unique-local IPv6, multicast. */
#define CIDR_DEFAULT_BLOCKED                                                                       \
	"127.0.0.0/8,::1/128,169.254.0.0/16,fe80::/10,0.0.0.0/8,::/128,10.0.0.0/8,"                \
	"172.16.0.0/12,192.168.0.0/16,100.64.0.0/10,fc00::/7,224.0.0.0/4,ff00::/8"

/* Parses a comma-separated list ("" is the empty set). Each item is an address with an
 * optional /prefix (a bare address is a single host). 0, or -EINVAL with the offending item
 * in err, or -ENOSPC past CIDR_MAX items. */
int cidr_set_parse(const char *list, struct cidr_set *out, char *err, size_t errlen);

/* 1 when the address (AF_INET or AF_INET6; an IPv4-mapped IPv6 address counts as its IPv4
 * address) is in the set, 0 when not. An unknown family counts as blocked. */
int cidr_set_contains(const struct cidr_set *s, const struct sockaddr *sa);

#endif
