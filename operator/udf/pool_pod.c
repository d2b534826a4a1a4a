#include "udf/pool_pod.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "kube/rest.h"
#include "udf/labels.h"
#include "udf/naming.h"

/* What every sandbox pod has, whatever the pool says. Filled in by pool_pod_build(). */
static const char pod_template[] =
    "{\"apiVersion\":\"v1\",\"kind\":\"Pod\","
    "\"metadata\":{\"labels\":{},\"annotations\":{},\"ownerReferences\":[]},"
    "\"spec\":{"
    "\"automountServiceAccountToken\":false,\"enableServiceLinks\":false,"
    "\"restartPolicy\":\"Never\","
    /* longer than the worker's --drain-seconds (20) */
    "\"terminationGracePeriodSeconds\":25,"
    "\"securityContext\":{\"runAsNonRoot\":true,\"runAsUser\":10001,\"runAsGroup\":10001,"
    "\"fsGroup\":10001,\"seccompProfile\":{\"type\":\"RuntimeDefault\"}},"
    "\"containers\":[{\"name\":\"worker\","
    "\"args\":[\"--control-token-sha256-file=" POOL_TOKEN_DIR "/" POOL_TOKEN_FILE "\"],"
    "\"ports\":[{\"name\":\"control\",\"containerPort\":9000,\"protocol\":\"TCP\"},"
    "{\"name\":\"flight\",\"containerPort\":8815,\"protocol\":\"TCP\"},"
    "{\"name\":\"status\",\"containerPort\":8080,\"protocol\":\"TCP\"}],"
    "\"readinessProbe\":{\"httpGet\":{\"path\":\"/readyz\",\"port\":9000},"
    "\"periodSeconds\":1,\"failureThreshold\":1,\"timeoutSeconds\":1},"
    "\"livenessProbe\":{\"httpGet\":{\"path\":\"/healthz\",\"port\":9000},"
    "\"periodSeconds\":10},"
    "\"securityContext\":{\"readOnlyRootFilesystem\":true,\"allowPrivilegeEscalation\":false,"
    "\"runAsNonRoot\":true,\"capabilities\":{\"drop\":[\"ALL\"]},"
    "\"seccompProfile\":{\"type\":\"RuntimeDefault\"}},"
    "\"volumeMounts\":[{\"name\":\"app\",\"mountPath\":\"/app\"},"
    "{\"name\":\"tmp\",\"mountPath\":\"/tmp\"},"
    "{\"name\":\"control\",\"mountPath\":\"" POOL_TOKEN_DIR "\",\"readOnly\":true}]}],"
    /* The worker's two writable places (worker/README.md); both count against the pod's
     * ephemeral-storage limit. */
    "\"volumes\":[{\"name\":\"app\",\"emptyDir\":{\"sizeLimit\":\"512Mi\"}},"
    "{\"name\":\"tmp\",\"emptyDir\":{\"sizeLimit\":\"256Mi\"}},"
    "{\"name\":\"control\",\"downwardAPI\":{\"items\":[{\"path\":\"" POOL_TOKEN_FILE "\","
    "\"fieldRef\":{\"fieldPath\":\"metadata.annotations['" UDF_ANNO_CONTROL_TOKEN_SHA256
    "']\"}}]}}]}}";

/* The CRD's defaults, for a pool read before its CRD defaulted it (or created under an older
 * CRD). A request left out is the default capped at the limit, never the limit itself: an idle
 * pod uses little, and two cores must hold a pool of ten. An idle worker with its zygote is
 * about 80-100 MiB. */
static const char *const default_limits[][2] = {
    {"cpu", "1"}, {"memory", "512Mi"}, {"ephemeral-storage", "2Gi"}};
static const char *const default_requests[][2] = {{"cpu", "100m"}, {"memory", "128Mi"}};
#define DEFAULT_WORKDIR_SIZE "1Gi"
#define DEFAULT_TMP_SIZE     "256Mi"

int pool_pod_runtime_class(const cJSON *pool, const char *allowed, const char **rc)
{
	const char *want = k8s_str(pool, "spec.runtime.runtimeClassName");
	if (!want || !*want)
		want = POOL_DEFAULT_RUNTIME_CLASS;
	*rc = want;
	size_t n = strlen(want);
	for (const char *p = allowed ? allowed : POOL_DEFAULT_RUNTIME_CLASS; *p;) {
		const char *end = strchr(p, ',');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		if (len == n && memcmp(p, want, n) == 0)
			return 0;
		if (!end)
			break;
		p = end + 1;
	}
	return -EPERM;
}

