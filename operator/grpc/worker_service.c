#include "grpc/worker_service.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "resource.pb-c.h"
#include "grpc/script.h"
#include "grpc/script_apply.h"
#include "grpc/service.h"
#include "api/records.h"

#define MAX_MAP_ENTRIES 64
#define MAX_KEY		256
#define MAX_VALUE	1024

static enum rpc_status status_of(enum fn_result r)
{
	switch (r) {
	case FN_READY:
		return RPC_OK;
	case FN_NOT_FOUND:
		return RPC_NOT_FOUND;
	case FN_EXISTS:
		return RPC_ALREADY_EXISTS;
	case FN_INVALID:
		return RPC_INVALID_ARGUMENT;
	case FN_UNREACHABLE:
	case FN_SHUTDOWN:
	case FN_PROVISIONING:
	case FN_STARTING:
		return RPC_UNAVAILABLE;
	case FN_FAILED:
	case FN_REJECTED:
	case FN_CONFLICT:
		return RPC_FAILED_PRECONDITION;
	case FN_EXHAUSTED:
		return RPC_RESOURCE_EXHAUSTED;
	}
	return RPC_INTERNAL;
}

static int printable(const char *s)
{
	for (; *s; s++) {
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return 0;
	}
	return 1;
}

static int check_name(const char *name, char *err, size_t errlen)
{
	size_t n = strlen(name);
	if (n == 0) {
		snprintf(err, errlen, "name is empty: a worker needs a name");
		return -EINVAL;
	}
	if (n > RECORD_NAME_MAX || !printable(name)) {
		snprintf(err, errlen, "name must be 1 to %d printable characters", RECORD_NAME_MAX);
		return -EINVAL;
	}
	return 0;
}

/* Generated map entries all share this layout after the message header. */
struct map_entry {
	ProtobufCMessage base;
	char *key;
	char *value;
};

static int check_map(const char *field, void **entries, size_t n, struct fn_kv **out, char *err,
		     size_t errlen)
{
	*out = NULL;
	if (n > MAX_MAP_ENTRIES) {
		snprintf(err, errlen, "%s has %zu entries; at most %d are allowed", field, n,
			 MAX_MAP_ENTRIES);
		return -EINVAL;
	}
	struct fn_kv *kv = calloc(n ? n : 1, sizeof(*kv));
	if (!kv) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		const struct map_entry *e = entries[i];
		size_t kl = strlen(e->key), vl = strlen(e->value);
		if (kl == 0 || kl > MAX_KEY || !printable(e->key) || strchr(e->key, '/')) {
			snprintf(err, errlen,
				 "%s: the key \"%.64s\" must be 1 to %d printable "
				 "characters without /",
				 field, e->key, MAX_KEY);
			free(kv);
			return -EINVAL;
		}
		if (vl > MAX_VALUE || !printable(e->value)) {
			snprintf(err, errlen,
				 "%s[%.64s]: the value must be at most %d printable "
				 "characters",
				 field, e->key, MAX_VALUE);
			free(kv);
			return -EINVAL;
		}
		kv[i] = (struct fn_kv){e->key, e->value};
	}
	*out = kv;
	return 0;
}

static int check_keys(const char *field, char **keys, size_t n, char *err, size_t errlen)
{
	if (n > MAX_MAP_ENTRIES) {
		snprintf(err, errlen, "%s has %zu entries; at most %d are allowed", field, n,
			 MAX_MAP_ENTRIES);
		return -EINVAL;
	}
	for (size_t i = 0; i < n; i++) {
		if (!keys[i][0] || strlen(keys[i]) > MAX_KEY || !printable(keys[i]) ||
		    strchr(keys[i], '/')) {
			snprintf(err, errlen, "%s[%zu] is not a valid key", field, i);
			return -EINVAL;
		}
	}
	return 0;
}

/* ---- Worker messages ---- */

struct packed_worker {
	Resourceproto__Worker w;
	Resourceproto__Worker__TagsEntry *tags;
	Resourceproto__Worker__TagsEntry **tagp;
	Resourceproto__Worker__OptionsEntry *opts;
	Resourceproto__Worker__OptionsEntry **optp;
};

