/*
 * controllers/gate: lets a controller's workers pause between reconciles. A replica that loses
 * the Lease closes the gate: gate_close() returns once no worker is inside a reconcile, and no
 * worker enters one until gate_open(); the process (and its gRPC connections) lives on and
 * stands for election again. gate_abort() releases waiting workers for good (shutdown).
 */
#ifndef UDF_CONTROLLERS_GATE_H
#define UDF_CONTROLLERS_GATE_H

#include <pthread.h>

struct gate {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int closed;
	int aborted;
	int active; /* workers inside a reconcile */
};

void gate_init(struct gate *g); /* open */
void gate_destroy(struct gate *g);
/* Before a reconcile: waits while the gate is closed. 0 to go on, -1 once aborted. */
int gate_enter(struct gate *g);
void gate_leave(struct gate *g);
/* Closes the gate and waits until no worker is inside a reconcile. */
void gate_close(struct gate *g);
void gate_open(struct gate *g);
void gate_abort(struct gate *g);

#endif
