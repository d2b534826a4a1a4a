#include "grpc/script_apply.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grpc/etag.h"
#include "util/log.h"
#include "udf/naming.h"
#include "grpc/script.h"

struct kv_copy {
	struct fn_kv *kv;
	size_t n;
};

struct job {
	struct functions *f;
	struct rpc_call *call;
	char *tenant;
	char *name;
	char *function_name;
	enum fn_protocol protocol;
	char *script;
	size_t script_len;
	struct script_info info;
	struct kv_copy tags, options;
	char what[320];
	int64_t answer_at;
	service_pack_fn pack;
	void *pack_arg;
	void (*pack_free)(void *);
};

static int kv_dup(struct kv_copy *c, const struct fn_kv *kv, size_t n)
{
	c->kv = calloc(n ? n : 1, sizeof(*c->kv));
	if (!c->kv)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		c->kv[i].key = strdup(kv[i].key);
		c->kv[i].value = strdup(kv[i].value);
		c->n++;
		if (!c->kv[i].key || !c->kv[i].value)
			return -ENOMEM;
	}
	return 0;
}

static void kv_free(struct kv_copy *c)
{
	for (size_t i = 0; i < c->n; i++) {
		free((char *)c->kv[i].key);
		free((char *)c->kv[i].value);
	}
	free(c->kv);
}

static void job_free(struct job *j)
{
	if (j->pack_free && j->pack_arg)
		j->pack_free(j->pack_arg);
	free(j->tenant);
	free(j->name);
	free(j->function_name);
	free(j->script);
	script_info_free(&j->info);
	kv_free(&j->tags);
	kv_free(&j->options);
	free(j);
}

static void on_outcome(void *arg, const struct fn_outcome *o)
{
	struct job *j = arg;
	service_answer_apply(j->call, o, j->what, j->pack, j->pack_arg);
	job_free(j);
}

/* Reads the tags, computes the key and applies. Runs on a blocking-work thread when the
 * script has urls, else on the caller's. */
static void run(void *arg)
{
	struct job *j = arg;
	char err[512];
	const char *tags[SCRIPT_MAX_IMPORTS];
	char *owned[SCRIPT_MAX_IMPORTS] = {0};
	char key[65], name[64];
	int rc = 0;

	for (size_t i = 0; i < j->info.n_imports && rc == 0; i++) {
		const struct script_import *im = &j->info.imports[i];
		int64_t left = j->answer_at - rpc_now_ms();
		long timeout = left < SCRIPT_ETAG_TIMEOUT_MS ? (long)left : SCRIPT_ETAG_TIMEOUT_MS;
		char tag[520];
		if (timeout <= 0) {
			rc = -ETIMEDOUT;
			snprintf(err, sizeof(err), "no time left to read the imports' tags");
			break;
		}
		rc = etag_fetch(im->url, (const char *const *)im->headers, im->n_headers, timeout,
				tag, sizeof(tag), err, sizeof(err));
		if (rc == 0) {
			owned[i] = strdup(tag);
			tags[i] = owned[i];
			if (!owned[i]) {
				rc = -ENOMEM;
				snprintf(err, sizeof(err), "out of memory");
			}
		}
	}
	if (rc < 0) {
		char msg[900];
		snprintf(msg, sizeof(msg), "%s: %s", j->what, err);
		rpc_call_fail(j->call, rc == -ETIMEDOUT ? RPC_UNAVAILABLE : RPC_FAILED_PRECONDITION,
			      msg);
		goto out;
	}
	rc = script_content_key(j->script, j->script_len, &j->info, tags, key);
	if (rc == 0 && !j->name)
		rc = naming_function_resource(key, name);
	if (rc < 0) {
		rpc_call_fail(j->call, RPC_RESOURCE_EXHAUSTED, "out of memory");
		goto out;
	}
	struct fn_desc d = {
	    .tenant = j->tenant,
	    .name = j->name ? j->name : name,
	    .function_name = j->function_name,
	    .content_key = key,
	    .protocol = j->protocol,
	    .script = j->script,
	    .tags = j->tags.kv,
	    .n_tags = j->tags.n,
	    .options = j->options.kv,
	    .n_options = j->options.n,
	};
	rc = functions_apply(j->f, &d, j->answer_at, on_outcome, j);
	for (size_t i = 0; i < SCRIPT_MAX_IMPORTS; i++)
		free(owned[i]);
	if (rc == 0)
		return; /* on_outcome answers and frees */
	rpc_call_fail(j->call, RPC_RESOURCE_EXHAUSTED, "out of memory");
	job_free(j);
	return;
out:
	for (size_t i = 0; i < SCRIPT_MAX_IMPORTS; i++)
		free(owned[i]);
	job_free(j);
}

void script_apply_start(struct functions *f, struct rpc_call *call, const struct script_apply *a)
{
	char err[512];
	struct job *j = calloc(1, sizeof(*j));
	if (!j) {
		if (a->pack_free)
			a->pack_free(a->pack_arg);
		rpc_call_fail(call, RPC_RESOURCE_EXHAUSTED, "out of memory");
		return;
	}
	j->pack = a->pack;
	j->pack_arg = a->pack_arg;
	j->pack_free = a->pack_free;
	int rc = script_scan(a->script, a->script_len, &j->info, err, sizeof(err));
	if (rc < 0) {
		service_fail_request(call, rc, err);
		job_free(j);
		return;
	}
	j->f = f;
	j->call = call;
	j->protocol = a->protocol;
	j->tenant = strdup(a->tenant);
	j->name = a->name ? strdup(a->name) : NULL;
	j->function_name = a->function_name ? strdup(a->function_name) : NULL;
	j->script = strndup(a->script, a->script_len);
	j->script_len = a->script_len;
	snprintf(j->what, sizeof(j->what), "%s", a->what);
	j->answer_at = service_answer_at(rpc_call_deadline_ms(call), rpc_now_ms());
	if (!j->tenant || (a->name && !j->name) || (a->function_name && !j->function_name) ||
	    !j->script || kv_dup(&j->tags, a->tags, a->n_tags) < 0 ||
	    kv_dup(&j->options, a->options, a->n_options) < 0) {
		rpc_call_fail(call, RPC_RESOURCE_EXHAUSTED, "out of memory");
		job_free(j);
		return;
	}
	if (j->info.n_imports == 0) {
		run(j);
		return;
	}
	int rc2 = functions_run_blocking(f, j->tenant, run, j);
	if (rc2 < 0) {
		service_fail_submit(call, f, rc2, j->tenant);
		job_free(j);
	}
}
