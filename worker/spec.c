#include "spec.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "common/databend_type.h"

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

/* ---- type strings ---------------------------------------------------------------------- */

/*
 * The kinds udf_stub.py maps to Arrow as databend-udf does. databend-udf has no Arrow form for
 * the others (TIMESTAMP_TZ, INTERVAL, BITMAP, GEOMETRY, GEOGRAPHY, STAGE_LOCATION); a kind
 * added to the grammar is refused here until the stub learns it.
 */
static const uint32_t served_kinds =
    DATABEND_TYPE_BIT(DATABEND_TYPE_BOOLEAN) | DATABEND_TYPE_BIT(DATABEND_TYPE_INT8) |
    DATABEND_TYPE_BIT(DATABEND_TYPE_INT16) | DATABEND_TYPE_BIT(DATABEND_TYPE_INT32) |
    DATABEND_TYPE_BIT(DATABEND_TYPE_INT64) | DATABEND_TYPE_BIT(DATABEND_TYPE_UINT8) |
    DATABEND_TYPE_BIT(DATABEND_TYPE_UINT16) | DATABEND_TYPE_BIT(DATABEND_TYPE_UINT32) |
    DATABEND_TYPE_BIT(DATABEND_TYPE_UINT64) | DATABEND_TYPE_BIT(DATABEND_TYPE_FLOAT32) |
    DATABEND_TYPE_BIT(DATABEND_TYPE_FLOAT64) | DATABEND_TYPE_BIT(DATABEND_TYPE_DECIMAL) |
    DATABEND_TYPE_BIT(DATABEND_TYPE_STRING) | DATABEND_TYPE_BIT(DATABEND_TYPE_BINARY) |
    DATABEND_TYPE_BIT(DATABEND_TYPE_DATE) | DATABEND_TYPE_BIT(DATABEND_TYPE_TIMESTAMP) |
    DATABEND_TYPE_BIT(DATABEND_TYPE_VARIANT) | DATABEND_TYPE_BIT(DATABEND_TYPE_VECTOR) |
    DATABEND_TYPE_BIT(DATABEND_TYPE_ARRAY) | DATABEND_TYPE_BIT(DATABEND_TYPE_MAP) |
    DATABEND_TYPE_BIT(DATABEND_TYPE_TUPLE);

/*
 * Checks one type field: a Databend type whose every kind the worker serves. On success
 * *served is a copy of its canonical spelling.
 */
static int check_type(const char *field, const char *s, char **served, char *err, size_t errlen)
{
	char canonical[DATABEND_TYPE_CANONICAL_SIZE];
	uint32_t kinds, unserved;
	int kind;

	*served = NULL;
	/* -ENOSPC cannot happen with DATABEND_TYPE_CANONICAL_SIZE: any failure is the type's. */
	if (databend_type_parse(s, canonical, sizeof(canonical), &kinds) != 0) {
		set_err(err, errlen, "%s: unknown type \"%.128s\"", field, s);
		return -EINVAL;
	}
	unserved = kinds & ~served_kinds;
	if (unserved) {
		for (kind = 0; !(unserved & DATABEND_TYPE_BIT(kind)); kind++)
			;
		set_err(err, errlen,
			"%s: the worker cannot serve Databend type %s (in \"%.128s\"): "
			"databend-udf has no Arrow form for it",
			field, databend_type_kind_name((enum databend_type_kind)kind), s);
		return -EINVAL;
	}
	*served = strdup(canonical);
	return *served ? 0 : -ENOMEM;
}

int spec_type_servable(const char *s)
{
	uint32_t kinds;

	return databend_type_parse(s, NULL, 0, &kinds) == 0 && !(kinds & ~served_kinds);
}

