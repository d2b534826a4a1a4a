/*
 * common/databend_type: every type name Databend's CREATE FUNCTION accepts (its parser's
 * type_name rule and the binder's checks), nesting, NULL / NOT NULL, limits, rejects, and the
 * canonical spelling the worker hands to udf_stub.py.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/databend_type.h"

struct spelling {
	const char *in;
	const char *canonical;
};

static void expect_canonical(const struct spelling *cases, size_t n)
{
	char out[DATABEND_TYPE_CANONICAL_SIZE];

	for (size_t i = 0; i < n; i++) {
		int rc = databend_type_parse(cases[i].in, out, sizeof(out), NULL);

		if (rc != 0)
			fail_msg("\"%s\" should be valid (rc %d)", cases[i].in, rc);
		if (strcmp(out, cases[i].canonical) != 0)
			fail_msg("\"%s\" -> \"%s\", want \"%s\"", cases[i].in, out,
				 cases[i].canonical);
		if (!databend_type_valid(cases[i].in))
			fail_msg("databend_type_valid(\"%s\") disagrees with parse", cases[i].in);
	}
}

#define EXPECT_CANONICAL(cases) expect_canonical(cases, sizeof(cases) / sizeof(cases[0]))

/* Every name of every scalar type, and what it is. */
static void scalar_names(void **state)
{
	static const struct spelling cases[] = {
	    {"BOOLEAN", "BOOLEAN"},
	    {"BOOL", "BOOLEAN"},
	    {"TINYINT", "INT8"},
	    {"INT8", "INT8"},
	    {"SMALLINT", "INT16"},
	    {"INT16", "INT16"},
	    {"INT", "INT32"},
	    {"INTEGER", "INT32"},
	    {"INT32", "INT32"},
	    {"BIGINT", "INT64"},
	    {"INT64", "INT64"},
	    {"SIGNED", "INT64"},
	    {"UINT8", "UINT8"},
	    {"UINT16", "UINT16"},
	    {"UINT32", "UINT32"},
	    {"UINT64", "UINT64"},
	    {"UNSIGNED", "UINT64"},
	    {"TINYINT UNSIGNED", "UINT8"},
	    {"SMALLINT UNSIGNED", "UINT16"},
	    {"INT UNSIGNED", "UINT32"},
	    {"INTEGER UNSIGNED", "UINT32"},
	    {"BIGINT UNSIGNED", "UINT64"},
	    {"FLOAT", "FLOAT32"},
	    {"FLOAT32", "FLOAT32"},
	    {"REAL", "FLOAT32"},
	    {"DOUBLE", "FLOAT64"},
	    {"FLOAT64", "FLOAT64"},
	    {"DOUBLE PRECISION", "FLOAT64"},
	    {"FLOAT64 PRECISION", "FLOAT64"},
	    {"DECIMAL", "DECIMAL(18, 3)"},
	    {"NUMERIC", "DECIMAL(18, 3)"},
	    {"DECIMAL(10)", "DECIMAL(10, 0)"},
	    {"DECIMAL(38, 10)", "DECIMAL(38, 10)"},
	    {"STRING", "STRING"},
	    {"VARCHAR", "STRING"},
	    {"CHAR", "STRING"},
	    {"CHARACTER", "STRING"},
	    {"TEXT", "STRING"},
	    {"BINARY", "BINARY"},
	    {"VARBINARY", "BINARY"},
	    {"BLOB", "BINARY"},
	    {"TINYBLOB", "BINARY"},
	    {"MEDIUMBLOB", "BINARY"},
	    {"LONGBLOB", "BINARY"},
	    {"DATE", "DATE"},
	    {"TIMESTAMP", "TIMESTAMP"},
	    {"DATETIME", "TIMESTAMP"},
	    {"TIMESTAMP WITH TIME ZONE", "TIMESTAMP_TZ"},
	    {"TIMESTAMP_TZ", "TIMESTAMP_TZ"},
	    {"INTERVAL", "INTERVAL"},
	    {"VARIANT", "VARIANT"},
	    {"JSON", "VARIANT"},
	    {"BITMAP", "BITMAP"},
	    {"GEOMETRY", "GEOMETRY"},
	    {"GEOGRAPHY", "GEOGRAPHY"},
	    {"STAGE_LOCATION", "STAGE_LOCATION"},
	    {"VECTOR(128)", "VECTOR(128)"},
	};

	EXPECT_CANONICAL(cases);
}

