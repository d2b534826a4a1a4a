#include "udf/function_pod.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <openssl/crypto.h>

#include "kube/rest.h"
#include "udf/labels.h"
#include "udf/naming.h"

const char *fn_tenant(const cJSON *fn, const cJSON *ns_obj)
{
	const char *t = k8s_str(fn, "spec.tenant");
	if (t && *t)
		return t;
	t = ns_obj ? k8s_annotation(ns_obj, UDF_ANNO_TENANT) : NULL;
	if (t && *t)
		return t;
	return k8s_str(fn, "metadata.namespace");
}

int fn_tenant_label(const char *tenant, char out[64])
{
	return naming_dns_label("t-", tenant, NULL, out);
}

/* The spec fields the hash covers besides imports, in the hash's order: the runtime payload
 * the cache does not keep (fn_cache_trim). */
static const char *const payload_fields[] = {
    "handler", "inputTypes", "resultType", "code", "packages", "script", "env", "runtimeVersion"};
#define N_PAYLOAD_FIELDS (sizeof(payload_fields) / sizeof(payload_fields[0]))

/* The digest of a trimmed object, or NULL for an object as served. */
static const cJSON *digest(const cJSON *fn)
{
	const cJSON *d = cJSON_GetObjectItemCaseSensitive(fn, FN_CACHE_DIGEST);
	return cJSON_IsObject(d) ? d : NULL;
}

int fn_runs_code(const cJSON *fn)
{
	const cJSON *d = digest(fn);
	if (d)
		return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(d, "runsCode"));
	return k8s_str(fn, "spec.script") != NULL || k8s_str(fn, "spec.handler") != NULL;
}

int fn_import_urls_hash(const cJSON *fn, char out[65])
{
	const cJSON *d = digest(fn);
	out[0] = '\0';
	if (d) {
		const char *h = k8s_str(d, "importUrls");
		if (h && strlen(h) != 64)
			return -EINVAL;
		if (h)
			memcpy(out, h, 65);
		return 0;
	}
	const char *urls = k8s_annotation(fn, UDF_ANNO_IMPORT_URLS);
	if (urls)
		naming_sha256_hex(urls, strlen(urls), out);
	return 0;
}

/* Copies src[key] into dst (nothing when absent). */
static int copy_field(cJSON *dst, const cJSON *src, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(src, key);
	if (!v)
		return 1;
	cJSON *d = cJSON_Duplicate(v, 1);
	return d && cJSON_AddItemToObject(dst, key, d);
}

int fn_spec_hash(const cJSON *fn, char out[FN_SPEC_HASH_HEX + 1])
{
	const cJSON *d = digest(fn);
	if (d) {
		const char *kept = k8s_str(d, "specHash");
		if (!kept || strlen(kept) != FN_SPEC_HASH_HEX)
			return -EINVAL;
		memcpy(out, kept, FN_SPEC_HASH_HEX + 1);
		return 0;
	}
	const cJSON *spec = k8s_get(fn, "spec");
	cJSON *h = cJSON_CreateObject();
	cJSON *imps = cJSON_AddArrayToObject(h, "imports");
	int ok = imps != NULL;
	for (size_t i = 0; ok && i < N_PAYLOAD_FIELDS; i++)
		ok = copy_field(h, spec, payload_fields[i]);
	const cJSON *im;
	cJSON_ArrayForEach(im, k8s_get(fn, "spec.imports"))
	{
		cJSON *o = cJSON_CreateObject();
		ok = ok && o && cJSON_AddItemToArray(imps, o);
		const char *loc = k8s_str(im, "location"), *tag = k8s_str(im, "tag");
		ok = ok && cJSON_AddStringToObject(o, "location", loc ? loc : "") &&
		     cJSON_AddStringToObject(o, "tag", tag ? tag : "");
	}
	/* cJSON keeps insertion order, so equal specs print equal text. env's keys come in the
	 * API server's order, which is stable for an object read back. */
	char *text = ok ? cJSON_PrintUnformatted(h) : NULL;
	cJSON_Delete(h);
	if (!text)
		return -ENOMEM;
	char full[65];
	naming_sha256_hex(text, strlen(text), full);
	free(text);
	memcpy(out, full, FN_SPEC_HASH_HEX);
	out[FN_SPEC_HASH_HEX] = '\0';
	return 0;
}