int spec_python_identifier(const char *s)
{
	static const char *const keywords[] = {
	    "False", "None",	 "True",  "and",    "as",   "assert", "async",	"await",    "break",
	    "class", "continue", "def",	  "del",    "elif", "else",   "except", "finally",  "for",
	    "from",  "global",	 "if",	  "import", "in",   "is",     "lambda", "nonlocal", "not",
	    "or",    "pass",	 "raise", "return", "try",  "while",  "with",	"yield",
	};
	size_t i;

	if (!s || !(isalpha((unsigned char)s[0]) || s[0] == '_'))
		return 0;
	for (i = 1; s[i]; i++) {
		if (!(isalnum((unsigned char)s[i]) || s[i] == '_'))
			return 0;
		if (i >= SPEC_MAX_NAME)
			return 0;
	}
	for (i = 0; i < sizeof(keywords) / sizeof(keywords[0]); i++)
		if (strcmp(s, keywords[i]) == 0)
			return 0;
	return 1;
}

/* ---- PEP 723 ----------------------------------------------------------------------------- */

static int append_str(char ***list, size_t *n, size_t max, const char *s, size_t len)
{
	char **grown;
	char *copy;

	if (*n >= max)
		return -E2BIG;
	copy = strndup(s, len);
	if (!copy)
		return -ENOMEM;
	grown = realloc(*list, (*n + 1) * sizeof(**list));
	if (!grown) {
		free(copy);
		return -ENOMEM;
	}
	grown[(*n)++] = copy;
	*list = grown;
	return 0;
}

/* Returns the next line [*line, *end) of text and advances; 0 at the end. */
static int next_line(const char **pos, const char **line, size_t *len)
{
	const char *nl;

	if (!**pos)
		return 0;
	*line = *pos;
	nl = strchr(*pos, '\n');
	*len = nl ? (size_t)(nl - *pos) : strlen(*pos);
	*pos = nl ? nl + 1 : *pos + *len;
	if (*len && (*line)[*len - 1] == '\r')
		(*len)--;
	return 1;
}

int spec_pep723_dependencies(const char *code, char ***list, size_t *n, size_t max)
{
	const char *pos = code, *line, *p, *end;
	size_t len, toml_len = 0;
	char *toml = NULL, *grown;
	int in_block = 0, rc = 0;

	while (next_line(&pos, &line, &len)) {
		if (!in_block) {
			if (len == 12 && memcmp(line, "# /// script", 12) == 0)
				in_block = 1;
			continue;
		}
		if (len == 5 && memcmp(line, "# ///", 5) == 0) {
			in_block = 2;
			break;
		}
		if (len == 0 || line[0] != '#') {
			rc = -EINVAL;
			goto out;
		}
		line++, len--;
		if (len && line[0] == ' ')
			line++, len--;
		grown = realloc(toml, toml_len + len + 2);
		if (!grown) {
			rc = -ENOMEM;
			goto out;
		}
		toml = grown;
		memcpy(toml + toml_len, line, len);
		toml_len += len;
		toml[toml_len++] = '\n';
		toml[toml_len] = '\0';
	}
	if (in_block == 0)
		goto out;
	if (in_block != 2) {
		rc = -EINVAL;
		goto out;
	}
	if (!toml)
		goto out;
	/* Only the "dependencies = [ "a", 'b', ]" array matters to the worker. */
	for (p = toml; (p = strstr(p, "dependencies")) != NULL; p++) {
		if (p != toml && p[-1] != '\n')
			continue;
		p += strlen("dependencies");
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p != '=')
			continue;
		p++;
		while (isspace((unsigned char)*p))
			p++;
		if (*p != '[') {
			rc = -EINVAL;
			goto out;
		}
		p++;
		for (;;) {
			while (isspace((unsigned char)*p) || *p == ',')
				p++;
			if (*p == ']')
				goto out;
			if (*p == '#') {
				while (*p && *p != '\n')
					p++;
				continue;
			}
			if (*p != '"' && *p != '\'') {
				rc = -EINVAL;
				goto out;
			}
			end = strchr(p + 1, *p);
			if (!end || end == p + 1) {
				rc = -EINVAL;
				goto out;
			}
			rc = append_str(list, n, max, p + 1, (size_t)(end - p - 1));
			if (rc)
				goto out;
			p = end + 1;
		}
	}
out:
	free(toml);
	return rc;
}

/* ---- the request -------------------------------------------------------------------------- */

