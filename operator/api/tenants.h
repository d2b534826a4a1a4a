/*
 * api/tenants: the tenants' namespaces as the gRPC services need them: which tenant owns a
 * namespace (kept from a shared namespace informer, so a hot call asks no server), and the
 * blocking create-if-missing of a tenant's namespace with its sandbox NetworkPolicy.
 * Thread-safe. Handlers run on the informer loop; tenants_ensure() blocks.
 */
#ifndef UDF_API_TENANTS_H
#define UDF_API_TENANTS_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "api/outcome.h"

struct kube_client;
struct kube_informer;
struct tenants;

/* Adds its handlers to inf_ns (namespaces labelled udf.sandbox.io/tenant-namespace=true,
 * before the loop starts); prefix: naming_prefix_valid(). */
int tenants_new(struct kube_client *kube, struct kube_informer *inf_ns, const char *prefix,
		struct tenants **out);
void tenants_free(struct tenants *t);

/* Limits (0: none), set once before the first tenants_ensure(). */
struct tenants_limits {
	int max_tenants;   /* namespaces with this operator's prefix; a new tenant past it is
			    * refused with FN_EXHAUSTED */
	int max_pods;	   /* "pods" of the ResourceQuota stamped into each tenant namespace */
	int max_functions; /* its "count/udffunctions.udf.sandbox.io": the API server's
			    * backstop behind functions_over_limit() */
};
void tenants_set_limits(struct tenants *t, const struct tenants_limits *l);
/* Extra labels of the namespaces it creates, "K=V[,K=V]" (NULL or "": none), set once
 * before the first tenants_ensure(); they never replace the stamped ones. 0 or -EINVAL. */
int tenants_set_labels(struct tenants *t, const char *spec);
/* "K=V[,K=V]" into a JSON object of labels (*out NULL for NULL or ""). 0, -EINVAL (a part
 * without "=", or a key or value Kubernetes would refuse) or -ENOMEM. */
int tenants_parse_labels(const char *spec, cJSON **out);

/* The tenant's namespace name into ns[64] (pure). 0 or -EINVAL. */
int tenants_namespace(struct tenants *t, const char *tenant, char ns[64]);

/* Is ns tenant's? From the cache: 1 yes, 0 unknown (not in the cache), -1 another's. */
int tenants_owner_known(struct tenants *t, const char *ns, const char *tenant);

/* Blocking: creates the tenant's namespace, its NetworkPolicies and (with a pod or function
 * limit) its ResourceQuota "udf-tenant-quota" when missing, and checks the namespace is the
 * tenant's. A policy that drifted from the stamped one (its spec, or one of the stamped
 * labels, changed by hand) is put back (a JSON patch conditional on the resourceVersion read);
 * one that has not is not written. 0, or a negative code with *res and msg saying why. */
int tenants_ensure(struct tenants *t, const char *tenant, char ns[64], enum fn_result *res,
		   char *msg, size_t msglen);

/* Is the tenants' namespace informer synced? */
int tenants_synced(struct tenants *t);

#endif
