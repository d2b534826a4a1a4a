#include "options.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char control_host_buf[256];

static void usage(FILE *f)
{
	fprintf(
	    f,
	    "usage: udf-worker [flags]\n"
	    "PID 1 of a sandbox pod: idles with a warm Python, specializes into one UDF's\n"
	    "Arrow Flight server on request, and keeps it serving.\n\n"
	    "  --control-bind-address ADDR  control API (HTTP) address (default :9000)\n"
	    "  --flight-port N              Arrow Flight port (default 8815)\n"
	    "  --status-port N              /health and /stats port (default 8080)\n"
	    "  --control-token-file PATH    bearer token of the control API\n"
	    "                               (default /var/run/udf-sandbox/control-token)\n"
	    "  --control-token-sha256-file PATH  instead of --control-token-file: the hex\n"
	    "                               sha256 of the token (the pod never holds the token)\n"
	    "  --work-dir DIR               where the UDF's files go (default /app)\n"
	    "  --python PATH                Python with pyarrow and databend-udf (default\n"
	    "                               $UDF_PYTHON, else python3)\n"
	    "  --processes N                Python server processes (default: the cgroup's CPU\n"
	    "                               limit, else the cores seen)\n"
	    "  --cache-dir DIR              import download cache (default /tmp/udf-worker-cache)\n"
	    "  --run-dir DIR                the worker's private files (default /tmp/udf-worker)\n"
	    "  --runtime-dir DIR            the Python stub and hooks (default %s)\n"
	    "  --no-zygote                  start Python from scratch on specialize\n"
	    "  --drain-seconds N            SIGTERM grace for the servers (default 20)\n"
	    "  --max-connections N          open Flight connections at once; more wait in the\n"
	    "                               listen backlog (default 512, 0: no cap)\n"
	    "  --flight-idle-seconds N      close a Flight connection idle this long (default\n"
	    "                               300, 0: never)\n"
	    "  --specialize-timeout N       fail a specialization not ready after N s (default "
	    "900)\n"
	    "  --import-timeout N           seconds per import download (default 120)\n"
	    "  --import-max-bytes N         size cap per import (default 268435456)\n"
	    "  --log-level L                debug|info|warn|error (default info)\n"
	    "  --log-format F               text|json (default text)\n"
	    "  --help                       this text\n",
	    UDF_WORKER_RUNTIME_DIR);
}

int options_parse_address(const char *s, char *host, int host_len, int *port)
{
	const char *colon = strrchr(s, ':');
	const char *num = colon ? colon + 1 : s;
	char *end;
	long p;

	errno = 0;
	p = strtol(num, &end, 10);
	if (errno || end == num || *end || p < 0 || p > 65535)
		return -EINVAL;
	*port = (int)p;
	host[0] = '\0';
	if (colon && colon != s) {
		int len = (int)(colon - s);

		if (s[0] == '[' && colon[-1] == ']') {
			s++;
			len -= 2;
		}
		if (len >= host_len)
			return -EINVAL;
		memcpy(host, s, (size_t)len);
		host[len] = '\0';
		if (strcmp(host, "0.0.0.0") == 0 || strcmp(host, "::") == 0)
			host[0] = '\0';
	}
	return 0;
}

static int parse_int(const char *flag, const char *s, long long min, long long max, long long *out)
{
	char *end;

	errno = 0;
	*out = strtoll(s, &end, 10);
	if (errno || end == s || *end || *out < min || *out > max) {
		fprintf(stderr, "udf-worker: %s: \"%s\" is not a number in [%lld, %lld]\n", flag, s,
			min, max);
		return -EINVAL;
	}
	return 0;
}

static long long read_number(const char *path)
{
	long long v = -1;
	FILE *f = fopen(path, "r");

	if (!f)
		return -1;
	if (fscanf(f, "%lld", &v) != 1)
		v = -1;
	fclose(f);
	return v;
}

