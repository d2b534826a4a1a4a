/*
 * kube/informer: LIST + WATCH state machines on one curl multi loop, and the caches they fill.
 *
 * Loop-thread-only state: everything about requests in flight (state, easy handle, framer,
 * list pages being gathered, backoff). Shared state (cache, indexes, resourceVersion) is
 * under the informer's rwlock; stats are atomics.
 */
#include "kube/informer.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/log.h"
#include "kube/strmap.h"
#include "kube/watch.h"

#define LIST_BODY_MAX	(256u << 20)
#define ERR_BODY_MAX	(64u << 10)
#define LIST_TIMEOUT_MS 60000L
#define LOOP_TICK_MS	1000
#define LAST_APPLIED	"kubectl.kubernetes.io/last-applied-configuration"

enum inf_state {
	INF_NEW,      /* not started */
	INF_LISTING,  /* a LIST page in flight */
	INF_WATCHING, /* a WATCH stream open */
	INF_WAITING,  /* backoff: next step at wake_at */
};

enum inf_abort {
	ABORT_NONE,
	ABORT_GONE,	/* in-stream 410: relist */
	ABORT_OVERFLOW, /* event over the cap: restart the watch */
	ABORT_PROTO,	/* not a watch stream / bad event */
	ABORT_ERROR,	/* other in-stream ERROR event */
};

struct buf {
	char *data;
	size_t len, cap, max;
};

struct kube_informer {
	struct kube_informers *loop;
	struct kube_informer *next;
	struct kube_res res;
	char *api, *plural, *ns, *selector;
	char **index_labels;
	int nindex;
	/* Every handler set, in the order added; each event goes to all of them. */
	struct kube_handlers h[KUBE_INFORMER_MAX_HANDLERS];
	int nh;
	int page_size, wt_min, wt_max;
	int keep_apply_bookkeeping;
	int consistent_list;
	char **drop_fields; /* NULL-terminated */
	int (*transform)(cJSON *obj);

	/* loop thread only */
	enum inf_state state;
	int next_is_list;
	uint64_t wake_at;
	CURL *easy;
	struct curl_slist *hdrs;
	long http;
	int http_checked;
	struct buf body;
	struct kube_framer framer;
	enum inf_abort abort;
	int consistent_relist; /* after 410: LIST with resourceVersion="" */
	char *cont;
	struct strmap fresh; /* a LIST being gathered: key -> cJSON */
	struct kube_backoff bo;
	uint64_t rng;
	uint64_t watch_events;	/* events on the current stream */
	uint64_t watch_started; /* mono ms */

	/* shared */
	pthread_rwlock_t lock;
	struct strmap cache;	/* key -> cJSON */
	struct strmap *indexes; /* per index label: value -> struct strmap* of keys */
	char rv[64];
	pthread_mutex_t sync_mu;
	pthread_cond_t sync_cv;
	int synced;
	_Atomic uint64_t n_events, n_lists, n_gone, n_watches, n_errors;
};

struct kube_informers {
	struct kube_client *c;
	CURLM *multi;
	pthread_t thread;
	int started;
	atomic_int stop;
	pthread_mutex_t mu; /* guards the list of informers */
	struct kube_informer *list;
};

