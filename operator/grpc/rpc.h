/*
 * grpc/rpc: a unary gRPC server on the gRPC C core. The only file that calls the core API
 * (it is not stable across gRPC versions; Debian 12 ships 1.51).
 *
 * One completion-queue thread accepts calls, reads each request message and hands it to the
 * method's handler. A handler must not block: it answers with rpc_call_reply() or
 * rpc_call_fail() exactly once, from any thread, now or later (a call waiting on the
 * api's state answers when that state changes or its deadline nears). The call
 * object stays valid until that answer.
 */
#ifndef UDF_RPC_H
#define UDF_RPC_H

#include <stddef.h>
#include <stdint.h>

struct rpc_server;
struct rpc_call;

/* gRPC status codes (the numbers are the wire protocol's). */
enum rpc_status {
	RPC_OK = 0,
	RPC_CANCELLED = 1,
	RPC_UNKNOWN = 2,
	RPC_INVALID_ARGUMENT = 3,
	RPC_DEADLINE_EXCEEDED = 4,
	RPC_NOT_FOUND = 5,
	RPC_ALREADY_EXISTS = 6,
	RPC_PERMISSION_DENIED = 7,
	RPC_RESOURCE_EXHAUSTED = 8,
	RPC_FAILED_PRECONDITION = 9,
	RPC_ABORTED = 10,
	RPC_OUT_OF_RANGE = 11,
	RPC_UNIMPLEMENTED = 12,
	RPC_INTERNAL = 13,
	RPC_UNAVAILABLE = 14,
	RPC_UNAUTHENTICATED = 16,
};

/* req/len: the request message, valid only during the call to the handler. */
typedef void (*rpc_handler_fn)(struct rpc_call *call, const uint8_t *req, size_t len, void *arg);

struct rpc_server_options {
	const char *bind_address;  /* ":50051", "0.0.0.0:50051", "[::1]:50051", "127.0.0.1:0" */
	const char *tls_cert_file; /* both set: TLS; both NULL: plaintext */
	const char *tls_key_file;
	/* With TLS: a PEM bundle of CAs; a caller must present a certificate one of them signed
	 * (mutual TLS), else the handshake fails. NULL: no client certificate asked for. */
	const char *tls_client_ca_file;
	size_t max_message_bytes; /* 0: 4 MiB */
};

/* Binds the port (without SO_REUSEPORT, so a second server on it fails loudly). err gets a
 * readable reason on failure. */
int rpc_server_new(const struct rpc_server_options *opts, struct rpc_server **out, char *err,
		   size_t errlen);

/* The port actually bound (useful with port 0). */
int rpc_server_port(const struct rpc_server *s);

/* 0 once the core has stopped accepting connections: gRPC 1.51 gives its listener up for good
 * when accept() fails with anything but EAGAIN, EINTR or ECONNABORTED, as when descriptors run
 * out (grpc/grpc#20418). Only a restart brings the port back, so main's /healthz reports it.
 * Process-wide (the core's log is), thread-safe. */
int rpc_server_accepting(const struct rpc_server *s);

/* path: "/package.Service/Method". Register before rpc_server_start. */
int rpc_server_add_method(struct rpc_server *s, const char *path, rpc_handler_fn fn, void *arg);

int rpc_server_start(struct rpc_server *s);

/* Stops accepting calls, lets in-flight calls finish for up to grace_ms, cancels the rest,
 * joins the thread and frees everything. */
void rpc_server_stop(struct rpc_server *s, int grace_ms);

/* The first value of a request metadata key (lower case), or NULL. Borrowed from the call. */
const char *rpc_call_metadata(const struct rpc_call *call, const char *key);

/* The method path of the call. Borrowed. */
const char *rpc_call_method(const struct rpc_call *call);

/* The call's deadline on CLOCK_MONOTONIC in milliseconds, or INT64_MAX when it has none. */
int64_t rpc_call_deadline_ms(const struct rpc_call *call);

/* Whether the client went away (cancelled or deadline passed). Thread-safe. */
int rpc_call_cancelled(const struct rpc_call *call);

/* Answer OK with the serialized response message; the call is released. */
void rpc_call_reply(struct rpc_call *call, const uint8_t *resp, size_t len);

/* Answer with a non-OK status and a message a SQL user can read; the call is released. */
void rpc_call_fail(struct rpc_call *call, enum rpc_status code, const char *message);

/* Prometheus text (caller frees): udf_grpc_calls_total by method and status code. NULL on
 * ENOMEM. Thread-safe. */
char *rpc_server_metrics(struct rpc_server *s);

/* CLOCK_MONOTONIC now, in milliseconds. */
int64_t rpc_now_ms(void);

#endif
