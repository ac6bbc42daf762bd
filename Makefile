# The README's two commands: `make run` (the whole platform live on this machine, until Ctrl-C) and
# `make test` (the whole suite). Both set up what they need first; see scripts/setup.sh.
# `make demo` is the bounded walk-through: 5,000 events through the pipeline, every sink counted.
VENV ?= .venv
TELEMETRY := $(VENV)/bin/telemetry

.PHONY: setup run demo test down status clean

setup:
	@VENV=$(VENV) bash scripts/setup.sh

run: setup
	$(TELEMETRY) live

demo: setup
	$(TELEMETRY) demo

test: setup
	$(VENV)/bin/python -m pytest

status:
	$(TELEMETRY) infra status

down:
	$(TELEMETRY) infra down

clean: down
	rm -rf $(VENV)
