# Two commands matter: `make demo` and `make test`. Both build .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test serve lint format bench lock clean

$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip==26.3"
	$(BIN)/python -m pip install --quiet -c requirements.lock -e ".[test]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/dealsync demo

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest -q --record-mode=none

# A local Prefect server with the deployments and a worker (and two sandbox CRMs): http://127.0.0.1:4200
serve: $(STAMP)
	$(BIN)/dealsync serve --sandboxes

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP)
	$(BIN)/python bench/pull_changes.py

# Re-resolve pinned versions after changing pyproject.toml dependencies.
lock:
	rm -rf /tmp/dealsync-lock && $(PYTHON) -m venv /tmp/dealsync-lock
	/tmp/dealsync-lock/bin/pip install --quiet ".[test]"
	/tmp/dealsync-lock/bin/pip freeze --exclude dealsync > requirements.lock

clean:
	rm -rf $(VENV)
