/*
 * kube/rest: blocking requests on a pool of curl easy handles. Each pooled handle keeps its
 * own connections alive between requests (libcurl's shared connection cache is not safe across
 * threads in 7.88), and all share the DNS and TLS session caches.
 */
#include "kube/rest.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/log.h"

#define BODY_MAX	(256u << 20) /* a LIST page of 500 big objects stays well below */
#define REQ_TIMEOUT_MS	30000L
#define CONN_TIMEOUT_MS 5000L
#define POOL_MAX	16
#define PAGE_SIZE	500

struct kube_client {
	struct kube_config *cfg;
	CURLSH *share;
	pthread_mutex_t share_mu[CURL_LOCK_DATA_LAST];
	pthread_mutex_t pool_mu;
	CURL *pool[POOL_MAX];
	int npool;
	char *connect_to; /* for tls-server-name: "name:port:host:port" */
	struct curl_slist *connect_list;
	char *base; /* server URL, with tls-server-name as host when set */
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static _Thread_local long thread_timeout_ms;

void kube_request_timeout_ms(long ms)
{
	thread_timeout_ms = ms > 0 ? ms : 0;
}

static void curl_init_once(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

static void share_lock(CURL *h, curl_lock_data data, curl_lock_access acc, void *user)
{
	struct kube_client *c = user;
	pthread_mutex_lock(&c->share_mu[data]);
}

static void share_unlock(CURL *h, curl_lock_data data, void *user)
{
	struct kube_client *c = user;
	pthread_mutex_unlock(&c->share_mu[data]);
}

/* tls-server-name: connect to the configured host but speak TLS (SNI and verification) for
 * the given name. libcurl does that with the name in the URL plus CONNECT_TO. */
static int setup_server_name(struct kube_client *c)
{
	const char *srv = kube_config_server(c->cfg);
	const char *sni = kube_config_tls(c->cfg)->server_name;
	const char *hs, *he, *ps;
	char host[256], port[16];

	if (!sni || strncmp(srv, "https://", 8) != 0) {
		c->base = strdup(srv);
		return c->base ? 0 : -ENOMEM;
	}
	hs = srv + 8;
	if (*hs == '[') {
		he = strchr(hs, ']');
		if (!he)
			return -EINVAL;
		he++;
	} else {
		he = hs + strcspn(hs, ":/");
	}
	if ((size_t)(he - hs) >= sizeof(host))
		return -EINVAL;
	memcpy(host, hs, (size_t)(he - hs));
	host[he - hs] = '\0';
	ps = he;
	if (*ps == ':') {
		size_t n = strcspn(ps + 1, "/");
		if (n == 0 || n >= sizeof(port))
			return -EINVAL;
		memcpy(port, ps + 1, n);
		port[n] = '\0';
		ps += 1 + n;
	} else {
		strcpy(port, "443");
	}
	if (asprintf(&c->connect_to, "%s:%s:%s:%s", sni, port, host, port) < 0) {
		c->connect_to = NULL;
		return -ENOMEM;
	}
	c->connect_list = curl_slist_append(NULL, c->connect_to);
	if (!c->connect_list)
		return -ENOMEM;
	if (asprintf(&c->base, "https://%s:%s%s", sni, port, ps) < 0) {
		c->base = NULL;
		return -ENOMEM;
	}
	return 0;
}

int kube_client_new(struct kube_config *cfg, struct kube_client **out)
{
	struct kube_client *c;
	int rc;

	*out = NULL;
	pthread_once(&curl_once, curl_init_once);
	c = calloc(1, sizeof(*c));
	if (!c) {
		kube_config_free(cfg);
		return -ENOMEM;
	}
	c->cfg = cfg;
	for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_init(&c->share_mu[i], NULL);
	pthread_mutex_init(&c->pool_mu, NULL);
	c->share = curl_share_init();
	if (!c->share) {
		kube_client_free(c);
		return -ENOMEM;
	}
	curl_share_setopt(c->share, CURLSHOPT_LOCKFUNC, share_lock);
	curl_share_setopt(c->share, CURLSHOPT_UNLOCKFUNC, share_unlock);
	curl_share_setopt(c->share, CURLSHOPT_USERDATA, c);
	curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
	curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
	rc = setup_server_name(c);
	if (rc) {
		kube_client_free(c);
		return rc;
	}
	*out = c;
	return 0;
}

void kube_client_free(struct kube_client *c)
{
	if (!c)
		return;
	for (int i = 0; i < c->npool; i++)
		curl_easy_cleanup(c->pool[i]);
	if (c->share)
		curl_share_cleanup(c->share);
	for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_destroy(&c->share_mu[i]);
	pthread_mutex_destroy(&c->pool_mu);
	curl_slist_free_all(c->connect_list);
	free(c->connect_to);
	free(c->base);
	kube_config_free(c->cfg);
	free(c);
}

struct kube_config *kube_client_config(struct kube_client *c)
{
	return c->cfg;
}

static CURL *pool_get(struct kube_client *c)
{
	CURL *e = NULL;
	pthread_mutex_lock(&c->pool_mu);
	if (c->npool > 0)
		e = c->pool[--c->npool];
	pthread_mutex_unlock(&c->pool_mu);
	if (e)
		curl_easy_reset(e);
	else
		e = curl_easy_init();
	return e;
}

static void pool_put(struct kube_client *c, CURL *e)
{
	pthread_mutex_lock(&c->pool_mu);
	if (c->npool < POOL_MAX) {
		c->pool[c->npool++] = e;
		e = NULL;
	}
	pthread_mutex_unlock(&c->pool_mu);
	if (e)
		curl_easy_cleanup(e);
}

int kube_curl_errno(CURLcode cc)
{
	switch (cc) {
	case CURLE_OK:
		return 0;
	case CURLE_COULDNT_CONNECT:
		return -ECONNREFUSED;
	case CURLE_COULDNT_RESOLVE_HOST:
		return -EHOSTUNREACH;
	case CURLE_OPERATION_TIMEDOUT:
		return -ETIMEDOUT;
	case CURLE_OUT_OF_MEMORY:
		return -ENOMEM;
	case CURLE_WRITE_ERROR:
	case CURLE_FILESIZE_EXCEEDED:
		return -EFBIG;
	case CURLE_GOT_NOTHING:
	case CURLE_RECV_ERROR:
	case CURLE_SEND_ERROR:
	case CURLE_PARTIAL_FILE:
		return -ECONNRESET;
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_CACERT_BADFILE:
		return -EPROTO;
	default:
		return -EIO;
	}
}

int kube_client_prepare(struct kube_client *c, CURL *e, const char *path,
			struct curl_slist **headers)
{
	const struct kube_tls *tls = kube_config_tls(c->cfg);
	struct curl_slist *h = NULL, *nh;
	char *url = NULL, *tok = NULL, *auth = NULL, err[256];
	int rc;

	*headers = NULL;
	rc = kube_config_token(c->cfg, &tok, err, sizeof(err));
	if (rc) {
		log_warn("kube", "token: %s", err);
		return rc;
	}
	if (asprintf(&url, "%s%s", c->base, path) < 0) {
		url = NULL;
		rc = -ENOMEM;
		goto out;
	}
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_SHARE, c->share);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, CONN_TIMEOUT_MS);
	curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
	curl_easy_setopt(e, CURLOPT_USERAGENT, "udf-operator/" UDF_VERSION);
	curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
	/* HTTP/1.1: kube-apiserver answers a 401 over HTTP/2 with a GOAWAY that libcurl 7.88
	 * sometimes turns into "partial file" instead of the 401 (seen here about 1 in 8), which
	 * would hide the signal to refresh the token. One connection per watch is fine for the
	 * multi loop. */
	curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
	if (c->connect_list)
		curl_easy_setopt(e, CURLOPT_CONNECT_TO, c->connect_list);
	if (tls->ca) {
		struct curl_blob b = {
		    .data = (void *)tls->ca, .len = tls->ca_len, .flags = CURL_BLOB_COPY};
		curl_easy_setopt(e, CURLOPT_CAINFO_BLOB, &b);
	}
	if (tls->cert && tls->key) {
		struct curl_blob cb = {
		    .data = (void *)tls->cert, .len = tls->cert_len, .flags = CURL_BLOB_COPY};
		struct curl_blob kb = {
		    .data = (void *)tls->key, .len = tls->key_len, .flags = CURL_BLOB_COPY};
		curl_easy_setopt(e, CURLOPT_SSLCERTTYPE, "PEM");
		curl_easy_setopt(e, CURLOPT_SSLCERT_BLOB, &cb);
		curl_easy_setopt(e, CURLOPT_SSLKEYTYPE, "PEM");
		curl_easy_setopt(e, CURLOPT_SSLKEY_BLOB, &kb);
	}
	if (tls->insecure) {
		curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
	}
	h = curl_slist_append(h, "Accept: application/json");
	if (!h) {
		rc = -ENOMEM;
		goto out;
	}
	if (tok) {
		if (asprintf(&auth, "Authorization: Bearer %s", tok) < 0) {
			auth = NULL;
			rc = -ENOMEM;
			goto out;
		}
		nh = curl_slist_append(h, auth);
		explicit_bzero(auth, strlen(auth));
		if (!nh) {
			rc = -ENOMEM;
			goto out;
		}
		h = nh;
	}
	*headers = h;
	h = NULL;
	rc = 0;
out:
	curl_slist_free_all(h);
	free(auth);
	if (tok) {
		explicit_bzero(tok, strlen(tok));
		free(tok);
	}
	free(url);
	return rc;
}

