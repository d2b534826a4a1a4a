/* The kubeconfig parser (libyaml, then the checked reading of clusters/users/contexts). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "kube/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kube_config *cfg = NULL;
	char err[256];

	if (kube_config_parse((const char *)data, size, "fuzz/kubeconfig", &cfg, err,
			      sizeof(err)) == 0) {
		const struct kube_tls *tls = kube_config_tls(cfg);
		if (!kube_config_server(cfg) || !kube_config_namespace(cfg) || !tls)
			__builtin_trap();
		kube_config_free(cfg);
	}
	return 0;
}
