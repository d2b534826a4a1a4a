/*
 * kubetool: drives operator/kube against a real API server for the integration tests and
 * the benchmark. One subcommand per behaviour; the Python tests start it, read its stdout
 * and the snapshot files it writes, and check them against the server.
 *
 *   kubetool get PATH
 *   kubetool roundtrip NS
 *   kubetool list API PLURAL NS PAGE_SIZE
 *   kubetool informer API PLURAL NS SNAPSHOT [--index LABEL] [--watch-timeout MIN MAX]
 *   kubetool leader NS NAME IDENTITY
 *   kubetool whoami [--in-cluster SA_DIR]     (one request per line read on stdin)
 *   kubetool bench API PLURAL NS              (informer throughput and memory)
 *   kubetool fanout API PLURAL NS N           (N informers on one loop thread)
 *
 * Connection: --kubeconfig PATH first (else $KUBECONFIG / in-cluster for whoami).
 */
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kube/informer.h"
#include "kube/leader.h"
#include "util/log.h"
#include "kube/rest.h"

static atomic_int stopping;

static void on_signal(int sig)
{
	atomic_store(&stopping, 1);
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double mono_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

#define CHECK(cond, ...)                                                                           \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                       \
			fprintf(stderr, __VA_ARGS__);                                              \
			fprintf(stderr, "\n");                                                     \
			exit(1);                                                                   \
		}                                                                                  \
	} while (0)

static struct kube_client *connect_kube(const char *kubeconfig)
{
	struct kube_config *cfg;
	struct kube_client *c;
	char err[512];
	int rc = kube_config_load(kubeconfig, &cfg, err, sizeof(err));
	CHECK(rc == 0, "kubeconfig: %s", err);
	CHECK(kube_client_new(cfg, &c) == 0, "client");
	return c;
}

static int cmd_get(struct kube_client *c, int argc, char **argv)
{
	struct kube_response r;
	int rc;
	CHECK(argc >= 1, "get PATH");
	rc = kube_get(c, argv[0], &r);
	if (rc) {
		printf("error %s\n", kube_strerror(rc));
		return 1;
	}
	printf("%ld %s\n", r.http_status, r.body ? r.body : "");
	kube_response_free(&r);
	return 0;
}

/* ---- roundtrip ---- */

static cJSON *configmap(const char *name, const char *value)
{
	cJSON *o = cJSON_CreateObject(), *m, *d;
	cJSON_AddStringToObject(o, "apiVersion", "v1");
	cJSON_AddStringToObject(o, "kind", "ConfigMap");
	m = cJSON_AddObjectToObject(o, "metadata");
	cJSON_AddStringToObject(m, "name", name);
	d = cJSON_AddObjectToObject(o, "data");
	cJSON_AddStringToObject(d, "k", value);
	return o;
}

