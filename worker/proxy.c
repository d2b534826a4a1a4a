#include "proxy.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "flight_auth.h"
#include "log.h"
#include "spec.h"

#define PROXY_BUF (256 * 1024)

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
	/* Admission (see "admission" below): */
	int authed;   /* the first call carried the token: bytes flow to a backend */
	int refusing; /* refused: the answer is sent, we read until the client closes */
	long long accepted_ms;
	long long last_ms;
	struct conn *live_prev, *live_next;
};

struct backend {
	int port;
	int up;
	int conns;
	/* The spare (see "spares" below); the proxy thread's alone. */
	int spare_fd; /* -1: none */
	int spare_port;
	long long spare_ms;
};

struct proxy {
	int listen_fd;
	int epoll_fd;
	int stop_fd;
	int drain_fd;  /* proxy_drain(): no spares from then on */
	int no_spares; /* the proxy thread's */
	pthread_t thread;
	pthread_mutex_t lock;
	struct backend *backends;
	int max_backends;
	int next;
	/* Closed during one epoll batch, freed after it: later events may still name them. */
	struct conn *closed;
	/* Admission (see "admission" below); token and tenant under lock. */
	char token[SPEC_MAX_NAME + 1];
	char tenant[SPEC_MAX_NAME + 1];
	_Atomic int max_conns; /* set after the thread started (proxy_set_limits) */
	_Atomic long long idle_ms;
	int nconns;
	struct conn *live;
	int accept_paused;
	int accept_starved; /* accept() lacked descriptors: said once, until it works again */
	long long accept_resume_ms; /* 0: resume when below the cap */
	long long next_sweep_ms;
};

/* The spares section, below connect_backend. */
static int spare_take(struct proxy *p, int b, int port);
static void spare_make(struct proxy *p, int b, int port);
static void spares_tick(struct proxy *p, long long now);
static void spares_drop(struct proxy *p);

/* The admission section, below on_accept. */
static long long admission_now_ms(void);
static int admission_full(struct proxy *p);
static void admission_track(struct proxy *p, struct conn *c);
static void admission_forget(struct proxy *p, struct conn *c);
static void admission_pause(struct proxy *p, long long resume_ms);
static void admission_accept_failed(struct proxy *p, int err);
static int admission_step(struct proxy *p, struct conn *c);

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
		free(c->buf[s]);
		c->buf[s] = NULL;
	}
	pthread_mutex_lock(&p->lock);
	if (c->backend >= 0)
		p->backends[c->backend].conns--;
	pthread_mutex_unlock(&p->lock);
	admission_forget(p, c);
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

	if (c->events[s] == ev || c->fd[s] < 0)
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
	if (c->authed)
		c->last_ms = admission_now_ms();
	do {
		progress = 0;
		/* Until admitted, the client's bytes stay here; the backend's flow. */
		if (!c->authed && admission_step(p, c) < 0)
			return -1;
		if (c->refusing)
			return 0;
		for (s = c->authed ? 0 : 1; s < 2; s++) {
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

		if ((c->len[s] == 0 || (s == 0 && !c->authed)) && !c->eof[s])
			ev |= EPOLLIN;
		if (c->len[1 - s] > 0 && (s == 0 || c->authed))
			ev |= EPOLLOUT;
		set_events(p, c, s, ev);
	}
	return 0;
}

/* A non-blocking connection to 127.0.0.1:port with TCP_NODELAY: its descriptor, *connecting
 * set while the handshake is in progress; -1 when it cannot be made. */
static int backend_socket(int port, int *connecting)
{
	struct sockaddr_in to = {.sin_family = AF_INET};
	int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	*connecting = 0;
	if (fd < 0)
		return -1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	to.sin_port = htons((uint16_t)port);
	to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&to, sizeof(to)) != 0) {
		if (errno != EINPROGRESS) {
			close(fd);
			return -1;
		}
		*connecting = 1;
	}
	return fd;
}

/* Opens the backend side (its bytes flow at once; the client's once admitted). -1 when no
 * backend can take it. */
static int connect_backend(struct proxy *p, struct conn *c)
{
	struct epoll_event e;
	int b, port;

	b = pick_backend(p);
	if (b < 0)
		return -1; /* nothing serves (yet): the client retries */
	pthread_mutex_lock(&p->lock);
	port = p->backends[b].port;
	pthread_mutex_unlock(&p->lock);
	c->backend = b;
	c->buf[1] = malloc(PROXY_BUF);
	if (!c->buf[1])
		return -1;
	c->fd[1] = spare_take(p, b, port);
	spare_make(p, b, port); /* for the next client */
	if (c->fd[1] < 0) {
		c->fd[1] = backend_socket(port, &c->connecting);
		if (c->fd[1] < 0)
			return -1;
	}
	c->events[1] = c->connecting ? EPOLLOUT : EPOLLIN;
	e.events = c->events[1];
	e.data.ptr = &c->end[1];
	if (epoll_ctl(p->epoll_fd, EPOLL_CTL_ADD, c->fd[1], &e) != 0)
		return -1;
	/* Hold the client's bytes until the backend answers. */
	set_events(p, c, 0, c->connecting ? 0 : EPOLLIN);
	return c->connecting ? 0 : pump(p, c);
}