struct body_buf {
	char *data;
	size_t len, cap;
};

static size_t body_write(char *ptr, size_t size, size_t nmemb, void *user)
{
	struct body_buf *b = user;
	size_t n = size * nmemb;
	if (b->len + n + 1 > b->cap) {
		size_t ncap = b->cap ? b->cap : 16384;
		char *nd;
		while (ncap < b->len + n + 1)
			ncap *= 2;
		if (ncap > BODY_MAX + 1)
			return 0; /* aborts the transfer: CURLE_WRITE_ERROR */
		nd = realloc(b->data, ncap);
		if (!nd)
			return 0;
		b->data = nd;
		b->cap = ncap;
	}
	memcpy(b->data + b->len, ptr, n);
	b->len += n;
	b->data[b->len] = '\0';
	return n;
}

static int do_request(struct kube_client *c, const char *method, const char *path,
		      const char *content_type, const char *body, size_t body_len,
		      struct kube_response *resp, int fresh)
{
	struct curl_slist *h = NULL;
	struct body_buf b = {0};
	CURL *e;
	CURLcode cc;
	int rc;

	memset(resp, 0, sizeof(*resp));
	e = pool_get(c);
	if (!e)
		return -ENOMEM;
	rc = kube_client_prepare(c, e, path, &h);
	if (rc)
		goto out_put;
	if (content_type) {
		char ct[128];
		struct curl_slist *nh;
		snprintf(ct, sizeof(ct), "Content-Type: %s", content_type);
		nh = curl_slist_append(h, ct);
		if (!nh) {
			rc = -ENOMEM;
			goto out_free;
		}
		h = nh;
	}
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS,
			 thread_timeout_ms ? thread_timeout_ms : REQ_TIMEOUT_MS);
	if (thread_timeout_ms && thread_timeout_ms < CONN_TIMEOUT_MS)
		curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, thread_timeout_ms);
	if (fresh)
		curl_easy_setopt(e, CURLOPT_FRESH_CONNECT, 1L);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, body_write);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, &b);
	if (strcmp(method, "GET") != 0)
		curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
	if (body) {
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
	}
	cc = curl_easy_perform(e);
	if (cc != CURLE_OK) {
		rc = kube_curl_errno(cc);
		log_debug("kube", "%s %s: %s", method, path, curl_easy_strerror(cc));
		free(b.data);
		goto out_free;
	}
	curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &resp->http_status);
	resp->body = b.data;
	resp->body_len = b.len;
	if (b.data)
		resp->json = cJSON_ParseWithLength(b.data, b.len);
	if (resp->http_status >= 400)
		kube_status_parse(b.data, b.len, resp->http_status, &resp->status);
	rc = 0;
