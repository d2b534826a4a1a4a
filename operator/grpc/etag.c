#include "grpc/etag.h"

#include "util/cidr.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include <curl/curl.h>

struct etag_state {
	char etag[512];
	long long range_total;
	long long content_length;
	int got_body;
	int blocked; /* a connection to a blocked address was refused */
};

/* Set once before the first fetch (etag_set_blocked), else the default list. */
static struct cidr_set blocked_set;
static pthread_once_t blocked_once = PTHREAD_ONCE_INIT;
static int blocked_configured;

static void blocked_default(void)
{
	char err[128];
	if (!blocked_configured &&
	    cidr_set_parse(CIDR_DEFAULT_BLOCKED, &blocked_set, err, sizeof(err)) < 0)
		abort(); /* the built-in list is a constant: a parse error is a bug */
}

void etag_set_blocked(const struct cidr_set *s)
{
	blocked_set = *s;
	blocked_configured = 1;
}

/* Every socket curl opens for the fetch comes through here with the address it is about to
 * connect to (after name resolution, for each address it tries): a blocked one is refused
 * before any byte is sent, whatever name led to it. */
static curl_socket_t open_socket(void *arg, curlsocktype purpose, struct curl_sockaddr *a)
{
	struct etag_state *st = arg;
	if (purpose != CURLSOCKTYPE_IPCXN || cidr_set_contains(&blocked_set, &a->addr)) {
		st->blocked = 1;
		return CURL_SOCKET_BAD;
	}
	return socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
}

static int header_is(const char *line, size_t len, const char *name, const char **value,
		     size_t *vlen)
{
	size_t n = strlen(name);
	if (len <= n || strncasecmp(line, name, n) != 0 || line[n] != ':')
		return 0;
	const char *v = line + n + 1;
	const char *e = line + len;
	while (v < e && (*v == ' ' || *v == '\t'))
		v++;
	while (e > v && (e[-1] == '\r' || e[-1] == '\n' || e[-1] == ' ' || e[-1] == '\t'))
		e--;
	*value = v;
	*vlen = (size_t)(e - v);
	return 1;
}

static long long parse_ll(const char *s, size_t n)
{
	long long v = 0;
	if (n == 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9' || v > (1LL << 50))
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v;
}

void etag_header_line(const char *line, size_t len, char *etag, size_t etaglen,
		      long long *range_total, long long *content_length)
{
	const char *v;
	size_t n;
	if (header_is(line, len, "etag", &v, &n)) {
		if (n > 0 && n < etaglen) {
			int printable = 1;
			for (size_t i = 0; i < n; i++)
				printable &= v[i] >= 0x20 && v[i] < 0x7f;
			if (printable) {
				memcpy(etag, v, n);
				etag[n] = '\0';
			}
		}
	} else if (header_is(line, len, "content-range", &v, &n)) {
		const char *slash = memchr(v, '/', n);
		if (slash)
			*range_total = parse_ll(slash + 1, (size_t)(v + n - slash - 1));
	} else if (header_is(line, len, "content-length", &v, &n)) {
		*content_length = parse_ll(v, n);
	}
}

static size_t on_header(char *buf, size_t size, size_t nitems, void *arg)
{
	struct etag_state *st = arg;
	size_t len = size * nitems;
	/* A redirect or 100 starts a new header block: forget the previous one. */
	if (len >= 5 && strncmp(buf, "HTTP/", 5) == 0) {
		st->etag[0] = '\0';
		st->range_total = -1;
		st->content_length = -1;
	}
	etag_header_line(buf, len, st->etag, sizeof(st->etag), &st->range_total,
			 &st->content_length);
	return len;
}

static size_t on_body(char *buf, size_t size, size_t nitems, void *arg)
{
	struct etag_state *st = arg;
	st->got_body = 1;
	return 0; /* the headers are all we want: stop a server that ignores Range */
}

int etag_fetch(const char *url, const char *const *headers, size_t n_headers, long timeout_ms,
	       char *out, size_t outlen, char *err, size_t errlen)
{
	struct curl_slist *hl = NULL;
	struct etag_state st = {.range_total = -1, .content_length = -1};
	char where[160];
	size_t keep = strcspn(url, "?#");
	snprintf(where, sizeof(where), "%.*s", (int)(keep < 150 ? keep : 150), url);

	pthread_once(&blocked_once, blocked_default);
	CURL *e = curl_easy_init();
	if (!e) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	if (timeout_ms < 50)
		timeout_ms = 50;
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_RANGE, "0-0");
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	/* A redirect would be a second request to wherever the remote says: follow none. No
	 * proxy from the environment either: the address checked must be the one reached. */
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(e, CURLOPT_PROXY, "");
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, open_socket);
	curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, &st);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, &st);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, &st);
	curl_easy_setopt(e, CURLOPT_USERAGENT, "udf-operator");
	for (size_t i = 0; i < n_headers; i++) {
		struct curl_slist *n = curl_slist_append(hl, headers[i]);
		if (!n)
			break;
		hl = n;
	}
	if (hl)
		curl_easy_setopt(e, CURLOPT_HTTPHEADER, hl);
	CURLcode cc = curl_easy_perform(e);
	long status = 0;
	curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(e);
	curl_slist_free_all(hl);

	/* The caller sees no more of the remote than "readable or not": no status, no curl
	 * reason, nothing of the body, so the operator is no oracle for what answers where. */
	int rc = 0;
	int done = cc == CURLE_OK || (cc == CURLE_WRITE_ERROR && st.got_body);
	if (!done && st.blocked) {
		snprintf(err, errlen,
			 "the import %s is refused: its host is at an address udf-operator does "
			 "not connect to (--blocked-cidrs)",
			 where);
		rc = -EACCES;
	} else if (cc == CURLE_OPERATION_TIMEDOUT) {
		snprintf(err, errlen, "cannot read the import %s in time", where);
		rc = -ETIMEDOUT;
	} else if (!done) {
		snprintf(err, errlen, "cannot read the import %s", where);
		rc = -EIO;
	} else if (status != 200 && status != 206) {
		snprintf(err, errlen, "cannot read the import %s%s", where,
			 status == 401 || status == 403
			     ? ": refused (the presigned url expired or is not valid)"
			     : "");
		rc = -EIO;
	} else if (st.etag[0]) {
		snprintf(out, outlen, "%s", st.etag);
	} else if (status == 206 && st.range_total >= 0) {
		snprintf(out, outlen, "length:%lld", st.range_total);
	} else if (status == 200 && st.content_length >= 0) {
		snprintf(out, outlen, "length:%lld", st.content_length);
	} else {
		snprintf(err, errlen, "the import %s has neither an ETag nor a length", where);
		rc = -EIO;
	}
	return rc;
}