/* The CPU limit the cgroup gives (rounded up), 0 when there is none. */
static int cgroup_cpus(void)
{
	char buf[128];
	long long quota, period;
	FILE *f = fopen("/sys/fs/cgroup/cpu.max", "r");

	if (f) {
		if (!fgets(buf, sizeof(buf), f)) {
			fclose(f);
			return 0;
		}
		fclose(f);
		if (sscanf(buf, "%lld %lld", &quota, &period) != 2 || period <= 0)
			return 0; /* "max 100000": no limit */
		return (int)((quota + period - 1) / period);
	}
	/* cgroup v1 */
	quota = read_number("/sys/fs/cgroup/cpu/cpu.cfs_quota_us");
	period = read_number("/sys/fs/cgroup/cpu/cpu.cfs_period_us");
	if (quota <= 0 || period <= 0)
		return 0;
	return (int)((quota + period - 1) / period);
}

int options_default_processes(void)
{
	int n = cgroup_cpus();

	if (n <= 0)
		n = (int)sysconf(_SC_NPROCESSORS_ONLN);
	if (n <= 0)
		n = 1;
	return n > 64 ? 64 : n;
}

int options_parse(int argc, char **argv, struct worker_options *o)
{
	enum {
		OPT_CONTROL = 256,
		OPT_FLIGHT,
		OPT_STATUS,
		OPT_TOKEN,
		OPT_TOKEN_SHA256,
		OPT_WORK,
		OPT_PYTHON,
		OPT_PROCESSES,
		OPT_CACHE,
		OPT_RUN,
		OPT_RUNTIME,
		OPT_NO_ZYGOTE,
		OPT_DRAIN,
		OPT_SPECIALIZE_TIMEOUT,
		OPT_IMPORT_TIMEOUT,
		OPT_IMPORT_MAX,
		OPT_LOG_LEVEL,
		OPT_LOG_FORMAT,
		OPT_MAX_CONNECTIONS,
		OPT_FLIGHT_IDLE,
		OPT_HELP,
	};
	static const struct option longopts[] = {
	    {"control-bind-address", required_argument, NULL, OPT_CONTROL},
	    {"flight-port", required_argument, NULL, OPT_FLIGHT},
	    {"status-port", required_argument, NULL, OPT_STATUS},
	    {"control-token-file", required_argument, NULL, OPT_TOKEN},
	    {"control-token-sha256-file", required_argument, NULL, OPT_TOKEN_SHA256},
	    {"work-dir", required_argument, NULL, OPT_WORK},
	    {"python", required_argument, NULL, OPT_PYTHON},
	    {"processes", required_argument, NULL, OPT_PROCESSES},
	    {"cache-dir", required_argument, NULL, OPT_CACHE},
	    {"run-dir", required_argument, NULL, OPT_RUN},
	    {"runtime-dir", required_argument, NULL, OPT_RUNTIME},
	    {"no-zygote", no_argument, NULL, OPT_NO_ZYGOTE},
	    {"drain-seconds", required_argument, NULL, OPT_DRAIN},
	    {"max-connections", required_argument, NULL, OPT_MAX_CONNECTIONS},
	    {"flight-idle-seconds", required_argument, NULL, OPT_FLIGHT_IDLE},
	    {"specialize-timeout", required_argument, NULL, OPT_SPECIALIZE_TIMEOUT},
	    {"import-timeout", required_argument, NULL, OPT_IMPORT_TIMEOUT},
	    {"import-max-bytes", required_argument, NULL, OPT_IMPORT_MAX},
	    {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
	    {"log-format", required_argument, NULL, OPT_LOG_FORMAT},
	    {"help", no_argument, NULL, OPT_HELP},
	    {NULL, 0, NULL, 0},
	};
	long long v;
	int c, token_file_given = 0;

	memset(o, 0, sizeof(*o));
	o->control_port = 9000;
	o->flight_port = 8815;
	o->status_port = 8080;
	o->control_token_file = "/var/run/udf-sandbox/control-token";
	o->work_dir = "/app";
	o->python =
	    getenv("UDF_PYTHON") && *getenv("UDF_PYTHON") ? getenv("UDF_PYTHON") : "python3";
	o->cache_dir = "/tmp/udf-worker-cache";
	o->run_dir = "/tmp/udf-worker";
	o->runtime_dir = UDF_WORKER_RUNTIME_DIR;
	o->zygote = 1;
	o->drain_seconds = 20;
	o->max_connections = 512;
	o->flight_idle_seconds = 300;
	o->specialize_timeout_seconds = 900;
	o->import_timeout_seconds = 120;
	o->import_max_bytes = 256LL << 20;
	o->log_level = "info";
	o->log_format = "text";
	optind = 1;
	opterr = 1;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case OPT_CONTROL:
			if (options_parse_address(optarg, control_host_buf,
						  (int)sizeof(control_host_buf),
						  &o->control_port) != 0) {
				fprintf(stderr,
					"udf-worker: --control-bind-address: \"%s\" is not "
					"host:port\n",
					optarg);
				return -EINVAL;
			}
			o->control_host = control_host_buf[0] ? control_host_buf : NULL;
			break;
		case OPT_FLIGHT:
			if (parse_int("--flight-port", optarg, 1, 65535, &v))
				return -EINVAL;
			o->flight_port = (int)v;
			break;
		case OPT_STATUS:
			if (parse_int("--status-port", optarg, 1, 65535, &v))
				return -EINVAL;
			o->status_port = (int)v;
			break;
		case OPT_TOKEN:
			o->control_token_file = optarg;
			token_file_given = 1;
			break;
		case OPT_TOKEN_SHA256:
			o->control_token_sha256_file = optarg;
			break;
		case OPT_WORK:
			o->work_dir = optarg;
			break;
		case OPT_PYTHON:
			o->python = optarg;
			break;
		case OPT_PROCESSES:
			if (parse_int("--processes", optarg, 1, 64, &v))
				return -EINVAL;
			o->processes = (int)v;
			break;
		case OPT_CACHE:
			o->cache_dir = optarg;
			break;
		case OPT_RUN:
			o->run_dir = optarg;
			break;
		case OPT_RUNTIME:
			o->runtime_dir = optarg;
			break;
		case OPT_NO_ZYGOTE:
			o->zygote = 0;
			break;
		case OPT_DRAIN:
			if (parse_int("--drain-seconds", optarg, 0, 3600, &v))
				return -EINVAL;
			o->drain_seconds = (int)v;
			break;
		case OPT_MAX_CONNECTIONS:
			if (parse_int("--max-connections", optarg, 0, 1000000, &v))
				return -EINVAL;
			o->max_connections = (int)v;
			break;
		case OPT_FLIGHT_IDLE:
			if (parse_int("--flight-idle-seconds", optarg, 0, 86400, &v))
				return -EINVAL;
			o->flight_idle_seconds = (int)v;
			break;
		case OPT_SPECIALIZE_TIMEOUT:
			if (parse_int("--specialize-timeout", optarg, 1, 86400, &v))
				return -EINVAL;
			o->specialize_timeout_seconds = (int)v;
			break;
		case OPT_IMPORT_TIMEOUT:
			if (parse_int("--import-timeout", optarg, 1, 3600, &v))
				return -EINVAL;
			o->import_timeout_seconds = (long)v;
			break;
		case OPT_IMPORT_MAX:
			if (parse_int("--import-max-bytes", optarg, 1, 1LL << 40, &v))
				return -EINVAL;
			o->import_max_bytes = v;
			break;
		case OPT_LOG_LEVEL:
			o->log_level = optarg;
			break;
		case OPT_LOG_FORMAT:
			o->log_format = optarg;
			break;
		case OPT_HELP:
			usage(stdout);
			return 1;
		default:
			usage(stderr);
			return -EINVAL;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "udf-worker: unexpected argument \"%s\"\n", argv[optind]);
		return -EINVAL;
	}
	if (token_file_given && o->control_token_sha256_file) {
		fprintf(stderr, "udf-worker: give one of --control-token-file and "
				"--control-token-sha256-file, not both\n");
		return -EINVAL;
	}
	if (o->processes == 0)
		o->processes = options_default_processes();
	return 0;
}
