/*
 * child: what the worker reads from its children, parsed and checked in one place.
 *
 * Ready-pipe lines, the script's reported command line, the zygote's replies and the shared
 * stats memory are all written by processes that run the UDF's code (or that code could
 * take over: same uid), so nothing read here is trusted: lines are bounded, fields checked,
 * numbers clamped. Pure functions, no I/O, thread-safe; fuzzed by tests/fuzz/fuzz_worker_child.c.
 */
#ifndef UDF_WORKER_CHILD_H
#define UDF_WORKER_CHILD_H

#include <stddef.h>
#include <sys/types.h>

#include <cjson/cJSON.h>

#define CHILD_LINE_MAX 4096

/* Splits a byte stream into lines. A line longer than CHILD_LINE_MAX - 1 is dropped whole
 * (up to its newline), never cut into pieces that could read as lines of their own. */
struct child_lines {
	char buf[CHILD_LINE_MAX];
	size_t len;
	int dropping;
};

/* Feeds n bytes; calls on_line(arg, line) for each complete line, NUL-terminated, without
 * its '\n'; on_line may modify the line. */
void child_lines_feed(struct child_lines *lb, const char *data, size_t n,
		      void (*on_line)(void *arg, char *line), void *arg);

enum child_ready_kind {
	CHILD_OTHER,  /* not a line we know: ignored */
	CHILD_READY,  /* "ready" or "ready <argv json>" */
	CHILD_FAILED, /* "failed STEP REASON" */
};

struct child_ready {
	enum child_ready_kind kind;
	const char *argv_json; /* READY: the rest of the line, or NULL; points into the line */
	char step[32];	       /* FAILED: cut to fit */
	const char *reason;    /* FAILED: points into the line */
};

/* Reads one ready-pipe line (modified in place). Returns 0. */
int child_ready_parse(char *line, struct child_ready *out);

/*
 * The command line the script form's hook reported: a JSON array of 1 to max - 1 non-empty
 * strings. Fills args (NULL-terminated, pointing into *tree, which the caller frees with
 * cJSON_Delete) and returns how many, or -EINVAL.
 */
int child_argv_parse(const char *json, cJSON **tree, char **args, int max);

/* The zygote's answer to a fork request: "pid N" with 1 < N <= the kernel's PID limit. */
int child_zygote_reply_parse(const char *reply, pid_t *pid);

/* One stats slot per process: u64 calls, double first and last call time (unix seconds). */
#define CHILD_STATS_SLOT_SIZE 32
#define CHILD_STATS_MAX_COUNT (1ULL << 40) /* per slot; 64 slots stay exact in a double */

struct child_stats {
	unsigned long long count;
	double first, last; /* 0: none */
};

/* Sums slots of mem, ignoring times that are not finite, not positive or after latest. */
void child_stats_sum(const unsigned char *mem, int slots, double latest, struct child_stats *out);

#endif