out_free:
	curl_slist_free_all(h);
out_put:
	pool_put(c, e);
	return rc;
}

int kube_request(struct kube_client *c, const char *method, const char *path,
		 const char *content_type, const char *body, size_t body_len,
		 struct kube_response *resp)
{
	int rc = do_request(c, method, path, content_type, body, body_len, resp, 0);
	if (rc == 0 && resp->http_status == 401) {
		/* A rotated or expired token: refresh and try once more, on a new connection
		 * (the server may close the one that carried the rejected token). */
		kube_config_token_rejected(c->cfg);
		kube_response_free(resp);
		rc = do_request(c, method, path, content_type, body, body_len, resp, 1);
	} else if (rc == -ECONNRESET && strcmp(method, "GET") == 0) {
		/* A kept-alive connection the server had closed: safe to repeat a read. */
		rc = do_request(c, method, path, content_type, body, body_len, resp, 1);
	}
	return rc;
}

int kube_get(struct kube_client *c, const char *path, struct kube_response *resp)
{
	return kube_request(c, "GET", path, NULL, NULL, 0, resp);
}

void kube_response_free(struct kube_response *resp)
{
	if (!resp)
		return;
	free(resp->body);
	cJSON_Delete(resp->json);
	resp->body = NULL;
	resp->json = NULL;
	resp->body_len = 0;
}