const char *pool_pod_image(const cJSON *pool, const char *default_image)
{
	const char *img = k8s_str(pool, "spec.runtime.image");
	if (img && *img)
		return img;
	return default_image && *default_image ? default_image : POOL_DEFAULT_IMAGE;
}

int pool_pod_name(const char *pool, char out[POOL_POD_NAME_MAX + 1])
{
	static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
	unsigned char rnd[5];
	if (strlen(pool) + 6 > POOL_POD_NAME_MAX)
		return -ENAMETOOLONG;
	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
		return -errno ? -errno : -EIO;
	char suffix[6];
	for (size_t i = 0; i < sizeof(rnd); i++)
		suffix[i] = alphabet[rnd[i] % 36]; /* 256 % 36 = 4: a bias nobody can use */
	suffix[5] = '\0';
	snprintf(out, POOL_POD_NAME_MAX + 1, "%s-%s", pool, suffix);
	return 0;
}

int pool_pod_selector(const char *pool, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%s=%s,%s=%s,%s=%s", UDF_LABEL_MANAGED_BY, UDF_MANAGER,
			 UDF_LABEL_POOL, pool, UDF_LABEL_STATE, UDF_STATE_IDLE);
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

static void hex(const unsigned char *in, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * n] = '\0';
}

int pool_pod_token(const unsigned char key[POOL_KEY_BYTES], const char *pod_name,
		   char token[POOL_TOKEN_HEX + 1])
{
	unsigned char mac[32];
	unsigned int maclen = 0;
	if (!HMAC(EVP_sha256(), key, POOL_KEY_BYTES, (const unsigned char *)pod_name,
		  strlen(pod_name), mac, &maclen) ||
	    maclen != sizeof(mac))
		return -EIO;
	hex(mac, sizeof(mac), token);
	return 0;
}

void pool_pod_token_sha256(const char *token, char out[65])
{
	naming_sha256_hex(token, strlen(token), out);
}

/* The pool as the controller ownerReference of what it makes. */
static cJSON *owner_ref(const cJSON *pool, const char *name, const char *uid)
{
	cJSON *ref = cJSON_CreateObject();
	if (!ref)
		return NULL;
	cJSON_AddStringToObject(ref, "apiVersion", UDF_API_VERSION);
	cJSON_AddStringToObject(ref, "kind", UDF_KIND_POOL);
	cJSON_AddStringToObject(ref, "name", name);
	cJSON_AddStringToObject(ref, "uid", uid);
	cJSON_AddBoolToObject(ref, "controller", 1);
	cJSON_AddBoolToObject(ref, "blockOwnerDeletion", 1);
	(void)pool;
	return ref;
}

/* A resource quantity ("100m", "1.5", "512Mi", "2G", "1e3") as a number; -1 when unreadable. */
static double quantity(const cJSON *q)
{
	static const struct {
		const char *suffix;
		double factor;
	} units[] = {{"Ki", 1024.0},
		     {"Mi", 1048576.0},
		     {"Gi", 1073741824.0},
		     {"Ti", 1099511627776.0},
		     {"Pi", 1125899906842624.0},
		     {"Ei", 1152921504606846976.0},
		     {"m", 1e-3},
		     {"k", 1e3},
		     {"M", 1e6},
		     {"G", 1e9},
		     {"T", 1e12},
		     {"P", 1e15},
		     {"E", 1e18}};
	if (cJSON_IsNumber(q))
		return q->valuedouble;
	if (!cJSON_IsString(q))
		return -1;
	char *end = NULL;
	double v = strtod(q->valuestring, &end);
	if (end == q->valuestring)
		return -1;
	if (!*end)
		return v;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
		if (strcmp(end, units[i].suffix) == 0)
			return v * units[i].factor;
	return -1;
}

