/* udf/event: the Event a reconciler writes about its object. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kube/rest.h"
#include "udf/event.h"

static void event_names_its_object(void **state)
{
	cJSON *pool = cJSON_Parse("{\"metadata\":{\"name\":\"warm\",\"namespace\":\"s\","
				  "\"uid\":\"u-1\",\"resourceVersion\":\"42\"}}");
	cJSON *ev = NULL;
	assert_int_equal(
	    udf_event_object(pool, "UdfWarmPool", 1, "ScaleUpBlocked", "no image", 0, &ev), 0);
	assert_string_equal(k8s_str(ev, "metadata.generateName"), "warm.");
	assert_string_equal(k8s_str(ev, "metadata.namespace"), "s");
	assert_string_equal(k8s_str(ev, "involvedObject.kind"), "UdfWarmPool");
	assert_string_equal(k8s_str(ev, "involvedObject.uid"), "u-1");
	assert_string_equal(k8s_str(ev, "involvedObject.resourceVersion"), "42");
	assert_string_equal(k8s_str(ev, "type"), "Warning");
	assert_string_equal(k8s_str(ev, "reason"), "ScaleUpBlocked");
	assert_string_equal(k8s_str(ev, "message"), "no image");
	assert_string_equal(k8s_str(ev, "firstTimestamp"), "1970-01-01T00:00:00Z");
	assert_string_equal(k8s_str(ev, "source.component"), "udf-operator");
	cJSON_Delete(ev);
	cJSON_Delete(pool);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(event_names_its_object),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
