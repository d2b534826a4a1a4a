#include "util/log.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LOG_LINE_MAX 8192

static atomic_int min_level = LOG_LEVEL_INFO;
static atomic_int out_format = LOG_FORMAT_TEXT;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void log_setup(enum log_level level, enum log_format format)
{
	atomic_store(&min_level, level);
	atomic_store(&out_format, format);
}

int log_parse_level(const char *s, enum log_level *out)
{
	for (int i = 0; i < 4; i++) {
		if (s && strcmp(s, level_names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	}
	return -EINVAL;
}

int log_parse_format(const char *s, enum log_format *out)
{
	if (s && strcmp(s, "text") == 0) {
		*out = LOG_FORMAT_TEXT;
		return 0;
	}
	if (s && strcmp(s, "json") == 0) {
		*out = LOG_FORMAT_JSON;
		return 0;
	}
	return -EINVAL;
}

int log_enabled(enum log_level level)
{
	return (int)level >= atomic_load(&min_level);
}

/* Appends s to buf at *len, JSON-escaped when json is set; stops silently at size - 2. */
static void append(char *buf, int size, int *len, const char *s, int json)
{
	for (; *s && *len < size - 8; s++) {
		unsigned char c = (unsigned char)*s;
		if (json && (c == '"' || c == '\\')) {
			buf[(*len)++] = '\\';
			buf[(*len)++] = (char)c;
		} else if (c < 0x20) {
			if (json)
				*len += snprintf(buf + *len, (size_t)(size - *len), "\\u%04x", c);
			else
				buf[(*len)++] = c == '\n' || c == '\t' ? ' ' : '?';
		} else {
			buf[(*len)++] = (char)c;
		}
	}
	buf[*len] = '\0';
}

/* Masks the credential after each "Bearer " so a careless caller cannot leak a token. */
static void redact(char *msg)
{
	char *p = msg;
	while ((p = strstr(p, "Bearer ")) != NULL) {
		p += strlen("Bearer ");
		char *end = p;
		while (*end && *end != ' ' && *end != '"' && *end != ',')
			end++;
		if (end > p) {
			const char *mask = "<redacted>";
			size_t mlen = strlen(mask);
			if ((size_t)(end - p) >= mlen) {
				memcpy(p, mask, mlen);
				memmove(p + mlen, end, strlen(end) + 1);
				p += mlen;
			} else {
				memset(p, '*', (size_t)(end - p));
				p = end;
			}
		}
	}
}

int log_format_line(char *buf, int size, enum log_format format, enum log_level level,
		    const char *component, const char *msg, const char *timestamp)
{
	int len = 0;
	int json = format == LOG_FORMAT_JSON;
	const char *lvl = level_names[level & 3];

	if (size < 64)
		return 0;
	if (json) {
		len = snprintf(buf, (size_t)size,
			       "{\"ts\":\"%s\",\"level\":\"%s\",\"component\":\"", timestamp, lvl);
		append(buf, size, &len, component, 1);
		append(buf, size, &len, "\",\"msg\":\"", 0);
		append(buf, size, &len, msg, 1);
		len += snprintf(buf + len, (size_t)(size - len), "\"}\n");
	} else {
		len = snprintf(buf, (size_t)size, "%s %-5s %s: ", timestamp, lvl, component);
		append(buf, size, &len, msg, 0);
		len += snprintf(buf + len, (size_t)(size - len), "\n");
	}
	if (buf[len - 1] != '\n') {
		/* Truncated: still end the line (and the JSON object) properly. */
		len = len > size - 4 ? size - 4 : len;
		len += snprintf(buf + len, (size_t)(size - len), json ? "\"}\n" : "\n");
	}
	return len;
}

void log_vmsg(enum log_level level, const char *component, const char *fmt, va_list ap)
{
	char msg[LOG_LINE_MAX / 2];
	char line[LOG_LINE_MAX];
	char ts[40];
	struct timespec now;
	struct tm tm;
	int saved_errno = errno;

	if (!log_enabled(level))
		return;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	redact(msg);
	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	snprintf(ts, sizeof(ts), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
		 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
		 now.tv_nsec / 1000000);
	int len = log_format_line(line, sizeof(line), (enum log_format)atomic_load(&out_format),
				  level, component, msg, ts);
	if (write(STDERR_FILENO, line, (size_t)len) < 0) {
		/* Nowhere left to report it. */
	}
	errno = saved_errno;
}

void log_msg(enum log_level level, const char *component, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_vmsg(level, component, fmt, ap);
	va_end(ap);
}