static int cmd_roundtrip(struct kube_client *c, int argc, char **argv)
{
	static const struct kube_res cms = {"api/v1", "configmaps"};
	static const struct kube_res deps = {"apis/apps/v1", "deployments"};
	const char *ns = argc >= 1 ? argv[0] : "default";
	cJSON *obj = configmap("rt", "v1"), *out = NULL, *stale, *got;
	char rv1[64], patch[512];
	int rc;

	kube_delete(c, &cms, ns, "rt", NULL, NULL, NULL, NULL);
	kube_delete(c, &deps, ns, "rt", NULL, NULL, NULL, NULL);
	for (int i = 0; i < 50 && kube_get_object(c, &cms, ns, "rt", NULL) == 0; i++)
		usleep(100000);

	/* create, and create again: AlreadyExists */
	rc = kube_create(c, &cms, ns, obj, &out);
	CHECK(rc == 0, "create: %s", kube_strerror(rc));
	snprintf(rv1, sizeof(rv1), "%s", k8s_str(out, "metadata.resourceVersion"));
	printf("PASS create rv=%s\n", rv1);
	rc = kube_create(c, &cms, ns, obj, NULL);
	CHECK(rc == KUBE_EALREADY_EXISTS, "second create: %s", kube_strerror(rc));
	printf("PASS create-exists\n");
	cJSON_Delete(obj);

	/* update conditional on resourceVersion; the stale copy then gets 409 Conflict */
	stale = cJSON_Duplicate(out, 1);
	cJSON_ReplaceItemInObject(cJSON_GetObjectItem(out, "data"), "k", cJSON_CreateString("v2"));
	rc = kube_update(c, &cms, ns, out, NULL, &got);
	CHECK(rc == 0, "update: %s", kube_strerror(rc));
	CHECK(strcmp(k8s_str(got, "data.k"), "v2") == 0, "update value");
	cJSON_Delete(got);
	printf("PASS update\n");
	cJSON_ReplaceItemInObject(cJSON_GetObjectItem(stale, "data"), "k",
				  cJSON_CreateString("v3"));
	rc = kube_update(c, &cms, ns, stale, NULL, NULL);
	CHECK(rc == KUBE_ECONFLICT, "stale update: %s", kube_strerror(rc));
	printf("PASS update-conflict\n");
	cJSON_Delete(stale);
	cJSON_Delete(out);

	/* merge patch */
	rc = kube_patch(c, &cms, ns, "rt", NULL, KUBE_PATCH_MERGE,
			"{\"data\":{\"m\":\"merged\"},\"metadata\":{\"labels\":{\"a\":\"b\"}}}",
			NULL, 0, &got);
	CHECK(rc == 0 && strcmp(k8s_str(got, "data.m"), "merged") == 0 &&
		  strcmp(k8s_str(got, "data.k"), "v2") == 0,
	      "merge patch: %s", kube_strerror(rc));
	cJSON_Delete(got);
	printf("PASS patch-merge\n");

	/* JSON patch with a test op: passes when the value matches, 422 when not */
	rc = kube_patch(c, &cms, ns, "rt", NULL, KUBE_PATCH_JSON,
			"[{\"op\":\"test\",\"path\":\"/data/k\",\"value\":\"v2\"},"
			"{\"op\":\"replace\",\"path\":\"/data/k\",\"value\":\"j\"}]",
			NULL, 0, &got);
	CHECK(rc == 0 && strcmp(k8s_str(got, "data.k"), "j") == 0, "json patch: %s",
	      kube_strerror(rc));
	cJSON_Delete(got);
	rc = kube_patch(c, &cms, ns, "rt", NULL, KUBE_PATCH_JSON,
			"[{\"op\":\"test\",\"path\":\"/data/k\",\"value\":\"nope\"},"
			"{\"op\":\"replace\",\"path\":\"/data/k\",\"value\":\"x\"}]",
			NULL, 0, NULL);
	CHECK(rc == KUBE_EINVALID || rc == KUBE_ECONFLICT, "failed test op: %s (%d)",
	      kube_strerror(rc), rc);
	printf("PASS patch-json-test rejected=%s\n", kube_strerror(rc));

	/* server-side apply: a second manager conflicts unless forced */
	rc = kube_patch(
	    c, &cms, ns, "rt", NULL, KUBE_PATCH_APPLY,
	    "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"rt\"},"
	    "\"data\":{\"owned\":\"one\"}}",
	    "manager-one", 0, &got);
	CHECK(rc == 0 && strcmp(k8s_str(got, "data.owned"), "one") == 0, "apply: %s",
	      kube_strerror(rc));
	cJSON_Delete(got);
	snprintf(patch, sizeof(patch),
		 "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"rt\"},"
		 "\"data\":{\"owned\":\"two\"}}");
	rc = kube_patch(c, &cms, ns, "rt", NULL, KUBE_PATCH_APPLY, patch, "manager-two", 0, NULL);
	CHECK(rc == KUBE_ECONFLICT, "apply conflict: %s", kube_strerror(rc));
	rc = kube_patch(c, &cms, ns, "rt", NULL, KUBE_PATCH_APPLY, patch, "manager-two", 1, &got);
	CHECK(rc == 0 && strcmp(k8s_str(got, "data.owned"), "two") == 0, "apply force: %s",
	      kube_strerror(rc));
	printf("PASS patch-apply\n");

	/* delete with preconditions: wrong uid is a conflict, right one deletes */
	{
		char uid[64];
		snprintf(uid, sizeof(uid), "%s", k8s_str(got, "metadata.uid"));
		cJSON_Delete(got);
		rc = kube_delete(c, &cms, ns, "rt", "Background", "00000000-0000-0000-0000-0", NULL,
				 NULL);
		CHECK(rc == KUBE_ECONFLICT, "delete wrong uid: %s", kube_strerror(rc));
		rc = kube_delete(c, &cms, ns, "rt", NULL, NULL, "1", NULL);
		CHECK(rc == KUBE_ECONFLICT, "delete stale resourceVersion: %s", kube_strerror(rc));
		rc = kube_delete(c, &cms, ns, "rt", "Foreground", uid, NULL, NULL);
		CHECK(rc == 0, "delete: %s", kube_strerror(rc));
		/* Foreground: the garbage collector removes the object once it has no
		 * dependents, shortly after. */
		for (int i = 0; i < 300; i++) {
			rc = kube_get_object(c, &cms, ns, "rt", NULL);
			if (rc == KUBE_ENOTFOUND)
				break;
			usleep(100000);
		}
		CHECK(rc == KUBE_ENOTFOUND, "get after delete: %s", kube_strerror(rc));
		rc = kube_delete(c, &cms, ns, "rt", NULL, NULL, NULL, NULL);
		CHECK(rc == KUBE_ENOTFOUND, "delete again: %s", kube_strerror(rc));
		printf("PASS delete\n");
	}

	/* status and scale subresources, on a Deployment (no controller needed for either) */
	{
		const char *dep =
		    "{\"apiVersion\":\"apps/v1\",\"kind\":\"Deployment\","
		    "\"metadata\":{\"name\":\"rt\"},\"spec\":{\"replicas\":1,"
		    "\"selector\":{\"matchLabels\":{\"app\":\"rt\"}},\"template\":{"
		    "\"metadata\":{\"labels\":{\"app\":\"rt\"}},\"spec\":{\"containers\":"
		    "[{\"name\":\"c\",\"image\":\"example.invalid/none\"}]}}}}";
		cJSON *d = cJSON_Parse(dep), *scale;
		rc = kube_create(c, &deps, ns, d, &out);
		CHECK(rc == 0, "create deployment: %s", kube_strerror(rc));
		cJSON_Delete(d);
		/* status: writes only .status, ignoring spec changes (retried on 409: the
		 * deployment controller writes status too) */
		for (int attempt = 0; attempt < 10; attempt++) {
			cJSON_ReplaceItemInObject(cJSON_GetObjectItem(out, "spec"), "replicas",
						  cJSON_CreateNumber(7));
			cJSON_DeleteItemFromObject(out, "status");
			cJSON_AddItemToObject(
			    out, "status",
			    cJSON_Parse("{\"observedGeneration\":1,\"replicas\":1}"));
			rc = kube_update(c, &deps, ns, out, "status", &got);
			if (rc != KUBE_ECONFLICT)
				break;
			cJSON_Delete(out);
			CHECK(kube_get_object(c, &deps, ns, "rt", &out) == 0, "re-read");
		}
		CHECK(rc == 0, "status update: %s", kube_strerror(rc));
		CHECK(k8s_int(got, "status.observedGeneration", -1) == 1 &&
			  k8s_int(got, "spec.replicas", -1) == 1,
		      "status subresource semantics");
		cJSON_Delete(got);
		cJSON_Delete(out);
		rc = kube_patch(c, &deps, ns, "rt", "status", KUBE_PATCH_MERGE,
				"{\"status\":{\"observedGeneration\":2}}", NULL, 0, &got);
		CHECK(rc == 0 && k8s_int(got, "status.observedGeneration", -1) == 2,
		      "status patch: %s", kube_strerror(rc));
		cJSON_Delete(got);
		printf("PASS status\n");

		/* The deployment controller writes the object too: on 409 re-read and retry,
		 * as every controller must. */
		for (int attempt = 0; attempt < 10; attempt++) {
			char path[256];
			struct kube_response r;
			kube_path(path, sizeof(path), &deps, ns, "rt", "scale");
			rc = kube_get(c, path, &r);
			CHECK(rc == 0 && r.http_status == 200 &&
				  strcmp(k8s_str(r.json, "kind"), "Scale") == 0,
			      "get scale");
			scale = r.json;
			r.json = NULL;
			kube_response_free(&r);
			cJSON_ReplaceItemInObject(cJSON_GetObjectItem(scale, "spec"), "replicas",
						  cJSON_CreateNumber(3));
			rc = kube_update(c, &deps, ns, scale, "scale", &got);
			cJSON_Delete(scale);
			if (rc != KUBE_ECONFLICT)
				break;
			printf("scale update: conflict, retrying\n");
		}
		CHECK(rc == 0 && k8s_int(got, "spec.replicas", -1) == 3, "scale update: %s",
		      kube_strerror(rc));
		cJSON_Delete(got);
		rc = kube_patch(c, &deps, ns, "rt", "scale", KUBE_PATCH_MERGE,
				"{\"spec\":{\"replicas\":5}}", NULL, 0, NULL);
		CHECK(rc == 0, "scale patch: %s", kube_strerror(rc));
		rc = kube_get_object(c, &deps, ns, "rt", &got);
		CHECK(rc == 0 && k8s_int(got, "spec.replicas", -1) == 5, "scale reached spec");
		cJSON_Delete(got);
		printf("PASS scale\n");
		kube_delete(c, &deps, ns, "rt", "Background", NULL, NULL, NULL);
	}
	printf("ROUNDTRIP OK\n");
	return 0;
}

