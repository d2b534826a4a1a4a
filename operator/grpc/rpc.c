#include "grpc/rpc.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/log.h>
#include <grpc/support/time.h>

#include "util/log.h"

#define RPC_MAX_METHODS	   32
#define RPC_MAX_METADATA   64
#define RPC_DEFAULT_MAXMSG (4 * 1024 * 1024)
/* A connection that has not finished its handshake (TLS, or the HTTP/2 preface and SETTINGS)
 * this long is dropped: a caller that opens connections and stalls holds nothing for long.
 * The core's default is 120 s. */
#define RPC_HANDSHAKE_TIMEOUT_MS 10000
/* What the core may hold for all connections together (read buffers, frames, messages being
 * received). Above it the core shrinks buffers, then closes connections that carry no call
 * (GOAWAY "Buffers full"). An idle connection costs about 14 KiB, so some 4500 fit; the
 * operator's container is limited to 256 MiB (manifests/20-deployment.yaml). */
#define RPC_MEMORY_QUOTA_BYTES (64u * 1024 * 1024)
/* Requests the server keeps posted, so a burst of new calls does not wait on the CQ thread. */
#define RPC_PENDING_ACCEPTS 16

enum tag_kind { TAG_NEW_CALL, TAG_RECV, TAG_CLOSE, TAG_SEND, TAG_SHUTDOWN };

struct tag {
	enum tag_kind kind;
	struct rpc_call *call;
};

#define RPC_NCODES 17

struct rpc_method {
	char *path;
	rpc_handler_fn fn;
	void *arg;
	atomic_ullong answered[RPC_NCODES]; /* calls answered, by status code (/metrics) */
};

struct rpc_server {
	grpc_server *server;
	grpc_completion_queue *cq;
	pthread_t thread;
	int started;
	int port;
	atomic_int shutting_down;
	struct tag shutdown_tag;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int shutdown_done;
	int live_calls;
	struct rpc_method methods[RPC_MAX_METHODS];
	int n_methods;
};

struct rpc_call {
	struct rpc_server *srv;
	grpc_call *call;
	grpc_call_details details;
	grpc_metadata_array request_md;
	grpc_byte_buffer *recv;
	int close_cancelled;
	atomic_int refs;
	atomic_int answered;
	atomic_int closed;
	char *method;
	char *md_keys[RPC_MAX_METADATA];
	char *md_values[RPC_MAX_METADATA];
	int n_md;
	int64_t deadline_ms;
	grpc_byte_buffer *send_msg;
	grpc_slice status_details;
	int has_status_details;
	struct tag t_new, t_recv, t_close, t_send;
};

/*
 * The gRPC core orders what a thread did before handing it a tag before the completion-queue
 * thread's use of that tag, but it is not built with ThreadSanitizer, which cannot see that
 * order and would call every answer given off the CQ thread a race. Under TSan, each handoff
 * says so explicitly; elsewhere these are no-ops.
 */
#if defined(__SANITIZE_THREAD__) /* gcc */
#define RPC_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer) /* clang */
#define RPC_TSAN 1
#endif
#endif
#ifdef RPC_TSAN
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
static void tag_handed(struct tag *t)
{
	__tsan_release(t);
}
static void tag_returned(struct tag *t)
{
	__tsan_acquire(t);
}
#else
static void tag_handed(struct tag *t)
{
	(void)t;
}
static void tag_returned(struct tag *t)
{
	(void)t;
}
#endif

int64_t rpc_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static char *slice_strdup(grpc_slice s)
{
	size_t len = GRPC_SLICE_LENGTH(s);
	char *out = malloc(len + 1);
	if (!out)
		return NULL;
	memcpy(out, GRPC_SLICE_START_PTR(s), len);
	out[len] = '\0';
	return out;
}

/* Set when the core logs that accept() failed: its listener has stopped (rpc.h). The log line
 * is the only sign the core gives of it. */
static atomic_int accept_failed;

static void grpc_log_bridge(gpr_log_func_args *args)
{
	/* The core's own errors (bind failures, TLS problems) are worth a line; its info chatter
	 * is not. */
	if (args->severity != GPR_LOG_SEVERITY_ERROR)
		return;
	if (strncmp(args->message, "Failed accept4", 14) == 0 &&
	    !atomic_exchange(&accept_failed, 1)) {
		log_error("grpc",
			  "core: %s; the gRPC port accepts no more connections until udf-operator "
			  "restarts (/healthz now fails)",
			  args->message);
		return;
	}
	log_warn("grpc", "core: %s", args->message);
}