static int worker_pack(struct packed_worker *p, const struct record_info *in)
{
	memset(p, 0, sizeof(*p));
	resourceproto__worker__init(&p->w);
	p->tags = calloc(in->n_tags ? in->n_tags : 1, sizeof(*p->tags));
	p->tagp = calloc(in->n_tags ? in->n_tags : 1, sizeof(*p->tagp));
	p->opts = calloc(in->n_options ? in->n_options : 1, sizeof(*p->opts));
	p->optp = calloc(in->n_options ? in->n_options : 1, sizeof(*p->optp));
	if (!p->tags || !p->tagp || !p->opts || !p->optp)
		return -ENOMEM;
	p->w.name = (char *)in->name;
	p->w.created_at = (char *)(in->created_at ? in->created_at : "");
	p->w.updated_at = (char *)(in->updated_at ? in->updated_at : "");
	for (size_t i = 0; i < in->n_tags; i++) {
		resourceproto__worker__tags_entry__init(&p->tags[i]);
		p->tags[i].key = (char *)in->tags[i].key;
		p->tags[i].value = (char *)in->tags[i].value;
		p->tagp[i] = &p->tags[i];
	}
	for (size_t i = 0; i < in->n_options; i++) {
		resourceproto__worker__options_entry__init(&p->opts[i]);
		p->opts[i].key = (char *)in->options[i].key;
		p->opts[i].value = (char *)in->options[i].value;
		p->optp[i] = &p->opts[i];
	}
	p->w.n_tags = in->n_tags;
	p->w.tags = p->tagp;
	p->w.n_options = in->n_options;
	p->w.options = p->optp;
	return 0;
}

static void worker_unpack_free(struct packed_worker *p)
{
	free(p->tags);
	free(p->tagp);
	free(p->opts);
	free(p->optp);
}

static void reply_message(struct rpc_call *call, const ProtobufCMessage *m)
{
	size_t len = protobuf_c_message_get_packed_size(m);
	uint8_t *buf = malloc(len ? len : 1);
	if (!buf) {
		rpc_call_fail(call, RPC_RESOURCE_EXHAUSTED, "out of memory");
		return;
	}
	protobuf_c_message_pack(m, buf);
	rpc_call_reply(call, buf, len);
	free(buf);
}

/* ---- CreateWorker ---- */

static void on_created(void *arg, enum fn_result r, const char *message,
		       const struct record_info *w, size_t n)
{
	struct rpc_call *call = arg;
	if (r != FN_READY || n != 1) {
		rpc_call_fail(call, status_of(r), message);
		return;
	}
	struct packed_worker pw;
	Resourceproto__CreateWorkerResponse out = RESOURCEPROTO__CREATE_WORKER_RESPONSE__INIT;
	if (worker_pack(&pw, w) < 0) {
		rpc_call_fail(call, RPC_RESOURCE_EXHAUSTED, "out of memory");
	} else {
		out.worker = &pw.w;
		out.endpoint = "";
		reply_message(call, &out.base);
	}
	worker_unpack_free(&pw);
}

/* For a UDF's CreateWorker: the worker as requested, answered with the endpoint. */
struct udf_worker_reply {
	char *name;
	struct fn_kv *tags;
	size_t n_tags;
	struct fn_kv *options;
	size_t n_options;
	Resourceproto__CreateWorkerRequest *req; /* owns the strings above */
};

static void udf_worker_reply_free(void *arg)
{
	struct udf_worker_reply *r = arg;
	free(r->tags);
	free(r->options);
	resourceproto__create_worker_request__free_unpacked(r->req, NULL);
	free(r);
}

static int pack_udf_worker(const char *endpoint, const char *token, uint8_t **buf, size_t *len,
			   void *arg)
{
	struct udf_worker_reply *r = arg;
	struct record_info info = {r->name, r->tags, r->n_tags, r->options, r->n_options, "", ""};
	struct packed_worker pw;
	Resourceproto__CreateWorkerResponse out = RESOURCEPROTO__CREATE_WORKER_RESPONSE__INIT;
	Resourceproto__CreateWorkerResponse__HeadersEntry h =
	    RESOURCEPROTO__CREATE_WORKER_RESPONSE__HEADERS_ENTRY__INIT;
	Resourceproto__CreateWorkerResponse__HeadersEntry *hs[1] = {&h};
	int rc = worker_pack(&pw, &info);
	if (rc == 0) {
		out.worker = &pw.w;
		out.endpoint = (char *)endpoint;
		h.key = "x-authorization";
		h.value = (char *)token;
		out.n_headers = 1;
		out.headers = hs;
		*len = resourceproto__create_worker_response__get_packed_size(&out);
		*buf = malloc(*len ? *len : 1);
		if (*buf)
			resourceproto__create_worker_response__pack(&out, *buf);
		else
			rc = -ENOMEM;
	}
	worker_unpack_free(&pw);
	return rc;
}

struct create_req {
	Resourceproto__CreateWorkerRequest *in;
	const char *tenant;
	struct fn_kv *tags, *options;
};

