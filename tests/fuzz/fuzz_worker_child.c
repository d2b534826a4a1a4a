/*
 * What UDF processes write to the worker (worker/child.c): the ready-pipe byte stream cut
 * into lines and parsed (with the script's reported command line), the zygote's reply, and
 * the shared stats memory. Must never crash, leak or read out of bounds, and the numbers
 * that come out must be within their clamps.
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "child.h"

static void on_line(void *arg, char *line)
{
	struct child_ready r;
	cJSON *tree;
	char *args[64];

	(void)arg;
	if (strlen(line) >= CHILD_LINE_MAX)
		__builtin_trap();
	child_ready_parse(line, &r);
	if (r.kind == CHILD_READY && r.argv_json &&
	    child_argv_parse(r.argv_json, &tree, args, 64) > 0) {
		if (args[0] == NULL || args[0][0] == '\0')
			__builtin_trap();
		cJSON_Delete(tree);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct child_lines lines;
	unsigned char stats[64 * CHILD_STATS_SLOT_SIZE];
	struct child_stats sum;
	char *text;
	pid_t pid;

	memset(&lines, 0, sizeof(lines));
	child_lines_feed(&lines, (const char *)data, size, on_line, NULL);
	text = malloc(size + 1);
	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	if (child_zygote_reply_parse(text, &pid) == 0 && (pid <= 1 || pid > 4194304))
		__builtin_trap();
	free(text);
	memset(stats, 0, sizeof(stats));
	memcpy(stats, data, size < sizeof(stats) ? size : sizeof(stats));
	child_stats_sum(stats, 64, 2e9, &sum);
	if (sum.count > 64 * CHILD_STATS_MAX_COUNT || !isfinite(sum.first) || !isfinite(sum.last) ||
	    sum.first < 0 || sum.first > 2e9 || sum.last > 2e9)
		__builtin_trap();
	return 0;
}
