/*
 * kube/watch: the pure parts of a watch stream, with no I/O.
 *
 * A watch answer is a stream of JSON objects ({"type":..,"object":..}), newline separated in
 * practice, cut into arbitrary chunks by TCP and HTTP chunking. The framer finds object
 * boundaries itself (brace depth outside strings), so it does not depend on the newlines, and
 * it never holds more than its cap (16 MiB by default) of one unfinished event: past that,
 * feeding fails with -EMSGSIZE and the caller restarts the watch.
 *
 * Not thread-safe: one framer per stream. kube_backoff is also per user.
 */
#ifndef UDF_KUBE_WATCH_H
#define UDF_KUBE_WATCH_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

#include "kube/rest.h"

#define KUBE_FRAMER_CAP_DEFAULT (16u << 20)

struct kube_framer {
	char *buf; /* the unfinished object (and nothing before it) */
	size_t len, cap, max;
	int depth, in_string, escape;
};

/* Called once per complete top-level JSON object; a non-zero return stops feeding and is
 * returned by kube_framer_feed. json is not NUL-terminated and valid only during the call. */
typedef int (*kube_frame_fn)(void *arg, const char *json, size_t len);

/* max 0: KUBE_FRAMER_CAP_DEFAULT. */
void kube_framer_init(struct kube_framer *f, size_t max);
/* Returns 0, the callback's non-zero value, -EMSGSIZE when one object exceeds the cap,
 * -EPROTO when something other than an object appears at the top level, -ENOMEM. After an
 * error the framer must be reset before reuse. */
int kube_framer_feed(struct kube_framer *f, const char *data, size_t len, kube_frame_fn fn,
		     void *arg);
/* Drops any partial object (a new stream starts). */
void kube_framer_reset(struct kube_framer *f);
void kube_framer_free(struct kube_framer *f);
/* Bytes of an unfinished object held now. */
size_t kube_framer_pending(const struct kube_framer *f);

enum kube_event_type {
	KUBE_EVENT_ADDED,
	KUBE_EVENT_MODIFIED,
	KUBE_EVENT_DELETED,
	KUBE_EVENT_BOOKMARK,
	KUBE_EVENT_ERROR,
};

struct kube_event {
	enum kube_event_type type;
	cJSON *object;		   /* owned; for ERROR the Status object */
	const char *rv;		   /* object's metadata.resourceVersion (inside object) or NULL */
	struct kube_status status; /* ERROR only */
};

/* Parses one framed event. Returns 0 or -EINVAL (unknown type, missing object, not JSON). */
int kube_event_parse(const char *json, size_t len, struct kube_event *ev);
void kube_event_free(struct kube_event *ev);

/* Jittered exponential backoff: 800 ms doubling to 30 s, each wait up to 20% longer. */
struct kube_backoff {
	uint64_t base_ms, max_ms, cur_ms;
	uint64_t rng;
};

void kube_backoff_init(struct kube_backoff *b, uint64_t base_ms, uint64_t max_ms, uint64_t seed);
/* The next wait in ms (and advances the step). */
uint64_t kube_backoff_next(struct kube_backoff *b);
/* Success: the next failure starts from base again. */
void kube_backoff_reset(struct kube_backoff *b);

#endif
