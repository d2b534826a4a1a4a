"""hack/image.sh (no Docker) and the Dockerfiles describe the same images: worker/Dockerfile
installs the same runtime Debian packages and the same pinned pip packages as the worker
image hack/image.sh builds (whose Python comes from Debian instead of the base image), and
operator/Dockerfile the same Debian packages as localhost/udf-operator:dev. Both run as the
same non-root uid with the same entrypoint."""

import os
import re
import sys

import nodelib as nl
from cluster import SOURCE_DIR

# Debian's Python in the image.sh build; the Dockerfile's base image brings its own.
PYTHON_DEBS = {"python3", "python3-venv"}


def image_sh_packages(which):
    out = nl.run(nl.IMAGE_SH, "packages", which).stdout
    lists = {}
    for line in out.splitlines():
        kind, _, rest = line.partition(":")
        lists[kind.strip()] = set(rest.split())
    return lists


def dockerfile_final_stage(path):
    with open(path) as f:
        text = f.read().replace("\\\n", " ")
    return text.split("\nFROM ")[-1]


def apt_packages(stage):
    found = set()
    for m in re.finditer(r"apt-get install ([^&]*)", stage):
        found |= {w for w in m.group(1).split() if not w.startswith("-")}
    return found


def pip_packages(stage):
    found = set()
    for m in re.finditer(r"pip install ([^&]*)", stage):
        found |= {w for w in m.group(1).split() if not w.startswith("-")}
    return found


def image_sh_var(name):
    with open(os.path.join(SOURCE_DIR, "hack", "image.sh")) as f:
        m = re.search(rf"^{name}=(\S+)", f.read(), re.M)
    return m.group(1) if m else None


def main():
    worker = image_sh_packages("worker")
    stage = dockerfile_final_stage(os.path.join(SOURCE_DIR, "worker", "Dockerfile"))
    apt = apt_packages(stage)
    nl.check(apt == worker["deb"] - PYTHON_DEBS,
             f"worker: Debian packages agree: Dockerfile {sorted(apt)} "
             f"vs image.sh {sorted(worker['deb'] - PYTHON_DEBS)}")
    pip = pip_packages(stage)
    nl.check(pip == worker["pip"], f"worker: pip pins agree: {sorted(pip)} vs {sorted(worker['pip'])}")
    nl.check(all("==" in p for p in worker["pip"]), "worker: every pip package pinned")
    uid = image_sh_var("WORKER_UID")
    nl.check(f"--uid {uid}" in stage and f"USER {uid}:{uid}" in stage,
             f"worker: Dockerfile runs as uid {uid} like image.sh")
    nl.check('ENTRYPOINT ["/usr/local/bin/udf-worker"]' in stage,
             "worker: same entrypoint /usr/local/bin/udf-worker")
    venv = image_sh_var("WORKER_VENV").strip('"')
    nl.check(f"-m venv {venv}" in stage, f"worker: venv at {venv} in both")

    operator = image_sh_packages("operator")
    stage = dockerfile_final_stage(os.path.join(SOURCE_DIR, "operator", "Dockerfile"))
    apt = apt_packages(stage)
    nl.check(apt == operator["deb"],
             f"operator: Debian packages agree: {sorted(apt)} vs {sorted(operator['deb'])}")
    uid = image_sh_var("OPERATOR_UID")
    nl.check(f"--uid {uid}" in stage and f"USER {uid}:{uid}" in stage,
             f"operator: Dockerfile runs as uid {uid} like image.sh")
    nl.check('ENTRYPOINT ["/usr/local/bin/udf-operator"]' in stage,
             "operator: same entrypoint /usr/local/bin/udf-operator")
    return nl.finish()


if __name__ == "__main__":
    sys.exit(main())