/* Display widths and lengths Databend accepts and ignores, case, and spacing. */
static void lengths_case_and_spaces(void **state)
{
	static const struct spelling cases[] = {
	    {"INT(11)", "INT32"},
	    {"INT(11) UNSIGNED", "UINT32"},
	    {"TINYINT(3) UNSIGNED", "UINT8"},
	    {"BIGINT(20)", "INT64"},
	    {"INT8(4)", "INT8"},
	    {"UINT8(3)", "UINT8"},
	    {"UNSIGNED(20)", "UINT64"},
	    {"SIGNED(20)", "INT64"},
	    {"VARCHAR(255)", "STRING"},
	    {"CHAR(1)", "STRING"},
	    {"CHARACTER(10)", "STRING"},
	    {"BINARY(16)", "BINARY"},
	    {"VARBINARY(18446744073709551615)", "BINARY"},
	    {"TIMESTAMP(6)", "TIMESTAMP"},
	    {"DATETIME(3)", "TIMESTAMP"},
	    {"int null", "INT32 NULL"},
	    {"Decimal(10,2) Not Null", "DECIMAL(10, 2)"},
	    {"  ARRAY ( INT32 )  ", "ARRAY(INT32)"},
	    {"MAP(\n\tSTRING,\r\n\tINT\n)", "MAP(STRING, INT32)"},
	    {"double  precision", "FLOAT64"},
	    {"timestamp with  time\tzone NULL", "TIMESTAMP_TZ NULL"},
	};

	EXPECT_CANONICAL(cases);
}

static void nesting_and_nullability(void **state)
{
	static const struct spelling cases[] = {
	    {"INT NULL", "INT32 NULL"},
	    {"INT NOT NULL", "INT32"},
	    {"NULLABLE(INT)", "INT32 NULL"},
	    {"NULLABLE(INT) NULL", "INT32 NULL"},
	    {"NULLABLE(INT NOT NULL)", "INT32 NULL"},
	    {"NULLABLE(INT NULL)", "INT32 NULL"},
	    {"ARRAY(INT NULL) NULL", "ARRAY(INT32 NULL) NULL"},
	    {"ARRAY(NULLABLE(INT32))", "ARRAY(INT32 NULL)"},
	    {"ARRAY(ARRAY(VARCHAR NULL))", "ARRAY(ARRAY(STRING NULL))"},
	    {"MAP(VARCHAR, ARRAY(INT))", "MAP(STRING, ARRAY(INT32))"},
	    {"MAP(VARCHAR NOT NULL, DECIMAL(10, 2) NULL)", "MAP(STRING, DECIMAL(10, 2) NULL)"},
	    {"MAP(BOOLEAN, INT)", "MAP(BOOLEAN, INT32)"},
	    {"MAP(UINT64, INT)", "MAP(UINT64, INT32)"},
	    {"MAP(DOUBLE, INT)", "MAP(FLOAT64, INT32)"},
	    {"MAP(DECIMAL(10, 2), INT)", "MAP(DECIMAL(10, 2), INT32)"},
	    {"MAP(DATE, TIMESTAMP)", "MAP(DATE, TIMESTAMP)"},
	    {"MAP(TIMESTAMP, INT)", "MAP(TIMESTAMP, INT32)"},
	    {"MAP(INT, MAP(INT, VARIANT NULL))", "MAP(INT32, MAP(INT32, VARIANT NULL))"},
	    {"TUPLE(INT, VARCHAR NULL, DATE)", "TUPLE(INT32, STRING NULL, DATE)"},
	    {"TUPLE(a INT, b VARCHAR NULL)", "TUPLE(INT32, STRING NULL)"},
	    {"TUPLE(\"a b\" INT, `c` STRING)", "TUPLE(INT32, STRING)"},
	    {"TUPLE(date DATE, int INT NOT NULL)", "TUPLE(DATE, INT32)"},
	    {"TUPLE(INT UNSIGNED, DOUBLE PRECISION)", "TUPLE(UINT32, FLOAT64)"},
	    {"TUPLE(TIMESTAMP WITH TIME ZONE)", "TUPLE(TIMESTAMP_TZ)"},
	    {"TUPLE(int NOT NULL)", "TUPLE(INT32)"},
	    {"TUPLE(INT8 UNSIGNED)", "TUPLE(UINT64)"}, /* a field named INT8 */
	    {"TUPLE(ARRAY(INT), MAP(INT, VARCHAR)) NULL",
	     "TUPLE(ARRAY(INT32), MAP(INT32, STRING)) NULL"},
	    {"TUPLE(x TUPLE(y INT, z ARRAY(BITMAP)))", "TUPLE(TUPLE(INT32, ARRAY(BITMAP)))"},
	    {"ARRAY(VECTOR(4096))", "ARRAY(VECTOR(4096))"},
	    {"ARRAY(GEOMETRY NULL)", "ARRAY(GEOMETRY NULL)"},
	};

	EXPECT_CANONICAL(cases);
}