/* requests/limits: the pool's, then the defaults for what it leaves out. */
static cJSON *resources(const cJSON *pool)
{
	const cJSON *spec_req = k8s_get(pool, "spec.runtime.resources.requests");
	const cJSON *spec_lim = k8s_get(pool, "spec.runtime.resources.limits");
	cJSON *res = cJSON_CreateObject();
	cJSON *req = cJSON_AddObjectToObject(res, "requests");
	cJSON *lim = cJSON_AddObjectToObject(res, "limits");
	if (!req || !lim) {
		cJSON_Delete(res);
		return NULL;
	}
	const cJSON *it;
	cJSON_ArrayForEach(it, spec_req)
	{
		cJSON_AddItemToObject(req, it->string, cJSON_Duplicate(it, 1));
	}
	cJSON_ArrayForEach(it, spec_lim)
	{
		cJSON_AddItemToObject(lim, it->string, cJSON_Duplicate(it, 1));
	}
	for (size_t i = 0; i < sizeof(default_limits) / sizeof(default_limits[0]); i++) {
		const char *r = default_limits[i][0];
		const cJSON *ur = cJSON_GetObjectItemCaseSensitive(spec_req, r);
		if (cJSON_GetObjectItemCaseSensitive(lim, r))
			continue;
		/* A request alone: its limit is the default, or the request when that is more. */
		cJSON *dl = cJSON_CreateString(default_limits[i][1]);
		if (ur && dl && quantity(ur) > quantity(dl)) {
			cJSON_Delete(dl);
			dl = cJSON_Duplicate(ur, 1);
		}
		cJSON_AddItemToObject(lim, r, dl);
	}
	for (size_t i = 0; i < sizeof(default_requests) / sizeof(default_requests[0]); i++) {
		const char *r = default_requests[i][0];
		if (cJSON_GetObjectItemCaseSensitive(req, r))
			continue;
		cJSON *dr = cJSON_CreateString(default_requests[i][1]);
		const cJSON *l = cJSON_GetObjectItemCaseSensitive(lim, r);
		if (dr && l && quantity(l) >= 0 && quantity(l) < quantity(dr)) {
			cJSON_Delete(dr);
			dr = cJSON_Duplicate(l, 1);
		}
		cJSON_AddItemToObject(req, r, dr);
	}
	return res;
}

/* The sizeLimit of one of the worker's emptyDirs, from the pool's spec or the default. */
static int size_limit(cJSON *pod, const char *volume, const char *value)
{
	cJSON *v;
	cJSON_ArrayForEach(v, k8s_get(pod, "spec.volumes"))
	{
		const char *n = k8s_str(v, "name");
		if (n && strcmp(n, volume) == 0) {
			cJSON *ed = cJSON_GetObjectItemCaseSensitive(v, "emptyDir");
			return cJSON_ReplaceItemInObject(ed, "sizeLimit",
							 cJSON_CreateString(value));
		}
	}
	return 0;
}

int pool_pod_build(const cJSON *pool, const char *image, const char *runtime_class,
		   const char *pod_name, const char *token_sha256, cJSON **out)
{
	const char *name = k8s_str(pool, "metadata.name");
	const char *ns = k8s_str(pool, "metadata.namespace");
	const char *uid = k8s_str(pool, "metadata.uid");
	*out = NULL;
	if (!name || !ns || !uid)
		return -EINVAL;
	cJSON *pod = cJSON_Parse(pod_template);
	if (!pod)
		return -ENOMEM;
	cJSON *meta = cJSON_GetObjectItemCaseSensitive(pod, "metadata");
	cJSON *spec = cJSON_GetObjectItemCaseSensitive(pod, "spec");
	cJSON *ctr = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(spec, "containers"), 0);
	cJSON *labels = cJSON_GetObjectItemCaseSensitive(meta, "labels");
	cJSON *annos = cJSON_GetObjectItemCaseSensitive(meta, "annotations");
	cJSON *refs = cJSON_GetObjectItemCaseSensitive(meta, "ownerReferences");
	int ok = 1;

	ok &= !!cJSON_AddStringToObject(meta, "name", pod_name);
	ok &= !!cJSON_AddStringToObject(meta, "namespace", ns);
	ok &= !!cJSON_AddStringToObject(labels, UDF_LABEL_NAME, UDF_WORKER_APP);
	ok &= !!cJSON_AddStringToObject(labels, UDF_LABEL_MANAGED_BY, UDF_MANAGER);
	ok &= !!cJSON_AddStringToObject(labels, UDF_LABEL_POOL, name);
	ok &= !!cJSON_AddStringToObject(labels, UDF_LABEL_STATE, UDF_STATE_IDLE);
	ok &= !!cJSON_AddStringToObject(annos, UDF_ANNO_CONTROL_TOKEN_SHA256, token_sha256);
	cJSON *ref = owner_ref(pool, name, uid);
	ok &= ref && cJSON_AddItemToArray(refs, ref);

	ok &= !!cJSON_AddStringToObject(spec, "runtimeClassName", runtime_class);
	const cJSON *sel = k8s_get(pool, "spec.runtime.nodeSelector");
	if (cJSON_IsObject(sel))
		ok &= cJSON_AddItemToObject(spec, "nodeSelector", cJSON_Duplicate(sel, 1));
	const cJSON *tol = k8s_get(pool, "spec.runtime.tolerations");
	if (cJSON_IsArray(tol))
		ok &= cJSON_AddItemToObject(spec, "tolerations", cJSON_Duplicate(tol, 1));

	ok &= !!cJSON_AddStringToObject(ctr, "image", image);
	const char *pull = k8s_str(pool, "spec.runtime.imagePullPolicy");
	if (pull && *pull)
		ok &= !!cJSON_AddStringToObject(ctr, "imagePullPolicy", pull);
	cJSON *res = resources(pool);
	ok &= res && cJSON_AddItemToObject(ctr, "resources", res);
	const char *work = k8s_str(pool, "spec.runtime.workDirSizeLimit");
	const char *tmp = k8s_str(pool, "spec.runtime.tmpSizeLimit");
	ok &= size_limit(pod, "app", work && *work ? work : DEFAULT_WORKDIR_SIZE);
	ok &= size_limit(pod, "tmp", tmp && *tmp ? tmp : DEFAULT_TMP_SIZE);
	if (!ok) {
		cJSON_Delete(pod);
		return -ENOMEM;
	}
	*out = pod;
	return 0;
}

