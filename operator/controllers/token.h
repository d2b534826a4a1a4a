/*
 * controllers/token: a function's token Secret, "<function>-token" in the function's
 * namespace, key "token" (udf/function_pod.h), owned by the function so it goes when the
 * function goes. Created once with FN_TOKEN_BYTES from getrandom; an existing Secret's token is
 * kept (a restart of the operator must not change what callers hold). The token never reaches
 * a log line, an Event or a status.
 */
#ifndef UDF_CONTROLLERS_TOKEN_H
#define UDF_CONTROLLERS_TOKEN_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "kube/rest.h"

/* Reads or creates fn's token Secret; the token into out (len >= FN_TOKEN_HEX + 1, or more for
 * a token someone wrote by hand). *requests is increased by the API requests sent.
 * 0, -EINVAL when the Secret holds no token, or a kube error. */
int token_ensure(struct kube_client *kube, const cJSON *fn, char *out, size_t len, int *requests);

#endif
