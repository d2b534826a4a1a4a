"""The structured-form UDF server that udf-worker runs in each Python process.

udf-worker writes a config file (handler, types, tenant, ports, directories) and starts
this module once per server process, either fresh (`python udf_stub.py --config F --slot N`)
or forked from the warm zygote (zygote.py calls main()). It:

- puts the import directory, each .zip/.whl/.egg in it and the per-function package target on
  sys.path, and sets sys._xoptions["databend_import_directory"];
- loads the UDF code as module `udf` and registers its handler with databend-udf's UDFServer;
- reads Databend's type strings itself: a bare type is NOT NULL, `T NULL` is nullable
  (databend-udf reads a bare type as nullable, which makes the reply's schema disagree with
  what the query node declared); udf-worker has already checked the spec's types and writes
  them in the canonical spelling of common/databend_type.h, so every alias Databend accepts
  reaches this parser as one of the names it knows;
- evaluates a call's rows in a tight loop on the call's own thread, checking cancellation
  every CHUNK_ROWS rows (databend-udf's row path costs ~80 us per row: a thread-pool future
  and a cancellation check per row);
- rejects every Flight call with another tenant (`x-databend-tenant`; the token was checked
  by udf-worker's proxy before the connection reached us), and counts calls in the worker's
  shared stats file;
- tells the worker "ready" (or "failed STEP REASON") on the file descriptor
  UDF_WORKER_READY_FD.

The helpers here (types, auth middleware, stats, the fast scalar function) are shared with the
script form's sitecustomize hook.
"""

import hmac
import json
import mmap
import os
import struct
import sys
import threading
import time
import traceback

CHUNK_ROWS = 8192
# Wall-clock marks of this process's start (time.time()), printed once it listens: "request"
# and "forked" come from the zygote (when it got the fork request, when the server process
# began), the rest from serve(). hack/bench/worker_bench.py reads the line.
STARTUP = {}
STATS_SLOT_SIZE = 32
_STATS_FORMAT = "<Qdd"


# ---- talking to the worker ---------------------------------------------------------------


def report(line):
    """Sends one line to the worker's ready pipe (no-op outside the worker)."""
    fd = os.environ.get("UDF_WORKER_READY_FD")
    if not fd:
        return
    try:
        os.write(int(fd), (line.replace("\n", " ") + "\n").encode("utf-8", "replace"))
    except OSError:
        pass


def exception_line(exc):
    """The last line of a Python exception, as a SQL user would want to read it."""
    lines = traceback.format_exception_only(type(exc), exc)
    return lines[-1].strip() if lines else repr(exc)


def load_config(path=None):
    path = path or os.environ.get("UDF_WORKER_CONFIG")
    if not path:
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f)


class Stats:
    """This process's slot in the worker's shared stats file: calls, first and last time."""

    def __init__(self, path, slot):
        self._lock = threading.Lock()
        self._map = None
        self._off = slot * STATS_SLOT_SIZE
        try:
            fd = os.open(path, os.O_RDWR)
            try:
                self._map = mmap.mmap(fd, 0)
            finally:
                os.close(fd)
        except (OSError, ValueError):
            self._map = None

    def record(self):
        if self._map is None:
            return
        now = time.time()
        with self._lock:
            count, first, _ = struct.unpack_from(_STATS_FORMAT, self._map, self._off)
            struct.pack_into(_STATS_FORMAT, self._map, self._off, count + 1, first or now, now)


def _header(headers, name):
    values = headers.get(name)
    if not values:
        return None
    value = values[0] if isinstance(values, (list, tuple)) else values
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return value


def make_auth_middleware(token, tenant, stats=None):
    """A Flight middleware factory that admits only calls with the tenant (and the token, when
    given: udf-worker's proxy checks the token before a connection reaches us, and keeps it
    from this process, so the worker passes None)."""
    import pyarrow.flight as flight

    token_b = token.encode("utf-8") if token is not None else None

    class _Auth(flight.ServerMiddlewareFactory):
        def start_call(self, info, headers):
            got = _header(headers, "x-authorization")
            if token_b is not None and (
                    got is None or not hmac.compare_digest(got.encode("utf-8"), token_b)):
                raise flight.FlightUnauthenticatedError(
                    "missing or wrong x-authorization token for this function"
                )
            got_tenant = _header(headers, "x-databend-tenant")
            if got_tenant != tenant:
                raise flight.FlightUnauthenticatedError(
                    "x-databend-tenant does not match this function's tenant"
                )
            if stats is not None and info.method == flight.FlightMethod.DO_EXCHANGE:
                stats.record()
            return None

    return _Auth()