static void call_free(struct rpc_call *c)
{
	struct rpc_server *s = c->srv;
	if (c->call)
		grpc_call_unref(c->call);
	grpc_call_details_destroy(&c->details);
	grpc_metadata_array_destroy(&c->request_md);
	if (c->recv)
		grpc_byte_buffer_destroy(c->recv);
	if (c->send_msg)
		grpc_byte_buffer_destroy(c->send_msg);
	if (c->has_status_details)
		grpc_slice_unref(c->status_details);
	for (int i = 0; i < c->n_md; i++) {
		free(c->md_keys[i]);
		free(c->md_values[i]);
	}
	free(c->method);
	free(c);
	pthread_mutex_lock(&s->lock);
	s->live_calls--;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
}

static void call_unref(struct rpc_call *c)
{
	if (atomic_fetch_sub(&c->refs, 1) == 1)
		call_free(c);
}

static struct rpc_call *call_alloc(struct rpc_server *s)
{
	struct rpc_call *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->srv = s;
	grpc_call_details_init(&c->details);
	grpc_metadata_array_init(&c->request_md);
	c->t_new = (struct tag){TAG_NEW_CALL, c};
	c->t_recv = (struct tag){TAG_RECV, c};
	c->t_close = (struct tag){TAG_CLOSE, c};
	c->t_send = (struct tag){TAG_SEND, c};
	pthread_mutex_lock(&s->lock);
	s->live_calls++;
	pthread_mutex_unlock(&s->lock);
	return c;
}

static void post_accept(struct rpc_server *s)
{
	if (atomic_load(&s->shutting_down))
		return;
	struct rpc_call *c = call_alloc(s);
	if (!c) {
		log_error("grpc", "out of memory accepting a call");
		return;
	}
	atomic_store(&c->refs, 1);
	tag_handed(&c->t_new);
	grpc_call_error e = grpc_server_request_call(s->server, &c->call, &c->details,
						     &c->request_md, s->cq, s->cq, &c->t_new);
	if (e != GRPC_CALL_OK) {
		log_error("grpc", "request_call failed: %d", (int)e);
		call_unref(c);
	}
}

static int64_t deadline_to_ms(gpr_timespec deadline)
{
	gpr_timespec inf = gpr_inf_future(deadline.clock_type);
	if (gpr_time_cmp(deadline, inf) == 0)
		return INT64_MAX;
	gpr_timespec mono = gpr_convert_clock_type(deadline, GPR_CLOCK_MONOTONIC);
	gpr_timespec now = gpr_now(GPR_CLOCK_MONOTONIC);
	int64_t left = (int64_t)gpr_time_to_millis(gpr_time_sub(mono, now));
	return rpc_now_ms() + left;
}

static void on_new_call(struct rpc_server *s, struct rpc_call *c, int ok)
{
	post_accept(s);
	if (!ok) {
		call_unref(c);
		return;
	}
	c->method = slice_strdup(c->details.method);
	c->deadline_ms = deadline_to_ms(c->details.deadline);
	for (size_t i = 0; i < c->request_md.count && c->n_md < RPC_MAX_METADATA; i++) {
		c->md_keys[c->n_md] = slice_strdup(c->request_md.metadata[i].key);
		c->md_values[c->n_md] = slice_strdup(c->request_md.metadata[i].value);
		if (!c->md_keys[c->n_md] || !c->md_values[c->n_md]) {
			free(c->md_keys[c->n_md]);
			free(c->md_values[c->n_md]);
			break;
		}
		c->n_md++;
	}
	/* refs: the close op, the receive op, and the answer the handler owes. */
	atomic_store(&c->refs, 3);

	grpc_op close_op = {0};
	close_op.op = GRPC_OP_RECV_CLOSE_ON_SERVER;
	close_op.data.recv_close_on_server.cancelled = &c->close_cancelled;
	tag_handed(&c->t_close);
	if (grpc_call_start_batch(c->call, &close_op, 1, &c->t_close, NULL) != GRPC_CALL_OK) {
		atomic_store(&c->closed, 1);
		call_unref(c);
	}

	grpc_op recv_op = {0};
	recv_op.op = GRPC_OP_RECV_MESSAGE;
	recv_op.data.recv_message.recv_message = &c->recv;
	tag_handed(&c->t_recv);
	if (!c->method ||
	    grpc_call_start_batch(c->call, &recv_op, 1, &c->t_recv, NULL) != GRPC_CALL_OK) {
		rpc_call_fail(c, RPC_INTERNAL, "could not read the request");
		call_unref(c);
	}
}

