/*
 * udf/event: the core/v1 Event the reconcilers write about one of their objects (a pool or a
 * function), so `kubectl describe` shows it. Pure; the caller rate-limits and creates it.
 */
#ifndef UDF_UDF_EVENT_H
#define UDF_UDF_EVENT_H

#include <cjson/cJSON.h>
#include <stdint.h>

/* An RFC 3339 UTC time ("2026-11-29T20:35:00Z") of t (seconds since the epoch) into out. */
void udf_time_rfc3339(int64_t t, char out[32]);

/* The Event about obj (kind: its kind in udf.sandbox.io/v1alpha1), at now_s, into *out
 * (caller frees). A Warning when warning, else Normal. 0 or -ENOMEM. */
int udf_event_object(const cJSON *obj, const char *kind, int warning, const char *reason,
		     const char *message, int64_t now_s, cJSON **out);

#endif
