/* kube/strmap: chained hash map, FNV-1a, doubling at load factor 1. */
#include "kube/strmap.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static size_t hash_str(const char *s)
{
	size_t h = (size_t)1469598103934665603ULL;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * (size_t)1099511628211ULL;
	return h;
}

void strmap_init(struct strmap *m)
{
	m->buckets = NULL;
	m->nbuckets = 0;
	m->count = 0;
}

void strmap_free(struct strmap *m, void (*free_val)(void *))
{
	for (size_t i = 0; i < m->nbuckets; i++) {
		struct strmap_entry *e = m->buckets[i], *n;
		for (; e; e = n) {
			n = e->next;
			if (free_val)
				free_val(e->val);
			free(e);
		}
	}
	free(m->buckets);
	strmap_init(m);
}

static struct strmap_entry **find(const struct strmap *m, const char *key, size_t h)
{
	struct strmap_entry **pp;
	if (!m->nbuckets)
		return NULL;
	pp = &m->buckets[h & (m->nbuckets - 1)];
	for (; *pp; pp = &(*pp)->next)
		if ((*pp)->hash == h && strcmp((*pp)->key, key) == 0)
			return pp;
	return NULL;
}

void *strmap_get(const struct strmap *m, const char *key)
{
	struct strmap_entry **pp = find(m, key, hash_str(key));
	return pp ? (*pp)->val : NULL;
}

int strmap_has(const struct strmap *m, const char *key)
{
	return find(m, key, hash_str(key)) != NULL;
}

static int grow(struct strmap *m)
{
	size_t n = m->nbuckets ? m->nbuckets * 2 : 16;
	struct strmap_entry **nb = calloc(n, sizeof(*nb));
	if (!nb)
		return -ENOMEM;
	for (size_t i = 0; i < m->nbuckets; i++) {
		struct strmap_entry *e = m->buckets[i], *next;
		for (; e; e = next) {
			next = e->next;
			e->next = nb[e->hash & (n - 1)];
			nb[e->hash & (n - 1)] = e;
		}
	}
	free(m->buckets);
	m->buckets = nb;
	m->nbuckets = n;
	return 0;
}

int strmap_put(struct strmap *m, const char *key, void *val, void **old)
{
	size_t h = hash_str(key), len;
	struct strmap_entry **pp = find(m, key, h), *e;

	if (pp) {
		if (old)
			*old = (*pp)->val;
		(*pp)->val = val;
		return 0;
	}
	if (old)
		*old = NULL;
	if (m->count + 1 > m->nbuckets && grow(m))
		return -ENOMEM;
	len = strlen(key);
	e = malloc(sizeof(*e) + len + 1);
	if (!e)
		return -ENOMEM;
	memcpy(e->key, key, len + 1);
	e->hash = h;
	e->val = val;
	e->next = m->buckets[h & (m->nbuckets - 1)];
	m->buckets[h & (m->nbuckets - 1)] = e;
	m->count++;
	return 0;
}

int strmap_del(struct strmap *m, const char *key, void **val)
{
	struct strmap_entry **pp = find(m, key, hash_str(key)), *e;
	if (!pp)
		return 0;
	e = *pp;
	*pp = e->next;
	if (val)
		*val = e->val;
	free(e);
	m->count--;
	return 1;
}

void strmap_iter_init(const struct strmap *m, struct strmap_iter *it)
{
	it->bucket = 0;
	it->next = m->nbuckets ? m->buckets[0] : NULL;
}

int strmap_iter_next(const struct strmap *m, struct strmap_iter *it, const char **key, void **val)
{
	while (!it->next) {
		if (++it->bucket >= m->nbuckets)
			return 0;
		it->next = m->buckets[it->bucket];
	}
	if (key)
		*key = it->next->key;
	if (val)
		*val = it->next->val;
	it->next = it->next->next;
	return 1;
}
