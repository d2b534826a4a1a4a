#include "grpc/resource_service.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "resource.pb-c.h"
#include "grpc/script.h"
#include "grpc/script_apply.h"

static int pack(const char *endpoint, const char *token, uint8_t **buf, size_t *len, void *arg)
{
	Resourceproto__ApplyResourceResponse out = RESOURCEPROTO__APPLY_RESOURCE_RESPONSE__INIT;
	Resourceproto__ApplyResourceResponse__HeadersEntry h =
	    RESOURCEPROTO__APPLY_RESOURCE_RESPONSE__HEADERS_ENTRY__INIT;
	Resourceproto__ApplyResourceResponse__HeadersEntry *hs[1] = {&h};
	out.endpoint = (char *)endpoint;
	h.key = "x-authorization";
	h.value = (char *)token;
	out.n_headers = 1;
	out.headers = hs;
	*len = resourceproto__apply_resource_response__get_packed_size(&out);
	*buf = malloc(*len ? *len : 1);
	if (!*buf)
		return -ENOMEM;
	resourceproto__apply_resource_response__pack(&out, *buf);
	return 0;
}

static int decode(const uint8_t *req, size_t len, Resourceproto__ApplyResourceRequest **out,
		  char *err, size_t errlen)
{
	Resourceproto__ApplyResourceRequest *in =
	    resourceproto__apply_resource_request__unpack(NULL, len, req);
	if (!in) {
		snprintf(err, errlen, "the ApplyResourceRequest could not be decoded");
		return -EINVAL;
	}
	int rc = 0;
	if (in->type[0] && strcasecmp(in->type, "udf") != 0) {
		snprintf(err, errlen, "type \"%.64s\" is not supported; only udf is", in->type);
		rc = -EINVAL;
	} else if (!in->script[0]) {
		snprintf(err, errlen, "script is empty");
		rc = -EINVAL;
	}
	if (rc < 0) {
		resourceproto__apply_resource_request__free_unpacked(in, NULL);
		return rc;
	}
	*out = in;
	return 0;
}

int resource_service_decode(const uint8_t *req, size_t len, char *err, size_t errlen)
{
	Resourceproto__ApplyResourceRequest *in = NULL;
	int rc = decode(req, len, &in, err, errlen);
	if (rc < 0)
		return rc;
	struct script_info info;
	rc = script_scan(in->script, strlen(in->script), &info, err, errlen);
	if (rc == 0)
		script_info_free(&info);
	resourceproto__apply_resource_request__free_unpacked(in, NULL);
	return rc;
}

static void on_apply(struct rpc_call *call, const uint8_t *req, size_t len, void *arg)
{
	struct functions *f = arg;
	char err[512];
	const char *tenant;
	Resourceproto__ApplyResourceRequest *in = NULL;

	if (service_tenant(service_md_tenant(call), NULL, &tenant, err, sizeof(err)) < 0 ||
	    decode(req, len, &in, err, sizeof(err)) < 0) {
		rpc_call_fail(call, RPC_INVALID_ARGUMENT, err);
		return;
	}
	{
		struct script_apply a = {
		    .tenant = tenant,
		    .protocol = FN_PROTO_RESOURCE_SERVICE,
		    .script = in->script,
		    .script_len = strlen(in->script),
		    .what = "the UDF",
		    .pack = pack,
		};
		script_apply_start(f, call, &a);
	}
	resourceproto__apply_resource_request__free_unpacked(in, NULL);
}

int resource_service_register(struct rpc_server *s, struct functions *f)
{
	return rpc_server_add_method(s, "/resourceproto.ResourceService/ApplyResource", on_apply,
				     f);
}
