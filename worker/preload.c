/*
 * libudf-preload.so: preloaded into the worker's Python processes (LD_PRELOAD). Two things
 * that make a Python process as fast under gVisor as outside it:
 *
 * TCP_NODELAY on every socket they accept. gRPC sets TCP_NODELAY on its listening socket only
 * and relies on Linux handing that setting to accepted sockets. gVisor's netstack does not:
 * every stream socket the sentry creates, accepted ones included, starts with Nagle's
 * algorithm on, and nothing copies the listener's TCP_NODELAY. Under runsc a Flight reply's
 * last small frame (the trailers) then waits for the client's ACK of the data before it, and
 * a Linux client delays that ACK by 40 ms: every other call on a reused connection took
 * 40-50 ms longer. Setting the option on the accepted socket ourselves gives gVisor the same
 * behaviour as Linux (a no-op there).
 *
 * An arena cache for Python's small-object allocator (udf_arena_alloc/udf_arena_free, which
 * udf_stub.keep_arenas() installs with PyObject_SetArenaAllocator). pymalloc gives a 1 MiB
 * arena back to the kernel (munmap) as soon as its last object is freed, and maps a new one
 * for the next call. A 65,536-row batch makes and frees two Python objects per row, about
 * 4 MiB, so every call faulted about 1,000 fresh pages in. Under gVisor's systrap platform a
 * page fault is a round trip through the sentry: the same add_one loop took 7.8 ms per batch
 * under runsc against 5.5 ms outside. Kept arenas are reused without a fault (3.9 ms both).
 * At most ARENA_KEEP arenas are kept; the memory is what the process already used at its
 * peak, and stays counted in the pod's memory.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* RTLD_NEXT */
#endif
#include <dlfcn.h>
#include <stddef.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/mman.h>
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

/* ---- the arena cache ---------------------------------------------------------------------- */

#define ARENA_KEEP 64

/* pymalloc calls these with the GIL held: one caller at a time. */
static struct {
	void *p;
	size_t size;
} kept[ARENA_KEEP];
static int nkept;

void *udf_arena_alloc(void *ctx, size_t size);
void udf_arena_free(void *ctx, void *p, size_t size);

void *udf_arena_alloc(void *ctx, size_t size)
{
	void *p;
	int i;

	(void)ctx;
	for (i = nkept - 1; i >= 0; i--) {
		if (kept[i].size == size) {
			p = kept[i].p;
			kept[i] = kept[--nkept];
			return p;
		}
	}
	p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	return p == MAP_FAILED ? NULL : p;
}

void udf_arena_free(void *ctx, void *p, size_t size)
{
	(void)ctx;
	if (!p)
		return;
	if (nkept < ARENA_KEEP) {
		kept[nkept].p = p;
		kept[nkept].size = size;
		nkept++;
		return;
	}
	munmap(p, size);
}
