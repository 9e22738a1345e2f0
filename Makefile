# SPDX-License-Identifier: MIT
# The only entry points for people and CI. `make help` lists them; every target first runs
# `make setup` (through a stamp, so it costs nothing once done).

.DEFAULT_GOAL := help
SHELL := /bin/bash

VENV := .venv
PY := $(VENV)/bin/python
SETUP := build/.setup.stamp
RESULTS := build/results
DIST := build/dist
# A MicroPython source tree; ~/micropython when it exists, else unset (the tests that need its
# images skip: the only thing outside the repository they need).
MICROPY_DIR ?= $(if $(wildcard $(HOME)/micropython/py/mpconfig.h),$(HOME)/micropython)
BOARD ?=
PORT ?=
# make demo SERVE=1: the live dashboard after the demo, on HTTP (HOST:PORT, default 127.0.0.1:8765).
SERVE ?=
HTTP ?=
ARCH ?=
NATMOD_CFLAGS ?=
export MICROPY_DIR BOARD PORT ARCH NATMOD_CFLAGS
# pytest workers per tier (pytest-xdist): one per core; JOBS=0 runs in one process. Most of the
# host, HIL and fleet tiers wait on simulated boards, qemu and subprocesses. Real boards
# (PORT=...) are one device each, so the HIL tier on them runs in one process.
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
XDIST = -n $(JOBS)

LINT_DIRS = $(wildcard host tests tools bench firmware examples)

