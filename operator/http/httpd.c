#include "http/httpd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "util/log.h"

#define HTTPD_MAX_CONNS	  32
#define HTTPD_MAX_REQUEST 8192
#define HTTPD_TIMEOUT_MS  5000

struct conn {
	int fd;
	size_t len;
	long long started_ms;
	char buf[HTTPD_MAX_REQUEST + 1];
};

struct httpd {
	int listen_fd;
	int wake[2];
	int port;
	pthread_t thread;
	httpd_handler_fn fn;
	void *arg;
	struct conn conns[HTTPD_MAX_CONNS];
};

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int httpd_split_address(const char *addr, char *host, size_t hostlen, int *port)
{
	const char *colon;
	char *end;
	size_t hlen;

	if (!addr || !*addr)
		return -EINVAL;
	if (addr[0] == '[') {
		const char *close = strchr(addr, ']');
		if (!close || close[1] != ':')
			return -EINVAL;
		hlen = (size_t)(close - addr - 1);
		if (hlen >= hostlen)
			return -EINVAL;
		memcpy(host, addr + 1, hlen);
		host[hlen] = '\0';
		colon = close + 1;
	} else {
		colon = strrchr(addr, ':');
		if (!colon)
			return -EINVAL;
		hlen = (size_t)(colon - addr);
		if (hlen >= hostlen || memchr(addr, ':', hlen))
			return -EINVAL;
		memcpy(host, addr, hlen);
		host[hlen] = '\0';
	}
	errno = 0;
	long p = strtol(colon + 1, &end, 10);
	if (errno || *end || end == colon + 1 || p < 0 || p > 65535)
		return -EINVAL;
	*port = (int)p;
	return 0;
}

static void conn_close(struct conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	c->len = 0;
}

int httpd_parse_request(const char *buf, size_t len, char *path, size_t pathlen)
{
	char p[1024];
	(void)len; /* buf is NUL-terminated at len; a NUL before it ends what is read */
	if (!strstr(buf, "\r\n\r\n") && !strstr(buf, "\n\n"))
		return -EAGAIN;
	if (sscanf(buf, "GET %1023s HTTP/1.", p) != 1)
		return -EINVAL;
	char *q = strchr(p, '?');
	if (q)
		*q = '\0';
	if (strlen(p) >= pathlen)
		return -EINVAL;
	strcpy(path, p);
	return 0;
}

static void respond(struct httpd *h, struct conn *c)
{
	char path[1024] = "";
	int status = 404;
	char *body = NULL;
	const char *ctype = "text/plain; charset=utf-8";
	const char *reason;
	char head[256];

	if (httpd_parse_request(c->buf, c->len, path, sizeof(path)) < 0)
		status = 405;
	else
		h->fn(path, &status, &body, &ctype, h->arg);
	switch (status) {
	case 200:
		reason = "OK";
		break;
	case 404:
		reason = "Not Found";
		break;
	case 405:
		reason = "Method Not Allowed";
		break;
	case 503:
		reason = "Service Unavailable";
		break;
	default:
		reason = "Status";
		break;
	}
	if (!body)
		body = strdup(status == 404 ? "not found\n" : status == 405 ? "GET only\n" : "");
	size_t blen = body ? strlen(body) : 0;
	int n = snprintf(head, sizeof(head),
			 "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
			 "Connection: close\r\n\r\n",
			 status, reason, ctype, blen);
	/* Small answers to a local prober: a blocking send with a timeout is fine. */
	if (send(c->fd, head, (size_t)n, MSG_NOSIGNAL) == n && blen)
		(void)!send(c->fd, body, blen, MSG_NOSIGNAL);
	free(body);
	conn_close(c);
}

