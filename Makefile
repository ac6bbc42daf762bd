# The README's two commands: `make run` (the whole platform live on this machine, until Ctrl-C) and
# `make test` (the whole suite). Both set up what they need first; see scripts/setup.sh.
# `make demo` is the bounded walk-through: 5,000 events through the pipeline, every sink counted.
VENV ?= .venv
TELEMETRY := $(VENV)/bin/telemetry

.PHONY: setup run demo test lint down status clean

setup:
	@VENV=$(VENV) bash scripts/setup.sh

run: setup
	$(TELEMETRY) live

demo: setup
	$(TELEMETRY) demo

# Lint and types first (the rules: pyproject.toml [tool.ruff], [tool.mypy]): a lint or type error
# fails the test command, and CI, in seconds rather than after the suite.
test: setup
	$(MAKE) --no-print-directory lint VENV=$(VENV)
	$(VENV)/bin/python -m pytest

lint:
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

status:
	$(TELEMETRY) infra status

down:
	$(TELEMETRY) infra down

clean: down
	rm -rf $(VENV)
