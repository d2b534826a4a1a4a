/*
 * kube/config: kubeconfig (libyaml) and in-cluster configuration, token refresh, exec plugins.
 *
 * The YAML document is first turned into a cJSON tree (scalars as strings) with a node
 * budget, so aliases cannot blow up memory, then read through the same checked lookups the
 * rest of kube/ uses for objects.
 */
#include "kube/config.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <yaml.h>

#include "util/log.h"

#define SA_DIR		   "/var/run/secrets/kubernetes.io/serviceaccount"
#define TOKEN_MAX_AGE_S	   60
#define FILE_MAX_BYTES	   (4 << 20)
#define YAML_MAX_NODES	   100000
#define YAML_MAX_DEPTH	   64
#define EXEC_MAX_OUTPUT	   (1 << 20)
#define EXEC_TIMEOUT_MS	   60000
#define EXEC_EXPIRY_SKEW_S 10

extern char **environ;

struct exec_plugin {
	char *api_version;
	char *command;
	char **argv; /* argv[0] = command, NULL-terminated */
	char **env;  /* "NAME=value", NULL-terminated, added to the process environment */
};

struct kube_config {
	char *path; /* file it came from, or "in-cluster" */
	char *server;
	char *namespace;
	char *ca, *cert, *key;
	struct kube_tls tls;

	pthread_mutex_t mu; /* guards everything below */
	char *token;	    /* static or last read/issued */
	char *token_file;
	struct stat token_st;
	time_t token_read_at; /* monotonic seconds */
	struct exec_plugin *exec;
	time_t token_expiry; /* wall clock; 0 = never */
	int token_stale;     /* 401 seen: refresh before next use */
};

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	if (!err || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static time_t mono_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

/* Reads a whole file (at most FILE_MAX_BYTES) into a NUL-terminated buffer. */
static int read_file(const char *path, char **out, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t cap = 0, n = 0;
	int rc = 0;

	if (!f)
		return -errno;
	{
		/* Only regular files: a FIFO or a device named in a kubeconfig would block or
		 * never end. */
		struct stat st;
		if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
			fclose(f);
			return -EINVAL;
		}
	}
	for (;;) {
		if (n + 4096 + 1 > cap) {
			size_t ncap = cap ? cap * 2 : 8192;
			char *nb;
			if (ncap > FILE_MAX_BYTES + 1) {
				rc = -EFBIG;
				goto out;
			}
			nb = realloc(buf, ncap);
			if (!nb) {
				rc = -ENOMEM;
				goto out;
			}
			buf = nb;
			cap = ncap;
		}
		size_t r = fread(buf + n, 1, cap - n - 1, f);
		n += r;
		if (r == 0) {
			if (ferror(f))
				rc = -EIO;
			break;
		}
	}
out:
	fclose(f);
	if (rc) {
		free(buf);
		return rc;
	}
	if (!buf) {
		buf = malloc(1);
		if (!buf)
			return -ENOMEM;
	}
	buf[n] = '\0';
	*out = buf;
	if (len)
		*len = n;
	return 0;
}

static char *trim_dup(const char *s, size_t n)
{
	while (n && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' ' || s[n - 1] == '\t'))
		n--;
	while (n && (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')) {
		s++;
		n--;
	}
	return strndup(s, n);
}

/* ---- YAML to cJSON ---- */

struct yconv {
	yaml_document_t *doc;
	long budget;
};

