# make demo: the whole loop on the bundled data (scripts/demo.py): tfrecords, pre-training,
# fine-tuning, results table, SavedModel export, predictions, Hugging Face export.
# make test: run the test suite. Both create the venv and install into it first.
#
# TF picks the TensorFlow release: 2.21 (the default, the newest setup.py allows; Python
# 3.10-3.13) into .venv, or 2.15 (2.15.1, the last with tf.estimator, which the TPU paths
# use_tpu / use_tpu_estimator need; Python 3.9-3.11) into .venv-tf2.15.
PYTHON ?= python3
DEFAULT_TF := 2.21
TF ?= $(DEFAULT_TF)
VENV ?= $(if $(filter $(DEFAULT_TF),$(TF)),.venv,.venv-tf$(TF))
PY := $(VENV)/bin/python
DEMO_DIR ?= demo_data
TF_REQUIREMENT := $(if $(filter 2.15,$(TF)),tensorflow==2.15.1,tensorflow==$(TF).*)

.PHONY: venv test demo experiment clean

venv: $(VENV)/.installed

$(VENV)/.installed: setup.py
	@if [ "$(TF)" = "2.15" ] && ! $(PYTHON) -c 'import sys; sys.exit(sys.version_info >= (3, 12))'; then \
	  echo "tensorflow 2.15 needs Python 3.9-3.11; $(PYTHON) is $$($(PYTHON) -V 2>&1):" \
	       "make TF=2.15 PYTHON=python3.11 ..." >&2; exit 1; fi
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]" "$(TF_REQUIREMENT)"
	$(PY) -c 'from importlib.metadata import version; print("$(VENV): tensorflow", version("tensorflow"))'
	touch $@

test: venv
	$(PY) -m pytest -q -n auto --dist loadscope --durations=25 tests

demo: venv
	$(PY) scripts/demo.py --demo-dir $(DEMO_DIR)

# Pre-train a small ELECTRA on real text from ../shared/data and compare fine-tuning from it
# with random initialisation (about 1h35m on 2 cores); writes docs/experiment/.
experiment: venv
	$(PY) experiments/run_experiment.py

clean:
	rm -rf $(DEMO_DIR) .venv .venv-tf*
