# Every target builds .venv when it is missing or older than pyproject.toml or requirements.lock.
# Installs take requirements.lock as constraints: a fresh machine gets exactly the versions the
# suite was last run with, whatever upstream has released since. `make lock` re-pins them.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LOCK := requirements.lock
INSTALL := -m pip install --quiet --constraint $(LOCK) -e '.[dev,embedded]'

.PHONY: run test lint format bench clean browser lock

$(STAMP): pyproject.toml $(LOCK)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet pip==26.3
	$(BIN)/python $(INSTALL)
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/incidentflow dev --policy examples/policy.yaml

# Debian's Chromium for the dashboard's browser tests. A no-op when a Chromium is installed
# or apt-get is absent (those tests then skip and say why, and fail when CI is set);
# needs root, or sudo without a password.
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 \
	  || ! command -v apt-get >/dev/null 2>&1 \
	  || { SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo -n); \
	       $$SUDO apt-get update -qq && \
	       DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; } \
	  || echo "warning: could not install chromium: the browser tests will be skipped"

test: $(STAMP) browser
	$(BIN)/python -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy schemas workflows activities worker starter launcher bench

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP)
	$(BIN)/python -m bench.run_all

# Re-pin every dependency (runtime, embedded and dev) to the newest releases pyproject.toml allows:
# resolves in a throwaway venv with Python 3.11 (the image's), writes requirements.lock.
# Run it after changing dependencies in pyproject.toml, or to take upstream releases; then
# run `make test` and commit the lock with the change.
lock:
	rm -rf .lock-venv
	$(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install --quiet pip==26.3
	.lock-venv/bin/python -m pip install --quiet -e '.[dev,embedded]'
	{ sed -n '/^#/p' $(LOCK); .lock-venv/bin/python -m pip freeze --exclude-editable \
	    | grep -iv "^incidentflow"; } > $(LOCK).new
	mv $(LOCK).new $(LOCK)
	rm -rf .lock-venv
	@echo "requirements.lock re-pinned: run make test, then commit it"

clean:
	rm -rf $(VENV) .data .lock-venv
