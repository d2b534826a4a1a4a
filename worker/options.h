/*
 * options: udf-worker's command line.
 *
 * options_parse() fills struct worker_options from argv (getopt_long, so it is not
 * reentrant); the strings it holds point into argv or static defaults and need no freeing.
 * The control token comes from one of --control-token-file (the token itself; the default
 * path applies when neither flag is given) and --control-token-sha256-file (only its
 * sha256, so the pod never holds the token); giving both is an error.
 */
#ifndef UDF_WORKER_OPTIONS_H
#define UDF_WORKER_OPTIONS_H

#ifndef UDF_WORKER_RUNTIME_DIR
#define UDF_WORKER_RUNTIME_DIR "/opt/udf/python"
#endif

struct worker_options {
	const char *control_host; /* NULL: every interface */
	int control_port;
	int flight_port;
	int status_port;
	const char *control_token_file;	       /* used when the next one is NULL */
	const char *control_token_sha256_file; /* hex sha256 of the token; NULL: unused */
	const char *work_dir;
	const char *python;
	int processes; /* 0: from the cgroup's CPU limit, else the cores seen */
	const char *cache_dir;
	const char *run_dir;
	const char *runtime_dir;
	int zygote;
	int drain_seconds;
	int max_connections;	 /* open Flight connections at once; 0: no cap */
	int flight_idle_seconds; /* close a Flight connection idle this long; 0: never */
	int specialize_timeout_seconds;
	long import_timeout_seconds;
	long long import_max_bytes;
	const char *log_level;
	const char *log_format;
};

/* 0: run; 1: --help was printed (exit 0); -EINVAL: a bad flag was reported on stderr. */
int options_parse(int argc, char **argv, struct worker_options *out);

/* "host:port", ":port" or "port" -> host (NULL for any) and port. 0 or -EINVAL. */
int options_parse_address(const char *s, char *host, int host_len, int *port);

/* The number of Python processes to run when --processes is not given. */
int options_default_processes(void);

#endif
