/*
 * proxy: one TCP port in front of several Python Flight servers.
 *
 * Arrow Flight's gRPC server turns SO_REUSEPORT off, so N processes cannot share the Flight
 * port. The proxy accepts on it and hands each connection, whole, to the serving backend
 * with the fewest open connections, then copies bytes both ways until either side closes.
 * A backend that dies takes only its own connections (the calls in flight) with it. Each
 * serving backend has one connection made ahead of the client that will take it (a spare).
 *
 * It is also the Flight port's gate (flight_auth.h): a connection reaches a backend only once
 * its first call carried the function's token and tenant, so the backends listen on loopback
 * only and need not check the token themselves. It holds at most max_connections open,
 * closes one idle for idle_seconds (one that has not sent its first call within 10 s), and
 * backs off for 100 ms when accept() runs out of descriptors.
 * Runs its own thread (epoll). proxy_set_backend() and proxy_set_credentials() are
 * thread-safe.
 */
#ifndef UDF_WORKER_PROXY_H
#define UDF_WORKER_PROXY_H

struct proxy;

/* Listens on port (all interfaces) for up to max_backends backends. 0 or a negative errno. */
int proxy_start(int port, int max_backends, struct proxy **out);

/* Marks backend i (listening on 127.0.0.1:port) as serving (up=1) or gone (up=0). */
void proxy_set_backend(struct proxy *p, int i, int port, int up);

/* Who may call: until set, no connection is admitted. Copies both. */
void proxy_set_credentials(struct proxy *p, const char *token, const char *tenant);

/* Right after proxy_start(), before clients come: 0 means no limit. */
void proxy_set_limits(struct proxy *p, int max_connections, int idle_seconds);

/* Draining (the worker's SIGTERM): closes the backend connections made ahead of clients (the
 * spares, see proxy.c) and makes none after; clients' connections go on. */
void proxy_drain(struct proxy *p);

/* Stops the thread and closes every connection. */
void proxy_stop(struct proxy *p);

#endif