static void create_req_free(struct create_req *r)
{
	free(r->tags);
	free(r->options);
	if (r->in)
		resourceproto__create_worker_request__free_unpacked(r->in, NULL);
	memset(r, 0, sizeof(*r));
}

static int decode_create(const uint8_t *req, size_t len, const char *md_tenant,
			 struct create_req *r, char *err, size_t errlen)
{
	memset(r, 0, sizeof(*r));
	r->in = resourceproto__create_worker_request__unpack(NULL, len, req);
	if (!r->in) {
		snprintf(err, errlen, "the CreateWorkerRequest could not be decoded");
		return -EINVAL;
	}
	Resourceproto__CreateWorkerRequest *in = r->in;
	int rc = service_tenant(md_tenant, in->tenant_id, &r->tenant, err, errlen);
	if (rc == 0)
		rc = check_name(in->name, err, errlen);
	if (rc == 0 && in->type[0] && strcasecmp(in->type, "udf") != 0) {
		snprintf(err, errlen, "type \"%.64s\" is not supported; only udf is", in->type);
		rc = -EINVAL;
	}
	if (rc == 0)
		rc = check_map("tags", (void **)in->tags, in->n_tags, &r->tags, err, errlen);
	if (rc == 0)
		rc = check_map("options", (void **)in->options, in->n_options, &r->options, err,
			       errlen);
	if (rc == 0 && in->script[0]) {
		struct script_info info;
		rc = script_scan(in->script, strlen(in->script), &info, err, errlen);
		if (rc == 0)
			script_info_free(&info);
	}
	if (rc < 0)
		create_req_free(r);
	return rc;
}

static void on_create(struct rpc_call *call, const uint8_t *req, size_t len, void *arg)
{
	struct functions *f = arg;
	char err[512];
	struct create_req cr;
	int rc = decode_create(req, len, service_md_tenant(call), &cr, err, sizeof(err));
	if (rc < 0) {
		service_fail_request(call, rc, err);
		return;
	}
	Resourceproto__CreateWorkerRequest *in = cr.in;
	const char *tenant = cr.tenant;
	struct fn_kv *tags = cr.tags, *options = cr.options;
	if (!in->script[0]) {
		rc = records_create(f, tenant, in->name, tags, in->n_tags, options, in->n_options,
				    in->if_not_exists, on_created, call);
		if (rc < 0)
			service_fail_submit(call, f, rc, tenant);
		goto out_free;
	}
	/* A UDF: provision it under the worker's name. */
	char object[64], what[400];
	struct udf_worker_reply *r = calloc(1, sizeof(*r));
	if (!r || naming_function_record(in->name, object) < 0) {
		free(r);
		rpc_call_fail(call, RPC_RESOURCE_EXHAUSTED, "out of memory");
		goto out_free;
	}
	snprintf(what, sizeof(what), "UDF \"%.256s\"", in->name);
	r->name = in->name;
	r->tags = tags;
	r->n_tags = in->n_tags;
	r->options = options;
	r->n_options = in->n_options;
	r->req = in;
	struct script_apply a = {
	    .tenant = tenant,
	    .name = object,
	    .function_name = in->name,
	    .protocol = FN_PROTO_WORKER_SERVICE,
	    .script = in->script,
	    .script_len = strlen(in->script),
	    .tags = tags,
	    .n_tags = in->n_tags,
	    .options = options,
	    .n_options = in->n_options,
	    .what = what,
	    .pack = pack_udf_worker,
	    .pack_arg = r,
	    .pack_free = udf_worker_reply_free,
	};
	script_apply_start(f, call, &a); /* r (and with it in) is freed after the answer */
	return;
out_free:
	create_req_free(&cr);
}

/* ---- AlterWorker ---- */

static void on_altered(void *arg, enum fn_result r, const char *message,
		       const struct record_info *w, size_t n)
{
	struct rpc_call *call = arg;
	if (r != FN_READY || n != 1) {
		rpc_call_fail(call, status_of(r), message);
		return;
	}
	struct packed_worker pw;
	Resourceproto__AlterWorkerResponse out = RESOURCEPROTO__ALTER_WORKER_RESPONSE__INIT;
	if (worker_pack(&pw, w) < 0) {
		rpc_call_fail(call, RPC_RESOURCE_EXHAUSTED, "out of memory");
	} else {
		out.worker = &pw.w;
		reply_message(call, &out.base);
	}
	worker_unpack_free(&pw);
}

struct alter_req {
	Resourceproto__AlterWorkerRequest *in;
	const char *tenant;
	struct fn_kv *set_tags, *set_options;
};

