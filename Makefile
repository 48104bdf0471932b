# Two commands: `make test` and `make demo`. Each creates .venv and installs
# the pinned requirements on first use (needs only Python >= 3.11).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.requirements-installed
DEMO_DIR ?= demo
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: test demo lint venv clean

venv: $(STAMP)

$(STAMP): requirements.txt
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python >= 3.11 is required"'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	@touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest

lint: $(STAMP)
	$(PY) -m ruff check .

demo: $(STAMP)
	$(PY) -m utils.demo --out $(DEMO_DIR)

clean:
	rm -rf $(DEMO_DIR) results .pytest_cache
