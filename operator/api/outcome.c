#include "api/outcome.h"

#include "kube/rest.h"

enum fn_result fn_result_of_kube_error(int rc)
{
	if (rc == KUBE_EINVALID)
		return FN_INVALID;
	return kube_error_transient(rc) ? FN_UNREACHABLE : FN_REJECTED;
}