static void alter_req_free(struct alter_req *r)
{
	free(r->set_tags);
	free(r->set_options);
	if (r->in)
		resourceproto__alter_worker_request__free_unpacked(r->in, NULL);
	memset(r, 0, sizeof(*r));
}

static int decode_alter(const uint8_t *req, size_t len, const char *md_tenant, struct alter_req *r,
			char *err, size_t errlen)
{
	memset(r, 0, sizeof(*r));
	r->in = resourceproto__alter_worker_request__unpack(NULL, len, req);
	if (!r->in) {
		snprintf(err, errlen, "the AlterWorkerRequest could not be decoded");
		return -EINVAL;
	}
	Resourceproto__AlterWorkerRequest *in = r->in;
	int rc = service_tenant(md_tenant, in->tenant_id, &r->tenant, err, errlen);
	if (rc == 0)
		rc = check_name(in->name, err, errlen);
	if (rc == 0)
		rc = check_map("set_tags", (void **)in->set_tags, in->n_set_tags, &r->set_tags, err,
			       errlen);
	if (rc == 0)
		rc = check_map("set_options", (void **)in->set_options, in->n_set_options,
			       &r->set_options, err, errlen);
	if (rc == 0)
		rc = check_keys("unset_tags", in->unset_tags, in->n_unset_tags, err, errlen);
	if (rc == 0)
		rc = check_keys("unset_options", in->unset_options, in->n_unset_options, err,
				errlen);
	if (rc == 0 && ((int)in->state_action < 0 || (int)in->state_action > 2)) {
		snprintf(err, errlen, "state_action %d is not Suspend or Resume",
			 (int)in->state_action);
		rc = -EINVAL;
	}
	if (rc < 0)
		alter_req_free(r);
	return rc;
}

static void on_alter(struct rpc_call *call, const uint8_t *req, size_t len, void *arg)
{
	struct functions *f = arg;
	char err[512];
	struct alter_req ar;
	int rc = decode_alter(req, len, service_md_tenant(call), &ar, err, sizeof(err));
	if (rc < 0) {
		service_fail_request(call, rc, err);
		return;
	}
	Resourceproto__AlterWorkerRequest *in = ar.in;
	const char *tenant = ar.tenant;
	struct fn_kv *set_tags = ar.set_tags, *set_options = ar.set_options;
	struct record_change c = {
	    .set_tags = set_tags,
	    .n_set_tags = in->n_set_tags,
	    .unset_tags = (const char *const *)in->unset_tags,
	    .n_unset_tags = in->n_unset_tags,
	    .set_options = set_options,
	    .n_set_options = in->n_set_options,
	    .unset_options = (const char *const *)in->unset_options,
	    .n_unset_options = in->n_unset_options,
	    .state = (enum record_state_action)in->state_action,
	};
	if ((rc = records_alter(f, tenant, in->name, &c, on_altered, call)) < 0)
		service_fail_submit(call, f, rc, tenant);
	alter_req_free(&ar);
}

/* ---- DropWorker ---- */

static void on_dropped(void *arg, enum fn_result r, const char *message,
		       const struct record_info *w, size_t n)
{
	struct rpc_call *call = arg;
	if (r != FN_READY) {
		rpc_call_fail(call, status_of(r), message);
		return;
	}
	Resourceproto__DropWorkerResponse out = RESOURCEPROTO__DROP_WORKER_RESPONSE__INIT;
	reply_message(call, &out.base);
}

static int decode_drop(const uint8_t *req, size_t len, const char *md_tenant,
		       Resourceproto__DropWorkerRequest **out, const char **tenant, char *err,
		       size_t errlen)
{
	Resourceproto__DropWorkerRequest *in =
	    resourceproto__drop_worker_request__unpack(NULL, len, req);
	if (!in) {
		snprintf(err, errlen, "the DropWorkerRequest could not be decoded");
		return -EINVAL;
	}
	int rc = service_tenant(md_tenant, in->tenant_id, tenant, err, errlen);
	if (rc == 0)
		rc = check_name(in->name, err, errlen);
	if (rc < 0) {
		resourceproto__drop_worker_request__free_unpacked(in, NULL);
		return rc;
	}
	*out = in;
	return 0;
}

static void on_drop(struct rpc_call *call, const uint8_t *req, size_t len, void *arg)
{
	struct functions *f = arg;
	char err[512];
	const char *tenant;
	int rc;
	Resourceproto__DropWorkerRequest *in = NULL;
	if (decode_drop(req, len, service_md_tenant(call), &in, &tenant, err, sizeof(err)) < 0) {
		rpc_call_fail(call, RPC_INVALID_ARGUMENT, err);
		return;
	}
	if ((rc = records_drop(f, tenant, in->name, in->if_exists, on_dropped, call)) < 0)
		service_fail_submit(call, f, rc, tenant);
	resourceproto__drop_worker_request__free_unpacked(in, NULL);
}

