"""Helpers for the UdfFunction controller's tests, on top of poollib: the real operator
reconciling only this run's pools and the functions of this run's namespaces
(--function-namespace-selector), namespaces labelled for it, waits on a function's
conditions, its token from its Secret, and Arrow Flight calls as a Databend query node makes
them."""

import base64
import json
import os
import sys
import time

import pyarrow as pa
import pyarrow.flight as flight

import poollib as pl
from udfop import wait_for

RUN_SELECTOR = f"{pl.POOL_LABEL}={pl.RUN_ID}"


class Namespace(pl.Namespace):
    """A namespace of this run (its functions are reconciled by this run's operator)."""

    def __init__(self, prefix, labels=None, annotations=None):
        super().__init__(prefix)
        self.labels = dict(labels or {})
        self.labels[pl.POOL_LABEL] = pl.RUN_ID
        self.annotations = annotations or {}

    def __enter__(self):
        super().__enter__()
        pl.k("label", "namespace", self.name, "--overwrite",
             *[f"{k}={v}" for k, v in self.labels.items()])
        if self.annotations:
            pl.k("annotate", "namespace", self.name, "--overwrite",
                 *[f"{k}={v}" for k, v in self.annotations.items()])
        return self


def operator(kubeconfig, *extra):
    """poollib's operator: this run's pools, and the functions of this run's namespaces."""
    return pl.operator(kubeconfig, *extra)


def function(ns, name):
    return pl.kjson("-n", ns, "get", "udffunction", name)


def cond(fn, ctype):
    return pl.condition(fn, ctype)


def wait_function(ns, name, timeout, pred=None, what=None):
    """Waits until pred(fn) (default: Ready=True for the current generation); returns fn."""
    def is_ready(fn):
        st = fn.get("status", {})
        return (cond(fn, "Ready").get("status") == "True"
                and st.get("observedGeneration") == fn["metadata"]["generation"])
    pred = pred or is_ready

    def done():
        fn = function(ns, name)
        return (fn,) if pred(fn) else None
    return wait_for(done, timeout, interval=0.2, what=what or f"{ns}/{name} Ready")[0]


def failed_condition(fn):
    """(type, reason, message) of the failed step, or None."""
    for c in fn.get("status", {}).get("conditions", []):
        if c["type"] != "Ready" and c.get("status") == "False":
            return c["type"], c["reason"], c["message"]
    return None


def token(ns, fn):
    secret = pl.kjson("-n", ns, "get", "secret", fn["status"]["tokenSecretName"])
    return base64.b64decode(secret["data"]["token"]).decode()


def call(endpoint, handler, values, token, tenant, timeout=30):
    """One DoExchange like Databend's; returns the result column as a list."""
    client = flight.connect(endpoint.replace("http://", "grpc://"))
    try:
        headers = [(b"x-databend-tenant", tenant.encode()),
                   (b"x-databend-function", handler.encode()),
                   (b"x-databend-function-handler", handler.encode())]
        if token is not None:
            headers.append((b"x-authorization", token.encode()))
        opts = flight.FlightCallOptions(headers=headers, timeout=timeout)
        schema = pa.schema([pa.field("arg1", pa.int32(), True)])
        batch = pa.record_batch([pa.array(values, type=pa.int32())], schema=schema)
        writer, reader = client.do_exchange(flight.FlightDescriptor.for_path(handler),
                                            options=opts)
        writer.begin(schema)
        writer.write_batch(batch)
        writer.done_writing()
        table = reader.read_all()
        writer.close()
        return table.column(0).to_pylist()
    finally:
        client.close()


def refused(endpoint, handler, token, tenant):
    try:
        call(endpoint, handler, [1], token, tenant, timeout=10)
        return False
    except flight.FlightError as e:
        return "x-authorization" in str(e) or "tenant" in str(e) or "nauthenticated" in str(e)


def claimed_pods(pool_ns, fn):
    uid = fn["metadata"]["uid"]
    return pl.kjson("-n", pool_ns, "get", "pods", "-l",
                    f"udf.sandbox.io/function-uid={uid}")["items"]


def example(name):
    import yaml
    with open(os.path.join(pl.SOURCE_DIR, "manifests", "examples", name)) as f:
        return yaml.safe_load(f)


def wait_idle_ready(ns, pool_name, n, timeout):
    """Waits until the pool has n Ready idle pods (claimed pods aside)."""
    return wait_for(lambda: len([p for p in pl.idle(ns, pool_name) if pl.is_ready(p)]) == n,
                    timeout, interval=1, what=f"{n} Ready idle pods of {pool_name}")


def apply_fn(ns, manifest):
    return pl.k("-n", ns, "apply", "-f", "-", input=json.dumps(manifest))


__all__ = ["pl", "sys", "time"]