# ---- Databend type strings -------------------------------------------------------------------


class _TypeParser:
    """Recursive descent over Databend's SQL type names, to the Arrow types databend-udf uses."""

    SCALARS = {
        "BOOLEAN": "bool_",
        "BOOL": "bool_",
        "TINYINT": "int8",
        "INT8": "int8",
        "SMALLINT": "int16",
        "INT16": "int16",
        "INT": "int32",
        "INTEGER": "int32",
        "INT32": "int32",
        "BIGINT": "int64",
        "INT64": "int64",
        "UINT8": "uint8",
        "UINT16": "uint16",
        "UINT32": "uint32",
        "UINT64": "uint64",
        "FLOAT": "float32",
        "FLOAT32": "float32",
        "DOUBLE": "float64",
        "FLOAT64": "float64",
        "DATE": "date32",
        "VARCHAR": "large_utf8",
        "STRING": "large_utf8",
        "TEXT": "large_utf8",
        "CHAR": "large_utf8",
        "BINARY": "large_binary",
    }
    UNSIGNED = {"TINYINT": "uint8", "SMALLINT": "uint16", "INT": "uint32", "INTEGER": "uint32",
                "BIGINT": "uint64"}

    def __init__(self, text):
        self.s = text
        self.i = 0

    def _ws(self):
        while self.i < len(self.s) and self.s[self.i].isspace():
            self.i += 1

    def _word(self):
        self._ws()
        j = self.i
        while j < len(self.s) and (self.s[j].isalnum() or self.s[j] == "_"):
            j += 1
        return self.s[self.i:j].upper(), j

    def _take_word(self, word):
        got, j = self._word()
        if got == word:
            self.i = j
            return True
        return False

    def _expect(self, ch):
        self._ws()
        if self.i >= len(self.s) or self.s[self.i] != ch:
            raise ValueError(f"unknown type {self.s!r}: expected {ch!r} at {self.i}")
        self.i += 1

    def _peek(self, ch):
        self._ws()
        return self.i < len(self.s) and self.s[self.i] == ch

    def _int(self):
        word, j = self._word()
        if not word.isdigit():
            raise ValueError(f"unknown type {self.s!r}: expected a number at {self.i}")
        self.i = j
        return int(word)

    def field(self, default_nullable):
        """A type with an optional NULL / NOT NULL suffix."""
        import pyarrow as pa

        f = self._base()
        nullable = default_nullable
        save = self.i
        if self._take_word("NOT"):
            if not self._take_word("NULL"):
                raise ValueError(f"unknown type {self.s!r}: NOT without NULL")
            nullable = False
        else:
            self.i = save
            if self._take_word("NULL"):
                nullable = True
        return pa.field("", f.type, nullable, metadata=f.metadata)

    def _base(self):
        import pyarrow as pa
        from databend_udf.udf import (ARROW_EXT_TYPE_VARIANT, ARROW_EXT_TYPE_VECTOR,
                                      EXTENSION_KEY, TIMESTAMP_UINT)

        word, j = self._word()
        if not word:
            raise ValueError(f"unknown type {self.s!r}")
        self.i = j
        if word in ("TIMESTAMP", "DATETIME"):
            return pa.field("", pa.timestamp(TIMESTAMP_UINT), False)
        if word in ("VARIANT", "JSON"):
            return pa.field("", pa.large_binary(), False,
                            metadata={EXTENSION_KEY: ARROW_EXT_TYPE_VARIANT})
        if word == "DECIMAL":
            self._expect("(")
            precision = self._int()
            self._expect(",")
            scale = self._int()
            self._expect(")")
            if not 1 <= precision <= 76 or scale > precision:
                raise ValueError(f"unknown type {self.s!r}: bad DECIMAL precision or scale")
            t = pa.decimal128(precision, scale) if precision < 38 else pa.decimal256(
                precision, scale)
            return pa.field("", t, False)
        if word == "ARRAY":
            self._expect("(")
            inner = self.field(False)
            self._expect(")")
            return pa.field("", pa.list_(inner.with_name("item")), False)
        if word == "MAP":
            self._expect("(")
            key = self.field(False)
            self._expect(",")
            value = self.field(False)
            self._expect(")")
            return pa.field("", pa.map_(key.with_name("key"), value.with_name("value")), False)
        if word == "TUPLE":
            self._expect("(")
            fields = [self.field(False)]
            while self._peek(","):
                self._expect(",")
                fields.append(self.field(False))
            self._expect(")")
            return pa.field("", pa.struct(fields), False)
        if word == "VECTOR":
            self._expect("(")
            dim = self._int()
            self._expect(")")
            return pa.field(
                "",
                pa.list_(pa.field("item", pa.float32(), nullable=True), list_size=dim),
                False,
                metadata={EXTENSION_KEY: ARROW_EXT_TYPE_VECTOR, b"vector_size": str(dim).encode()},
            )
        if word in self.UNSIGNED:
            save = self.i
            if self._take_word("UNSIGNED"):
                return pa.field("", getattr(pa, self.UNSIGNED[word])(), False)
            self.i = save
        if word in self.SCALARS:
            return pa.field("", getattr(pa, self.SCALARS[word])(), False)
        raise ValueError(f"unknown type {self.s!r}")