static int cmd_list(struct kube_client *c, int argc, char **argv)
{
	struct kube_res r;
	cJSON *items, *it;
	char *rv;
	int pages, rc, n = 0;
	CHECK(argc >= 4, "list API PLURAL NS PAGE_SIZE");
	r.api = argv[0];
	r.plural = argv[1];
	rc = kube_list_paged(c, &r, strcmp(argv[2], "-") ? argv[2] : NULL, NULL, atoi(argv[3]),
			     &items, &rv, &pages);
	CHECK(rc == 0, "list: %s", kube_strerror(rc));
	printf("{\"count\":%d,\"pages\":%d,\"rv\":\"%s\",\"names\":[", cJSON_GetArraySize(items),
	       pages, rv ? rv : "");
	cJSON_ArrayForEach(it, items)
	{
		printf("%s\"%s\"", n++ ? "," : "", k8s_str(it, "metadata.name"));
	}
	printf("]}\n");
	cJSON_Delete(items);
	free(rv);
	return 0;
}

/* ---- informer ---- */

struct deleted_log {
	pthread_mutex_t mu;
	cJSON *names;
};

static void on_delete_logged(void *arg, const cJSON *obj)
{
	struct deleted_log *d = arg;
	char key[512];
	if (kube_object_key(obj, key, sizeof(key)) == 0) {
		pthread_mutex_lock(&d->mu);
		cJSON_AddItemToArray(d->names, cJSON_CreateString(key));
		pthread_mutex_unlock(&d->mu);
	}
}

