/*
 * grpc/sql_type: checks the Databend SQL type strings query nodes send for UDF arguments and
 * results (PROTOCOL.md section 3): "INT NULL", "DECIMAL(38, 10)", "ARRAY(INT NULL) NULL",
 * "MAP(VARCHAR, INT NULL)", "TUPLE(INT, VARCHAR)", "VECTOR(128)". Case-insensitive, nesting
 * at most 32 deep, at most 4096 bytes. Pure, thread-safe.
 */
#ifndef UDF_GRPC_SQL_TYPE_H
#define UDF_GRPC_SQL_TYPE_H

#define SQL_TYPE_MAX_BYTES 4096
#define SQL_TYPE_MAX_DEPTH 32

/* 1 when s is a type a UDF can declare, else 0. */
int sql_type_valid(const char *s);

#endif
