/*
 * udf/netpol: the sandbox NetworkPolicy the operator stamps into a namespace.
 * (Interim: replaced by the definition embedded from manifests/50-networkpolicy.yaml.)
 */
#ifndef UDF_UDF_NETPOL_H
#define UDF_UDF_NETPOL_H

#include <cjson/cJSON.h>

/* The policy for namespace ns into *out (caller frees). 0 or -ENOMEM. */
int udf_netpol_object(const char *ns, cJSON **out);

#endif