static void write_snapshot(const char *path, struct kube_informer *inf, struct deleted_log *d)
{
	struct kube_informer_stats st;
	cJSON *snap = cJSON_CreateObject(), *objs, *list = kube_informer_list(inf), *it;
	char tmp[1024], *text;
	FILE *f;

	kube_informer_stats(inf, &st);
	cJSON_AddBoolToObject(snap, "synced", kube_informer_has_synced(inf));
	cJSON_AddNumberToObject(snap, "count", cJSON_GetArraySize(list));
	cJSON_AddStringToObject(snap, "rv", st.rv);
	cJSON_AddNumberToObject(snap, "events", (double)st.events);
	cJSON_AddNumberToObject(snap, "lists", (double)st.lists);
	cJSON_AddNumberToObject(snap, "relists_gone", (double)st.relists_gone);
	cJSON_AddNumberToObject(snap, "watches", (double)st.watches);
	cJSON_AddNumberToObject(snap, "errors", (double)st.errors);
	objs = cJSON_AddObjectToObject(snap, "objects");
	cJSON_ArrayForEach(it, list)
	{
		char key[512];
		if (kube_object_key(it, key, sizeof(key)) == 0)
			cJSON_AddStringToObject(objs, key, k8s_str(it, "metadata.resourceVersion"));
	}
	pthread_mutex_lock(&d->mu);
	cJSON_AddItemToObject(snap, "deleted", cJSON_Duplicate(d->names, 1));
	pthread_mutex_unlock(&d->mu);
	text = cJSON_PrintUnformatted(snap);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	f = fopen(tmp, "w");
	if (f && text) {
		fputs(text, f);
		fclose(f);
		rename(tmp, path);
	} else if (f) {
		fclose(f);
	}
	free(text);
	cJSON_Delete(list);
	cJSON_Delete(snap);
}