def parse_type(text):
    """Databend's reading of a type string: bare means NOT NULL, `T NULL` means nullable."""
    p = _TypeParser(text)
    f = p.field(False)
    p._ws()
    if p.i != len(p.s):
        raise ValueError(f"unknown type {text!r}: trailing {p.s[p.i:]!r}")
    return f


def not_null_spelling(text):
    """`INT` -> `INT NOT NULL` for databend-udf; anything ending in NULL stays as it is."""
    if not isinstance(text, str):
        return text
    if text.strip().upper().endswith("NULL"):
        return text
    return text.strip() + " NOT NULL"


# ---- the fast scalar function ---------------------------------------------------------------


def _headers_param(func):
    import inspect

    try:
        params = list(inspect.signature(func).parameters)
    except (TypeError, ValueError):
        return False
    return bool(params) and params[-1] == "headers"


def install_fast_eval(udf_obj):
    """Replaces a databend-udf ScalarFunction's row path with a tight loop (same results).

    Kept for: batch mode, skip_null, stage parameters, concurrency limits (their semantics
    stay databend-udf's own). Returns True when the fast path was installed.
    """
    from databend_udf.udf import ScalarFunction

    if not isinstance(udf_obj, ScalarFunction):
        return False
    if (udf_obj._batch_mode or udf_obj._skip_null or udf_obj._stage_ref_names
            or udf_obj._semaphore is not None):
        return False
    evaluator = _FastEval(udf_obj._func, udf_obj._input_schema, udf_obj._result_schema,
                          udf_obj._headers_param is not None, udf_obj._name)
    udf_obj.eval_batch = evaluator.eval_batch
    if udf_obj._executor is not None:
        udf_obj._executor.shutdown(wait=False)
        udf_obj._executor = None
    return True


class _FastEval:
    def __init__(self, func, input_schema, result_schema, pass_headers, name):
        from databend_udf.udf import _input_process_func, _list_field, _output_process_func

        self._func = func
        self._name = name
        self._pass_headers = pass_headers
        self._nargs = len(input_schema)
        self._result_schema = result_schema
        self._result_type = result_schema.types[0]
        self._result_nullable = result_schema.field(0).nullable
        self._in_procs = []
        for field in input_schema:
            proc = _input_process_func(_list_field(field))
            self._in_procs.append(None if _is_identity(field) else proc)
        self._out_proc = None if _is_identity(result_schema.field(0)) else _output_process_func(
            _list_field(result_schema.field(0)))

    def eval_batch(self, batch, headers=None):
        import pyarrow as pa
        from databend_udf.udf import Headers, QueryCancelledError

        if headers is not None and not isinstance(headers, Headers):
            headers = Headers(headers)
        state = headers.query_state if headers is not None else None
        if state is not None and state.is_cancelled():
            raise QueryCancelledError("Query cancelled")
        n = batch.num_rows
        cols = []
        for i in range(self._nargs):
            values = batch.column(i).to_pylist()
            proc = self._in_procs[i]
            cols.append(proc(values) if proc is not None else values)
        f = self._func
        if self._pass_headers:
            func = self._func

            def f(*args):
                return func(*args, headers)

        out = []
        for start in range(0, n, CHUNK_ROWS):
            if start and state is not None and state.is_cancelled():
                raise QueryCancelledError("Query cancelled")
            stop = min(n, start + CHUNK_ROWS)
            if self._nargs == 0:
                out.extend([f() for _ in range(stop - start)])
            elif self._nargs == 1:
                out.extend(map(f, cols[0][start:stop] if (start or stop < n) else cols[0]))
            else:
                out.extend(map(f, *[c[start:stop] for c in cols]))
        if self._out_proc is not None:
            out = self._out_proc(out)
        array = pa.array(out, type=self._result_type)
        if not self._result_nullable and array.null_count:
            raise ValueError(
                f"function {self._name} returned NULL, but its result type is NOT NULL")
        yield pa.RecordBatch.from_arrays([array], schema=self._result_schema)


