#include "controllers/specialize.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <openssl/crypto.h>

#include "udf/function_pod.h"

#define MAX_ANSWER (64u << 10)

struct answer {
	char *buf;
	size_t len;
	int too_big;
};

static size_t on_data(char *p, size_t size, size_t n, void *arg)
{
	struct answer *a = arg;
	size_t add = size * n;
	if (a->len + add > MAX_ANSWER) {
		a->too_big = 1;
		return add; /* keep reading, drop the rest */
	}
	char *nb = realloc(a->buf, a->len + add + 1);
	if (!nb)
		return 0;
	memcpy(nb + a->len, p, add);
	a->buf = nb;
	a->len += add;
	a->buf[a->len] = '\0';
	return add;
}

/* One request. The Authorization header is built in a buffer cleansed after use. */
static int request_port(const char *ip, int port, const char *token, const char *method,
			const char *path, const char *body, long *status, struct answer *a,
			char *err, size_t errlen)
{
	char url[256], auth[128];
	int rc = 0;
	if (snprintf(url, sizeof(url), "http://%s:%d%s", ip, port, path) >= (int)sizeof(url) ||
	    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token ? token : "") >=
		(int)sizeof(auth))
		return -ENAMETOOLONG;
	CURL *e = curl_easy_init();
	struct curl_slist *h = NULL, *h2 = NULL;
	if (!e) {
		OPENSSL_cleanse(auth, sizeof(auth));
		return -ENOMEM;
	}
	h = curl_slist_append(NULL, token ? auth : "Accept: application/json");
	OPENSSL_cleanse(auth, sizeof(auth));
	if (h && body)
		h2 = curl_slist_append(h, "Content-Type: application/json");
	if (!h || (body && !h2)) {
		rc = -ENOMEM;
		goto out;
	}
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)SPECIALIZE_TIMEOUT_MS);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)SPECIALIZE_TIMEOUT_MS);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, a);
	curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
	if (body) {
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	}
	CURLcode cc = curl_easy_perform(e);
	if (cc != CURLE_OK) {
		snprintf(err, errlen, "control API of %s: %s", ip, curl_easy_strerror(cc));
		rc = cc == CURLE_OPERATION_TIMEDOUT ? -ETIMEDOUT : -ECONNREFUSED;
		goto out;
	}
	curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, status);
out:
	curl_slist_free_all(h);
	curl_easy_cleanup(e);
	return rc;
}

static int request(const char *ip, const char *token, const char *method, const char *path,
		   const char *body, long *status, struct answer *a, char *err, size_t errlen)
{
	return request_port(ip, FN_CONTROL_PORT, token, method, path, body, status, a, err, errlen);
}

int specialize_last_use(const char *pod_ip, long long *last_s, char *err, size_t errlen)
{
	struct answer a = {0};
	long status = 0;
	err[0] = '\0';
	*last_s = 0;
	int rc = request_port(pod_ip, FN_STATUS_PORT, NULL, "GET", "/stats", NULL, &status, &a, err,
			      errlen);
	if (rc == 0) {
		cJSON *j = status == 200 && a.buf ? cJSON_Parse(a.buf) : NULL;
		const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "last_request_time");
		struct tm tm = {0};
		if (!j) {
			snprintf(err, errlen, "status port of %s: /stats answered HTTP %ld", pod_ip,
				 status);
			rc = -EPROTO;
		} else if (cJSON_IsString(t) &&
			   strptime(t->valuestring, "%Y-%m-%dT%H:%M:%S", &tm)) {
			*last_s = (long long)timegm(&tm);
		}
		cJSON_Delete(j);
	}
	free(a.buf);
	return rc;
}

int specialize_post(const char *pod_ip, const char *control_token, const char *body,
		    long *http_status, char *err, size_t errlen)
{
	struct answer a = {0};
	err[0] = '\0';
	int rc = request(pod_ip, control_token, "POST", "/v1/specialize", body, http_status, &a,
			 err, errlen);
	if (rc == 0 && *http_status != 202) {
		cJSON *j = a.buf ? cJSON_Parse(a.buf) : NULL;
		const cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "error");
		snprintf(err, errlen, "%s",
			 cJSON_IsString(m) ? m->valuestring : (a.buf ? a.buf : ""));
		cJSON_Delete(j);
	}
	free(a.buf);
	return rc;
}

int specialize_status(const char *pod_ip, const char *control_token, struct worker_status *st,
		      char *err, size_t errlen)
{
	struct answer a = {0};
	long status = 0;
	err[0] = '\0';
	memset(st, 0, sizeof(*st));
	int rc =
	    request(pod_ip, control_token, "GET", "/v1/status", NULL, &status, &a, err, errlen);
	if (rc < 0)
		goto out;
	cJSON *j = status == 200 && a.buf ? cJSON_Parse(a.buf) : NULL;
	const cJSON *s = cJSON_GetObjectItemCaseSensitive(j, "state");
	if (!cJSON_IsString(s)) {
		snprintf(err, errlen, "control API of %s: /v1/status answered HTTP %ld", pod_ip,
			 status);
		rc = -EPROTO;
	} else {
		const char *v = s->valuestring;
		st->state = strcmp(v, "ready") == 0	     ? WORKER_READY
			    : strcmp(v, "failed") == 0	     ? WORKER_FAILED
			    : strcmp(v, "specializing") == 0 ? WORKER_SPECIALIZING
							     : WORKER_IDLE;
		const cJSON *step = cJSON_GetObjectItemCaseSensitive(j, "step");
		const cJSON *reason = cJSON_GetObjectItemCaseSensitive(j, "reason");
		const cJSON *ms = cJSON_GetObjectItemCaseSensitive(j, "specialize_ms");
		if (cJSON_IsString(step))
			snprintf(st->step, sizeof(st->step), "%s", step->valuestring);
		if (cJSON_IsString(reason))
			snprintf(st->reason, sizeof(st->reason), "%s", reason->valuestring);
		if (cJSON_IsNumber(ms))
			st->specialize_ms = (long)ms->valuedouble;
	}
	cJSON_Delete(j);
out:
	free(a.buf);
	return rc;
}
