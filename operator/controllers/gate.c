#include "controllers/gate.h"

void gate_init(struct gate *g)
{
	pthread_mutex_init(&g->mu, NULL);
	pthread_cond_init(&g->cv, NULL);
	g->closed = g->aborted = g->active = 0;
}

void gate_destroy(struct gate *g)
{
	pthread_cond_destroy(&g->cv);
	pthread_mutex_destroy(&g->mu);
}

int gate_enter(struct gate *g)
{
	pthread_mutex_lock(&g->mu);
	while (g->closed && !g->aborted)
		pthread_cond_wait(&g->cv, &g->mu);
	int rc = g->aborted ? -1 : 0;
	if (rc == 0)
		g->active++;
	pthread_mutex_unlock(&g->mu);
	return rc;
}

void gate_leave(struct gate *g)
{
	pthread_mutex_lock(&g->mu);
	g->active--;
	pthread_cond_broadcast(&g->cv);
	pthread_mutex_unlock(&g->mu);
}

void gate_close(struct gate *g)
{
	pthread_mutex_lock(&g->mu);
	g->closed = 1;
	while (g->active > 0)
		pthread_cond_wait(&g->cv, &g->mu);
	pthread_mutex_unlock(&g->mu);
}

void gate_open(struct gate *g)
{
	pthread_mutex_lock(&g->mu);
	g->closed = 0;
	pthread_cond_broadcast(&g->cv);
	pthread_mutex_unlock(&g->mu);
}

void gate_abort(struct gate *g)
{
	pthread_mutex_lock(&g->mu);
	g->aborted = 1;
	pthread_cond_broadcast(&g->cv);
	pthread_mutex_unlock(&g->mu);
}