def _is_identity(field):
    """True when databend-udf's per-value conversion does nothing for this field."""
    import pyarrow as pa
    from databend_udf.udf import _field_is_variant

    t = field.type
    if pa.types.is_list(t) or pa.types.is_fixed_size_list(t) or pa.types.is_struct(t):
        return False
    if pa.types.is_map(t):
        return False
    if pa.types.is_large_binary(t) and _field_is_variant(field):
        return False
    return True


def build_function(func, name, input_types, result_type):
    """A databend-udf ScalarFunction for func with the spec's types read the Databend way."""
    from databend_udf.udf import ScalarFunction, UserDefinedFunction

    if isinstance(func, UserDefinedFunction):
        # The code decorated the handler itself; the spec's types still rule the wire.
        func = getattr(func, "_func", func)
    if not callable(func):
        raise TypeError(f"{name} is not a function")
    in_fields = [parse_type(t) for t in input_types]
    result = parse_type(result_type)
    fn = ScalarFunction(func, [f.type for f in in_fields], result.type, name=name,
                        io_threads=None)
    # Replace the schemas databend-udf derived with ours (nullability and metadata).
    import pyarrow as pa

    fn._input_schema = pa.schema(
        [f.with_name(arg) for f, arg in zip(in_fields, fn._data_arg_names)])
    fn._result_schema = pa.schema([result.with_name("output")])
    install_fast_eval(fn)
    return fn


# ---- the server process ----------------------------------------------------------------------


def setup_paths(config):
    import_dir = config.get("import_dir")
    packages_dir = config.get("packages_dir")
    if packages_dir and os.path.isdir(packages_dir):
        sys.path.insert(0, packages_dir)
    if import_dir:
        sys._xoptions["databend_import_directory"] = import_dir
        if os.path.isdir(import_dir):
            sys.path.insert(0, import_dir)
            for name in sorted(os.listdir(import_dir)):
                path = os.path.join(import_dir, name)
                if os.path.isfile(path) and os.path.splitext(name)[1].lower() in (
                        ".zip", ".whl", ".egg"):
                    sys.path.insert(0, path)


