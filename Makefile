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

# The suite with no network at all (root only): proves nothing leaves the machine. aioice drops
# 127.0.0.1 candidates, so the browser test needs a second loopback address for WebRTC.
test-offline: $(STAMP)
	unshare -n sh -c 'ip link set lo up && ip addr add 127.0.0.2/8 dev lo && $(BIN)/python -m pytest'

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