/* Every member key of obj: a JSON object may name a key twice, and cJSON keeps both. */
static void delete_all(cJSON *obj, const char *key)
{
	while (cJSON_IsObject(obj) && cJSON_GetObjectItemCaseSensitive(obj, key))
		cJSON_DeleteItemFromObjectCaseSensitive(obj, key);
}

int fn_cache_trim(cJSON *fn)
{
	char hash[FN_SPEC_HASH_HEX + 1], urls[65];
	if (!cJSON_IsObject(fn))
		return -EINVAL;
	/* Only ever computed from the payload: a digest the object came with is not trusted. */
	delete_all(fn, FN_CACHE_DIGEST);
	int runs = fn_runs_code(fn);
	int rc = fn_spec_hash(fn, hash);
	if (rc == 0)
		rc = fn_import_urls_hash(fn, urls);
	if (rc < 0)
		return rc;
	cJSON *d = cJSON_CreateObject();
	int ok = d && cJSON_AddStringToObject(d, "specHash", hash) &&
		 cJSON_AddBoolToObject(d, "runsCode", runs) &&
		 (!urls[0] || cJSON_AddStringToObject(d, "importUrls", urls)) &&
		 cJSON_AddItemToObject(fn, FN_CACHE_DIGEST, d);
	if (!ok) {
		cJSON_Delete(d);
		return -ENOMEM;
	}
	cJSON *part;
	cJSON_ArrayForEach(part, fn)
	{
		if (part->string && strcmp(part->string, "spec") == 0) {
			for (size_t i = 0; i < N_PAYLOAD_FIELDS; i++)
				delete_all(part, payload_fields[i]);
			delete_all(part, "imports");
		} else if (part->string && strcmp(part->string, "metadata") == 0) {
			delete_all(cJSON_GetObjectItemCaseSensitive(part, "annotations"),
				   UDF_ANNO_IMPORT_URLS);
		}
	}
	return 0;
}

int fn_served_matches(const cJSON *cached, const cJSON *served)
{
	char a[FN_SPEC_HASH_HEX + 1], b[FN_SPEC_HASH_HEX + 1];
	const char *ua = k8s_str(cached, "metadata.uid"), *ub = k8s_str(served, "metadata.uid");
	if (!ua || !ub || fn_spec_hash(cached, a) < 0 || fn_spec_hash(served, b) < 0)
		return -EINVAL;
	return strcmp(ua, ub) == 0 && strcmp(a, b) == 0 ? 0 : -ESTALE;
}

