"""Python gRPC stubs generated from proto/ with grpcio-tools, once per build tree.

    from stubs import load
    health_pb2, health_pb2_grpc = load("health")
"""

import importlib
import os
import sys

SOURCE_DIR = os.environ.get(
    "UDF_SOURCE_DIR", os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
)
BUILD_DIR = os.environ.get("UDF_BUILD_DIR", os.path.join(SOURCE_DIR, "build"))
OUT_DIR = os.path.join(BUILD_DIR, "gen", "python")


def _generate():
    from grpc_tools import protoc  # imported late: only needed when generating
    import fcntl

    os.makedirs(OUT_DIR, exist_ok=True)
    proto_dir = os.path.join(SOURCE_DIR, "proto")
    with open(os.path.join(OUT_DIR, ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        for name in sorted(os.listdir(proto_dir)):
            if not name.endswith(".proto"):
                continue
            src = os.path.join(proto_dir, name)
            out = os.path.join(OUT_DIR, name[:-6] + "_pb2_grpc.py")
            if os.path.exists(out) and os.path.getmtime(out) >= os.path.getmtime(src):
                continue
            rc = protoc.main(["protoc", f"-I{proto_dir}", f"--python_out={OUT_DIR}",
                              f"--grpc_python_out={OUT_DIR}", src])
            if rc != 0:
                raise RuntimeError(f"grpc_tools.protoc failed on {src}")


def load(name):
    """Returns (messages module, grpc module) for proto/<name>.proto."""
    _generate()
    if OUT_DIR not in sys.path:
        sys.path.insert(0, OUT_DIR)
    return importlib.import_module(f"{name}_pb2"), importlib.import_module(f"{name}_pb2_grpc")
