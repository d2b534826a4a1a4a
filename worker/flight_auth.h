/*
 * flight_auth: the Flight port's admission check, done by the proxy before any byte reaches a
 * Python process.
 *
 * A gRPC client opens an HTTP/2 connection with the client preface and a few frames, then
 * sends the HEADERS of its first call. flight_auth_check() reads that much from the start of
 * the connection and admits it only when the first call's headers carry the function's
 * token (`x-authorization`) and tenant (`x-databend-tenant`), every occurrence of each
 * equal. Later calls on an admitted connection are not inspected: the connection belongs to
 * a caller that proved it holds the token, and the backend (Python) sees only admitted
 * connections. Nothing here keeps state between calls; it is pure and thread-safe.
 */
#ifndef UDF_WORKER_FLIGHT_AUTH_H
#define UDF_WORKER_FLIGHT_AUTH_H

#include <stddef.h>
#include <stdint.h>

/* Frames allowed before the first HEADERS, and CONTINUATIONs after it: enough for any real
 * client, and a bound on the work a slow sender can cause per read. */
#define FLIGHT_AUTH_MAX_FRAMES 16

/*
 * Looks at the first len bytes a client sent. Returns 0 when the first call carries token and
 * tenant, -EAGAIN when more bytes are needed to decide, -EACCES when it lacks either or
 * carries another, -EPROTO when the bytes are not an HTTP/2 client start (or exceed the
 * frame bounds), -ENOMEM. *stream_id is the first call's stream (0 when unknown), for the
 * refusal. An empty token admits no one.
 */
int flight_auth_check(const unsigned char *in, size_t len, const char *token, const char *tenant,
		      uint32_t *stream_id);

/*
 * Writes into out (size bytes) what a server sends to refuse that call: its SETTINGS, a
 * trailers-only response with grpc-status 16 (UNAUTHENTICATED) and message, and GOAWAY.
 * message is ASCII without '%', at most 120 bytes. Returns the length, or -ENOSPC.
 */
int flight_auth_refusal(uint32_t stream_id, const char *message, unsigned char *out, size_t size);

#endif
