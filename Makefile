# The README's two commands: `make run` and `make test`.
PY := .venv/bin/python
PIP := .venv/bin/pip
STAMP := .venv/.installed
REQS := requirements.txt requirements-dev.txt requirements-gpu.txt
# Fictional results (organisation "Demo data") fill the leaderboard until real evaluations do; 0 turns them off.
DEMO_MODELS ?= 24

.PHONY: run test lint install migrate seed clean

$(STAMP): $(REQS)
	python3 -m venv .venv
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet torch==2.13.0
	$(PIP) install --quiet -r requirements-dev.txt -r requirements-gpu.txt
	touch $(STAMP)

install: $(STAMP)

migrate: install
	$(PY) manage.py migrate --noinput

seed: migrate
	$(PY) manage.py seed_versions
	$(PY) manage.py ensure_demo_admin
	if [ "$(DEMO_MODELS)" -gt 0 ]; then $(PY) manage.py generate_demo_results --count $(DEMO_MODELS) --samples-per-cell 5; fi

run: seed
	$(PY) manage.py collectstatic --noinput -v 0
	scripts/serve.sh

test: install
	@eval "$$($(PY) scripts/services_env.py)" && $(PY) -m pytest $(PYTEST_ARGS)

lint: install
	.venv/bin/ruff check .
	$(PY) manage.py makemigrations --check --dry-run

clean:
	rm -rf .venv var
