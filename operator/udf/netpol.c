#include "udf/netpol.h"

#include <errno.h>
#include <stdio.h>

int udf_netpol_object(const char *ns, cJSON **out)
{
	static const char *const fmt =
	    "{\"apiVersion\":\"networking.k8s.io/v1\",\"kind\":\"NetworkPolicy\","
	    "\"metadata\":{\"name\":\"udf-sandbox\",\"namespace\":\"%s\","
	    "\"labels\":{\"app.kubernetes.io/managed-by\":\"udf-operator\"}},"
	    "\"spec\":{\"podSelector\":{},\"policyTypes\":[\"Ingress\",\"Egress\"],"
	    "\"ingress\":[{\"ports\":[{\"protocol\":\"TCP\",\"port\":8815},"
	    "{\"protocol\":\"TCP\",\"port\":8080},{\"protocol\":\"TCP\",\"port\":9090}]}],"
	    "\"egress\":[{\"ports\":[{\"protocol\":\"UDP\",\"port\":53},"
	    "{\"protocol\":\"TCP\",\"port\":53}]},"
	    "{\"to\":[{\"ipBlock\":{\"cidr\":\"0.0.0.0/0\",\"except\":[\"169.254.169.254/"
	    "32\"]}}]}]}}";
	char buf[1200];
	snprintf(buf, sizeof(buf), fmt, ns);
	*out = cJSON_Parse(buf);
	return *out ? 0 : -ENOMEM;
}