static int cmd_informer(struct kube_client *c, int argc, char **argv)
{
	struct kube_res r;
	struct kube_informers *loop;
	struct kube_informer *inf;
	struct deleted_log d = {PTHREAD_MUTEX_INITIALIZER, cJSON_CreateArray()};
	struct kube_handlers h = {NULL, NULL, on_delete_logged, &d};
	const char *index[2] = {NULL, NULL};
	struct kube_informer_opts o = {.res = &r, .handlers = &h, .index_labels = index};
	CHECK(argc >= 4, "informer API PLURAL NS SNAPSHOT [--index L] [--watch-timeout MIN MAX]");
	r.api = argv[0];
	r.plural = argv[1];
	o.ns = strcmp(argv[2], "-") ? argv[2] : NULL;
	for (int i = 4; i < argc; i++) {
		if (strcmp(argv[i], "--index") == 0 && i + 1 < argc)
			index[0] = argv[++i];
		else if (strcmp(argv[i], "--watch-timeout") == 0 && i + 2 < argc) {
			o.watch_timeout_min_s = atoi(argv[++i]);
			o.watch_timeout_max_s = atoi(argv[++i]);
		} else if (strcmp(argv[i], "--backoff-max-ms") == 0 && i + 1 < argc)
			o.backoff_max_ms = (uint64_t)atoll(argv[++i]);
	}
	CHECK(kube_informers_new(c, &loop) == 0, "loop");
	CHECK(kube_informer_add(loop, &o, &inf) == 0, "informer");
	CHECK(kube_informers_start(loop) == 0, "start");
	while (!atomic_load(&stopping)) {
		write_snapshot(argv[3], inf, &d);
		usleep(200000);
	}
	write_snapshot(argv[3], inf, &d);
	kube_informers_free(loop);
	cJSON_Delete(d.names);
	return 0;
}

/* ---- leader ---- */

static void leader_started(void *arg)
{
	printf("LEADING %s %.3f\n", (const char *)arg, now_s());
	fflush(stdout);
}

static int cmd_leader(struct kube_client *c, int argc, char **argv)
{
	struct kube_leader *le;
	struct kube_leader_opts o = {0};
	CHECK(argc >= 3, "leader NS NAME IDENTITY");
	o.ns = argv[0];
	o.name = argv[1];
	o.identity = argv[2];
	o.on_started_leading = leader_started;
	o.arg = argv[2];
	CHECK(kube_leader_new(c, &o, &le) == 0, "leader");
	CHECK(kube_leader_start(le) == 0, "start");
	printf("STARTED %s %.3f\n", argv[2], now_s());
	fflush(stdout);
	while (!atomic_load(&stopping))
		usleep(50000);
	kube_leader_stop(le);
	printf("RELEASED %s %.3f\n", argv[2], now_s());
	fflush(stdout);
	kube_leader_free(le);
	return 0;
}

/* ---- whoami: which identity the server sees, per request ---- */

static int cmd_whoami(struct kube_client *c)
{
	char line[256];
	const char *body = "{\"apiVersion\":\"authentication.k8s.io/v1\","
			   "\"kind\":\"SelfSubjectReview\"}";
	while (fgets(line, sizeof(line), stdin)) {
		struct kube_response r;
		int rc =
		    kube_request(c, "POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews",
				 "application/json", body, strlen(body), &r);
		if (rc) {
			printf("ERROR %s\n", kube_strerror(rc));
		} else {
			const char *u = k8s_str(r.json, "status.userInfo.username");
			printf("%ld %s\n", r.http_status, u ? u : "-");
			kube_response_free(&r);
		}
		fflush(stdout);
	}
	return 0;
}

/* ---- bench ---- */

/* Heap bytes in use (RSS would miss memory reused from earlier frees). */
static size_t heap_in_use(void)
{
	struct mallinfo2 mi = mallinfo2();
	return mi.uordblks + mi.hblkhd;
}

/* Reads a watch from resourceVersion 0 (the server replays every object as ADDED) into
 * memory, then times applying it to a fresh informer cache: the informer's own cost,
 * without the network. Also the heap the cache holds per object (cJSON trees, keys,
 * indexes). */
