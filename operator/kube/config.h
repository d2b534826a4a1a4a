/*
 * kube/config: where the API server is and how to authenticate to it.
 *
 * Sources: a kubeconfig file (libyaml; $KUBECONFIG colon list, first wins, else
 * ~/.kube/config) or the in-cluster service account. Credentials stay in memory (client
 * certificates are handed to libcurl as blobs, never written to temp files).
 *
 * A struct kube_config is immutable after load except for the token, which the owner
 * refreshes through kube_config_token() (thread-safe; re-reads a token file when it changes
 * and at least every minute, and re-runs exec plugins on expiry or after a 401). Errors fill
 * err with a message that names the file and the field; never a credential.
 */
#ifndef UDF_KUBE_CONFIG_H
#define UDF_KUBE_CONFIG_H

#include <stddef.h>
#include <time.h>

struct kube_config;

/* path NULL: $KUBECONFIG (first readable entry of the colon list) or ~/.kube/config.
 * Returns 0, or a negative errno with err (errlen bytes) describing what was wrong. */
int kube_config_load(const char *path, struct kube_config **out, char *err, size_t errlen);

/* Parses kubeconfig text. path names the file in errors and its directory anchors relative
 * paths (NULL: relative to the working directory). Exposed for tests and the fuzzer. */
int kube_config_parse(const char *text, size_t len, const char *path, struct kube_config **out,
		      char *err, size_t errlen);

/* In-cluster: KUBERNETES_SERVICE_HOST/PORT and /var/run/secrets/kubernetes.io/serviceaccount. */
int kube_config_in_cluster(struct kube_config **out, char *err, size_t errlen);

/* The same with another service-account directory (ca.crt, token, namespace); for tests. */
int kube_config_in_cluster_dir(const char *sa_dir, struct kube_config **out, char *err,
			       size_t errlen);

void kube_config_free(struct kube_config *cfg);

/* The API server's base URL, e.g. "https://127.0.0.1:6443". Borrowed. */
const char *kube_config_server(const struct kube_config *cfg);

/* The context's namespace (in cluster: the service account's), "default" when unset. */
const char *kube_config_namespace(const struct kube_config *cfg);

/* TLS material, borrowed, valid for the config's life. Blobs are PEM, not NUL-terminated. */
struct kube_tls {
	const char *ca;
	size_t ca_len;
	const char *cert;
	size_t cert_len;
	const char *key;
	size_t key_len;
	int insecure;		 /* insecure-skip-tls-verify */
	const char *server_name; /* tls-server-name or NULL */
};
const struct kube_tls *kube_config_tls(const struct kube_config *cfg);

/* The bearer token to send now, malloc'd into *out (caller frees), or *out = NULL when the
 * config has no token auth. Refreshes from tokenFile / exec plugin when due. Thread-safe.
 * Returns 0 or a negative errno (err filled) when a plugin or token file failed. */
/* An exec plugin's output (len bytes): an ExecCredential with status.token. 0 with the token
 * (malloc'd) and its expiry (0: none or unreadable), or -EINVAL, -ENOMEM. Exposed for fuzzing. */
int kube_exec_credential_parse(const char *buf, size_t len, char **token, time_t *expiry);
int kube_config_token(struct kube_config *cfg, char **out, char *err, size_t errlen);

/* The server answered 401: the next kube_config_token() re-reads / re-runs. Thread-safe. */
void kube_config_token_rejected(struct kube_config *cfg);

#endif
