/*
 * spec: the body of POST /v1/specialize, parsed and checked.
 *
 * Input is untrusted (it comes over the network, token or not): every field is checked for
 * type and size before anything acts on it, and the first bad field is named in the error.
 * spec_parse() fills a struct that owns all its strings; spec_free() releases them.
 * Pure functions, no I/O, thread-safe.
 */
#ifndef UDF_WORKER_SPEC_H
#define UDF_WORKER_SPEC_H

#include <stddef.h>

#define SPEC_MAX_BODY	  (8u << 20)
#define SPEC_MAX_CODE	  (1u << 20)
#define SPEC_MAX_SCRIPT	  (4u << 20)
#define SPEC_MAX_IMPORTS  64
#define SPEC_MAX_PACKAGES 256
#define SPEC_MAX_ARGS	  256
#define SPEC_MAX_ENV	  256
#define SPEC_MAX_HEADERS  32
#define SPEC_MAX_NAME	  256
#define SPEC_MAX_TYPE	  4096
#define SPEC_MAX_URL	  16384

struct spec_header {
	char *name;
	char *value;
};

struct spec_import {
	char *location;
	char *url;
	char *tag;
	struct spec_header *headers;
	size_t n_headers;
};

struct spec_env {
	char *name;
	char *value;
};

struct spec_request {
	char *function;
	char *tenant;
	char *token;
	struct spec_env *env;
	size_t n_env;

	/* Script form: script != NULL and the structured fields below are empty. */
	char *script;

	char *handler;
	char **input_types;
	size_t n_input_types;
	char *result_type;
	/* The same types in the shared grammar's canonical spelling, which udf_stub.py reads. */
	char **served_input_types;
	char *served_result_type;
	char *code;
	char **packages; /* spec.packages followed by the code's PEP 723 dependencies */
	size_t n_packages;
	struct spec_import *imports;
	size_t n_imports;
	char *runtime_version;

	/* The request re-serialized without whitespace: equal requests compare equal. */
	char *canonical;
};

/*
 * Parses len bytes of JSON. 0 on success; -EINVAL with a message naming the bad field in
 * err (always NUL-terminated) otherwise; -ENOMEM when out of memory. On failure *out holds
 * nothing that needs freeing.
 */
int spec_parse(const char *body, size_t len, struct spec_request *out, char *err, size_t errlen);
void spec_free(struct spec_request *req);

/*
 * 1 when s is a Databend type (common/databend_type.h) the worker can serve ("INT",
 * "ARRAY(INT32) NULL"); 0 for an invalid type and for a valid one of a kind udf_stub.py has
 * no Arrow form for (GEOMETRY, BITMAP, ...).
 */
int spec_type_servable(const char *s);

/* 1 when s is a Python identifier that is not a keyword (ASCII only). */
int spec_python_identifier(const char *s);

/*
 * Appends the dependencies of a PEP 723 "# /// script" block in code to *list (growing it
 * with realloc). 0 on success (no block is success), -EINVAL for a malformed block,
 * -ENOMEM.
 */
int spec_pep723_dependencies(const char *code, char ***list, size_t *n, size_t max);

#endif
