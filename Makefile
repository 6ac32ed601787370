# The two front-door commands (README): `make demo` and `make test`.
MAKEFLAGS += --no-print-directory
BUILD ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=
# Extra ctest arguments, e.g. CTEST_FLAGS='-LE fuzz' (.ci/run's second, CPU-only configuration).
CTEST_FLAGS ?=

.PHONY: demo test build deps configure clean

deps:
	@bash scripts/install-deps.sh

configure: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS) >/dev/null

build: configure
	@cmake --build $(BUILD) -j $(JOBS)

# The demo builds only the program it runs (the tests and benchmarks are most of a cold build).
demo: configure
	@cmake --build $(BUILD) -j $(JOBS) --target wattwise
	@bash scripts/demo.sh $(BUILD)/wattwise

test:
	@bash scripts/install-deps.sh --test
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)
	@# Passive OpenMP waits: ctest runs tests side by side, and spinning threads starve each other.
	@cd $(BUILD) && OMP_WAIT_POLICY=PASSIVE ctest --output-on-failure -j $(JOBS) --timeout 1200 $(CTEST_FLAGS)

clean:
	rm -rf $(BUILD)
