/* The request decoders of the resource and worker services: what each rejects, and why. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "resource.pb-c.h"
#include "grpc/resource_service.h"
#include "grpc/worker_service.h"

static uint8_t buf[1 << 16];

static size_t pack(const ProtobufCMessage *m)
{
	assert_true(protobuf_c_message_get_packed_size(m) <= sizeof(buf));
	return protobuf_c_message_pack(m, buf);
}

static void expect(int rc, const char *err, int want, const char *needle)
{
	assert_int_equal(rc, want);
	if (needle && !strstr(err, needle))
		fail_msg("\"%s\" does not say \"%s\"", err, needle);
}

static void create_worker(void **state)
{
	char err[512];
	Resourceproto__CreateWorkerRequest r = RESOURCEPROTO__CREATE_WORKER_REQUEST__INIT;
	Resourceproto__CreateWorkerRequest__OptionsEntry o =
	    RESOURCEPROTO__CREATE_WORKER_REQUEST__OPTIONS_ENTRY__INIT;
	Resourceproto__CreateWorkerRequest__OptionsEntry *os[1] = {&o};
	r.tenant_id = "test_tenant";
	r.name = "w1";
	o.key = "size";
	o.value = "small";
	r.n_options = 1;
	r.options = os;
	size_t n = pack(&r.base);
	expect(worker_service_decode(WORKER_CREATE, buf, n, NULL, err, sizeof(err)), err, 0, NULL);

	r.name = "";
	n = pack(&r.base);
	expect(worker_service_decode(WORKER_CREATE, buf, n, NULL, err, sizeof(err)), err, -EINVAL,
	       "name");
	r.name = "w1";
	r.tenant_id = "";
	n = pack(&r.base);
	expect(worker_service_decode(WORKER_CREATE, buf, n, NULL, err, sizeof(err)), err, -EINVAL,
	       "tenant");
	/* The metadata tenant wins over tenant_id. */
	expect(worker_service_decode(WORKER_CREATE, buf, n, "from_md", err, sizeof(err)), err, 0,
	       NULL);
	r.tenant_id = "t";
	r.type = "spark";
	n = pack(&r.base);
	expect(worker_service_decode(WORKER_CREATE, buf, n, NULL, err, sizeof(err)), err, -EINVAL,
	       "type");
	r.type = "udf";
	o.key = "";
	n = pack(&r.base);
	expect(worker_service_decode(WORKER_CREATE, buf, n, NULL, err, sizeof(err)), err, -EINVAL,
	       "options");
	o.key = "size";
	r.script = "echo \x01";
	n = pack(&r.base);
	expect(worker_service_decode(WORKER_CREATE, buf, n, NULL, err, sizeof(err)), err, 0, NULL);
	expect(worker_service_decode(WORKER_CREATE, (const uint8_t *)"\xff\xff", 2, NULL, err,
				     sizeof(err)),
	       err, -EINVAL, "decoded");
}

static void alter_drop_list(void **state)
{
	char err[512];
	Resourceproto__AlterWorkerRequest a = RESOURCEPROTO__ALTER_WORKER_REQUEST__INIT;
	char *unset[1] = {""};
	a.tenant_id = "t";
	a.name = "w";
	a.state_action = RESOURCEPROTO__ALTER_WORKER_REQUEST__WORKER_STATE_ACTION__Suspend;
	size_t n = pack(&a.base);
	expect(worker_service_decode(WORKER_ALTER, buf, n, NULL, err, sizeof(err)), err, 0, NULL);
	a.n_unset_tags = 1;
	a.unset_tags = unset;
	n = pack(&a.base);
	expect(worker_service_decode(WORKER_ALTER, buf, n, NULL, err, sizeof(err)), err, -EINVAL,
	       "unset_tags[0]");
	a.n_unset_tags = 0;
	a.state_action = 7;
	n = pack(&a.base);
	expect(worker_service_decode(WORKER_ALTER, buf, n, NULL, err, sizeof(err)), err, -EINVAL,
	       "state_action");

	Resourceproto__DropWorkerRequest d = RESOURCEPROTO__DROP_WORKER_REQUEST__INIT;
	d.tenant_id = "t";
	d.name = "";
	n = pack(&d.base);
	expect(worker_service_decode(WORKER_DROP, buf, n, NULL, err, sizeof(err)), err, -EINVAL,
	       "name");

	Resourceproto__ListWorkersRequest l = RESOURCEPROTO__LIST_WORKERS_REQUEST__INIT;
	l.tenant_id = "t\x01";
	n = pack(&l.base);
	expect(worker_service_decode(WORKER_LIST, buf, n, NULL, err, sizeof(err)), err, -EINVAL,
	       "printable");
}

static void apply_resource(void **state)
{
	char err[512];
	Resourceproto__ApplyResourceRequest r = RESOURCEPROTO__APPLY_RESOURCE_REQUEST__INIT;
	r.type = "udf";
	r.script = "set -euo pipefail\ncurl -o /app/imports/a.py 'https://s/a.py?sig=1'\n";
	size_t n = pack(&r.base);
	expect(resource_service_decode(buf, n, err, sizeof(err)), err, 0, NULL);
	r.script = "";
	n = pack(&r.base);
	expect(resource_service_decode(buf, n, err, sizeof(err)), err, -EINVAL, "script");
	r.script = "x";
	r.type = "python";
	n = pack(&r.base);
	expect(resource_service_decode(buf, n, err, sizeof(err)), err, -EINVAL, "type");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(create_worker),
	    cmocka_unit_test(alter_drop_list),
	    cmocka_unit_test(apply_resource),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