/* ---- Status ---- */

static const char *http_reason(long code)
{
	switch (code) {
	case 400:
		return "BadRequest";
	case 401:
		return "Unauthorized";
	case 403:
		return "Forbidden";
	case 404:
		return "NotFound";
	case 405:
		return "MethodNotAllowed";
	case 409:
		return "Conflict";
	case 410:
		return "Expired";
	case 415:
		return "UnsupportedMediaType";
	case 422:
		return "Invalid";
	case 429:
		return "TooManyRequests";
	case 500:
		return "InternalError";
	case 503:
		return "ServiceUnavailable";
	case 504:
		return "Timeout";
	default:
		return code >= 500 ? "InternalError" : "Unknown";
	}
}

int kube_status_parse(const char *body, size_t len, long http_status, struct kube_status *st)
{
	cJSON *j = NULL;
	const cJSON *kind, *code, *reason, *msg;
	int rc = -EINVAL;

	memset(st, 0, sizeof(*st));
	st->code = (int)http_status;
	snprintf(st->reason, sizeof(st->reason), "%s", http_reason(http_status));
	if (body && len > 0)
		j = cJSON_ParseWithLength(body, len);
	kind = cJSON_GetObjectItemCaseSensitive(j, "kind");
	if (!cJSON_IsObject(j) || !cJSON_IsString(kind) || strcmp(kind->valuestring, "Status")) {
		/* Not a Status: keep a printable prefix of the body as the message. */
		size_t n = 0;
		for (size_t i = 0; body && i < len && n + 1 < sizeof(st->message); i++) {
			unsigned char ch = (unsigned char)body[i];
			st->message[n++] = (ch >= 0x20 && ch < 0x7f) ? (char)ch : ' ';
		}
		st->message[n] = '\0';
		goto out;
	}
	code = cJSON_GetObjectItemCaseSensitive(j, "code");
	reason = cJSON_GetObjectItemCaseSensitive(j, "reason");
	msg = cJSON_GetObjectItemCaseSensitive(j, "message");
	if (cJSON_IsNumber(code) && code->valuedouble >= 100 && code->valuedouble < 1000)
		st->code = (int)code->valuedouble;
	if (cJSON_IsString(reason) && reason->valuestring[0])
		snprintf(st->reason, sizeof(st->reason), "%s", reason->valuestring);
	if (cJSON_IsString(msg))
		snprintf(st->message, sizeof(st->message), "%s", msg->valuestring);
	rc = 0;
out:
	cJSON_Delete(j);
	return rc;
}

