#include "control.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <libwebsockets.h>

#include "log.h"
#include "spec.h"
#include "worker.h"

static struct lws_context *ctx;

static char *error_json(const char *msg)
{
	cJSON *o = cJSON_CreateObject();
	char *s;

	if (!o)
		return NULL;
	cJSON_AddStringToObject(o, "error", msg);
	s = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return s;
}

static char *dup_text(const char *s)
{
	return strdup(s);
}

int control_handle(int status_vhost, const char *method, const char *path,
		   const char *authorization, const char *body, size_t body_len, int *status,
		   char **out, const char **content_type)
{
	char err[512];

	*content_type = "application/json";
	*out = NULL;
	if (status_vhost) {
		if (strcmp(method, "GET") != 0) {
			*status = 405;
			*out = error_json("method not allowed");
		} else if (strcmp(path, "/health") == 0) {
			int ready = worker_ready();

			*status = ready ? 200 : 503;
			*content_type = "text/plain";
			*out = dup_text(ready ? "1" : "0");
		} else if (strcmp(path, "/stats") == 0) {
			*status = 200;
			*out = worker_stats_json();
		} else {
			*status = 404;
			*out = error_json("not found");
		}
		return *out ? 0 : -ENOMEM;
	}
	if (strcmp(path, "/readyz") == 0) {
		int ready = worker_readyz();

		*status = strcmp(method, "GET") != 0 ? 405 : ready ? 200 : 503;
		*content_type = "text/plain";
		*out = dup_text(*status == 405 ? "method not allowed" : ready ? "ok" : "not ready");
		return *out ? 0 : -ENOMEM;
	}
	if (strcmp(path, "/healthz") == 0) {
		*status = strcmp(method, "GET") == 0 ? 200 : 405;
		*content_type = "text/plain";
		*out = dup_text(*status == 200 ? "ok" : "method not allowed");
		return *out ? 0 : -ENOMEM;
	}
	if (strcmp(path, "/v1/specialize") != 0 && strcmp(path, "/v1/status") != 0) {
		*status = 404;
		*out = error_json("not found");
		return *out ? 0 : -ENOMEM;
	}
	if (!worker_check_authorization(authorization)) {
		*status = 401;
		*out = error_json("missing or wrong bearer token");
		return *out ? 0 : -ENOMEM;
	}
	if (strcmp(path, "/v1/status") == 0) {
		if (strcmp(method, "GET") != 0) {
			*status = 405;
			*out = error_json("method not allowed");
		} else {
			*status = 200;
			*out = worker_status_json();
		}
		return *out ? 0 : -ENOMEM;
	}
	if (strcmp(method, "POST") != 0) {
		*status = 405;
		*out = error_json("method not allowed");
		return *out ? 0 : -ENOMEM;
	}
	{
		struct spec_request req;
		int rc = spec_parse(body ? body : "", body_len, &req, err, sizeof(err));

		if (rc == -ENOMEM)
			return -ENOMEM;
		if (rc) {
			log_warn("control", "bad specialize request: %s", err);
			*status = 400;
			*out = error_json(err);
			return *out ? 0 : -ENOMEM;
		}
		*status = worker_specialize(&req, err, sizeof(err));
		spec_free(&req);
		if (*status == 202) {
			cJSON *o = cJSON_CreateObject();

			if (o) {
				cJSON_AddStringToObject(o, "status", err);
				*out = cJSON_PrintUnformatted(o);
				cJSON_Delete(o);
			}
		} else {
			*out = error_json(err);
		}
	}
	return *out ? 0 : -ENOMEM;
}

/* ---- libwebsockets glue -------------------------------------------------------------------- */

struct session {
	char method[8];
	char path[256];
	char *auth;
	char *body;
	size_t body_len;
	int too_big;
	int discard_body; /* answered before the body: ignore it, close after the answer */
	int status;
	char *resp;
	const char *ctype;
};

static void session_reset(struct session *s)
{
	/* lws calls CLOSED_HTTP without per-session storage when a client connects and closes
	 * before sending a request (a kubelet tcpSocket probe does exactly that). */
	if (!s)
		return;
	if (s->auth) /* a control token: do not leave it in freed memory */
		explicit_bzero(s->auth, strlen(s->auth));
	free(s->auth);
	free(s->body);
	free(s->resp);
	memset(s, 0, sizeof(*s));
}

