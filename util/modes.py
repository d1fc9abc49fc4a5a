"""The mode a model function builds its graph for.

The same strings as tf.estimator.ModeKeys, so that the Estimator's and the TPUEstimator's
`mode` argument compares equal, without importing tf.estimator (gone after TF 2.15) where
only the mode is needed.
"""

TRAIN = "train"  # loss, train_op and the training hooks
EVAL = "eval"  # loss and the eval metrics
PREDICT = "infer"  # predictions only