int kube_error_from_status(long http_status, const struct kube_status *st)
{
	if (http_status >= 200 && http_status < 300)
		return 0;
	if (http_status == 409 && st && strcmp(st->reason, "AlreadyExists") == 0)
		return KUBE_EALREADY_EXISTS;
	if (http_status <= 0 || http_status > 999)
		return -EPROTO;
	return -(KUBE_E_BASE + (int)http_status);
}

const char *kube_strerror(int err)
{
	switch (err) {
	case 0:
		return "ok";
	case KUBE_EALREADY_EXISTS:
		return "already exists";
	case KUBE_ECONFLICT:
		return "conflict";
	case KUBE_ENOTFOUND:
		return "not found";
	case KUBE_EGONE:
		return "gone (resource version too old)";
	case KUBE_EUNAUTHORIZED:
		return "unauthorized";
	case KUBE_EFORBIDDEN:
		return "forbidden";
	case KUBE_EINVALID:
		return "invalid";
	case KUBE_ETOOMANY:
		return "too many requests";
	case KUBE_EBADREQUEST:
		return "bad request";
	default:
		if (err <= -KUBE_E_BASE)
			return -err - KUBE_E_BASE >= 500 ? "server error" : "request rejected";
		return strerror(-err);
	}
}

/* ---- typed helpers ---- */

static int append_escaped(char *buf, size_t len, size_t *pos, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		int plain = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
			    (ch >= '0' && ch <= '9') || ch == '-' || ch == '.' || ch == '_' ||
			    ch == '~' || ch == ':';
		if (*pos + (plain ? 1 : 3) >= len)
			return -ENAMETOOLONG;
		if (plain) {
			buf[(*pos)++] = (char)ch;
		} else {
			buf[(*pos)++] = '%';
			buf[(*pos)++] = hex[ch >> 4];
			buf[(*pos)++] = hex[ch & 15];
		}
	}
	buf[*pos] = '\0';
	return 0;
}

static int append_raw(char *buf, size_t len, size_t *pos, const char *s)
{
	size_t n = strlen(s);
	if (*pos + n >= len)
		return -ENAMETOOLONG;
	memcpy(buf + *pos, s, n + 1);
	*pos += n;
	return 0;
}

int kube_path(char *buf, size_t len, const struct kube_res *r, const char *ns, const char *name,
	      const char *sub)
{
	size_t pos = 0;
	if (len == 0)
		return -ENAMETOOLONG;
	buf[0] = '\0';
	if (append_raw(buf, len, &pos, "/") || append_raw(buf, len, &pos, r->api))
		return -ENAMETOOLONG;
	if (ns &&
	    (append_raw(buf, len, &pos, "/namespaces/") || append_escaped(buf, len, &pos, ns)))
		return -ENAMETOOLONG;
	if (append_raw(buf, len, &pos, "/") || append_raw(buf, len, &pos, r->plural))
		return -ENAMETOOLONG;
	if (name && (append_raw(buf, len, &pos, "/") || append_escaped(buf, len, &pos, name)))
		return -ENAMETOOLONG;
	if (sub && (append_raw(buf, len, &pos, "/") || append_raw(buf, len, &pos, sub)))
		return -ENAMETOOLONG;
	return 0;
}

