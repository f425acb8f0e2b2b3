# Two commands matter: `make demo` and `make test`. Both build .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# BottleCRM (a real partner CRM for the tests) needs Python 3.12 and its own venv.
PY312 ?= $(firstword $(wildcard $(shell pyenv root 2>/dev/null)/versions/3.12.*/bin/python3) \
	$(wildcard $(HOME)/.pyenv/versions/3.12.*/bin/python3) $(shell command -v python3.12 2>/dev/null))
BOTTLECRM := .bottlecrm

.PHONY: demo demo-bottlecrm test host-tools serve lint format bench bench-run-cost bench-engine bench-many-partners bench-bottlecrm bench-webhooks lock clean bottlecrm

$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip==26.3"
	$(BIN)/python -m pip install --quiet -c requirements.lock -e ".[test]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/dealsync demo

# The demo with a third partner on a real BottleCRM beside the HubSpot ones.
demo-bottlecrm: $(STAMP) $(BOTTLECRM)/template.db
	$(BIN)/dealsync demo --bottlecrm

test: $(STAMP) $(BOTTLECRM)/template.db host-tools
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache
	$(BIN)/mypy
	$(BIN)/pytest -q --record-mode=none --durations=15

# The two-host tests make network namespaces (iproute2's `ip`) and a PostgreSQL of their own (initdb).
host-tools:
	@command -v ip >/dev/null || apt-get install -y -q iproute2 >/dev/null || \
		echo "iproute2 could not be installed: the two-host tests will be skipped (they say why)"

# A local Prefect server with the deployments and a worker (and two sandbox CRMs): http://127.0.0.1:4200
serve: $(STAMP)
	$(BIN)/dealsync serve --sandboxes

# Style, layers one way, no import cycle (contracts in pyproject.toml), strict types.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP)
	$(BIN)/python bench/pull_changes.py
	$(BIN)/python bench/run_cost.py
	$(BIN)/python bench/engine.py
	$(BIN)/python bench/many_partners.py
	$(BIN)/python bench/webhook_latency.py

# One partner's runs (first sync, quiet, 1% edits, 1% archived) at 1,000 / 10,000 / 100,000 shared deals.
bench-run-cost: $(STAMP)
	$(BIN)/python bench/run_cost.py

# Validate, map and plan alone at 100,000 and 1,000,000 links, 1% changed.
bench-engine: $(STAMP)
	$(BIN)/python bench/engine.py

# 1,000 partner portals x 100 shared deals (a subflow per partner, then plain calls; a webhook burst
# over 100 partners), and 50 x 2,000: one vendor portal, 4 Prefect workers, a PostgreSQL ledger.
bench-many-partners: $(STAMP)
	$(BIN)/python bench/many_partners.py --partners 1000 --deals 100 --no-subflows --burst 100
	$(BIN)/python bench/many_partners.py --partners 1000 --deals 100
	$(BIN)/python bench/many_partners.py --partners 50 --deals 2000

# From a change in a sandbox to its twin, woken by webhooks through Prefect (median, p95, a burst).
bench-webhooks: $(STAMP)
	$(BIN)/python bench/webhook_latency.py

# What a run costs for a BottleCRM partner (no change feed) against a naive full detail scan.
bench-bottlecrm: $(STAMP) $(BOTTLECRM)/template.db
	$(BIN)/python bench/bottlecrm_runs.py

# Re-resolve pinned versions after changing pyproject.toml dependencies.
lock:
	rm -rf /tmp/dealsync-lock && $(PYTHON) -m venv /tmp/dealsync-lock
	/tmp/dealsync-lock/bin/pip install --quiet ".[test]"
	/tmp/dealsync-lock/bin/pip freeze --exclude dealsync > requirements.lock

# Install BottleCRM and migrate a template database once (3-4 minutes); servers start from copies of it.
bottlecrm: $(BOTTLECRM)/template.db

$(BOTTLECRM)/template.db: bottlecrm/requirements.lock bottlecrm/dealsync_bottlecrm_settings.py
	@test -n "$(PY312)" || { echo "BottleCRM needs Python 3.12: pyenv install 3.12.1, or make PY312=/path/to/python3.12"; exit 1; }
	test -x $(BOTTLECRM)/venv/bin/python || $(PY312) -m venv $(BOTTLECRM)/venv
	$(BOTTLECRM)/venv/bin/python -m pip install --quiet -r bottlecrm/requirements.lock
	mkdir -p $(BOTTLECRM)/media && rm -f $(BOTTLECRM)/template.db.tmp
	cd bottlecrm && BOTTLECRM_DB=$(CURDIR)/$(BOTTLECRM)/template.db.tmp BOTTLECRM_MEDIA=$(CURDIR)/$(BOTTLECRM)/media \
		DJANGO_SETTINGS_MODULE=dealsync_bottlecrm_settings PYTHONPATH=. \
		$(CURDIR)/$(BOTTLECRM)/venv/bin/django-admin migrate --noinput > $(CURDIR)/$(BOTTLECRM)/migrate.log
	mv $(BOTTLECRM)/template.db.tmp $(BOTTLECRM)/template.db

clean:
	rm -rf $(VENV) $(BOTTLECRM)
