/*
 * udf/tenant: a tenant's namespace. The gRPC service keeps each tenant's UdfFunctions and
 * token Secrets in a namespace of its own (its name: naming_tenant_namespace()), labelled
 * udf.sandbox.io/tenant-namespace=true (so a shared pool's functionNamespaceSelector selects
 * them all) and annotated with the exact tenant name, checked on every use: two tenants whose
 * names map to one namespace never share it. Pure functions, no threads.
 */
#ifndef UDF_UDF_TENANT_H
#define UDF_UDF_TENANT_H

#include <cjson/cJSON.h>

/* The Namespace object for tenant into *out (caller frees): Pod Security "restricted"
 * enforced. 0 or -ENOMEM. */
int tenant_namespace_object(const char *ns, const char *tenant, cJSON **out);

/* Is the namespace object tenant's (its tenant annotation equals tenant)? */
int tenant_namespace_owned(const cJSON *nsobj, const char *tenant);

#endif
