/*
 * log: one line per event on stderr, as text or JSON, filtered by level.
 *
 * Thread-safe: a line is written with one write(2), so lines from threads never interleave.
 * Never pass a token, key or Authorization header to these calls; as a last guard the
 * logger masks whatever follows "Bearer " in a message.
 */
#ifndef UDF_LOG_H
#define UDF_LOG_H

#include <stdarg.h>

enum log_level {
	LOG_LEVEL_DEBUG = 0,
	LOG_LEVEL_INFO = 1,
	LOG_LEVEL_WARN = 2,
	LOG_LEVEL_ERROR = 3,
};

enum log_format {
	LOG_FORMAT_TEXT = 0,
	LOG_FORMAT_JSON = 1,
};

/* Sets the minimum level and the format for the whole process. Call before threads start. */
void log_setup(enum log_level level, enum log_format format);

/* Parse "debug|info|warn|error" and "text|json"; 0 on success, -EINVAL otherwise. */
int log_parse_level(const char *s, enum log_level *out);
int log_parse_format(const char *s, enum log_format *out);

int log_enabled(enum log_level level);

/* component: a short area name ("main", "kube", "grpc"). */
void log_msg(enum log_level level, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void log_vmsg(enum log_level level, const char *component, const char *fmt, va_list ap);

#define log_debug(comp, ...) log_msg(LOG_LEVEL_DEBUG, comp, __VA_ARGS__)
#define log_info(comp, ...)  log_msg(LOG_LEVEL_INFO, comp, __VA_ARGS__)
#define log_warn(comp, ...)  log_msg(LOG_LEVEL_WARN, comp, __VA_ARGS__)
#define log_error(comp, ...) log_msg(LOG_LEVEL_ERROR, comp, __VA_ARGS__)

/*
 * Formats one log line into buf (at most size bytes, always NUL-terminated, newline
 * included) without writing it. Exposed for the unit tests; returns the line's length.
 */
int log_format_line(char *buf, int size, enum log_format format, enum log_level level,
		    const char *component, const char *msg, const char *timestamp);

#endif
