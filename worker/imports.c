#include "imports.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>

#include "log.h"

const char *imports_basename(const char *location)
{
	const char *slash = strrchr(location, '/');

	return slash ? slash + 1 : location;
}

void imports_cache_key(const char *location, const char *tag, char out[17])
{
	unsigned long long h = 1469598103934665603ULL;
	const char *parts[2] = {location, tag ? tag : ""};
	int i;

	for (i = 0; i < 2; i++) {
		const unsigned char *p = (const unsigned char *)parts[i];

		for (; *p; p++) {
			h ^= *p;
			h *= 1099511628211ULL;
		}
		h ^= 0xff; /* separator: ("ab","c") and ("a","bc") differ */
		h *= 1099511628211ULL;
	}
	snprintf(out, 17, "%016llx", h);
}

struct download {
	int fd;
	long long written;
	long long max_bytes;
	int too_big;
	int write_failed;
};

static size_t on_data(char *data, size_t size, size_t nmemb, void *arg)
{
	struct download *d = arg;
	size_t n = size * nmemb, off = 0;

	if (d->written + (long long)n > d->max_bytes) {
		d->too_big = 1;
		return 0;
	}
	while (off < n) {
		ssize_t w = write(d->fd, data + off, n - off);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			d->write_failed = 1;
			return 0;
		}
		off += (size_t)w;
	}
	d->written += (long long)n;
	return n;
}

static int mkdir_p(const char *path)
{
	char buf[4096];
	size_t i, len = strlen(path);

	if (len >= sizeof(buf))
		return -ENAMETOOLONG;
	memcpy(buf, path, len + 1);
	for (i = 1; i <= len; i++) {
		if (buf[i] == '/' || buf[i] == '\0') {
			char c = buf[i];

			buf[i] = '\0';
			if (mkdir(buf, 0755) != 0 && errno != EEXIST)
				return -errno;
			buf[i] = c;
		}
	}
	return 0;
}

static int download(const struct spec_import *imp, const char *dest,
		    const struct imports_limits *limits, char *reason, size_t reason_len)
{
	struct download d = {.max_bytes = limits->max_bytes};
	struct curl_slist *headers = NULL;
	char tmp[4200], line[16384 + 300];
	long status = 0;
	CURLcode cc;
	CURL *curl;
	size_t i;
	int rc = 0;

	snprintf(tmp, sizeof(tmp), "%s.part.%d", dest, (int)getpid());
	d.fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (d.fd < 0) {
		snprintf(reason, reason_len, "import %s: cannot write %s: %s", imp->location, tmp,
			 strerror(errno));
		return -errno;
	}
	curl = curl_easy_init();
	if (!curl) {
		rc = -ENOMEM;
		snprintf(reason, reason_len, "import %s: out of memory", imp->location);
		goto out_close;
	}
	for (i = 0; i < imp->n_headers; i++) {
		struct curl_slist *grown;

		snprintf(line, sizeof(line), "%s: %s", imp->headers[i].name, imp->headers[i].value);
		grown = curl_slist_append(headers, line);
		if (!grown) {
			rc = -ENOMEM;
			snprintf(reason, reason_len, "import %s: out of memory", imp->location);
			goto out_cleanup;
		}
		headers = grown;
	}
	curl_easy_setopt(curl, CURLOPT_URL, imp->url);
	curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(curl, CURLOPT_WRITEDATA, &d);
	curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 1L);
	curl_easy_setopt(curl, CURLOPT_MAXREDIRS, 5L);
	curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(curl, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(curl, CURLOPT_TIMEOUT, limits->timeout_seconds);
	curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, 10L);
	curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(curl, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)limits->max_bytes);
	cc = curl_easy_perform(curl);
	curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
	if (d.too_big || cc == CURLE_FILESIZE_EXCEEDED) {
		snprintf(reason, reason_len, "import %s: larger than %lld bytes", imp->location,
			 limits->max_bytes);
		rc = -EFBIG;
	} else if (cc != CURLE_OK && !(cc == CURLE_HTTP_RETURNED_ERROR)) {
		snprintf(reason, reason_len, "import %s: download failed: %s", imp->location,
			 curl_easy_strerror(cc));
		rc = -EIO;
	} else if (status < 200 || status > 299) {
		snprintf(reason, reason_len, "import %s: HTTP status %ld", imp->location, status);
		rc = -EIO;
	}
out_cleanup:
	curl_slist_free_all(headers);
	curl_easy_cleanup(curl);
out_close:
	if (close(d.fd) != 0 && rc == 0) {
		rc = -EIO;
		snprintf(reason, reason_len, "import %s: write failed", imp->location);
	}
	if (rc == 0 && rename(tmp, dest) != 0) {
		rc = -errno;
		snprintf(reason, reason_len, "import %s: %s", imp->location, strerror(errno));
	}
	if (rc)
		unlink(tmp);
	return rc;
}

static int copy_file(const char *from, const char *to)
{
	char tmp[4200], buf[65536];
	int in, out, rc = 0;
	ssize_t n;

	snprintf(tmp, sizeof(tmp), "%s.tmp", to);
	in = open(from, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return -errno;
	out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (out < 0) {
		rc = -errno;
		goto out_in;
	}
	while ((n = read(in, buf, sizeof(buf))) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			rc = -errno;
			break;
		}
		if (write(out, buf, (size_t)n) != n) {
			rc = -EIO;
			break;
		}
	}
	if (close(out) != 0 && rc == 0)
		rc = -EIO;
	if (rc == 0 && rename(tmp, to) != 0)
		rc = -errno;
	if (rc)
		unlink(tmp);
out_in:
	close(in);
	return rc;
}

int imports_fetch(const struct spec_request *req, const char *dir, const char *cache_dir,
		  const struct imports_limits *limits, struct imports_stats *stats, char *reason,
		  size_t reason_len)
{
	char cached[4200], dest[4200], key[17];
	struct stat st;
	size_t i;
	int rc;

	memset(stats, 0, sizeof(*stats));
	if (req->n_imports == 0)
		return 0;
	rc = mkdir_p(dir);
	if (rc == 0)
		rc = mkdir_p(cache_dir);
	if (rc) {
		snprintf(reason, reason_len, "import: cannot create %s: %s", dir, strerror(-rc));
		return rc;
	}
	for (i = 0; i < req->n_imports; i++) {
		const struct spec_import *imp = &req->imports[i];

		snprintf(dest, sizeof(dest), "%s/%s", dir, imports_basename(imp->location));
		/* Without a tag there is no content identity: always download. */
		if (imp->tag && imp->tag[0]) {
			imports_cache_key(imp->location, imp->tag, key);
			snprintf(cached, sizeof(cached), "%s/%s", cache_dir, key);
			if (stat(cached, &st) != 0) {
				rc = download(imp, cached, limits, reason, reason_len);
				if (rc)
					return rc;
				stats->downloaded++;
			} else {
				stats->cached++;
			}
			rc = copy_file(cached, dest);
			if (rc) {
				snprintf(reason, reason_len, "import %s: cannot copy into %s: %s",
					 imp->location, dir, strerror(-rc));
				return rc;
			}
		} else {
			rc = download(imp, dest, limits, reason, reason_len);
			if (rc)
				return rc;
			stats->downloaded++;
		}
		log_info("import", "%s -> %s", imp->location, dest);
	}
	return 0;
}