/* Copies a string member; required members must be present and non-empty. */
static int get_string(const cJSON *obj, const char *key, const char *field, int required,
		      size_t max, char **out, char *err, size_t errlen)
{
	const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);

	*out = NULL;
	if (!item || cJSON_IsNull(item)) {
		if (required) {
			set_err(err, errlen, "%s: missing", field);
			return -EINVAL;
		}
		return 0;
	}
	if (!cJSON_IsString(item) || !item->valuestring) {
		set_err(err, errlen, "%s: must be a string", field);
		return -EINVAL;
	}
	if (strlen(item->valuestring) > max) {
		set_err(err, errlen, "%s: longer than %zu bytes", field, max);
		return -EINVAL;
	}
	if (required && item->valuestring[0] == '\0') {
		set_err(err, errlen, "%s: must not be empty", field);
		return -EINVAL;
	}
	*out = strdup(item->valuestring);
	return *out ? 0 : -ENOMEM;
}

static int get_string_array(const cJSON *obj, const char *key, const char *field, size_t max,
			    size_t max_len, char ***out, size_t *n, char *err, size_t errlen)
{
	const cJSON *arr = cJSON_GetObjectItemCaseSensitive(obj, key), *it;
	int rc;

	if (!arr || cJSON_IsNull(arr))
		return 0;
	if (!cJSON_IsArray(arr)) {
		set_err(err, errlen, "%s: must be an array of strings", field);
		return -EINVAL;
	}
	if ((size_t)cJSON_GetArraySize(arr) > max) {
		set_err(err, errlen, "%s: more than %zu entries", field, max);
		return -EINVAL;
	}
	cJSON_ArrayForEach(it, arr)
	{
		if (!cJSON_IsString(it) || !it->valuestring) {
			set_err(err, errlen, "%s[%zu]: must be a string", field, *n);
			return -EINVAL;
		}
		if (strlen(it->valuestring) > max_len) {
			set_err(err, errlen, "%s[%zu]: longer than %zu bytes", field, *n, max_len);
			return -EINVAL;
		}
		rc = append_str(out, n, max, it->valuestring, strlen(it->valuestring));
		if (rc)
			return rc;
	}
	return 0;
}

static int header_name_valid(const char *s)
{
	if (!*s)
		return 0;
	for (; *s; s++)
		if (!(isalnum((unsigned char)*s) || strchr("!#$%&'*+-.^_`|~", *s)))
			return 0;
	return 1;
}

static int header_value_valid(const char *s)
{
	for (; *s; s++)
		if (*s == '\r' || *s == '\n')
			return 0;
	return 1;
}