/* Sends a request and turns the answer into an error code and, on success, *out. */
static int call_status(struct kube_client *c, const char *method, const char *path,
		       const char *ctype, const char *body, cJSON **out, struct kube_status *st)
{
	struct kube_response resp;
	int rc;

	if (out)
		*out = NULL;
	rc = kube_request(c, method, path, ctype, body, body ? strlen(body) : 0, &resp);
	if (rc)
		return rc;
	rc = kube_error_from_status(resp.http_status, &resp.status);
	if (rc && (resp.http_status == 403 || resp.http_status == 422)) {
		/* A refusal someone must act on (RBAC, a quota, a terminating namespace, a
		 * validation rule): the API server's own words, since callers only see a code. */
		log_warn("kube", "%s %s: %ld %s: %s", method, path, resp.http_status,
			 resp.status.reason, resp.status.message);
	} else if (rc) {
		log_debug("kube", "%s %s: %ld %s: %s", method, path, resp.http_status,
			  resp.status.reason, resp.status.message);
	} else if (out) {
		*out = resp.json;
		resp.json = NULL;
	}
	if (rc && st)
		*st = resp.status;
	kube_response_free(&resp);
	return rc;
}

static int call(struct kube_client *c, const char *method, const char *path, const char *ctype,
		const char *body, cJSON **out)
{
	return call_status(c, method, path, ctype, body, out, NULL);
}

int kube_get_object(struct kube_client *c, const struct kube_res *r, const char *ns,
		    const char *name, cJSON **out)
{
	char path[1024];
	int rc = kube_path(path, sizeof(path), r, ns, name, NULL);
	return rc ? rc : call(c, "GET", path, NULL, NULL, out);
}

int kube_list(struct kube_client *c, const struct kube_res *r, const char *ns,
	      const char *label_selector, int page_size, cJSON **items, char **rv)
{
	return kube_list_paged(c, r, ns, label_selector, page_size, items, rv, NULL);
}

int kube_list_paged(struct kube_client *c, const struct kube_res *r, const char *ns,
		    const char *label_selector, int page_size, cJSON **items, char **rv, int *pages)
{
	char base[1024], path[4096], cont[2048] = "";
	size_t pos;
	int rc, restarts = 0;
	cJSON *all = cJSON_CreateArray();

	*items = NULL;
	if (rv)
		*rv = NULL;
	if (pages)
		*pages = 0;
	if (!all)
		return -ENOMEM;
	if (page_size <= 0)
		page_size = PAGE_SIZE;
	rc = kube_path(base, sizeof(base), r, ns, NULL, NULL);
	if (rc)
		goto out_fail;
	for (;;) {
		cJSON *page = NULL, *arr, *it;
		const char *next;

		pos = (size_t)snprintf(path, sizeof(path), "%s?limit=%d", base, page_size);
		if (label_selector && *label_selector &&
		    (append_raw(path, sizeof(path), &pos, "&labelSelector=") ||
		     append_escaped(path, sizeof(path), &pos, label_selector))) {
			rc = -ENAMETOOLONG;
			goto out_fail;
		}
		if (cont[0] && (append_raw(path, sizeof(path), &pos, "&continue=") ||
				append_escaped(path, sizeof(path), &pos, cont))) {
			rc = -ENAMETOOLONG;
			goto out_fail;
		}
		rc = call(c, "GET", path, NULL, NULL, &page);
		if (pages)
			(*pages)++;
		if (rc == KUBE_EGONE && cont[0] && restarts++ < 5) {
			/* The continue token expired (etcd compacted): a full relist, since
			 * pages from two snapshots don't make one consistent list. */
			log_info("kube", "list %s: continue token expired, relisting", base);
			cJSON_Delete(all);
			all = cJSON_CreateArray();
			if (!all)
				return -ENOMEM;
			cont[0] = '\0';
			continue;
		}
		if (rc)
			goto out_fail;
		arr = cJSON_DetachItemFromObjectCaseSensitive(page, "items");
		while (arr && (it = cJSON_DetachItemViaPointer(arr, arr->child)) != NULL)
			cJSON_AddItemToArray(all, it);
		cJSON_Delete(arr);
		next = k8s_str(page, "metadata.continue");
		if (next && *next) {
			snprintf(cont, sizeof(cont), "%s", next);
			if (strlen(next) >= sizeof(cont)) {
				cJSON_Delete(page);
				rc = -ENAMETOOLONG;
				goto out_fail;
			}
		} else {
			const char *v = k8s_str(page, "metadata.resourceVersion");
			if (rv && v && !(*rv = strdup(v))) {
				cJSON_Delete(page);
				rc = -ENOMEM;
				goto out_fail;
			}
			cJSON_Delete(page);
			break;
		}
		cJSON_Delete(page);
	}
	*items = all;
	return 0;
out_fail:
	cJSON_Delete(all);
	return rc;
}

