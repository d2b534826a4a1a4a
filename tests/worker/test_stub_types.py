"""The stub's reading of Databend type strings: the same Arrow types databend-udf builds, with
Databend's nullability (bare = NOT NULL, `T NULL` = nullable), nested types that databend-udf's
comma splitting cannot read, and clear errors for unknown types."""

import os
import sys

sys.path.insert(0, os.path.join(os.environ.get("UDF_SOURCE_DIR", "."), "worker", "python"))

import pyarrow as pa  # noqa: E402
from databend_udf.udf import _to_arrow_field  # noqa: E402

import udf_stub  # noqa: E402

failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)


def main():
    same_as_databend_udf = [
        "INT", "INT NULL", "BIGINT", "UINT64", "TINYINT UNSIGNED", "FLOAT NULL", "DOUBLE",
        "BOOLEAN NULL", "VARCHAR", "VARCHAR NULL", "BINARY", "DATE NULL", "TIMESTAMP NULL",
        "DECIMAL(10, 2) NULL", "DECIMAL(38, 4)", "VARIANT NULL", "ARRAY(INT32) NULL",
        "ARRAY(INT32 NULL)", "MAP(VARCHAR, INT)", "TUPLE(INT, VARCHAR NULL)", "VECTOR(16)",
    ]
    for t in same_as_databend_udf:
        ours = udf_stub.parse_type(t)
        theirs = _to_arrow_field(udf_stub.not_null_spelling(t))
        check(ours.type == theirs.type and ours.nullable == theirs.nullable and
              ours.metadata == theirs.metadata, f"{t}: {ours.type} nullable={ours.nullable}")
    check(udf_stub.parse_type("INT").nullable is False, "bare INT is NOT NULL")
    check(udf_stub.parse_type("INT NOT NULL").nullable is False, "INT NOT NULL")
    nested = udf_stub.parse_type("MAP(VARCHAR, DECIMAL(10, 2) NULL) NULL")
    check(nested.nullable and pa.types.is_map(nested.type) and
          nested.type.item_type == pa.decimal128(10, 2),
          f"nested commas: {nested.type}")
    tup = udf_stub.parse_type("TUPLE(ARRAY(INT), MAP(INT, VARCHAR))")
    check(pa.types.is_struct(tup.type) and tup.type.num_fields == 2, f"tuple: {tup.type}")
    for bad in ("WIBBLE", "INT NOT", "DECIMAL(10)", "ARRAY(INT", "INT extra"):
        try:
            udf_stub.parse_type(bad)
            check(False, f"{bad!r} accepted")
        except ValueError as e:
            check("unknown type" in str(e), f"{bad!r} -> {e}")
    check(udf_stub.not_null_spelling("INT") == "INT NOT NULL", "INT -> INT NOT NULL")
    check(udf_stub.not_null_spelling("INT NULL") == "INT NULL", "INT NULL kept")
    if failures:
        print(f"{len(failures)} failure(s)")
        return 1
    print("all passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