static int parse_imports(const cJSON *spec, struct spec_request *req, char *err, size_t errlen)
{
	const cJSON *arr = cJSON_GetObjectItemCaseSensitive(spec, "imports"), *it, *hdrs, *h;
	char field[64];
	size_t i = 0;
	int rc;

	if (!arr || cJSON_IsNull(arr))
		return 0;
	if (!cJSON_IsArray(arr)) {
		set_err(err, errlen, "spec.imports: must be an array");
		return -EINVAL;
	}
	if (cJSON_GetArraySize(arr) > SPEC_MAX_IMPORTS) {
		set_err(err, errlen, "spec.imports: more than %d imports", SPEC_MAX_IMPORTS);
		return -EINVAL;
	}
	req->imports = calloc((size_t)cJSON_GetArraySize(arr) + 1, sizeof(*req->imports));
	if (!req->imports)
		return -ENOMEM;
	cJSON_ArrayForEach(it, arr)
	{
		struct spec_import *imp = &req->imports[i];

		if (!cJSON_IsObject(it)) {
			set_err(err, errlen, "spec.imports[%zu]: must be an object", i);
			return -EINVAL;
		}
		req->n_imports = i + 1;
		snprintf(field, sizeof(field), "spec.imports[%zu].location", i);
		rc =
		    get_string(it, "location", field, 1, SPEC_MAX_URL, &imp->location, err, errlen);
		if (rc)
			return rc;
		snprintf(field, sizeof(field), "spec.imports[%zu].url", i);
		rc = get_string(it, "url", field, 1, SPEC_MAX_URL, &imp->url, err, errlen);
		if (rc)
			return rc;
		if (strncmp(imp->url, "http://", 7) != 0 && strncmp(imp->url, "https://", 8) != 0) {
			set_err(err, errlen, "%s: must be an http or https URL", field);
			return -EINVAL;
		}
		snprintf(field, sizeof(field), "spec.imports[%zu].tag", i);
		rc = get_string(it, "tag", field, 0, SPEC_MAX_NAME, &imp->tag, err, errlen);
		if (rc)
			return rc;
		{
			const char *base = strrchr(imp->location, '/');

			base = base ? base + 1 : imp->location;
			if (!*base || strcmp(base, ".") == 0 || strcmp(base, "..") == 0) {
				set_err(err, errlen,
					"spec.imports[%zu].location: \"%s\" does not name a file",
					i, imp->location);
				return -EINVAL;
			}
		}
		hdrs = cJSON_GetObjectItemCaseSensitive(it, "headers");
		if (hdrs && !cJSON_IsNull(hdrs)) {
			size_t j = 0;

			if (!cJSON_IsObject(hdrs) || cJSON_GetArraySize(hdrs) > SPEC_MAX_HEADERS) {
				set_err(
				    err, errlen,
				    "spec.imports[%zu].headers: must be an object of at most %d "
				    "strings",
				    i, SPEC_MAX_HEADERS);
				return -EINVAL;
			}
			imp->headers =
			    calloc((size_t)cJSON_GetArraySize(hdrs) + 1, sizeof(*imp->headers));
			if (!imp->headers)
				return -ENOMEM;
			cJSON_ArrayForEach(h, hdrs)
			{
				if (!cJSON_IsString(h) || !h->string ||
				    !header_name_valid(h->string) ||
				    !header_value_valid(h->valuestring) ||
				    strlen(h->valuestring) > SPEC_MAX_URL) {
					set_err(err, errlen,
						"spec.imports[%zu].headers: bad header \"%.64s\"",
						i, h->string ? h->string : "");
					return -EINVAL;
				}
				imp->headers[j].name = strdup(h->string);
				imp->headers[j].value = strdup(h->valuestring);
				imp->n_headers = ++j;
				if (!imp->headers[j - 1].name || !imp->headers[j - 1].value)
					return -ENOMEM;
			}
		}
		i++;
	}
	return 0;
}

static int parse_env(const cJSON *root, struct spec_request *req, char *err, size_t errlen)
{
	const cJSON *env = cJSON_GetObjectItemCaseSensitive(root, "env"), *it;
	size_t i = 0;

	if (!env || cJSON_IsNull(env))
		return 0;
	if (!cJSON_IsObject(env)) {
		set_err(err, errlen, "env: must be an object of strings");
		return -EINVAL;
	}
	if (cJSON_GetArraySize(env) > SPEC_MAX_ENV) {
		set_err(err, errlen, "env: more than %d variables", SPEC_MAX_ENV);
		return -EINVAL;
	}
	req->env = calloc((size_t)cJSON_GetArraySize(env) + 1, sizeof(*req->env));
	if (!req->env)
		return -ENOMEM;
	cJSON_ArrayForEach(it, env)
	{
		const char *name = it->string;
		size_t k;
		int ok = name && (isalpha((unsigned char)name[0]) || name[0] == '_') &&
			 strlen(name) <= SPEC_MAX_NAME;

		for (k = 0; ok && name[k]; k++)
			ok = isalnum((unsigned char)name[k]) || name[k] == '_';
		if (!ok) {
			set_err(err, errlen, "env: \"%.64s\" is not a variable name",
				name ? name : "");
			return -EINVAL;
		}
		/* The worker's own variables and the loader's are not the UDF's to set. */
		if (strncmp(name, "UDF_WORKER_", 11) == 0 || strncmp(name, "LD_", 3) == 0 ||
		    strncmp(name, "PYTHON", 6) == 0 || strcmp(name, "UDF_SERVER_ADDR") == 0 ||
		    strcmp(name, "RESOURCE_STATUS_ADDR") == 0 || strcmp(name, "PATH") == 0) {
			set_err(err, errlen, "env.%s: reserved by the worker", name);
			return -EINVAL;
		}
		if (!cJSON_IsString(it) || strlen(it->valuestring) > SPEC_MAX_URL) {
			set_err(err, errlen, "env.%s: must be a string of at most %d bytes", name,
				SPEC_MAX_URL);
			return -EINVAL;
		}
		req->env[i].name = strdup(name);
		req->env[i].value = strdup(it->valuestring);
		req->n_env = ++i;
		if (!req->env[i - 1].name || !req->env[i - 1].value)
			return -ENOMEM;
	}
	return 0;
}

