#include "common/databend_type.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* Longer than any keyword: a longer word is never one. */
#define WORD_MAX 32

#define TAKES_LENGTH	1 /* an optional "(n)": a display width or length Databend ignores */
#define TAKES_UNSIGNED	2 /* "... [(n)] UNSIGNED" names the unsigned type of that width */
#define TAKES_PRECISION 4 /* an optional PRECISION word: "DOUBLE PRECISION" */

struct scalar {
	const char *word;
	enum databend_type_kind kind;
	unsigned flags;
	enum databend_type_kind kind_unsigned;
};

static const struct scalar scalars[] = {
    {"BOOLEAN", DATABEND_TYPE_BOOLEAN, 0, 0},
    {"BOOL", DATABEND_TYPE_BOOLEAN, 0, 0},
    {"TINYINT", DATABEND_TYPE_INT8, TAKES_LENGTH | TAKES_UNSIGNED, DATABEND_TYPE_UINT8},
    {"SMALLINT", DATABEND_TYPE_INT16, TAKES_LENGTH | TAKES_UNSIGNED, DATABEND_TYPE_UINT16},
    {"INT", DATABEND_TYPE_INT32, TAKES_LENGTH | TAKES_UNSIGNED, DATABEND_TYPE_UINT32},
    {"INTEGER", DATABEND_TYPE_INT32, TAKES_LENGTH | TAKES_UNSIGNED, DATABEND_TYPE_UINT32},
    {"BIGINT", DATABEND_TYPE_INT64, TAKES_LENGTH | TAKES_UNSIGNED, DATABEND_TYPE_UINT64},
    {"INT8", DATABEND_TYPE_INT8, TAKES_LENGTH, 0},
    {"INT16", DATABEND_TYPE_INT16, TAKES_LENGTH, 0},
    {"INT32", DATABEND_TYPE_INT32, TAKES_LENGTH, 0},
    {"INT64", DATABEND_TYPE_INT64, TAKES_LENGTH, 0},
    {"SIGNED", DATABEND_TYPE_INT64, TAKES_LENGTH, 0},
    {"UINT8", DATABEND_TYPE_UINT8, TAKES_LENGTH, 0},
    {"UINT16", DATABEND_TYPE_UINT16, TAKES_LENGTH, 0},
    {"UINT32", DATABEND_TYPE_UINT32, TAKES_LENGTH, 0},
    {"UINT64", DATABEND_TYPE_UINT64, TAKES_LENGTH, 0},
    {"UNSIGNED", DATABEND_TYPE_UINT64, TAKES_LENGTH, 0},
    {"FLOAT32", DATABEND_TYPE_FLOAT32, 0, 0},
    {"FLOAT", DATABEND_TYPE_FLOAT32, 0, 0},
    {"REAL", DATABEND_TYPE_FLOAT32, 0, 0},
    {"FLOAT64", DATABEND_TYPE_FLOAT64, TAKES_PRECISION, 0},
    {"DOUBLE", DATABEND_TYPE_FLOAT64, TAKES_PRECISION, 0},
    {"STRING", DATABEND_TYPE_STRING, TAKES_LENGTH, 0},
    {"VARCHAR", DATABEND_TYPE_STRING, TAKES_LENGTH, 0},
    {"CHAR", DATABEND_TYPE_STRING, TAKES_LENGTH, 0},
    {"CHARACTER", DATABEND_TYPE_STRING, TAKES_LENGTH, 0},
    {"TEXT", DATABEND_TYPE_STRING, TAKES_LENGTH, 0},
    {"BINARY", DATABEND_TYPE_BINARY, TAKES_LENGTH, 0},
    {"VARBINARY", DATABEND_TYPE_BINARY, TAKES_LENGTH, 0},
    {"BLOB", DATABEND_TYPE_BINARY, TAKES_LENGTH, 0},
    {"TINYBLOB", DATABEND_TYPE_BINARY, TAKES_LENGTH, 0},
    {"MEDIUMBLOB", DATABEND_TYPE_BINARY, TAKES_LENGTH, 0},
    {"LONGBLOB", DATABEND_TYPE_BINARY, TAKES_LENGTH, 0},
    {"DATE", DATABEND_TYPE_DATE, 0, 0},
    {"TIMESTAMP", DATABEND_TYPE_TIMESTAMP, TAKES_LENGTH, 0},
    {"DATETIME", DATABEND_TYPE_TIMESTAMP, TAKES_LENGTH, 0},
    {"TIMESTAMP_TZ", DATABEND_TYPE_TIMESTAMP_TZ, 0, 0},
    {"INTERVAL", DATABEND_TYPE_INTERVAL, 0, 0},
    {"VARIANT", DATABEND_TYPE_VARIANT, 0, 0},
    {"JSON", DATABEND_TYPE_VARIANT, 0, 0},
    {"BITMAP", DATABEND_TYPE_BITMAP, 0, 0},
    {"GEOMETRY", DATABEND_TYPE_GEOMETRY, 0, 0},
    {"GEOGRAPHY", DATABEND_TYPE_GEOGRAPHY, 0, 0},
    {"STAGE_LOCATION", DATABEND_TYPE_STAGE_LOCATION, 0, 0},
};