static void *serve(void *arg)
{
	struct httpd *h = arg;
	struct pollfd pfds[HTTPD_MAX_CONNS + 2];
	int idx[HTTPD_MAX_CONNS + 2];

	for (;;) {
		int n = 0;
		pfds[n++] = (struct pollfd){.fd = h->wake[0], .events = POLLIN};
		pfds[n++] = (struct pollfd){.fd = h->listen_fd, .events = POLLIN};
		for (int i = 0; i < HTTPD_MAX_CONNS; i++) {
			if (h->conns[i].fd >= 0) {
				idx[n] = i;
				pfds[n++] = (struct pollfd){.fd = h->conns[i].fd, .events = POLLIN};
			}
		}
		if (poll(pfds, (nfds_t)n, 500) < 0 && errno != EINTR)
			break;
		if (pfds[0].revents)
			break;
		long long now = now_ms();
		for (int k = 2; k < n; k++) {
			struct conn *c = &h->conns[idx[k]];
			if (pfds[k].revents) {
				ssize_t r =
				    recv(c->fd, c->buf + c->len, HTTPD_MAX_REQUEST - c->len, 0);
				if (r <= 0) {
					conn_close(c);
					continue;
				}
				c->len += (size_t)r;
				c->buf[c->len] = '\0';
				if (httpd_parse_request(c->buf, c->len, NULL, 0) != -EAGAIN)
					respond(h, c);
				else if (c->len >= HTTPD_MAX_REQUEST)
					conn_close(c);
			} else if (now - c->started_ms > HTTPD_TIMEOUT_MS) {
				conn_close(c);
			}
		}
		if (pfds[1].revents & POLLIN) {
			int fd = accept4(h->listen_fd, NULL, NULL, SOCK_CLOEXEC);
			if (fd < 0) {
				/* Out of descriptors, the connection stays queued and the listener
				 * readable: poll() would return at once, forever. Wait for some to
				 * be freed instead of spinning. */
				if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
				    errno == ENOMEM)
					nanosleep(&(struct timespec){.tv_nsec = 100 * 1000000},
						  NULL);
				continue;
			}
			struct timeval tv = {.tv_sec = 2};
			setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
			int slot = -1;
			for (int i = 0; i < HTTPD_MAX_CONNS && slot < 0; i++)
				if (h->conns[i].fd < 0)
					slot = i;
			if (slot < 0) {
				close(fd);
				continue;
			}
			h->conns[slot].fd = fd;
			h->conns[slot].len = 0;
			h->conns[slot].started_ms = now;
		}
	}
	return NULL;
}

int httpd_start(const char *bind_address, httpd_handler_fn fn, void *arg, struct httpd **out,
		char *err, size_t errlen)
{
	char host[256];
	int port, rc;
	struct addrinfo hints = {.ai_flags = AI_PASSIVE | AI_NUMERICSERV,
				 .ai_socktype = SOCK_STREAM};
	struct addrinfo *ai = NULL;
	char portstr[16];

	*out = NULL;
	if (bind_address && strcmp(bind_address, "0") == 0)
		return 0;
	if (httpd_split_address(bind_address, host, sizeof(host), &port) < 0) {
		snprintf(err, errlen, "not a host:port address: %s", bind_address);
		return -EINVAL;
	}
	struct httpd *h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	for (int i = 0; i < HTTPD_MAX_CONNS; i++)
		h->conns[i].fd = -1;
	h->fn = fn;
	h->arg = arg;
	h->listen_fd = -1;
	h->wake[0] = h->wake[1] = -1;
	snprintf(portstr, sizeof(portstr), "%d", port);
	rc = getaddrinfo(*host ? host : NULL, portstr, &hints, &ai);
	if (rc != 0) {
		snprintf(err, errlen, "cannot resolve %s: %s", bind_address, gai_strerror(rc));
		rc = -EINVAL;
		goto out_free;
	}
	/* With no host, prefer the IPv6 wildcard (dual stack) and fall back to IPv4. */
	struct addrinfo *pick = ai;
	for (struct addrinfo *p = ai; p && !*host; p = p->ai_next)
		if (p->ai_family == AF_INET6)
			pick = p;
	h->listen_fd = socket(pick->ai_family, pick->ai_socktype | SOCK_CLOEXEC, 0);
	int one = 1;
	if (h->listen_fd >= 0)
		setsockopt(h->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (h->listen_fd < 0 || bind(h->listen_fd, pick->ai_addr, pick->ai_addrlen) < 0 ||
	    listen(h->listen_fd, 64) < 0) {
		rc = -errno;
		snprintf(err, errlen, "cannot listen on %s: %s", bind_address, strerror(errno));
		goto out_free;
	}
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	getsockname(h->listen_fd, (struct sockaddr *)&ss, &sl);
	h->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
						 : ((struct sockaddr_in *)&ss)->sin_port);
	if (pipe2(h->wake, O_CLOEXEC) < 0 || pthread_create(&h->thread, NULL, serve, h) != 0) {
		rc = -EAGAIN;
		snprintf(err, errlen, "cannot start the HTTP thread");
		goto out_free;
	}
	freeaddrinfo(ai);
	*out = h;
	return 0;

out_free:
	if (ai)
		freeaddrinfo(ai);
	if (h->listen_fd >= 0)
		close(h->listen_fd);
	if (h->wake[0] >= 0) {
		close(h->wake[0]);
		close(h->wake[1]);
	}
	free(h);
	return rc;
}

int httpd_port(const struct httpd *h)
{
	return h ? h->port : 0;
}

void httpd_stop(struct httpd *h)
{
	if (!h)
		return;
	(void)!write(h->wake[1], "x", 1);
	pthread_join(h->thread, NULL);
	for (int i = 0; i < HTTPD_MAX_CONNS; i++)
		conn_close(&h->conns[i]);
	close(h->listen_fd);
	close(h->wake[0]);
	close(h->wake[1]);
	free(h);
}
