#include "api/tokens.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "kube/rest.h"
#include "kube/strmap.h"
#include "util/log.h"

static const struct kube_res res_secrets = {"api/v1", "secrets"};

struct token {
	char *value;
	int64_t fetched_ms;
};

struct tokens {
	struct kube_client *kube;
	pthread_mutex_t lock;
	struct strmap map; /* "ns/secret" -> struct token */
};

static void token_free(void *p)
{
	struct token *t = p;
	free(t->value);
	free(t);
}

int tokens_new(struct kube_client *kube, struct tokens **out)
{
	struct tokens *t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->kube = kube;
	pthread_mutex_init(&t->lock, NULL);
	strmap_init(&t->map);
	*out = t;
	return 0;
}

void tokens_free(struct tokens *t)
{
	if (!t)
		return;
	strmap_free(&t->map, token_free);
	pthread_mutex_destroy(&t->lock);
	free(t);
}

static void key_of(const char *ns, const char *secret, char key[320])
{
	snprintf(key, 320, "%s/%s", ns, secret);
}

/* Under t->lock. */
static struct token *fresh(struct tokens *t, const char *key, int64_t now_ms)
{
	struct token *tok = strmap_get(&t->map, key);
	return tok && now_ms - tok->fetched_ms < TOKENS_TTL_MS ? tok : NULL;
}

int tokens_cached(struct tokens *t, const char *ns, const char *secret, int64_t now_ms, char **out)
{
	char key[320];
	int rc = 0;
	key_of(ns, secret, key);
	*out = NULL;
	pthread_mutex_lock(&t->lock);
	struct token *tok = fresh(t, key, now_ms);
	if (tok && !(*out = strdup(tok->value)))
		rc = -ENOMEM;
	pthread_mutex_unlock(&t->lock);
	return rc;
}

int tokens_copy(struct tokens *t, const char *ns, const char *secret, int64_t now_ms, char *buf,
		size_t len)
{
	char key[320];
	int copied = 0;
	key_of(ns, secret, key);
	pthread_mutex_lock(&t->lock);
	struct token *tok = fresh(t, key, now_ms);
	if (tok && strlen(tok->value) < len) {
		strcpy(buf, tok->value);
		copied = 1;
	}
	pthread_mutex_unlock(&t->lock);
	return copied;
}

/* Standard base64 as Kubernetes writes Secret data: whole quads, at most two '=' and only at
 * the end. A token is text: one with a NUL byte in it is refused, not cut short. */
static char *base64_decode(const char *in)
{
	size_t n = strlen(in);
	size_t pad = 0;
	while (pad < n && in[n - 1 - pad] == '=')
		pad++;
	if (n % 4 != 0 || pad > 2 || memchr(in, '=', n - pad))
		return NULL;
	char *out = malloc(n / 4 * 3 + 1);
	if (!out)
		return NULL;
	int len = n ? EVP_DecodeBlock((unsigned char *)out, (const unsigned char *)in, (int)n) : 0;
	if (len < (int)pad || memchr(out, '\0', (size_t)len - pad)) {
		free(out);
		return NULL;
	}
	len -= (int)pad;
	out[len] = '\0';
	return out;
}

char *tokens_of_secret(const cJSON *secret)
{
	const char *b64 = k8s_str(secret, "data.token");
	char *tok = b64 ? base64_decode(b64) : NULL;
	if (tok && !*tok) {
		free(tok);
		return NULL;
	}
	return tok;
}

static void remember(struct tokens *t, const char *key, const char *value, int64_t now_ms)
{
	struct token *tok = malloc(sizeof(*tok));
	char *copy = strdup(value);
	void *old = NULL;
	if (!tok || !copy) {
		free(tok);
		free(copy);
		return; /* not cached: read again next time */
	}
	tok->value = copy;
	tok->fetched_ms = now_ms;
	pthread_mutex_lock(&t->lock);
	if (strmap_put(&t->map, key, tok, &old) < 0) {
		token_free(tok);
		old = NULL;
	}
	pthread_mutex_unlock(&t->lock);
	if (old)
		token_free(old);
}

int tokens_fetch(struct tokens *t, const char *ns, const char *secret, int64_t now_ms, char **out)
{
	char key[320];
	cJSON *obj = NULL;
	int rc = tokens_cached(t, ns, secret, now_ms, out);
	if (rc < 0 || *out)
		return rc;
	rc = kube_get_object(t->kube, &res_secrets, ns, secret, &obj);
	if (rc == KUBE_ENOTFOUND)
		return 0;
	if (rc < 0) {
		log_warn("tokens", "reading Secret %s/%s: %s", ns, secret, kube_strerror(rc));
		return rc;
	}
	char *tok = tokens_of_secret(obj);
	cJSON_Delete(obj);
	if (!tok)
		return 0;
	key_of(ns, secret, key);
	remember(t, key, tok, now_ms);
	*out = tok;
	return 0;
}
