/*
 * udf-operator: the control plane of udf-sandbox. Connects to the Kubernetes API server,
 * serves the gRPC endpoint Databend query nodes call, and the HTTP probes and metrics.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "api/blocking.h"
#include "api/functions.h"
#include "api/tenants.h"
#include "controllers/function.h"
#include "controllers/pool.h"
#include "grpc/etag.h"
#include "grpc/service.h"
#include "grpc/health.h"
#include "grpc/resource_service.h"
#include "grpc/rpc.h"
#include "grpc/udf_service.h"
#include "grpc/worker_service.h"
#include "http/httpd.h"
#include "kube/config.h"
#include "kube/informer.h"
#include "kube/leader.h"
#include "kube/rest.h"
#include "udf/function_pod.h"
#include "udf/labels.h"
#include "udf/naming.h"
#include "util/cidr.h"
#include "util/log.h"

#define EXIT_USAGE 2

struct options {
	const char *kubeconfig;
	const char *grpc_bind;
	const char *grpc_tls_cert;
	const char *grpc_tls_key;
	const char *health_bind;
	const char *tenant_ns_prefix;
	const char *tenant_ns_labels;
	int leader_elect;
	const char *leader_ns;
	const char *leader_id;
	enum log_level log_level;
	enum log_format log_format;
	/* warm pools (issue 12) */
	const char *worker_image;
	const char *allowed_runtime_classes;
	const char *default_pool;
	const char *pool_selector;
	/* ---- hardening (issue 15): callers, outgoing requests, limits ---- */
	const char *grpc_tls_client_ca;
	const char *tenant_pattern;
	const char *blocked_cidrs;
	int max_functions_per_tenant;
	int max_pods_per_tenant;
	int max_tenants;
	long long function_ttl_s;
	long long shutdown_delay_s;
	/* ---- end of hardening ---- */
	/* functions (issue 13) */
	int run_pools, run_functions;
	const char *function_ns_selector;
	long long default_idle_timeout_s;
	int endpoint_service;
};

struct operator_state {
	struct kube_client *kube;
	struct rpc_server *rpc; /* set before the HTTP server starts */
	struct health_state *health;
	atomic_int reachable;
	atomic_llong probes_ok;
	atomic_llong probes_failed;
	atomic_int leading;
	atomic_int stopping; /* SIGTERM received: /readyz fails while gRPC still answers */
	char server_version[64];
	struct pool_controller *pools;	       /* reconciles only while this replica leads */
	struct function_controller *functions; /* likewise; NULL with --controllers=pools */
};

static void usage(FILE *out)
{
	fprintf(
	    out,
	    "usage: udf-operator [flags]\n"
	    "\n"
	    "Runs Databend's sandboxed Python UDFs in gVisor pods: watches UdfFunction and\n"
	    "UdfWarmPool resources and serves the gRPC endpoint query nodes call.\n"
	    "\n"
	    "Flags:\n"
	    "  --kubeconfig PATH           kubeconfig to use; default: in-cluster service account\n"
	    "                              when KUBERNETES_SERVICE_HOST is set, else $KUBECONFIG,\n"
	    "                              else ~/.kube/config\n"
	    "  --grpc-bind-address ADDR    gRPC listen address (default :50051)\n"
	    "  --grpc-tls-cert FILE        serve gRPC over TLS with this PEM certificate chain\n"
	    "  --grpc-tls-key FILE         ... and this PEM private key (both or neither)\n"
	    "  --tenant-namespace-prefix P namespace of a tenant: P<readable tenant>-<10 hex of\n"
	    "                              sha256(tenant)>, e.g. test_tenant ->\n"
	    "                              udf-test-tenant-<hash> (default udf-)\n"
	    "  --tenant-namespace-labels K=V[,K=V]  extra labels of the tenant namespaces this\n"
	    "                              operator creates (e.g. for another operator's\n"
	    "                              --function-namespace-selector !K)\n"
	    "  --leader-elect[=true|false] take part in leader election on a Lease, so only one\n"
	    "                              replica reconciles (default false)\n"
	    "  --leader-election-namespace NS  the Lease's namespace (default: the pod's own\n"
	    "                              namespace in cluster, else the kubeconfig\n"
	    "                              context's)\n"
	    "  --leader-election-id NAME   the Lease's name (default udf-operator)\n"
	    "  --worker-image IMAGE        image of pools without spec.runtime.image (default\n"
	    "                              localhost/udf-worker:dev)\n"
	    "  --allowed-runtime-classes LIST  comma list of runtime classes a pool may use\n"
	    "                              (default gvisor)\n"
	    "  --default-pool NS/NAME      pool of functions without poolRef (default\n"
	    "                              udf-sandboxes/default)\n"
	    "  --pool-selector SELECTOR    reconcile only the pools with these labels (tests\n"
	    "                              that share a cluster; default: every pool)\n"
	    "  --controllers LIST          the reconcilers to run: pools, functions, both\n"
	    "                              (default pools,functions; none: \"\")\n"
	    "  --endpoint-mode pod|service the endpoint functions publish: the pod's IP, or a\n"
	    "                              Service of each function's (default pod)\n"
	    "  --default-idle-timeout D    idle timeout of the functions gRPC calls create, e.g.\n"
	    "                              600, 90s, 10m, 1h, 1d; 0 never scales them to zero\n"
	    "                              (default 10m)\n"
	    "  --function-namespace-selector SEL  reconcile only the UdfFunctions of namespaces\n"
	    "                              that SEL selects: K=V, K (has the label), !K (has\n"
	    "                              not), comma-separated, all must hold (default: all)\n"
	    "  --health-bind-address ADDR  HTTP /healthz, /readyz, /metrics (default :8081;\n"
	    "                              0 disables)\n"
	    "  --grpc-tls-client-ca FILE   with TLS, require callers' certificates signed by a CA\n"
	    "                              in this PEM bundle (mutual TLS)\n"
	    "  --tenant-pattern REGEX      serve only tenants this POSIX extended regular\n"
	    "                              expression matches whole; others get INVALID_ARGUMENT\n"
	    "  --blocked-cidrs LIST        address ranges an import url may not reach (checked on\n"
	    "                              the address connected to; \"\" blocks none); default:\n"
	    "                              loopback, link-local, 0/8, RFC 1918, 100.64/10,\n"
	    "                              fc00::/7, multicast\n"
	    "  --max-functions-per-tenant N  UdfFunctions per tenant (default 0: no limit)\n"
	    "  --max-pods-per-tenant N     pods per tenant namespace, by a ResourceQuota (0: "
	    "none)\n"
	    "  --max-tenants N             tenant namespaces this operator creates (0: no limit)\n"
	    "  --function-ttl DURATION     delete functions the gRPC services made and no call\n"
	    "                              used for this long (90s, 30m, 24h, 7d; 0: never)\n"
	    "  --shutdown-delay DURATION   on SIGTERM, stop reconciling and hand the Lease over "
	    "at\n"
	    "                              once, fail /readyz, and keep answering gRPC this long\n"
	    "                              so Services stop sending calls first (default 0)\n"
	    "  --log-format text|json      log line format (default text)\n"
	    "  --log-level LEVEL           debug, info, warn or error (default info)\n"
	    "  --version                   print the version and exit\n"
	    "  -h, --help                  this help\n");
}

