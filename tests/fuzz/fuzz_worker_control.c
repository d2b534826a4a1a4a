/*
 * The control and status ports' request routing (control_handle(), what the libwebsockets
 * glue calls with the method, path, Authorization header and body of each request) on
 * arbitrary requests. Input: one flag byte (bit 0: the status port), then method, path and
 * Authorization separated by NUL bytes, then the body. The token is random per run, so the
 * authenticated paths stay out of reach (specialize's body parser has its own target,
 * fuzz_worker_spec.c). Must never crash, leak or read out of bounds.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "control.h"
#include "options.h"
#include "worker.h"

static struct worker_options opts;
static char path[] = "/tmp/fuzz-worker-control-XXXXXX";

static void remove_token_file(void)
{
	unlink(path);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char token[33];
	int fd, i;
	FILE *f;

	(void)argc;
	(void)argv;
	fd = mkstemp(path);
	if (fd < 0)
		abort();
	f = fdopen(fd, "w");
	srand((unsigned)getpid() ^ (unsigned)(uintptr_t)&fd);
	for (i = 0; i < 32; i++)
		token[i] = "0123456789abcdef"[rand() & 15];
	token[32] = '\0';
	fprintf(f, "%s\n", token);
	fclose(f);
	atexit(remove_token_file);
	opts.control_token_file = path;
	opts.processes = 1;
	worker_use_options(&opts);
	return 0;
}

static const char *next_field(const char **p, const char *end, char *buf, size_t size)
{
	size_t n = 0;

	while (*p < end && **p != '\0') {
		if (n + 1 < size)
			buf[n++] = **p;
		(*p)++;
	}
	if (*p < end)
		(*p)++;
	buf[n] = '\0';
	return buf;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data + 1, *end = (const char *)data + size, *ctype;
	char method[16], path[300], auth[5000];
	char *out = NULL;
	int status = 0;

	if (size < 1)
		return 0;
	next_field(&p, end, method, sizeof(method));
	next_field(&p, end, path, sizeof(path));
	next_field(&p, end, auth, sizeof(auth));
	if (control_handle(data[0] & 1, method, path, auth[0] ? auth : NULL, p, (size_t)(end - p),
			   &status, &out, &ctype) == 0) {
		if (status < 200 || status > 599 || !out || !ctype)
			__builtin_trap();
	}
	free(out);
	return 0;
}