static const struct rpc_method *find_method(const struct rpc_server *s, const char *path)
{
	for (int i = 0; i < s->n_methods; i++) {
		if (strcmp(s->methods[i].path, path) == 0)
			return &s->methods[i];
	}
	return NULL;
}

static void on_recv(struct rpc_server *s, struct rpc_call *c, int ok)
{
	if (!ok || !c->recv) {
		rpc_call_fail(c, RPC_INVALID_ARGUMENT, "the call carried no request message");
		call_unref(c);
		return;
	}
	const struct rpc_method *m = find_method(s, c->method);
	if (!m) {
		char msg[256];
		snprintf(msg, sizeof(msg), "method %.200s is not implemented by udf-operator",
			 c->method);
		rpc_call_fail(c, RPC_UNIMPLEMENTED, msg);
		call_unref(c);
		return;
	}
	grpc_byte_buffer_reader reader;
	if (!grpc_byte_buffer_reader_init(&reader, c->recv)) {
		rpc_call_fail(c, RPC_INTERNAL, "could not decompress the request");
		call_unref(c);
		return;
	}
	grpc_slice all = grpc_byte_buffer_reader_readall(&reader);
	grpc_byte_buffer_reader_destroy(&reader);
	/* The handler may answer (and so release the call) before it returns: hold our ref. */
	m->fn(c, GRPC_SLICE_START_PTR(all), GRPC_SLICE_LENGTH(all), m->arg);
	grpc_slice_unref(all);
	call_unref(c);
}

static void *cq_thread(void *arg)
{
	struct rpc_server *s = arg;
	for (;;) {
		grpc_event ev =
		    grpc_completion_queue_next(s->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
		if (ev.type == GRPC_QUEUE_SHUTDOWN)
			break;
		if (ev.type != GRPC_OP_COMPLETE)
			continue;
		struct tag *t = ev.tag;
		tag_returned(t);
		switch (t->kind) {
		case TAG_NEW_CALL:
			on_new_call(s, t->call, ev.success);
			break;
		case TAG_RECV:
			on_recv(s, t->call, ev.success);
			break;
		case TAG_CLOSE:
			atomic_store(&t->call->closed, 1);
			call_unref(t->call);
			break;
		case TAG_SEND:
			call_unref(t->call);
			break;
		case TAG_SHUTDOWN:
			pthread_mutex_lock(&s->lock);
			s->shutdown_done = 1;
			pthread_cond_broadcast(&s->cond);
			pthread_mutex_unlock(&s->lock);
			break;
		}
	}
	return NULL;
}

static void answer(struct rpc_call *c, enum rpc_status code, const char *message,
		   const uint8_t *resp, size_t len)
{
	if (atomic_exchange(&c->answered, 1)) {
		log_error("grpc", "%s answered twice (bug)", c->method ? c->method : "?");
		return;
	}
	for (int i = 0; c->method && i < c->srv->n_methods; i++)
		if (strcmp(c->srv->methods[i].path, c->method) == 0 && (int)code >= 0 &&
		    (int)code < RPC_NCODES)
			atomic_fetch_add(&c->srv->methods[i].answered[code], 1);
	grpc_op ops[3];
	int n = 0;
	memset(ops, 0, sizeof(ops));
	ops[n].op = GRPC_OP_SEND_INITIAL_METADATA;
	ops[n].data.send_initial_metadata.count = 0;
	n++;
	if (code == RPC_OK) {
		grpc_slice body = grpc_slice_from_copied_buffer((const char *)resp, len);
		c->send_msg = grpc_raw_byte_buffer_create(&body, 1);
		grpc_slice_unref(body);
		ops[n].op = GRPC_OP_SEND_MESSAGE;
		ops[n].data.send_message.send_message = c->send_msg;
		n++;
	}
	ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
	ops[n].data.send_status_from_server.trailing_metadata_count = 0;
	ops[n].data.send_status_from_server.status = (grpc_status_code)code;
	if (message && *message) {
		c->status_details = grpc_slice_from_copied_string(message);
		c->has_status_details = 1;
		ops[n].data.send_status_from_server.status_details = &c->status_details;
	}
	n++;
	grpc_call *gc = c->call; /* the last read of c before the core may hand it back */
	tag_handed(&c->t_send);
	if (grpc_call_start_batch(gc, ops, (size_t)n, &c->t_send, NULL) != GRPC_CALL_OK) {
		log_warn("grpc", "could not send the answer to %s", c->method ? c->method : "?");
		call_unref(c);
	}
}

void rpc_call_reply(struct rpc_call *call, const uint8_t *resp, size_t len)
{
	answer(call, RPC_OK, NULL, resp, len);
}

void rpc_call_fail(struct rpc_call *call, enum rpc_status code, const char *message)
{
	answer(call, code == RPC_OK ? RPC_UNKNOWN : code, message, NULL, 0);
}

const char *rpc_call_metadata(const struct rpc_call *call, const char *key)
{
	for (int i = 0; i < call->n_md; i++) {
		if (strcmp(call->md_keys[i], key) == 0)
			return call->md_values[i];
	}
	return NULL;
}

const char *rpc_call_method(const struct rpc_call *call)
{
	return call->method;
}

int64_t rpc_call_deadline_ms(const struct rpc_call *call)
{
	return call->deadline_ms;
}

int rpc_call_cancelled(const struct rpc_call *call)
{
	if (call->deadline_ms != INT64_MAX && rpc_now_ms() >= call->deadline_ms)
		return 1;
	return atomic_load(&((struct rpc_call *)call)->closed) && call->close_cancelled;
}

static char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	char *buf = NULL;
	size_t cap = 0, n = 0;
	for (;;) {
		if (n + 4096 + 1 > cap) {
			if (cap > (1u << 20))
				break; /* no certificate or key is a megabyte */
			char *nb = realloc(buf, cap ? cap * 2 : 8192);
			if (!nb)
				break;
			buf = nb;
			cap = cap ? cap * 2 : 8192;
		}
		size_t r = fread(buf + n, 1, cap - n - 1, f);
		n += r;
		if (r == 0)
			break;
	}
	int bad = ferror(f) || !buf;
	fclose(f);
	if (bad) {
		free(buf);
		return NULL;
	}
	buf[n] = '\0';
	*len = n;
	return buf;
}

