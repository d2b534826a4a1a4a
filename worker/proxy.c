#include "proxy.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"

#define PROXY_BUF (256 * 1024)
/* Buffers of closed connections kept for the next ones: a new buffer is a fresh mapping
 * (glibc maps allocations this large), and under gVisor each of its first-touched pages is
 * a fault the sentry serves; Databend may open a connection per 65,536-row call. */
#define PROXY_KEEP_BUFS 16

struct conn;

struct conn_end {
	struct conn *c;
	int side; /* 0: the client, 1: the backend */
};

struct conn {
	int fd[2];
	struct conn_end end[2];
	char *buf[2]; /* buf[s]: read from fd[s], to be written to fd[1 - s] */
	size_t len[2], off[2];
	int eof[2];
	int shut[2]; /* SHUT_WR sent to fd[s] */
	int connecting;
	int backend;
	int closed;
	struct conn *next_closed;
	unsigned events[2];
};

struct backend {
	int port;
	int up;
	int conns;
};

struct proxy {
	int listen_fd;
	int epoll_fd;
	int stop_fd;
	pthread_t thread;
	pthread_mutex_t lock;
	struct backend *backends;
	int max_backends;
	int next;
	/* Closed during one epoll batch, freed after it: later events may still name them. */
	struct conn *closed;
	char *bufs[PROXY_KEEP_BUFS]; /* kept buffers, touched by the proxy thread only */
	int nbufs;
};

static char *buf_get(struct proxy *p)
{
	return p->nbufs > 0 ? p->bufs[--p->nbufs] : malloc(PROXY_BUF);
}

static void buf_put(struct proxy *p, char *buf)
{
	if (buf && p->nbufs < PROXY_KEEP_BUFS)
		p->bufs[p->nbufs++] = buf;
	else
		free(buf);
}

void proxy_set_backend(struct proxy *p, int i, int port, int up)
{
	if (i < 0 || i >= p->max_backends)
		return;
	pthread_mutex_lock(&p->lock);
	p->backends[i].port = port;
	p->backends[i].up = up;
	pthread_mutex_unlock(&p->lock);
}

static int pick_backend(struct proxy *p)
{
	int i, best = -1;

	pthread_mutex_lock(&p->lock);
	for (i = 0; i < p->max_backends; i++) {
		int b = (p->next + i) % p->max_backends;

		if (!p->backends[b].up)
			continue;
		if (best < 0 || p->backends[b].conns < p->backends[best].conns)
			best = b;
	}
	if (best >= 0) {
		p->backends[best].conns++;
		p->next = (best + 1) % p->max_backends;
	}
	pthread_mutex_unlock(&p->lock);
	return best;
}

static void conn_close(struct proxy *p, struct conn *c)
{
	int s;

	if (c->closed)
		return;
	for (s = 0; s < 2; s++) {
		if (c->fd[s] >= 0) {
			epoll_ctl(p->epoll_fd, EPOLL_CTL_DEL, c->fd[s], NULL);
			close(c->fd[s]);
			c->fd[s] = -1;
		}
		buf_put(p, c->buf[s]);
		c->buf[s] = NULL;
	}
	pthread_mutex_lock(&p->lock);
	if (c->backend >= 0)
		p->backends[c->backend].conns--;
	pthread_mutex_unlock(&p->lock);
	c->closed = 1;
	c->next_closed = p->closed;
	p->closed = c;
}

static void free_closed(struct proxy *p)
{
	while (p->closed) {
		struct conn *c = p->closed;

		p->closed = c->next_closed;
		free(c);
	}
}

static void set_events(struct proxy *p, struct conn *c, int s, unsigned ev)
{
	struct epoll_event e = {.events = ev, .data.ptr = &c->end[s]};

	if (c->events[s] == ev)
		return;
	epoll_ctl(p->epoll_fd, EPOLL_CTL_MOD, c->fd[s], &e);
	c->events[s] = ev;
}

