"""util/modes.py stands in for tf.estimator.ModeKeys: the Estimator passes its own strings
to the model functions, which compare them with ours."""

import tensorflow.compat.v1 as tf

from util import modes


def test_modes_are_the_estimators_mode_keys():
    keys = tf.estimator.ModeKeys
    assert (modes.TRAIN, modes.EVAL, modes.PREDICT) == (keys.TRAIN, keys.EVAL, keys.PREDICT)