/* ---- spares: a backend connection made before the client that will use it ---------------
 *
 * A new client connection needs its own connection to a backend (HTTP/2 state is per
 * connection). Making it when the client arrives put a loopback TCP handshake and the Python
 * server's accept on the critical path of every new connection, about 1 ms under gVisor
 * (netstack runs both ends). So each serving backend has one connection made ahead: the next
 * client takes it, and a new spare is made at once. The server has sent its SETTINGS on it,
 * which reach the client as soon as they are paired; nothing of the client's reaches it
 * before admission, as before. A spare older than SPARE_MAX_AGE_MS is replaced, far inside
 * gRPC's 120 s limit for a connection's first bytes.
 */

#define SPARE_MAX_AGE_MS 30000

static void spare_close(struct backend *be)
{
	if (be->spare_fd >= 0)
		close(be->spare_fd);
	be->spare_fd = -1;
}

/* The backend's spare when it is connected and alive, else -1 (closed). */
static int spare_take(struct proxy *p, int b, int port)
{
	struct backend *be = &p->backends[b];
	struct pollfd pf;
	int fd = be->spare_fd;
	char byte;

	if (fd < 0)
		return -1;
	be->spare_fd = -1;
	pf.fd = fd;
	pf.events = POLLIN | POLLOUT | POLLRDHUP;
	pf.revents = 0;
	if (be->spare_port != port || admission_now_ms() - be->spare_ms > SPARE_MAX_AGE_MS ||
	    poll(&pf, 1, 0) != 1 || (pf.revents & (POLLERR | POLLHUP | POLLRDHUP)) ||
	    !(pf.revents & POLLOUT) ||
	    ((pf.revents & POLLIN) && recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT) <= 0)) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Starts connecting the backend's next spare; a failure just leaves none. */
static void spare_make(struct proxy *p, int b, int port)
{
	struct backend *be = &p->backends[b];
	int connecting;

	spare_close(be);
	if (p->no_spares)
		return;
	be->spare_fd = backend_socket(port, &connecting);
	if (be->spare_fd < 0)
		return;
	be->spare_port = port;
	be->spare_ms = admission_now_ms();
}

/* Draining: a spare would hold the Python server's shutdown until gRPC gives up on its
 * handshake. */
