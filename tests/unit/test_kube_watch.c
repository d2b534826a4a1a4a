/* The watch stream framer, event parsing, Status parsing and backoff. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kube/watch.h"

struct frames {
	char *items[64];
	int n;
};

static int collect(void *arg, const char *json, size_t len)
{
	struct frames *f = arg;
	assert_true(f->n < 64);
	f->items[f->n] = strndup(json, len);
	f->n++;
	return 0;
}

static void frames_free(struct frames *f)
{
	for (int i = 0; i < f->n; i++)
		free(f->items[i]);
	f->n = 0;
}

static const char *stream =
    "{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"a}\",\"resourceVersion\":\"1\"}}}\n"
    "{\"type\":\"MODIFIED\",\"object\":{\"metadata\":{\"name\":\"b\\\"{[\","
    "\"resourceVersion\":\"2\"},\"data\":[1,{\"x\":\"\\\\\"}]}}\n"
    "{\"type\":\"BOOKMARK\",\"object\":{\"metadata\":{\"resourceVersion\":\"3\"}}}\n";

/* Every way of cutting the stream in two, and one byte at a time, yields the same 3 events. */
static void framing_survives_every_chunk_boundary(void **state)
{
	size_t len = strlen(stream);
	for (size_t cut = 0; cut <= len; cut++) {
		struct kube_framer fr;
		struct frames f = {0};
		kube_framer_init(&fr, 0);
		assert_int_equal(kube_framer_feed(&fr, stream, cut, collect, &f), 0);
		assert_int_equal(kube_framer_feed(&fr, stream + cut, len - cut, collect, &f), 0);
		assert_int_equal(f.n, 3);
		assert_non_null(strstr(f.items[0], "\"a}\""));
		assert_non_null(strstr(f.items[1], "MODIFIED"));
		assert_non_null(strstr(f.items[2], "BOOKMARK"));
		assert_int_equal(kube_framer_pending(&fr), 0);
		frames_free(&f);
		kube_framer_free(&fr);
	}
	{
		struct kube_framer fr;
		struct frames f = {0};
		kube_framer_init(&fr, 0);
		for (size_t i = 0; i < len; i++)
			assert_int_equal(kube_framer_feed(&fr, stream + i, 1, collect, &f), 0);
		assert_int_equal(f.n, 3);
		for (int i = 0; i < 3; i++) {
			struct kube_event ev;
			assert_int_equal(kube_event_parse(f.items[i], strlen(f.items[i]), &ev), 0);
			assert_string_equal(ev.rv, i == 0 ? "1" : i == 1 ? "2" : "3");
			kube_event_free(&ev);
		}
		frames_free(&f);
		kube_framer_free(&fr);
	}
}

static void events_without_newlines_are_framed(void **state)
{
	struct kube_framer fr;
	struct frames f = {0};
	const char *s = "{\"a\":1}{\"b\":2} {\"c\":3}";
	kube_framer_init(&fr, 0);
	assert_int_equal(kube_framer_feed(&fr, s, strlen(s), collect, &f), 0);
	assert_int_equal(f.n, 3);
	assert_string_equal(f.items[1], "{\"b\":2}");
	frames_free(&f);
	kube_framer_free(&fr);
}

static void overflow_is_an_error_not_a_crash(void **state)
{
	struct kube_framer fr;
	struct frames f = {0};
	char chunk[1000];
	int rc = 0;

	kube_framer_init(&fr, 4096);
	memset(chunk, 'x', sizeof(chunk));
	chunk[0] = '{';
	chunk[1] = '"';
	for (int i = 0; i < 10 && rc == 0; i++)
		rc = kube_framer_feed(&fr, i ? chunk + 2 : chunk,
				      i ? sizeof(chunk) - 2 : sizeof(chunk), collect, &f);
	assert_int_equal(rc, -EMSGSIZE);
	assert_true(kube_framer_pending(&fr) <= 4096);
	kube_framer_reset(&fr);
	assert_int_equal(kube_framer_feed(&fr, "{\"ok\":1}", 8, collect, &f), 0);
	assert_int_equal(f.n, 1);
	frames_free(&f);
	kube_framer_free(&fr);

	/* The default cap is 16 MiB. */
	kube_framer_init(&fr, 0);
	assert_int_equal(fr.max, 16u << 20);
	kube_framer_free(&fr);
}

static void garbage_between_objects_is_a_protocol_error(void **state)
{
	struct kube_framer fr;
	struct frames f = {0};
	kube_framer_init(&fr, 0);
	assert_int_equal(kube_framer_feed(&fr, "{\"a\":1}\nHTTP/1.1", 16, collect, &f), -EPROTO);
	frames_free(&f);
	kube_framer_free(&fr);
}

static int stop_at_second(void *arg, const char *json, size_t len)
{
	int *n = arg;
	return ++*n == 2 ? 42 : 0;
}

static void callback_can_stop_the_feed(void **state)
{
	struct kube_framer fr;
	int n = 0;
	kube_framer_init(&fr, 0);
	assert_int_equal(kube_framer_feed(&fr, "{}{}{}", 6, stop_at_second, &n), 42);
	assert_int_equal(n, 2);
	kube_framer_free(&fr);
}

