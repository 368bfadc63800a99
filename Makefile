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

# The suite on the embedded default (SpatiaLite, file broker), then on PostGIS + Redis.
test: setup lint test-sqlite test-postgis

test-sqlite:
	CROPLAYER_VAR_DIR=var/test-sqlite $(PY) -m pytest -q -p no:cacheprovider

test-postgis:
	PG_URL=$(PG_URL) ./scripts/services.sh
	CROPLAYER_VAR_DIR=var/test-postgis DATABASE_URL=$(PG_URL) REDIS_URL=$(REDIS_TEST_URL) \
	  $(PY) -m pytest -q -p no:cacheprovider

test-slow: setup
	CROPLAYER_VAR_DIR=var/test-slow $(PY) -m pytest -q -p no:cacheprovider -m slow || [ $$? -eq 5 ]

lint:
	$(PY) -m ruff check .
	.venv/bin/lint-imports
	$(PY) -m mypy mapping/geo mapping/imagery mapping/compare mapping/product learning/core annotation/geometry.py
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
# worker must never die. `soak-short` is the CI version (3 minutes).
SOAK_MINUTES ?= 30
soak: setup
	$(PY) scripts/soak.py --minutes $(SOAK_MINUTES)

soak-short:
	CROPLAYER_VAR_DIR=var/soak-short $(PY) scripts/soak.py --minutes 3
