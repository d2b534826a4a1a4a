#include "grpc/service.h"

#include <errno.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/log.h"
#include "udf/naming.h"

/* --tenant-pattern: set once before serving (service_set_tenant_pattern). */
static regex_t tenant_re;
static char tenant_pattern[256];
static int tenant_re_set;

int service_set_tenant_pattern(const char *ere, char *err, size_t errlen)
{
	char anchored[300];
	if (strlen(ere) >= sizeof(tenant_pattern)) {
		snprintf(err, errlen, "the tenant pattern is longer than %zu bytes",
			 sizeof(tenant_pattern) - 1);
		return -EINVAL;
	}
	/* The whole tenant must match, not a part of it. */
	snprintf(anchored, sizeof(anchored), "^(%s)$", ere);
	int rc = regcomp(&tenant_re, anchored, REG_EXTENDED | REG_NOSUB);
	if (rc != 0) {
		char why[128];
		regerror(rc, &tenant_re, why, sizeof(why));
		snprintf(err, errlen,
			 "the tenant pattern \"%s\" is not a POSIX extended regular "
			 "expression: %s",
			 ere, why);
		return -EINVAL;
	}
	snprintf(tenant_pattern, sizeof(tenant_pattern), "%s", ere);
	tenant_re_set = 1;
	return 0;
}

const char *service_md_tenant(struct rpc_call *call)
{
	return rpc_call_metadata(call, "x-databend-tenant");
}

int service_tenant(const char *md_tenant, const char *fallback, const char **tenant, char *err,
		   size_t errlen)
{
	const char *t = md_tenant;
	if (!t || !*t)
		t = fallback;
	if (naming_tenant_check(t, err, errlen) < 0)
		return -EINVAL;
	if (tenant_re_set && regexec(&tenant_re, t, 0, NULL, 0) != 0) {
		snprintf(err, errlen,
			 "tenant \"%.64s\" is not served by this udf-operator: it does not match "
			 "the tenant pattern \"%s\" (--tenant-pattern)",
			 t, tenant_pattern);
		return -EINVAL;
	}
	*tenant = t;
	return 0;
}

void service_fail_request(struct rpc_call *call, int rc, const char *err)
{
	rpc_call_fail(call, rc == -ENOMEM ? RPC_RESOURCE_EXHAUSTED : RPC_INVALID_ARGUMENT, err);
}

void service_fail_submit(struct rpc_call *call, struct functions *f, int rc, const char *tenant)
{
	char msg[400];
	int exhausted = functions_refusal(f, rc, tenant, msg, sizeof(msg));
	rpc_call_fail(call, exhausted ? RPC_RESOURCE_EXHAUSTED : RPC_UNAVAILABLE, msg);
}

int64_t service_answer_at(int64_t deadline_ms, int64_t now_ms)
{
	if (deadline_ms == INT64_MAX)
		return now_ms + 30000;
	int64_t left = deadline_ms - now_ms;
	int64_t margin = left / 5;
	if (margin < 100)
		margin = 100;
	if (margin > 500)
		margin = 500;
	return deadline_ms - margin;
}

void service_answer_apply(struct rpc_call *call, const struct fn_outcome *o, const char *what,
			  service_pack_fn pack, void *pack_arg)
{
	char msg[1536];
	enum rpc_status code = RPC_UNAVAILABLE;

	switch (o->result) {
	case FN_READY:
	case FN_STARTING:
		if (o->endpoint[0] && o->token[0]) {
			uint8_t *buf = NULL;
			size_t len = 0;
			if (pack(o->endpoint, o->token, &buf, &len, pack_arg) == 0) {
				rpc_call_reply(call, buf, len);
				free(buf);
				return;
			}
			rpc_call_fail(call, RPC_RESOURCE_EXHAUSTED, "out of memory");
			return;
		}
		/* fall through: an endpoint without its token is of no use to the query */
	case FN_PROVISIONING:
		snprintf(msg, sizeof(msg),
			 "%s is still being provisioned; retry the statement in a few seconds%s%s",
			 what, o->message[0] ? " (" : "", o->message[0] ? o->message : "");
		if (o->message[0])
			snprintf(msg + strlen(msg), sizeof(msg) - strlen(msg), ")");
		code = RPC_UNAVAILABLE;
		break;
	case FN_FAILED:
		snprintf(msg, sizeof(msg), "%s could not be provisioned: %s", what, o->message);
		code = RPC_FAILED_PRECONDITION;
		break;
	case FN_UNREACHABLE:
		snprintf(msg, sizeof(msg),
			 "the Kubernetes API server is unreachable, so %s cannot be "
			 "provisioned now: %s",
			 what, o->message);
		code = RPC_UNAVAILABLE;
		break;
	case FN_INVALID:
		snprintf(msg, sizeof(msg), "%s was refused: %s", what, o->message);
		code = RPC_INVALID_ARGUMENT;
		break;
	case FN_REJECTED:
		snprintf(msg, sizeof(msg), "%s cannot be provisioned: %s", what, o->message);
		code = RPC_FAILED_PRECONDITION;
		break;
	case FN_CONFLICT:
		snprintf(msg, sizeof(msg), "%s: %s", what, o->message);
		code = RPC_FAILED_PRECONDITION;
		break;
	case FN_NOT_FOUND:
		snprintf(msg, sizeof(msg), "%s: %s", what, o->message);
		code = RPC_NOT_FOUND;
		break;
	case FN_EXISTS:
		snprintf(msg, sizeof(msg), "%s: %s", what, o->message);
		code = RPC_ALREADY_EXISTS;
		break;
	case FN_SHUTDOWN:
		snprintf(msg, sizeof(msg), "%s", o->message);
		code = RPC_UNAVAILABLE;
		break;
	case FN_EXHAUSTED:
		snprintf(msg, sizeof(msg), "%s cannot be provisioned: %s", what, o->message);
		code = RPC_RESOURCE_EXHAUSTED;
		break;
	}
	rpc_call_fail(call, code, msg);
}
