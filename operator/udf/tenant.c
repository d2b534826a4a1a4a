#include "udf/tenant.h"

#include <errno.h>
#include <string.h>

#include "kube/rest.h"
#include "udf/labels.h"

int tenant_namespace_object(const char *ns, const char *tenant, cJSON **out)
{
	cJSON *obj = cJSON_CreateObject();
	cJSON *md = cJSON_AddObjectToObject(obj, "metadata");
	cJSON *labels = cJSON_AddObjectToObject(md, "labels");
	cJSON *annos = cJSON_AddObjectToObject(md, "annotations");
	int ok =
	    obj && md && labels && annos && cJSON_AddStringToObject(obj, "apiVersion", "v1") &&
	    cJSON_AddStringToObject(obj, "kind", "Namespace") &&
	    cJSON_AddStringToObject(md, "name", ns) &&
	    cJSON_AddStringToObject(labels, UDF_LABEL_MANAGED_BY, UDF_MANAGER) &&
	    cJSON_AddStringToObject(labels, UDF_LABEL_TENANT_NS, "true") &&
	    cJSON_AddStringToObject(labels, "pod-security.kubernetes.io/enforce", "restricted") &&
	    cJSON_AddStringToObject(labels, "pod-security.kubernetes.io/enforce-version",
				    "latest") &&
	    cJSON_AddStringToObject(annos, UDF_ANNO_TENANT, tenant);
	*out = NULL;
	if (!ok) {
		cJSON_Delete(obj);
		return -ENOMEM;
	}
	*out = obj;
	return 0;
}

int tenant_namespace_owned(const cJSON *nsobj, const char *tenant)
{
	const char *t = k8s_annotation(nsobj, UDF_ANNO_TENANT);
	return t && strcmp(t, tenant) == 0;
}
