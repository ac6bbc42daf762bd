# The README's two commands: `make run` (the main job on the local embedded default) and
# `make test` (the whole suite). Both set up what they need first; see scripts/setup.sh.
VENV ?= .venv
TELEMETRY := $(VENV)/bin/telemetry

.PHONY: setup run test down status clean

setup:
	@VENV=$(VENV) bash scripts/setup.sh

run: setup
	$(TELEMETRY) demo

test: setup
	$(VENV)/bin/python -m pytest

status:
	$(TELEMETRY) infra status

down:
	$(TELEMETRY) infra down

clean: down
	rm -rf $(VENV)
