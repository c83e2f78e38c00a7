# The two commands users run: `make demo` (the main job) and `make test` (everything we claim).
# Both build the virtualenv from the locked requirements first; nothing is installed by hand.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck unit tools venv clean bench bench-sheets bench-drive bench-notifier reliability fuzz

venv: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "Python 3.11 is required (set PYTHON=python3.11)")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "installing locked dependencies into $(VENV) ..."
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	@touch $(STAMP)

tools: venv
	@$(BIN)/python -m devstack.emulators --check

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: venv
	$(BIN)/mypy

test: tools lint typecheck
	$(BIN)/pytest

demo: tools
	$(BIN)/python -m devstack.demo

# Every benchmark (ingress, cold start, Sheets, Drive, notifier): bench/REPORT.md and bench/latency.png.
bench: tools
	$(BIN)/python -m bench.report

bench-sheets: tools
	$(BIN)/python -m bench.sheets_bench

bench-drive: tools
	$(BIN)/python -m bench.drive_bench

reliability: tools
	$(BIN)/pytest -m reliability tests/reliability

fuzz: tools
	$(BIN)/pytest -m fuzz tests/fuzz

bench-notifier: tools
	$(BIN)/python -m bench.notifier_bench

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