static void kinds(void **state)
{
	uint32_t k = 0;

	assert_int_equal(databend_type_parse("MAP(INT, ARRAY(GEOMETRY NULL)) NULL", NULL, 0, &k),
			 0);
	assert_int_equal(k, DATABEND_TYPE_BIT(DATABEND_TYPE_MAP) |
				DATABEND_TYPE_BIT(DATABEND_TYPE_INT32) |
				DATABEND_TYPE_BIT(DATABEND_TYPE_ARRAY) |
				DATABEND_TYPE_BIT(DATABEND_TYPE_GEOMETRY));
	assert_int_equal(databend_type_parse("NULLABLE(TINYINT UNSIGNED)", NULL, 0, &k), 0);
	assert_int_equal(k, DATABEND_TYPE_BIT(DATABEND_TYPE_UINT8));
	assert_string_equal(databend_type_kind_name(DATABEND_TYPE_GEOGRAPHY), "GEOGRAPHY");
	assert_string_equal(databend_type_kind_name(DATABEND_TYPE_KIND_COUNT), "?");
	for (int i = 0; i < DATABEND_TYPE_KIND_COUNT; i++) {
		/* Each kind's name is its canonical spelling (parameterized ones aside). */
		const char *name = databend_type_kind_name((enum databend_type_kind)i);

		assert_true(strcmp(name, "?") != 0);
		if (i != DATABEND_TYPE_DECIMAL && i < DATABEND_TYPE_VECTOR)
			assert_true(databend_type_valid(name));
	}
}

static void rejects(void **state)
{
	static const char *const bad[] = {
	    "",
	    "   ",
	    "WIBBLE",
	    "INTEGRAL",
	    "INT32X",
	    "INT NOT",
	    "INT NULL NULL",
	    "INT NOT NULL NULL",
	    "INT NULL NOT NULL",
	    "NULL",
	    "NOT NULL",
	    "NULLABLE(INT) NOT NULL",
	    "NULLABLE()",
	    "NULLABLE INT",
	    "INT; DROP TABLE t",
	    "INT extra",
	    "INT8 UNSIGNED",
	    "UINT8 UNSIGNED",
	    "FLOAT UNSIGNED",
	    "REAL PRECISION",
	    "DOUBLE(10)",
	    "INT()",
	    "INT(x)",
	    "INT(-1)",
	    "INT(18446744073709551616)",
	    "VARCHAR(",
	    "DATE(1)",
	    "TIMESTAMP(6) WITH TIME ZONE",
	    "TIMESTAMP WITH TIME",
	    "TIMESTAMP WITH ZONE",
	    "DECIMAL()",
	    "DECIMAL(0)",
	    "DECIMAL(0, 0)",
	    "DECIMAL(77)",
	    "DECIMAL(99, 1)",
	    "DECIMAL(10, 11)",
	    "DECIMAL(10,)",
	    "DECIMAL(10, 2, 1)",
	    "NUMERIC(10, 2)",
	    "VECTOR",
	    "VECTOR()",
	    "VECTOR(0)",
	    "VECTOR(4097)",
	    "ARRAY",
	    "ARRAY()",
	    "ARRAY(INT",
	    "ARRAY(INT, INT)",
	    "ARRAY INT",
	    "MAP(INT)",
	    "MAP(INT, INT, INT)",
	    "MAP(INT NULL, INT)",
	    "MAP(NULLABLE(INT), INT)",
	    "MAP(VARIANT, INT)",
	    "MAP(ARRAY(INT), INT)",
	    "MAP(BINARY, INT)",
	    "MAP(GEOMETRY, INT)",
	    "MAP(TIMESTAMP_TZ, INT)",
	    "TUPLE()",
	    "TUPLE(INT,)",
	    "TUPLE(INT, b INT)",
	    "TUPLE(a INT, INT)",
	    "TUPLE(a)",
	    "TUPLE(\"\" INT)",
	    "TUPLE(\"a INT)",
	    "TUPLE(a NULL)",
	    "\"INT\"",
	    "INT\x01",
	    "INT -- comment",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char out[DATABEND_TYPE_CANONICAL_SIZE];

		if (databend_type_valid(bad[i]))
			fail_msg("\"%s\" should be invalid", bad[i]);
		if (databend_type_parse(bad[i], out, sizeof(out), NULL) != -EINVAL)
			fail_msg("\"%s\": parse should say -EINVAL", bad[i]);
	}
	assert_false(databend_type_valid(NULL));
}

static char *nested(const char *open, const char *inner, const char *close, int levels)
{
	size_t n = strlen(open) * levels + strlen(inner) + strlen(close) * levels + 1;
	char *s = malloc(n);

	assert_non_null(s);
	s[0] = '\0';
	for (int i = 0; i < levels; i++)
		strcat(s, open);
	strcat(s, inner);
	for (int i = 0; i < levels; i++)
		strcat(s, close);
	return s;
}

