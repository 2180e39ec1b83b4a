# The two commands: `make run` (the whole service for a user) and `make test` (the whole suite).
# Both work on a fresh machine that has only Python 3.11: uv is installed into .tools/ first.

SHELL := /bin/bash
PYTHON ?= python3.11
UV := $(shell command -v uv 2>/dev/null)
ifeq ($(UV),)
UV := .tools/bin/uv
UV_DEP := .tools/bin/uv
endif
VENV := .venv
export UV_PYTHON := $(PYTHON)
export UV_PYTHON_DOWNLOADS := never
# xdist workers for the test suite (2 cores here; more on a bigger machine)
TEST_WORKERS ?= 2

.PHONY: run test lint typecheck importlint check bench bench-smoke clean install

.tools/bin/uv:
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) is required (set PYTHON=...)"; exit 1; }
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet --disable-pip-version-check uv

$(VENV)/.synced: pyproject.toml uv.lock $(UV_DEP)
	$(UV) sync --frozen
	@touch $@

install: $(VENV)/.synced

run: install
	$(VENV)/bin/payment-service dev

lint: install
	$(VENV)/bin/ruff check src tests emulators benchmarks migrations
	$(VENV)/bin/ruff format --check src tests emulators benchmarks migrations

typecheck: install
	$(VENV)/bin/mypy

importlint: install
	$(VENV)/bin/lint-imports

check: lint typecheck importlint

# Static checks first (fast), then every test against real Postgres, Redis, Tansu and OpenBao.
# pytest's exit 5 ("no tests collected") is not a failure of the suite.
test: install check
	$(VENV)/bin/pytest -n $(TEST_WORKERS) --dist loadgroup -q -p no:cacheprovider; rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "no tests collected"; exit 0; fi; exit $$rc

# Benchmarks print ratios to pgbench measured in the same run; `bench` takes about 15 minutes and
# rewrites docs/performance.md and benchmarks/results/full/; `bench-smoke` (under 2 minutes, CI)
# runs every scenario with tiny counts and only proves the harness works.
bench: install
	$(VENV)/bin/python benchmarks/ledger.py
	$(VENV)/bin/python -m benchmarks.service

bench-smoke: install
	$(VENV)/bin/python benchmarks/ledger.py --smoke
	$(VENV)/bin/python -m benchmarks.service --smoke

clean:
	rm -rf $(VENV) .tools .mypy_cache .ruff_cache .pytest_cache .run