/* The words that open a type with arguments. */
static const char *const composites[] = {"DECIMAL", "NUMERIC", "VECTOR",  "ARRAY",
					 "MAP",	    "TUPLE",   "NULLABLE"};

static const char *const kind_names[DATABEND_TYPE_KIND_COUNT] = {
    [DATABEND_TYPE_BOOLEAN] = "BOOLEAN",
    [DATABEND_TYPE_INT8] = "INT8",
    [DATABEND_TYPE_INT16] = "INT16",
    [DATABEND_TYPE_INT32] = "INT32",
    [DATABEND_TYPE_INT64] = "INT64",
    [DATABEND_TYPE_UINT8] = "UINT8",
    [DATABEND_TYPE_UINT16] = "UINT16",
    [DATABEND_TYPE_UINT32] = "UINT32",
    [DATABEND_TYPE_UINT64] = "UINT64",
    [DATABEND_TYPE_FLOAT32] = "FLOAT32",
    [DATABEND_TYPE_FLOAT64] = "FLOAT64",
    [DATABEND_TYPE_DECIMAL] = "DECIMAL",
    [DATABEND_TYPE_STRING] = "STRING",
    [DATABEND_TYPE_BINARY] = "BINARY",
    [DATABEND_TYPE_DATE] = "DATE",
    [DATABEND_TYPE_TIMESTAMP] = "TIMESTAMP",
    [DATABEND_TYPE_TIMESTAMP_TZ] = "TIMESTAMP_TZ",
    [DATABEND_TYPE_INTERVAL] = "INTERVAL",
    [DATABEND_TYPE_VARIANT] = "VARIANT",
    [DATABEND_TYPE_BITMAP] = "BITMAP",
    [DATABEND_TYPE_GEOMETRY] = "GEOMETRY",
    [DATABEND_TYPE_GEOGRAPHY] = "GEOGRAPHY",
    [DATABEND_TYPE_STAGE_LOCATION] = "STAGE_LOCATION",
    [DATABEND_TYPE_VECTOR] = "VECTOR",
    [DATABEND_TYPE_ARRAY] = "ARRAY",
    [DATABEND_TYPE_MAP] = "MAP",
    [DATABEND_TYPE_TUPLE] = "TUPLE",
};

/* Databend's binder takes these, not nullable, as MAP keys. */
static const uint32_t map_keys =
    DATABEND_TYPE_BIT(DATABEND_TYPE_BOOLEAN) | DATABEND_TYPE_BIT(DATABEND_TYPE_INT8) |
    DATABEND_TYPE_BIT(DATABEND_TYPE_INT16) | DATABEND_TYPE_BIT(DATABEND_TYPE_INT32) |
    DATABEND_TYPE_BIT(DATABEND_TYPE_INT64) | DATABEND_TYPE_BIT(DATABEND_TYPE_UINT8) |
    DATABEND_TYPE_BIT(DATABEND_TYPE_UINT16) | DATABEND_TYPE_BIT(DATABEND_TYPE_UINT32) |
    DATABEND_TYPE_BIT(DATABEND_TYPE_UINT64) | DATABEND_TYPE_BIT(DATABEND_TYPE_FLOAT32) |
    DATABEND_TYPE_BIT(DATABEND_TYPE_FLOAT64) | DATABEND_TYPE_BIT(DATABEND_TYPE_DECIMAL) |
    DATABEND_TYPE_BIT(DATABEND_TYPE_STRING) | DATABEND_TYPE_BIT(DATABEND_TYPE_TIMESTAMP) |
    DATABEND_TYPE_BIT(DATABEND_TYPE_DATE);

