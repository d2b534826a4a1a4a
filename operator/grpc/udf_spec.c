#include "grpc/udf_spec.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/databend_type.h"
#include "grpc/content_key.h"

int udf_python_identifier(const char *s)
{
	static const char *const keywords[] = {
	    "False", "None",	 "True",  "and",    "as",   "assert", "async",	"await",    "break",
	    "class", "continue", "def",	  "del",    "elif", "else",   "except", "finally",  "for",
	    "from",  "global",	 "if",	  "import", "in",   "is",     "lambda", "nonlocal", "not",
	    "or",    "pass",	 "raise", "return", "try",  "while",  "with",	"yield",
	};
	size_t n = s ? strlen(s) : 0;
	if (n == 0 || n > UDF_SPEC_MAX_NAME || (s[0] >= '0' && s[0] <= '9'))
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_'))
			return 0;
	}
	for (size_t i = 0; i < sizeof(keywords) / sizeof(keywords[0]); i++) {
		if (strcmp(s, keywords[i]) == 0)
			return 0;
	}
	return 1;
}

static int has_control(const char *s)
{
	for (; *s; s++) {
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return 1;
	}
	return 0;
}

void udf_spec_free(struct udf_spec *s)
{
	free(s->handler);
	for (size_t i = 0; i < s->n_input_types; i++)
		free(s->input_types[i]);
	free(s->input_types);
	free(s->result_type);
	free(s->code);
	for (size_t i = 0; i < s->n_packages; i++)
		free(s->packages[i]);
	free(s->packages);
	free(s->runtime_version);
	for (size_t i = 0; i < s->n_imports; i++) {
		free(s->imports[i].location);
		free(s->imports[i].url);
		free(s->imports[i].tag);
	}
	free(s->imports);
	memset(s, 0, sizeof(*s));
}

#define FAIL(...)                                                                                  \
	do {                                                                                       \
		snprintf(err, errlen, __VA_ARGS__);                                                \
		rc = -EINVAL;                                                                      \
		goto out_free;                                                                     \
	} while (0)

static const cJSON *field(const cJSON *root, const char *name)
{
	return cJSON_GetObjectItemCaseSensitive(root, name);
}