static int parse_structured(const cJSON *spec, struct spec_request *req, char *err, size_t errlen)
{
	const cJSON *code;
	size_t i;
	int rc;

	if (!cJSON_IsObject(spec)) {
		set_err(err, errlen, "spec: must be an object");
		return -EINVAL;
	}
	rc = get_string(spec, "handler", "spec.handler", 1, SPEC_MAX_NAME, &req->handler, err,
			errlen);
	if (rc)
		return rc;
	if (!spec_python_identifier(req->handler)) {
		set_err(err, errlen, "spec.handler: \"%.64s\" is not a Python identifier",
			req->handler);
		return -EINVAL;
	}
	if (!cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(spec, "input_types"))) {
		set_err(err, errlen, "spec.input_types: missing or not an array of type names");
		return -EINVAL;
	}
	rc = get_string_array(spec, "input_types", "spec.input_types", SPEC_MAX_ARGS, SPEC_MAX_TYPE,
			      &req->input_types, &req->n_input_types, err, errlen);
	if (rc)
		return rc;
	req->served_input_types = calloc(req->n_input_types + 1, sizeof(char *));
	if (!req->served_input_types)
		return -ENOMEM;
	for (i = 0; i < req->n_input_types; i++) {
		char field[48];

		snprintf(field, sizeof(field), "spec.input_types[%zu]", i);
		rc = check_type(field, req->input_types[i], &req->served_input_types[i], err,
				errlen);
		if (rc)
			return rc;
	}
	rc = get_string(spec, "result_type", "spec.result_type", 1, SPEC_MAX_TYPE,
			&req->result_type, err, errlen);
	if (rc)
		return rc;
	rc =
	    check_type("spec.result_type", req->result_type, &req->served_result_type, err, errlen);
	if (rc)
		return rc;
	code = cJSON_GetObjectItemCaseSensitive(spec, "code");
	if (code && cJSON_IsString(code) && strlen(code->valuestring) > SPEC_MAX_CODE) {
		set_err(err, errlen, "spec.code: larger than 1 MiB");
		return -EINVAL;
	}
	rc = get_string(spec, "code", "spec.code", 1, SPEC_MAX_CODE, &req->code, err, errlen);
	if (rc)
		return rc;
	rc = get_string_array(spec, "packages", "spec.packages", SPEC_MAX_PACKAGES, SPEC_MAX_NAME,
			      &req->packages, &req->n_packages, err, errlen);
	if (rc)
		return rc;
	rc = spec_pep723_dependencies(req->code, &req->packages, &req->n_packages,
				      SPEC_MAX_PACKAGES);
	if (rc == -EINVAL || rc == -E2BIG) {
		set_err(err, errlen, "spec.code: malformed or oversized \"# /// script\" block");
		return -EINVAL;
	}
	if (rc)
		return rc;
	for (i = 0; i < req->n_packages; i++) {
		const char *p = req->packages[i];

		/* A requirement, never a pip option or a path. */
		if (!isalnum((unsigned char)p[0]) || strpbrk(p, "\n\r\\")) {
			set_err(err, errlen, "spec.packages[%zu]: \"%.64s\" is not a requirement",
				i, p);
			return -EINVAL;
		}
	}
	rc = parse_imports(spec, req, err, errlen);
	if (rc)
		return rc;
	return get_string(spec, "runtime_version", "spec.runtime_version", 0, SPEC_MAX_NAME,
			  &req->runtime_version, err, errlen);
}

