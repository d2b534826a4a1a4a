"""The checks of the script-style tests: one "ok"/"FAIL" line per check, failures kept, and
an exit status at the end.

    from checks import check, finish
    check(value == 2, "the pool has two pods: %s" % value)
    sys.exit(finish())
"""

failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)
    return cond


def finish():
    """1 (and how many failed) when a check failed, else 0 ("all passed")."""
    if failures:
        print(f"{len(failures)} failure(s): {failures}", flush=True)
        return 1
    print("all passed", flush=True)
    return 0
