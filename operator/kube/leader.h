/*
 * kube/leader: leader election on a coordination.k8s.io/v1 Lease, as client-go does it.
 *
 * One thread per elector. Every retry period it tries to acquire (or, when leading, renew)
 * the Lease with a conditional update. Whether another holder's lease is still valid is
 * judged on the local monotonic clock from when this process last saw the Lease record
 * change, never by comparing the remote timestamps with the local clock. When leading and a
 * renewal has not succeeded within the renew deadline, it stops leading and calls
 * on_stopped_leading (default: log and exit the process with status 1, since a controller
 * that may no longer be the leader must not keep acting). kube_leader_stop() releases the
 * lease when held, so a successor need not wait out the lease.
 */
#ifndef UDF_KUBE_LEADER_H
#define UDF_KUBE_LEADER_H

#include "kube/rest.h"

struct kube_leader;

struct kube_leader_opts {
	const char *ns, *name; /* the Lease */
	const char *identity;  /* NULL: hostname + "_" + random suffix */
	int lease_s;	       /* 0: 15 */
	int renew_deadline_s;  /* 0: 10 */
	int retry_s;	       /* 0: 2 */
	/* Called on the elector's thread. on_stopped_leading NULL: exit(1). */
	void (*on_started_leading)(void *arg);
	void (*on_stopped_leading)(void *arg);
	void (*on_new_leader)(void *arg, const char *identity);
	void *arg;
};

/* The client is borrowed. */
int kube_leader_new(struct kube_client *c, const struct kube_leader_opts *o,
		    struct kube_leader **out);
int kube_leader_start(struct kube_leader *le);
int kube_leader_is_leader(struct kube_leader *le);
const char *kube_leader_identity(const struct kube_leader *le);
/* Stops trying; releases the lease if held. Blocks up to a request timeout. */
void kube_leader_stop(struct kube_leader *le);
void kube_leader_free(struct kube_leader *le);

#endif
