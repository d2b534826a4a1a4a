#include "script.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "content_key.h"

static int url_char(unsigned char c)
{
	/* Ends at whitespace, quotes, shell and JSON delimiters. */
	return c > 0x20 && c < 0x7f && !strchr("\"'`\\<>{}|^;,)", c);
}

void script_info_free(struct script_info *in)
{
	for (size_t i = 0; i < in->n_urls; i++)
		free(in->urls[i].url);
	in->n_urls = 0;
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
		if (end == i + skip) { /* "http://" alone */
			i = end;
			continue;
		}
		if (end - i > SCRIPT_MAX_URL) {
			snprintf(err, errlen, "script: the url at byte %zu is longer than %d bytes",
				 i, SCRIPT_MAX_URL);
			script_info_free(out);
			return -EINVAL;
		}
		if (out->n_urls == SCRIPT_MAX_URLS) {
			snprintf(err, errlen, "script has more than %d urls", SCRIPT_MAX_URLS);
			script_info_free(out);
			return -EINVAL;
		}
		struct script_url *u = &out->urls[out->n_urls];
		u->url = strndup(p, end - i);
		if (!u->url) {
			script_info_free(out);
			return -ENOMEM;
		}
		u->start = i;
		u->end = end;
		out->n_urls++;
		i = end;
	}
	return 0;
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
		content_key_add(k, script + at, u->start - at);
		/* scheme://host/path, without the query string that carries the signature */
		size_t keep = strcspn(u->url, "?#");
		content_key_add(k, u->url, keep);
		content_key_add_str(k, tags[i]);
		at = u->end;
	}
	content_key_add(k, script + at, len - at);
	content_key_finish(k, out);
	return 0;
}
