"""udf-worker's hook for the script form, loaded by every Python the script starts.

Databend's script brings its own server stub, which builds databend-udf's UDFServer itself.
When databend_udf.udf is imported, this hook patches it so that:

- every Flight call must carry the function's tenant (`x-databend-tenant`), or fails with
  UNAUTHENTICATED (the token is checked by udf-worker's proxy, which every connection passes);
- the types the stub (code in `__main__`) passes to `udf(...)` are read the Databend way: a
  bare type is NOT NULL. A `@udf(...)` in the user's own code keeps databend-udf's meaning;
- the stub's scalar function evaluates rows in a tight loop instead of one thread-pool future
  per row;
- UDFServer.serve() tells udf-worker "ready" with the command line, so the worker can start
  more processes the same way;
- pymalloc's arenas are kept for reuse (udf_stub.keep_arenas), in every Python it starts.

Nothing happens unless UDF_WORKER_CONFIG is set (udf-worker sets it). An existing
sitecustomize further down sys.path still runs.
"""

import importlib.abc
import importlib.util
import os
import sys


def _chain_next_sitecustomize():
    here = os.path.dirname(os.path.abspath(__file__))
    for entry in sys.path:
        if not entry or os.path.abspath(entry) == here:
            continue
        candidate = os.path.join(entry, "sitecustomize.py")
        if os.path.isfile(candidate):
            spec = importlib.util.spec_from_file_location("_udf_worker_next_sitecustomize",
                                                          candidate)
            try:
                spec.loader.exec_module(importlib.util.module_from_spec(spec))
            except Exception:  # noqa: BLE001 - the image's hook is not ours to break on
                pass
            return


def _caller_is_main(depth):
    frame = sys._getframe(depth)
    return frame is not None and frame.f_globals.get("__name__") == "__main__"


def _patch(mod):
    import json

    import udf_stub

    config = udf_stub.load_config()
    slot = int(os.environ.get("UDF_WORKER_SLOT", "0"))
    original_udf = mod.udf

    def udf(*args, **kwargs):
        if _caller_is_main(2):
            if "input_types" in kwargs:
                t = kwargs["input_types"]
                kwargs["input_types"] = ([udf_stub.not_null_spelling(x) for x in t]
                                         if isinstance(t, (list, tuple))
                                         else udf_stub.not_null_spelling(t))
            elif args:
                t = args[0]
                args = (([udf_stub.not_null_spelling(x) for x in t] if isinstance(
                    t, (list, tuple)) else udf_stub.not_null_spelling(t)),) + args[1:]
            if "result_type" in kwargs:
                kwargs["result_type"] = udf_stub.not_null_spelling(kwargs["result_type"])
            elif len(args) > 1:
                args = (args[0], udf_stub.not_null_spelling(args[1])) + args[2:]
            kwargs["io_threads"] = None
            decorator = original_udf(*args, **kwargs)

            def wrap(f):
                fn = decorator(f)
                udf_stub.install_fast_eval(fn)
                return fn

            return wrap
        return original_udf(*args, **kwargs)

    udf.__doc__ = original_udf.__doc__
    mod.udf = udf

    server_cls = mod.UDFServer
    original_init = server_cls.__init__
    original_serve = server_cls.serve

    def __init__(self, *args, **kwargs):
        middleware = dict(kwargs.pop("middleware", {}) or {})
        stats = udf_stub.Stats(config["stats_path"], slot)
        middleware["udf_worker_auth"] = udf_stub.make_auth_middleware(
            config.get("token"), config["tenant"], stats)
        kwargs["middleware"] = middleware
        original_init(self, *args, **kwargs)

    def serve(self, *args, **kwargs):
        argv = [sys.executable, *sys.orig_argv[1:]] if hasattr(sys, "orig_argv") else [
            sys.executable, *sys.argv]
        udf_stub.report("ready " + json.dumps(argv))
        return original_serve(self, *args, **kwargs)

    server_cls.__init__ = __init__
    server_cls.serve = serve


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name != "databend_udf.udf":
            return None
        sys.meta_path.remove(self)
        try:
            spec = importlib.util.find_spec(name)
        finally:
            pass
        if spec is None or spec.loader is None:
            return spec
        loader = spec.loader
        original_exec = loader.exec_module

        def exec_module(module):
            original_exec(module)
            try:
                _patch(module)
            except Exception as exc:  # noqa: BLE001
                import udf_stub

                udf_stub.report(f"failed serve udf-worker hook: {udf_stub.exception_line(exc)}")
                raise

        loader.exec_module = exec_module
        return spec


if os.environ.get("UDF_WORKER_CONFIG"):
    sys.meta_path.insert(0, _Finder())
    try:
        import udf_stub

        udf_stub.keep_arenas()
    except Exception:  # noqa: BLE001 - a speed-up, never a reason for the script to fail
        pass
_chain_next_sitecustomize()