struct parser {
	const char *p;
	char *out; /* NULL: only validate */
	size_t size;
	size_t len;
	int overflow;
	uint32_t kinds;
};

static int is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* ASCII only, whatever the locale. */
static int is_word_start(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
}

static int is_word_char(char c)
{
	return is_word_start(c) || (c >= '0' && c <= '9') || c == '$';
}

/*
 * The word at p (after spaces), upper-cased into word (left empty when it is too long to be
 * a keyword). Returns where it ends, or NULL when no word starts there.
 */
static const char *peek_word(const char *p, char word[WORD_MAX])
{
	size_t n = 0;

	while (is_space(*p))
		p++;
	if (!is_word_start(*p))
		return NULL;
	for (; is_word_char(*p); p++, n++)
		if (n < WORD_MAX - 1)
			word[n] = (*p >= 'a' && *p <= 'z') ? (char)(*p - 'a' + 'A') : *p;
	word[n < WORD_MAX ? n : 0] = '\0';
	return p;
}

static int take_word(struct parser *ps, char word[WORD_MAX])
{
	const char *end = peek_word(ps->p, word);

	if (!end)
		return 0;
	ps->p = end;
	return 1;
}

/* Consumes kw when it is the next word. */
static int keyword(struct parser *ps, const char *kw)
{
	char word[WORD_MAX];
	const char *end = peek_word(ps->p, word);

	if (!end || strcmp(word, kw) != 0)
		return 0;
	ps->p = end;
	return 1;
}

static int punct(struct parser *ps, char c)
{
	while (is_space(*ps->p))
		ps->p++;
	if (*ps->p != c)
		return 0;
	ps->p++;
	return 1;
}

/* An unsigned decimal literal of at most max. */
static int number(struct parser *ps, unsigned long long max, unsigned long long *out)
{
	unsigned long long v = 0;
	const char *start;

	while (is_space(*ps->p))
		ps->p++;
	start = ps->p;
	for (; *ps->p >= '0' && *ps->p <= '9'; ps->p++) {
		unsigned d = (unsigned)(*ps->p - '0');

		if (v > (max - d) / 10)
			return 0;
		v = v * 10 + d;
	}
	*out = v;
	return ps->p > start;
}

static void emit(struct parser *ps, const char *s)
{
	size_t n = strlen(s);

	if (!ps->out)
		return;
	if (ps->len + n >= ps->size) {
		ps->overflow = 1;
		return;
	}
	memcpy(ps->out + ps->len, s, n + 1);
	ps->len += n;
}

static const struct scalar *find_scalar(const char *word)
{
	for (size_t i = 0; i < sizeof(scalars) / sizeof(scalars[0]); i++)
		if (strcmp(word, scalars[i].word) == 0)
			return &scalars[i];
	return NULL;
}

static int opens_type(const char *word)
{
	for (size_t i = 0; i < sizeof(composites) / sizeof(composites[0]); i++)
		if (strcmp(word, composites[i]) == 0)
			return 1;
	return find_scalar(word) != NULL;
}

/*
 * Does the tuple whose fields start at p name its fields ("TUPLE(a INT, b STRING)") or not
 * ("TUPLE(INT, STRING)")? Databend tries the unnamed form first and backtracks; two words of
 * lookahead give the same answer without backtracking, which would cost 2^depth on nested
 * tuples. (Its one difference: Databend also takes "TUPLE(int UNSIGNED, b INT)" as named.)
 */
