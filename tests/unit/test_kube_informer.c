/* The informer cache fed with watch-stream bytes (no server): events, indexes, handlers. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "kube/informer.h"

struct counts {
	int adds, updates, deletes;
	char last_deleted[128];
};

static void on_add(void *arg, const cJSON *obj)
{
	((struct counts *)arg)->adds++;
}

static void on_update(void *arg, const cJSON *old, const cJSON *obj)
{
	struct counts *c = arg;
	assert_string_equal(k8s_str(old, "metadata.name"), k8s_str(obj, "metadata.name"));
	c->updates++;
}

static void on_delete(void *arg, const cJSON *obj)
{
	struct counts *c = arg;
	c->deletes++;
	snprintf(c->last_deleted, sizeof(c->last_deleted), "%s", k8s_str(obj, "metadata.name"));
}

struct fixture {
	struct kube_client *client;
	struct kube_informers *loop;
	struct kube_informer *inf;
	struct counts counts;
};

static int setup(void **state)
{
	static const char *cfgtext =
	    "current-context: c\n"
	    "clusters: [{name: k, cluster: {server: 'http://127.0.0.1:9'}}]\n"
	    "contexts: [{name: c, context: {cluster: k}}]\n";
	static const struct kube_res pods = {"api/v1", "pods"};
	static const char *const idx[] = {"pool", "fn", NULL};
	struct fixture *f = calloc(1, sizeof(*f));
	struct kube_config *cfg;
	char err[256];
	struct kube_handlers h = {on_add, on_update, on_delete, NULL};
	struct kube_informer_opts o = {.res = &pods, .index_labels = idx, .handlers = &h};

	assert_int_equal(kube_config_parse(cfgtext, strlen(cfgtext), NULL, &cfg, err, sizeof(err)),
			 0);
	assert_int_equal(kube_client_new(cfg, &f->client), 0);
	assert_int_equal(kube_informers_new(f->client, &f->loop), 0);
	h.arg = &f->counts;
	assert_int_equal(kube_informer_add(f->loop, &o, &f->inf), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	kube_informers_free(f->loop);
	kube_client_free(f->client);
	free(f);
	return 0;
}

static void feed(struct fixture *f, const char *type, const char *ns, const char *name,
		 const char *rv, const char *pool)
{
	char buf[512];
	int n =
	    snprintf(buf, sizeof(buf),
		     "{\"type\":\"%s\",\"object\":{\"metadata\":{\"namespace\":\"%s\","
		     "\"name\":\"%s\",\"resourceVersion\":\"%s\",\"labels\":{\"pool\":\"%s\"}}}}\n",
		     type, ns, name, rv, pool);
	assert_int_equal(kube_informer_feed_watch(f->inf, buf, (size_t)n), 0);
}

static int count_of(cJSON *arr)
{
	int n = cJSON_GetArraySize(arr);
	cJSON_Delete(arr);
	return n;
}

static void events_update_cache_indexes_and_handlers(void **state)
{
	struct fixture *f = *state;
	struct kube_informer_stats st;
	cJSON *o;

	feed(f, "ADDED", "a", "p1", "10", "warm");
	feed(f, "ADDED", "a", "p2", "11", "warm");
	feed(f, "ADDED", "b", "p1", "12", "cold");
	assert_int_equal(kube_informer_count(f->inf), 3);
	assert_int_equal(count_of(kube_informer_by_label(f->inf, "pool", "warm")), 2);
	assert_int_equal(count_of(kube_informer_by_label(f->inf, "pool", "cold")), 1);

	/* A label change moves the object between index entries. */
	feed(f, "MODIFIED", "a", "p2", "13", "cold");
	assert_int_equal(count_of(kube_informer_by_label(f->inf, "pool", "warm")), 1);
	assert_int_equal(count_of(kube_informer_by_label(f->inf, "pool", "cold")), 2);
	o = kube_informer_get(f->inf, "a/p2");
	assert_non_null(o);
	assert_string_equal(k8s_str(o, "metadata.resourceVersion"), "13");
	cJSON_Delete(o);

	feed(f, "DELETED", "a", "p1", "14", "warm");
	assert_null(kube_informer_get(f->inf, "a/p1"));
	assert_int_equal(count_of(kube_informer_by_label(f->inf, "pool", "warm")), 0);
	assert_int_equal(count_of(kube_informer_list(f->inf)), 2);

	/* Bookmarks only move the resourceVersion. */
	{
		const char *bm = "{\"type\":\"BOOKMARK\",\"object\":{\"metadata\":"
				 "{\"resourceVersion\":\"20\"}}}";
		assert_int_equal(kube_informer_feed_watch(f->inf, bm, strlen(bm)), 0);
	}
	kube_informer_stats(f->inf, &st);
	assert_string_equal(st.rv, "20");
	assert_int_equal(st.events, 6);
	assert_int_equal(f->counts.adds, 3);
	assert_int_equal(f->counts.updates, 1);
	assert_int_equal(f->counts.deletes, 1);
	assert_string_equal(f->counts.last_deleted, "p1");
	assert_int_equal(count_of(kube_informer_by_label(f->inf, "unindexed", "x")), 0);
}

