"""util/modes.py stands in for tf.estimator.ModeKeys: the TPUEstimator passes its own
strings to the model functions, which compare them with ours. On a TensorFlow without
tf.estimator the TPU hparams stop at once, saying which TensorFlow they need."""

import importlib.util
import json
import re

import pytest
import tensorflow.compat.v1 as tf

import run_finetuning
import run_pretraining
from tests.conftest import requires_tf_estimator
from util import modes


@requires_tf_estimator
def test_modes_are_the_estimators_mode_keys():
    keys = tf.estimator.ModeKeys
    assert (modes.TRAIN, modes.EVAL, modes.PREDICT) == (keys.TRAIN, keys.EVAL, keys.PREDICT)


def test_model_spec_defaults():
    spec = modes.ModelSpec(modes.PREDICT, predictions={"x": 1})
    assert (spec.loss, spec.train_op, spec.init_fn) == (None, None, None)
    assert spec.eval_metric_ops == {} and spec.training_hooks == []


@pytest.mark.skipif(importlib.util.find_spec("tensorflow_estimator") is not None,
                    reason="this TensorFlow ships tf.estimator: the TPU hparams work "
                    "(tests/test_pretraining.py, tests/test_finetuning.py)")
@pytest.mark.parametrize("key", ["use_tpu", "use_tpu_estimator"])
def test_tpu_hparams_need_tensorflow_2_15(key, tmp_path, capsys):
    """Before anything is read or written, each runner says which TensorFlow to install."""
    for runner, hparams in ((run_pretraining, {}), (run_finetuning,
                                                    {"task_names": ["chnsenticorp"]})):
        status = runner.main(["--data-dir", str(tmp_path), "--model-name", "m",
                              "--hparams", json.dumps(dict(hparams, **{key: True}))])
        assert status != 0
        assert re.search(r"needs tensorflow 2\.15\.x .* this is tensorflow 2\.\d+.*"
                         r"make TF=2\.15 venv", capsys.readouterr().err)
    assert list(tmp_path.iterdir()) == []
