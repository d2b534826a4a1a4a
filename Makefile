# The one entry point. `make` builds bin/udf-operator and bin/udf-worker; `make test` builds what
# the tests use (`make prereqs`), then runs every test tier through ctest; `make run` installs the
# operator with its chart into a local cluster; `make bench` prints the benchmarks. Everything slow is
# cached under ~/.cache/udf-sandbox.

BUILD      ?= build
GENERATOR  ?= Ninja
BUILD_TYPE ?= RelWithDebInfo
ifeq ($(origin CC),default)
CC := clang
endif
UDF_CACHE  ?= $(or $(UDF_SANDBOX_CACHE),$(or $(XDG_CACHE_HOME),$(HOME)/.cache)/udf-sandbox)
PYTHON     ?= $(UDF_CACHE)/venv/bin/python
CTEST_ARGS ?=
CTEST_J    ?= 1

.PHONY: all configure prereqs test test-unit test-integration run bench soak sanitize fuzz fuzz-long venv deps \
        cluster-up cluster-down fmt fmt-check lint clean help

all: configure
	cmake --build $(BUILD)
	@mkdir -p bin
	@cp -f $(BUILD)/operator/udf-operator $(BUILD)/worker/udf-worker \
		$(BUILD)/worker/libudf-preload.so bin/

# Always (re)configure: instant when nothing changed, and it recovers a half-configured tree.
configure: deps
	@cmake -S . -B $(BUILD) -G "$(GENERATOR)" -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) \
		-DCMAKE_C_COMPILER=$(CC) -DUDF_PYTHON=$(PYTHON) >/dev/null

help:
	@echo "make            build bin/udf-operator and bin/udf-worker"
	@echo "make test       make prereqs, then unit and integration tests (ASan+UBSan), fuzz and one"
	@echo "                TSan run of the gRPC concurrency test (ctest)"
	@echo "make prereqs    build (or find cached) what the tests use: venv, Kubernetes, etcd, runsc,"
	@echo "                containerd, helm, the pause and worker images; one timed line per step"
	@echo "make run        local cluster, images and the chart; waits for the default pool, prints"
	@echo "                the gRPC address and a sample call, follows the operator logs"
	@echo "                (UDF_RUN_MODE=local: bin/udf-operator in the foreground instead)"
	@echo "make bench      print the benchmarks"
	@echo "make soak       SOAK_SECONDS (600) of mixed Databend-like load on what make run deploys,"
	@echo "                from an outside host; prints outcomes, p50/p99, leaked pods, operator RSS"
	@echo "make sanitize   build everything with ASan+UBSan in build-san/"
	@echo "make fuzz-long  every fuzz target for FUZZ_SECONDS (60) each; keeps new-coverage seeds"
	@echo "make fmt        clang-format the C sources; make lint: format check + shellcheck"
	@echo "make clean      remove build trees and bin/"

venv:
	@hack/venv.sh

deps:
	@hack/deps.sh

# Everything the tests use, built before ctest starts so that no test's timeout includes a
# build (the images need bin/ from `all`). Warm, a few seconds.
prereqs: all
	@hack/prereqs.sh

test: prereqs
	ctest --test-dir $(BUILD) --output-on-failure -j $(CTEST_J) $(CTEST_ARGS)

test-unit: all
	ctest --test-dir $(BUILD) --output-on-failure -L unit $(CTEST_ARGS)

test-integration: prereqs
	ctest --test-dir $(BUILD) --output-on-failure -L integration $(CTEST_ARGS)

run: all
	@hack/run.sh

SOAK_SECONDS ?= 600
soak: prereqs
	$(PYTHON) tests/e2e/soak.py --seconds $(SOAK_SECONDS)

bench: all venv
	@hack/bench.sh

sanitize:
	$(MAKE) BUILD=build-san all-san

all-san:
	cmake -S . -B $(BUILD) -G "$(GENERATOR)" -DCMAKE_BUILD_TYPE=Debug \
		-DCMAKE_C_COMPILER=$(CC) -DUDF_PYTHON=$(PYTHON) -DUDF_SANITIZE=ON
	cmake --build $(BUILD)

fuzz: all
	ctest --test-dir $(BUILD) --output-on-failure -L fuzz $(CTEST_ARGS)

# Every fuzz target for FUZZ_SECONDS each; new-coverage inputs stay in tests/fuzz/corpus/.
FUZZ_SECONDS ?= 60
fuzz-long: all
	tests/fuzz/long.sh $(BUILD) $(FUZZ_SECONDS)

cluster-up:
	@hack/cluster.sh up

cluster-down:
	@hack/cluster.sh down

C_SOURCES = $(shell git ls-files '*.c' '*.h' 2>/dev/null)
SH_SOURCES = $(shell git ls-files 'hack/*.sh' 'hack/**/*.sh' '.ci/run' 2>/dev/null)

fmt:
	clang-format -i $(C_SOURCES)

fmt-check:
	clang-format --dry-run --Werror $(C_SOURCES)

lint: fmt-check
	shellcheck -x $(SH_SOURCES)

clean:
	rm -rf build build-* bin
