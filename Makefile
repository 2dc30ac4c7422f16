# One command per habit: make run, make test, make lint, make bench.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
# What running needs (requirements.txt), and the test and lint stack on top (requirements-dev.txt).
RUN_STAMP := $(VENV)/.installed-run
STAMP := $(VENV)/.installed
PORT ?= 8000
# The embedded default's secret key: made once, kept out of git with the rest of var/.
SECRET_KEY_PATH := var/secret_key

.PHONY: run test lint format bench clean setup

$(RUN_STAMP): requirements.txt trainer_image/requirements.txt trainer_image/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	touch $(RUN_STAMP)

$(STAMP): $(RUN_STAMP) requirements-dev.txt
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

setup: $(STAMP)

$(SECRET_KEY_PATH):
	mkdir -p $(dir $@)
	umask 077 && $(PYTHON) -c "import secrets; print(secrets.token_urlsafe(50))" > $@

## run: install what running needs, then serve the dashboard on 127.0.0.1:$(PORT) (default 8000) with the
## worker beside it (Ctrl-C stops both)
run bench: export SECRET_KEY_FILE := $(if $(SECRET_KEY)$(SECRET_KEY_FILE),$(SECRET_KEY_FILE),$(CURDIR)/$(SECRET_KEY_PATH))
run: $(RUN_STAMP) $(SECRET_KEY_PATH)
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py demo
	$(BIN)/python manage.py collectstatic --noinput -v0
	$(BIN)/python manage.py run_local 127.0.0.1:$(PORT)

## test: set up, then run the whole suite (SQLite, or PostgreSQL when DATABASE_URL is set)
test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# bench/run.py runs on SQLite; the run list and Kubernetes benchmarks need PostgreSQL
# (BENCH_POSTGRES, by default the local server), where they make and drop a database of their own.
bench: $(STAMP) $(SECRET_KEY_PATH)
	$(BIN)/python bench/run.py
	$(BIN)/python bench/run_list.py
	$(BIN)/python bench/jobs.py
	$(BIN)/python bench/schedules.py
	$(BIN)/python bench/segments.py

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