static uint64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint64_t rand_next(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static int buf_append(struct buf *b, const char *p, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		size_t ncap = b->cap ? b->cap : 65536;
		char *nd;
		while (ncap < b->len + n + 1)
			ncap *= 2;
		if (ncap > b->max + 1)
			return -EMSGSIZE;
		nd = realloc(b->data, ncap);
		if (!nd)
			return -ENOMEM;
		b->data = nd;
		b->cap = ncap;
	}
	memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

static void buf_reset(struct buf *b, size_t max)
{
	b->len = 0;
	b->max = max;
	if (b->cap > (1u << 20)) { /* don't keep a big page's buffer around */
		free(b->data);
		b->data = NULL;
		b->cap = 0;
	}
}

int kube_object_key(const cJSON *obj, char *buf, size_t len)
{
	const char *ns = k8s_str(obj, "metadata.namespace");
	const char *name = k8s_str(obj, "metadata.name");
	int n;
	if (!name)
		return -EINVAL;
	n = ns && *ns ? snprintf(buf, len, "%s/%s", ns, name) : snprintf(buf, len, "%s", name);
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/* ---- cache and indexes (caller holds the write lock) ---- */

static void index_add(struct kube_informer *inf, const char *key, const cJSON *obj)
{
	for (int i = 0; i < inf->nindex; i++) {
		const char *v = k8s_label(obj, inf->index_labels[i]);
		struct strmap *set;
		if (!v)
			continue;
		set = strmap_get(&inf->indexes[i], v);
		if (!set) {
			set = malloc(sizeof(*set));
			if (!set)
				continue;
			strmap_init(set);
			if (strmap_put(&inf->indexes[i], v, set, NULL)) {
				free(set);
				continue;
			}
		}
		if (strmap_put(set, key, NULL, NULL))
			log_error("kube", "informer %s: index out of memory", inf->plural);
	}
}

static void index_remove(struct kube_informer *inf, const char *key, const cJSON *obj)
{
	for (int i = 0; i < inf->nindex; i++) {
		const char *v = k8s_label(obj, inf->index_labels[i]);
		struct strmap *set;
		if (!v || !(set = strmap_get(&inf->indexes[i], v)))
			continue;
		strmap_del(set, key, NULL);
		if (set->count == 0) {
			strmap_del(&inf->indexes[i], v, NULL);
			strmap_free(set, NULL);
			free(set);
		}
	}
}

static void free_set(void *p)
{
	struct strmap *set = p;
	strmap_free(set, NULL);
	free(set);
}

static void free_json(void *p)
{
	cJSON_Delete(p);
}

static void set_rv(struct kube_informer *inf, const char *rv)
{
	if (rv && *rv)
		snprintf(inf->rv, sizeof(inf->rv), "%s", rv);
}

/* ---- events ---- */

/* Drops the field at path (see drop_fields in informer.h) from obj. */
static void drop_path(cJSON *obj, const char *path)
{
	char name[128];
	const char *dot = strchr(path, '.');
	size_t len = dot ? (size_t)(dot - path) : strlen(path);
	int each = len >= 2 && path[len - 2] == '[' && path[len - 1] == ']';
	if (!cJSON_IsObject(obj) || len == 0 || len >= sizeof(name))
		return;
	memcpy(name, path, len - (each ? 2 : 0));
	name[len - (each ? 2 : 0)] = '\0';
	if (!dot) {
		/* every member of that name: an object may name a key twice, cJSON keeps both */
		while (cJSON_GetObjectItemCaseSensitive(obj, name))
			cJSON_DeleteItemFromObjectCaseSensitive(obj, name);
		return;
	}
	cJSON *child, *el;
	cJSON_ArrayForEach(child, obj)
	{
		if (!child->string || strcmp(child->string, name) != 0)
			continue;
		if (!each)
			drop_path(child, dot + 1);
		else if (cJSON_IsArray(child))
			cJSON_ArrayForEach(el, child) drop_path(el, dot + 1);
	}
}

/* Reduces obj to what the cache keeps (see informer.h). Loop thread, outside the lock: a
 * transform may hash a megabyte. */
static void trim(struct kube_informer *inf, cJSON *obj)
{
	if (inf->transform) {
		int rc = inf->transform(obj);
		if (rc < 0)
			log_warn("kube", "informer %s: transform failed (%s): cached as served",
				 inf->plural, strerror(-rc));
	}
	if (!inf->keep_apply_bookkeeping) {
		cJSON *annos = cJSON_GetObjectItemCaseSensitive(
		    cJSON_GetObjectItemCaseSensitive(obj, "metadata"), "annotations");
		drop_path(obj, "metadata.managedFields");
		while (cJSON_IsObject(annos) &&
		       cJSON_GetObjectItemCaseSensitive(annos, LAST_APPLIED))
			cJSON_DeleteItemFromObjectCaseSensitive(annos, LAST_APPLIED);
	}
	for (char **p = inf->drop_fields; p && *p; p++)
		drop_path(obj, *p);
}

static void apply_event(struct kube_informer *inf, struct kube_event *ev)
{
	char key[512];
	cJSON *old = NULL, *obj = NULL;

	if (ev->type != KUBE_EVENT_BOOKMARK && kube_object_key(ev->object, key, sizeof(key))) {
		log_warn("kube", "informer %s: event for an object without a name", inf->plural);
		return;
	}
	if (ev->type != KUBE_EVENT_BOOKMARK)
		trim(inf, ev->object); /* a delete's too: handlers see what the cache keeps */
	pthread_rwlock_wrlock(&inf->lock);
	set_rv(inf, ev->rv);
	if (ev->type == KUBE_EVENT_DELETED) {
		if (strmap_del(&inf->cache, key, (void **)&old))
			index_remove(inf, key, old);
	} else if (ev->type != KUBE_EVENT_BOOKMARK) {
		if (strmap_put(&inf->cache, key, ev->object, (void **)&old) == 0) {
			obj = ev->object;
			ev->object = NULL; /* the cache's now */
			if (old)
				index_remove(inf, key, old);
			index_add(inf, key, obj);
		} else {
			log_error("kube", "informer %s: cache out of memory", inf->plural);
		}
	}
	pthread_rwlock_unlock(&inf->lock);

	/* Handlers outside the lock: only this thread changes the cache, so obj stays valid. */
	if (ev->type == KUBE_EVENT_DELETED) {
		for (int i = 0; i < inf->nh; i++)
			if (inf->h[i].on_delete)
				inf->h[i].on_delete(inf->h[i].arg, ev->object);
	} else if (obj && old) {
		for (int i = 0; i < inf->nh; i++)
			if (inf->h[i].on_update)
				inf->h[i].on_update(inf->h[i].arg, old, obj);
	} else if (obj) {
		for (int i = 0; i < inf->nh; i++)
			if (inf->h[i].on_add)
				inf->h[i].on_add(inf->h[i].arg, obj);
	}
	cJSON_Delete(old);
}

static int on_frame(void *arg, const char *json, size_t len)
{
	struct kube_informer *inf = arg;
	struct kube_event ev;

	if (kube_event_parse(json, len, &ev)) {
		inf->abort = ABORT_PROTO;
		return -EPROTO;
	}
	if (ev.type == KUBE_EVENT_ERROR) {
		inf->abort = ev.status.code == 410 ? ABORT_GONE : ABORT_ERROR;
		log_info("kube", "informer %s: watch error %d %s: %s", inf->plural, ev.status.code,
			 ev.status.reason, ev.status.message);
		kube_event_free(&ev);
		return -EIO;
	}
	apply_event(inf, &ev);
	kube_event_free(&ev);
	inf->watch_events++;
	atomic_fetch_add(&inf->n_events, 1);
	return 0;
}

static long response_code(CURL *e)
{
	long code = 0;
	curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code);
	return code;
}

static size_t watch_write(char *p, size_t sz, size_t n, void *arg)
{
	struct kube_informer *inf = arg;
	size_t len = sz * n;
	int rc;

	if (!inf->http_checked) {
		inf->http = response_code(inf->easy);
		inf->http_checked = 1;
	}
	if (inf->http != 200) {
		buf_append(&inf->body, p, len); /* an error Status; truncation is fine */
		return len;
	}
	rc = kube_framer_feed(&inf->framer, p, len, on_frame, inf);
	if (rc) {
		if (inf->abort == ABORT_NONE)
			inf->abort = rc == -EMSGSIZE ? ABORT_OVERFLOW : ABORT_PROTO;
		return 0; /* aborts the transfer */
	}
	return len;
}

static size_t list_write(char *p, size_t sz, size_t n, void *arg)
{
	struct kube_informer *inf = arg;
	return buf_append(&inf->body, p, sz * n) ? 0 : sz * n;
}

/* ---- requests ---- */

static int append_query(char *path, size_t len, const char *k, const char *v)
{
	size_t pos = strlen(path);
	char *esc = curl_easy_escape(NULL, v, 0);
	int n;
	if (!esc)
		return -ENOMEM;
	n = snprintf(path + pos, len - pos, "&%s=%s", k, esc);
	curl_free(esc);
	return n < 0 || (size_t)n >= len - pos ? -ENAMETOOLONG : 0;
}

static int start_request(struct kube_informer *inf, const char *path, int watch, long timeout_ms)
{
	struct kube_informers *l = inf->loop;
	int rc;

	if (!inf->easy && !(inf->easy = curl_easy_init()))
		return -ENOMEM;
	curl_easy_reset(inf->easy);
	rc = kube_client_prepare(l->c, inf->easy, path, &inf->hdrs);
	if (rc)
		return rc;
	curl_easy_setopt(inf->easy, CURLOPT_HTTPHEADER, inf->hdrs);
	curl_easy_setopt(inf->easy, CURLOPT_PRIVATE, inf);
	curl_easy_setopt(inf->easy, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(inf->easy, CURLOPT_WRITEFUNCTION, watch ? watch_write : list_write);
	curl_easy_setopt(inf->easy, CURLOPT_WRITEDATA, inf);
	inf->http = 0;
	inf->http_checked = 0;
	inf->abort = ABORT_NONE;
	buf_reset(&inf->body, watch ? ERR_BODY_MAX : LIST_BODY_MAX);
	if (curl_multi_add_handle(l->multi, inf->easy) != CURLM_OK) {
		curl_slist_free_all(inf->hdrs);
		inf->hdrs = NULL;
		return -ENOMEM;
	}
	return 0;
}

static void wait_then(struct kube_informer *inf, int list, uint64_t delay_ms)
{
	inf->state = INF_WAITING;
	inf->next_is_list = list;
	inf->wake_at = mono_ms() + delay_ms;
}

static void backoff_then(struct kube_informer *inf, int list)
{
	uint64_t d = kube_backoff_next(&inf->bo);
	curl_off_t retry_after = 0;

	/* A 429 or 503 may say how long to wait; never retry sooner than that. */
	if (inf->easy &&
	    curl_easy_getinfo(inf->easy, CURLINFO_RETRY_AFTER, &retry_after) == CURLE_OK &&
	    retry_after > 0 && retry_after < 600 && (uint64_t)retry_after * 1000 > d)
		d = (uint64_t)retry_after * 1000;
	atomic_fetch_add(&inf->n_errors, 1);
	wait_then(inf, list, d);
}

static void start_list(struct kube_informer *inf)
{
	char path[4096];
	int rc = kube_path(path, sizeof(path) - 64, &inf->res, inf->ns, NULL, NULL);

	if (rc == 0) {
		size_t pos = strlen(path);
		snprintf(path + pos, sizeof(path) - pos, "?limit=%d", inf->page_size);
		if (inf->cont)
			rc = append_query(path, sizeof(path), "continue", inf->cont);
		else if (!inf->consistent_relist && !inf->consistent_list)
			rc = append_query(path, sizeof(path), "resourceVersion", "0");
	}
	if (rc == 0 && inf->selector)
		rc = append_query(path, sizeof(path), "labelSelector", inf->selector);
	if (rc == 0)
		rc = start_request(inf, path, 0, LIST_TIMEOUT_MS);
	if (rc) {
		log_warn("kube", "informer %s: cannot start list: %s", inf->plural,
			 kube_strerror(rc));
		backoff_then(inf, 1);
		return;
	}
	inf->state = INF_LISTING;
}

static void start_watch(struct kube_informer *inf)
{
	char path[4096], num[32];
	int span = inf->wt_max - inf->wt_min, t, rc;

	t = inf->wt_min + (span > 0 ? (int)(rand_next(&inf->rng) % (uint64_t)span) : 0);
	rc = kube_path(path, sizeof(path) - 128, &inf->res, inf->ns, NULL, NULL);
	if (rc == 0) {
		size_t pos = strlen(path);
		snprintf(path + pos, sizeof(path) - pos, "?watch=1&allowWatchBookmarks=true");
		rc = append_query(path, sizeof(path), "resourceVersion", inf->rv);
		snprintf(num, sizeof(num), "%d", t);
		if (rc == 0)
			rc = append_query(path, sizeof(path), "timeoutSeconds", num);
	}
	if (rc == 0 && inf->selector)
		rc = append_query(path, sizeof(path), "labelSelector", inf->selector);
	kube_framer_reset(&inf->framer);
	inf->watch_events = 0;
	/* The server ends the watch after t s; the client's limit is only a safety net. */
	if (rc == 0)
		rc = start_request(inf, path, 1, (t + 30) * 1000L);
	if (rc) {
		log_warn("kube", "informer %s: cannot start watch: %s", inf->plural,
			 kube_strerror(rc));
		backoff_then(inf, 0);
		return;
	}
	atomic_fetch_add(&inf->n_watches, 1);
	inf->watch_started = mono_ms();
	inf->state = INF_WATCHING;
}

/* The LIST is complete: make the cache equal to it, with handlers for the differences. */
static void apply_list(struct kube_informer *inf, const char *rv)
{
	struct change {
		cJSON *old, *obj;
	} *ch = NULL;
	size_t nch = 0, cap = inf->fresh.count + inf->cache.count + 1;
	struct strmap_iter it;
	const char *key;
	void *val;

	ch = calloc(cap, sizeof(*ch));
	if (!ch) {
		log_error("kube", "informer %s: out of memory applying a list", inf->plural);
		strmap_free(&inf->fresh, free_json);
		backoff_then(inf, 1);
		return;
	}
	pthread_rwlock_wrlock(&inf->lock);
	/* Deleted meanwhile: in the cache, not in the list. */
	strmap_iter_init(&inf->cache, &it);
	while (strmap_iter_next(&inf->cache, &it, &key, &val)) {
		if (!strmap_has(&inf->fresh, key)) {
			ch[nch].old = val;
			ch[nch].obj = NULL;
			nch++;
			strmap_del(&inf->cache, key, NULL);
		}
	}
	strmap_iter_init(&inf->fresh, &it);
	while (strmap_iter_next(&inf->fresh, &it, &key, &val)) {
		cJSON *old = NULL;
		if (strmap_put(&inf->cache, key, val, (void **)&old)) {
			cJSON_Delete(val);
			continue;
		}
		ch[nch].old = old;
		ch[nch].obj = val;
		nch++;
	}
	strmap_free(&inf->fresh, NULL); /* objects now belong to the cache */
	strmap_init(&inf->fresh);
	/* Rebuild the indexes from scratch: simpler than diffing, and lists are rare. */
	for (int i = 0; i < inf->nindex; i++) {
		strmap_free(&inf->indexes[i], free_set);
		strmap_init(&inf->indexes[i]);
	}
	strmap_iter_init(&inf->cache, &it);
	while (strmap_iter_next(&inf->cache, &it, &key, &val))
		index_add(inf, key, val);
	set_rv(inf, rv);
	pthread_rwlock_unlock(&inf->lock);

	for (size_t i = 0; i < nch; i++) {
		if (!ch[i].obj) {
			for (int k = 0; k < inf->nh; k++)
				if (inf->h[k].on_delete)
					inf->h[k].on_delete(inf->h[k].arg, ch[i].old);
		} else if (!ch[i].old) {
			for (int k = 0; k < inf->nh; k++)
				if (inf->h[k].on_add)
					inf->h[k].on_add(inf->h[k].arg, ch[i].obj);
		} else {
			const char *a = k8s_str(ch[i].old, "metadata.resourceVersion");
			const char *b = k8s_str(ch[i].obj, "metadata.resourceVersion");
			for (int k = 0; k < inf->nh && (!a || !b || strcmp(a, b) != 0); k++)
				if (inf->h[k].on_update)
					inf->h[k].on_update(inf->h[k].arg, ch[i].old, ch[i].obj);
		}
		cJSON_Delete(ch[i].old);
	}
	free(ch);
	atomic_fetch_add(&inf->n_lists, 1);
	pthread_mutex_lock(&inf->sync_mu);
	inf->synced = 1;
	pthread_cond_broadcast(&inf->sync_cv);
	pthread_mutex_unlock(&inf->sync_mu);
}

static void restart_list(struct kube_informer *inf, int consistent)
{
	strmap_free(&inf->fresh, free_json);
	strmap_init(&inf->fresh);
	free(inf->cont);
	inf->cont = NULL;
	inf->consistent_relist = consistent;
}

/* One LIST page (len bytes of data): its items into inf->fresh, its continue token into
 * inf->cont. 0 with the page in *out (the last one: the caller applies the list), 1 when more
 * pages follow (inf->cont NULL: out of memory), -EPROTO when it is not a list. */
static int list_page(struct kube_informer *inf, const char *data, size_t len, cJSON **out)
{
	cJSON *page, *items, *it;
	const char *next;
	*out = NULL;
	page = cJSON_ParseWithLength(data, len);
	items = cJSON_GetObjectItemCaseSensitive(page, "items");
	if (!page || (items && !cJSON_IsArray(items) && !cJSON_IsNull(items))) {
		cJSON_Delete(page);
		return -EPROTO;
	}
	while (cJSON_IsArray(items) && (it = cJSON_DetachItemViaPointer(items, items->child))) {
		char key[512];
		cJSON *old = NULL;
		trim(inf, it);
		if (kube_object_key(it, key, sizeof(key)) ||
		    strmap_put(&inf->fresh, key, it, (void **)&old)) {
			cJSON_Delete(it);
			continue;
		}
		cJSON_Delete(old);
	}
	next = k8s_str(page, "metadata.continue");
	free(inf->cont);
	inf->cont = NULL;
	if (next && *next) {
		inf->cont = strdup(next);
		cJSON_Delete(page);
		return 1;
	}
	*out = page;
	return 0;
}

int kube_informer_feed_list(struct kube_informer *inf, const char *data, size_t len)
{
	cJSON *page = NULL;
	int rc = list_page(inf, data, len, &page);
	if (rc < 0)
		restart_list(inf, 0);
	if (rc != 0)
		return rc < 0 ? rc : 0;
	apply_list(inf, k8s_str(page, "metadata.resourceVersion"));
	cJSON_Delete(page);
	return 0;
}

static void list_page_done(struct kube_informer *inf, CURLcode cc)
{
	cJSON *page;
	int rc;
	long code = response_code(inf->easy);

	if (cc != CURLE_OK || code != 200) {
		struct kube_status st;
		kube_status_parse(inf->body.data, inf->body.len, code, &st);
		log_warn("kube", "informer %s: list failed: %s (%ld %s)", inf->plural,
			 cc != CURLE_OK ? curl_easy_strerror(cc) : "HTTP", code, st.reason);
		if (code == 401)
			kube_config_token_rejected(kube_client_config(inf->loop->c));
		if (code == 410) {
			/* The continue token expired: start again with a consistent read. */
			atomic_fetch_add(&inf->n_gone, 1);
			restart_list(inf, 1);
			start_list(inf);
			return;
		}
		restart_list(inf, inf->consistent_relist);
		backoff_then(inf, 1);
		return;
	}
	rc = list_page(inf, inf->body.data, inf->body.len, &page);
	if (rc < 0) {
		log_warn("kube", "informer %s: list answer is not a list", inf->plural);
		restart_list(inf, inf->consistent_relist);
		backoff_then(inf, 1);
		return;
	}
	if (rc == 1) {
		if (!inf->cont) {
			restart_list(inf, inf->consistent_relist);
			backoff_then(inf, 1);
			return;
		}
		start_list(inf);
		return;
	}
	apply_list(inf, k8s_str(page, "metadata.resourceVersion"));
	cJSON_Delete(page);
	inf->consistent_relist = 0;
	kube_backoff_reset(&inf->bo);
	if (inf->state != INF_WAITING)
		start_watch(inf);
}

static void watch_done(struct kube_informer *inf, CURLcode cc)
{
	long code = inf->http_checked ? inf->http : response_code(inf->easy);

	if (inf->watch_events > 0)
		kube_backoff_reset(&inf->bo);
	if (inf->abort == ABORT_GONE || code == 410) {
		log_info("kube", "informer %s: resourceVersion %s is gone, relisting", inf->plural,
			 inf->rv);
		atomic_fetch_add(&inf->n_gone, 1);
		restart_list(inf, 1);
		start_list(inf);
		return;
	}
	if (inf->abort == ABORT_OVERFLOW) {
		log_warn("kube", "informer %s: event over %zu bytes, restarting the watch",
			 inf->plural, inf->framer.max);
		backoff_then(inf, 0);
		return;
	}
	if (inf->abort != ABORT_NONE) {
		backoff_then(inf, 0);
		return;
	}
	if (cc == CURLE_OK && code == 200) {
		/* The server's timeoutSeconds ran out: carry on from the last resourceVersion.
		 * A stream that ended at once with nothing in it waits a little, so a server
		 * or proxy that closes every watch does not make us spin. */
		if (inf->watch_events == 0 && mono_ms() - inf->watch_started < 1000)
			backoff_then(inf, 0);
		else
			start_watch(inf);
		return;
	}
	if (code == 401)
		kube_config_token_rejected(kube_client_config(inf->loop->c));
	log_info("kube", "informer %s: watch ended: %s (HTTP %ld), retrying", inf->plural,
		 cc != CURLE_OK ? curl_easy_strerror(cc) : "server answer", code);
	backoff_then(inf, 0);
}

static void transfer_done(struct kube_informer *inf, CURLcode cc)
{
	curl_multi_remove_handle(inf->loop->multi, inf->easy);
	curl_slist_free_all(inf->hdrs);
	inf->hdrs = NULL;
	if (inf->state == INF_LISTING)
		list_page_done(inf, cc);
	else if (inf->state == INF_WATCHING)
		watch_done(inf, cc);
}

static void *loop_main(void *arg)
{
	struct kube_informers *l = arg;

	while (!atomic_load(&l->stop)) {
		uint64_t now = mono_ms(), wake = now + LOOP_TICK_MS;
		struct kube_informer *inf;
		struct CURLMsg *msg;
		int running, left;

		pthread_mutex_lock(&l->mu);
		inf = l->list;
		pthread_mutex_unlock(&l->mu);
		/* The list only grows at its head, so walking from a snapshot is safe. */
		for (; inf; inf = inf->next) {
			if (inf->state == INF_NEW) {
				start_list(inf);
			} else if (inf->state == INF_WAITING && inf->wake_at <= now) {
				if (inf->next_is_list)
					start_list(inf);
				else
					start_watch(inf);
			}
			if (inf->state == INF_WAITING && inf->wake_at < wake)
				wake = inf->wake_at;
		}
		curl_multi_perform(l->multi, &running);
		while ((msg = curl_multi_info_read(l->multi, &left)) != NULL) {
			if (msg->msg == CURLMSG_DONE) {
				struct kube_informer *done = NULL;
				curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE,
						  (char **)&done);
				if (done)
					transfer_done(done, msg->data.result);
			}
		}
		now = mono_ms();
		curl_multi_poll(l->multi, NULL, 0, wake > now ? (int)(wake - now) : 0, NULL);
	}
	return NULL;
}

int kube_informers_new(struct kube_client *c, struct kube_informers **out)
{
	struct kube_informers *l = calloc(1, sizeof(*l));
	*out = NULL;
	if (!l)
		return -ENOMEM;
	l->c = c;
	l->multi = curl_multi_init();
	if (!l->multi) {
		free(l);
		return -ENOMEM;
	}
	pthread_mutex_init(&l->mu, NULL);
	*out = l;
	return 0;
}

static void informer_free(struct kube_informer *inf)
{
	if (inf->easy) {
		curl_multi_remove_handle(inf->loop->multi, inf->easy);
		curl_easy_cleanup(inf->easy);
	}
	curl_slist_free_all(inf->hdrs);
	free(inf->body.data);
	kube_framer_free(&inf->framer);
	free(inf->cont);
	strmap_free(&inf->fresh, free_json);
	strmap_free(&inf->cache, free_json);
	for (int i = 0; i < inf->nindex; i++) {
		strmap_free(&inf->indexes[i], free_set);
		free(inf->index_labels[i]);
	}
	free(inf->indexes);
	free(inf->index_labels);
	free(inf->api);
	free(inf->plural);
	free(inf->ns);
	free(inf->selector);
	for (char **p = inf->drop_fields; p && *p; p++)
		free(*p);
	free(inf->drop_fields);
	pthread_rwlock_destroy(&inf->lock);
	pthread_mutex_destroy(&inf->sync_mu);
	pthread_cond_destroy(&inf->sync_cv);
	free(inf);
}

int kube_informer_add(struct kube_informers *l, const struct kube_informer_opts *o,
		      struct kube_informer **out)
{
	struct kube_informer *inf = calloc(1, sizeof(*inf));
	int n = 0;

	if (out)
		*out = NULL;
	if (!inf)
		return -ENOMEM;
	inf->loop = l;
	pthread_rwlock_init(&inf->lock, NULL);
	pthread_mutex_init(&inf->sync_mu, NULL);
	pthread_cond_init(&inf->sync_cv, NULL);
	strmap_init(&inf->cache);
	strmap_init(&inf->fresh);
	inf->api = strdup(o->res->api);
	inf->plural = strdup(o->res->plural);
	inf->ns = o->ns ? strdup(o->ns) : NULL;
	inf->selector = o->label_selector && *o->label_selector ? strdup(o->label_selector) : NULL;
	while (o->index_labels && o->index_labels[n])
		n++;
	inf->index_labels = calloc((size_t)n + 1, sizeof(char *));
	inf->indexes = calloc((size_t)n + 1, sizeof(struct strmap));
	if (!inf->api || !inf->plural || (o->ns && !inf->ns) || !inf->index_labels ||
	    !inf->indexes || (o->label_selector && *o->label_selector && !inf->selector))
		goto out_nomem;
	for (int i = 0; i < n; i++) {
		strmap_init(&inf->indexes[i]);
		if (!(inf->index_labels[i] = strdup(o->index_labels[i])))
			goto out_nomem;
		inf->nindex++;
	}
	inf->res.api = inf->api;
	inf->res.plural = inf->plural;
	if (o->handlers)
		inf->h[inf->nh++] = *o->handlers;
	inf->keep_apply_bookkeeping = o->keep_apply_bookkeeping;
	inf->consistent_list = o->consistent_list;
	inf->transform = o->transform;
	if (o->drop_fields) {
		size_t nd = 0;
		while (o->drop_fields[nd])
			nd++;
		if (!(inf->drop_fields = calloc(nd + 1, sizeof(char *))))
			goto out_nomem;
		for (size_t i = 0; i < nd; i++)
			if (!(inf->drop_fields[i] = strdup(o->drop_fields[i])))
				goto out_nomem;
	}
	inf->page_size = o->page_size > 0 ? o->page_size : 500;
	inf->wt_min = o->watch_timeout_min_s > 0 ? o->watch_timeout_min_s : 300;
	inf->wt_max = o->watch_timeout_max_s > inf->wt_min ? o->watch_timeout_max_s : 600;
	if (inf->wt_max <= inf->wt_min)
		inf->wt_max = inf->wt_min + 1;
	kube_framer_init(&inf->framer, o->max_event_bytes);
	inf->rng = (uint64_t)time(NULL) ^ (uint64_t)(uintptr_t)inf;
	kube_backoff_init(&inf->bo, o->backoff_base_ms, o->backoff_max_ms, inf->rng);
	inf->state = INF_NEW;
	pthread_mutex_lock(&l->mu);
	inf->next = l->list;
	l->list = inf;
	pthread_mutex_unlock(&l->mu);
	curl_multi_wakeup(l->multi);
	if (out)
		*out = inf;
	return 0;
out_nomem:
	informer_free(inf);
	return -ENOMEM;
}

int kube_informer_add_handlers(struct kube_informer *inf, const struct kube_handlers *h)
{
	if (inf->loop->started)
		return -EBUSY;
	if (inf->nh == KUBE_INFORMER_MAX_HANDLERS)
		return -ENOSPC;
	inf->h[inf->nh++] = *h;
	return 0;
}

int kube_informers_start(struct kube_informers *l)
{
	int rc;
	if (l->started)
		return -EALREADY;
	rc = pthread_create(&l->thread, NULL, loop_main, l);
	if (rc)
		return -rc;
	l->started = 1;
	return 0;
}

void kube_informers_free(struct kube_informers *l)
{
	struct kube_informer *inf, *next;
	if (!l)
		return;
	if (l->started) {
		atomic_store(&l->stop, 1);
		curl_multi_wakeup(l->multi);
		pthread_join(l->thread, NULL);
	}
	for (inf = l->list; inf; inf = next) {
		next = inf->next;
		informer_free(inf);
	}
	curl_multi_cleanup(l->multi);
	pthread_mutex_destroy(&l->mu);
	free(l);
}

int kube_informer_has_synced(struct kube_informer *inf)
{
	int s;
	pthread_mutex_lock(&inf->sync_mu);
	s = inf->synced;
	pthread_mutex_unlock(&inf->sync_mu);
	return s;
}

int kube_informer_wait_synced(struct kube_informer *inf, int timeout_ms)
{
	struct timespec ts;
	int rc = 0;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += timeout_ms / 1000;
	ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&inf->sync_mu);
	while (!inf->synced && rc == 0)
		rc = pthread_cond_timedwait(&inf->sync_cv, &inf->sync_mu, &ts);
	rc = inf->synced ? 0 : -ETIMEDOUT;
	pthread_mutex_unlock(&inf->sync_mu);
	return rc;
}