/* The bookkeeping of server-side apply (managedFields) and of client-side apply (the
 * last-applied-configuration annotation, a copy of the whole object) is not cached. */
static void apply_bookkeeping_is_not_cached(void **state)
{
	struct fixture *f = *state;
	const char *ev =
	    "{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"namespace\":\"a\","
	    "\"name\":\"m\",\"resourceVersion\":\"1\",\"managedFields\":[{\"manager\":"
	    "\"kubectl\",\"fieldsV1\":{\"f:data\":{}}}],\"annotations\":{\"kept\":\"yes\","
	    "\"kubectl.kubernetes.io/last-applied-configuration\":\"{\\\"data\\\":{\\\"k\\\":"
	    "\\\"COPY\\\"}}\"}},\"data\":{\"k\":\"v\"}}}";
	cJSON *o;
	assert_int_equal(kube_informer_feed_watch(f->inf, ev, strlen(ev)), 0);
	o = kube_informer_get(f->inf, "a/m");
	assert_non_null(o);
	assert_null(k8s_get(o, "metadata.managedFields"));
	assert_null(k8s_annotation(o, "kubectl.kubernetes.io/last-applied-configuration"));
	assert_string_equal(k8s_annotation(o, "kept"), "yes");
	assert_string_equal(k8s_str(o, "data.k"), "v");
	cJSON_Delete(o);
}

static void gone_and_garbage_are_reported(void **state)
{
	struct fixture *f = *state;
	const char *gone = "{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"code\":410,"
			   "\"reason\":\"Expired\"}}";
	assert_int_equal(kube_informer_feed_watch(f->inf, gone, strlen(gone)), KUBE_EGONE);
	assert_true(kube_informer_feed_watch(f->inf, "{\"type\":1}", 10) < 0);
}

static void every_handler_set_sees_every_event(void **state)
{
	struct fixture *f = *state;
	struct counts second = {0}, third = {0};
	struct kube_handlers h2 = {on_add, on_update, on_delete, &second};
	struct kube_handlers h3 = {on_add, NULL, NULL, &third};
	assert_int_equal(kube_informer_add_handlers(f->inf, &h2), 0);
	assert_int_equal(kube_informer_add_handlers(f->inf, &h3), 0);
	assert_int_equal(kube_informer_add_handlers(f->inf, &h3), 0);
	assert_int_equal(kube_informer_add_handlers(f->inf, &h3), -ENOSPC);

	feed(f, "ADDED", "a", "p1", "10", "warm");
	feed(f, "MODIFIED", "a", "p1", "11", "cold");
	feed(f, "DELETED", "a", "p1", "12", "cold");
	assert_int_equal(f->counts.adds, 1);
	assert_int_equal(second.adds, 1);
	assert_int_equal(second.updates, 1);
	assert_int_equal(second.deletes, 1);
	assert_string_equal(second.last_deleted, "p1");
	assert_int_equal(third.adds, 2); /* added twice: called twice */
}

/* Code and scripts never reach the cache: the paths named in drop_fields are gone from what
 * get/list return and from what handlers see, the rest of the object stays. */
