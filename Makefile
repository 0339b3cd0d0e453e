# Two commands matter: `make demo` and `make test`. Both install into .venv first when needed.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO_DIR ?= demo_out

.PHONY: install demo test test-slow test-all lint bench clean

install: $(STAMP)

# Re-runs only when the pins or setup.py change, so `make install` is a no-op when up to date.
$(STAMP): requirements.txt setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

demo: install
	bash scripts/demo.sh $(DEMO_DIR)

# Two pytest-xdist workers, whole test files each, the longest files first (tests/conftest.py): on 2 quiet cores
# 1.57x faster than one process (docs/performance.md, "Test suite"). `make test TEST_WORKERS=0` runs one process.
TEST_WORKERS ?= 2
XDIST = $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder)

test: install
	$(PY) -m pytest -q -m "not slow" $(XDIST) tests

test-slow: install
	$(PY) -m pytest -q -m slow tests

test-all: install
	$(PY) -m pytest -q tests

lint: install
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(DEMO_DIR) .pytest_cache
