# make demo: build tfrecords from the bundled sample corpus and pre-train the tiny model.
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
	$(PY) -m pytest -q tests

demo: venv
	$(PY) build_pretraining_dataset.py --corpus-dir sample_data/corpus \
	  --vocab-file sample_data/vocab.txt --output-dir $(DEMO_DIR)/pretrain_tfrecords \
	  --max-seq-length 128 --overwrite
	cp sample_data/vocab.txt $(DEMO_DIR)/vocab.txt
	rm -rf $(DEMO_DIR)/models/electra_tiny_demo  # the demo starts fresh; real runs resume
	$(PY) run_pretraining.py --data-dir $(DEMO_DIR) --model-name electra_tiny_demo \
	  --hparams sample_data/demo_hparams.json

# Pre-train a small ELECTRA on real text from ../shared/data and compare fine-tuning from it
# with random initialisation (about 2 hours on 2 cores); writes docs/experiment/.
experiment: venv
	$(PY) experiments/run_experiment.py

clean:
	rm -rf $(DEMO_DIR) $(VENV)