static void dropped_fields_are_not_cached(void **state)
{
	struct fixture *f = *state;
	static const struct kube_res fns = {"apis/udf.sandbox.io/v1alpha1", "udffunctions"};
	static const char *const drop[] = {"spec.code", "spec.script", "spec.imports[].url",
					   "spec.missing.deeper", NULL};
	struct kube_informer_opts o = {.res = &fns, .drop_fields = drop};
	struct kube_informer *inf;
	assert_int_equal(kube_informer_add(f->loop, &o, &inf), 0);
	const char *ev =
	    "{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"namespace\":\"t\",\"name\":\"fn\","
	    "\"resourceVersion\":\"5\"},\"spec\":{\"tenant\":\"x\",\"code\":\"SECRET-CODE\","
	    "\"script\":\"SECRET-SCRIPT\",\"imports\":[{\"location\":\"a.py\",\"url\":"
	    "\"https://h/SECRET-URL\"},{\"location\":\"b.py\",\"url\":\"https://h/SECRET-URL2\"}],"
	    "\"code\":\"SECRET-NAMED-TWICE\"},\"status\":{\"phase\":\"Ready\"},"
	    "\"spec\":{\"code\":\"SECRET-IN-A-SECOND-SPEC\"}}}\n";
	assert_int_equal(kube_informer_feed_watch(inf, ev, strlen(ev)), 0);
	cJSON *got = kube_informer_get(inf, "t/fn");
	assert_non_null(got);
	char *text = cJSON_PrintUnformatted(got);
	assert_null(strstr(text, "SECRET"));
	assert_string_equal(k8s_str(got, "spec.tenant"), "x");
	assert_string_equal(k8s_str(got, "status.phase"), "Ready");
	assert_int_equal(cJSON_GetArraySize(k8s_get(got, "spec.imports")), 2);
	assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(
				cJSON_GetArrayItem(k8s_get(got, "spec.imports"), 1), "location")),
			    "b.py");
	free(text);
	cJSON_Delete(got);
}

/* A transform that keeps the length of spec.code instead of the code; fails on spec.fail. */
static int code_to_length(cJSON *obj)
{
	cJSON *spec = cJSON_GetObjectItemCaseSensitive(obj, "spec");
	const char *code = k8s_str(obj, "spec.code");
	if (k8s_get(obj, "spec.fail"))
		return -ENOMEM;
	if (code && !cJSON_AddNumberToObject(spec, "codeLength", (double)strlen(code)))
		return -ENOMEM;
	cJSON_DeleteItemFromObjectCaseSensitive(spec, "code");
	return 0;
}

static int saw_code;

static void check_add(void *arg, const cJSON *obj)
{
	(void)arg;
	saw_code |= k8s_get(obj, "spec.code") != NULL;
}

static void check_update(void *arg, const cJSON *old, const cJSON *obj)
{
	(void)arg;
	saw_code |= k8s_get(old, "spec.code") != NULL || k8s_get(obj, "spec.code") != NULL;
}

/* The transform sees each object as served, before anything is dropped, on every path in:
 * watch events (deletes included: their handlers see what the cache keeps) and LIST pages.
 * A transform that fails leaves the object cached as served. */
