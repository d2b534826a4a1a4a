/*
 * kube/informer: caches of Kubernetes objects kept current by LIST + WATCH, client-go style.
 *
 * A struct kube_informers is one event loop: one thread and one curl multi handle that
 * drive every informer's LIST pages and WATCH stream at once (no thread per watch).
 * Per informer:
 * - LIST with resourceVersion=0 (or a consistent read: consistent_list) in pages of 500, then
 *   WATCH from the list's resourceVersion
 *   with allowWatchBookmarks=true and a random timeoutSeconds in [300, 600); every event,
 *   bookmarks included, advances the resourceVersion;
 * - a normal end of the watch re-watches from the last resourceVersion; 410 Gone (HTTP or an
 *   ERROR event) relists (resourceVersion="", a consistent read) and replaces the cache, so
 *   deletions missed meanwhile are delivered as deletes; connection errors, 429 and 5xx wait
 *   a jittered exponential backoff (800 ms doubling to 30 s) first; an event over the
 *   framer's 16 MiB cap restarts the watch.
 *
 * Every object is reduced before it is cached or handed to a handler, each handler included
 * (deletes too): transform, then metadata.managedFields and client-side apply's
 * last-applied-configuration annotation, then drop_fields.
 *
 * The cache is keyed "namespace/name" ("name" when cluster-scoped), with optional secondary
 * indexes on label keys. Handlers run on the loop thread, after the cache is updated, with
 * objects borrowed for the call: keep them short (enqueue a key, don't do I/O).
 * Readers (get/list/by_label) are thread-safe and return copies the caller frees.
 */
#ifndef UDF_KUBE_INFORMER_H
#define UDF_KUBE_INFORMER_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

#include "kube/rest.h"

struct kube_informers;
struct kube_informer;

struct kube_handlers {
	void (*on_add)(void *arg, const cJSON *obj);
	void (*on_update)(void *arg, const cJSON *old, const cJSON *obj);
	void (*on_delete)(void *arg, const cJSON *obj);
	void *arg;
};

/* Handler sets one informer can call: everything that watches a resource shares its informer
 * (one watch per resource per process) and adds its own set. */
#define KUBE_INFORMER_MAX_HANDLERS 4

struct kube_informer_opts {
	const struct kube_res *res;	      /* copied */
	const char *ns;			      /* NULL: all namespaces / cluster-scoped */
	const char *label_selector;	      /* may be NULL */
	const char *const *index_labels;      /* NULL-terminated label keys to index, may be NULL */
	const struct kube_handlers *handlers; /* may be NULL */
	int page_size;			      /* 0: 500 */
	int watch_timeout_min_s;	      /* 0: 300 */
	int watch_timeout_max_s;	      /* 0: 600 (exclusive) */
	uint64_t backoff_base_ms;	      /* 0: 800 */
	uint64_t backoff_max_ms;	      /* 0: 30000 */
	size_t max_event_bytes;		      /* 0: 16 MiB */
	/* 0: drop the bookkeeping of apply before caching: metadata.managedFields (server-side)
	 * and the annotation kubectl.kubernetes.io/last-applied-configuration (client-side: a
	 * copy of the whole object as last applied). They are often most of an object's size,
	 * and controllers never read them. */
	int keep_apply_bookkeeping;
	/* Fields dropped from every object before it is cached or handed to a handler: dotted
	 * paths, "[]" after a name for each element of an array ("spec.code",
	 * "spec.imports[].url"). NULL-terminated, copied; may be NULL. Keep a cache to what its
	 * readers read: a field dropped here is absent from get/list and from every handler. */
	const char *const *drop_fields;
	/* Called on the loop thread with every object (owned by the informer, not to be kept)
	 * before anything else is dropped, to reduce it to what readers read: it may change obj
	 * in place, e.g. replace a big field by a digest of it (client-go's SetTransform). On
	 * failure it returns a negative code and leaves obj as it was; the object is cached so.
	 * May be NULL. */
	int (*transform)(cJSON *obj);
	/* 1: every LIST is a consistent read (no resourceVersion=0), which the API server answers
	 * page_size objects at a time. A LIST at resourceVersion=0 is answered from its watch
	 * cache, which may ignore the limit and send the whole collection in one body: for big
	 * objects that body, not the cache, is what bounds memory. Costs the API server a read
	 * from etcd at each (re)list. */
	int consistent_list;
};

/* The client is borrowed and must outlive the loop. */
int kube_informers_new(struct kube_client *c, struct kube_informers **out);
/* Adds an informer (before or after start). The informer belongs to the loop. */
int kube_informer_add(struct kube_informers *l, const struct kube_informer_opts *o,
		      struct kube_informer **out);
/* Adds another handler set to an informer, called after the ones before it. Only before the
 * loop starts (-EBUSY after), at most KUBE_INFORMER_MAX_HANDLERS in all (-ENOSPC). */
int kube_informer_add_handlers(struct kube_informer *inf, const struct kube_handlers *h);
int kube_informers_start(struct kube_informers *l);
/* Stops the loop thread and frees every informer. */
void kube_informers_free(struct kube_informers *l);

/* Has the first LIST been applied (and its handlers called)? */
int kube_informer_has_synced(struct kube_informer *inf);
/* Waits up to timeout_ms; returns 0 when synced, -ETIMEDOUT otherwise. */
int kube_informer_wait_synced(struct kube_informer *inf, int timeout_ms);

/* Copies (caller frees with cJSON_Delete). NULL / empty array when nothing matches. */
cJSON *kube_informer_get(struct kube_informer *inf, const char *key);
cJSON *kube_informer_list(struct kube_informer *inf);
/* Objects whose label `label` equals value; label must be one of index_labels. */
cJSON *kube_informer_by_label(struct kube_informer *inf, const char *label, const char *value);
size_t kube_informer_count(struct kube_informer *inf);
/* The key of an object: "ns/name" or "name". Returns -ENAMETOOLONG or -EINVAL. */
int kube_object_key(const cJSON *obj, char *buf, size_t len);

/* For tests and benchmarks: applies watch-stream bytes to the cache as if they had arrived
 * on the informer's stream (handlers run on the calling thread). Only for an informer whose
 * loop was not started. Returns 0, -EMSGSIZE, -EPROTO, or KUBE_EGONE on a 410 ERROR event. */
int kube_informer_feed_watch(struct kube_informer *inf, const char *data, size_t len);

/* Likewise for the body of one LIST page: its items are kept, and the page without a
 * continue token replaces the cache as a completed LIST would (handlers run). 0, or -EPROTO
 * when it is not a list (what was kept of earlier pages is dropped). */
int kube_informer_feed_list(struct kube_informer *inf, const char *data, size_t len);

struct kube_informer_stats {
	uint64_t events; /* watch events applied (bookmarks included) */
	uint64_t lists;	 /* completed LISTs (first one included) */
	uint64_t relists_gone;
	uint64_t watches; /* WATCH requests started */
	uint64_t errors;  /* failed requests / broken streams */
	char rv[64];	  /* last resourceVersion */
};
void kube_informer_stats(struct kube_informer *inf, struct kube_informer_stats *st);

#endif