/* ---- hardening (issue 15) ---- */

/* A whole number >= 0. */
static int parse_count(const char *s, long long *out)
{
	char *end;
	if (!*s || *s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	*out = strtoll(s, &end, 10);
	return errno || *end ? -EINVAL : 0;
}

/* "0", "90", "90s", "30m", "24h", "7d" into seconds. */
static int parse_duration(const char *s, long long *out)
{
	char *end;
	if (!*s || *s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	long long unit = !*end			 ? 1
			 : strcmp(end, "s") == 0 ? 1
			 : strcmp(end, "m") == 0 ? 60
			 : strcmp(end, "h") == 0 ? 3600
			 : strcmp(end, "d") == 0 ? 86400
						 : 0;
	if (errno || unit == 0 || v > (1LL << 40) / unit)
		return -EINVAL;
	*out = v * unit;
	return 0;
}

/* What the flags configure in modules that are set once before serving. */
static int hardening_setup(const struct options *o)
{
	char err[512];
	struct cidr_set blocked;
	const char *list = o->blocked_cidrs ? o->blocked_cidrs : CIDR_DEFAULT_BLOCKED;
	if (cidr_set_parse(list, &blocked, err, sizeof(err)) < 0) {
		fprintf(stderr, "udf-operator: --blocked-cidrs: %s\n", err);
		return -EINVAL;
	}
	etag_set_blocked(&blocked);
	if (o->tenant_pattern &&
	    service_set_tenant_pattern(o->tenant_pattern, err, sizeof(err)) < 0) {
		fprintf(stderr, "udf-operator: --tenant-pattern: %s\n", err);
		return -EINVAL;
	}
	return 0;
}

/* ---- end of hardening ---- */

static int parse_args(int argc, char **argv, struct options *o)
{
	enum {
		OPT_KUBECONFIG = 256,
		OPT_GRPC,
		OPT_TLS_CERT,
		OPT_TLS_KEY,
		OPT_HEALTH,
		OPT_LOG_FORMAT,
		OPT_LOG_LEVEL,
		OPT_VERSION,
		OPT_NS_PREFIX,
		OPT_NS_LABELS,
		OPT_LEADER_ELECT,
		OPT_LEADER_NS,
		OPT_LEADER_ID,
		OPT_WORKER_IMAGE,
		OPT_ALLOWED_RC,
		OPT_DEFAULT_POOL,
		OPT_POOL_SELECTOR,
		OPT_TLS_CLIENT_CA,
		OPT_TENANT_PATTERN,
		OPT_BLOCKED_CIDRS,
		OPT_MAX_FUNCTIONS,
		OPT_MAX_PODS,
		OPT_MAX_TENANTS,
		OPT_FUNCTION_TTL,
		OPT_SHUTDOWN_DELAY,
		OPT_CONTROLLERS,
		OPT_FN_NS_SELECTOR,
		OPT_IDLE_TIMEOUT,
		OPT_ENDPOINT_MODE
	};
	static const struct option longopts[] = {
	    {"kubeconfig", required_argument, NULL, OPT_KUBECONFIG},
	    {"grpc-bind-address", required_argument, NULL, OPT_GRPC},
	    {"grpc-tls-cert", required_argument, NULL, OPT_TLS_CERT},
	    {"grpc-tls-key", required_argument, NULL, OPT_TLS_KEY},
	    {"health-bind-address", required_argument, NULL, OPT_HEALTH},
	    {"tenant-namespace-prefix", required_argument, NULL, OPT_NS_PREFIX},
	    {"tenant-namespace-labels", required_argument, NULL, OPT_NS_LABELS},
	    {"leader-elect", optional_argument, NULL, OPT_LEADER_ELECT},
	    {"leader-election-namespace", required_argument, NULL, OPT_LEADER_NS},
	    {"leader-election-id", required_argument, NULL, OPT_LEADER_ID},
	    {"worker-image", required_argument, NULL, OPT_WORKER_IMAGE},
	    {"allowed-runtime-classes", required_argument, NULL, OPT_ALLOWED_RC},
	    {"default-pool", required_argument, NULL, OPT_DEFAULT_POOL},
	    {"pool-selector", required_argument, NULL, OPT_POOL_SELECTOR},
	    {"controllers", required_argument, NULL, OPT_CONTROLLERS},
	    {"default-idle-timeout", required_argument, NULL, OPT_IDLE_TIMEOUT},
	    {"endpoint-mode", required_argument, NULL, OPT_ENDPOINT_MODE},
	    {"function-namespace-selector", required_argument, NULL, OPT_FN_NS_SELECTOR},
	    {"log-format", required_argument, NULL, OPT_LOG_FORMAT},
	    {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
	    {"grpc-tls-client-ca", required_argument, NULL, OPT_TLS_CLIENT_CA},
	    {"tenant-pattern", required_argument, NULL, OPT_TENANT_PATTERN},
	    {"blocked-cidrs", required_argument, NULL, OPT_BLOCKED_CIDRS},
	    {"max-functions-per-tenant", required_argument, NULL, OPT_MAX_FUNCTIONS},
	    {"max-pods-per-tenant", required_argument, NULL, OPT_MAX_PODS},
	    {"max-tenants", required_argument, NULL, OPT_MAX_TENANTS},
	    {"function-ttl", required_argument, NULL, OPT_FUNCTION_TTL},
	    {"shutdown-delay", required_argument, NULL, OPT_SHUTDOWN_DELAY},
	    {"version", no_argument, NULL, OPT_VERSION},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	int c;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		switch (c) {
		case OPT_KUBECONFIG:
			o->kubeconfig = optarg;
			break;
		case OPT_GRPC:
			o->grpc_bind = optarg;
			break;
		case OPT_TLS_CERT:
			o->grpc_tls_cert = optarg;
			break;
		case OPT_TLS_KEY:
			o->grpc_tls_key = optarg;
			break;
		case OPT_HEALTH:
			o->health_bind = optarg;
			break;
		case OPT_NS_LABELS:
			o->tenant_ns_labels = optarg;
			break;
		case OPT_NS_PREFIX:
			o->tenant_ns_prefix = optarg;
			break;
		case OPT_LEADER_ELECT:
			if (!optarg || strcmp(optarg, "true") == 0) {
				o->leader_elect = 1;
			} else if (strcmp(optarg, "false") == 0) {
				o->leader_elect = 0;
			} else {
				fprintf(stderr,
					"udf-operator: --leader-elect takes true or false, not "
					"\"%s\"\n",
					optarg);
				return -EINVAL;
			}
			break;
		case OPT_LEADER_NS:
			o->leader_ns = optarg;
			break;
		case OPT_LEADER_ID:
			o->leader_id = optarg;
			break;
		case OPT_WORKER_IMAGE:
			o->worker_image = optarg;
			break;
		case OPT_ALLOWED_RC:
			o->allowed_runtime_classes = optarg;
			break;
		case OPT_DEFAULT_POOL:
			o->default_pool = optarg;
			break;
		case OPT_POOL_SELECTOR:
			o->pool_selector = optarg;
			break;
		case OPT_IDLE_TIMEOUT:
			if (parse_duration(optarg, &o->default_idle_timeout_s) < 0 ||
			    o->default_idle_timeout_s > 31536000) {
				fprintf(
				    stderr,
				    "udf-operator: --default-idle-timeout takes seconds or a "
				    "duration up to a year such as 90s, 10m or 1h, not \"%s\"\n",
				    optarg);
				return -EINVAL;
			}
			break;
		case OPT_ENDPOINT_MODE:
			if (strcmp(optarg, "pod") == 0 || strcmp(optarg, "service") == 0) {
				o->endpoint_service = strcmp(optarg, "service") == 0;
			} else {
				fprintf(stderr,
					"udf-operator: --endpoint-mode is pod or service, not "
					"\"%s\"\n",
					optarg);
				return -EINVAL;
			}
			break;
		case OPT_FN_NS_SELECTOR:
			o->function_ns_selector = optarg;
			break;
		case OPT_CONTROLLERS: {
			char buf[128];
			snprintf(buf, sizeof(buf), "%s", optarg);
			o->run_pools = o->run_functions = 0;
			char *save = NULL;
			for (char *t = strtok_r(buf, ",", &save); t;
			     t = strtok_r(NULL, ",", &save)) {
				if (strcmp(t, "pools") == 0) {
					o->run_pools = 1;
				} else if (strcmp(t, "functions") == 0) {
					o->run_functions = 1;
				} else {
					fprintf(stderr,
						"udf-operator: --controllers takes pools and/or "
						"functions, not \"%s\"\n",
						t);
					return -EINVAL;
				}
			}
			break;
		}
		case OPT_LOG_FORMAT:
			if (log_parse_format(optarg, &o->log_format) < 0) {
				fprintf(stderr,
					"udf-operator: --log-format must be text or json, not "
					"\"%s\"\n",
					optarg);
				return -EINVAL;
			}
			break;
		case OPT_LOG_LEVEL:
			if (log_parse_level(optarg, &o->log_level) < 0) {
				fprintf(stderr,
					"udf-operator: --log-level must be debug, info, warn or "
					"error, not \"%s\"\n",
					optarg);
				return -EINVAL;
			}
			break;
		case OPT_TLS_CLIENT_CA:
			o->grpc_tls_client_ca = optarg;
			break;
		case OPT_TENANT_PATTERN:
			o->tenant_pattern = optarg;
			break;
		case OPT_BLOCKED_CIDRS:
			o->blocked_cidrs = optarg;
			break;
		case OPT_MAX_FUNCTIONS:
		case OPT_MAX_PODS:
		case OPT_MAX_TENANTS: {
			long long v;
			if (parse_count(optarg, &v) < 0 || v > 1000000) {
				fprintf(stderr,
					"udf-operator: %s takes a whole number from 0 to 1000000, "
					"not \"%s\"\n",
					argv[optind - 1], optarg);
				return -EINVAL;
			}
			*(c == OPT_MAX_FUNCTIONS ? &o->max_functions_per_tenant
			  : c == OPT_MAX_PODS	 ? &o->max_pods_per_tenant
						 : &o->max_tenants) = (int)v;
			break;
		}
		case OPT_SHUTDOWN_DELAY:
			if (parse_duration(optarg, &o->shutdown_delay_s) < 0 ||
			    o->shutdown_delay_s > 300) {
				fprintf(stderr,
					"udf-operator: --shutdown-delay takes a duration up to 5m "
					"such as 5s, not \"%s\"\n",
					optarg);
				return -EINVAL;
			}
			break;
		case OPT_FUNCTION_TTL:
			if (parse_duration(optarg, &o->function_ttl_s) < 0) {
				fprintf(
				    stderr,
				    "udf-operator: --function-ttl takes a duration such as 90s, "
				    "30m, 24h or 7d, not \"%s\"\n",
				    optarg);
				return -EINVAL;
			}
			break;
		case OPT_VERSION:
			printf("udf-operator %s\n", UDF_VERSION);
			exit(0);
		case 'h':
			usage(stdout);
			exit(0);
		case ':':
			fprintf(stderr, "udf-operator: flag %s needs a value (see --help)\n",
				argv[optind - 1]);
			return -EINVAL;
		default:
			fprintf(stderr, "udf-operator: unknown flag %s (see --help)\n",
				argv[optind - 1]);
			return -EINVAL;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "udf-operator: unexpected argument \"%s\" (see --help)\n",
			argv[optind]);
		return -EINVAL;
	}
	cJSON *labels = NULL;
	if (tenants_parse_labels(o->tenant_ns_labels, &labels) < 0) {
		fprintf(stderr,
			"udf-operator: --tenant-namespace-labels takes K=V[,K=V] with Kubernetes "
			"label keys and values, not \"%s\"\n",
			o->tenant_ns_labels);
		return -EINVAL;
	}
	cJSON_Delete(labels);
	if (!naming_prefix_valid(o->tenant_ns_prefix)) {
		fprintf(stderr,
			"udf-operator: --tenant-namespace-prefix must be 1 to %d of a-z, 0-9 "
			"and -, starting with a letter, not \"%s\"\n",
			NAMING_PREFIX_MAX, o->tenant_ns_prefix);
		return -EINVAL;
	}
	if (!*o->worker_image || !*o->allowed_runtime_classes ||
	    strchr(o->default_pool, '/') == NULL) {
		fprintf(stderr, "udf-operator: --worker-image and --allowed-runtime-classes must "
				"not be empty; --default-pool is NAMESPACE/NAME\n");
		return -EINVAL;
	}
	if (!o->grpc_tls_cert != !o->grpc_tls_key) {
		fprintf(stderr, "udf-operator: --grpc-tls-cert and --grpc-tls-key go together\n");
		return -EINVAL;
	}
	if (o->grpc_tls_client_ca && !o->grpc_tls_cert) {
		fprintf(stderr, "udf-operator: --grpc-tls-client-ca needs --grpc-tls-cert and "
				"--grpc-tls-key\n");
		return -EINVAL;
	}
	return hardening_setup(o);
}

static int load_config(const struct options *o, struct kube_config **cfg)
{
	char err[512] = "";
	int rc;
	if (!o->kubeconfig && getenv("KUBERNETES_SERVICE_HOST"))
		rc = kube_config_in_cluster(cfg, err, sizeof(err));
	else
		rc = kube_config_load(o->kubeconfig, cfg, err, sizeof(err));
	if (rc < 0)
		fprintf(stderr, "udf-operator: %s\n", err[0] ? err : strerror(-rc));
	return rc;
}

/* One reachability probe: GET /version. Logs transitions, not every probe. */
static void probe_apiserver(struct operator_state *st)
{
	struct kube_response resp = {0};
	int rc = kube_get(st->kube, "/version", &resp);
	int ok = rc == 0 && resp.http_status == 200;
	int was = atomic_exchange(&st->reachable, ok);

	if (ok) {
		atomic_fetch_add(&st->probes_ok, 1);
		const char *ver = resp.json ? k8s_str(resp.json, "gitVersion") : NULL;
		snprintf(st->server_version, sizeof(st->server_version), "%s", ver ? ver : "?");
		if (!was)
			log_info("main", "API server %s reachable (Kubernetes %s); serving",
				 kube_config_server(kube_client_config(st->kube)),
				 st->server_version);
	} else {
		atomic_fetch_add(&st->probes_failed, 1);
		if (was || atomic_load(&st->probes_failed) == 1) {
			if (rc < 0)
				log_warn("main", "API server %s unreachable: %s; not serving",
					 kube_config_server(kube_client_config(st->kube)),
					 kube_strerror(rc));
			else
				log_warn("main",
					 "API server %s answered /version with HTTP %ld; not "
					 "serving",
					 kube_config_server(kube_client_config(st->kube)),
					 resp.http_status);
		}
	}
	health_set_serving(st->health, ok);
	kube_response_free(&resp);
}

/* The soft descriptor limit is often 1024, and the gRPC core stops accepting for good when
 * descriptors run out (grpc/rpc.h): take what the hard limit allows, up to a bound (the core's
 * memory quota closes idle connections long before some 4500, rpc.c). */
#define NOFILE_WANTED 65536

static void raise_nofile_limit(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return;
	rlim_t want = rl.rlim_max < NOFILE_WANTED ? rl.rlim_max : NOFILE_WANTED;
	if (rl.rlim_cur < want) {
		rlim_t was = rl.rlim_cur;
		rl.rlim_cur = want;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			rl.rlim_cur = was;
	}
	if (rl.rlim_cur < 8192)
		log_warn(
		    "main",
		    "at most %llu file descriptors (RLIMIT_NOFILE); a caller holding that many "
		    "connections stops the gRPC port until a restart",
		    (unsigned long long)rl.rlim_cur);
}

static void http_handler(const char *path, int *status, char **body, const char **ctype, void *arg)
{
	struct operator_state *st = arg;
	int serving = health_is_serving(st->health);

	if (strcmp(path, "/healthz") == 0 || strcmp(path, "/livez") == 0) {
		int accepting = !st->rpc || rpc_server_accepting(st->rpc);
		*status = accepting ? 200 : 503;
		*body =
		    strdup(accepting ? "ok\n"
				     : "the gRPC port stopped accepting connections (out of file "
				       "descriptors); restart udf-operator\n");
	} else if (strcmp(path, "/readyz") == 0) {
		int stopping = atomic_load(&st->stopping);
		*status = serving && !stopping ? 200 : 503;
		*body = strdup(stopping	 ? "shutting down\n"
			       : serving ? "ok\n"
					 : "API server unreachable\n");
	} else if (strcmp(path, "/metrics") == 0) {
		char buf[1024];
		snprintf(buf, sizeof(buf),
			 "# HELP udf_operator_apiserver_reachable 1 when the last API server probe "
			 "succeeded.\n"
			 "# TYPE udf_operator_apiserver_reachable gauge\n"
			 "udf_operator_apiserver_reachable %d\n"
			 "# HELP udf_operator_apiserver_probes_total API server probes by result.\n"
			 "# TYPE udf_operator_apiserver_probes_total counter\n"
			 "udf_operator_apiserver_probes_total{result=\"ok\"} %lld\n"
			 "udf_operator_apiserver_probes_total{result=\"failed\"} %lld\n"
			 "# HELP udf_operator_leader 1 while this replica holds the leader Lease.\n"
			 "# TYPE udf_operator_leader gauge\n"
			 "udf_operator_leader %d\n",
			 atomic_load(&st->reachable), (long long)atomic_load(&st->probes_ok),
			 (long long)atomic_load(&st->probes_failed), atomic_load(&st->leading));
		char *pools = st->pools ? pool_controller_metrics(st->pools) : NULL;
		char *fns = st->functions ? function_controller_metrics(st->functions) : NULL;
		char *calls = st->rpc ? rpc_server_metrics(st->rpc) : NULL;
		size_t n = strlen(buf) + (pools ? strlen(pools) : 0) + (fns ? strlen(fns) : 0) +
			   (calls ? strlen(calls) : 0) + 1;
		*body = malloc(n);
		if (*body)
			snprintf(*body, n, "%s%s%s%s", buf, pools ? pools : "", fns ? fns : "",
				 calls ? calls : "");
		free(pools);
		free(fns);
		free(calls);
		*status = 200;
		*ctype = "text/plain; version=0.0.4";
	} else {
		*status = 404;
	}
}

static void on_started_leading(void *arg)
{
	struct operator_state *st = arg;
	atomic_store(&st->leading, 1);
	log_info("main", "leading: this replica reconciles");
	if (st->pools && pool_controller_start(st->pools) < 0)
		log_error("main", "cannot start the UdfWarmPool controller");
	if (st->functions && function_controller_start(st->functions) < 0)
		log_error("main", "cannot start the UdfFunction controller");
}

/* The Lease was lost (taken, or not renewed in time: the API server may be down). The
 * reconcilers pause before this returns, so this replica no longer acts; it keeps serving
 * gRPC from its caches (exiting would cut every query node's call in flight) and stands for
 * election again. */
static void on_stopped_leading(void *arg)
{
	struct operator_state *st = arg;
	atomic_store(&st->leading, 0);
	pool_controller_pause(st->pools);
	function_controller_pause(st->functions);
	log_warn("main", "not leading: reconcilers paused; serving gRPC and standing for election");
}

static void on_new_leader(void *arg, const char *identity)
{
	log_info("main", "the leader is now %s", identity ? identity : "(none)");
}

/* The first part of a shutdown: reconcilers stop and the Lease goes to the other replica at
 * once; then, for --shutdown-delay, /readyz fails while gRPC keeps answering, so the Service
 * stops routing calls here before the port closes (a call routed to a closed port waits for
 * its deadline). Another SIGTERM or SIGINT ends the wait. */
static void drain(const struct options *o, struct operator_state *st, struct kube_leader **leader,
		  const sigset_t *sigs)
{
	atomic_store(&st->stopping, 1);
	if (*leader) {
		pool_controller_stop(st->pools);
		function_controller_stop(st->functions);
		kube_leader_stop(*leader); /* releases the Lease so a successor need not wait */
		kube_leader_free(*leader);
		*leader = NULL;
		atomic_store(&st->leading, 0);
	}
	if (o->shutdown_delay_s <= 0)
		return;
	log_info("main", "answering gRPC for %llds more while the Service drops this replica",
		 o->shutdown_delay_s);
	struct timespec end, now;
	clock_gettime(CLOCK_MONOTONIC, &end);
	end.tv_sec += o->shutdown_delay_s;
	for (;;) {
		clock_gettime(CLOCK_MONOTONIC, &now);
		long long left_ms =
		    (end.tv_sec - now.tv_sec) * 1000LL + (end.tv_nsec - now.tv_nsec) / 1000000;
		if (left_ms <= 0)
			return;
		struct timespec wait = {.tv_sec = left_ms / 1000,
					.tv_nsec = (left_ms % 1000) * 1000000};
		int sig = sigtimedwait(sigs, NULL, &wait);
		if (sig == SIGINT || sig == SIGTERM)
			return;
	}
}

/* Only the reconcilers wait for leadership; every replica serves gRPC, since the state the
 * calls read lives in the API server. Losing the lease pauses the reconcilers. */
static int start_leader_election(const struct options *o, struct operator_state *st,
				 struct kube_leader **out)
{
	const char *ns = o->leader_ns;
	if (!ns)
		ns = kube_config_namespace(kube_client_config(st->kube));
	if (!ns || !*ns)
		ns = "udf-system";
	struct kube_leader_opts lo = {
	    .ns = ns,
	    .name = o->leader_id ? o->leader_id : "udf-operator",
	    .on_started_leading = on_started_leading,
	    .on_stopped_leading = on_stopped_leading,
	    .on_new_leader = on_new_leader,
	    .arg = st,
	};
	if (kube_leader_new(st->kube, &lo, out) < 0 || kube_leader_start(*out) < 0) {
		log_error("main", "cannot start leader election on Lease %s/%s", lo.ns, lo.name);
		kube_leader_free(*out);
		*out = NULL;
		return -1;
	}
	log_info("main", "leader election on Lease %s/%s as %s", lo.ns, lo.name,
		 kube_leader_identity(*out));
	return 0;
}

/* Everything the operator watches: one informer loop, one informer per resource, shared by
 * every component that reads it (each adds its handlers before the loop starts). */
struct watches {
	struct kube_informers *loop;
	struct kube_informer *functions;	 /* UdfFunctions, all namespaces */
	struct kube_informer *tenant_namespaces; /* namespaces the gRPC service made */
	struct kube_informer *pools;		 /* UdfWarmPools (--pool-selector) */
	struct kube_informer *pods;		 /* sandbox pods, indexed by pool and function */
	struct kube_informer *namespaces;	 /* every namespace (tenants, pool selectors) */
};

static int watches_new(struct kube_client *kube, const struct options *o, struct watches *w)
{
	static const struct kube_res res_functions = {"apis/udf.sandbox.io/v1alpha1",
						      "udffunctions"};
	static const struct kube_res res_namespaces = {"api/v1", "namespaces"};
	/* A UdfFunction holds up to ~1.3 MiB of code or script and credentials (env, import urls
	 * and headers): the cache keeps only their digest (udf/function_pod.h), from which the
	 * function controller rolls pods; it reads the object from the API server to specialize
	 * one. Consistent reads in pages of 16 bound a LIST's body to ~24 MiB (kube/informer.h:
	 * a LIST at resourceVersion=0 may come whole). */
	struct kube_informer_opts fo = {.res = &res_functions,
					.transform = fn_cache_trim,
					.consistent_list = 1,
					.page_size = 16};
	struct kube_informer_opts nso = {.res = &res_namespaces,
					 .label_selector = UDF_LABEL_TENANT_NS "=true"};
	static const struct kube_res res_pools = {"apis/udf.sandbox.io/v1alpha1", "udfwarmpools"};
	static const struct kube_res res_pods = {"api/v1", "pods"};
	static const char *const by_pool[] = {UDF_LABEL_POOL, UDF_LABEL_FUNCTION_UID, NULL};
	/* The controllers read a sandbox pod's metadata and status; its spec is most of it. */
	static const char *const pod_drops[] = {"spec", NULL};
	struct kube_informer_opts allns = {.res = &res_namespaces};
	struct kube_informer_opts po = {.res = &res_pools, .label_selector = o->pool_selector};
	struct kube_informer_opts so = {.res = &res_pods,
					.label_selector = UDF_LABEL_MANAGED_BY "=" UDF_MANAGER,
					.index_labels = by_pool,
					.drop_fields = pod_drops};
	int rc = kube_informers_new(kube, &w->loop);
	if (rc == 0)
		rc = kube_informer_add(w->loop, &fo, &w->functions);
	if (rc == 0)
		rc = kube_informer_add(w->loop, &nso, &w->tenant_namespaces);
	if (rc == 0)
		rc = kube_informer_add(w->loop, &po, &w->pools);
	if (rc == 0)
		rc = kube_informer_add(w->loop, &so, &w->pods);
	if (rc == 0)
		rc = kube_informer_add(w->loop, &allns, &w->namespaces);
	return rc;
}

int main(int argc, char **argv)
{
	struct options o = {
	    .grpc_bind = ":50051",
	    .health_bind = ":8081",
	    .tenant_ns_prefix = "udf-",
	    .log_level = LOG_LEVEL_INFO,
	    .log_format = LOG_FORMAT_TEXT,
	    .worker_image = "localhost/udf-worker:dev",
	    .allowed_runtime_classes = "gvisor",
	    .default_pool = "udf-sandboxes/default",
	    .run_pools = 1,
	    .run_functions = 1,
	    .default_idle_timeout_s = 600,
	};
	struct operator_state st = {0};
	struct kube_config *cfg = NULL;
	struct rpc_server *rpc = NULL;
	struct functions *fns = NULL;
	struct watches w = {0};
	struct httpd *http = NULL;
	struct kube_leader *leader = NULL;
	char err[512] = "";
	int rc = EXIT_FAILURE;
	sigset_t sigs;

	if (parse_args(argc, argv, &o) < 0)
		return EXIT_USAGE;
	log_setup(o.log_level, o.log_format);
	if (load_config(&o, &cfg) < 0)
		return EXIT_USAGE;

	/* Signals are taken synchronously by the main thread; every other thread inherits the
	 * mask, so SIGTERM never lands in a library thread. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);

	log_info("main", "udf-operator %s starting; API server %s", UDF_VERSION,
		 kube_config_server(cfg));
	if (kube_client_new(cfg, &st.kube) < 0) {
		log_error("main", "cannot create the Kubernetes client");
		goto out;
	}
	if (health_state_new(&st.health) < 0)
		goto out_kube;

	struct rpc_server_options ro = {
	    .bind_address = o.grpc_bind,
	    .tls_cert_file = o.grpc_tls_cert,
	    .tls_key_file = o.grpc_tls_key,
	    .tls_client_ca_file = o.grpc_tls_client_ca,
	};
	raise_nofile_limit();
	if (rpc_server_new(&ro, &rpc, err, sizeof(err)) < 0) {
		log_error("main", "gRPC: %s", err);
		goto out_health;
	}
	st.rpc = rpc;
	if (watches_new(st.kube, &o, &w) < 0) {
		log_error("main", "cannot create the informers");
		goto out_rpc;
	}
	struct functions_options fo = {.kube = st.kube,
				       .inf_functions = w.functions,
				       .inf_tenant_ns = w.tenant_namespaces,
				       .ns_prefix = o.tenant_ns_prefix,
				       .ns_labels = o.tenant_ns_labels,
				       /* hardening (issue 15) */
				       .max_functions_per_tenant = o.max_functions_per_tenant,
				       .max_pods_per_tenant = o.max_pods_per_tenant,
				       .max_tenants = o.max_tenants,
				       .function_ttl_s = o.function_ttl_s,
				       .leading = o.leader_elect ? &st.leading : NULL,
				       .default_idle_timeout_s = o.default_idle_timeout_s};
	/* The UdfWarmPool controller: its handlers join the loop now, its workers start when
	 * this replica leads (at once without --leader-elect). */
	struct pool_controller_opts pco = {
	    .kube = st.kube,
	    .pools = w.pools,
	    .pods = w.pods,
	    .worker_image = o.worker_image,
	    .allowed_runtime_classes = o.allowed_runtime_classes,
	};
	if (o.run_pools && pool_controller_new(&pco, &st.pools) < 0) {
		log_error("main", "cannot create the UdfWarmPool controller");
		goto out_rpc;
	}
	/* The UdfFunction controller: its handlers join the same informers (the UdfFunctions
	 * are watched once, for the gRPC services and it). */
	struct function_controller_opts fco = {
	    .kube = st.kube,
	    .functions = w.functions,
	    .pools = w.pools,
	    .pods = w.pods,
	    .namespaces = w.namespaces,
	    .default_pool = o.default_pool,
	    .worker_image = o.worker_image,
	    .allowed_runtime_classes = o.allowed_runtime_classes,
	    .namespace_selector = o.function_ns_selector,
	    .endpoint_service = o.endpoint_service,
	};
	if (o.run_functions && function_controller_new(&fco, &st.functions) < 0) {
		log_error("main", "cannot create the UdfFunction controller (is "
				  "--function-namespace-selector K=V|K|!K[,...]?)");
		goto out_rpc;
	}
	if (functions_new(&fo, &fns) < 0 || functions_start(fns) < 0 ||
	    kube_informers_start(w.loop) < 0) {
		log_error("main", "cannot start the UdfFunction informers");
		goto out_rpc;
	}
	if (!o.leader_elect && st.pools && pool_controller_start(st.pools) < 0) {
		log_error("main", "cannot start the UdfWarmPool controller");
		goto out_rpc;
	}
	if (!o.leader_elect && st.functions && function_controller_start(st.functions) < 0) {
		log_error("main", "cannot start the UdfFunction controller");
		goto out_rpc;
	}
	if (health_register(rpc, st.health) < 0 || udf_service_register(rpc, fns) < 0 ||
	    resource_service_register(rpc, fns) < 0 || worker_service_register(rpc, fns) < 0 ||
	    rpc_server_start(rpc) < 0) {
		log_error("main", "cannot start the gRPC server");
		goto out_rpc;
	}
	log_info("main", "gRPC listening on %s (port %d, %s)", o.grpc_bind, rpc_server_port(rpc),
		 o.grpc_tls_client_ca ? "mutual TLS"
		 : o.grpc_tls_cert    ? "TLS"
				      : "plaintext");
	if (httpd_start(o.health_bind, http_handler, &st, &http, err, sizeof(err)) < 0) {
		log_error("main", "health endpoint: %s", err);
		goto out_rpc;
	}
	if (http)
		log_info("main", "HTTP /healthz /readyz /metrics on %s (port %d)", o.health_bind,
			 httpd_port(http));
	if (o.leader_elect && start_leader_election(&o, &st, &leader) < 0)
		goto out_http;

	for (;;) {
		probe_apiserver(&st);
		/* Probe every 2 s while reachable, every second while not. */
		struct timespec wait = {.tv_sec = atomic_load(&st.reachable) ? 2 : 1};
		int sig = sigtimedwait(&sigs, NULL, &wait);
		if (sig == SIGINT || sig == SIGTERM) {
			log_info("main", "%s received; shutting down",
				 sig == SIGINT ? "SIGINT" : "SIGTERM");
			break;
		}
	}
	rc = EXIT_SUCCESS;
	drain(&o, &st, &leader, &sigs);

	if (leader) {
		kube_leader_stop(leader); /* releases the Lease so a successor need not wait */
		kube_leader_free(leader);
	}
out_http:
	httpd_stop(http);
out_rpc:
	functions_shutdown(fns); /* parked calls answer now, so the server need not wait */
	rpc_server_stop(rpc, 5000);
	pool_controller_stop(st.pools); /* its workers read the informers */
	function_controller_stop(st.functions);
	kube_informers_free(w.loop); /* no handler runs after this */
	functions_free(fns);
	pool_controller_free(st.pools);
	function_controller_free(st.functions);
out_health:
	health_state_free(st.health);
out_kube:
	kube_client_free(st.kube);
	cfg = NULL; /* owned by the client */
out:
	kube_config_free(cfg);
	if (rc == EXIT_SUCCESS)
		log_info("main", "stopped");
	return rc;
}