def load_code(path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("udf", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["udf"] = module
    spec.loader.exec_module(module)
    return module


_arenas_kept = False


def keep_arenas():
    """Hands pymalloc's arenas to libudf-preload.so's cache (worker/preload.c says why: under
    gVisor every page of a fresh arena is a page fault through the sentry). True when done; a
    Python run without the preloaded library (python udf_stub.py by hand) keeps pymalloc's
    own arenas."""
    global _arenas_kept
    if _arenas_kept:
        return True
    import ctypes

    try:
        everything = ctypes.CDLL(None)
        alloc, free = everything.udf_arena_alloc, everything.udf_arena_free
        set_allocator = ctypes.pythonapi.PyObject_SetArenaAllocator
    except AttributeError:
        return False

    class ArenaAllocator(ctypes.Structure):  # PyObjectArenaAllocator
        _fields_ = [("ctx", ctypes.c_void_p), ("alloc", ctypes.c_void_p),
                    ("free", ctypes.c_void_p)]

    allocator = ArenaAllocator(None, ctypes.cast(alloc, ctypes.c_void_p),
                               ctypes.cast(free, ctypes.c_void_p))
    set_allocator.argtypes = [ctypes.c_void_p]
    set_allocator.restype = None
    set_allocator(ctypes.byref(allocator))  # Python copies the struct
    _arenas_kept = True
    return True


def flight_location(config, slot):
    ports = config.get("backend_ports") or []
    if slot < len(ports) and ports[slot]:
        return f"127.0.0.1:{ports[slot]}"
    return f"0.0.0.0:{config['flight_port']}"


def warm_up():
    """Runs, in a spare server process while the pod idles, what every server's start runs:
    gRPC's first server (its global state and threads) and a function's setup. Under gVisor
    this is where a forked process pays its page faults (each first write to a page the
    zygote shares is a copy made by the sentry), 20-30 ms that would otherwise sit between
    specialize and the first answer. Failures are ignored: the real start reports them."""
    try:
        import pyarrow.flight as flight

        server = flight.FlightServerBase("grpc://127.0.0.1:0")
        server.shutdown()
        build_function(lambda x: x, "warm_up", ["INT"], "INT")
        parse_type("STRING NULL")
    except Exception:  # noqa: BLE001
        pass


def _startup_line():
    t0 = STARTUP.get("request") or STARTUP.get("start")
    marks = " ".join(f"{k}=+{1000 * (v - t0):.1f}" for k, v in STARTUP.items()
                     if k not in ("request", "start"))
    return f"udf_stub: startup ms t0={t0:.6f} {marks}"


def serve(config, slot):
    step = "load"
    STARTUP.setdefault("start", time.time())
    keep_arenas()
    try:
        setup_paths(config)
        module = load_code(config["code_path"])
        STARTUP["code_loaded"] = time.time()
        handler = config["handler"]
        if not hasattr(module, handler):
            raise AttributeError(f"the code defines no function named {handler!r}")
        fn = build_function(getattr(module, handler), handler, config["input_types"],
                            config["result_type"])
        step = "serve"
        from databend_udf import UDFServer

        stats = Stats(config["stats_path"], slot)
        server = UDFServer(
            location=flight_location(config, slot),
            middleware={"udf_worker_auth": make_auth_middleware(config.get("token"),
                                                                config["tenant"], stats)},
        )
        server.add_function(fn)
        STARTUP["listening"] = time.time()
    except BaseException as exc:  # noqa: BLE001 - every failure is reported to the worker
        report(f"failed {step} {exception_line(exc)}")
        traceback.print_exc()
        return 1

    def _term(signum, frame):
        threading.Thread(target=server.shutdown, daemon=True).start()

    import signal

    signal.signal(signal.SIGTERM, _term)
    report("ready")
    print(_startup_line(), file=sys.stderr, flush=True)
    server.serve()
    return 0


def install_packages(target, requirements):
    """pip-installs the requirements that are not importable already into target."""
    import subprocess

    try:
        from importlib.metadata import PackageNotFoundError, version

        from pip._vendor.packaging.requirements import Requirement
    except ImportError:  # no pip in this Python: let pip's absence speak below
        Requirement = None
    missing = []
    for text in requirements:
        if Requirement is not None:
            try:
                req = Requirement(text)
                if req.url is None and req.specifier.contains(version(req.name),
                                                              prereleases=True):
                    print(f"{text}: already installed ({version(req.name)})")
                    continue
            except PackageNotFoundError:
                pass
            except Exception:  # noqa: BLE001 - an odd requirement string: let pip judge it
                pass
        missing.append(text)
    if not missing:
        return 0
    cmd = [sys.executable, "-m", "pip", "install", "--no-cache-dir", "--disable-pip-version-check",
           "--no-input", "--target", target, *missing]
    print("running:", " ".join(cmd), flush=True)
    return subprocess.call(cmd)


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "install-packages":
        return install_packages(argv[1], argv[2:])
    config_path = None
    slot = 0
    while argv:
        arg = argv.pop(0)
        if arg == "--config" and argv:
            config_path = argv.pop(0)
        elif arg == "--slot" and argv:
            slot = int(argv.pop(0))
        else:
            print(f"udf_stub: unexpected argument {arg!r}", file=sys.stderr)
            return 2
    config = load_config(config_path)
    if config is None:
        print("udf_stub: no --config", file=sys.stderr)
        return 2
    return serve(config, slot)


if __name__ == "__main__":
    sys.exit(main())