cJSON *kube_informer_get(struct kube_informer *inf, const char *key)
{
	cJSON *out = NULL, *obj;
	pthread_rwlock_rdlock(&inf->lock);
	obj = strmap_get(&inf->cache, key);
	if (obj)
		out = cJSON_Duplicate(obj, 1);
	pthread_rwlock_unlock(&inf->lock);
	return out;
}

cJSON *kube_informer_list(struct kube_informer *inf)
{
	cJSON *arr = cJSON_CreateArray();
	struct strmap_iter it;
	void *val;
	if (!arr)
		return NULL;
	pthread_rwlock_rdlock(&inf->lock);
	strmap_iter_init(&inf->cache, &it);
	while (strmap_iter_next(&inf->cache, &it, NULL, &val)) {
		cJSON *dup = cJSON_Duplicate(val, 1);
		if (dup)
			cJSON_AddItemToArray(arr, dup);
	}
	pthread_rwlock_unlock(&inf->lock);
	return arr;
}

cJSON *kube_informer_by_label(struct kube_informer *inf, const char *label, const char *value)
{
	cJSON *arr = cJSON_CreateArray();
	struct strmap_iter it;
	const char *key;
	int idx = -1;

	if (!arr)
		return NULL;
	for (int i = 0; i < inf->nindex; i++)
		if (strcmp(inf->index_labels[i], label) == 0)
			idx = i;
	if (idx < 0) {
		log_error("kube", "informer %s: no index on label %s", inf->plural, label);
		return arr;
	}
	pthread_rwlock_rdlock(&inf->lock);
	{
		struct strmap *set = strmap_get(&inf->indexes[idx], value);
		if (set) {
			strmap_iter_init(set, &it);
			while (strmap_iter_next(set, &it, &key, NULL)) {
				cJSON *obj = strmap_get(&inf->cache, key), *dup;
				if (obj && (dup = cJSON_Duplicate(obj, 1)))
					cJSON_AddItemToArray(arr, dup);
			}
		}
	}
	pthread_rwlock_unlock(&inf->lock);
	return arr;
}

