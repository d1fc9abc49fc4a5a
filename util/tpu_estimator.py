"""The TPUEstimator, for the TPU graph (use_tpu on a Cloud TPU, use_tpu_estimator on this
machine): the one use of tf.estimator left, which only TensorFlow 2.15 ships.

Everything else trains on our own loop (util/training_loop.py); build_trainer there picks
this for the TPU graph, and the runners' first check (util/tpu.check_tensorflow) stops a TPU
run on a newer TensorFlow up front with how to install 2.15.
"""

import tensorflow.compat.v1 as tf

from util.errors import InputError

TPU_TENSORFLOW = "2.15.1"
INSTALL_TPU_TENSORFLOW = (
    "make TF=2.15 venv (or pip install \"tensorflow==%s\" \"numpy<2\" on Python 3.9-3.11)"
    % TPU_TENSORFLOW)


def estimator_api():
    """tf.estimator (TF 2.15's tensorflow_estimator, loaded lazily), or an InputError saying
    the TPU graph needs TensorFlow 2.15.x."""
    try:
        return tf.estimator
    except (AttributeError, ImportError) as e:
        raise InputError("use_tpu / use_tpu_estimator run on the TPUEstimator, which needs "
                         "tensorflow 2.15.x (the last release with tf.estimator); this is "
                         "tensorflow %s (%s). Install the TPU-capable version: %s"
                         % (tf.__version__, e, INSTALL_TPU_TENSORFLOW)) from None


def tpu_estimator_spec(mode, **kwargs):
    """A TPUEstimatorSpec: what the model functions return in the TPU graph."""
    return estimator_api().tpu.TPUEstimatorSpec(mode, **kwargs)


def run_config(config, model_dir, seed, session_config=None):
    """The tf.estimator.tpu.RunConfig of the TPU graph; the checkpoint, summary and logging
    settings come from the hparams as the Trainer reads them (util/training_loop.py)."""
    estimator = estimator_api()
    cluster = None  # as the official code: no tpu_name, no resolver (TF's defaults)
    if config.use_tpu and config.tpu_name:
        cluster = tf.distribute.cluster_resolver.TPUClusterResolver(
            config.tpu_name, zone=config.tpu_zone, project=config.gcp_project)
    return estimator.tpu.RunConfig(
        cluster=cluster, model_dir=model_dir, tf_random_seed=seed,
        save_checkpoints_steps=config.save_checkpoints_steps,
        # 0 (the hparams' "keep all") and None mean the same to the Saver: keep every one.
        keep_checkpoint_max=config.keep_checkpoint_max or None,
        # TensorBoard scalars as often as the progress lines.
        save_summary_steps=config.log_every_steps,
        # The runners' LoopProgressHook reports the speed; TF's own step counter only warns.
        log_step_count_steps=None,
        # graph.pbtxt and the .meta files (the event file holds the graph regardless).
        checkpoint_save_graph_def=config.save_graph_def,
        # On a TPU the session config comes from the cluster (XLA always).
        session_config=None if config.use_tpu else session_config,
        tpu_config=estimator.tpu.TPUConfig(
            iterations_per_loop=config.iterations_per_loop,
            num_shards=config.num_tpu_cores if config.use_tpu else None,  # None: TF's CPU default
            tpu_job_name=config.tpu_job_name,
            per_host_input_for_training=estimator.tpu.InputPipelineConfig.PER_HOST_V2))


def build_tpu_estimator(config, model_fn, model_dir, seed, train_batch_size, eval_batch_size,
                        predict_batch_size=None, session_config=None):
    """The TPUEstimator (use_tpu: on the Cloud TPU of tpu_name; use_tpu_estimator: on this
    machine, use_tpu=False). model_fn(features, labels, mode, params) returns
    TPUEstimatorSpecs; params["batch_size"] is each core's share of the global batch
    sizes given here (a runner without prediction passes None)."""
    return estimator_api().tpu.TPUEstimator(
        use_tpu=config.use_tpu, model_fn=model_fn,
        config=run_config(config, model_dir, seed, session_config),
        train_batch_size=train_batch_size, eval_batch_size=eval_batch_size,
        predict_batch_size=predict_batch_size)