int kube_create_status(struct kube_client *c, const struct kube_res *r, const char *ns,
		       const cJSON *obj, cJSON **out, struct kube_status *st)
{
	char path[1024], *body;
	if (out)
		*out = NULL;
	int rc = kube_path(path, sizeof(path), r, ns, NULL, NULL);
	if (rc)
		return rc;
	body = cJSON_PrintUnformatted(obj);
	if (!body)
		return -ENOMEM;
	rc = call_status(c, "POST", path, "application/json", body, out, st);
	free(body);
	return rc;
}

int kube_quota_pending(int rc, const struct kube_status *st)
{
	return rc == KUBE_EFORBIDDEN && st && strstr(st->message, "status unknown for quota");
}

int kube_create(struct kube_client *c, const struct kube_res *r, const char *ns, const cJSON *obj,
		cJSON **out)
{
	return kube_create_status(c, r, ns, obj, out, NULL);
}

int kube_update(struct kube_client *c, const struct kube_res *r, const char *ns, const cJSON *obj,
		const char *sub, cJSON **out)
{
	const char *name = k8s_str(obj, "metadata.name");
	char path[1024], *body;
	int rc;

	if (out)
		*out = NULL;
	if (!name)
		return -EINVAL;
	rc = kube_path(path, sizeof(path), r, ns, name, sub);
	if (rc)
		return rc;
	body = cJSON_PrintUnformatted(obj);
	if (!body)
		return -ENOMEM;
	rc = call(c, "PUT", path, "application/json", body, out);
	free(body);
	return rc;
}

int kube_patch(struct kube_client *c, const struct kube_res *r, const char *ns, const char *name,
	       const char *sub, enum kube_patch_type type, const char *patch,
	       const char *field_manager, int force, cJSON **out)
{
	static const char *ctypes[] = {
	    [KUBE_PATCH_MERGE] = "application/merge-patch+json",
	    [KUBE_PATCH_JSON] = "application/json-patch+json",
	    [KUBE_PATCH_APPLY] = "application/apply-patch+yaml",
	    [KUBE_PATCH_STRATEGIC] = "application/strategic-merge-patch+json",
	};
	char path[1200];
	size_t pos;
	int rc;

	if (out)
		*out = NULL;
	if ((unsigned)type > KUBE_PATCH_STRATEGIC || !patch)
		return -EINVAL;
	rc = kube_path(path, sizeof(path), r, ns, name, sub);
	if (rc)
		return rc;
	pos = strlen(path);
	if (type == KUBE_PATCH_APPLY || field_manager) {
		if (append_raw(path, sizeof(path), &pos, "?fieldManager=") ||
		    append_escaped(path, sizeof(path), &pos,
				   field_manager ? field_manager : "udf-operator"))
			return -ENAMETOOLONG;
		if (type == KUBE_PATCH_APPLY && force &&
		    append_raw(path, sizeof(path), &pos, "&force=true"))
			return -ENAMETOOLONG;
	}
	return call(c, "PATCH", path, ctypes[type], patch, out);
}