static void limits(void **state)
{
	char *s;

	/* The outermost type is depth 1: 31 wrappers put INT at depth 32. */
	s = nested("ARRAY(", "INT", ")", DATABEND_TYPE_MAX_DEPTH - 1);
	assert_true(databend_type_valid(s));
	free(s);
	s = nested("ARRAY(", "INT", ")", DATABEND_TYPE_MAX_DEPTH);
	assert_false(databend_type_valid(s));
	free(s);
	s = nested("TUPLE(a ", "INT", ")", DATABEND_TYPE_MAX_DEPTH - 1);
	assert_true(databend_type_valid(s));
	free(s);
	s = nested("MAP(INT, NULLABLE(", "INT", "))", DATABEND_TYPE_MAX_DEPTH / 2);
	assert_false(databend_type_valid(s));
	free(s);
	/* Deep failures must not backtrack (2^depth): this returns at once. */
	s = nested("TUPLE(a TUPLE(", "INT", ")", DATABEND_TYPE_MAX_DEPTH * 4);
	assert_false(databend_type_valid(s));
	free(s);

	/* Bytes: exactly the maximum is fine, one more is not. */
	s = malloc(DATABEND_TYPE_MAX_BYTES + 2);
	assert_non_null(s);
	memset(s, ' ', DATABEND_TYPE_MAX_BYTES + 1);
	memcpy(s, "INT", 3);
	s[DATABEND_TYPE_MAX_BYTES] = '\0';
	assert_true(databend_type_valid(s));
	s[DATABEND_TYPE_MAX_BYTES] = ' ';
	s[DATABEND_TYPE_MAX_BYTES + 1] = '\0';
	assert_false(databend_type_valid(s));
	free(s);
}

/* The worst growth ("NUMERIC," -> "DECIMAL(18, 3), ") fits DATABEND_TYPE_CANONICAL_SIZE. */
static void canonical_room(void **state)
{
	char *s = malloc(DATABEND_TYPE_MAX_BYTES + 1), *out = malloc(DATABEND_TYPE_CANONICAL_SIZE);
	size_t n = 0;

	assert_non_null(s);
	assert_non_null(out);
	n += (size_t)sprintf(s, "TUPLE(NUMERIC");
	while (n + strlen(",NUMERIC") + 1 <= DATABEND_TYPE_MAX_BYTES)
		n += (size_t)sprintf(s + n, ",NUMERIC");
	strcpy(s + n, ")");
	assert_int_equal(databend_type_parse(s, out, DATABEND_TYPE_CANONICAL_SIZE, NULL), 0);
	assert_true(strlen(out) < DATABEND_TYPE_CANONICAL_SIZE);
	/* Too small a buffer is -ENOSPC, never an overrun; a size of 0 too. */
	assert_int_equal(databend_type_parse(s, out, 64, NULL), -ENOSPC);
	assert_int_equal(databend_type_parse("INT", out, 0, NULL), -ENOSPC);
	assert_int_equal(databend_type_parse("INT", out, 5, NULL), -ENOSPC);
	assert_int_equal(databend_type_parse("INT", out, 6, NULL), 0);
	assert_string_equal(out, "INT32");
	free(s);
	free(out);
}

/* A canonical spelling is valid and is its own canonical spelling. */
static void canonical_is_fixed_point(void **state)
{
	static const char *const samples[] = {
	    "NUMERIC",
	    "TUPLE(a NULLABLE(INT), b MAP(CHAR(3), BLOB NULL)) NULL",
	    "DOUBLE PRECISION NOT NULL",
	    "TIMESTAMP WITH TIME ZONE NULL",
	    "ARRAY(TUPLE(x VECTOR(8), y JSON))",
	};
	char once[DATABEND_TYPE_CANONICAL_SIZE], twice[DATABEND_TYPE_CANONICAL_SIZE];

	for (size_t i = 0; i < sizeof(samples) / sizeof(samples[0]); i++) {
		assert_int_equal(databend_type_parse(samples[i], once, sizeof(once), NULL), 0);
		assert_int_equal(databend_type_parse(once, twice, sizeof(twice), NULL), 0);
		assert_string_equal(once, twice);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(scalar_names),
	    cmocka_unit_test(lengths_case_and_spaces),
	    cmocka_unit_test(nesting_and_nullability),
	    cmocka_unit_test(kinds),
	    cmocka_unit_test(rejects),
	    cmocka_unit_test(limits),
	    cmocka_unit_test(canonical_room),
	    cmocka_unit_test(canonical_is_fixed_point),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
