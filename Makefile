# The two commands: `make run` and `make test`. Both work on a fresh machine with only python3.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 8000

.PHONY: run test test-fast sweep bench browser redis native clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# mypyc (the `native` extra) is optional: without it the engine runs as pure Python.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	$(BIN)/python -m pip install -q -e '.[native]' || echo "mypyc not installed: the engine runs as pure Python"
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[test]'
	$(BIN)/python -m pip install -q -e '.[native]' || echo "mypyc not installed: the engine runs as pure Python"
	touch $(VENV)/.installed $@

# The compiled engine (engine/native.py) for the current sources: built when a source under
# engine/ changed (25-50 s), else a no-op; never fails (the engine then runs as pure Python).
native: $(VENV)/.installed
	@$(BIN)/python tools/build_native.py

# Debian's Chromium for the end-to-end tests (browsers cannot be downloaded by Playwright here).
browser:
	@command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ] || \
	  { echo "installing chromium (apt-get)"; apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }

# Debian's redis-server for the broker tests (each test starts its own on a free loopback port).
redis:
	@command -v redis-server >/dev/null 2>&1 || \
	  { echo "installing redis-server (apt-get)"; apt-get update -qq && apt-get install -y -qq redis-server >/dev/null; }

run: $(VENV)/.installed native
	$(BIN)/playground serve --host $(HOST) --port $(PORT)

test: $(VENV)/.installed-test browser redis native
	$(BIN)/python -m pytest

test-fast: $(VENV)/.installed-test native
	$(BIN)/python -m pytest -m "not browser"

sweep: $(VENV)/.installed-test
	$(BIN)/python -m pytest tests/engine/test_sweep.py --sweep

bench: $(VENV)/.installed native
	$(BIN)/playground bench

clean:
	rm -rf $(VENV) .pytest_cache .native
