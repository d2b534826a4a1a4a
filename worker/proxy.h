/*
 * proxy: one TCP port in front of several Python Flight servers.
 *
 * Arrow Flight's gRPC server turns SO_REUSEPORT off, so N processes cannot share the Flight
 * port. The proxy accepts on it and hands each connection, whole, to the serving backend
 * with the fewest open connections, then copies bytes both ways until either side closes.
 * A backend that dies takes only its own connections (the calls in flight) with it.
 * Runs its own thread (epoll). proxy_set_backend() is thread-safe.
 */
#ifndef UDF_WORKER_PROXY_H
#define UDF_WORKER_PROXY_H

struct proxy;

/* Listens on port (all interfaces) for up to max_backends backends. 0 or a negative errno. */
int proxy_start(int port, int max_backends, struct proxy **out);

/* Marks backend i (listening on 127.0.0.1:port) as serving (up=1) or gone (up=0). */
void proxy_set_backend(struct proxy *p, int i, int port, int up);

/* Stops the thread and closes every connection. */
void proxy_stop(struct proxy *p);

#endif