int kube_delete(struct kube_client *c, const struct kube_res *r, const char *ns, const char *name,
		const char *propagation, const char *pre_uid, const char *pre_rv, cJSON **out)
{
	char path[1024], *body = NULL;
	cJSON *opts = NULL, *pre;
	int rc = kube_path(path, sizeof(path), r, ns, name, NULL);

	if (rc)
		return rc;
	if (propagation || pre_uid || pre_rv) {
		rc = -ENOMEM;
		opts = cJSON_CreateObject();
		if (!opts || !cJSON_AddStringToObject(opts, "kind", "DeleteOptions") ||
		    !cJSON_AddStringToObject(opts, "apiVersion", "v1"))
			goto out;
		if (propagation && !cJSON_AddStringToObject(opts, "propagationPolicy", propagation))
			goto out;
		if (pre_uid || pre_rv) {
			pre = cJSON_AddObjectToObject(opts, "preconditions");
			if (!pre || (pre_uid && !cJSON_AddStringToObject(pre, "uid", pre_uid)) ||
			    (pre_rv && !cJSON_AddStringToObject(pre, "resourceVersion", pre_rv)))
				goto out;
		}
		body = cJSON_PrintUnformatted(opts);
		if (!body)
			goto out;
	}
	rc = call(c, "DELETE", path, body ? "application/json" : NULL, body, out);
out:
	cJSON_Delete(opts);
	free(body);
	return rc;
}

/* ---- accessors ---- */

const cJSON *k8s_get(const cJSON *obj, const char *dotted)
{
	const cJSON *cur = obj;
	const char *p = dotted;
	char key[256];

	while (cur && *p) {
		size_t n = strcspn(p, ".");
		if (n >= sizeof(key) || !cJSON_IsObject(cur))
			return NULL;
		memcpy(key, p, n);
		key[n] = '\0';
		cur = cJSON_GetObjectItemCaseSensitive(cur, key);
		p += n;
		if (*p == '.')
			p++;
	}
	return cur;
}

const char *k8s_str(const cJSON *obj, const char *dotted)
{
	const cJSON *v = k8s_get(obj, dotted);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

long long k8s_int(const cJSON *obj, const char *dotted, long long def)
{
	const cJSON *v = k8s_get(obj, dotted);
	/* A number past long long (1e300, say) has no conversion: it is as good as absent. */
	if (!cJSON_IsNumber(v) || !(v->valuedouble >= -9.2e18 && v->valuedouble <= 9.2e18))
		return def;
	return (long long)v->valuedouble;
}

const char *k8s_label(const cJSON *obj, const char *key)
{
	const cJSON *labels = k8s_get(obj, "metadata.labels");
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(labels, key);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

const char *k8s_annotation(const cJSON *obj, const char *key)
{
	const cJSON *annos = k8s_get(obj, "metadata.annotations");
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(annos, key);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

int k8s_condition_is(const cJSON *obj, const char *type, const char *status, const char **reason)
{
	const cJSON *c;
	if (reason)
		*reason = NULL;
	cJSON_ArrayForEach(c, k8s_get(obj, "status.conditions"))
	{
		const char *t = k8s_str(c, "type");
		if (t && strcmp(t, type) == 0) {
			const char *s = k8s_str(c, "status");
			if (reason)
				*reason = k8s_str(c, "reason");
			return s && strcmp(s, status) == 0;
		}
	}
	return 0;
}

int kube_error_transient(int rc)
{
	/* Transport errors (negative errno, curl failures), 429 and every 5xx: the request may
	 * succeed if tried again; any other answer of the server will not change by retrying. */
	if (rc >= 0)
		return 0;
	if (rc > -KUBE_E_BASE)
		return 1;
	return rc == KUBE_ETOOMANY || (rc <= -(KUBE_E_BASE + 500) && rc > -(KUBE_E_BASE + 600));
}
