/*
 * The watch stream framer and event parser: arbitrary bytes, cut into chunks at positions
 * taken from the input itself, fed to a framer with a small cap, every frame parsed.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "kube/watch.h"

static int on_frame(void *arg, const char *json, size_t len)
{
	struct kube_event ev;
	if (kube_event_parse(json, len, &ev) == 0)
		kube_event_free(&ev);
	(*(size_t *)arg)++;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kube_framer f;
	size_t frames = 0, pos = 0;
	unsigned step = size ? (data[0] % 61) + 1 : 1;

	kube_framer_init(&f, 4096);
	while (pos < size) {
		size_t n = size - pos < step ? size - pos : step;
		if (kube_framer_feed(&f, (const char *)data + pos, n, on_frame, &frames) != 0) {
			kube_framer_reset(&f);
		}
		if (kube_framer_pending(&f) > 4096)
			__builtin_trap();
		pos += n;
		step = step * 7 % 61 + 1;
	}
	kube_framer_free(&f);
	return 0;
}
