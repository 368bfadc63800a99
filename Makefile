# The two commands of the README: `make demo` and `make test`.
SHELL := /bin/bash
PY := .venv/bin/python
export OMP_NUM_THREADS := 1
PG_URL ?= postgis://postgres@127.0.0.1:5432/croplayer
REDIS_TEST_URL ?= redis://127.0.0.1:6379/15

.PHONY: setup demo test test-sqlite test-postgis test-slow lint bench demo-play soak soak-short

setup:
	./scripts/setup.sh

demo: setup
	./scripts/demo.sh

# The suite on the embedded default (SpatiaLite), then on PostGIS + Redis. The browser tests
# (Chromium) test pages, not databases: they run once, in the PostGIS step.
test: setup lint test-sqlite test-postgis

# Each test step runs under its own time limit (scripts/run_step.sh stops it and all it
# started): a hang fails that step at once. Measured on a fresh clone at load ~1 (2026-12-08):
# SQLite 7, PostGIS 12, slow 10, soak-short 4 minutes (39 in all with setup and lint); each
# limit leaves room for a busier machine, and together (20 + 25 + 18 + 15) they stay inside
# CI's 90 minutes.
SQLITE_BUDGET ?= 20m
POSTGIS_BUDGET ?= 25m
SLOW_BUDGET ?= 18m
PYTEST := $(PY) -m pytest -q -p no:cacheprovider

test-sqlite:
	CROPLAYER_VAR_DIR=var/test-sqlite ./scripts/run_step.sh test-sqlite $(SQLITE_BUDGET) -- \
	  $(PYTEST) -m "not slow and not browser"

test-postgis:
	PG_URL=$(PG_URL) ./scripts/services.sh
	CROPLAYER_VAR_DIR=var/test-postgis DATABASE_URL=$(PG_URL) REDIS_URL=$(REDIS_TEST_URL) \
	  ./scripts/run_step.sh test-postgis $(POSTGIS_BUDGET) -- $(PYTEST)

# Skipped tests (no real data) are fine; so is a selection with no slow test at all.
test-slow: setup
	CROPLAYER_VAR_DIR=var/test-slow ./scripts/run_step.sh test-slow $(SLOW_BUDGET) --no-tests-ok -- \
	  $(PYTEST) -m slow

lint:
	$(PY) -m ruff check .
	$(PY) scripts/check_access.py
	.venv/bin/lint-imports
	$(PY) -m mypy mapping/geo mapping/imagery learning/product/core learning/core annotation/geometry.py \
	  annotation/sample_files.py
	$(PY) manage.py check
	$(PY) manage.py makemigrations --check --dry-run >/dev/null
	$(PY) manage.py spectacular --fail-on-warn --validate --file /dev/null
	CROPLAYER_PROFILE=production SECRET_KEY=ci-check-$$(date +%s)-not-a-real-secret-value-0123456789abcdef \
	  ALLOWED_HOSTS=croplayer.example DATABASE_URL=$(PG_URL) REDIS_URL=$(REDIS_TEST_URL) \
	  $(PY) manage.py check --deploy --fail-level WARNING

bench: setup
	$(PY) bench/run.py

# Beside a running `make demo` (its worker and private redis): play the interpreters from the
# ground truth for ROUNDS rounds, then export what converged (JSON on stdout).
ROUNDS ?= 5
demo-play:
	$(PY) manage.py demo_play --campaign demo-2020 --rounds $(ROUNDS) --json

# Rounds back to back with beat for SOAK_MINUTES on the embedded default (own var/soak); the
# worker must never die. `soak-short` is the CI version: 3 minutes of rounds after loading the
# demo, the last round finished, under its own time limit.
SOAK_MINUTES ?= 30
SOAK_SHORT_BUDGET ?= 15m
soak: setup
	$(PY) scripts/soak.py --minutes $(SOAK_MINUTES)

soak-short: setup
	rm -rf var/soak-short
	CROPLAYER_VAR_DIR=var/soak-short ./scripts/run_step.sh soak-short $(SOAK_SHORT_BUDGET) -- \
	  $(PY) scripts/soak.py --minutes 3