/* Moves whatever can move without blocking; returns -1 when the connection is finished. */
static int pump(struct proxy *p, struct conn *c)
{
	int s, progress;

	if (c->connecting)
		return 0;
	do {
		progress = 0;
		for (s = 0; s < 2; s++) {
			int d = 1 - s;

			if (c->len[s] == 0 && !c->eof[s]) {
				ssize_t n = read(c->fd[s], c->buf[s], PROXY_BUF);

				if (n > 0) {
					c->len[s] = (size_t)n;
					c->off[s] = 0;
					progress = 1;
				} else if (n == 0) {
					c->eof[s] = 1;
					progress = 1;
				} else if (errno != EAGAIN && errno != EINTR) {
					return -1;
				}
			}
			if (c->len[s] > 0) {
				ssize_t n =
				    send(c->fd[d], c->buf[s] + c->off[s], c->len[s], MSG_NOSIGNAL);

				if (n > 0) {
					c->off[s] += (size_t)n;
					c->len[s] -= (size_t)n;
					progress = 1;
				} else if (n < 0 && errno != EAGAIN && errno != EINTR) {
					return -1;
				}
			}
			if (c->eof[s] && c->len[s] == 0 && !c->shut[d]) {
				shutdown(c->fd[d], SHUT_WR);
				c->shut[d] = 1;
			}
		}
	} while (progress);
	if (c->shut[0] && c->shut[1])
		return -1;
	for (s = 0; s < 2; s++) {
		unsigned ev = 0;

		if (c->len[s] == 0 && !c->eof[s])
			ev |= EPOLLIN;
		if (c->len[1 - s] > 0)
			ev |= EPOLLOUT;
		set_events(p, c, s, ev);
	}
	return 0;
}

/*
 * A loopback connect usually completes inside connect() even when that says EINPROGRESS:
 * checking at once saves an epoll round before the client's first bytes (its HTTP/2
 * preface, usually already here) move on.
 */
static int connected_now(int fd)
{
	struct pollfd pf = {.fd = fd, .events = POLLOUT};
	int err = 0;
	socklen_t len = sizeof(err);

	if (poll(&pf, 1, 0) != 1 || !(pf.revents & POLLOUT))
		return 0;
	return getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0;
}