/* ":50051" means every address: "[::]:50051" (dual stack, falling back to IPv4). */
static void normalize_address(const char *in, char *out, size_t outlen)
{
	if (in[0] == ':')
		snprintf(out, outlen, "[::]%s", in);
	else
		snprintf(out, outlen, "%s", in);
}

static grpc_server_credentials *make_credentials(const struct rpc_server_options *o, char *err,
						 size_t errlen)
{
	if (!o->tls_cert_file && !o->tls_key_file && !o->tls_client_ca_file)
		return grpc_insecure_server_credentials_create();
	if (o->tls_client_ca_file && !o->tls_cert_file) {
		snprintf(err, errlen,
			 "--grpc-tls-client-ca needs --grpc-tls-cert and --grpc-tls-key");
		return NULL;
	}
	if (!o->tls_cert_file || !o->tls_key_file) {
		snprintf(err, errlen, "--grpc-tls-cert and --grpc-tls-key go together");
		return NULL;
	}
	size_t clen = 0, klen = 0;
	char *cert = read_file(o->tls_cert_file, &clen);
	if (!cert) {
		snprintf(err, errlen, "cannot read --grpc-tls-cert %s: %s", o->tls_cert_file,
			 strerror(errno));
		return NULL;
	}
	char *key = read_file(o->tls_key_file, &klen);
	if (!key) {
		snprintf(err, errlen, "cannot read --grpc-tls-key %s: %s", o->tls_key_file,
			 strerror(errno));
		free(cert);
		return NULL;
	}
	size_t calen = 0;
	char *ca = NULL;
	if (o->tls_client_ca_file && !(ca = read_file(o->tls_client_ca_file, &calen))) {
		snprintf(err, errlen, "cannot read --grpc-tls-client-ca %s: %s",
			 o->tls_client_ca_file, strerror(errno));
		memset(key, 0, klen);
		free(key);
		free(cert);
		return NULL;
	}
	if (ca && !strstr(ca, "-----BEGIN CERTIFICATE-----")) {
		snprintf(err, errlen, "--grpc-tls-client-ca %s holds no PEM certificate",
			 o->tls_client_ca_file);
		memset(key, 0, klen);
		free(key);
		free(cert);
		free(ca);
		return NULL;
	}
	grpc_ssl_pem_key_cert_pair pair = {.private_key = key, .cert_chain = cert};
	grpc_server_credentials *creds = grpc_ssl_server_credentials_create_ex(
	    ca, &pair, 1,
	    ca ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
	       : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE,
	    NULL);
	memset(key, 0, klen);
	free(key);
	free(cert);
	free(ca);
	if (!creds)
		snprintf(err, errlen, "the TLS certificate, key or client CA is not valid PEM");
	return creds;
}

