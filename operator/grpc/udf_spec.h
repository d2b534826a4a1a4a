/*
 * grpc/udf_spec: protocol 1's request (ApplyUdfResource): the spec JSON and the imports
 * beside it, parsed and checked field by field; the first bad field is named in the error.
 *
 * Request imports pair each spec.imports location with a presigned url and a content tag;
 * Databend sends one entry per spec.imports item without de-duplication, so they are
 * compared as multisets (docs/PROTOCOL.md section 5). The content key covers the handler, types,
 * code, packages, runtime version and each import's (location, tag), in spec order (the
 * last of two imports with one basename wins, so order matters), never the urls.
 *
 * udf_spec_parse() fills a struct that owns its strings; udf_spec_free() releases them.
 * Pure, thread-safe.
 */
#ifndef UDF_GRPC_UDF_SPEC_H
#define UDF_GRPC_UDF_SPEC_H

#include <stddef.h>

#define UDF_SPEC_MAX_JSON     (2u << 20)
#define UDF_SPEC_MAX_CODE     (1u << 20)
#define UDF_SPEC_MAX_NAME     256
#define UDF_SPEC_MAX_ARGS     256
#define UDF_SPEC_MAX_PACKAGES 128
#define UDF_SPEC_MAX_PACKAGE  256
#define UDF_SPEC_MAX_IMPORTS  64
#define UDF_SPEC_MAX_LOCATION 1024
#define UDF_SPEC_MAX_URL      8192
#define UDF_SPEC_MAX_TAG      1024

/* One request import as it came off the wire (borrowed). */
struct udf_import_in {
	const char *location;
	const char *url;
	const char *tag;
};

struct udf_spec_import {
	char *location;
	char *url;
	char *tag;
};

struct udf_spec {
	char *handler;
	char **input_types;
	size_t n_input_types;
	char *result_type;
	char *code;
	char **packages;
	size_t n_packages;
	char *runtime_version;		 /* "" when absent */
	struct udf_spec_import *imports; /* spec.imports order, paired with the request's */
	size_t n_imports;
	char content_key[65];
};

/* 0, or -EINVAL with a readable message naming the field in err, or -ENOMEM. On failure
 * out holds nothing to free. */
int udf_spec_parse(const char *json, size_t len, const struct udf_import_in *imports,
		   size_t n_imports, struct udf_spec *out, char *err, size_t errlen);
void udf_spec_free(struct udf_spec *s);

/* 1 when s is a Python identifier (ASCII) that is not a keyword. */
int udf_python_identifier(const char *s);

#endif