static void on_accept(struct proxy *p)
{
	struct sockaddr_in to = {.sin_family = AF_INET};
	struct epoll_event e;
	struct conn *c;
	int fd, b, one = 1, s, port;

	while ((fd = accept4(p->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
		b = pick_backend(p);
		if (b < 0) {
			close(fd); /* nothing serves (yet): the client retries */
			continue;
		}
		pthread_mutex_lock(&p->lock);
		port = p->backends[b].port;
		pthread_mutex_unlock(&p->lock);
		c = calloc(1, sizeof(*c));
		if (!c) {
			close(fd);
			pthread_mutex_lock(&p->lock);
			p->backends[b].conns--;
			pthread_mutex_unlock(&p->lock);
			continue;
		}
		c->backend = b;
		c->fd[1] = -1;
		c->fd[0] = fd;
		c->fd[1] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		c->buf[0] = buf_get(p);
		c->buf[1] = buf_get(p);
		if (c->fd[1] < 0 || !c->buf[0] || !c->buf[1]) {
			conn_close(p, c);
			continue;
		}
		setsockopt(c->fd[0], IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		setsockopt(c->fd[1], IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		to.sin_port = htons((uint16_t)port);
		to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		if (connect(c->fd[1], (struct sockaddr *)&to, sizeof(to)) != 0) {
			if (errno != EINPROGRESS) {
				conn_close(p, c);
				continue;
			}
			c->connecting = !connected_now(c->fd[1]);
		}
		for (s = 0; s < 2; s++) {
			c->end[s].c = c;
			c->end[s].side = s;
			c->events[s] = (s == 1 && c->connecting) ? EPOLLOUT : EPOLLIN;
			e.events = c->events[s];
			e.data.ptr = &c->end[s];
			epoll_ctl(p->epoll_fd, EPOLL_CTL_ADD, c->fd[s], &e);
		}
		if (c->connecting) {
			/* Hold the client's bytes until the backend answers. */
			set_events(p, c, 0, 0);
		} else if (pump(p, c) < 0) {
			conn_close(p, c);
		}
	}
}

static void *proxy_loop(void *arg)
{
	struct proxy *p = arg;
	struct epoll_event ev[64];
	int n, i;

	for (;;) {
		n = epoll_wait(p->epoll_fd, ev, 64, -1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			log_error("proxy", "epoll_wait: %s", strerror(errno));
			return NULL;
		}
		for (i = 0; i < n; i++) {
			struct conn_end *end = ev[i].data.ptr;
			struct conn *c;

			if (end == NULL) {
				on_accept(p);
				continue;
			}
			if (end == (struct conn_end *)p)
				return NULL; /* stop */
			c = end->c;
			if (c->closed)
				continue;
			if (c->connecting && end->side == 1) {
				int err = 0;
				socklen_t len = sizeof(err);

				getsockopt(c->fd[1], SOL_SOCKET, SO_ERROR, &err, &len);
				if (err) {
					conn_close(p, c);
					continue;
				}
				c->connecting = 0;
			}
			if (pump(p, c) < 0)
				conn_close(p, c);
		}
		free_closed(p);
	}
}

int proxy_start(int port, int max_backends, struct proxy **out)
{
	struct sockaddr_in6 addr6 = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_ANY_INIT};
	struct sockaddr_in addr4 = {.sin_family = AF_INET};
	struct epoll_event e = {.events = EPOLLIN};
	struct proxy *p;
	int one = 1, zero = 0, rc;

	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->backends = calloc((size_t)max_backends, sizeof(*p->backends));
	if (!p->backends) {
		free(p);
		return -ENOMEM;
	}
	p->max_backends = max_backends;
	pthread_mutex_init(&p->lock, NULL);
	p->listen_fd = socket(AF_INET6, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	addr6.sin6_port = htons((uint16_t)port);
	if (p->listen_fd >= 0) {
		setsockopt(p->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		setsockopt(p->listen_fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
		if (bind(p->listen_fd, (struct sockaddr *)&addr6, sizeof(addr6)) != 0) {
			close(p->listen_fd);
			p->listen_fd = -1;
		}
	}
	if (p->listen_fd < 0) {
		/* No IPv6 in this sandbox: plain IPv4. */
		p->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (p->listen_fd < 0)
			goto out_errno;
		setsockopt(p->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		addr4.sin_port = htons((uint16_t)port);
		if (bind(p->listen_fd, (struct sockaddr *)&addr4, sizeof(addr4)) != 0)
			goto out_errno;
	}
	if (listen(p->listen_fd, 512) != 0)
		goto out_errno;
	p->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
	p->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (p->epoll_fd < 0 || p->stop_fd < 0)
		goto out_errno;
	e.data.ptr = NULL;
	epoll_ctl(p->epoll_fd, EPOLL_CTL_ADD, p->listen_fd, &e);
	e.data.ptr = p;
	epoll_ctl(p->epoll_fd, EPOLL_CTL_ADD, p->stop_fd, &e);
	rc = pthread_create(&p->thread, NULL, proxy_loop, p);
	if (rc) {
		errno = rc;
		goto out_errno;
	}
	log_info("proxy", "Flight port %d: connections go to the least busy server process", port);
	*out = p;
	return 0;
out_errno:
	rc = -errno;
	log_error("proxy", "cannot listen on port %d: %s", port, strerror(errno));
	if (p->listen_fd >= 0)
		close(p->listen_fd);
	free(p->backends);
	free(p);
	return rc;
}

void proxy_stop(struct proxy *p)
{
	uint64_t one = 1;

	if (write(p->stop_fd, &one, sizeof(one)) < 0)
		return;
	pthread_join(p->thread, NULL);
	close(p->listen_fd);
	close(p->epoll_fd);
	close(p->stop_fd);
	while (p->nbufs > 0)
		free(p->bufs[--p->nbufs]);
	/* Open connections die with the process; the worker exits right after this. */
}