int rpc_server_new(const struct rpc_server_options *opts, struct rpc_server **out, char *err,
		   size_t errlen)
{
	char addr[300];
	int rc = -EINVAL;

	gpr_set_log_function(grpc_log_bridge);
	grpc_init();
	struct rpc_server *s = calloc(1, sizeof(*s));
	if (!s) {
		rc = -ENOMEM;
		goto out_shutdown;
	}
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->cond, NULL);

	grpc_resource_quota *quota = grpc_resource_quota_create("udf-operator");
	grpc_resource_quota_resize(quota, RPC_MEMORY_QUOTA_BYTES);
	grpc_arg args[4];
	args[0].type = GRPC_ARG_INTEGER;
	args[0].key = GRPC_ARG_ALLOW_REUSEPORT;
	args[0].value.integer = 0;
	args[1].type = GRPC_ARG_INTEGER;
	args[1].key = GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH;
	args[1].value.integer =
	    (int)(opts->max_message_bytes ? opts->max_message_bytes : RPC_DEFAULT_MAXMSG);
	args[2].type = GRPC_ARG_INTEGER;
	args[2].key = GRPC_ARG_SERVER_HANDSHAKE_TIMEOUT_MS;
	args[2].value.integer = RPC_HANDSHAKE_TIMEOUT_MS;
	args[3].type = GRPC_ARG_POINTER;
	args[3].key = GRPC_ARG_RESOURCE_QUOTA;
	args[3].value.pointer.p = quota;
	args[3].value.pointer.vtable = grpc_resource_quota_arg_vtable();
	grpc_channel_args chargs = {.num_args = 4, .args = args};

	s->server = grpc_server_create(&chargs, NULL);
	grpc_resource_quota_unref(quota); /* the server holds its own reference */
	s->cq = grpc_completion_queue_create_for_next(NULL);
	grpc_server_register_completion_queue(s->server, s->cq, NULL);

	grpc_server_credentials *creds = make_credentials(opts, err, errlen);
	if (!creds)
		goto out_destroy;
	normalize_address(opts->bind_address ? opts->bind_address : ":50051", addr, sizeof(addr));
	s->port = grpc_server_add_http2_port(s->server, addr, creds);
	grpc_server_credentials_release(creds);
	if (s->port <= 0) {
		snprintf(err, errlen,
			 "cannot listen on %s (address in use by another process, or not a "
			 "valid host:port)",
			 opts->bind_address ? opts->bind_address : ":50051");
		rc = -EADDRINUSE;
		goto out_destroy;
	}
	*out = s;
	return 0;

out_destroy:
	grpc_server_destroy(s->server);
	grpc_completion_queue_shutdown(s->cq);
	while (grpc_completion_queue_next(s->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
	       GRPC_QUEUE_SHUTDOWN) {
	}
	grpc_completion_queue_destroy(s->cq);
	pthread_mutex_destroy(&s->lock);
	pthread_cond_destroy(&s->cond);
	free(s);
out_shutdown:
	grpc_shutdown();
	return rc;
}

int rpc_server_port(const struct rpc_server *s)
{
	return s->port;
}

int rpc_server_accepting(const struct rpc_server *s)
{
	(void)s;
	return !atomic_load(&accept_failed);
}

int rpc_server_add_method(struct rpc_server *s, const char *path, rpc_handler_fn fn, void *arg)
{
	if (s->started || s->n_methods >= RPC_MAX_METHODS)
		return -EINVAL;
	char *p = strdup(path);
	if (!p)
		return -ENOMEM;
	struct rpc_method *m = &s->methods[s->n_methods++];
	m->path = p;
	m->fn = fn;
	m->arg = arg;
	for (int i = 0; i < RPC_NCODES; i++)
		atomic_init(&m->answered[i], 0);
	return 0;
}

