/* REST responses other than Status (kube/rest.c): the JSON body of a 2xx answer as the
 * operator reads it, through the k8s_* accessors, at the paths it reads. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "kube/informer.h"
#include "kube/rest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const paths[] = {"metadata.name",
					    "metadata.namespace",
					    "metadata.uid",
					    "metadata.resourceVersion",
					    "metadata.continue",
					    "metadata.creationTimestamp",
					    "gitVersion",
					    "spec.tenant",
					    "spec.functionName",
					    "status.endpoint",
					    "status.lastUsedTime",
					    "data.token",
					    "a.b.c.d.e.f",
					    "",
					    "."};
	char key[512];
	cJSON *j = cJSON_ParseWithLength((const char *)data, size);
	if (!j)
		return 0;
	for (size_t i = 0; i < sizeof(paths) / sizeof(*paths); i++) {
		const char *s = k8s_str(j, paths[i]);
		if (s)
			(void)strlen(s);
		(void)k8s_get(j, paths[i]);
		(void)k8s_int(j, paths[i], 0);
	}
	(void)k8s_label(j, "app.kubernetes.io/managed-by");
	(void)k8s_annotation(j, "udf.sandbox.io/content-key");
	if (kube_object_key(j, key, sizeof(key)) == 0 && !memchr(key, '\0', sizeof(key)))
		__builtin_trap();
	cJSON_Delete(j);
	return 0;
}