int fn_token_secret_name(const char *fn_name, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%s" FN_TOKEN_SUFFIX, fn_name);
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

int fn_token_generate(char out[FN_TOKEN_HEX + 1])
{
	static const char hexd[] = "0123456789abcdef";
	unsigned char rnd[FN_TOKEN_BYTES];
	ssize_t n = getrandom(rnd, sizeof(rnd), 0);
	if (n != (ssize_t)sizeof(rnd))
		return n < 0 ? -errno : -EIO;
	for (size_t i = 0; i < sizeof(rnd); i++) {
		out[2 * i] = hexd[rnd[i] >> 4];
		out[2 * i + 1] = hexd[rnd[i] & 15];
	}
	out[FN_TOKEN_HEX] = '\0';
	OPENSSL_cleanse(rnd, sizeof(rnd));
	return 0;
}

int fn_token_secret_build(const cJSON *fn, const char *token, cJSON **out)
{
	const char *name = k8s_str(fn, "metadata.name");
	const char *ns = k8s_str(fn, "metadata.namespace");
	const char *uid = k8s_str(fn, "metadata.uid");
	char sname[300];
	if (!name || !ns || !uid)
		return -EINVAL;
	if (fn_token_secret_name(name, sname, sizeof(sname)) < 0)
		return -ENAMETOOLONG;
	cJSON *s = cJSON_CreateObject();
	cJSON *md = cJSON_AddObjectToObject(s, "metadata");
	cJSON *labels = cJSON_AddObjectToObject(md, "labels");
	cJSON *refs = cJSON_AddArrayToObject(md, "ownerReferences");
	cJSON *ref = cJSON_CreateObject();
	cJSON *data = cJSON_AddObjectToObject(s, "stringData");
	int ok = md && labels && refs && ref && data && cJSON_AddItemToArray(refs, ref);
	if (!ok)
		cJSON_Delete(ref);
	ok = ok && cJSON_AddStringToObject(s, "apiVersion", "v1") &&
	     cJSON_AddStringToObject(s, "kind", "Secret") &&
	     cJSON_AddStringToObject(s, "type", "Opaque") &&
	     cJSON_AddStringToObject(md, "name", sname) &&
	     cJSON_AddStringToObject(md, "namespace", ns) &&
	     cJSON_AddStringToObject(labels, UDF_LABEL_MANAGED_BY, UDF_MANAGER) &&
	     cJSON_AddStringToObject(ref, "apiVersion", UDF_API_VERSION) &&
	     cJSON_AddStringToObject(ref, "kind", UDF_KIND_FN) &&
	     cJSON_AddStringToObject(ref, "name", name) &&
	     cJSON_AddStringToObject(ref, "uid", uid) &&
	     cJSON_AddBoolToObject(ref, "controller", 1) &&
	     cJSON_AddBoolToObject(ref, "blockOwnerDeletion", 1) &&
	     cJSON_AddStringToObject(data, "token", token);
	if (!ok) {
		cJSON_Delete(s);
		return -ENOMEM;
	}
	*out = s;
	return 0;
}

static int b64val(int c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

int fn_token_from_secret(const cJSON *secret, char *out, size_t len)
{
	const char *b64 = k8s_str(secret, "data.token");
	size_t o = 0;
	unsigned acc = 0;
	int bits = 0;
	if (!b64 || len == 0)
		return -EINVAL;
	for (const char *p = b64; *p && *p != '='; p++) {
		int v = b64val((unsigned char)*p);
		if (v < 0)
			return -EINVAL;
		acc = (acc << 6) | (unsigned)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (o + 1 >= len)
				return -EINVAL;
			out[o++] = (char)((acc >> bits) & 0xff);
		}
	}
	out[o] = '\0';
	/* a newline a person left when writing the Secret by hand is not part of the token */
	while (o > 0 && (out[o - 1] == '\n' || out[o - 1] == '\r'))
		out[--o] = '\0';
	return o ? 0 : -EINVAL;
}

static int set_str(cJSON *obj, const char *key, const char *value)
{
	cJSON_DeleteItemFromObjectCaseSensitive(obj, key);
	return cJSON_AddStringToObject(obj, key, value) != NULL;
}

static cJSON *object_at(cJSON *obj, const char *key)
{
	cJSON *o = cJSON_GetObjectItemCaseSensitive(obj, key);
	if (cJSON_IsObject(o))
		return o;
	cJSON_DeleteItemFromObjectCaseSensitive(obj, key);
	return cJSON_AddObjectToObject(obj, key);
}

int fn_claim_pod(const cJSON *pod, const cJSON *fn, const char *pool_uid, const char *tenant_label,
		 const char *spec_hash, const char *launch_type, cJSON **out)
{
	const char *fns = k8s_str(fn, "metadata.namespace");
	const char *fname = k8s_str(fn, "metadata.name");
	const char *fuid = k8s_str(fn, "metadata.uid");
	char fkey[400];
	if (!fns || !fname || !fuid)
		return -EINVAL;
	snprintf(fkey, sizeof(fkey), "%s/%s", fns, fname);
	cJSON *p = cJSON_Duplicate(pod, 1);
	cJSON *md = p ? object_at(p, "metadata") : NULL;
	cJSON *labels = md ? object_at(md, "labels") : NULL;
	cJSON *annos = md ? object_at(md, "annotations") : NULL;
	if (!labels || !annos) {
		cJSON_Delete(p);
		return -ENOMEM;
	}
	cJSON *refs = cJSON_GetObjectItemCaseSensitive(md, "ownerReferences");
	for (int i = cJSON_GetArraySize(refs) - 1; i >= 0; i--) {
		const cJSON *r = cJSON_GetArrayItem(refs, i);
		const char *uid = k8s_str(r, "uid");
		if (pool_uid && uid && strcmp(uid, pool_uid) == 0)
			cJSON_DeleteItemFromArray(refs, i);
	}
	if (refs && cJSON_GetArraySize(refs) == 0)
		cJSON_DeleteItemFromObjectCaseSensitive(md, "ownerReferences");
	int ok = set_str(labels, UDF_LABEL_STATE, UDF_STATE_CLAIMED) &&
		 set_str(labels, UDF_LABEL_FUNCTION_UID, fuid) &&
		 set_str(labels, UDF_LABEL_TENANT, tenant_label) &&
		 set_str(annos, UDF_ANNO_FUNCTION, fkey) &&
		 set_str(annos, UDF_ANNO_SPEC_HASH, spec_hash) &&
		 set_str(annos, UDF_ANNO_LAUNCH_TYPE, launch_type);
	if (!ok) {
		cJSON_Delete(p);
		return -ENOMEM;
	}
	*out = p;
	return 0;
}

int fn_claim_patch(const cJSON *pod, const cJSON *fn, const char *pool_uid,
		   const char *tenant_label, const char *spec_hash, const char *launch_type,
		   cJSON **out)
{
	cJSON *claimed = NULL;
	const char *rv = k8s_str(pod, "metadata.resourceVersion");
	if (!rv)
		return -EINVAL;
	int rc = fn_claim_pod(pod, fn, pool_uid, tenant_label, spec_hash, launch_type, &claimed);
	if (rc < 0)
		return rc;
	cJSON *md = cJSON_GetObjectItemCaseSensitive(claimed, "metadata");
	cJSON *p = cJSON_CreateObject();
	cJSON *pmd = cJSON_AddObjectToObject(p, "metadata");
	cJSON *refs = cJSON_DetachItemFromObjectCaseSensitive(md, "ownerReferences");
	int ok =
	    pmd && cJSON_AddStringToObject(pmd, "resourceVersion", rv) &&
	    cJSON_AddItemToObject(pmd, "labels",
				  cJSON_DetachItemFromObjectCaseSensitive(md, "labels")) &&
	    cJSON_AddItemToObject(pmd, "annotations",
				  cJSON_DetachItemFromObjectCaseSensitive(md, "annotations")) &&
	    cJSON_AddItemToObject(pmd, "ownerReferences", refs ? refs : cJSON_CreateArray());
	cJSON_Delete(claimed);
	if (!ok) {
		cJSON_Delete(p);
		return -ENOMEM;
	}
	*out = p;
	return 0;
}

/* spec field (camelCase) -> the worker's name */
static const char *const spec_map[][2] = {
    {"handler", "handler"}, {"inputTypes", "input_types"}, {"resultType", "result_type"},
    {"code", "code"},	    {"packages", "packages"},	   {"runtimeVersion", "runtime_version"},
};

int fn_specialize_body(const cJSON *fn, const char *tenant, const char *token,
		       const cJSON *url_overrides, char **out)
{
	const cJSON *spec = k8s_get(fn, "spec");
	const char *fname = k8s_str(fn, "spec.functionName");
	if (!fname || !*fname)
		fname = k8s_str(fn, "metadata.name");
	cJSON *b = cJSON_CreateObject();
	int ok = b && cJSON_AddStringToObject(b, "function", fname) &&
		 cJSON_AddStringToObject(b, "tenant", tenant) &&
		 cJSON_AddStringToObject(b, "token", token);
	const cJSON *env = cJSON_GetObjectItemCaseSensitive(spec, "env");
	ok = ok &&
	     cJSON_AddItemToObject(b, "env", env ? cJSON_Duplicate(env, 1) : cJSON_CreateObject());
	const char *script = k8s_str(fn, "spec.script");
	if (ok && script) {
		ok = cJSON_AddStringToObject(b, "script", script) != NULL;
	} else if (ok) {
		cJSON *s = cJSON_AddObjectToObject(b, "spec");
		ok = s != NULL;
		for (size_t i = 0; ok && i < sizeof(spec_map) / sizeof(spec_map[0]); i++) {
			const cJSON *v = cJSON_GetObjectItemCaseSensitive(spec, spec_map[i][0]);
			if (v)
				ok =
				    cJSON_AddItemToObject(s, spec_map[i][1], cJSON_Duplicate(v, 1));
		}
		if (ok && !cJSON_GetObjectItemCaseSensitive(s, "input_types"))
			ok = cJSON_AddArrayToObject(s, "input_types") != NULL;
		const cJSON *imports = cJSON_GetObjectItemCaseSensitive(spec, "imports");
		if (ok && imports) {
			cJSON *imps = cJSON_Duplicate(imports, 1);
			ok = imps && cJSON_AddItemToObject(s, "imports", imps);
			cJSON *im, *list = ok ? imps : NULL;
			cJSON_ArrayForEach(im, list)
			{
				const char *loc = k8s_str(im, "location");
				const cJSON *fresh =
				    loc ? cJSON_GetObjectItemCaseSensitive(url_overrides, loc)
					: NULL;
				if (cJSON_IsString(fresh) && fresh->valuestring[0])
					ok = ok && set_str(im, "url", fresh->valuestring);
			}
		}
	}
	char *text = ok ? cJSON_PrintUnformatted(b) : NULL;
	cJSON_Delete(b);
	if (!text)
		return -ENOMEM;
	*out = text;
	return 0;
}

/* metadata with name, namespace, managed-by label and fn as controlling owner. */
static cJSON *owned_metadata(cJSON *obj, const cJSON *fn, const char *name)
{
	cJSON *md = cJSON_AddObjectToObject(obj, "metadata");
	cJSON *labels = cJSON_AddObjectToObject(md, "labels");
	cJSON *refs = cJSON_AddArrayToObject(md, "ownerReferences");
	cJSON *ref = cJSON_CreateObject();
	int ok = md && labels && refs && ref && cJSON_AddItemToArray(refs, ref);
	if (!ok)
		cJSON_Delete(ref);
	ok = ok && cJSON_AddStringToObject(md, "name", name) &&
	     cJSON_AddStringToObject(md, "namespace", k8s_str(fn, "metadata.namespace")) &&
	     cJSON_AddStringToObject(labels, UDF_LABEL_MANAGED_BY, UDF_MANAGER) &&
	     cJSON_AddStringToObject(ref, "apiVersion", UDF_API_VERSION) &&
	     cJSON_AddStringToObject(ref, "kind", UDF_KIND_FN) &&
	     cJSON_AddStringToObject(ref, "name", k8s_str(fn, "metadata.name")) &&
	     cJSON_AddStringToObject(ref, "uid", k8s_str(fn, "metadata.uid")) &&
	     cJSON_AddBoolToObject(ref, "controller", 1) &&
	     cJSON_AddBoolToObject(ref, "blockOwnerDeletion", 1);
	return ok ? labels : NULL;
}

int fn_service_build(const cJSON *fn, cJSON **out)
{
	const char *name = k8s_str(fn, "metadata.name");
	if (!name || !k8s_str(fn, "metadata.namespace") || !k8s_str(fn, "metadata.uid"))
		return -EINVAL;
	cJSON *s = cJSON_CreateObject();
	cJSON *spec = NULL, *ports = NULL, *port = cJSON_CreateObject();
	int ok = s && port && cJSON_AddStringToObject(s, "apiVersion", "v1") &&
		 cJSON_AddStringToObject(s, "kind", "Service") && owned_metadata(s, fn, name) &&
		 (spec = cJSON_AddObjectToObject(s, "spec")) &&
		 (ports = cJSON_AddArrayToObject(spec, "ports")) &&
		 cJSON_AddItemToArray(ports, port);
	if (!ok)
		cJSON_Delete(port);
	ok = ok && cJSON_AddStringToObject(port, "name", "flight") &&
	     cJSON_AddNumberToObject(port, "port", FN_FLIGHT_PORT) &&
	     cJSON_AddNumberToObject(port, "targetPort", FN_FLIGHT_PORT) &&
	     cJSON_AddStringToObject(port, "protocol", "TCP");
	if (!ok) {
		cJSON_Delete(s);
		return -ENOMEM;
	}
	*out = s;
	return 0;
}

int fn_endpointslice_build(const cJSON *fn, const char *const *ips, const int *ready, size_t n,
			   cJSON **out)
{
	const char *name = k8s_str(fn, "metadata.name");
	char sname[300];
	if (!name || !k8s_str(fn, "metadata.namespace") || !k8s_str(fn, "metadata.uid"))
		return -EINVAL;
	if (snprintf(sname, sizeof(sname), "%s-flight", name) >= (int)sizeof(sname))
		return -ENAMETOOLONG;
	cJSON *s = cJSON_CreateObject();
	cJSON *labels = s ? owned_metadata(s, fn, sname) : NULL;
	cJSON *eps = NULL, *ports = NULL, *port = cJSON_CreateObject();
	int ok = labels && port &&
		 cJSON_AddStringToObject(s, "apiVersion", "discovery.k8s.io/v1") &&
		 cJSON_AddStringToObject(s, "kind", "EndpointSlice") &&
		 cJSON_AddStringToObject(labels, "kubernetes.io/service-name", name) &&
		 /* so the EndpointSlice controller leaves it to us */
		 cJSON_AddStringToObject(labels, "endpointslice.kubernetes.io/managed-by",
					 UDF_MANAGER) &&
		 cJSON_AddStringToObject(s, "addressType", "IPv4") &&
		 (eps = cJSON_AddArrayToObject(s, "endpoints")) &&
		 (ports = cJSON_AddArrayToObject(s, "ports")) && cJSON_AddItemToArray(ports, port);
	if (!ok)
		cJSON_Delete(port);
	ok = ok && cJSON_AddStringToObject(port, "name", "flight") &&
	     cJSON_AddNumberToObject(port, "port", FN_FLIGHT_PORT) &&
	     cJSON_AddStringToObject(port, "protocol", "TCP");
	for (size_t i = 0; ok && i < n; i++) {
		cJSON *ep = cJSON_CreateObject();
		if (!ep || !cJSON_AddItemToArray(eps, ep)) {
			cJSON_Delete(ep);
			ok = 0;
			break;
		}
		cJSON *addrs = cJSON_AddArrayToObject(ep, "addresses");
		cJSON *cond = cJSON_AddObjectToObject(ep, "conditions");
		ok = addrs && cond && cJSON_AddItemToArray(addrs, cJSON_CreateString(ips[i])) &&
		     cJSON_AddBoolToObject(cond, "ready", ready[i]);
	}
	if (!ok) {
		cJSON_Delete(s);
		return -ENOMEM;
	}
	*out = s;
	return 0;
}
