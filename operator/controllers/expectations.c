#include "controllers/expectations.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kube/strmap.h"

struct pending {
	struct pending *next;
	enum exp_kind kind;
	int64_t expires_ms;
	char name[];
};

struct expectations {
	pthread_mutex_t mu;
	int64_t ttl_ms;
	struct strmap owners; /* owner -> struct pending list */
};

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int exp_new(int64_t ttl_ms, struct expectations **out)
{
	struct expectations *e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	pthread_mutex_init(&e->mu, NULL);
	e->ttl_ms = ttl_ms > 0 ? ttl_ms : 5 * 60 * 1000;
	strmap_init(&e->owners);
	*out = e;
	return 0;
}

static void free_list(void *v)
{
	struct pending *p = v;
	while (p) {
		struct pending *next = p->next;
		free(p);
		p = next;
	}
}

void exp_free(struct expectations *e)
{
	if (!e)
		return;
	strmap_free(&e->owners, free_list);
	pthread_mutex_destroy(&e->mu);
	free(e);
}

/* Drops expired entries of owner's list; returns the new head. Under the lock. */
static struct pending *prune(struct expectations *e, const char *owner, int64_t now)
{
	struct pending *head = strmap_get(&e->owners, owner);
	struct pending **pp = &head;
	while (*pp) {
		if ((*pp)->expires_ms <= now) {
			struct pending *dead = *pp;
			*pp = dead->next;
			free(dead);
		} else {
			pp = &(*pp)->next;
		}
	}
	if (head)
		strmap_put(&e->owners, owner, head, NULL);
	else
		strmap_del(&e->owners, owner, NULL);
	return head;
}

int exp_expect(struct expectations *e, const char *owner, enum exp_kind kind, const char *name)
{
	size_t n = strlen(name);
	struct pending *p = malloc(sizeof(*p) + n + 1);
	if (!p)
		return -ENOMEM;
	p->kind = kind;
	p->expires_ms = now_ms() + e->ttl_ms;
	memcpy(p->name, name, n + 1);
	pthread_mutex_lock(&e->mu);
	p->next = strmap_get(&e->owners, owner);
	int rc = strmap_put(&e->owners, owner, p, NULL);
	pthread_mutex_unlock(&e->mu);
	if (rc < 0)
		free(p);
	return rc;
}

void exp_observe(struct expectations *e, const char *owner, enum exp_kind kind, const char *name)
{
	pthread_mutex_lock(&e->mu);
	struct pending *head = strmap_get(&e->owners, owner);
	for (struct pending **pp = &head; *pp; pp = &(*pp)->next) {
		if ((*pp)->kind == kind && strcmp((*pp)->name, name) == 0) {
			struct pending *done = *pp;
			*pp = done->next;
			free(done);
			break;
		}
	}
	if (head)
		strmap_put(&e->owners, owner, head, NULL);
	else
		strmap_del(&e->owners, owner, NULL);
	pthread_mutex_unlock(&e->mu);
}

int exp_pending(struct expectations *e, const char *owner, enum exp_kind kind)
{
	int n = 0;
	pthread_mutex_lock(&e->mu);
	for (struct pending *p = prune(e, owner, now_ms()); p; p = p->next)
		n += p->kind == kind;
	pthread_mutex_unlock(&e->mu);
	return n;
}

int exp_has(struct expectations *e, const char *owner, enum exp_kind kind, const char *name)
{
	int found = 0;
	pthread_mutex_lock(&e->mu);
	for (struct pending *p = prune(e, owner, now_ms()); p && !found; p = p->next)
		found = p->kind == kind && strcmp(p->name, name) == 0;
	pthread_mutex_unlock(&e->mu);
	return found;
}

void exp_each(struct expectations *e, const char *owner, enum exp_kind kind,
	      void (*fn)(void *arg, const char *name), void *arg)
{
	pthread_mutex_lock(&e->mu);
	for (struct pending *p = prune(e, owner, now_ms()); p; p = p->next)
		if (p->kind == kind)
			fn(arg, p->name);
	pthread_mutex_unlock(&e->mu);
}

void exp_forget(struct expectations *e, const char *owner)
{
	void *v = NULL;
	pthread_mutex_lock(&e->mu);
	if (strmap_del(&e->owners, owner, &v))
		free_list(v);
	pthread_mutex_unlock(&e->mu);
}