int spec_parse(const char *body, size_t len, struct spec_request *out, char *err, size_t errlen)
{
	cJSON *root;
	const cJSON *spec, *script;
	int rc;

	memset(out, 0, sizeof(*out));
	set_err(err, errlen, "%s", "");
	if (len > SPEC_MAX_BODY) {
		set_err(err, errlen, "body: larger than %u bytes", SPEC_MAX_BODY);
		return -EINVAL;
	}
	root = cJSON_ParseWithLength(body, len);
	if (!root) {
		set_err(err, errlen, "body: malformed JSON");
		return -EINVAL;
	}
	if (!cJSON_IsObject(root)) {
		set_err(err, errlen, "body: must be a JSON object");
		rc = -EINVAL;
		goto out_free;
	}
	rc =
	    get_string(root, "function", "function", 1, SPEC_MAX_NAME, &out->function, err, errlen);
	if (rc)
		goto out_free;
	rc = get_string(root, "tenant", "tenant", 1, SPEC_MAX_NAME, &out->tenant, err, errlen);
	if (rc)
		goto out_free;
	rc = get_string(root, "token", "token", 1, SPEC_MAX_NAME, &out->token, err, errlen);
	if (rc)
		goto out_free;
	rc = parse_env(root, out, err, errlen);
	if (rc)
		goto out_free;
	spec = cJSON_GetObjectItemCaseSensitive(root, "spec");
	script = cJSON_GetObjectItemCaseSensitive(root, "script");
	if (spec && script) {
		set_err(err, errlen, "spec: give either \"spec\" or \"script\", not both");
		rc = -EINVAL;
		goto out_free;
	}
	if (script) {
		if (cJSON_IsString(script) && strlen(script->valuestring) > SPEC_MAX_SCRIPT) {
			set_err(err, errlen, "script: larger than %u bytes", SPEC_MAX_SCRIPT);
			rc = -EINVAL;
			goto out_free;
		}
		rc = get_string(root, "script", "script", 1, SPEC_MAX_SCRIPT, &out->script, err,
				errlen);
	} else if (spec) {
		rc = parse_structured(spec, out, err, errlen);
	} else {
		set_err(err, errlen, "spec: missing (or \"script\")");
		rc = -EINVAL;
	}
	if (rc)
		goto out_free;
	/* Presigned urls change on every call; the tag identifies the content. */
	spec = cJSON_GetObjectItemCaseSensitive(root, "spec");
	if (spec) {
		cJSON *it;

		cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(spec, "imports"))
		{
			cJSON_DeleteItemFromObjectCaseSensitive(it, "url");
			cJSON_DeleteItemFromObjectCaseSensitive(it, "headers");
		}
	}
	out->canonical = cJSON_PrintUnformatted(root);
	if (!out->canonical)
		rc = -ENOMEM;
out_free:
	cJSON_Delete(root);
	if (rc) {
		if (rc == -ENOMEM)
			set_err(err, errlen, "out of memory");
		spec_free(out);
	}
	return rc;
}

void spec_free(struct spec_request *req)
{
	size_t i, j;

	free(req->function);
	free(req->tenant);
	free(req->token);
	for (i = 0; i < req->n_env; i++) {
		free(req->env[i].name);
		free(req->env[i].value);
	}
	free(req->env);
	free(req->script);
	free(req->handler);
	for (i = 0; i < req->n_input_types; i++) {
		free(req->input_types[i]);
		if (req->served_input_types)
			free(req->served_input_types[i]);
	}
	free(req->input_types);
	free(req->served_input_types);
	free(req->result_type);
	free(req->served_result_type);
	free(req->code);
	for (i = 0; i < req->n_packages; i++)
		free(req->packages[i]);
	free(req->packages);
	for (i = 0; i < req->n_imports; i++) {
		free(req->imports[i].location);
		free(req->imports[i].url);
		free(req->imports[i].tag);
		for (j = 0; j < req->imports[i].n_headers; j++) {
			free(req->imports[i].headers[j].name);
			free(req->imports[i].headers[j].value);
		}
		free(req->imports[i].headers);
	}
	free(req->imports);
	free(req->runtime_version);
	if (req->canonical)
		cJSON_free(req->canonical);
	memset(req, 0, sizeof(*req));
}
