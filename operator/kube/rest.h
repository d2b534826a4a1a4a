/*
 * kube/rest: requests to the API server over libcurl (HTTPS, connections reused).
 *
 * A struct kube_client is thread-safe: any thread may issue requests at once (easy handles
 * come from a pool and keep their connections open between requests; TLS sessions are
 * shared, so a new connection resumes instead of a full handshake).
 * Responses are owned by the caller and released with kube_response_free().
 * Every call here blocks until the answer arrives (30 s limit by default).
 *
 * Errors: 0 on success; a negative errno when no HTTP answer arrived (-ECONNREFUSED,
 * -ETIMEDOUT, -EPROTO for TLS, ...); a KUBE_E* code below when the server answered with an
 * error status. On a 401 the token is refreshed (token file, exec plugin) and the request is
 * sent once more. Tokens and Authorization headers are never logged.
 */
#ifndef UDF_KUBE_REST_H
#define UDF_KUBE_REST_H

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <stddef.h>

#include "kube/config.h"

struct kube_client;

/* A Kubernetes Status (metav1.Status) error, parsed from an error answer. */
struct kube_status {
	int code;	   /* HTTP status from the body, else from the answer */
	char reason[64];   /* e.g. "Conflict", "AlreadyExists", "NotFound", "Expired" */
	char message[512]; /* human readable, truncated */
};

struct kube_response {
	long http_status; /* 0 when no HTTP answer arrived (connection refused, timeout) */
	char *body;	  /* raw body, NUL-terminated, may be NULL */
	size_t body_len;
	cJSON *json;		   /* parsed body when it was JSON, else NULL */
	struct kube_status status; /* filled when http_status >= 400 */
};

/* Error codes for server answers: -(KUBE_E_BASE + HTTP status), with 409 split in two. */
#define KUBE_E_BASE	     10000
#define KUBE_EBADREQUEST     (-(KUBE_E_BASE + 400))
#define KUBE_EUNAUTHORIZED   (-(KUBE_E_BASE + 401))
#define KUBE_EFORBIDDEN	     (-(KUBE_E_BASE + 403))
#define KUBE_ENOTFOUND	     (-(KUBE_E_BASE + 404))
#define KUBE_ECONFLICT	     (-(KUBE_E_BASE + 409)) /* stale resourceVersion / precondition */
#define KUBE_EALREADY_EXISTS (-(KUBE_E_BASE + 1409))
#define KUBE_EGONE	     (-(KUBE_E_BASE + 410)) /* resourceVersion too old / continue expired */
#define KUBE_EINVALID	     (-(KUBE_E_BASE + 422))
#define KUBE_ETOOMANY	     (-(KUBE_E_BASE + 429))

/* The error code for a server answer (0 for 2xx). */
int kube_error_from_status(long http_status, const struct kube_status *st);

/* A short text for an error code from any call here. */
const char *kube_strerror(int err);

/* Parses a Status body; when it is not one, falls back to the HTTP status and its text.
 * Always fills st. Returns 0 when the body was a Status object, -EINVAL otherwise. Pure. */
int kube_status_parse(const char *body, size_t len, long http_status, struct kube_status *st);

/* Takes ownership of cfg (freed with the client, also on failure). */
int kube_client_new(struct kube_config *cfg, struct kube_client **out);
void kube_client_free(struct kube_client *c);

/* The time limit for requests the calling thread makes from now on (0: the default 30 s).
 * For callers that must give up sooner, such as leader election's renew deadline. */
void kube_request_timeout_ms(long ms);

/* The config the client was made with. Borrowed. */
struct kube_config *kube_client_config(struct kube_client *c);

/* GET path (e.g. "/version"). Returns 0 when an HTTP answer arrived (any status: check
 * resp->http_status), a negative errno when none did (-ECONNREFUSED, -ETIMEDOUT, ...). */
int kube_get(struct kube_client *c, const char *path, struct kube_response *resp);

/* Any method; path includes the query string. body may be NULL. Same return as kube_get. */
int kube_request(struct kube_client *c, const char *method, const char *path,
		 const char *content_type, const char *body, size_t body_len,
		 struct kube_response *resp);

void kube_response_free(struct kube_response *resp);

/*
 * Typed helpers. A resource is named by its API prefix and plural, e.g.
 * {"api/v1", "pods"}, {"apis/coordination.k8s.io/v1", "leases"}. ns NULL: cluster-scoped
 * (or all namespaces for list). Objects returned through *out belong to the caller (NULL out:
 * not wanted). Return 0 or an error code as above.
 */
struct kube_res {
	const char *api;
	const char *plural;
};

/* Builds "/<api>[/namespaces/<ns>]/<plural>[/<name>[/<sub>]]" into buf. -ENAMETOOLONG if
 * it does not fit. Names are URL-escaped. */
