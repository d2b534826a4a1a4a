#include "grpc/udf_service.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/log.h"
#include "udf/naming.h"
#include "grpc/service.h"
#include "udf.pb-c.h"

struct pending {
	struct rpc_call *call;
	char what[320];
};

int udf_service_decode(const uint8_t *req, size_t len, struct udf_spec *out, char *err,
		       size_t errlen)
{
	Udfproto__ApplyUdfResourceRequest *in =
	    udfproto__apply_udf_resource_request__unpack(NULL, len, req);
	if (!in) {
		snprintf(err, errlen, "the ApplyUdfResourceRequest could not be decoded");
		return -EINVAL;
	}
	struct udf_import_in *imports = calloc(in->n_imports ? in->n_imports : 1, sizeof(*imports));
	int rc = -ENOMEM;
	if (imports) {
		for (size_t i = 0; i < in->n_imports; i++) {
			imports[i].location = in->imports[i]->location;
			imports[i].url = in->imports[i]->url;
			imports[i].tag = in->imports[i]->tag;
		}
		rc = udf_spec_parse(in->spec, strlen(in->spec), imports, in->n_imports, out, err,
				    errlen);
	}
	if (rc == -ENOMEM)
		snprintf(err, errlen, "out of memory");
	free(imports);
	udfproto__apply_udf_resource_request__free_unpacked(in, NULL);
	return rc;
}

static int pack(const char *endpoint, const char *token, uint8_t **buf, size_t *len, void *arg)
{
	Udfproto__ApplyUdfResourceResponse out = UDFPROTO__APPLY_UDF_RESOURCE_RESPONSE__INIT;
	Udfproto__ApplyUdfResourceResponse__HeadersEntry h =
	    UDFPROTO__APPLY_UDF_RESOURCE_RESPONSE__HEADERS_ENTRY__INIT;
	Udfproto__ApplyUdfResourceResponse__HeadersEntry *hs[1] = {&h};
	out.endpoint = (char *)endpoint;
	h.key = "x-authorization";
	h.value = (char *)token;
	out.n_headers = 1;
	out.headers = hs;
	*len = udfproto__apply_udf_resource_response__get_packed_size(&out);
	*buf = malloc(*len ? *len : 1);
	if (!*buf)
		return -ENOMEM;
	udfproto__apply_udf_resource_response__pack(&out, *buf);
	return 0;
}

static void on_outcome(void *arg, const struct fn_outcome *o)
{
	struct pending *p = arg;
	service_answer_apply(p->call, o, p->what, pack, NULL);
	free(p);
}

static void on_apply(struct rpc_call *call, const uint8_t *req, size_t len, void *arg)
{
	struct functions *f = arg;
	char err[768];
	const char *tenant;
	struct udf_spec spec;

	if (service_tenant(service_md_tenant(call), NULL, &tenant, err, sizeof(err)) < 0) {
		rpc_call_fail(call, RPC_INVALID_ARGUMENT, err);
		return;
	}
	int rc = udf_service_decode(req, len, &spec, err, sizeof(err));
	if (rc < 0) {
		service_fail_request(call, rc, err);
		return;
	}
	char name[64];
	struct fn_import imports[UDF_SPEC_MAX_IMPORTS];
	struct pending *p = malloc(sizeof(*p));
	if (!p || naming_function_udf(spec.handler, spec.content_key, name) < 0) {
		free(p);
		udf_spec_free(&spec);
		rpc_call_fail(call, RPC_RESOURCE_EXHAUSTED, "out of memory");
		return;
	}
	for (size_t i = 0; i < spec.n_imports; i++)
		imports[i] = (struct fn_import){spec.imports[i].location, spec.imports[i].url,
						spec.imports[i].tag};
	struct fn_desc d = {
	    .tenant = tenant,
	    .name = name,
	    .function_name = spec.handler,
	    .content_key = spec.content_key,
	    .protocol = FN_PROTO_UDF_SERVICE,
	    .handler = spec.handler,
	    .input_types = (const char *const *)spec.input_types,
	    .n_input_types = spec.n_input_types,
	    .result_type = spec.result_type,
	    .code = spec.code,
	    .packages = (const char *const *)spec.packages,
	    .n_packages = spec.n_packages,
	    .imports = imports,
	    .n_imports = spec.n_imports,
	    .runtime_version = spec.runtime_version,
	};
	p->call = call;
	snprintf(p->what, sizeof(p->what), "UDF handler \"%s\" (UdfFunction %s)", spec.handler,
		 name);
	int64_t now = rpc_now_ms();
	rc = functions_apply(f, &d, service_answer_at(rpc_call_deadline_ms(call), now), on_outcome,
			     p);
	udf_spec_free(&spec);
	if (rc < 0) {
		free(p);
		rpc_call_fail(call, RPC_RESOURCE_EXHAUSTED, "out of memory");
	}
}

int udf_service_register(struct rpc_server *s, struct functions *f)
{
	return rpc_server_add_method(s, "/udfproto.UdfService/ApplyUdfResource", on_apply, f);
}