static int tuple_named(const char *p)
{
	char first[WORD_MAX], second[WORD_MAX];
	const struct scalar *scalar;
	const char *end;

	while (is_space(*p))
		p++;
	if (*p == '"' || *p == '`')
		return 1;
	end = peek_word(p, first);
	if (!end || !peek_word(end, second))
		return 0;
	if (!opens_type(first))
		return 1;
	scalar = find_scalar(first);
	if (strcmp(second, "NULL") == 0 || strcmp(second, "NOT") == 0)
		return 0;
	if (strcmp(second, "UNSIGNED") == 0)
		return !(scalar && (scalar->flags & TAKES_UNSIGNED));
	if (strcmp(second, "PRECISION") == 0)
		return !(scalar && (scalar->flags & TAKES_PRECISION));
	if (strcmp(second, "WITH") == 0)
		return strcmp(first, "TIMESTAMP") != 0;
	return 1;
}

/* A tuple field's name: a plain identifier or one quoted with " or `. */
static int field_name(struct parser *ps)
{
	char word[WORD_MAX], q;
	const char *start;

	while (is_space(*ps->p))
		ps->p++;
	if (*ps->p != '"' && *ps->p != '`')
		return take_word(ps, word);
	q = *ps->p++;
	start = ps->p;
	while (*ps->p && *ps->p != q) {
		if ((unsigned char)*ps->p < 0x20)
			return 0;
		ps->p++;
	}
	if (*ps->p != q || ps->p == start)
		return 0;
	ps->p++;
	return 1;
}

static int parse_type(struct parser *ps, int depth, int emit_null, enum databend_type_kind *kind,
		      int *nullable);

static int parse_decimal(struct parser *ps, int bare_only)
{
	unsigned long long precision = 18, scale = 3;
	char text[48];

	if (!bare_only && punct(ps, '(')) {
		if (!number(ps, 76, &precision) || precision < 1)
			return 0;
		scale = 0;
		if (punct(ps, ',') && !number(ps, 76, &scale))
			return 0;
		if (!punct(ps, ')') || scale > precision)
			return 0;
	}
	snprintf(text, sizeof(text), "DECIMAL(%llu, %llu)", precision, scale);
	emit(ps, text);
	return 1;
}

static int parse_tuple(struct parser *ps, int depth)
{
	int named = tuple_named(ps->p), nullable, first = 1;
	enum databend_type_kind kind;

	emit(ps, "TUPLE(");
	do {
		if (!first)
			emit(ps, ", ");
		first = 0;
		if (named && !field_name(ps))
			return 0;
		if (!parse_type(ps, depth + 1, 1, &kind, &nullable))
			return 0;
	} while (punct(ps, ','));
	if (!punct(ps, ')'))
		return 0;
	emit(ps, ")");
	return 1;
}

static int parse_scalar(struct parser *ps, const struct scalar *s, enum databend_type_kind *kind)
{
	unsigned long long ignored;

	*kind = s->kind;
	if (s->kind == DATABEND_TYPE_TIMESTAMP && strcmp(s->word, "TIMESTAMP") == 0 &&
	    keyword(ps, "WITH")) {
		if (!keyword(ps, "TIME") || !keyword(ps, "ZONE"))
			return 0;
		*kind = DATABEND_TYPE_TIMESTAMP_TZ;
	} else if ((s->flags & TAKES_LENGTH) && punct(ps, '(')) {
		if (!number(ps, UINT64_MAX, &ignored) || !punct(ps, ')'))
			return 0;
	}
	if ((s->flags & TAKES_UNSIGNED) && keyword(ps, "UNSIGNED"))
		*kind = s->kind_unsigned;
	if (s->flags & TAKES_PRECISION)
		(void)keyword(ps, "PRECISION");
	emit(ps, kind_names[*kind]);
	return 1;
}