int kube_path(char *buf, size_t len, const struct kube_res *r, const char *ns, const char *name,
	      const char *sub);

int kube_get_object(struct kube_client *c, const struct kube_res *r, const char *ns,
		    const char *name, cJSON **out);

/* LIST in pages of page_size (0: 500), following continue tokens; when a continue token has
 * expired (410), starts the list again from the top. *items: a cJSON array of all items;
 * *rv (may be NULL): the list's resourceVersion, malloc'd. selectors may be NULL. */
int kube_list(struct kube_client *c, const struct kube_res *r, const char *ns,
	      const char *label_selector, int page_size, cJSON **items, char **rv);

/* The same; *pages (may be NULL) counts the requests it took. */
int kube_list_paged(struct kube_client *c, const struct kube_res *r, const char *ns,
		    const char *label_selector, int page_size, cJSON **items, char **rv,
		    int *pages);

/* CREATE: POST obj. KUBE_EALREADY_EXISTS when the name is taken. */
int kube_create(struct kube_client *c, const struct kube_res *r, const char *ns, const cJSON *obj,
		cJSON **out);
/* The same; on an error answer *st (may be NULL) is the API server's Status. */
int kube_create_status(struct kube_client *c, const struct kube_res *r, const char *ns,
		       const cJSON *obj, cJSON **out, struct kube_status *st);
/* A create refused because a ResourceQuota of the namespace is not counted yet (a new quota
 * before kube-controller-manager's quota controller has synced it): worth retrying. */
int kube_quota_pending(int rc, const struct kube_status *st);

/* UPDATE: PUT obj (metadata.name names it); conditional on metadata.resourceVersion when set:
 * KUBE_ECONFLICT when it is stale. sub: NULL, "status" or "scale". */
int kube_update(struct kube_client *c, const struct kube_res *r, const char *ns, const cJSON *obj,
		const char *sub, cJSON **out);

enum kube_patch_type {
	KUBE_PATCH_MERGE, /* application/merge-patch+json */
	KUBE_PATCH_JSON,  /* application/json-patch+json (RFC 6902, "test" ops honoured) */
	KUBE_PATCH_APPLY, /* application/apply-patch+yaml: server-side apply (JSON is YAML) */
	KUBE_PATCH_STRATEGIC,
};

/* PATCH. field_manager: required for APPLY (NULL: "udf-operator"); force: APPLY only. */
int kube_patch(struct kube_client *c, const struct kube_res *r, const char *ns, const char *name,
	       const char *sub, enum kube_patch_type type, const char *patch,
	       const char *field_manager, int force, cJSON **out);

/* DELETE with propagationPolicy ("Foreground", "Background", "Orphan" or NULL) and
 * preconditions (uid / resourceVersion, each may be NULL; a mismatch is KUBE_ECONFLICT). */
int kube_delete(struct kube_client *c, const struct kube_res *r, const char *ns, const char *name,
		const char *propagation, const char *pre_uid, const char *pre_rv, cJSON **out);

/* For the watch loop: sets up e (a fresh or reset easy handle) for GET url path with the
 * client's TLS, auth and shared caches. *headers must be freed with curl_slist_free_all
 * after the transfer. No total timeout is set. Returns 0 or a negative errno. */
int kube_client_prepare(struct kube_client *c, CURL *e, const char *path,
			struct curl_slist **headers);

/* Maps a CURLcode to a negative errno. */
int kube_curl_errno(CURLcode cc);

/* ---- checked accessors for objects ---- */

/* Follows a dotted path ("metadata.name"); NULL when a step is missing or not an object.
 * Keys that contain dots can't be reached this way: use cJSON directly (labels). */
const cJSON *k8s_get(const cJSON *obj, const char *dotted);
/* The string at a dotted path, or NULL. */
const char *k8s_str(const cJSON *obj, const char *dotted);
/* The integer at a dotted path, or def. */
long long k8s_int(const cJSON *obj, const char *dotted, long long def);
/* metadata.labels[key] or NULL. */
const char *k8s_label(const cJSON *obj, const char *key);
/* metadata.annotations[key] or NULL. */
const char *k8s_annotation(const cJSON *obj, const char *key);
/* 1 when the first status.conditions entry of this type has this status; *reason (may be
 * NULL) is that entry's reason, or NULL. 0 when it differs or there is none of the type. */
int k8s_condition_is(const cJSON *obj, const char *type, const char *status, const char **reason);

/* 1 when a request that failed with rc may succeed if tried again: the server was not
 * reached or did not answer, was overloaded (429) or failed (5xx). 0 for any other answer
 * (and for rc >= 0). */
int kube_error_transient(int rc);

#endif
