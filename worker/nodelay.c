/*
 * libudf-nodelay.so: preloaded into the worker's Python processes (LD_PRELOAD), it sets
 * TCP_NODELAY on every socket they accept.
 *
 * Why: gRPC sets TCP_NODELAY on its listening socket only and relies on Linux handing that
 * setting to accepted sockets. gVisor's netstack does not: every stream socket the sentry
 * creates, accepted ones included, starts with Nagle's algorithm on, and nothing copies the
 * listener's TCP_NODELAY. Under runsc a Flight reply's last small frame (the trailers) then
 * waits for the client's ACK of the data before it, and a Linux client delays that ACK by
 * 40 ms: every other call on a reused connection took 40-50 ms longer. Setting the option
 * on the accepted socket ourselves gives gVisor the same behaviour as Linux (a no-op there).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* RTLD_NEXT */
#endif
#include <dlfcn.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

static void nodelay(int fd)
{
	int one = 1;

	if (fd >= 0) /* fails harmlessly (EOPNOTSUPP) on a unix socket */
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

int accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
	static int (*next)(int, struct sockaddr *, socklen_t *, int);
	int rc;

	if (!next)
		*(void **)&next = dlsym(RTLD_NEXT, "accept4");
	rc = next(fd, addr, len, flags);
	nodelay(rc);
	return rc;
}

int accept(int fd, struct sockaddr *addr, socklen_t *len)
{
	static int (*next)(int, struct sockaddr *, socklen_t *);
	int rc;

	if (!next)
		*(void **)&next = dlsym(RTLD_NEXT, "accept");
	rc = next(fd, addr, len);
	nodelay(rc);
	return rc;
}
