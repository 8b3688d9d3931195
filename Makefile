# Two entry points: `make demo` and `make test`. Each creates or reuses .venv and installs what it
# needs, idempotently (the stamp file is rebuilt only when pyproject.toml changes).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test test-offline e2e bot lint bench install clean

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

# The suite with no network at all (root only): proves nothing leaves the machine. WebRTC needs a
# non-loopback address (aioice drops 127.0.0.1 candidates and Chromium skips loopback interfaces),
# so the namespace gets a veth pair with a private address that routes nowhere.
test-offline: $(STAMP)
	unshare -n sh -c 'ip link set lo up && ip link add v0 type veth peer name v1 && ip addr add 10.203.0.1/24 dev v0 && ip link set v1 up && ip link set v0 up && $(BIN)/python -m pytest'

# The browser smoke test: Debian's chromium (root, apt) then the e2e tests. `make test` runs them
# too, whenever chromium is already installed.
e2e: $(STAMP)
	command -v chromium >/dev/null || (apt-get update && apt-get install -y chromium)
	$(BIN)/python -m pytest -m e2e

# The ready-made bot, offline unless API keys are set (see .env.example and docs/bot.md).
bot: $(STAMP)
	$(BIN)/python bots/speculative_bot.py -t webrtc

lint: $(STAMP)
	$(BIN)/ruff check pipecat_speculative tests bots examples
	$(BIN)/ruff format --check pipecat_speculative tests bots examples

bench: $(STAMP)
	$(BIN)/pipecat-speculative bench --quick

clean:
	rm -rf $(VENV)