int pool_key_secret_name(const char *pool, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%s-control-key", pool);
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

int pool_key_secret_build(const cJSON *pool, const unsigned char key[POOL_KEY_BYTES], cJSON **out)
{
	const char *name = k8s_str(pool, "metadata.name");
	const char *ns = k8s_str(pool, "metadata.namespace");
	const char *uid = k8s_str(pool, "metadata.uid");
	char sname[POOL_POD_NAME_MAX + 1];
	unsigned char b64[4 * ((POOL_KEY_BYTES + 2) / 3) + 1];
	*out = NULL;
	if (!name || !ns || !uid)
		return -EINVAL;
	if (pool_key_secret_name(name, sname, sizeof(sname)) < 0)
		return -ENAMETOOLONG;
	EVP_EncodeBlock(b64, key, POOL_KEY_BYTES);

	cJSON *s = cJSON_CreateObject();
	cJSON *meta = cJSON_AddObjectToObject(s, "metadata");
	cJSON *labels = cJSON_AddObjectToObject(meta, "labels");
	cJSON *refs = cJSON_AddArrayToObject(meta, "ownerReferences");
	cJSON *data = cJSON_AddObjectToObject(s, "data");
	cJSON *ref = owner_ref(pool, name, uid);
	int ok = s && meta && labels && refs && data && ref;
	ok = ok && cJSON_AddItemToArray(refs, ref);
	if (!ok)
		cJSON_Delete(ref);
	ok = ok && cJSON_AddStringToObject(s, "apiVersion", "v1") &&
	     cJSON_AddStringToObject(s, "kind", "Secret") &&
	     cJSON_AddStringToObject(s, "type", "Opaque") &&
	     cJSON_AddStringToObject(meta, "name", sname) &&
	     cJSON_AddStringToObject(meta, "namespace", ns) &&
	     cJSON_AddStringToObject(labels, UDF_LABEL_MANAGED_BY, UDF_MANAGER) &&
	     cJSON_AddStringToObject(labels, UDF_LABEL_POOL, name) &&
	     cJSON_AddStringToObject(data, "key", (const char *)b64);
	if (!ok) {
		cJSON_Delete(s);
		return -ENOMEM;
	}
	*out = s;
	return 0;
}

int pool_key_from_secret(const cJSON *secret, unsigned char key[POOL_KEY_BYTES])
{
	const char *b64 = k8s_str(secret, "data.key");
	unsigned char buf[64];
	size_t n = b64 ? strlen(b64) : 0;
	/* 32 bytes are 44 base64 characters, one '=' of padding. */
	if (n != 4 * ((POOL_KEY_BYTES + 2) / 3) || b64[n - 1] != '=' || b64[n - 2] == '=')
		return -EINVAL;
	if (EVP_DecodeBlock(buf, (const unsigned char *)b64, (int)n) != POOL_KEY_BYTES + 1)
		return -EINVAL;
	memcpy(key, buf, POOL_KEY_BYTES);
	OPENSSL_cleanse(buf, sizeof(buf));
	return 0;
}

int pool_key_generate(unsigned char key[POOL_KEY_BYTES])
{
	ssize_t n = getrandom(key, POOL_KEY_BYTES, 0);
	if (n != POOL_KEY_BYTES)
		return n < 0 ? -errno : -EIO;
	return 0;
}
