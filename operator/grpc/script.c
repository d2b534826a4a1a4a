#include "grpc/script.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "grpc/content_key.h"

static int url_char(unsigned char c)
{
	/* Ends at whitespace, quotes, shell and JSON delimiters. */
	return c > 0x20 && c < 0x7f && !strchr("\"'`\\<>{}|^;,)", c);
}

void script_info_free(struct script_info *in)
{
	for (size_t i = 0; i < in->n_imports; i++) {
		free(in->imports[i].url);
		for (size_t h = 0; h < in->imports[i].n_headers; h++)
			free(in->imports[i].headers[h]);
	}
	memset(in, 0, sizeof(*in));
}

static int header_ok(const char *s)
{
	for (; *s; s++) {
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return 0;
	}
	return 1;
}

static int find_import(const struct script_info *in, const char *url, size_t len)
{
	for (size_t i = 0; i < in->n_imports; i++) {
		if (strlen(in->imports[i].url) == len && memcmp(in->imports[i].url, url, len) == 0)
			return (int)i;
	}
	return -1;
}

/* Adds an import url (copied); returns its index or a negative errno. */
static int add_import(struct script_info *in, const char *url, size_t len, char *err, size_t errlen)
{
	int i = find_import(in, url, len);
	if (i >= 0)
		return i;
	if (in->n_imports == SCRIPT_MAX_IMPORTS) {
		snprintf(err, errlen, "script imports more than %d files", SCRIPT_MAX_IMPORTS);
		return -EINVAL;
	}
	if (len > SCRIPT_MAX_URL) {
		snprintf(err, errlen, "script: an import url is longer than %d bytes",
			 SCRIPT_MAX_URL);
		return -EINVAL;
	}
	char *copy = strndup(url, len);
	if (!copy)
		return -ENOMEM;
	in->imports[in->n_imports].url = copy;
	return (int)in->n_imports++;
}

/* The manifest: the first JSON array after a mention of imports.json. 1 found, 0 none,
 * negative on a bad entry. */
static int read_manifest(const char *script, size_t len, struct script_info *in, char *err,
			 size_t errlen)
{
	const char *p = script, *end = script + len;
	while ((p = memmem(p, (size_t)(end - p), "imports.json", 12)) != NULL) {
		p += 12;
		const char *open =
		    memchr(p, '[', (size_t)(end - p) < 256 ? (size_t)(end - p) : 256);
		if (!open)
			continue;
		const char *stop = NULL;
		cJSON *arr = cJSON_ParseWithLengthOpts(open, (size_t)(end - open), &stop, 0);
		if (!cJSON_IsArray(arr)) {
			cJSON_Delete(arr);
			continue;
		}
		int rc = 1;
		const cJSON *item;
		cJSON_ArrayForEach(item, arr)
		{
			const cJSON *url = cJSON_GetObjectItemCaseSensitive(item, "url");
			if (!cJSON_IsString(url) ||
			    (strncmp(url->valuestring, "http://", 7) != 0 &&
			     strncmp(url->valuestring, "https://", 8) != 0)) {
				snprintf(
				    err, errlen,
				    "script: an entry of /app/imports.json has no http(s) url");
				rc = -EINVAL;
				break;
			}
			int idx =
			    add_import(in, url->valuestring, strlen(url->valuestring), err, errlen);
			if (idx < 0) {
				rc = idx;
				break;
			}
			struct script_import *im = &in->imports[idx];
			const cJSON *hs = cJSON_GetObjectItemCaseSensitive(item, "headers");
			const cJSON *h;
			if (!cJSON_IsObject(hs))
				hs = NULL;
			cJSON_ArrayForEach(h, hs)
			{
				if (im->n_headers == SCRIPT_MAX_HEADERS)
					break;
				if (!cJSON_IsString(h) || !h->string[0] || !header_ok(h->string) ||
				    !header_ok(h->valuestring) || strchr(h->string, ':')) {
					snprintf(
					    err, errlen,
					    "script: /app/imports.json has a header that is not "
					    "a printable name and value");
					rc = -EINVAL;
					break;
				}
				size_t n = strlen(h->string) + strlen(h->valuestring) + 3;
				char *line = malloc(n);
				if (!line) {
					rc = -ENOMEM;
					break;
				}
				snprintf(line, n, "%s: %s", h->string, h->valuestring);
				im->headers[im->n_headers++] = line;
			}
			if (rc < 0)
				break;
		}
		cJSON_Delete(arr);
		if (rc == 1)
			in->from_manifest = 1;
		return rc;
	}
	return 0;
}