static cJSON *yaml_node_to_json(struct yconv *c, yaml_node_t *node, int depth)
{
	cJSON *out = NULL;

	if (!node || depth > YAML_MAX_DEPTH || --c->budget < 0)
		return NULL;
	switch (node->type) {
	case YAML_SCALAR_NODE:
		return cJSON_CreateString((const char *)node->data.scalar.value);
	case YAML_SEQUENCE_NODE:
		out = cJSON_CreateArray();
		if (!out)
			return NULL;
		for (yaml_node_item_t *it = node->data.sequence.items.start;
		     it < node->data.sequence.items.top; it++) {
			cJSON *v =
			    yaml_node_to_json(c, yaml_document_get_node(c->doc, *it), depth + 1);
			if (!v) {
				cJSON_Delete(out);
				return NULL;
			}
			cJSON_AddItemToArray(out, v);
		}
		return out;
	case YAML_MAPPING_NODE:
		out = cJSON_CreateObject();
		if (!out)
			return NULL;
		for (yaml_node_pair_t *p = node->data.mapping.pairs.start;
		     p < node->data.mapping.pairs.top; p++) {
			yaml_node_t *k = yaml_document_get_node(c->doc, p->key);
			cJSON *v;
			if (!k || k->type != YAML_SCALAR_NODE) {
				cJSON_Delete(out);
				return NULL;
			}
			v = yaml_node_to_json(c, yaml_document_get_node(c->doc, p->value),
					      depth + 1);
			if (!v) {
				cJSON_Delete(out);
				return NULL;
			}
			/* Later duplicates replace earlier ones, like most YAML readers. */
			cJSON_DeleteItemFromObjectCaseSensitive(out,
								(const char *)k->data.scalar.value);
			cJSON_AddItemToObject(out, (const char *)k->data.scalar.value, v);
		}
		return out;
	default:
		return NULL;
	}
}

static int yaml_to_json(const char *text, size_t len, cJSON **out, char *why, size_t whylen)
{
	yaml_parser_t parser;
	yaml_document_t doc;
	struct yconv c;
	yaml_node_t *root;
	int rc = 0;

	if (!yaml_parser_initialize(&parser))
		return -ENOMEM;
	yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
	if (!yaml_parser_load(&parser, &doc)) {
		set_err(why, whylen, "YAML error at line %zu: %s", parser.problem_mark.line + 1,
			parser.problem ? parser.problem : "unknown");
		yaml_parser_delete(&parser);
		return -EINVAL;
	}
	root = yaml_document_get_root_node(&doc);
	if (!root) {
		*out = cJSON_CreateObject(); /* empty file: an empty config */
		rc = *out ? 0 : -ENOMEM;
		goto out;
	}
	c.doc = &doc;
	c.budget = YAML_MAX_NODES;
	*out = yaml_node_to_json(&c, root, 0);
	if (!*out) {
		set_err(why, whylen, "YAML too large, too deep or with non-scalar keys");
		rc = -EINVAL;
	}
out:
	yaml_document_delete(&doc);
	yaml_parser_delete(&parser);
	return rc;
}

/* ---- base64 ---- */

static int b64_val(int ch)
{
	if (ch >= 'A' && ch <= 'Z')
		return ch - 'A';
	if (ch >= 'a' && ch <= 'z')
		return ch - 'a' + 26;
	if (ch >= '0' && ch <= '9')
		return ch - '0' + 52;
	if (ch == '+' || ch == '-')
		return 62;
	if (ch == '/' || ch == '_')
		return 63;
	return -1;
}

static int b64_decode(const char *in, char **out, size_t *outlen)
{
	size_t n = strlen(in), o = 0;
	unsigned acc = 0;
	int bits = 0;
	char *buf = malloc(n / 4 * 3 + 4);

	if (!buf)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		int ch = (unsigned char)in[i], v;
		if (ch == '=' || ch == '\n' || ch == '\r' || ch == ' ' || ch == '\t')
			continue;
		v = b64_val(ch);
		if (v < 0) {
			free(buf);
			return -EINVAL;
		}
		acc = (acc << 6) | (unsigned)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			buf[o++] = (char)((acc >> bits) & 0xff);
		}
	}
	buf[o] = '\0';
	*out = buf;
	*outlen = o;
	return 0;
}

/* ---- kubeconfig ---- */