static void error_event_carries_status(void **state)
{
	struct kube_event ev;
	const char *s = "{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"apiVersion\":\"v1\","
			"\"status\":\"Failure\",\"message\":\"too old resource version: 5 (90)\","
			"\"reason\":\"Expired\",\"code\":410}}";
	assert_int_equal(kube_event_parse(s, strlen(s), &ev), 0);
	assert_int_equal(ev.type, KUBE_EVENT_ERROR);
	assert_int_equal(ev.status.code, 410);
	assert_string_equal(ev.status.reason, "Expired");
	assert_non_null(strstr(ev.status.message, "too old"));
	kube_event_free(&ev);

	assert_int_equal(kube_event_parse("{\"type\":\"NOPE\",\"object\":{}}", 27, &ev), -EINVAL);
	assert_int_equal(kube_event_parse("{\"type\":\"ADDED\"}", 16, &ev), -EINVAL);
	assert_int_equal(kube_event_parse("[", 1, &ev), -EINVAL);
}

static void status_parse_and_error_codes(void **state)
{
	struct kube_status st;
	const char *conflict =
	    "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"status\":\"Failure\","
	    "\"message\":\"Operation cannot be fulfilled on configmaps \\\"x\\\": "
	    "the object has been modified\",\"reason\":\"Conflict\",\"code\":409}";
	const char *exists = "{\"kind\":\"Status\",\"reason\":\"AlreadyExists\",\"code\":409}";

	assert_int_equal(kube_status_parse(conflict, strlen(conflict), 409, &st), 0);
	assert_string_equal(st.reason, "Conflict");
	assert_int_equal(st.code, 409);
	assert_int_equal(kube_error_from_status(409, &st), KUBE_ECONFLICT);
	assert_int_equal(kube_status_parse(exists, strlen(exists), 409, &st), 0);
	assert_int_equal(kube_error_from_status(409, &st), KUBE_EALREADY_EXISTS);

	/* Not a Status: reason from the HTTP code, printable body as the message. */
	assert_int_equal(kube_status_parse("upstream\nbroke", 14, 502, &st), -EINVAL);
	assert_int_equal(st.code, 502);
	assert_string_equal(st.reason, "InternalError");
	assert_string_equal(st.message, "upstream broke");
	assert_int_equal(kube_status_parse(NULL, 0, 429, &st), -EINVAL);
	assert_string_equal(st.reason, "TooManyRequests");
	assert_int_equal(kube_error_from_status(429, &st), KUBE_ETOOMANY);
	assert_int_equal(kube_error_from_status(410, &st), KUBE_EGONE);
	assert_int_equal(kube_error_from_status(201, &st), 0);
	assert_string_equal(kube_strerror(KUBE_ECONFLICT), "conflict");
}

static void backoff_doubles_with_jitter_to_cap(void **state)
{
	struct kube_backoff b;
	uint64_t prev = 0;
	kube_backoff_init(&b, 800, 30000, 1);
	for (int i = 0; i < 20; i++) {
		uint64_t d = kube_backoff_next(&b);
		uint64_t base = 800ull << (i < 6 ? i : 6);
		if (base > 30000)
			base = 30000;
		assert_true(d >= base);
		assert_true(d <= base + base / 5 && d <= 30000);
		if (i < 5)
			assert_true(d > prev);
		prev = d;
	}
	kube_backoff_reset(&b);
	assert_true(kube_backoff_next(&b) <= 960);
}

static void path_building_escapes_names(void **state)
{
	char buf[128];
	struct kube_res pods = {"api/v1", "pods"};
	struct kube_res leases = {"apis/coordination.k8s.io/v1", "leases"};
	assert_int_equal(kube_path(buf, sizeof(buf), &pods, "ns", "a b", "status"), 0);
	assert_string_equal(buf, "/api/v1/namespaces/ns/pods/a%20b/status");
	assert_int_equal(kube_path(buf, sizeof(buf), &leases, NULL, NULL, NULL), 0);
	assert_string_equal(buf, "/apis/coordination.k8s.io/v1/leases");
	assert_int_equal(kube_path(buf, 10, &leases, NULL, NULL, NULL), -ENAMETOOLONG);
}

static void accessors_are_checked(void **state)
{
	cJSON *o = cJSON_Parse("{\"metadata\":{\"name\":\"x\",\"generation\":3,"
			       "\"labels\":{\"udf.sandbox.io/pool\":\"p\"}},\"spec\":5}");
	assert_string_equal(k8s_str(o, "metadata.name"), "x");
	assert_int_equal(k8s_int(o, "metadata.generation", -1), 3);
	assert_int_equal(k8s_int(o, "metadata.missing", -1), -1);
	assert_null(k8s_str(o, "spec.replicas"));
	assert_null(k8s_str(o, "metadata.generation"));
	assert_string_equal(k8s_label(o, "udf.sandbox.io/pool"), "p");
	assert_null(k8s_label(o, "nope"));
	cJSON_Delete(o);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(framing_survives_every_chunk_boundary),
	    cmocka_unit_test(events_without_newlines_are_framed),
	    cmocka_unit_test(overflow_is_an_error_not_a_crash),
	    cmocka_unit_test(garbage_between_objects_is_a_protocol_error),
	    cmocka_unit_test(callback_can_stop_the_feed),
	    cmocka_unit_test(error_event_carries_status),
	    cmocka_unit_test(status_parse_and_error_codes),
	    cmocka_unit_test(backoff_doubles_with_jitter_to_cap),
	    cmocka_unit_test(path_building_escapes_names),
	    cmocka_unit_test(accessors_are_checked),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