static int respond(struct lws *wsi, struct session *s)
{
	int status_vhost = lws_get_vhost_user(lws_get_vhost(wsi)) != NULL;

	if (s->too_big) {
		s->status = 413;
		s->ctype = "application/json";
		s->resp = error_json("body: larger than the limit");
	} else if (control_handle(status_vhost, s->method, s->path, s->auth, s->body, s->body_len,
				  &s->status, &s->resp, &s->ctype) != 0) {
		s->status = 500;
		s->ctype = "text/plain";
		s->resp = NULL;
	}
	lws_callback_on_writable(wsi);
	return 0;
}

/*
 * Decides a request before its body is read, when the body cannot matter: anything on the
 * status port that carries one, any POST there, an unknown path, a missing or wrong token, a
 * declared length over the limit. The body is then never buffered (an unauthenticated
 * caller cannot make us hold 8 MiB per connection) and the connection closes after the
 * answer. Returns 1 when s now holds the answer.
 */
static int answer_before_body(struct lws *wsi, struct session *s, int status_vhost)
{
	char len_s[32];
	int has_body = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH) > 0 ||
		       lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_TRANSFER_ENCODING) > 0;

	s->ctype = "application/json";
	if (status_vhost) {
		if (!has_body && strcmp(s->method, "POST") != 0)
			return 0;
		s->status = strcmp(s->method, "GET") == 0 ? 413 : 405;
		s->resp = error_json(s->status == 413 ? "the status port takes no request body"
						      : "method not allowed");
		return 1;
	}
	if (strcmp(s->method, "POST") != 0)
		return 0;
	if (strcmp(s->path, "/v1/specialize") != 0)
		return control_handle(0, s->method, s->path, s->auth, NULL, 0, &s->status, &s->resp,
				      &s->ctype) == 0
			   ? 1
			   : 0;
	if (!worker_check_authorization(s->auth)) {
		s->status = 401;
		s->resp = error_json("missing or wrong bearer token");
		return 1;
	}
	if (lws_hdr_copy(wsi, len_s, sizeof(len_s), WSI_TOKEN_HTTP_CONTENT_LENGTH) > 0 &&
	    strtoull(len_s, NULL, 10) > SPEC_MAX_BODY) {
		s->status = 413;
		s->resp = error_json("body: larger than the limit");
		return 1;
	}
	return 0;
}