static void transform_reduces_every_object(void **state)
{
	struct fixture *f = *state;
	static const struct kube_res fns = {"apis/udf.sandbox.io/v1alpha1", "udffunctions"};
	static const char *const drop[] = {"spec.codeLength", NULL};
	struct kube_handlers h = {check_add, check_update, check_add, NULL};
	struct kube_informer_opts o = {
	    .res = &fns, .transform = code_to_length, .handlers = &h, .drop_fields = drop};
	struct kube_informer *inf;
	assert_int_equal(kube_informer_add(f->loop, &o, &inf), 0);
	o.drop_fields = NULL; /* a second one that keeps the length */
	struct kube_informer *kept;
	assert_int_equal(kube_informer_add(f->loop, &o, &kept), 0);
	saw_code = 0;

	const char *add =
	    "{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"namespace\":\"t\","
	    "\"name\":\"fn\",\"resourceVersion\":\"5\"},\"spec\":{\"code\":\"abc\"}}}\n";
	const char *mod = "{\"type\":\"MODIFIED\",\"object\":{\"metadata\":{\"namespace\":"
			  "\"t\",\"name\":\"fn\",\"resourceVersion\":\"6\"},\"spec\":{\"code\":"
			  "\"abcdef\"}}}\n";
	const char *del = "{\"type\":\"DELETED\",\"object\":{\"metadata\":{\"namespace\":"
			  "\"t\",\"name\":\"fn\",\"resourceVersion\":\"7\"},\"spec\":{\"code\":"
			  "\"abcdef\"}}}\n";
	assert_int_equal(kube_informer_feed_watch(kept, add, strlen(add)), 0);
	cJSON *got = kube_informer_get(kept, "t/fn");
	assert_null(k8s_get(got, "spec.code"));
	assert_int_equal(k8s_int(got, "spec.codeLength", -1), 3); /* before drop_fields */
	cJSON_Delete(got);

	assert_int_equal(kube_informer_feed_watch(inf, add, strlen(add)), 0);
	assert_int_equal(kube_informer_feed_watch(inf, mod, strlen(mod)), 0);
	got = kube_informer_get(inf, "t/fn");
	assert_non_null(got);
	assert_null(k8s_get(got, "spec.code"));
	assert_null(k8s_get(got, "spec.codeLength")); /* drop_fields after the transform */
	cJSON_Delete(got);
	assert_int_equal(kube_informer_feed_watch(inf, del, strlen(del)), 0);
	assert_int_equal(kube_informer_count(inf), 0);
	assert_false(saw_code);

	const char *page = "{\"kind\":\"UdfFunctionList\",\"metadata\":{\"resourceVersion\":\"9\"},"
			   "\"items\":[{\"metadata\":{\"namespace\":\"t\",\"name\":\"a\"},"
			   "\"spec\":{\"code\":\"xy\"}},{\"metadata\":{\"namespace\":\"t\","
			   "\"name\":\"b\"},\"spec\":{\"code\":\"as served\",\"fail\":true}}]}";
	assert_int_equal(kube_informer_feed_list(kept, page, strlen(page)), 0);
	got = kube_informer_get(kept, "t/a");
	assert_null(k8s_get(got, "spec.code"));
	assert_int_equal(k8s_int(got, "spec.codeLength", -1), 2);
	cJSON_Delete(got);
	got = kube_informer_get(kept, "t/b");
	assert_string_equal(k8s_str(got, "spec.code"), "as served");
	cJSON_Delete(got);
}

/* A stand-in API server on 127.0.0.1: records each request's path; answers a LIST with an
 * empty last page and a WATCH with an empty stream, one request per connection. */
struct fake_server {
	int fd, port;
	atomic_int stop;
	pthread_t thread;
	pthread_mutex_t mu;
	char paths[16][512];
	int npaths;
};

static void *serve(void *arg)
{
	struct fake_server *s = arg;
	static const char list[] = "{\"kind\":\"List\",\"metadata\":{\"resourceVersion\":\"7\"},"
				   "\"items\":[]}";
	while (!atomic_load(&s->stop)) {
		struct pollfd p = {s->fd, POLLIN, 0};
		if (poll(&p, 1, 50) <= 0)
			continue;
		int c = accept(s->fd, NULL, NULL);
		if (c < 0)
			continue;
		char req[2048] = "", resp[512];
		size_t len = 0;
		ssize_t n;
		while (len < sizeof(req) - 1 && !strstr(req, "\r\n\r\n") &&
		       (n = read(c, req + len, sizeof(req) - 1 - len)) > 0) {
			len += (size_t)n;
			req[len] = '\0';
		}
		char path[512] = "";
		sscanf(req, "GET %511s", path);
		pthread_mutex_lock(&s->mu);
		if (s->npaths < 16)
			snprintf(s->paths[s->npaths++], sizeof(s->paths[0]), "%s", path);
		pthread_mutex_unlock(&s->mu);
		const char *body = strstr(path, "watch=1") ? "" : list;
		int m = snprintf(resp, sizeof(resp),
				 "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
				 "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
				 strlen(body), body);
		if (write(c, resp, (size_t)m) < 0)
			perror("fake server write");
		close(c);
	}
	return NULL;
}

static void fake_server_start(struct fake_server *s)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t alen = sizeof(a);
	memset(s, 0, sizeof(*s));
	pthread_mutex_init(&s->mu, NULL);
	s->fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(s->fd >= 0);
	assert_int_equal(bind(s->fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(s->fd, 16), 0);
	assert_int_equal(getsockname(s->fd, (struct sockaddr *)&a, &alen), 0);
	s->port = ntohs(a.sin_port);
	assert_int_equal(pthread_create(&s->thread, NULL, serve, s), 0);
}

