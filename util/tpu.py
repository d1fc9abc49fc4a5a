"""The TPU graph for both runners: on a Cloud TPU (use_tpu), or on this machine's CPU/GPU
(use_tpu_estimator), as the official code runs its TPU graph on GPUs. (The TPUEstimator
itself is built in util/tpu_estimator.py; it needs TensorFlow 2.15.)

`use_tpu_estimator` builds exactly what a TPU runs -- the same model_fn returning a
TPUEstimatorSpec, input functions sized by params["batch_size"], the (metric_fn, tensors)
eval-metric tuple, static batch shapes, one-hot embedding lookups, checkpoints restored in
a scaffold_fn -- but with TPUEstimator(use_tpu=False): no cluster, no CrossShardOptimizer.
That is how the tests exercise the TPU code path without a TPU.
"""

import tensorflow.compat.v1 as tf

from util import tpu_estimator
from util.errors import InputError


def tpu_graph(config):
    """Whether the model_fn builds the TPU graph (TPUEstimatorSpec, static shapes)."""
    return bool(config.use_tpu or config.use_tpu_estimator)


def check_hparams(config, source):
    """use_tpu_estimator, the TPU keys and the batch sizes, against each other."""
    if config.use_tpu_estimator and config.distribution != "none":
        raise InputError("%s: use_tpu_estimator runs TPUEstimator on one device: set "
                         "\"distribution\": \"none\" with it, or use_tpu_estimator false"
                         % source)
    if config.num_tpu_cores < 1 or config.iterations_per_loop < 1:
        raise InputError("%s: num_tpu_cores and iterations_per_loop must be >= 1, got %r "
                         "and %r" % (source, config.num_tpu_cores, config.iterations_per_loop))
    # On a TPU each core takes a share of every batch (pre-training has no predict batch).
    for key in ("train_batch_size", "eval_batch_size", "predict_batch_size"):
        size = getattr(config, key, None)
        if config.use_tpu and size is not None and size % config.num_tpu_cores:
            raise InputError("%s: %s %d does not split over num_tpu_cores %d: use a multiple "
                             "of %d" % (source, key, size, config.num_tpu_cores,
                                        config.num_tpu_cores))


def check_tensorflow(config):
    """The TPU graph needs tf.estimator (TensorFlow 2.15): a runner calls this first, so
    that a newer TensorFlow stops it before any data is read. (Not part of check_hparams:
    the hparams themselves are valid under any TensorFlow.)"""
    if tpu_graph(config):
        tpu_estimator.estimator_api()


def restore_in_scaffold(config, restore, make_scaffold=None):
    """Runs restore() (tf.train.init_from_checkpoint calls) where the graph allows it: in
    the TPUEstimatorSpec's scaffold_fn for the TPU graph (on a TPU the variables' initial
    values must come from the host), at once otherwise. Returns the scaffold_fn or None.
    make_scaffold: None, or a function returning the Scaffold (or None) the TPU graph's
    scaffold_fn gives (e.g. one with an init_fn); the other graphs give the training loop
    their ModelSpec's init_fn themselves."""
    if not tpu_graph(config):
        restore()
        return None

    def scaffold_fn():
        restore()
        return (make_scaffold and make_scaffold()) or tf.train.Scaffold()
    return scaffold_fn