static const char *jstr(const cJSON *obj, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* Finds the entry named name in a kubeconfig list (clusters, users, contexts) and returns its
 * inner object (entry[inner]). */
static const cJSON *named_entry(const cJSON *root, const char *list, const char *name,
				const char *inner)
{
	const cJSON *arr = cJSON_GetObjectItemCaseSensitive(root, list), *e;
	cJSON_ArrayForEach(e, arr)
	{
		const char *n = jstr(e, "name");
		if (n && strcmp(n, name) == 0) {
			const cJSON *in = cJSON_GetObjectItemCaseSensitive(e, inner);
			return cJSON_IsObject(in) ? in : NULL;
		}
	}
	return NULL;
}

static char *resolve_path(const char *base_dir, const char *p)
{
	char *out;
	if (p[0] == '/' || !base_dir || !*base_dir)
		return strdup(p);
	if (asprintf(&out, "%s/%s", base_dir, p) < 0)
		return NULL;
	return out;
}

static int is_true(const char *s)
{
	return s && (strcmp(s, "true") == 0 || strcmp(s, "True") == 0 || strcmp(s, "TRUE") == 0);
}

/* Loads one credential: inline base64 (field-data) or a file (field), resolved against
 * base_dir. *out stays NULL when neither is set. */
static int load_blob(const cJSON *obj, const char *field, const char *base_dir, const char *where,
		     char **out, size_t *outlen, char *err, size_t errlen)
{
	char data_field[64];
	const char *data, *file;
	int rc;

	snprintf(data_field, sizeof(data_field), "%s-data", field);
	data = jstr(obj, data_field);
	file = jstr(obj, field);
	if (data && *data) {
		rc = b64_decode(data, out, outlen);
		if (rc == -EINVAL)
			set_err(err, errlen, "%s: %s: not valid base64", where, data_field);
		return rc;
	}
	if (file && *file) {
		char *p = resolve_path(base_dir, file);
		if (!p)
			return -ENOMEM;
		rc = read_file(p, out, outlen);
		if (rc)
			set_err(err, errlen, "%s: %s: cannot read %s: %s", where, field, p,
				strerror(-rc));
		free(p);
		return rc;
	}
	return 0;
}

static void exec_free(struct exec_plugin *e)
{
	if (!e)
		return;
	free(e->api_version);
	free(e->command);
	for (char **a = e->argv; a && *a; a++)
		free(*a);
	free(e->argv);
	for (char **a = e->env; a && *a; a++)
		free(*a);
	free(e->env);
	free(e);
}

static int parse_exec(const cJSON *ex, const char *base_dir, const char *where,
		      struct exec_plugin **out, char *err, size_t errlen)
{
	struct exec_plugin *e = calloc(1, sizeof(*e));
	const char *cmd = jstr(ex, "command"), *api = jstr(ex, "apiVersion");
	const cJSON *args = cJSON_GetObjectItemCaseSensitive(ex, "args");
	const cJSON *env = cJSON_GetObjectItemCaseSensitive(ex, "env"), *it;
	int nargs = cJSON_GetArraySize(args), nenv = cJSON_GetArraySize(env), i = 0;

	if (!e)
		return -ENOMEM;
	if (!cmd || !*cmd) {
		set_err(err, errlen, "%s: exec.command: missing", where);
		goto out_inval;
	}
	if (api && strcmp(api, "client.authentication.k8s.io/v1") != 0 &&
	    strcmp(api, "client.authentication.k8s.io/v1beta1") != 0) {
		set_err(err, errlen, "%s: exec.apiVersion: unsupported %s", where, api);
		goto out_inval;
	}
	e->api_version = strdup(api ? api : "client.authentication.k8s.io/v1");
	/* Like client-go: a command with a slash is a path relative to the kubeconfig. */
	e->command = strchr(cmd, '/') ? resolve_path(base_dir, cmd) : strdup(cmd);
	e->argv = calloc((size_t)nargs + 2, sizeof(char *));
	e->env = calloc((size_t)nenv + 2, sizeof(char *));
	if (!e->api_version || !e->command || !e->argv || !e->env)
		goto out_nomem;
	e->argv[i++] = strdup(e->command);
	if (!e->argv[0])
		goto out_nomem;
	cJSON_ArrayForEach(it, args)
	{
		if (!cJSON_IsString(it)) {
			set_err(err, errlen, "%s: exec.args: not a list of strings", where);
			goto out_inval;
		}
		if (!(e->argv[i++] = strdup(it->valuestring)))
			goto out_nomem;
	}
	i = 0;
	cJSON_ArrayForEach(it, env)
	{
		const char *n = jstr(it, "name"), *v = jstr(it, "value");
		if (!n || !v || !*n || strchr(n, '=')) {
			set_err(err, errlen, "%s: exec.env: each entry needs a name and a value",
				where);
			goto out_inval;
		}
		if (asprintf(&e->env[i++], "%s=%s", n, v) < 0) {
			e->env[i - 1] = NULL;
			goto out_nomem;
		}
	}
	*out = e;
	return 0;
out_nomem:
	exec_free(e);
	return -ENOMEM;
out_inval:
	exec_free(e);
	return -EINVAL;
}

static struct kube_config *config_alloc(const char *path)
{
	struct kube_config *cfg = calloc(1, sizeof(*cfg));
	if (!cfg)
		return NULL;
	pthread_mutex_init(&cfg->mu, NULL);
	cfg->path = strdup(path);
	if (!cfg->path) {
		pthread_mutex_destroy(&cfg->mu);
		free(cfg);
		return NULL;
	}
	return cfg;
}

static int finish_tls(struct kube_config *cfg, size_t ca_len, size_t cert_len, size_t key_len)
{
	cfg->tls.ca = cfg->ca;
	cfg->tls.ca_len = ca_len;
	cfg->tls.cert = cfg->cert;
	cfg->tls.cert_len = cert_len;
	cfg->tls.key = cfg->key;
	cfg->tls.key_len = key_len;
	if (!cfg->namespace && !(cfg->namespace = strdup("default")))
		return -ENOMEM;
	return 0;
}

int kube_config_parse(const char *text, size_t len, const char *path, struct kube_config **out,
		      char *err, size_t errlen)
{
	const char *name = path ? path : "kubeconfig";
	char why[160] = "", where[256];
	char *base_dir = NULL;
	cJSON *root = NULL;
	const cJSON *ctx, *cluster, *user, *ex;
	const char *cur, *cluster_name, *user_name, *s;
	struct kube_config *cfg = NULL;
	size_t ca_len = 0, cert_len = 0, key_len = 0;
	int rc;

	*out = NULL;
	if (path) {
		const char *slash = strrchr(path, '/');
		base_dir = slash ? strndup(path, (size_t)(slash - path == 0 ? 1 : slash - path))
				 : strdup(".");
		if (!base_dir)
			return -ENOMEM;
	}
	rc = yaml_to_json(text, len, &root, why, sizeof(why));
	if (rc) {
		set_err(err, errlen, "%s: %s", name, why[0] ? why : "cannot parse");
		goto out_free_dir;
	}
	rc = -EINVAL;
	if (!cJSON_IsObject(root)) {
		set_err(err, errlen, "%s: not a YAML mapping", name);
		goto out_free_root;
	}
	cur = jstr(root, "current-context");
	if (!cur || !*cur) {
		set_err(err, errlen, "%s: current-context: missing", name);
		goto out_free_root;
	}
	ctx = named_entry(root, "contexts", cur, "context");
	if (!ctx) {
		set_err(err, errlen, "%s: contexts: no context named \"%s\"", name, cur);
		goto out_free_root;
	}
	cluster_name = jstr(ctx, "cluster");
	if (!cluster_name || !*cluster_name) {
		set_err(err, errlen, "%s: contexts[%s].context.cluster: missing", name, cur);
		goto out_free_root;
	}
	cluster = named_entry(root, "clusters", cluster_name, "cluster");
	if (!cluster) {
		set_err(err, errlen, "%s: clusters: no cluster named \"%s\"", name, cluster_name);
		goto out_free_root;
	}
	user_name = jstr(ctx, "user");
	user = user_name && *user_name ? named_entry(root, "users", user_name, "user") : NULL;
	if (user_name && *user_name && !user) {
		set_err(err, errlen, "%s: users: no user named \"%s\"", name, user_name);
		goto out_free_root;
	}

	rc = -ENOMEM;
	cfg = config_alloc(name);
	if (!cfg)
		goto out_free_root;
	rc = -EINVAL;
	s = jstr(cluster, "server");
	if (!s || !*s) {
		set_err(err, errlen, "%s: clusters[%s].cluster.server: missing", name,
			cluster_name);
		goto out_free_cfg;
	}
	if (strncmp(s, "https://", 8) != 0 && strncmp(s, "http://", 7) != 0) {
		set_err(err, errlen, "%s: clusters[%s].cluster.server: not an http(s) URL", name,
			cluster_name);
		goto out_free_cfg;
	}
	rc = -ENOMEM;
	cfg->server = strdup(s);
	if (!cfg->server)
		goto out_free_cfg;
	/* No trailing slash: paths are appended as "/api/...". */
	for (size_t n = strlen(cfg->server); n > 0 && cfg->server[n - 1] == '/'; n--)
		cfg->server[n - 1] = '\0';
	s = jstr(ctx, "namespace");
	if (s && *s && !(cfg->namespace = strdup(s)))
		goto out_free_cfg;
	cfg->tls.insecure = is_true(jstr(cluster, "insecure-skip-tls-verify"));
	s = jstr(cluster, "tls-server-name");
	if (s && *s && !(cfg->tls.server_name = strdup(s)))
		goto out_free_cfg;

	snprintf(where, sizeof(where), "%s: clusters[%s].cluster", name, cluster_name);
	rc = load_blob(cluster, "certificate-authority", base_dir, where, &cfg->ca, &ca_len, err,
		       errlen);
	if (rc)
		goto out_free_cfg;

	if (user) {
		snprintf(where, sizeof(where), "%s: users[%s].user", name, user_name);
		rc = load_blob(user, "client-certificate", base_dir, where, &cfg->cert, &cert_len,
			       err, errlen);
		if (rc)
			goto out_free_cfg;
		rc = load_blob(user, "client-key", base_dir, where, &cfg->key, &key_len, err,
			       errlen);
		if (rc)
			goto out_free_cfg;
		rc = -EINVAL;
		if (!cfg->cert != !cfg->key) {
			set_err(err, errlen, "%s: %s: needs both", where,
				cfg->cert ? "client-key" : "client-certificate");
			goto out_free_cfg;
		}
		rc = -ENOMEM;
		s = jstr(user, "token");
		if (s && *s && !(cfg->token = strdup(s)))
			goto out_free_cfg;
		s = jstr(user, "tokenFile");
		if (s && *s && !cfg->token) {
			if (!(cfg->token_file = resolve_path(base_dir, s)))
				goto out_free_cfg;
		}
		ex = cJSON_GetObjectItemCaseSensitive(user, "exec");
		if (ex) {
			if (!cJSON_IsObject(ex)) {
				rc = -EINVAL;
				set_err(err, errlen, "%s: exec: not a mapping", where);
				goto out_free_cfg;
			}
			rc = parse_exec(ex, base_dir, where, &cfg->exec, err, errlen);
			if (rc)
				goto out_free_cfg;
		}
		if (cJSON_GetObjectItemCaseSensitive(user, "auth-provider")) {
			rc = -ENOTSUP;
			set_err(err, errlen, "%s: auth-provider: not supported, use exec", where);
			goto out_free_cfg;
		}
	}
	rc = finish_tls(cfg, ca_len, cert_len, key_len);
	if (rc)
		goto out_free_cfg;
	if (cfg->token_file) {
		/* Read now so a bad path fails at load, naming the field. */
		char *tok;
		size_t n;
		rc = read_file(cfg->token_file, &tok, &n);
		if (rc) {
			set_err(err, errlen, "%s: users[%s].user.tokenFile: cannot read %s: %s",
				name, user_name, cfg->token_file, strerror(-rc));
			goto out_free_cfg;
		}
		free(tok);
	}
	*out = cfg;
	cfg = NULL;
	rc = 0;
out_free_cfg:
	kube_config_free(cfg);
out_free_root:
	cJSON_Delete(root);
out_free_dir:
	free(base_dir);
	return rc;
}

int kube_config_load(const char *path, struct kube_config **out, char *err, size_t errlen)
{
	char *chosen = NULL, *text;
	size_t len;
	int rc;

	*out = NULL;
	if (path) {
		chosen = strdup(path);
	} else if (getenv("KUBECONFIG") && *getenv("KUBECONFIG")) {
		char *list = strdup(getenv("KUBECONFIG")), *save = NULL, *p;
		if (!list)
			return -ENOMEM;
		for (p = strtok_r(list, ":", &save); p; p = strtok_r(NULL, ":", &save)) {
			if (access(p, R_OK) == 0) {
				chosen = strdup(p);
				break;
			}
		}
		free(list);
		if (!chosen) {
			set_err(err, errlen, "KUBECONFIG: no readable file in %s",
				getenv("KUBECONFIG"));
			return -ENOENT;
		}
	} else {
		const char *home = getenv("HOME");
		if (!home || !*home) {
			set_err(err, errlen, "no KUBECONFIG and no HOME for ~/.kube/config");
			return -ENOENT;
		}
		if (asprintf(&chosen, "%s/.kube/config", home) < 0)
			chosen = NULL;
	}
	if (!chosen)
		return -ENOMEM;
	rc = read_file(chosen, &text, &len);
	if (rc) {
		set_err(err, errlen, "%s: cannot read: %s", chosen, strerror(-rc));
		free(chosen);
		return rc;
	}
	rc = kube_config_parse(text, len, chosen, out, err, errlen);
	free(text);
	free(chosen);
	return rc;
}

int kube_config_in_cluster_dir(const char *sa_dir, struct kube_config **out, char *err,
			       size_t errlen)
{
	const char *host = getenv("KUBERNETES_SERVICE_HOST");
	const char *port = getenv("KUBERNETES_SERVICE_PORT");
	struct kube_config *cfg;
	char *p = NULL, *ns = NULL;
	size_t ca_len = 0, n;
	int rc;

	*out = NULL;
	if (!host || !*host || !port || !*port) {
		set_err(
		    err, errlen,
		    "in-cluster: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must be set");
		return -ENOENT;
	}
	cfg = config_alloc("in-cluster");
	if (!cfg)
		return -ENOMEM;
	rc = -ENOMEM;
	/* An IPv6 literal needs brackets in a URL. */
	if (asprintf(&cfg->server, strchr(host, ':') ? "https://[%s]:%s" : "https://%s:%s", host,
		     port) < 0) {
		cfg->server = NULL;
		goto out_free_cfg;
	}
	if (asprintf(&p, "%s/ca.crt", sa_dir) < 0)
		goto out_free_cfg;
	rc = read_file(p, &cfg->ca, &ca_len);
	if (rc) {
		set_err(err, errlen, "in-cluster: %s: %s", p, strerror(-rc));
		goto out_free_path;
	}
	free(p);
	p = NULL;
	rc = -ENOMEM;
	if (asprintf(&p, "%s/namespace", sa_dir) < 0)
		goto out_free_cfg;
	if (read_file(p, &ns, &n) == 0) {
		cfg->namespace = trim_dup(ns, n);
		free(ns);
		if (!cfg->namespace)
			goto out_free_path;
	}
	free(p);
	if (asprintf(&cfg->token_file, "%s/token", sa_dir) < 0) {
		cfg->token_file = NULL;
		p = NULL;
		goto out_free_cfg;
	}
	p = NULL;
	rc = finish_tls(cfg, ca_len, 0, 0);
	if (rc)
		goto out_free_cfg;
	{
		char *tok = NULL;
		rc = kube_config_token(cfg, &tok, err, errlen);
		free(tok);
		if (rc)
			goto out_free_cfg;
	}
	*out = cfg;
	return 0;
out_free_path:
	free(p);
out_free_cfg:
	kube_config_free(cfg);
	return rc;
}

int kube_config_in_cluster(struct kube_config **out, char *err, size_t errlen)
{
	return kube_config_in_cluster_dir(SA_DIR, out, err, errlen);
}

void kube_config_free(struct kube_config *cfg)
{
	if (!cfg)
		return;
	free(cfg->path);
	free(cfg->server);
	free(cfg->namespace);
	free(cfg->ca);
	free(cfg->cert);
	free(cfg->key);
	free((char *)cfg->tls.server_name);
	if (cfg->token) {
		explicit_bzero(cfg->token, strlen(cfg->token));
		free(cfg->token);
	}
	free(cfg->token_file);
	exec_free(cfg->exec);
	pthread_mutex_destroy(&cfg->mu);
	free(cfg);
}

const char *kube_config_server(const struct kube_config *cfg)
{
	return cfg->server;
}

const char *kube_config_namespace(const struct kube_config *cfg)
{
	return cfg->namespace;
}

const struct kube_tls *kube_config_tls(const struct kube_config *cfg)
{
	return &cfg->tls;
}

/* ---- token refresh ---- */

static void replace_token(struct kube_config *cfg, char *tok)
{
	if (cfg->token) {
		explicit_bzero(cfg->token, strlen(cfg->token));
		free(cfg->token);
	}
	cfg->token = tok;
}

/* Caller holds cfg->mu. */
static int refresh_token_file(struct kube_config *cfg, char *err, size_t errlen)
{
	struct stat st;
	time_t now = mono_now();
	char *buf, *tok;
	size_t n;
	int changed, rc;

	if (stat(cfg->token_file, &st) != 0) {
		rc = -errno;
		if (cfg->token) /* keep using the last token while the file is being swapped */
			return 0;
		set_err(err, errlen, "%s: tokenFile %s: %s", cfg->path, cfg->token_file,
			strerror(-rc));
		return rc;
	}
	changed = st.st_ino != cfg->token_st.st_ino || st.st_dev != cfg->token_st.st_dev ||
		  st.st_size != cfg->token_st.st_size ||
		  st.st_mtim.tv_sec != cfg->token_st.st_mtim.tv_sec ||
		  st.st_mtim.tv_nsec != cfg->token_st.st_mtim.tv_nsec;
	if (cfg->token && !changed && !cfg->token_stale &&
	    now - cfg->token_read_at < TOKEN_MAX_AGE_S)
		return 0;
	rc = read_file(cfg->token_file, &buf, &n);
	if (rc) {
		if (cfg->token)
			return 0;
		set_err(err, errlen, "%s: tokenFile %s: %s", cfg->path, cfg->token_file,
			strerror(-rc));
		return rc;
	}
	tok = trim_dup(buf, n);
	explicit_bzero(buf, n);
	free(buf);
	if (!tok)
		return -ENOMEM;
	replace_token(cfg, tok);
	cfg->token_st = st;
	cfg->token_read_at = now;
	cfg->token_stale = 0;
	return 0;
}

static time_t parse_rfc3339(const char *s)
{
	struct tm tm;
	const char *end;
	memset(&tm, 0, sizeof(tm));
	end = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
	if (!end)
		return -1;
	return timegm(&tm);
}

/* Runs the exec plugin and reads its ExecCredential. Caller holds cfg->mu. */
int kube_exec_credential_parse(const char *buf, size_t len, char **token, time_t *expiry)
{
	cJSON *cred = cJSON_ParseWithLength(buf, len);
	const cJSON *st = cJSON_GetObjectItemCaseSensitive(cred, "status");
	const char *kind = jstr(cred, "kind");
	const char *tok = jstr(st, "token");
	const char *exp = jstr(st, "expirationTimestamp");
	int rc = -EINVAL;
	*token = NULL;
	*expiry = 0;
	if (cred && kind && strcmp(kind, "ExecCredential") == 0 && tok && *tok) {
		rc = (*token = strdup(tok)) ? 0 : -ENOMEM;
		*expiry = exp ? parse_rfc3339(exp) : 0;
		if (*expiry < 0)
			*expiry = 0;
	}
	cJSON_Delete(cred);
	return rc;
}

static int run_exec(struct kube_config *cfg, char *err, size_t errlen)
{
	struct exec_plugin *e = cfg->exec;
	posix_spawn_file_actions_t fa;
	char **envp = NULL, *info = NULL, *outbuf = NULL;
	size_t nenv = 0, nadd = 0, len = 0;
	int pipefd[2], status, rc;
	pid_t pid;

	for (char **p = environ; p && *p; p++)
		nenv++;
	for (char **p = e->env; p && *p; p++)
		nadd++;
	envp = calloc(nenv + nadd + 2, sizeof(char *));
	if (!envp)
		return -ENOMEM;
	if (asprintf(&info,
		     "KUBERNETES_EXEC_INFO={\"apiVersion\":\"%s\",\"kind\":\"ExecCredential\","
		     "\"spec\":{\"interactive\":false}}",
		     e->api_version) < 0) {
		free(envp);
		return -ENOMEM;
	}
	memcpy(envp, environ, nenv * sizeof(char *));
	memcpy(envp + nenv, e->env, nadd * sizeof(char *));
	envp[nenv + nadd] = info;

	if (pipe2(pipefd, O_CLOEXEC) != 0) {
		rc = -errno;
		goto out_free_env;
	}
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, pipefd[1], 1);
	rc = posix_spawnp(&pid, e->command, &fa, NULL, e->argv, envp);
	posix_spawn_file_actions_destroy(&fa);
	close(pipefd[1]);
	if (rc != 0) {
		set_err(err, errlen, "%s: exec.command %s: %s", cfg->path, e->command,
			strerror(rc));
		rc = -rc;
		close(pipefd[0]);
		goto out_free_env;
	}
	{
		size_t cap = 0;
		struct timespec t0, t1;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		rc = 0;
		for (;;) {
			struct pollfd pfd = {.fd = pipefd[0], .events = POLLIN};
			long left;
			ssize_t r;
			clock_gettime(CLOCK_MONOTONIC, &t1);
			left = EXEC_TIMEOUT_MS - ((t1.tv_sec - t0.tv_sec) * 1000 +
						  (t1.tv_nsec - t0.tv_nsec) / 1000000);
			if (left <= 0 || poll(&pfd, 1, (int)left) == 0) {
				rc = -ETIMEDOUT;
				kill(pid, SIGKILL);
				break;
			}
			if (len + 4096 + 1 > cap) {
				char *nb;
				cap = cap ? cap * 2 : 8192;
				if (cap > EXEC_MAX_OUTPUT) {
					rc = -EFBIG;
					kill(pid, SIGKILL);
					break;
				}
				nb = realloc(outbuf, cap);
				if (!nb) {
					rc = -ENOMEM;
					kill(pid, SIGKILL);
					break;
				}
				outbuf = nb;
			}
			r = read(pipefd[0], outbuf + len, cap - len - 1);
			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0)
				break;
			len += (size_t)r;
		}
		close(pipefd[0]);
	}
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (rc) {
		set_err(err, errlen, "%s: exec.command %s: %s", cfg->path, e->command,
			strerror(-rc));
		goto out_free_out;
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		set_err(err, errlen, "%s: exec.command %s: exited with status %d", cfg->path,
			e->command,
			WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
		rc = -EPERM;
		goto out_free_out;
	}
	char *t = NULL;
	time_t expiry = 0;
	rc = outbuf ? kube_exec_credential_parse(outbuf, len, &t, &expiry) : -EINVAL;
	if (rc == -EINVAL)
		set_err(err, errlen,
			"%s: exec.command %s: output is not an ExecCredential with "
			"status.token",
			cfg->path, e->command);
	if (rc < 0)
		goto out_free_out;
	replace_token(cfg, t);
	cfg->token_expiry = expiry;
	cfg->token_stale = 0;
	rc = 0;
out_free_out:
	if (outbuf) {
		explicit_bzero(outbuf, len);
		free(outbuf);
	}
out_free_env:
	free(info);
	free(envp);
	return rc;
}

int kube_config_token(struct kube_config *cfg, char **out, char *err, size_t errlen)
{
	int rc = 0;

	*out = NULL;
	pthread_mutex_lock(&cfg->mu);
	if (cfg->exec) {
		if (!cfg->token || cfg->token_stale ||
		    (cfg->token_expiry && time(NULL) + EXEC_EXPIRY_SKEW_S >= cfg->token_expiry))
			rc = run_exec(cfg, err, errlen);
	} else if (cfg->token_file) {
		rc = refresh_token_file(cfg, err, errlen);
	}
	if (rc == 0 && cfg->token && !(*out = strdup(cfg->token)))
		rc = -ENOMEM;
	pthread_mutex_unlock(&cfg->mu);
	return rc;
}

void kube_config_token_rejected(struct kube_config *cfg)
{
	pthread_mutex_lock(&cfg->mu);
	if (cfg->exec || cfg->token_file)
		cfg->token_stale = 1;
	pthread_mutex_unlock(&cfg->mu);
}