static int on_http(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
		   size_t len)
{
	struct session *s = user;
	unsigned char hdr[LWS_PRE + 2048], *start = &hdr[LWS_PRE], *p = start,
					   *end = &hdr[sizeof(hdr) - 1];
	int n;

	switch (reason) {
	case LWS_CALLBACK_HTTP:
		session_reset(s);
		snprintf(s->path, sizeof(s->path), "%s", in ? (const char *)in : "/");
		if (lws_hdr_total_length(wsi, WSI_TOKEN_POST_URI))
			snprintf(s->method, sizeof(s->method), "POST");
		else if (lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI))
			snprintf(s->method, sizeof(s->method), "GET");
		else
			snprintf(s->method, sizeof(s->method), "OTHER");
		n = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_AUTHORIZATION);
		if (n > 0 && n < 4096) {
			s->auth = malloc((size_t)n + 1);
			if (s->auth &&
			    lws_hdr_copy(wsi, s->auth, n + 1, WSI_TOKEN_HTTP_AUTHORIZATION) < 0) {
				free(s->auth);
				s->auth = NULL;
			}
		}
		if (answer_before_body(wsi, s, lws_get_vhost_user(lws_get_vhost(wsi)) != NULL)) {
			s->discard_body = 1;
			lws_callback_on_writable(wsi);
			return 0;
		}
		if (strcmp(s->method, "POST") == 0)
			return 0; /* the body follows */
		return respond(wsi, s);

	case LWS_CALLBACK_HTTP_BODY:
		if (s->too_big || s->discard_body)
			return 0;
		if (s->body_len + len > SPEC_MAX_BODY) {
			s->too_big = 1;
			free(s->body);
			s->body = NULL;
			s->body_len = 0;
			return 0;
		}
		{
			char *grown = realloc(s->body, s->body_len + len + 1);

			if (!grown)
				return -1;
			s->body = grown;
			memcpy(s->body + s->body_len, in, len);
			s->body_len += len;
			s->body[s->body_len] = '\0';
		}
		return 0;

	case LWS_CALLBACK_HTTP_BODY_COMPLETION:
		if (s->discard_body)
			return 0;
		return respond(wsi, s);

	case LWS_CALLBACK_HTTP_WRITEABLE: {
		size_t body_len = s->resp ? strlen(s->resp) : 0;
		int close_after = s->discard_body;
		unsigned char *buf;

		if (!s->status)
			return 0;
		if (lws_add_http_common_headers(wsi, (unsigned int)s->status,
						s->ctype ? s->ctype : "text/plain", body_len, &p,
						end))
			return 1;
		if (lws_finalize_write_http_header(wsi, start, &p, end))
			return 1;
		buf = malloc(LWS_PRE + body_len + 1);
		if (!buf)
			return -1;
		memcpy(buf + LWS_PRE, s->resp ? s->resp : "", body_len);
		n = lws_write(wsi, buf + LWS_PRE, body_len, LWS_WRITE_HTTP_FINAL);
		free(buf);
		session_reset(s);
		if (n < 0 || close_after)
			return -1;
		if (lws_http_transaction_completed(wsi))
			return -1;
		return 0;
	}

	case LWS_CALLBACK_CLOSED_HTTP:
		session_reset(s);
		return 0;

	default:
		break;
	}
	return lws_callback_http_dummy(wsi, reason, user, in, len);
}

static const struct lws_protocols protocols[] = {
    {"http", on_http, sizeof(struct session), 0, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

static void lws_log(int level, const char *line)
{
	size_t n = strlen(line);

	while (n && line[n - 1] == '\n')
		n--;
	if (level & LLL_ERR)
		log_error("lws", "%.*s", (int)n, line);
	else
		log_warn("lws", "%.*s", (int)n, line);
}

static int status_marker;

int control_start(const struct worker_options *opts)
{
	struct lws_context_creation_info info;

	lws_set_log_level(LLL_ERR | LLL_WARN, lws_log);
	memset(&info, 0, sizeof(info));
	info.options = LWS_SERVER_OPTION_EXPLICIT_VHOSTS | LWS_SERVER_OPTION_DISABLE_IPV6;
	info.port = CONTEXT_PORT_NO_LISTEN_SERVER;
	ctx = lws_create_context(&info);
	if (!ctx)
		return -ENOMEM;

	memset(&info, 0, sizeof(info));
	info.port = opts->control_port;
	info.iface = opts->control_host;
	info.protocols = protocols;
	info.vhost_name = "control";
	info.options = LWS_SERVER_OPTION_DISABLE_IPV6;
	info.timeout_secs = 30;
	if (!lws_create_vhost(ctx, &info)) {
		log_error("control", "cannot listen on the control port %d", opts->control_port);
		return -EADDRINUSE;
	}
	memset(&info, 0, sizeof(info));
	info.port = opts->status_port;
	info.protocols = protocols;
	info.vhost_name = "status";
	info.options = LWS_SERVER_OPTION_DISABLE_IPV6;
	info.user = &status_marker;
	if (!lws_create_vhost(ctx, &info)) {
		log_error("control", "cannot listen on the status port %d", opts->status_port);
		return -EADDRINUSE;
	}
	log_info("control", "control API on %s:%d, status on :%d",
		 opts->control_host ? opts->control_host : "*", opts->control_port,
		 opts->status_port);
	return 0;
}

void control_run(void)
{
	while (!worker_done())
		if (lws_service(ctx, 0) < 0)
			break;
}

void control_wakeup(void)
{
	if (ctx)
		lws_cancel_service(ctx);
}

void control_stop(void)
{
	if (ctx)
		lws_context_destroy(ctx);
	ctx = NULL;
}