# Re-run setup when the pins, the host package's build files or the C core change (the host
# package's cffi extension compiles the core and reads its headers for its declarations).
SETUP_DEPS := tools/setup.sh tools/requirements-dev.txt \
	$(wildcard host/pyproject.toml host/setup.py host/setup.cfg host/aii_host/core/_build_*.py \
	host/aii_host/core/_headers.py c_modules/aii/core/*.c c_modules/aii/core/*.h)

# The tiers that run MicroPython images build them first (`make images`: a test never meets one
# missing or older than the sources); make test builds them once, before every tier.
IMAGES_FIRST = $(if $(IMAGES_BUILT),,images)

.PHONY: help setup test test-c images test-vectors test-host test-device test-hil test-fleet test-wheel dist demo-sites \
	test-qemu test-natmod test-mpy-suite fuzz soak chaos bench size check demo firmware natmod flash picotool \
	clean distclean

help: ## List the targets
	@echo "usage: make <target> [MICROPY_DIR=...] [BOARD=...] [PORT=...]"
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | \
		awk 'BEGIN {FS = ":.*## "} {printf "  %-12s %s\n", $$1, $$2}'

$(SETUP): $(SETUP_DEPS)
	@bash tools/setup.sh

setup: ## Install apt toolchains, .venv with pinned packages, the host package (idempotent)
	@bash tools/setup.sh

test: $(SETUP) ## Run every test tier (C, host, device, HIL on the simulated boards, fleet, the wheel); one summary line
	@rm -rf $(RESULTS); rc=0; \
	$(MAKE) --no-print-directory test-c || rc=1; \
	$(MAKE) --no-print-directory images || rc=1; \
	$(MAKE) --no-print-directory test-vectors || rc=1; \
	$(MAKE) --no-print-directory test-device IMAGES_BUILT=1 || rc=1; \
	$(MAKE) --no-print-directory test-host IMAGES_BUILT=1 || rc=1; \
	$(MAKE) --no-print-directory test-hil IMAGES_BUILT=1 || rc=1; \
	$(MAKE) --no-print-directory test-fleet IMAGES_BUILT=1 || rc=1; \
	$(MAKE) --no-print-directory test-wheel || rc=1; \
	$(PY) tools/test_summary.py || rc=1; \
	exit $$rc

test-c: $(SETUP) ## C core tests: native (ASan+UBSan), bare-metal Cortex-M0/M3/M4F and RV32 under qemu; float-free check; every configuration compiles
	@rc=0; \
	$(PY) tools/ctest.py --results $(RESULTS)/c.json || rc=1; \
	$(PY) tools/check_float_free.py --results $(RESULTS)/float_free.json || rc=1; \
	$(PY) tools/size_report.py --results $(RESULTS)/size.json >/dev/null || rc=1; \
	exit $$rc

images: $(SETUP) ## The MicroPython images the test tiers run (unix port, MPS2_AN385), built first; none without MICROPY_DIR
	bash tools/mpy_build.sh images

test-vectors: $(SETUP) ## The committed test vectors (tests/vectors, tests/c/vectors_*.h, ...) equal their generator's output
	@mkdir -p $(RESULTS)
	$(PY) tools/gen_vectors.py --check --results $(RESULTS)/vectors.json

test-host: $(SETUP) $(IMAGES_FIRST) ## pytest over tests/host (CPython package aii_host)
	@mkdir -p $(RESULTS)
	$(PY) -m pytest tests/host -q $(XDIST) --junitxml=$(RESULTS)/host.xml

test-device: $(SETUP) ## MicroPython tests (tests/device) on the unix build and MPS2_AN385 (QEMU_BOARDS=...); skipped without MICROPY_DIR
	bash tools/mpy_build.sh test-device

test-hil: $(SETUP) $(IMAGES_FIRST) ## Hardware-in-the-loop suite (simulated board; a real one with PORT=...)
	@mkdir -p $(RESULTS)
	$(PY) -m pytest tests/hil -q $(if $(PORT),,$(XDIST)) --junitxml=$(RESULTS)/hil.xml $(foreach p,$(PORT),--port $(p))

test-fleet: $(SETUP) $(IMAGES_FIRST) ## Fleet tests: aggregation, verification, two-phase transfers, faults (simulated boards)
	@mkdir -p $(RESULTS)
	$(PY) -m pytest tests/fleet -q $(XDIST) --junitxml=$(RESULTS)/fleet.xml

test-wheel: dist ## The wheel outside the checkout: a fresh venv, then aii --help, deploy --dry-run, demo, vboard, dashboard
	$(PY) tools/wheel_smoke.py --dist $(DIST) --results $(RESULTS)/wheel.json

test-qemu: $(SETUP) ## Every qemu board (M0, M3, M4F, M7, RV32, 32 KiB heap): image, tests/device, HIL; natmods on stock boards (not in make test)
	bash tools/mpy_build.sh test-qemu

test-natmod: $(SETUP) ## tests/device with the natmod on stock images: x64 unix, qemu per ARCH (not in make test)
	bash tools/mpy_build.sh test-natmod

test-mpy-suite: $(SETUP) ## MicroPython's own tests, AII image against the stock board (MPY_SUITE_BOARDS; not in make test)
	bash tools/mpy_build.sh test-mpy-suite

fuzz: $(SETUP) ## Longer fuzzing of the node's parsers, of a simulated node over the wire and of the dashboard's server (FUZZ_EXAMPLES=2000)
	AII_FUZZ_EXAMPLES=$(or $(FUZZ_EXAMPLES),2000) $(PY) -m pytest -q -k fuzz tests/host
	AII_FUZZ_EXAMPLES=$(or $(FUZZ_EXAMPLES),2000) $(PY) -m pytest -q tests/fleet/test_dashboard_fuzz.py
	$(PY) -m pytest tests/hil/test_node_fuzz.py -q -k vboard --fuzz-examples $(or $(FUZZ_EXAMPLES),2000)

soak: $(SETUP) $(IMAGES_FIRST) ## Soak: transfers under faults (SOAK_TRANSFERS=2000), a site partitioned during 1,000 transfers (OFFLINE_OPS), the CLI fuzz for longer (CLI_FUZZ_SECONDS=1200), particles at length, a cross-site coordinator killed at every point, then make chaos
	SOAK_TRANSFERS=$(or $(SOAK_TRANSFERS),2000) $(PY) tests/fleet/soak.py
	$(PY) tests/fleet/sites_offline_soak.py --ops $(or $(OFFLINE_OPS),1000)
	AII_CLI_FUZZ_SECONDS=$(or $(CLI_FUZZ_SECONDS),1200) AII_CLI_FUZZ_EXAMPLES=$(or $(CLI_FUZZ_EXAMPLES),2000) \
		$(PY) -m pytest tests/host/test_cli_fuzz.py -q
	AII_PARTICLES_FULL=1 $(PY) -m pytest -q tests/host/test_particles_mpi.py tests/fleet/test_particles_nodes.py
	AII_XSITE_FULL=1 $(PY) -m pytest -q tests/fleet/test_sites_xfer.py -k killed
	$(MAKE) --no-print-directory chaos

chaos: $(SETUP) ## Chaos: storage faults, power cuts, bit flips during signed transfers (CHAOS_TRANSFERS=300); build/chaos/chaos.json
	$(PY) tests/fleet/chaos.py --transfers $(or $(CHAOS_TRANSFERS),300)
	AII_DURABILITY_FULL=1 $(PY) -m pytest -q tests/host/test_node_durability.py -k power_cut

bench: $(SETUP) ## Run the benchmarks; JSON results under build/bench/
	@if [ -f bench/run_all.py ]; then \
		mkdir -p build/bench && $(PY) bench/run_all.py; \
	else \
		echo "bench: bench/run_all.py is missing; nothing to run"; exit 1; \
	fi

size: $(SETUP) ## Core size per configuration (full, minimal) and CPU; natmod sizes; IMAGES=1: _aii's cost in each qemu image
	@$(PY) tools/size_report.py
	@ls build/natmod/*/_aii.mpy >/dev/null 2>&1 && wc -c build/natmod/*/_aii.mpy || true
ifneq ($(IMAGES),)
	bash tools/mpy_build.sh size
endif

check: $(SETUP) ## Lint and format check (ruff) of the Python sources
	$(VENV)/bin/ruff check $(LINT_DIRS)
	$(VENV)/bin/ruff format --check $(LINT_DIRS)

demo-sites: $(SETUP) ## Two sites on a local Mosquitto and a global verifier: transfers, a violation located (`aii demo --sites`)
	$(VENV)/bin/aii demo --sites

demo: $(SETUP) ## The scheduler, then a fleet of simulated nodes: transfer, injected violation (`aii demo`); SERVE=1: then the live dashboard until Ctrl-C
	@if [ -x $(VENV)/bin/aii ]; then \
		$(VENV)/bin/aii demo && \
		if [ -n "$(SERVE)" ]; then $(VENV)/bin/aii dashboard --demo $(if $(HTTP),--http $(HTTP)); fi; \
	else \
		echo "demo: $(VENV)/bin/aii is missing (is host/ installed? run make setup)"; exit 1; \
	fi

firmware: $(SETUP) ## Build MicroPython firmware with _aii (BOARD=..., needs MICROPY_DIR; docs/boards.md)
	@if [ ! -f tools/mpy_build.sh ]; then \
		echo "firmware: tools/mpy_build.sh is missing"; exit 1; \
	else \
		bash tools/mpy_build.sh firmware; \
	fi

natmod: $(SETUP) ## _aii as a native .mpy for stock firmware (ARCH=armv6m|armv7m|armv7emsp|armv7emdp|rv32imc|x64, default all; docs/natmod.md)
	bash tools/mpy_build.sh natmod

flash: $(SETUP) ## Flash the built firmware to a board (BOARD=..., PORT=...)
	@if [ ! -f tools/mpy_build.sh ]; then \
		echo "flash: tools/mpy_build.sh is missing"; exit 1; \
	else \
		bash tools/mpy_build.sh flash; \
	fi

picotool: $(SETUP) ## Build picotool for the RPI_PICO firmware (PICOTOOL_SRC=<picotool checkout>)
	bash tools/mpy_build.sh picotool

# The sdist, then the wheel built from it (so the sdist is proven to build without the
# checkout: its C core and firmware are copies made by host/setup.py). --no-isolation: the
# venv's pinned setuptools, cffi and wheel build it, nothing is downloaded.
dist: $(SETUP) ## Build the sdist and the wheel of aii-host into build/dist/
	@rm -rf $(DIST) host/build && mkdir -p $(DIST)
	@cd host && ../$(PY) -m build --no-isolation --outdir ../$(DIST) . >../$(DIST)/build.log 2>&1 \
		|| { tail -n 30 ../$(DIST)/build.log; echo "dist: build failed (log: $(DIST)/build.log)"; exit 1; }
	@rm -rf host/build
	@ls $(DIST)/*.tar.gz $(DIST)/*.whl

clean: ## Remove build outputs (build/); keeps .venv
	rm -rf build

distclean: clean ## Also remove .venv and the host package's built extension
	rm -rf $(VENV) host/*.egg-info
	find host -name '*.so' -delete 2>/dev/null || true
