/*
 * kube/strmap: a hash map from string keys (copied) to pointers (borrowed unless the caller
 * frees them). Not thread-safe: the owner locks.
 */
#ifndef UDF_KUBE_STRMAP_H
#define UDF_KUBE_STRMAP_H

#include <stddef.h>

struct strmap_entry {
	struct strmap_entry *next;
	void *val;
	size_t hash;
	char key[];
};

struct strmap {
	struct strmap_entry **buckets;
	size_t nbuckets, count;
};

struct strmap_iter {
	size_t bucket;
	struct strmap_entry *next;
};

void strmap_init(struct strmap *m);
/* free_val (may be NULL) is called for each value. */
void strmap_free(struct strmap *m, void (*free_val)(void *));
/* NULL when absent (or when the value stored is NULL: use strmap_has). */
void *strmap_get(const struct strmap *m, const char *key);
int strmap_has(const struct strmap *m, const char *key);
/* Inserts or replaces; the old value goes to *old (NULL when new; old may be NULL).
 * Returns 0 or -ENOMEM. */
int strmap_put(struct strmap *m, const char *key, void *val, void **old);
/* Removes key; returns 1 with the value in *val (may be NULL) when it was there, else 0. */
int strmap_del(struct strmap *m, const char *key, void **val);
/* Iteration; the map must not change meanwhile except by deleting the entry just returned. */
void strmap_iter_init(const struct strmap *m, struct strmap_iter *it);
int strmap_iter_next(const struct strmap *m, struct strmap_iter *it, const char **key, void **val);

#endif
