/*
 * common/databend_type: the one reader of Databend SQL type strings, shared by udf-operator
 * (the types a query node sends for a UDF's arguments and result) and udf-worker (the types
 * of POST /v1/specialize).
 *
 * It accepts what Databend's CREATE FUNCTION accepts (its parser's type_name rule, then the
 * checks its binder makes on the result):
 * - BOOLEAN | BOOL
 * - TINYINT | INT8, SMALLINT | INT16, INT | INTEGER | INT32, BIGINT | INT64 | SIGNED; each
 *   with an optional display width "(n)"; TINYINT, SMALLINT, INT, INTEGER and BIGINT also
 *   as "... [(n)] UNSIGNED"; UINT8, UINT16, UINT32, UINT64 | UNSIGNED with an optional "(n)"
 * - FLOAT | FLOAT32 | REAL; DOUBLE | FLOAT64, each optionally followed by PRECISION
 * - DECIMAL, DECIMAL(p), DECIMAL(p, s) with 1 <= p <= 76, s <= p (bare: 18, 3; one number:
 *   scale 0); NUMERIC (bare only: 18, 3)
 * - STRING | VARCHAR | CHAR | CHARACTER | TEXT, BINARY | VARBINARY | BLOB | TINYBLOB |
 *   MEDIUMBLOB | LONGBLOB, TIMESTAMP | DATETIME: each with an optional "(n)"
 * - TIMESTAMP WITH TIME ZONE | TIMESTAMP_TZ, DATE, INTERVAL, VARIANT | JSON, BITMAP,
 *   GEOMETRY, GEOGRAPHY, STAGE_LOCATION
 * - VECTOR(n) with 1 <= n <= 4096
 * - ARRAY(T), MAP(K, V), TUPLE(T, ...) or TUPLE(name T, ...) (name a plain, "double-" or
 *   `back-` quoted identifier), NULLABLE(T)
 * - any of these followed by NULL or NOT NULL (NULLABLE(T) NOT NULL is refused, as Databend
 *   refuses it); T inside ARRAY, MAP, TUPLE and NULLABLE may carry its own suffix.
 * A MAP key is BOOLEAN, a number, DECIMAL, a string, TIMESTAMP or DATE, and not nullable.
 * Keywords are case-insensitive; spaces, tabs, CR and LF separate tokens. Limits: at most
 * DATABEND_TYPE_MAX_BYTES bytes, types nested at most DATABEND_TYPE_MAX_DEPTH deep (the
 * outermost type is depth 1; ARRAY, MAP, TUPLE and NULLABLE add one).
 *
 * The canonical spelling names each type once (BOOLEAN, INT8..INT64, UINT8..UINT64, FLOAT32,
 * FLOAT64, DECIMAL(p, s), STRING, BINARY, DATE, TIMESTAMP, TIMESTAMP_TZ, INTERVAL, VARIANT,
 * BITMAP, GEOMETRY, GEOGRAPHY, STAGE_LOCATION, VECTOR(n), ARRAY(T), MAP(K, V), TUPLE(T, ...))
 * with " NULL" after every nullable type and nothing after a NOT NULL one; tuple field names
 * are dropped (fields are served by position). It is itself valid and canonical.
 *
 * Pure functions, no allocation, thread-safe.
 */
#ifndef UDF_COMMON_DATABEND_TYPE_H
#define UDF_COMMON_DATABEND_TYPE_H

#include <stddef.h>
#include <stdint.h>

#define DATABEND_TYPE_MAX_BYTES 4096
#define DATABEND_TYPE_MAX_DEPTH 32
/* Room for the canonical spelling of any valid type, NUL included: no token grows more
 * than twice ("NUMERIC" -> "DECIMAL(18, 3)", "," -> ", "). */
#define DATABEND_TYPE_CANONICAL_SIZE (2 * DATABEND_TYPE_MAX_BYTES + 1)

enum databend_type_kind {
	DATABEND_TYPE_BOOLEAN,
	DATABEND_TYPE_INT8,
	DATABEND_TYPE_INT16,
	DATABEND_TYPE_INT32,
	DATABEND_TYPE_INT64,
	DATABEND_TYPE_UINT8,
	DATABEND_TYPE_UINT16,
	DATABEND_TYPE_UINT32,
	DATABEND_TYPE_UINT64,
	DATABEND_TYPE_FLOAT32,
	DATABEND_TYPE_FLOAT64,
	DATABEND_TYPE_DECIMAL,
	DATABEND_TYPE_STRING,
	DATABEND_TYPE_BINARY,
	DATABEND_TYPE_DATE,
	DATABEND_TYPE_TIMESTAMP,
	DATABEND_TYPE_TIMESTAMP_TZ,
	DATABEND_TYPE_INTERVAL,
	DATABEND_TYPE_VARIANT,
	DATABEND_TYPE_BITMAP,
	DATABEND_TYPE_GEOMETRY,
	DATABEND_TYPE_GEOGRAPHY,
	DATABEND_TYPE_STAGE_LOCATION,
	DATABEND_TYPE_VECTOR,
	DATABEND_TYPE_ARRAY,
	DATABEND_TYPE_MAP,
	DATABEND_TYPE_TUPLE,
	DATABEND_TYPE_KIND_COUNT
};

#define DATABEND_TYPE_BIT(kind) (UINT32_C(1) << (kind))

/* 1 when s (NUL-terminated) is a type Databend's CREATE FUNCTION accepts, else 0. */
int databend_type_valid(const char *s);

/*
 * Reads s. 0 when it is valid: then canonical, unless NULL, holds its canonical spelling
 * (NUL-terminated, size bytes at most) and *kinds, unless NULL, one DATABEND_TYPE_BIT per
 * kind used at any depth. -EINVAL when s is not valid; -ENOSPC when canonical is too small
 * (never with DATABEND_TYPE_CANONICAL_SIZE bytes). Outputs are unspecified on failure.
 */
int databend_type_parse(const char *s, char *canonical, size_t size, uint32_t *kinds);

/* The canonical name of a kind ("GEOMETRY"); "?" for a value outside the enum. */
const char *databend_type_kind_name(enum databend_type_kind kind);

#endif
