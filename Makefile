# The two commands a newcomer needs:  make demo   and   make test
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Every package, with its hashes: pip refuses anything else (--require-hashes).
LOCK   := requirements/dev.lock
COMPILE = $(BIN)/uv pip compile pyproject.toml --quiet --generate-hashes --universal --python-version 3.11

.PHONY: demo test lint typecheck unit serve bench mutation clean lock

$(STAMP): pyproject.toml $(LOCK)
	@echo "installing CityWallet into $(VENV) (first run only; pip's log: $(VENV)/install.log)"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --require-hashes -r $(LOCK) > $(VENV)/install.log 2>&1 \
		|| { cat $(VENV)/install.log; exit 1; }
	@$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e . >> $(VENV)/install.log 2>&1 \
		|| { cat $(VENV)/install.log; exit 1; }
	@touch $(STAMP)

## Refresh the lock files after changing pyproject.toml's dependencies (needs PyPI)
lock: $(STAMP)
	$(COMPILE) -o requirements/runtime.lock
	$(COMPILE) --extra dev --extra granian -o $(LOCK)

## Install, seed demo data, print URLs and logins, and serve on http://127.0.0.1:8000
## (another port: make demo PORT=8100; logs go to var/demo.log)
PORT ?= 8000
demo: $(STAMP)
	@$(BIN)/citywallet demo --port $(PORT)

## Install and run everything CI runs: lint, format check, types, import layers, the whole suite (SQLite + PostgreSQL)
test: $(STAMP)
	bash scripts/ensure-postgres.sh
	bash scripts/ensure-chromium.sh
	$(BIN)/ruff check src tests bench migrations
	$(BIN)/ruff format --check src tests bench migrations
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/pytest -n auto --dist loadfile -q

unit: $(STAMP)
	$(BIN)/pytest -q tests/unit

## Mutation testing of the pure money modules (docs/testing.md; slow, not part of CI):
## make mutation  or  make mutation MUTATION_MODULES="money merchant.rules"
MUTATION_MODULES ?= money ledger.posting wallet.rules merchant.rules merchant.refund_rules merchant.emv redpacket.rules campaign.lottery
MUTATION_CHILDREN ?= 2
mutation: $(STAMP)
	nice $(BIN)/mutmut run --max-children $(MUTATION_CHILDREN) \
		$(foreach module,$(MUTATION_MODULES),"citywallet.$(module).*")
	$(BIN)/python scripts/mutation_report.py --survivors

serve: $(STAMP)
	$(BIN)/citywallet serve

## Benchmarks (docs/benchmarks.md); the payments one needs wrk: sudo apt-get install -y wrk
bench: $(STAMP)
	$(BIN)/citywallet bench ledger
	$(BIN)/citywallet bench payments --quick
	$(BIN)/citywallet bench redpackets --quick

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