static int cmd_bench(struct kube_client *c, int argc, char **argv)
{
	struct kube_res r;
	struct kube_informers *loop;
	struct kube_informer *inf;
	struct kube_informer_opts o = {.res = &r};
	struct kube_response resp;
	char path[512];
	size_t heap0, heap1;
	double t0, t1;
	size_t n, json_bytes = 0;
	cJSON *items;
	int rc, count;

	CHECK(argc >= 3, "bench API PLURAL NS");
	r.api = argv[0];
	r.plural = argv[1];
	rc = kube_list(c, &r, argv[2], NULL, 500, &items, NULL);
	CHECK(rc == 0, "list: %s", kube_strerror(rc));
	count = cJSON_GetArraySize(items);
	{
		cJSON *it;
		cJSON_ArrayForEach(it, items)
		{
			char *s = cJSON_PrintUnformatted(it);
			json_bytes += strlen(s);
			free(s);
		}
	}
	cJSON_Delete(items);
	kube_path(path, sizeof(path) - 80, &r, argv[2], NULL, NULL);
	strcat(path, "?watch=1&resourceVersion=0&timeoutSeconds=3");
	t0 = mono_s();
	rc = kube_request(c, "GET", path, NULL, NULL, 0, &resp);
	CHECK(rc == 0 && resp.http_status == 200, "watch read: %s", kube_strerror(rc));
	t1 = mono_s();
	fprintf(stderr, "read %zu bytes of watch events in %.2fs\n", resp.body_len, t1 - t0);

	CHECK(kube_informers_new(c, &loop) == 0, "loop");
	CHECK(kube_informer_add(loop, &o, &inf) == 0, "informer");
	heap0 = heap_in_use();
	t0 = mono_s();
	rc = kube_informer_feed_watch(inf, resp.body, resp.body_len);
	t1 = mono_s();
	CHECK(rc == 0, "feed: %d", rc);
	heap1 = heap_in_use();
	n = kube_informer_count(inf);
	printf("{\"objects\":%zu,\"listed\":%d,\"events_per_s\":%.0f,\"apply_s\":%.3f,"
	       "\"avg_json_bytes\":%.0f,\"heap_per_object_bytes\":%.0f,\"heap_ratio\":%.2f}\n",
	       n, count, (double)n / (t1 - t0), t1 - t0, count ? (double)json_bytes / count : 0,
	       n ? (double)(heap1 - heap0) / (double)n : 0,
	       n && count && json_bytes
		   ? ((double)(heap1 - heap0) / (double)n) / ((double)json_bytes / count)
		   : 0);
	kube_response_free(&resp);
	kube_informers_free(loop);

	/* End to end: a started informer's LIST (pages of 500) until synced. */
	{
		struct kube_informer_opts lo = {.res = &r, .ns = argv[2]};
		CHECK(kube_informers_new(c, &loop) == 0, "loop");
		CHECK(kube_informer_add(loop, &lo, &inf) == 0, "informer");
		t0 = mono_s();
		CHECK(kube_informers_start(loop) == 0, "start");
		CHECK(kube_informer_wait_synced(inf, 120000) == 0, "sync");
		t1 = mono_s();
		printf("{\"list_sync_objects\":%zu,\"list_sync_s\":%.3f,\"list_objects_per_s\":%."
		       "0f}\n",
		       kube_informer_count(inf), t1 - t0,
		       (double)kube_informer_count(inf) / (t1 - t0));
		kube_informers_free(loop);
	}
	return 0;
}

static int threads_now(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	int n = -1;
	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "Threads: %d", &n) == 1)
			break;
	if (f)
		fclose(f);
	return n;
}

/* N informers (N watches) on one loop: time to sync them all, then how long one new object
 * takes to reach every cache, and how many threads the process has meanwhile. */
