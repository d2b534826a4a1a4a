#include "controllers/token.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>

#include "udf/function_pod.h"
#include "util/log.h"

static const struct kube_res res_secrets = {"api/v1", "secrets"};

static int owned_by(const cJSON *obj, const char *uid)
{
	const cJSON *ref;
	cJSON_ArrayForEach(ref, k8s_get(obj, "metadata.ownerReferences"))
	{
		const char *u = k8s_str(ref, "uid");
		if (u && uid && strcmp(u, uid) == 0)
			return 1;
	}
	return 0;
}

int token_ensure(struct kube_client *kube, const cJSON *fn, char *out, size_t len, int *requests)
{
	const char *ns = k8s_str(fn, "metadata.namespace");
	const char *name = k8s_str(fn, "metadata.name");
	char sname[300], token[FN_TOKEN_HEX + 1];
	cJSON *secret = NULL, *fresh = NULL;
	int rc = fn_token_secret_name(name, sname, sizeof(sname));
	if (rc < 0)
		return rc;
	/* Create first: a new function (the common case, and a query may be waiting) needs one
	 * request; an existing Secret answers 409 and is read. */
	rc = fn_token_generate(token);
	if (rc == 0)
		rc = fn_token_secret_build(fn, token, &fresh);
	if (rc == 0) {
		(*requests)++;
		rc = kube_create(kube, &res_secrets, ns, fresh, NULL);
	}
	if (rc == 0)
		snprintf(out, len, "%s", token);
	OPENSSL_cleanse(token, sizeof(token));
	if (fresh) {
		/* the object holds the token too */
		cJSON *sd = cJSON_GetObjectItemCaseSensitive(fresh, "stringData");
		cJSON *t = cJSON_GetObjectItemCaseSensitive(sd, "token");
		if (cJSON_IsString(t))
			OPENSSL_cleanse(t->valuestring, strlen(t->valuestring));
		cJSON_Delete(fresh);
	}
	if (rc != KUBE_EALREADY_EXISTS)
		return rc;
	(*requests)++;
	rc = kube_get_object(kube, &res_secrets, ns, sname, &secret);
	if (rc == 0 && cJSON_GetArraySize(k8s_get(secret, "metadata.ownerReferences")) > 0 &&
	    !owned_by(secret, k8s_str(fn, "metadata.uid"))) {
		/* An earlier function of this name left it and the garbage collector takes it
		 * soon: a token handed out now would vanish with it. */
		log_info("function",
			 "%s/%s: Secret %s belongs to an earlier function of this name; waiting "
			 "for the garbage collector",
			 ns, name, sname);
		rc = -EAGAIN;
	}
	if (rc == 0)
		rc = fn_token_from_secret(secret, out, len);
	cJSON_Delete(secret);
	if (rc == -EINVAL)
		log_warn("function", "%s/%s: Secret %s holds no token", ns, name, sname);
	return rc;
}
