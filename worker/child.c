#include "child.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define PID_MAX_LIMIT 4194304 /* the kernel's PID_MAX_LIMIT on 64-bit */

void child_lines_feed(struct child_lines *lb, const char *data, size_t n,
		      void (*on_line)(void *arg, char *line), void *arg)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (data[i] == '\n') {
			if (!lb->dropping) {
				lb->buf[lb->len] = '\0';
				on_line(arg, lb->buf);
			}
			lb->len = 0;
			lb->dropping = 0;
		} else if (lb->dropping) {
			continue;
		} else if (lb->len == sizeof(lb->buf) - 1) {
			lb->len = 0;
			lb->dropping = 1; /* an overlong line: drop all of it */
		} else {
			lb->buf[lb->len++] = data[i];
		}
	}
}

int child_ready_parse(char *line, struct child_ready *out)
{
	memset(out, 0, sizeof(*out));
	if (strncmp(line, "ready", 5) == 0 && (line[5] == '\0' || line[5] == ' ')) {
		out->kind = CHILD_READY;
		out->argv_json = line[5] == ' ' ? line + 6 : NULL;
	} else if (strncmp(line, "failed ", 7) == 0) {
		char *step = line + 7, *sp = strchr(step, ' ');

		out->kind = CHILD_FAILED;
		if (sp)
			*sp = '\0';
		snprintf(out->step, sizeof(out->step), "%s", step);
		out->reason = sp ? sp + 1 : "";
	}
	return 0;
}

int child_argv_parse(const char *json, cJSON **tree, char **args, int max)
{
	cJSON *it;
	int n = 0;

	*tree = cJSON_Parse(json);
	if (!cJSON_IsArray(*tree))
		goto out_invalid;
	cJSON_ArrayForEach(it, *tree)
	{
		if (n >= max - 1 || !cJSON_IsString(it) || !it->valuestring[0])
			goto out_invalid;
		args[n++] = it->valuestring;
	}
	if (n == 0)
		goto out_invalid;
	args[n] = NULL;
	return n;
out_invalid:
	cJSON_Delete(*tree);
	*tree = NULL;
	return -EINVAL;
}

int child_zygote_reply_parse(const char *reply, pid_t *pid)
{
	long v;
	char end;

	if (sscanf(reply, "pid %ld%c", &v, &end) != 1 || v <= 1 || v > PID_MAX_LIMIT)
		return -EINVAL;
	*pid = (pid_t)v;
	return 0;
}

void child_stats_sum(const unsigned char *mem, int slots, double latest, struct child_stats *out)
{
	int i;

	memset(out, 0, sizeof(*out));
	for (i = 0; mem && i < slots; i++) {
		uint64_t c;
		double f, l;

		memcpy(&c, mem + (size_t)i * CHILD_STATS_SLOT_SIZE, 8);
		memcpy(&f, mem + (size_t)i * CHILD_STATS_SLOT_SIZE + 8, 8);
		memcpy(&l, mem + (size_t)i * CHILD_STATS_SLOT_SIZE + 16, 8);
		out->count += c > CHILD_STATS_MAX_COUNT ? CHILD_STATS_MAX_COUNT : c;
		if (!isfinite(f) || f > latest)
			f = 0;
		if (!isfinite(l) || l > latest)
			l = 0;
		if (f > 0 && (out->first == 0 || f < out->first))
			out->first = f;
		if (l > out->last)
			out->last = l;
	}
}
