# make demo: the whole loop on the bundled data (scripts/demo.py): tfrecords, pre-training,
# fine-tuning, results table, SavedModel export, predictions, Hugging Face export.
# make test: run the test suite. Both create .venv and install into it first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
DEMO_DIR ?= demo_data

.PHONY: venv test demo experiment clean

venv: $(VENV)/.installed

$(VENV)/.installed: setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
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
	rm -rf $(DEMO_DIR) $(VENV)