int rpc_server_start(struct rpc_server *s)
{
	grpc_server_start(s->server);
	for (int i = 0; i < RPC_PENDING_ACCEPTS; i++)
		post_accept(s);
	if (pthread_create(&s->thread, NULL, cq_thread, s) != 0)
		return -EAGAIN;
	s->started = 1;
	return 0;
}

static int wait_until(struct rpc_server *s, int *flag_or_null, int64_t deadline_ms)
{
	pthread_mutex_lock(&s->lock);
	for (;;) {
		int done = flag_or_null ? *flag_or_null : s->live_calls == 0;
		if (done || (deadline_ms != INT64_MAX && rpc_now_ms() >= deadline_ms))
			break;
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 50 * 1000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&s->cond, &s->lock, &ts);
	}
	int done = flag_or_null ? *flag_or_null : s->live_calls == 0;
	pthread_mutex_unlock(&s->lock);
	return done;
}

void rpc_server_stop(struct rpc_server *s, int grace_ms)
{
	if (!s)
		return;
	atomic_store(&s->shutting_down, 1);
	s->shutdown_tag = (struct tag){TAG_SHUTDOWN, NULL};
	tag_handed(&s->shutdown_tag);
	grpc_server_shutdown_and_notify(s->server, s->cq, &s->shutdown_tag);
	if (s->started) {
		if (!wait_until(s, &s->shutdown_done, rpc_now_ms() + grace_ms)) {
			log_info("grpc", "grace period over; cancelling the calls still in flight");
			grpc_server_cancel_all_calls(s->server);
			/* Every handler answers its call (the call's owner must, even when
			 * cancelled); the shutdown tag fires once they have. */
			wait_until(s, &s->shutdown_done, INT64_MAX);
		}
		wait_until(s, NULL, INT64_MAX);
	}
	grpc_server_destroy(s->server);
	grpc_completion_queue_shutdown(s->cq);
	if (s->started) {
		pthread_join(s->thread, NULL);
	} else {
		while (grpc_completion_queue_next(s->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL)
			   .type != GRPC_QUEUE_SHUTDOWN) {
		}
	}
	grpc_completion_queue_destroy(s->cq);
	for (int i = 0; i < s->n_methods; i++)
		free(s->methods[i].path);
	pthread_mutex_destroy(&s->lock);
	pthread_cond_destroy(&s->cond);
	free(s);
	grpc_shutdown();
}

char *rpc_server_metrics(struct rpc_server *s)
{
	static const char *const names[RPC_NCODES] = {"OK",
						      "CANCELLED",
						      "UNKNOWN",
						      "INVALID_ARGUMENT",
						      "DEADLINE_EXCEEDED",
						      "NOT_FOUND",
						      "ALREADY_EXISTS",
						      "PERMISSION_DENIED",
						      "RESOURCE_EXHAUSTED",
						      "FAILED_PRECONDITION",
						      "ABORTED",
						      "OUT_OF_RANGE",
						      "UNIMPLEMENTED",
						      "INTERNAL",
						      "UNAVAILABLE",
						      "DATA_LOSS",
						      "UNAUTHENTICATED"};
	size_t cap = 512, len = 0;
	char *buf = malloc(cap);
	if (!buf)
		return NULL;
	len = (size_t)snprintf(buf, cap,
			       "# HELP udf_grpc_calls_total gRPC calls answered, by method and "
			       "status code.\n"
			       "# TYPE udf_grpc_calls_total counter\n");
	for (int i = 0; s && i < s->n_methods; i++) {
		for (int k = 0; k < RPC_NCODES; k++) {
			unsigned long long n = atomic_load(&s->methods[i].answered[k]);
			if (!n)
				continue;
			char line[512];
			int w = snprintf(line, sizeof(line),
					 "udf_grpc_calls_total{method=\"%s\",code=\"%s\"} %llu\n",
					 s->methods[i].path, names[k], n);
			if (w < 0 || (size_t)w >= sizeof(line))
				continue;
			if (len + (size_t)w + 1 > cap) {
				size_t nc = cap * 2 + (size_t)w;
				char *nb = realloc(buf, nc);
				if (!nb) {
					free(buf);
					return NULL;
				}
				buf = nb;
				cap = nc;
			}
			memcpy(buf + len, line, (size_t)w + 1);
			len += (size_t)w;
		}
	}
	return buf;
}
