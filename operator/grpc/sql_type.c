#include "grpc/sql_type.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

struct cursor {
	const char *p;
	int depth;
};

static void skip_ws(struct cursor *c)
{
	while (*c->p == ' ' || *c->p == '\t')
		c->p++;
}

/* Consumes the keyword (case-insensitive) when it is a whole word here. */
static int word(struct cursor *c, const char *kw)
{
	size_t n = strlen(kw);
	if (strncasecmp(c->p, kw, n) != 0)
		return 0;
	char next = c->p[n];
	if (isalnum((unsigned char)next) || next == '_')
		return 0;
	c->p += n;
	return 1;
}

static int punct(struct cursor *c, char ch)
{
	skip_ws(c);
	if (*c->p != ch)
		return 0;
	c->p++;
	skip_ws(c);
	return 1;
}

static int number(struct cursor *c, long max, long *out)
{
	long v = 0;
	int digits = 0;
	while (isdigit((unsigned char)*c->p)) {
		v = v * 10 + (*c->p - '0');
		if (v > max)
			return 0;
		c->p++;
		digits++;
	}
	*out = v;
	return digits > 0;
}

static int type(struct cursor *c);

/* A type optionally followed by NULL or NOT NULL. */
static int nullable_type(struct cursor *c)
{
	if (!type(c))
		return 0;
	const char *save = c->p;
	skip_ws(c);
	if (word(c, "NULL"))
		return 1;
	if (word(c, "NOT")) {
		skip_ws(c);
		if (word(c, "NULL"))
			return 1;
		return 0;
	}
	c->p = save;
	return 1;
}

static int type(struct cursor *c)
{
	static const char *const simple[] = {
	    "BOOLEAN", "BOOL",	  "TINYINT",  "SMALLINT", "INTEGER",   "INT",	    "BIGINT",
	    "UINT8",   "UINT16",  "UINT32",   "UINT64",	  "INT8",      "INT16",	    "INT32",
	    "INT64",   "FLOAT32", "FLOAT64",  "FLOAT",	  "DOUBLE",    "REAL",	    "VARCHAR",
	    "STRING",  "TEXT",	  "BINARY",   "BLOB",	  "DATE",      "TIMESTAMP", "DATETIME",
	    "VARIANT", "JSON",	  "INTERVAL", "GEOMETRY", "GEOGRAPHY", "BITMAP",
	};
	long n, s;

	if (++c->depth > SQL_TYPE_MAX_DEPTH)
		return 0;
	skip_ws(c);
	int ok = 0;
	if (word(c, "DECIMAL") || word(c, "NUMERIC")) {
		ok = punct(c, '(') && number(c, 76, &n) && n >= 1 && punct(c, ',') &&
		     number(c, 76, &s) && s <= n && punct(c, ')');
	} else if (word(c, "ARRAY")) {
		ok = punct(c, '(') && nullable_type(c) && punct(c, ')');
	} else if (word(c, "MAP")) {
		ok = punct(c, '(') && nullable_type(c) && punct(c, ',') && nullable_type(c) &&
		     punct(c, ')');
	} else if (word(c, "TUPLE")) {
		ok = punct(c, '(') && nullable_type(c);
		while (ok && punct(c, ','))
			ok = nullable_type(c);
		ok = ok && punct(c, ')');
	} else if (word(c, "VECTOR")) {
		ok = punct(c, '(') && number(c, 65535, &n) && n >= 1 && punct(c, ')');
	} else {
		for (size_t i = 0; i < sizeof(simple) / sizeof(simple[0]) && !ok; i++)
			ok = word(c, simple[i]);
	}
	c->depth--;
	return ok;
}

int sql_type_valid(const char *s)
{
	if (!s || strlen(s) > SQL_TYPE_MAX_BYTES)
		return 0;
	struct cursor c = {s, 0};
	if (!nullable_type(&c))
		return 0;
	skip_ws(&c);
	return *c.p == '\0';
}
