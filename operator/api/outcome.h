/*
 * api/outcome: what the API answers a gRPC service, for every call of api/: a result and,
 * for anything but FN_READY, a message a SQL user can read. Functions of api/ return 0 or a
 * negative code; the outcome goes out through a parameter or a callback.
 */
#ifndef UDF_API_OUTCOME_H
#define UDF_API_OUTCOME_H

enum fn_result {
	FN_READY,	 /* endpoint + token */
	FN_STARTING,	 /* endpoint known (token too when it exists), not ready yet */
	FN_PROVISIONING, /* no endpoint known by the deadline */
	FN_FAILED,	 /* provisioning failed: message is the function's own reason */
	FN_UNREACHABLE,	 /* the API server did not answer */
	FN_INVALID,	 /* the API server's validation refused the object (message says why) */
	FN_REJECTED,	 /* the API server refused otherwise (message says why) */
	FN_CONFLICT,	 /* the namespace or name belongs to another tenant / function */
	FN_NOT_FOUND,
	FN_EXISTS,
	FN_SHUTDOWN,
	FN_EXHAUSTED, /* a limit of the operator is reached (message names it) */
};

struct fn_outcome {
	enum fn_result result;
	const char *endpoint; /* may be empty */
	const char *token;    /* may be empty */
	const char *message;  /* readable reason for anything but FN_READY */
};

/* The result for a failed Kubernetes request rc (never 0). */
enum fn_result fn_result_of_kube_error(int rc);

#endif