static void fake_server_stop(struct fake_server *s)
{
	atomic_store(&s->stop, 1);
	pthread_join(s->thread, NULL);
	close(s->fd);
	pthread_mutex_destroy(&s->mu);
}

/* The first LIST request of the informer for plural, or "" when none came. */
static void first_list(struct fake_server *s, const char *plural, char out[512])
{
	out[0] = '\0';
	pthread_mutex_lock(&s->mu);
	for (int i = 0; i < s->npaths && !out[0]; i++)
		if (strstr(s->paths[i], plural) && !strstr(s->paths[i], "watch=1"))
			snprintf(out, 512, "%s", s->paths[i]);
	pthread_mutex_unlock(&s->mu);
}

/* consistent_list: the LIST asks for a consistent read (no resourceVersion=0, which the API
 * server answers from its watch cache, whole), in pages of page_size. */
static void consistent_list_pages_from_storage(void **state)
{
	(void)state;
	struct fake_server srv;
	fake_server_start(&srv);
	char cfgtext[256], err[256], path[512];
	snprintf(cfgtext, sizeof(cfgtext),
		 "current-context: c\n"
		 "clusters: [{name: k, cluster: {server: 'http://127.0.0.1:%d'}}]\n"
		 "contexts: [{name: c, context: {cluster: k}}]\n",
		 srv.port);
	struct kube_config *cfg;
	struct kube_client *client;
	struct kube_informers *loop;
	struct kube_informer *big, *small;
	static const struct kube_res fns = {"apis/udf.sandbox.io/v1alpha1", "udffunctions"};
	static const struct kube_res cms = {"api/v1", "configmaps"};
	struct kube_informer_opts bo = {.res = &fns, .consistent_list = 1, .page_size = 16};
	struct kube_informer_opts so = {.res = &cms};
	assert_int_equal(kube_config_parse(cfgtext, strlen(cfgtext), NULL, &cfg, err, sizeof(err)),
			 0);
	assert_int_equal(kube_client_new(cfg, &client), 0);
	assert_int_equal(kube_informers_new(client, &loop), 0);
	assert_int_equal(kube_informer_add(loop, &bo, &big), 0);
	assert_int_equal(kube_informer_add(loop, &so, &small), 0);
	assert_int_equal(kube_informers_start(loop), 0);
	assert_int_equal(kube_informer_wait_synced(big, 10000), 0);
	assert_int_equal(kube_informer_wait_synced(small, 10000), 0);
	kube_informers_free(loop);
	kube_client_free(client);
	fake_server_stop(&srv);

	first_list(&srv, "/udffunctions", path);
	assert_non_null(strstr(path, "limit=16"));
	assert_null(strstr(path, "resourceVersion"));
	first_list(&srv, "/configmaps", path);
	assert_non_null(strstr(path, "limit=500"));
	assert_non_null(strstr(path, "resourceVersion=0"));
}

static void object_keys(void **state)
{
	char buf[16];
	cJSON *o = cJSON_Parse("{\"metadata\":{\"name\":\"n\",\"namespace\":\"ns\"}}");
	cJSON *c = cJSON_Parse("{\"metadata\":{\"name\":\"node-1\"}}");
	assert_int_equal(kube_object_key(o, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "ns/n");
	assert_int_equal(kube_object_key(c, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "node-1");
	assert_int_equal(kube_object_key(c, buf, 4), -ENAMETOOLONG);
	cJSON_Delete(o);
	cJSON_Delete(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(events_update_cache_indexes_and_handlers, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(apply_bookkeeping_is_not_cached, setup, teardown),
	    cmocka_unit_test_setup_teardown(gone_and_garbage_are_reported, setup, teardown),
	    cmocka_unit_test_setup_teardown(every_handler_set_sees_every_event, setup, teardown),
	    cmocka_unit_test_setup_teardown(dropped_fields_are_not_cached, setup, teardown),
	    cmocka_unit_test_setup_teardown(transform_reduces_every_object, setup, teardown),
	    cmocka_unit_test(consistent_list_pages_from_storage),
	    cmocka_unit_test(object_keys),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
