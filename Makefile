# rayevolve: `make run` (an offline evolutionary run on local Ray) and `make test`.
# Both create .venv and install the package on first use; only Python 3.11 and pip needed.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
ARGS ?=
PYTEST_ARGS ?=

export RAY_USAGE_STATS_ENABLED := 0

.PHONY: install run test bench lint clean

install: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,dev]'
	touch $@

## run: evolve circle packing offline on 4 islands of a local Ray (ARGS= adds Hydra overrides)
run: $(STAMP)
	$(BIN)/python -m rayevolve $(ARGS)

## test: the whole suite (unit, local-Ray integration, CLI end to end)
test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## bench: engine overhead benchmarks, ratios measured side by side
bench: $(STAMP)
	$(BIN)/python experiments/bench_engine/bench.py

lint: $(STAMP)
	$(BIN)/ruff check rayevolve tests experiments kernels
	$(BIN)/ruff format --check rayevolve tests

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache *.egg-info