/* Without a manifest: does this url look presigned? */
static int looks_presigned(const char *url, size_t len)
{
	static const char *const marks[] = {"x-amz-signature",
					    "x-amz-credential",
					    "signature=",
					    "x-goog-signature",
					    "sig=",
					    "expires=",
					    "x-oss-"};
	const char *q = memchr(url, '?', len);
	if (!q)
		return 0;
	char lower[SCRIPT_MAX_URL + 1];
	size_t n = (size_t)(url + len - q);
	if (n > SCRIPT_MAX_URL)
		n = SCRIPT_MAX_URL;
	for (size_t i = 0; i < n; i++)
		lower[i] = (char)((q[i] >= 'A' && q[i] <= 'Z') ? q[i] - 'A' + 'a' : q[i]);
	lower[n] = '\0';
	for (size_t i = 0; i < sizeof(marks) / sizeof(marks[0]); i++) {
		if (strstr(lower, marks[i]))
			return 1;
	}
	return 0;
}

int script_scan(const char *script, size_t len, struct script_info *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof(*out));
	if (len == 0) {
		snprintf(err, errlen, "script is empty");
		return -EINVAL;
	}
	if (len > SCRIPT_MAX_BYTES) {
		snprintf(err, errlen, "script is %zu bytes; at most %d are allowed", len,
			 SCRIPT_MAX_BYTES);
		return -EINVAL;
	}
	if (memchr(script, '\0', len)) {
		snprintf(err, errlen, "script contains a NUL byte");
		return -EINVAL;
	}
	int rc = read_manifest(script, len, out, err, errlen);
	if (rc < 0)
		goto fail;
	size_t i = 0;
	while (i < len) {
		const char *p = script + i;
		size_t skip = 0;
		if (len - i >= 7 && memcmp(p, "http://", 7) == 0)
			skip = 7;
		else if (len - i >= 8 && memcmp(p, "https://", 8) == 0)
			skip = 8;
		if (!skip) {
			i++;
			continue;
		}
		size_t end = i + skip;
		while (end < len && url_char((unsigned char)script[end]))
			end++;
		int idx = -1;
		if (out->from_manifest) {
			/* The manifest's url, whole: a longer or shorter match is another url. */
			idx = find_import(out, p, end - i);
		} else if (end > i + skip && looks_presigned(p, end - i)) {
			idx = add_import(out, p, end - i, err, errlen);
			if (idx < 0) {
				rc = idx;
				goto fail;
			}
		}
		if (idx >= 0) {
			if (out->n_urls == SCRIPT_MAX_URLS) {
				snprintf(err, errlen,
					 "script mentions import urls more than %d times",
					 SCRIPT_MAX_URLS);
				rc = -EINVAL;
				goto fail;
			}
			out->urls[out->n_urls++] = (struct script_url){i, end, (size_t)idx};
		}
		i = end;
	}
	return 0;
fail:
	script_info_free(out);
	return rc;
}

int script_content_key(const char *script, size_t len, const struct script_info *in,
		       const char *const *tags, char out[65])
{
	struct content_key *k = content_key_new("script/1");
	if (!k)
		return -ENOMEM;
	size_t at = 0;
	for (size_t i = 0; i < in->n_urls; i++) {
		const struct script_url *u = &in->urls[i];
		const char *url = in->imports[u->import].url;
		content_key_add(k, script + at, u->start - at);
		/* scheme://host/path, without the query string that carries the signature */
		content_key_add(k, url, strcspn(url, "?#"));
		content_key_add_str(k, tags[u->import]);
		at = u->end;
	}
	content_key_add(k, script + at, len - at);
	content_key_finish(k, out);
	return 0;
}
