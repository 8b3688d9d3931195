# Two entry points: `make demo` and `make test`. Each creates or reuses .venv and installs what it
# needs, idempotently (the stamp file is rebuilt only when pyproject.toml changes).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test test-offline lint bench install clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e ".[dev,local]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/pipecat-speculative demo

test: $(STAMP)
	$(BIN)/python -m pytest

# The suite with no network at all (root only): proves nothing leaves the machine.
test-offline: $(STAMP)
	unshare -n sh -c 'ip link set lo up && $(BIN)/python -m pytest'

lint: $(STAMP)
	$(BIN)/ruff check pipecat_speculative tests bots examples
	$(BIN)/ruff format --check pipecat_speculative tests bots examples

bench: $(STAMP)
	$(BIN)/pipecat-speculative bench --quick

clean:
	rm -rf $(VENV)
