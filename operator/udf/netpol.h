/*
 * udf/netpol: the sandbox NetworkPolicy, one definition for the whole project.
 *
 * manifests/50-networkpolicy.yaml is the policy of the sandbox namespace (udf-sandboxes) and
 * the one source: the build embeds that file, udf_netpol_new() parses it into templates, and
 * udf_netpol_object() stamps a copy for another namespace (a tenant namespace the operator
 * creates). The file holds one NetworkPolicy object per direction (udf-sandbox for ingress,
 * udf-sandbox-egress for egress): an implementation may apply a policy of both types to every
 * packet from or to a selected pod (kube-router does), which would let one sandbox's ingress
 * rule admit another sandbox's egress. A stamped copy differs from the manifest in two values
 * only: metadata.namespace, and the namespace in the ingress rule that lets the operator's
 * pods reach the control port, which becomes the namespace the operator really runs in; and it
 * leaves out Helm's ownership metadata (label app.kubernetes.io/managed-by, annotations
 * meta.helm.sh/... and helm.sh/...), which only the release's own copy carries.
 *
 * A struct udf_netpol is immutable after creation: udf_netpol_object() may be called from any
 * thread at once. Nothing here blocks or talks to the API server.
 */
#ifndef UDF_UDF_NETPOL_H
#define UDF_UDF_NETPOL_H

#include <cjson/cJSON.h>
#include <stddef.h>

/* The operator's namespace when POD_NAMESPACE is not set (the plain manifests' namespace). */
#define UDF_NETPOL_OPERATOR_NS_DEFAULT "udf-system"
/* The most objects the manifest may hold. */
#define UDF_NETPOL_MAX 4

struct udf_netpol;

/*
 * Parses the embedded manifest. operator_ns: the namespace of the operator's pods; NULL means
 * $POD_NAMESPACE (the Deployment sets it from the downward API), else
 * UDF_NETPOL_OPERATOR_NS_DEFAULT. Returns 0, -ENOMEM, or -EINVAL when the manifest is not 1 to
 * UDF_NETPOL_MAX NetworkPolicy documents with distinct names and, in all of them, exactly one
 * ingress peer selecting a namespace by kubernetes.io/metadata.name (the operator's), or
 * operator_ns is not a DNS label.
 */
int udf_netpol_new(const char *operator_ns, struct udf_netpol **out);

/* The same from other YAML text (one or more documents); for tests. */
int udf_netpol_parse(const char *yaml, size_t len, const char *operator_ns,
		     struct udf_netpol **out);

void udf_netpol_free(struct udf_netpol *np);

/* The embedded manifest's text, NUL-terminated (*len without the NUL). Static storage. */
const char *udf_netpol_manifest_text(size_t *len);

/* The operator namespace the template was made for. Borrowed, lives as long as np. */
const char *udf_netpol_operator_namespace(const struct udf_netpol *np);

/* How many NetworkPolicy objects the sandbox policy is (the manifest's documents). */
int udf_netpol_count(const struct udf_netpol *np);

/* A new object of the i-th NetworkPolicy (manifest order) for namespace ns (caller frees it
 * with cJSON_Delete). Returns 0, -EINVAL when ns is not a DNS label, -ENOENT when i is not
 * below udf_netpol_count(), or -ENOMEM. */
int udf_netpol_object(const struct udf_netpol *np, int i, const char *ns, cJSON **out);

#endif
