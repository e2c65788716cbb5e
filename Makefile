# Every target sets up what it needs on a fresh machine: `make test` and `make demo` are enough.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# The HTTP endpoint kind: a plugin distribution of its own, installed beside zeroprobe.
HTTP_PLUGIN := plugins/zeroprobe-http
SOURCES := zeroprobe probes schemas tests bench $(HTTP_PLUGIN)

# Debian packages the tests drive as real servers, as command=package pairs: installed by
# `make system-deps` (root, apt-get) when the command is missing.
APT_REQUIRES := prometheus=prometheus promtool=prometheus \
	prometheus-alertmanager=prometheus-alertmanager chromium=chromium \
	openssl=openssl wrk=wrk

.PHONY: install system-deps check test bench soak demo schemas configmap clean

$(STAMP): pyproject.toml $(HTTP_PLUGIN)/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]' -e $(HTTP_PLUGIN)
	touch $(STAMP)

install: $(STAMP)

check: install
	$(BIN)/ruff check $(SOURCES)
	$(BIN)/ruff format --check $(SOURCES)
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

system-deps:
	@missing=""; for pair in $(APT_REQUIRES); do \
		command -v "$${pair%%=*}" >/dev/null 2>&1 || missing="$$missing $${pair#*=}"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive \
			apt-get install -y -q --no-install-recommends $$missing; \
	fi

test: check system-deps
	$(BIN)/pytest

# Benchmarks (not tests): rewrites docs/benchmarks.md (about an hour; `python -m bench.main
# --only KEY` re-measures one section and keeps the others); wrk from Debian.
bench: install
	@command -v wrk >/dev/null 2>&1 || { apt-get update -q && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends wrk; }
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev,bench]'
	$(BIN)/python -m bench.main

# Reliability (not tests): 1,000 probes failing at once, then a soak of SOAK_S seconds (10
# minutes) under wrk load while targets stop, hang and come back; both rewrite their section
# of docs/reliability.md. The smoke run of both is in `make test` (tests/test_soak_smoke.py).
SOAK_S ?= 600
soak: install system-deps
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev,bench]'
	$(BIN)/python -m bench.failing_burst
	$(BIN)/python -m bench.soak --duration $(SOAK_S)

demo: install
	$(BIN)/zeroprobe demo

schemas: install
	$(BIN)/python -m zeroprobe.config.schema_export

# deploy/kubernetes/configmap.yaml from contexts/ (a test fails while they differ).
configmap: install
	$(BIN)/python -m tests.configmap

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache build *.egg-info