/* One type without its NULL / NOT NULL; *wrapped when it is NULLABLE(T). */
static int parse_base(struct parser *ps, int depth, enum databend_type_kind *kind, int *wrapped)
{
	char word[WORD_MAX], text[32];
	enum databend_type_kind inner;
	const struct scalar *s;
	unsigned long long n;
	int nullable;

	*wrapped = 0;
	if (!take_word(ps, word))
		return 0;
	if (strcmp(word, "DECIMAL") == 0 || strcmp(word, "NUMERIC") == 0) {
		*kind = DATABEND_TYPE_DECIMAL;
		if (!parse_decimal(ps, word[0] == 'N'))
			return 0;
	} else if (strcmp(word, "VECTOR") == 0) {
		*kind = DATABEND_TYPE_VECTOR;
		if (!punct(ps, '(') || !number(ps, 4096, &n) || n < 1 || !punct(ps, ')'))
			return 0;
		snprintf(text, sizeof(text), "VECTOR(%llu)", n);
		emit(ps, text);
	} else if (strcmp(word, "ARRAY") == 0) {
		*kind = DATABEND_TYPE_ARRAY;
		emit(ps, "ARRAY(");
		if (!punct(ps, '(') || !parse_type(ps, depth + 1, 1, &inner, &nullable) ||
		    !punct(ps, ')'))
			return 0;
		emit(ps, ")");
	} else if (strcmp(word, "MAP") == 0) {
		*kind = DATABEND_TYPE_MAP;
		emit(ps, "MAP(");
		if (!punct(ps, '(') || !parse_type(ps, depth + 1, 1, &inner, &nullable))
			return 0;
		if (nullable || !(map_keys & DATABEND_TYPE_BIT(inner)))
			return 0;
		emit(ps, ", ");
		if (!punct(ps, ',') || !parse_type(ps, depth + 1, 1, &inner, &nullable) ||
		    !punct(ps, ')'))
			return 0;
		emit(ps, ")");
	} else if (strcmp(word, "TUPLE") == 0) {
		*kind = DATABEND_TYPE_TUPLE;
		if (!punct(ps, '(') || !parse_tuple(ps, depth))
			return 0;
	} else if (strcmp(word, "NULLABLE") == 0) {
		/* NULLABLE(T) is T made nullable, whatever T said: the caller emits " NULL". */
		*wrapped = 1;
		if (!punct(ps, '(') || !parse_type(ps, depth + 1, 0, kind, &nullable) ||
		    !punct(ps, ')'))
			return 0;
	} else if ((s = find_scalar(word)) != NULL) {
		if (!parse_scalar(ps, s, kind))
			return 0;
	} else {
		return 0;
	}
	ps->kinds |= DATABEND_TYPE_BIT(*kind);
	return 1;
}

/* A type and its optional NULL / NOT NULL; " NULL" is emitted only when emit_null. */
static int parse_type(struct parser *ps, int depth, int emit_null, enum databend_type_kind *kind,
		      int *nullable)
{
	int wrapped;

	if (depth > DATABEND_TYPE_MAX_DEPTH)
		return 0;
	if (!parse_base(ps, depth, kind, &wrapped))
		return 0;
	*nullable = wrapped;
	if (keyword(ps, "NULL")) {
		*nullable = 1;
	} else if (keyword(ps, "NOT")) {
		/* Databend calls NULLABLE(T) NOT NULL ambiguous and refuses it. */
		if (!keyword(ps, "NULL") || wrapped)
			return 0;
	}
	if (*nullable && emit_null)
		emit(ps, " NULL");
	return 1;
}

int databend_type_parse(const char *s, char *canonical, size_t size, uint32_t *kinds)
{
	struct parser ps = {.p = s, .out = canonical, .size = size};
	enum databend_type_kind kind;
	int nullable;

	if (!s || strnlen(s, DATABEND_TYPE_MAX_BYTES + 1) > DATABEND_TYPE_MAX_BYTES)
		return -EINVAL;
	if (canonical) {
		if (size == 0)
			return -ENOSPC;
		canonical[0] = '\0';
	}
	if (!parse_type(&ps, 1, 1, &kind, &nullable))
		return -EINVAL;
	while (is_space(*ps.p))
		ps.p++;
	if (*ps.p != '\0')
		return -EINVAL;
	if (ps.overflow)
		return -ENOSPC;
	if (kinds)
		*kinds = ps.kinds;
	return 0;
}

int databend_type_valid(const char *s)
{
	return databend_type_parse(s, NULL, 0, NULL) == 0;
}

const char *databend_type_kind_name(enum databend_type_kind kind)
{
	if ((unsigned)kind >= DATABEND_TYPE_KIND_COUNT)
		return "?";
	return kind_names[kind];
}
