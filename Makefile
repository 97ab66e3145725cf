# The two commands a newcomer needs: `make dev` and `make test`. Each creates .venv and installs
# what it needs (pinned by constraints.txt) on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
# `make test` runs pytest on PYTEST_WORKERS processes (pytest-xdist; logical: one per CPU), each
# with its own sandbox. They are handed tests one at a time (--maxschedchunk 1), the slow ones
# first (tests/conftest.py), so that they finish together. PYTEST_WORKERS=0: one process.
PYTEST_WORKERS ?= logical

.PHONY: setup dev test demo lint format test-deployment test-browser test-containers bench clean

# `.[dev]` is the test tools plus the `deploy` and `parquet` extras (the tests run the deployment
# and Parquet exports); constraints.txt pins a full resolve of `.[dev,k8s]` and `dev/`.
$(STAMP): pyproject.toml dev/pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]' -e ./dev
	touch $(STAMP)

setup: $(STAMP)

## dev: start the local Domo + S3 sandbox and `dg dev` on the demo dg project (dev/), UI on http://127.0.0.1:3000
dev: setup
	$(BIN)/python -m domo_assets_dev.devtools dev

## demo: start the sandbox, materialize every export headless, print a table
demo: setup
	$(BIN)/python -m domo_assets_dev.devtools demo

## test: the whole suite but the container test, in parallel on every CPU (CI runs this)
test: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist load --maxschedchunk 1 $(PYTEST_ARGS)

## test-deployment: only the PostgreSQL deployment smoke test (part of `make test` too)
test-deployment: setup
	$(BIN)/python -m pytest -m deployment tests/test_deployment.py

## test-containers: the image and the compose stack in podman (root; not part of `make test`,
## .ci/run calls it after). Images stay in podman's storage between runs (layer cache).
test-containers: setup
	$(BIN)/python -m pytest -m containers -s tests/test_containers.py

## test-browser: only the end-to-end browser test (part of `make test` too; needs /usr/bin/chromium)
test-browser: setup
	$(BIN)/python -m pytest -m browser tests/test_ui.py

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
