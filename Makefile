# Two commands: `make test` and `make demo`. Each creates .venv and installs
# the pinned requirements on first use (needs only Python >= 3.11).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.requirements-installed
DEMO_DIR ?= demo
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: test demo reproduce lint venv clean

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

# The study's full run on its dataset: make reproduce DATA=patches/ STATS=stats.json
# (extra papermill options, e.g. EPOCHS=1000, go through NB_ARGS).
EPOCHS ?= 1000
reproduce: $(STAMP)
	@test -n "$(DATA)" -a -n "$(STATS)" || { echo "usage: make reproduce DATA=<patch folder or pack> STATS=<stats.json or globalminmax.pickle>"; exit 2; }
	mkdir -p results
	$(PY) -m papermill main.ipynb results/main.ipynb --log-output --progress-bar \
		-p dataset "$(DATA)" -p stats "$(STATS)" -p n_epochs $(EPOCHS) $(NB_ARGS)
	$(PY) -m papermill confidence_calibration.ipynb results/confidence_calibration.ipynb \
		--log-output --progress-bar

clean:
	rm -rf $(DEMO_DIR) results .pytest_cache