static void spares_drop(struct proxy *p)
{
	uint64_t v;

	if (read(p->drain_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		log_warn("proxy", "drain: %s", strerror(errno));
	p->no_spares = 1;
	for (int b = 0; b < p->max_backends; b++)
		spare_close(&p->backends[b]);
}

void proxy_drain(struct proxy *p)
{
	uint64_t one = 1;

	if (write(p->drain_fd, &one, sizeof(one)) < 0)
		log_warn("proxy", "drain: %s", strerror(errno));
}

/* Every sweep: no spare for a backend that does not serve, a fresh one for one that does. */
static void spares_tick(struct proxy *p, long long now)
{
	for (int b = 0; b < p->max_backends; b++) {
		struct backend *be = &p->backends[b];
		int up, port;

		pthread_mutex_lock(&p->lock);
		up = be->up;
		port = be->port;
		pthread_mutex_unlock(&p->lock);
		if (!up || port <= 0)
			spare_close(be);
		else if (be->spare_fd < 0 || be->spare_port != port ||
			 now - be->spare_ms > SPARE_MAX_AGE_MS)
			spare_make(p, b, port);
	}
}

static void on_accept(struct proxy *p)
{
	struct epoll_event e;
	struct conn *c;
	int fd, one = 1;

	while (!admission_full(p)) {
		fd = accept4(p->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			admission_accept_failed(p, errno);
			return;
		}
		if (p->accept_starved) {
			log_info("proxy", "accepting again");
			p->accept_starved = 0;
		}
		c = calloc(1, sizeof(*c));
		if (c)
			c->buf[0] = malloc(PROXY_BUF);
		if (!c || !c->buf[0]) {
			if (c)
				free(c);
			close(fd);
			continue;
		}
		c->backend = -1;
		c->fd[0] = fd;
		c->fd[1] = -1;
		c->end[0].c = c;
		c->end[0].side = 0;
		c->end[1].c = c;
		c->end[1].side = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		admission_track(p, c);
		c->events[0] = EPOLLIN;
		e.events = EPOLLIN;
		e.data.ptr = &c->end[0];
		if (epoll_ctl(p->epoll_fd, EPOLL_CTL_ADD, fd, &e) != 0 || connect_backend(p, c) < 0)
			conn_close(p, c);
	}
	admission_pause(p, 0); /* at the cap: resume when a connection closes */
}

/* ---- admission: the token check, the connection cap, the idle timeout, EMFILE ------------
 *
 * A connection reaches a backend only after flight_auth_check() admitted its first call: the
 * Python processes (whatever the script form runs) listen on loopback ports, and this is the
 * one way in from outside, so a script that starts Python without our hook, or its own
 * server, cannot serve a call without the token. Until admitted, a connection holds no
 * backend and has AUTH_DEADLINE_MS to send its first call's headers.
 */

#define AUTH_DEADLINE_MS  10000
#define REFUSE_LINGER_MS  2000
#define EMFILE_BACKOFF_MS 100
#define SWEEP_EVERY_MS	  1000

static long long admission_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int admission_full(struct proxy *p)
{
	return p->max_conns > 0 && p->nconns >= p->max_conns;
}

static void admission_track(struct proxy *p, struct conn *c)
{
	c->accepted_ms = c->last_ms = admission_now_ms();
	c->live_next = p->live;
	if (p->live)
		p->live->live_prev = c;
	p->live = c;
	p->nconns++;
}

static void admission_forget(struct proxy *p, struct conn *c)
{
	if (c->live_prev)
		c->live_prev->live_next = c->live_next;
	else if (p->live == c)
		p->live = c->live_next;
	if (c->live_next)
		c->live_next->live_prev = c->live_prev;
	c->live_prev = c->live_next = NULL;
	p->nconns--;
}

/* Stops watching the listening socket: at the cap (resume_ms 0), or for a while after
 * accept() failed for want of descriptors, which would otherwise wake us at once, forever. */
static void admission_pause(struct proxy *p, long long resume_ms)
{
	struct epoll_event e = {.events = 0, .data.ptr = NULL};

	if (!p->accept_paused)
		epoll_ctl(p->epoll_fd, EPOLL_CTL_MOD, p->listen_fd, &e);
	p->accept_paused = 1;
	p->accept_resume_ms = resume_ms;
}

static void admission_accept_failed(struct proxy *p, int err)
{
	if (err == EAGAIN || err == EINTR || err == ECONNABORTED)
		return;
	if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
		if (!p->accept_starved)
			log_warn("proxy", "accept: %s; retrying every %d ms", strerror(err),
				 EMFILE_BACKOFF_MS);
		p->accept_starved = 1;
		admission_pause(p, admission_now_ms() + EMFILE_BACKOFF_MS);
		return;
	}
	log_warn("proxy", "accept: %s", strerror(err));
}

/* After each batch: resume accepting when due, and close connections past their time. */
static int admission_tick(struct proxy *p)
{
	long long now = admission_now_ms();
	struct epoll_event e = {.events = EPOLLIN, .data.ptr = NULL};
	struct conn *c, *next;
	int timeout = SWEEP_EVERY_MS;

	if (p->accept_paused && !admission_full(p) &&
	    (p->accept_resume_ms == 0 || now >= p->accept_resume_ms)) {
		p->accept_paused = 0;
		epoll_ctl(p->epoll_fd, EPOLL_CTL_MOD, p->listen_fd, &e);
	}
	if (p->accept_paused && p->accept_resume_ms > now)
		timeout = (int)(p->accept_resume_ms - now);
	if (now >= p->next_sweep_ms) {
		p->next_sweep_ms = now + SWEEP_EVERY_MS;
		spares_tick(p, now);
		for (c = p->live; c; c = next) {
			long long since = c->authed ? c->last_ms : c->accepted_ms;
			long long limit = c->refusing  ? REFUSE_LINGER_MS
					  : !c->authed ? AUTH_DEADLINE_MS
						       : p->idle_ms;

			next = c->live_next;
			if (c->refusing)
				since = c->last_ms;
			if (limit > 0 && now - since > limit)
				conn_close(p, c);
		}
	}
	return timeout;
}

/* Answers the first call with UNAUTHENTICATED. -1 when it cannot be said cleanly. */
static int refuse(struct proxy *p, struct conn *c, uint32_t stream_id, const char *why)
{
	unsigned char out[512];
	int n = flight_auth_refusal(stream_id, why, out, sizeof(out));

	if (c->len[1] > 0)
		return -1; /* the backend's bytes are half way to the client: just close */

	/* The backend never saw a byte of this client: let it go before we answer, so nothing
	 * of its interleaves with the refusal. */
	if (c->fd[1] >= 0) {
		epoll_ctl(p->epoll_fd, EPOLL_CTL_DEL, c->fd[1], NULL);
		close(c->fd[1]);
		c->fd[1] = -1;
	}
	pthread_mutex_lock(&p->lock);
	if (c->backend >= 0)
		p->backends[c->backend].conns--;
	c->backend = -1;
	pthread_mutex_unlock(&p->lock);
	/* A fresh connection's send buffer is empty: the few bytes go at once or not at all. */
	if (n > 0 && send(c->fd[0], out, (size_t)n, MSG_NOSIGNAL) < 0)
		log_warn("proxy", "refusing a call: %s", strerror(errno));
	/* No shutdown: a client that reads EOF with the answer may report the closed socket
	 * instead of the status. GOAWAY already says no more calls come here. */
	c->refusing = 1;
	c->len[0] = 0;
	c->last_ms = admission_now_ms();
	set_events(p, c, 0, EPOLLIN);
	return 0;
}

/* An unadmitted connection has bytes: read them and decide. -1 closes it. */
static int admission_step(struct proxy *p, struct conn *c)
{
	char token[sizeof(p->token)], tenant[sizeof(p->tenant)];
	uint32_t stream_id = 0;
	ssize_t n;
	int rc;

	if (c->refusing) {
		char sink[4096];

		while ((n = read(c->fd[0], sink, sizeof(sink))) > 0)
			;
		return n == 0 || (errno != EAGAIN && errno != EINTR) ? -1 : 0;
	}
	n = read(c->fd[0], c->buf[0] + c->len[0], PROXY_BUF - c->len[0]);
	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
		return -1;
	if (n < 0)
		return 0;
	c->len[0] += (size_t)n;
	pthread_mutex_lock(&p->lock);
	memcpy(token, p->token, sizeof(token));
	memcpy(tenant, p->tenant, sizeof(tenant));
	pthread_mutex_unlock(&p->lock);
	rc = flight_auth_check((unsigned char *)c->buf[0], c->len[0], token, tenant, &stream_id);
	explicit_bzero(token, sizeof(token));
	if (rc == -EAGAIN && c->len[0] == PROXY_BUF)
		rc = -EPROTO;
	if (rc == -EAGAIN)
		return 0;
	if (rc == 0) {
		c->authed = 1;
		c->off[0] = 0;
		c->last_ms = admission_now_ms();
		return 0;
	}
	return refuse(p, c, stream_id,
		      rc == -EACCES ? "missing or wrong x-authorization token or x-databend-tenant "
				      "for this function"
				    : "not a gRPC call over HTTP/2");
}

void proxy_set_credentials(struct proxy *p, const char *token, const char *tenant)
{
	pthread_mutex_lock(&p->lock);
	snprintf(p->token, sizeof(p->token), "%s", token ? token : "");
	snprintf(p->tenant, sizeof(p->tenant), "%s", tenant ? tenant : "");
	pthread_mutex_unlock(&p->lock);
}

void proxy_set_limits(struct proxy *p, int max_connections, int idle_seconds)
{
	p->max_conns = max_connections;
	p->idle_ms = (long long)idle_seconds * 1000;
}

/* ---- end of admission ------------------------------------------------------------------- */

static void *proxy_loop(void *arg)
{
	struct proxy *p = arg;
	struct epoll_event ev[64];
	int n, i;

	int timeout = 1000;

	for (;;) {
		n = epoll_wait(p->epoll_fd, ev, 64, timeout);
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
			if (end == (struct conn_end *)&p->drain_fd) {
				spares_drop(p);
				continue;
			}
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
		timeout = admission_tick(p);
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
	for (int b = 0; b < max_backends; b++)
		p->backends[b].spare_fd = -1;
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
	p->drain_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (p->epoll_fd < 0 || p->stop_fd < 0 || p->drain_fd < 0)
		goto out_errno;
	e.data.ptr = NULL;
	epoll_ctl(p->epoll_fd, EPOLL_CTL_ADD, p->listen_fd, &e);
	e.data.ptr = p;
	epoll_ctl(p->epoll_fd, EPOLL_CTL_ADD, p->stop_fd, &e);
	e.data.ptr = &p->drain_fd;
	epoll_ctl(p->epoll_fd, EPOLL_CTL_ADD, p->drain_fd, &e);
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
	explicit_bzero(p->token, sizeof(p->token));
	close(p->listen_fd);
	close(p->epoll_fd);
	close(p->stop_fd);
	close(p->drain_fd);
	/* Open connections die with the process; the worker exits right after this. */
}
