/*
 * udf-worker: PID 1 of a sandbox pod. See worker.h for the moving parts.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <curl/curl.h>

#include "control.h"
#include "log.h"
#include "options.h"
#include "worker.h"

static void *supervise(void *arg)
{
	(void)arg;
	worker_supervise();
	return NULL;
}

int main(int argc, char **argv)
{
	struct worker_options opts;
	enum log_level level;
	enum log_format format;
	pthread_t t;
	int rc;

	rc = options_parse(argc, argv, &opts);
	if (rc)
		return rc > 0 ? 0 : 2;
	if (log_parse_level(opts.log_level, &level) || log_parse_format(opts.log_format, &format)) {
		fprintf(stderr, "udf-worker: bad --log-level or --log-format\n");
		return 2;
	}
	log_setup(level, format);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	rc = worker_init(&opts);
	if (rc) {
		log_error("main", "cannot start: %s", strerror(-rc));
		return 1;
	}
	rc = control_start(&opts);
	if (rc) {
		log_error("main", "cannot start the control API: %s", strerror(-rc));
		return 1;
	}
	worker_set_wakeup(control_wakeup);
	if (pthread_create(&t, NULL, supervise, NULL) != 0) {
		log_error("main", "cannot start the supervisor: %s", strerror(errno));
		return 1;
	}
	log_info("main", "udf-worker %s idle; %d process(es) on specialize, zygote %s", UDF_VERSION,
		 opts.processes, opts.zygote ? "on" : "off");
	control_run();
	pthread_join(t, NULL);
	control_stop();
	curl_global_cleanup();
	return 0;
}