/* ---- ListWorkers ---- */

static void on_listed(void *arg, enum fn_result r, const char *message, const struct record_info *w,
		      size_t n)
{
	struct rpc_call *call = arg;
	if (r != FN_READY) {
		rpc_call_fail(call, status_of(r), message);
		return;
	}
	struct packed_worker *pw = calloc(n ? n : 1, sizeof(*pw));
	Resourceproto__Worker **ws = calloc(n ? n : 1, sizeof(*ws));
	size_t done = 0;
	int ok = pw && ws;
	for (; ok && done < n; done++) {
		ok = worker_pack(&pw[done], &w[done]) == 0;
		ws[done] = &pw[done].w;
	}
	if (ok) {
		Resourceproto__ListWorkersResponse out = RESOURCEPROTO__LIST_WORKERS_RESPONSE__INIT;
		out.n_workers = n;
		out.workers = ws;
		reply_message(call, &out.base);
	} else {
		rpc_call_fail(call, RPC_RESOURCE_EXHAUSTED, "out of memory");
	}
	for (size_t i = 0; pw && i < done; i++)
		worker_unpack_free(&pw[i]);
	free(pw);
	free(ws);
}

static int decode_list(const uint8_t *req, size_t len, const char *md_tenant,
		       Resourceproto__ListWorkersRequest **out, const char **tenant, char *err,
		       size_t errlen)
{
	Resourceproto__ListWorkersRequest *in =
	    resourceproto__list_workers_request__unpack(NULL, len, req);
	if (!in) {
		snprintf(err, errlen, "the ListWorkersRequest could not be decoded");
		return -EINVAL;
	}
	if (service_tenant(md_tenant, in->tenant_id, tenant, err, errlen) < 0) {
		resourceproto__list_workers_request__free_unpacked(in, NULL);
		return -EINVAL;
	}
	*out = in;
	return 0;
}

static void on_list(struct rpc_call *call, const uint8_t *req, size_t len, void *arg)
{
	struct functions *f = arg;
	char err[512];
	const char *tenant;
	int rc;
	Resourceproto__ListWorkersRequest *in = NULL;
	if (decode_list(req, len, service_md_tenant(call), &in, &tenant, err, sizeof(err)) < 0) {
		rpc_call_fail(call, RPC_INVALID_ARGUMENT, err);
		return;
	}
	if ((rc = records_list(f, tenant, on_listed, call)) < 0)
		service_fail_submit(call, f, rc, tenant);
	resourceproto__list_workers_request__free_unpacked(in, NULL);
}

int worker_service_decode(enum worker_method m, const uint8_t *req, size_t len,
			  const char *md_tenant, char *err, size_t errlen)
{
	const char *tenant;
	int rc = -EINVAL;
	switch (m) {
	case WORKER_CREATE: {
		struct create_req r;
		rc = decode_create(req, len, md_tenant, &r, err, errlen);
		if (rc == 0)
			create_req_free(&r);
		break;
	}
	case WORKER_ALTER: {
		struct alter_req r;
		rc = decode_alter(req, len, md_tenant, &r, err, errlen);
		if (rc == 0)
			alter_req_free(&r);
		break;
	}
	case WORKER_DROP: {
		Resourceproto__DropWorkerRequest *in;
		rc = decode_drop(req, len, md_tenant, &in, &tenant, err, errlen);
		if (rc == 0)
			resourceproto__drop_worker_request__free_unpacked(in, NULL);
		break;
	}
	case WORKER_LIST: {
		Resourceproto__ListWorkersRequest *in;
		rc = decode_list(req, len, md_tenant, &in, &tenant, err, errlen);
		if (rc == 0)
			resourceproto__list_workers_request__free_unpacked(in, NULL);
		break;
	}
	}
	return rc;
}

int worker_service_register(struct rpc_server *s, struct functions *f)
{
	int rc =
	    rpc_server_add_method(s, "/resourceproto.WorkerService/CreateWorker", on_create, f);
	if (rc == 0)
		rc = rpc_server_add_method(s, "/resourceproto.WorkerService/AlterWorker", on_alter,
					   f);
	if (rc == 0)
		rc =
		    rpc_server_add_method(s, "/resourceproto.WorkerService/DropWorker", on_drop, f);
	if (rc == 0)
		rc = rpc_server_add_method(s, "/resourceproto.WorkerService/ListWorkers", on_list,
					   f);
	return rc;
}
