/* grpc/script and grpc/etag: the script's urls, its content key, ETag header parsing. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "grpc/etag.h"
#include "grpc/script.h"

static char *script_with(const char *sig, const char *code)
{
	static char buf[4096];
	snprintf(
	    buf, sizeof(buf),
	    "#!/usr/bin/env bash\nset -euo pipefail\ncd /app\n"
	    "cat > /app/imports.json <<'EOF'\n"
	    "[{\"location\":\"@s/a.py\",\"url\":\"https://store/a.py?X-Sig=%s\",\"headers\":{}}]\n"
	    "EOF\ncurl -fsSL 'https://store/a.py?X-Sig=%s' -o /app/imports/a.py\n"
	    "cat > /app/udf.py <<'UDF'\n%s\nUDF\nexec python /app/server.py\n",
	    sig, sig, code);
	return buf;
}

static void key_of(const char *script, const char *tag, char out[65])
{
	struct script_info in;
	char err[256];
	const char *tags[SCRIPT_MAX_URLS];
	assert_int_equal(script_scan(script, strlen(script), &in, err, sizeof(err)), 0);
	assert_int_equal(in.n_urls, 2);
	assert_int_equal(in.n_imports, 1);
	assert_true(in.from_manifest);
	assert_string_equal(in.imports[0].url, "https://store/a.py?X-Sig=one");
	tags[0] = tag;
	assert_int_equal(script_content_key(script, strlen(script), &in, tags, out), 0);
	script_info_free(&in);
}

static void presign_does_not_change_the_key(void **state)
{
	char k1[65], k2[65], k3[65], k4[65];
	char *s = script_with("one", "def f(x): return x");
	char copy[4096];
	snprintf(copy, sizeof(copy), "%s", s);
	key_of(copy, "\"e1\"", k1);
	s = script_with("two", "def f(x): return x");
	/* the url differs in its query string only */
	struct script_info in;
	char err[256];
	assert_int_equal(script_scan(s, strlen(s), &in, err, sizeof(err)), 0);
	const char *tags[1] = {"\"e1\""};
	assert_int_equal(script_content_key(s, strlen(s), &in, tags, k2), 0);
	script_info_free(&in);
	assert_string_equal(k1, k2);
	key_of(copy, "\"e2\"", k3);
	assert_string_not_equal(k1, k3);
	s = script_with("one", "def f(x): return x + 1");
	snprintf(copy, sizeof(copy), "%s", s);
	key_of(copy, "\"e1\"", k4);
	assert_string_not_equal(k1, k4);
}

static void bad_scripts(void **state)
{
	struct script_info in;
	char err[256];
	assert_int_equal(script_scan("", 0, &in, err, sizeof(err)), -EINVAL);
	assert_int_equal(script_scan("a\0b", 3, &in, err, sizeof(err)), -EINVAL);
	assert_int_equal(script_scan("x", SCRIPT_MAX_BYTES + 1, &in, err, sizeof(err)), -EINVAL);
	char *many = malloc(70 * 40 + 1);
	many[0] = '\0';
	for (int i = 0; i < 70; i++)
		sprintf(many + strlen(many), "http://h/x%d?X-Amz-Signature=b ", i);
	assert_int_equal(script_scan(many, strlen(many), &in, err, sizeof(err)), -EINVAL);
	free(many);
	assert_int_equal(script_scan("echo http:// done", 17, &in, err, sizeof(err)), 0);
	assert_int_equal(in.n_urls, 0);
}

static void only_import_urls_count(void **state)
{
	struct script_info in;
	char err[256];
	/* The code's own url is neither fetched nor normalized; the manifest's headers are kept. */
	const char *s = "cat > /app/imports.json <<'EOF'\n"
			"[{\"location\": \"@s/a.py\", \"url\": \"https://s/a.py?sig=1\", "
			"\"headers\": {\"x-amz-sse\": \"AES256\"}}]\nEOF\n"
			"curl -fsSL 'https://s/a.py?sig=1' -o /app/imports/a.py\n"
			"cat > /app/udf.py <<'EOF'\nimport requests\n"
			"URL = 'https://api.example.com/v1?sig=not-an-import'\nEOF\n";
	assert_int_equal(script_scan(s, strlen(s), &in, err, sizeof(err)), 0);
	assert_int_equal(in.n_imports, 1);
	assert_int_equal(in.n_urls, 2);
	assert_int_equal(in.imports[0].n_headers, 1);
	assert_string_equal(in.imports[0].headers[0], "x-amz-sse: AES256");
	script_info_free(&in);

	/* No manifest: only urls that look presigned. */
	s = "curl -o /app/imports/a.py 'https://s/a.py?X-Amz-Signature=1'\n"
	    "echo https://example.com/docs\n";
	assert_int_equal(script_scan(s, strlen(s), &in, err, sizeof(err)), 0);
	assert_false(in.from_manifest);
	assert_int_equal(in.n_imports, 1);
	assert_string_equal(in.imports[0].url, "https://s/a.py?X-Amz-Signature=1");
	script_info_free(&in);

	/* A manifest header that would inject a line is refused. */
	s = "imports.json\n[{\"url\": \"https://s/a\", \"headers\": {\"a\": \"b\\r\\nX: y\"}}]";
	assert_int_equal(script_scan(s, strlen(s), &in, err, sizeof(err)), -EINVAL);
}

static void etag_headers(void **state)
{
	char etag[64] = "";
	long long total = -1, length = -1;
	const char *l1 = "ETag: \"abc\"\r\n";
	const char *l2 = "content-range: bytes 0-0/1234\r\n";
	const char *l3 = "Content-Length: 1\r\n";
	etag_header_line(l1, strlen(l1), etag, sizeof(etag), &total, &length);
	etag_header_line(l2, strlen(l2), etag, sizeof(etag), &total, &length);
	etag_header_line(l3, strlen(l3), etag, sizeof(etag), &total, &length);
	assert_string_equal(etag, "\"abc\"");
	assert_int_equal(total, 1234);
	assert_int_equal(length, 1);
	const char *bad = "Content-Range: bytes 0-0/*\r\n";
	total = -1;
	etag_header_line(bad, strlen(bad), etag, sizeof(etag), &total, &length);
	assert_int_equal(total, -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(presign_does_not_change_the_key),
	    cmocka_unit_test(bad_scripts),
	    cmocka_unit_test(only_import_urls_count),
	    cmocka_unit_test(etag_headers),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
