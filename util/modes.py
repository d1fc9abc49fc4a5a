"""The mode a model function builds its graph for, and what it returns (a ModelSpec).

The mode strings are tf.estimator.ModeKeys', so that the TPUEstimator's `mode` argument
compares equal, without importing tf.estimator (gone after TF 2.15) where only the mode is
needed.
"""

import collections

TRAIN = "train"  # loss, train_op and the training hooks
EVAL = "eval"  # loss and the eval metrics
PREDICT = "infer"  # predictions only


class ModelSpec(collections.namedtuple("ModelSpec", [
        "mode", "loss", "train_op", "eval_metric_ops", "predictions", "training_hooks",
        "init_fn"])):
    """What a model function gives the training loop (util/training_loop.py).

    mode: TRAIN, EVAL or PREDICT.
    loss: the scalar loss of the batch (TRAIN, EVAL; under a strategy, this replica's share:
      the loop sums the replicas' and, unlike the Estimator, never rescales a loss for
      tf.train.Optimizer.compute_gradients -- our optimizers sum gradients themselves).
    train_op: the op of one session run of training (TRAIN).
    eval_metric_ops: {name: (value tensor, update op)} as tf.metrics give them (EVAL).
    predictions: {name: tensor with the batch first} (PREDICT).
    training_hooks: SessionRunHooks of training (e.g. the progress line).
    init_fn: None, or a function(session) run once after the variables are initialised in
      a fresh run (not on a resume), before any hook sees the session.
    """

    def __new__(cls, mode, loss=None, train_op=None, eval_metric_ops=None, predictions=None,
                training_hooks=(), init_fn=None):
        return super().__new__(cls, mode, loss, train_op, dict(eval_metric_ops or {}),
                               predictions, list(training_hooks), init_fn)
