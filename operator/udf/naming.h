/*
 * udf/naming: Kubernetes names for Databend's names, and the digests behind them.
 *
 * Databend names (tenants such as test_tenant, UDF names such as add_one) are not DNS
 * labels. A name here is a readable DNS-1123 form plus a short SHA-256 of the exact name,
 * so the mapping is injective (a_b and a-b get different names); the exact name is kept
 * beside the object (annotation or spec field) and compared on every use.
 *
 * Tenant namespaces are "<prefix><readable>-<10 hex>", e.g. prefix "udf-" and tenant
 * "test_tenant" give "udf-test-tenant-<sha256("test_tenant")[:10]>".
 *
 * Pure functions, thread-safe.
 */
#ifndef UDF_UDF_NAMING_H
#define UDF_UDF_NAMING_H

#include <stddef.h>

#define NAMING_TENANT_MAX 128 /* bytes of a tenant name */
#define NAMING_DNS_LABEL  63
#define NAMING_HASH_HEX	  10
#define NAMING_PREFIX_MAX 40

/* Lower-case hex SHA-256 of len bytes into out[65]. */
void naming_sha256_hex(const void *data, size_t len, char out[65]);

/* A check, not a predicate: 0 when tenant is usable: 1..128 bytes of printable ASCII. -EINVAL
 * otherwise, with a reason a SQL user can read in err. */
int naming_tenant_check(const char *tenant, char *err, size_t errlen);

/* 0 when prefix can start a DNS label: 1..40 of [a-z0-9-], starting with a letter. */
int naming_prefix_valid(const char *prefix);

/*
 * "<prefix><readable(exact)>-<hash>" as one DNS-1123 label of at most 63 bytes into
 * out[64]. hash_hex is the hex digest to use (its first NAMING_HASH_HEX characters), or NULL
 * to hash exact itself. readable(): lower-cased ASCII letters and digits, anything else
 * becomes one '-', trimmed, cut to fit. prefix must satisfy naming_prefix_valid().
 */
int naming_dns_label(const char *prefix, const char *exact, const char *hash_hex, char out[64]);

/* The namespace of a tenant (see above). */
int naming_tenant_namespace(const char *prefix, const char *tenant, char out[64]);

/*
 * The UdfFunction names, one scheme per Databend protocol, each a DNS label into out[64]:
 * - UdfService (protocol 1): "udf-<readable handler>-<content key[:10]>";
 * - ResourceService (protocol 2): "r-<content key[:10]>";
 * - WorkerService records (protocol 3): "w-<readable worker name>-<sha256(name)[:10]>".
 */
int naming_function_udf(const char *handler, const char *content_key, char out[64]);
int naming_function_resource(const char *content_key, char out[64]);
int naming_function_record(const char *worker_name, char out[64]);

#endif
