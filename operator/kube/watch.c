/* kube/watch: the stream framer, event parsing and backoff (pure, no I/O). */
#include "kube/watch.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void kube_framer_init(struct kube_framer *f, size_t max)
{
	memset(f, 0, sizeof(*f));
	f->max = max ? max : KUBE_FRAMER_CAP_DEFAULT;
}

void kube_framer_reset(struct kube_framer *f)
{
	f->len = 0;
	f->depth = 0;
	f->in_string = 0;
	f->escape = 0;
}

void kube_framer_free(struct kube_framer *f)
{
	free(f->buf);
	f->buf = NULL;
	f->cap = 0;
	kube_framer_reset(f);
}

size_t kube_framer_pending(const struct kube_framer *f)
{
	return f->len;
}

static int reserve(struct kube_framer *f, size_t need)
{
	size_t ncap;
	char *nb;
	if (need <= f->cap)
		return 0;
	if (need > f->max)
		return -EMSGSIZE;
	ncap = f->cap ? f->cap : 4096;
	while (ncap < need)
		ncap *= 2;
	if (ncap > f->max)
		ncap = f->max;
	nb = realloc(f->buf, ncap);
	if (!nb)
		return -ENOMEM;
	f->buf = nb;
	f->cap = ncap;
	return 0;
}

/*
 * Scans data byte by byte. Between objects only whitespace may appear; inside one we track
 * depth and strings. Bytes of the current object are copied into buf only when the object
 * does not end within this chunk, so whole events inside one chunk are handed out in place.
 */
int kube_framer_feed(struct kube_framer *f, const char *data, size_t len, kube_frame_fn fn,
		     void *arg)
{
	size_t i = 0, start = 0;
	int in_obj = f->depth > 0, rc;

	while (i < len) {
		unsigned char ch = (unsigned char)data[i];
		if (!in_obj) {
			if (ch == ' ' || ch == '\n' || ch == '\r' || ch == '\t') {
				i++;
				continue;
			}
			if (ch != '{')
				return -EPROTO;
			in_obj = 1;
			start = i;
			f->depth = 1;
			f->in_string = 0;
			f->escape = 0;
			i++;
			continue;
		}
		i++;
		if (f->in_string) {
			if (f->escape)
				f->escape = 0;
			else if (ch == '\\')
				f->escape = 1;
			else if (ch == '"')
				f->in_string = 0;
			continue;
		}
		if (ch == '"') {
			f->in_string = 1;
		} else if (ch == '{' || ch == '[') {
			f->depth++;
		} else if (ch == '}' || ch == ']') {
			if (--f->depth > 0)
				continue;
			in_obj = 0;
			if (f->len > 0) {
				/* The object began in an earlier chunk. */
				rc = reserve(f, f->len + (i - start));
				if (rc)
					return rc;
				memcpy(f->buf + f->len, data + start, i - start);
				f->len += i - start;
				rc = fn(arg, f->buf, f->len);
				f->len = 0;
			} else {
				rc = fn(arg, data + start, i - start);
			}
			if (rc)
				return rc;
			if (f->depth < 0)
				return -EPROTO;
		}
	}
	if (in_obj) {
		size_t n = len - start;
		if (f->len + n > f->max)
			return -EMSGSIZE;
		rc = reserve(f, f->len + n);
		if (rc)
			return rc;
		memcpy(f->buf + f->len, data + start, n);
		f->len += n;
	}
	return 0;
}

int kube_event_parse(const char *json, size_t len, struct kube_event *ev)
{
	cJSON *root = cJSON_ParseWithLength(json, len), *obj;
	const cJSON *type;
	const char *t;

	memset(ev, 0, sizeof(*ev));
	type = cJSON_GetObjectItemCaseSensitive(root, "type");
	obj = cJSON_GetObjectItemCaseSensitive(root, "object");
	if (!cJSON_IsString(type) || !cJSON_IsObject(obj)) {
		cJSON_Delete(root);
		return -EINVAL;
	}
	t = type->valuestring;
	if (strcmp(t, "ADDED") == 0)
		ev->type = KUBE_EVENT_ADDED;
	else if (strcmp(t, "MODIFIED") == 0)
		ev->type = KUBE_EVENT_MODIFIED;
	else if (strcmp(t, "DELETED") == 0)
		ev->type = KUBE_EVENT_DELETED;
	else if (strcmp(t, "BOOKMARK") == 0)
		ev->type = KUBE_EVENT_BOOKMARK;
	else if (strcmp(t, "ERROR") == 0)
		ev->type = KUBE_EVENT_ERROR;
	else {
		cJSON_Delete(root);
		return -EINVAL;
	}
	ev->object = cJSON_DetachItemViaPointer(root, obj);
	cJSON_Delete(root);
	if (ev->type == KUBE_EVENT_ERROR) {
		const cJSON *code = cJSON_GetObjectItemCaseSensitive(ev->object, "code");
		const cJSON *reason = cJSON_GetObjectItemCaseSensitive(ev->object, "reason");
		const cJSON *msg = cJSON_GetObjectItemCaseSensitive(ev->object, "message");
		ev->status.code =
		    cJSON_IsNumber(code) && code->valuedouble > 0 && code->valuedouble < 1000
			? (int)code->valuedouble
			: 500;
		if (cJSON_IsString(reason))
			snprintf(ev->status.reason, sizeof(ev->status.reason), "%s",
				 reason->valuestring);
		if (cJSON_IsString(msg))
			snprintf(ev->status.message, sizeof(ev->status.message), "%s",
				 msg->valuestring);
	} else {
		ev->rv = k8s_str(ev->object, "metadata.resourceVersion");
	}
	return 0;
}

void kube_event_free(struct kube_event *ev)
{
	cJSON_Delete(ev->object);
	ev->object = NULL;
	ev->rv = NULL;
}

/* splitmix64: small, seedable, good enough for jitter. */
static uint64_t next_rand(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

void kube_backoff_init(struct kube_backoff *b, uint64_t base_ms, uint64_t max_ms, uint64_t seed)
{
	b->base_ms = base_ms ? base_ms : 800;
	b->max_ms = max_ms ? max_ms : 30000;
	b->cur_ms = b->base_ms;
	b->rng = seed;
}

uint64_t kube_backoff_next(struct kube_backoff *b)
{
	uint64_t d = b->cur_ms, jitter = d / 5;
	if (jitter)
		d += next_rand(&b->rng) % (jitter + 1);
	if (d > b->max_ms)
		d = b->max_ms;
	b->cur_ms = b->cur_ms * 2 > b->max_ms ? b->max_ms : b->cur_ms * 2;
	return d;
}

void kube_backoff_reset(struct kube_backoff *b)
{
	b->cur_ms = b->base_ms;
}
