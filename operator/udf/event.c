#include "udf/event.h"

#include <errno.h>
#include <stdio.h>
#include <time.h>

#include "kube/rest.h"
#include "udf/labels.h"

void udf_time_rfc3339(int64_t t, char out[32])
{
	time_t tt = (time_t)t;
	struct tm tm;
	gmtime_r(&tt, &tm);
	strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

int udf_event_object(const cJSON *obj, const char *kind, int warning, const char *reason,
		     const char *message, int64_t now_s, cJSON **out)
{
	char ts[32], gen[300];
	const char *name = k8s_str(obj, "metadata.name");
	const char *ns = k8s_str(obj, "metadata.namespace");
	const char *rv = k8s_str(obj, "metadata.resourceVersion");
	udf_time_rfc3339(now_s, ts);
	snprintf(gen, sizeof(gen), "%s.", name ? name : "");
	cJSON *ev = cJSON_CreateObject();
	cJSON *meta = cJSON_AddObjectToObject(ev, "metadata");
	cJSON *inv = cJSON_AddObjectToObject(ev, "involvedObject");
	cJSON *src = cJSON_AddObjectToObject(ev, "source");
	int ok = meta && inv && src && cJSON_AddStringToObject(meta, "generateName", gen) &&
		 cJSON_AddStringToObject(meta, "namespace", ns) &&
		 cJSON_AddStringToObject(inv, "apiVersion", UDF_API_VERSION) &&
		 cJSON_AddStringToObject(inv, "kind", kind) &&
		 cJSON_AddStringToObject(inv, "name", name) &&
		 cJSON_AddStringToObject(inv, "namespace", ns) &&
		 cJSON_AddStringToObject(inv, "uid", k8s_str(obj, "metadata.uid")) &&
		 (!rv || cJSON_AddStringToObject(inv, "resourceVersion", rv)) &&
		 cJSON_AddStringToObject(ev, "reason", reason) &&
		 cJSON_AddStringToObject(ev, "message", message) &&
		 cJSON_AddStringToObject(ev, "type", warning ? "Warning" : "Normal") &&
		 cJSON_AddStringToObject(ev, "firstTimestamp", ts) &&
		 cJSON_AddStringToObject(ev, "lastTimestamp", ts) &&
		 cJSON_AddNumberToObject(ev, "count", 1) &&
		 cJSON_AddStringToObject(src, "component", UDF_MANAGER) &&
		 cJSON_AddStringToObject(ev, "reportingComponent", UDF_MANAGER);
	*out = NULL;
	if (!ok) {
		cJSON_Delete(ev);
		return -ENOMEM;
	}
	*out = ev;
	return 0;
}