static int cmd_fanout(struct kube_client *c, int argc, char **argv)
{
	static const struct kube_res cms = {"api/v1", "configmaps"};
	struct kube_res r;
	struct kube_informers *loop;
	struct kube_informer **infs;
	struct kube_informer_opts o = {.res = &r};
	double t0, t_sync, t_seen;
	int n, threads, rc;
	char key[300];
	cJSON *obj;

	CHECK(argc >= 4, "fanout API PLURAL NS N");
	r.api = argv[0];
	r.plural = argv[1];
	o.ns = argv[2];
	n = atoi(argv[3]);
	infs = calloc((size_t)n, sizeof(*infs));
	CHECK(infs && kube_informers_new(c, &loop) == 0, "loop");
	for (int i = 0; i < n; i++)
		CHECK(kube_informer_add(loop, &o, &infs[i]) == 0, "informer %d", i);
	t0 = mono_s();
	CHECK(kube_informers_start(loop) == 0, "start");
	for (int i = 0; i < n; i++)
		CHECK(kube_informer_wait_synced(infs[i], 120000) == 0, "sync %d", i);
	t_sync = mono_s() - t0;
	threads = threads_now();
	kube_delete(c, &cms, argv[2], "fanout-probe", NULL, NULL, NULL, NULL);
	usleep(500000);
	obj = configmap("fanout-probe", "1");
	t0 = mono_s();
	rc = kube_create(c, &cms, argv[2], obj, NULL);
	CHECK(rc == 0, "create: %s", kube_strerror(rc));
	cJSON_Delete(obj);
	snprintf(key, sizeof(key), "%s/fanout-probe", argv[2]);
	for (int i = 0; i < n; i++) {
		cJSON *got;
		while (!(got = kube_informer_get(infs[i], key))) {
			CHECK(mono_s() - t0 < 60, "informer %d never saw the new object", i);
			usleep(1000);
		}
		cJSON_Delete(got);
	}
	t_seen = mono_s() - t0;
	printf("{\"watches\":%d,\"threads\":%d,\"sync_all_s\":%.2f,\"event_to_all_s\":%.3f}\n", n,
	       threads, t_sync, t_seen);
	kube_delete(c, &cms, argv[2], "fanout-probe", NULL, NULL, NULL, NULL);
	kube_informers_free(loop);
	free(infs);
	return 0;
}

int main(int argc, char **argv)
{
	const char *kubeconfig = NULL, *sa_dir = NULL;
	struct kube_client *c;
	struct sigaction sa = {0};
	int rc;

	log_setup(getenv("KUBETOOL_DEBUG") ? LOG_LEVEL_DEBUG : LOG_LEVEL_INFO, LOG_FORMAT_TEXT);
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	setvbuf(stdout, NULL, _IOLBF, 0);
	argv++;
	argc--;
	while (argc >= 2 && strncmp(argv[0], "--", 2) == 0) {
		if (strcmp(argv[0], "--kubeconfig") == 0)
			kubeconfig = argv[1];
		else if (strcmp(argv[0], "--in-cluster") == 0)
			sa_dir = argv[1];
		argv += 2;
		argc -= 2;
	}
	if (argc < 1 || strcmp(argv[0], "--help") == 0) {
		fprintf(stderr, "usage: kubetool [--kubeconfig PATH | --in-cluster SA_DIR] "
				"get|roundtrip|list|informer|leader|whoami|bench|fanout ARGS\n");
		return 2;
	}
	if (sa_dir) {
		struct kube_config *cfg;
		char err[512];
		rc = kube_config_in_cluster_dir(sa_dir, &cfg, err, sizeof(err));
		CHECK(rc == 0, "in-cluster: %s", err);
		CHECK(kube_client_new(cfg, &c) == 0, "client");
	} else {
		c = connect_kube(kubeconfig);
	}
	if (strcmp(argv[0], "get") == 0)
		rc = cmd_get(c, argc - 1, argv + 1);
	else if (strcmp(argv[0], "roundtrip") == 0)
		rc = cmd_roundtrip(c, argc - 1, argv + 1);
	else if (strcmp(argv[0], "list") == 0)
		rc = cmd_list(c, argc - 1, argv + 1);
	else if (strcmp(argv[0], "informer") == 0)
		rc = cmd_informer(c, argc - 1, argv + 1);
	else if (strcmp(argv[0], "leader") == 0)
		rc = cmd_leader(c, argc - 1, argv + 1);
	else if (strcmp(argv[0], "whoami") == 0)
		rc = cmd_whoami(c);
	else if (strcmp(argv[0], "bench") == 0)
		rc = cmd_bench(c, argc - 1, argv + 1);
	else if (strcmp(argv[0], "fanout") == 0)
		rc = cmd_fanout(c, argc - 1, argv + 1);
	else {
		fprintf(stderr, "kubetool: unknown command %s\n", argv[0]);
		rc = 2;
	}
	kube_client_free(c);
	return rc;
}