size_t kube_informer_count(struct kube_informer *inf)
{
	size_t n;
	pthread_rwlock_rdlock(&inf->lock);
	n = inf->cache.count;
	pthread_rwlock_unlock(&inf->lock);
	return n;
}

int kube_informer_feed_watch(struct kube_informer *inf, const char *data, size_t len)
{
	int rc;
	inf->abort = ABORT_NONE;
	rc = kube_framer_feed(&inf->framer, data, len, on_frame, inf);
	if (inf->abort == ABORT_GONE)
		return KUBE_EGONE;
	if (inf->abort == ABORT_PROTO || inf->abort == ABORT_ERROR)
		return -EPROTO;
	return rc;
}

void kube_informer_stats(struct kube_informer *inf, struct kube_informer_stats *st)
{
	memset(st, 0, sizeof(*st));
	st->events = atomic_load(&inf->n_events);
	st->lists = atomic_load(&inf->n_lists);
	st->relists_gone = atomic_load(&inf->n_gone);
	st->watches = atomic_load(&inf->n_watches);
	st->errors = atomic_load(&inf->n_errors);
	pthread_rwlock_rdlock(&inf->lock);
	snprintf(st->rv, sizeof(st->rv), "%s", inf->rv);
	pthread_rwlock_unlock(&inf->lock);
}
