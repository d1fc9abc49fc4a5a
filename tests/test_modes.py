"""util/modes.py stands in for tf.estimator.ModeKeys: the TPUEstimator passes its own
strings to the model functions, which compare them with ours. On a TensorFlow without
tf.estimator the TPU hparams stop at once, saying which TensorFlow they need."""

import pytest
import tensorflow.compat.v1 as tf

import configure_finetuning
import configure_pretraining
from tests.conftest import requires_tf_estimator
from util import modes
from util.errors import InputError


@requires_tf_estimator
def test_modes_are_the_estimators_mode_keys():
    keys = tf.estimator.ModeKeys
    assert (modes.TRAIN, modes.EVAL, modes.PREDICT) == (keys.TRAIN, keys.EVAL, keys.PREDICT)


def test_model_spec_defaults():
    spec = modes.ModelSpec(modes.PREDICT, predictions={"x": 1})
    assert (spec.loss, spec.train_op, spec.init_fn) == (None, None, None)
    assert spec.eval_metric_ops == {} and spec.training_hooks == []


@pytest.mark.skipif(hasattr(tf, "estimator"), reason="this TensorFlow ships tf.estimator: "
                    "the TPU hparams work (tests/test_pretraining.py, test_finetuning.py)")
@pytest.mark.parametrize("key", ["use_tpu", "use_tpu_estimator"])
def test_tpu_hparams_need_tensorflow_2_15(key):
    with pytest.raises(InputError, match=r"needs tensorflow 2\.15\.x .* this is tensorflow "
                       r"2\.\d+.*make TF=2\.15 venv"):
        configure_pretraining.PretrainingConfig("m", "/tmp/d", **{key: True})
    with pytest.raises(InputError, match=r"needs tensorflow 2\.15\.x"):
        configure_finetuning.FinetuningConfig("m", "/tmp/d", task_names=["chnsenticorp"],
                                              **{key: True})
