# SupportDesk — the two commands of the README, and a few more.
#   make run     a working desk on http://127.0.0.1:8000 (SQLite, no other service needed)
#   make simulate a customer's WhatsApp message to that desk (TEXT='Olá' FROM=5511987650002)
#   make test    the whole test suite (PostgreSQL/Redis when DATABASE_URL/REDIS_URL are set)
#   make worker  a Celery worker (production mode)
#   make beat    the Celery beat scheduler (one per deployment)
#   make bench   the benchmarks under bench/

SHELL := /bin/bash
PORT ?= 8000
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip

# The newest Python >= 3.12 on PATH or under pyenv (Django 6 needs 3.12+).
PYTHON ?= $(shell for v in 3.14 3.13 3.12; do \
	  for c in $$(ls -d $${PYENV_ROOT:-$$HOME/.pyenv}/versions/$$v*/bin/python3 2>/dev/null | sort -V -r) \
	           /usr/local/bin/python$$v /usr/bin/python$$v "$$(command -v python$$v 2>/dev/null)"; do \
	    if [ -n "$$c" ] && [ -x "$$c" ] && "$$c" -c 'import venv' >/dev/null 2>&1; then echo "$$c"; exit 0; fi; \
	  done; done; \
	  if python3 -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then command -v python3; fi)

.PHONY: run simulate test worker beat bench lint typecheck messages clean venv

$(VENV)/.created:
	@if [ -z "$(PYTHON)" ]; then \
	  echo "SupportDesk needs Python 3.12 or newer and none was found."; \
	  echo "Install it (e.g. 'apt-get install python3.12 python3.12-venv', or 'pyenv install 3.13')"; \
	  echo "or point to one with: make PYTHON=/path/to/python3.12 run"; exit 1; fi
	@echo ">> creating $(VENV) with $(PYTHON) ($$($(PYTHON) --version))"
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	@touch $@

$(VENV)/.runtime: requirements.txt $(VENV)/.created
	@echo ">> installing requirements.txt"
	$(PIP) install --quiet -r requirements.txt
	@touch $@

$(VENV)/.dev: requirements.txt requirements-dev.txt $(VENV)/.created
	@echo ">> installing requirements-dev.txt"
	$(PIP) install --quiet -r requirements-dev.txt
	@touch $@ $(VENV)/.runtime

venv: $(VENV)/.runtime

# Migrations and the demo data first, then the server (in the foreground); only the banner waits
# in the background for the server to listen.
run: $(VENV)/.runtime
	@export DEBUG=$${DEBUG:-true}; \
	$(PY) manage.py migrate --no-input && \
	$(PY) manage.py seed_demo && \
	{ { for _ in $$(seq 1 600); do \
	    (echo > /dev/tcp/127.0.0.1/$(PORT)) 2>/dev/null && break; sleep 0.2; done; \
	  (echo > /dev/tcp/127.0.0.1/$(PORT)) 2>/dev/null && \
	  echo "" && \
	  echo "  SupportDesk is running on http://127.0.0.1:$(PORT)/" && \
	  echo "    console : http://127.0.0.1:$(PORT)/        (agente1@suporte.com / Agente@123)" && \
	  echo "    admin   : http://127.0.0.1:$(PORT)/admin/  (admin@suporte.com / Admin@123)" && \
	  echo "    API docs: http://127.0.0.1:$(PORT)/api/v1/docs" && \
	  echo "    sandbox : http://127.0.0.1:$(PORT)/sandbox/ (chat as a customer)" && \
	  echo "    a customer writes: make simulate TEXT='Olá'" && \
	  echo ""; } & } && \
	exec $(PY) manage.py runserver 127.0.0.1:$(PORT)

# Be a customer from a shell (the demo desk of make run): make simulate TEXT='Olá' [FROM=5511987650002]
FROM ?= 5511987650002
TEXT ?= Olá
simulate: $(VENV)/.runtime
	@DEBUG=$${DEBUG:-true} $(PY) manage.py simulate_message --from "$(FROM)" "$(TEXT)"

test: $(VENV)/.dev
	$(VENV)/bin/pytest $(PYTEST_ARGS)

lint: $(VENV)/.dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

typecheck: $(VENV)/.dev
	$(VENV)/bin/mypy .

worker: $(VENV)/.runtime
	$(VENV)/bin/celery -A supportdesk worker --loglevel=INFO

# The one Celery beat of a deployment (periodic sweeps, CELERY_BEAT_SCHEDULE).
beat: $(VENV)/.runtime
	$(VENV)/bin/celery -A supportdesk beat --loglevel=INFO

# Needs PostgreSQL and Redis on 127.0.0.1 (BENCH_PG_ADMIN_URL, BENCH_REDIS_URL to change them);
# bench/faults.py starts private ones of its own (PostgreSQL's server programs, redis-server).
BENCHES := bench/webhook_ingest.py bench/socket_latency.py bench/outgoing_webhooks.py bench/reports.py bench/scale.py bench/faults.py
bench: $(VENV)/.dev
	@for b in $(BENCHES); do echo ">> $$b"; $(PY) $$b || exit 1; done

messages: $(VENV)/.runtime
	DEBUG=true $(PY) manage.py makemessages -l pt_BR -l en --ignore=.venv
	DEBUG=true $(PY) manage.py compilemessages --ignore=.venv

clean:
	rm -rf $(VENV) db.sqlite3 media staticfiles .pytest_cache .mypy_cache .ruff_cache