/* Copies a string array field; err names the field. */
static int string_list(const cJSON *root, const char *name, size_t max_items, size_t max_len,
		       int required, char ***out, size_t *n, char *err, size_t errlen)
{
	const cJSON *a = field(root, name);
	*out = NULL;
	*n = 0;
	if (!a || cJSON_IsNull(a)) {
		if (required) {
			snprintf(err, errlen, "spec: the field %s is missing", name);
			return -EINVAL;
		}
		return 0;
	}
	if (!cJSON_IsArray(a)) {
		snprintf(err, errlen, "spec.%s must be an array of strings", name);
		return -EINVAL;
	}
	size_t count = (size_t)cJSON_GetArraySize(a);
	if (count > max_items) {
		snprintf(err, errlen, "spec.%s has %zu items; at most %zu are allowed", name, count,
			 max_items);
		return -EINVAL;
	}
	char **v = calloc(count ? count : 1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	size_t i = 0;
	const cJSON *it;
	cJSON_ArrayForEach(it, a)
	{
		if (!cJSON_IsString(it)) {
			snprintf(err, errlen, "spec.%s[%zu] must be a string", name, i);
			goto fail;
		}
		size_t len = strlen(it->valuestring);
		if (len == 0 || len > max_len) {
			snprintf(err, errlen, "spec.%s[%zu] must be 1 to %zu bytes long", name, i,
				 max_len);
			goto fail;
		}
		v[i] = strdup(it->valuestring);
		if (!v[i]) {
			for (size_t j = 0; j < i; j++)
				free(v[j]);
			free(v);
			return -ENOMEM;
		}
		i++;
	}
	*out = v;
	*n = i;
	return 0;
fail:
	for (size_t j = 0; j < i; j++)
		free(v[j]);
	free(v);
	return -EINVAL;
}

/* A required (or optional) string field. */
static int string_field(const cJSON *root, const char *name, size_t max_len, int required,
			char **out, char *err, size_t errlen)
{
	const cJSON *v = field(root, name);
	*out = NULL;
	if (!v || cJSON_IsNull(v)) {
		if (required) {
			snprintf(err, errlen, "spec: the field %s is missing", name);
			return -EINVAL;
		}
		*out = strdup("");
		return *out ? 0 : -ENOMEM;
	}
	if (!cJSON_IsString(v)) {
		snprintf(err, errlen, "spec.%s must be a string", name);
		return -EINVAL;
	}
	size_t len = strlen(v->valuestring);
	if (len > max_len || (required && len == 0)) {
		snprintf(err, errlen, "spec.%s must be 1 to %zu bytes long (it is %zu)", name,
			 max_len, len);
		return -EINVAL;
	}
	*out = strdup(v->valuestring);
	return *out ? 0 : -ENOMEM;
}

static int runtime_version_valid(const char *s)
{
	/* N.N or N.N.N */
	int parts = 0, digits = 0;
	for (const char *p = s;; p++) {
		if (*p >= '0' && *p <= '9') {
			digits++;
		} else if (*p == '.' || *p == '\0') {
			if (digits == 0 || digits > 4)
				return 0;
			parts++;
			digits = 0;
			if (*p == '\0')
				break;
		} else {
			return 0;
		}
	}
	return parts == 2 || parts == 3;
}

static int url_valid(const char *u)
{
	return (strncmp(u, "http://", 7) == 0 || strncmp(u, "https://", 8) == 0) &&
	       !has_control(u) && !strchr(u, ' ');
}

int udf_spec_parse(const char *json, size_t len, const struct udf_import_in *imports,
		   size_t n_imports, struct udf_spec *out, char *err, size_t errlen)
{
	int rc = 0;
	cJSON *root = NULL;
	char **locations = NULL;
	size_t n_locations = 0;
	char *kind = NULL, *language = NULL;
	unsigned char *used = NULL;

	memset(out, 0, sizeof(*out));
	if (len == 0)
		FAIL("spec is empty: it must be the UDF's JSON definition");
	if (len > UDF_SPEC_MAX_JSON)
		FAIL("spec is %zu bytes; at most %u are allowed", len, UDF_SPEC_MAX_JSON);
	root = cJSON_ParseWithLength(json, len);
	if (!root)
		FAIL("spec is not valid JSON (near byte %zu)",
		     cJSON_GetErrorPtr() ? (size_t)(cJSON_GetErrorPtr() - json) : (size_t)0);
	if (!cJSON_IsObject(root))
		FAIL("spec must be a JSON object");

	const cJSON *version = field(root, "version");
	if (!version)
		FAIL("spec: the field version is missing");
	if (!cJSON_IsNumber(version) || version->valuedouble != 1)
		FAIL("spec.version must be 1");
	if ((rc = string_field(root, "kind", 64, 1, &kind, err, errlen)) < 0)
		goto out_free;
	if (strcmp(kind, "udf") != 0)
		FAIL("spec.kind must be \"udf\"");
	if ((rc = string_field(root, "language", 64, 1, &language, err, errlen)) < 0)
		goto out_free;
	if (strcmp(language, "python") != 0)
		FAIL("spec.language \"%.64s\" is not supported; only python is", language);
	if ((rc = string_field(root, "handler", UDF_SPEC_MAX_NAME, 1, &out->handler, err, errlen)) <
	    0)
		goto out_free;
	if (!udf_python_identifier(out->handler))
		FAIL("spec.handler \"%.64s\" is not a Python identifier (letters, digits and _, "
		     "not starting with a digit, not a keyword)",
		     out->handler);
	if ((rc = string_list(root, "input_types", UDF_SPEC_MAX_ARGS, DATABEND_TYPE_MAX_BYTES, 1,
			      &out->input_types, &out->n_input_types, err, errlen)) < 0)
		goto out_free;
	for (size_t i = 0; i < out->n_input_types; i++) {
		if (!databend_type_valid(out->input_types[i]))
			FAIL("spec.input_types[%zu] \"%.100s\" is not a Databend type", i,
			     out->input_types[i]);
	}
	if ((rc = string_field(root, "result_type", DATABEND_TYPE_MAX_BYTES, 1, &out->result_type,
			       err, errlen)) < 0)
		goto out_free;
	if (!databend_type_valid(out->result_type))
		FAIL("spec.result_type \"%.100s\" is not a Databend type", out->result_type);
	if ((rc = string_field(root, "code", UDF_SPEC_MAX_CODE, 1, &out->code, err, errlen)) < 0)
		goto out_free;
	if ((rc = string_list(root, "packages", UDF_SPEC_MAX_PACKAGES, UDF_SPEC_MAX_PACKAGE, 0,
			      &out->packages, &out->n_packages, err, errlen)) < 0)
		goto out_free;
	for (size_t i = 0; i < out->n_packages; i++) {
		/* A requirement, never a pip option. */
		if (out->packages[i][0] == '-' || has_control(out->packages[i]))
			FAIL("spec.packages[%zu] \"%.100s\" is not a pip requirement", i,
			     out->packages[i]);
	}
	if ((rc = string_field(root, "runtime_version", 32, 0, &out->runtime_version, err,
			       errlen)) < 0)
		goto out_free;
	if (out->runtime_version[0] && !runtime_version_valid(out->runtime_version))
		FAIL("spec.runtime_version \"%.32s\" is not a Python version such as 3.12.2",
		     out->runtime_version);
	if ((rc = string_list(root, "imports", UDF_SPEC_MAX_IMPORTS, UDF_SPEC_MAX_LOCATION, 0,
			      &locations, &n_locations, err, errlen)) < 0)
		goto out_free;

	/* Pair spec.imports with the request's imports as multisets. */
	if (n_imports > UDF_SPEC_MAX_IMPORTS)
		FAIL("the request carries %zu imports; at most %d are allowed", n_imports,
		     UDF_SPEC_MAX_IMPORTS);
	used = calloc(n_imports ? n_imports : 1, 1);
	out->imports = calloc(n_locations ? n_locations : 1, sizeof(*out->imports));
	if (!used || !out->imports) {
		rc = -ENOMEM;
		goto out_free;
	}
	for (size_t i = 0; i < n_locations; i++) {
		size_t j;
		for (j = 0; j < n_imports; j++) {
			if (!used[j] && imports[j].location &&
			    strcmp(imports[j].location, locations[i]) == 0)
				break;
		}
		if (j == n_imports)
			FAIL("imports: the request has no url and tag for spec.imports[%zu] "
			     "\"%.200s\"",
			     i, locations[i]);
		used[j] = 1;
		const char *url = imports[j].url ? imports[j].url : "";
		const char *tag = imports[j].tag ? imports[j].tag : "";
		if (!url_valid(url) || strlen(url) > UDF_SPEC_MAX_URL)
			FAIL("imports[%zu] (\"%.200s\"): url must be an http(s) url of at most %u "
			     "bytes",
			     j, locations[i], UDF_SPEC_MAX_URL);
		if (!*tag || strlen(tag) > UDF_SPEC_MAX_TAG || has_control(tag))
			FAIL("imports[%zu] (\"%.200s\"): tag must be the file's ETag or length, 1 "
			     "to %u bytes",
			     j, locations[i], UDF_SPEC_MAX_TAG);
		struct udf_spec_import *im = &out->imports[out->n_imports++];
		im->location = strdup(locations[i]);
		im->url = strdup(url);
		im->tag = strdup(tag);
		if (!im->location || !im->url || !im->tag) {
			rc = -ENOMEM;
			goto out_free;
		}
	}
	for (size_t j = 0; j < n_imports; j++) {
		if (!used[j])
			FAIL("imports[%zu] \"%.200s\" is not in spec.imports", j,
			     imports[j].location ? imports[j].location : "");
	}

	struct content_key *k = content_key_new("udf/1");
	if (!k) {
		rc = -ENOMEM;
		goto out_free;
	}
	content_key_add_str(k, out->handler);
	content_key_add(k, &out->n_input_types, sizeof(out->n_input_types));
	for (size_t i = 0; i < out->n_input_types; i++)
		content_key_add_str(k, out->input_types[i]);
	content_key_add_str(k, out->result_type);
	content_key_add_str(k, out->code);
	content_key_add(k, &out->n_packages, sizeof(out->n_packages));
	for (size_t i = 0; i < out->n_packages; i++)
		content_key_add_str(k, out->packages[i]);
	content_key_add_str(k, out->runtime_version);
	content_key_add(k, &out->n_imports, sizeof(out->n_imports));
	for (size_t i = 0; i < out->n_imports; i++) {
		content_key_add_str(k, out->imports[i].location);
		content_key_add_str(k, out->imports[i].tag);
	}
	content_key_finish(k, out->content_key);
	rc = 0;

out_free:
	if (rc < 0)
		udf_spec_free(out);
	for (size_t i = 0; i < n_locations; i++)
		free(locations[i]);
	free(locations);
	free(kind);
	free(language);
	free(used);
	cJSON_Delete(root);
	return rc;
}
