# Two commands: `make test` and `make demo`. Each creates .venv and installs
# the pinned requirements on first use (needs only Python >= 3.11).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.requirements-installed
DEMO_DIR ?= demo
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: test demo outlines rockglaciers massbalance reproduce reproduce-outlines \
	reproduce-rockglaciers lint venv clean

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

# The whole chain and the other systems' demos, sized to this machine's measured speed
# (<= 15 min on a 2-core CPU); prints one line per training epoch and each step's time.
demo: $(STAMP)
	$(PY) -m utils.demo --out $(DEMO_DIR)

# One system's demo alone.
outlines rockglaciers massbalance: $(STAMP)
	$(PY) -m utils.demo --out $(DEMO_DIR) --only $@

# The study's full run on its dataset: make reproduce DATA=patches/ STATS=stats.json
# (extra papermill options, e.g. EPOCHS=1000, go through NB_ARGS). FEATURE_SETS=all (or
# e.g. "1 4") runs the chain per feature set into results/N, weights/N, logs/N (the
# study's layout) and compares them in results/feature_sets.csv and .png.
EPOCHS ?= 1000
FEATURE_SETS ?=
SETS := $(if $(filter all,$(FEATURE_SETS)),1 2 3 4,$(FEATURE_SETS))
PAPERMILL := $(PY) -m papermill --log-output --progress-bar
reproduce: $(STAMP)
	@test -n "$(DATA)" -a -n "$(STATS)" || { echo "usage: make reproduce DATA=<patch folder or pack> STATS=<stats.json or globalminmax.pickle> [FEATURE_SETS=all]"; exit 2; }
ifeq ($(SETS),)
	mkdir -p results
	$(PAPERMILL) main.ipynb results/main.ipynb \
		-p dataset "$(DATA)" -p stats "$(STATS)" -p n_epochs $(EPOCHS) $(NB_ARGS)
	$(PAPERMILL) confidence_calibration.ipynb results/confidence_calibration.ipynb
else
	set -e; for s in $(SETS); do mkdir -p results/$$s; \
		$(PAPERMILL) main.ipynb results/$$s/main.ipynb -p dataset "$(DATA)" \
			-p stats "$(STATS)" -p n_epochs $(EPOCHS) -p feature_set $$s \
			-p weights_dir weights/$$s -p logs_dir logs/$$s -p results_dir results/$$s $(NB_ARGS); \
		$(PAPERMILL) confidence_calibration.ipynb results/$$s/confidence_calibration.ipynb \
			-p results_dir results/$$s -p calibration_dir confidence_calibration_models/$$s; \
	done
	$(PY) -m utils.training feature-sets results $(SETS)
endif

# The outline system's notebook: make reproduce-outlines [DATA=<dataset in the outline layout>]
reproduce-outlines: $(STAMP)
	mkdir -p results
	$(PY) -m papermill glacier_outlines.ipynb results/glacier_outlines.ipynb --log-output \
		--progress-bar -p data_dir "$(or $(DATA),demo/outline_data_full)" -p generate_size full \
		-p epochs 30 -p steps 40 -p crop_size 128 -p results_dir results/outlines \
		$(if $(wildcard ../shared/data/oetztal),-p oetztal ../shared/data/oetztal) $(NB_ARGS)

# The rock-glacier notebook (grouped cross-validation on the real tiles where present)
reproduce-rockglaciers: $(STAMP)
	mkdir -p results
	$(PY) -m papermill rock_glaciers.ipynb results/rock_glaciers.ipynb --log-output \
		--progress-bar $(NB_ARGS)

clean:
	rm -rf $(DEMO_DIR) results .pytest_cache
