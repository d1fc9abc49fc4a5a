"""The one Estimator builder of both runners (run_pretraining.py, run_finetuning.py).

The runners differ only in the model_fn, the model dir, the seed, the strategies and the
batch sizes they pass; the checkpoint, summary and logging settings come from the same
hparams (save_checkpoints_steps, keep_checkpoint_max, log_every_steps, save_graph_def) the
same way, for the tf.estimator.Estimator and the TPUEstimator alike.
"""

import tensorflow.compat.v1 as tf

from util import tpu


def run_config(config, model_dir, seed, session_config=None, train_distribute=None,
               eval_distribute=None):
    """The RunConfig: a tf.estimator.tpu.RunConfig for the TPU graph (tpu.tpu_graph),
    else a tf.estimator.RunConfig. Arguments as for build_estimator."""
    settings = dict(
        model_dir=model_dir, tf_random_seed=seed,
        save_checkpoints_steps=config.save_checkpoints_steps,
        # 0 (the hparams' "keep all") and None mean the same to the Saver: keep every one.
        keep_checkpoint_max=config.keep_checkpoint_max or None,
        # TensorBoard scalars as often as the progress lines.
        save_summary_steps=config.log_every_steps,
        # The runners' ProgressHook reports the speed; TF's own step counter only warns.
        log_step_count_steps=None,
        # graph.pbtxt and the .meta files (the event file holds the graph regardless).
        checkpoint_save_graph_def=config.save_graph_def,
        session_config=session_config)
    if not tpu.tpu_graph(config):
        return tf.estimator.RunConfig(train_distribute=train_distribute,
                                      eval_distribute=eval_distribute, **settings)
    cluster = None  # as the official code: no tpu_name, no resolver (TF's defaults)
    if config.use_tpu and config.tpu_name:
        cluster = tf.distribute.cluster_resolver.TPUClusterResolver(
            config.tpu_name, zone=config.tpu_zone, project=config.gcp_project)
    if config.use_tpu:  # on a TPU the session config comes from the cluster (XLA always)
        settings["session_config"] = None
    return tf.estimator.tpu.RunConfig(
        cluster=cluster, **settings,
        tpu_config=tf.estimator.tpu.TPUConfig(
            iterations_per_loop=config.iterations_per_loop,
            num_shards=config.num_tpu_cores if config.use_tpu else None,  # None: TF's CPU default
            tpu_job_name=config.tpu_job_name,
            per_host_input_for_training=tf.estimator.tpu.InputPipelineConfig.PER_HOST_V2))


def build_estimator(config, model_fn, model_dir, seed, train_batch_size, eval_batch_size,
                    predict_batch_size=None, session_config=None, train_distribute=None,
                    eval_distribute=None):
    """The Estimator a runner trains, evaluates and predicts with.

    config: the runner's hparams (PretrainingConfig or FinetuningConfig); read here:
      save_checkpoints_steps (checkpoint interval), keep_checkpoint_max (newest kept; 0
      keeps all), log_every_steps (TensorBoard summary interval), save_graph_def
      (graph.pbtxt and .meta files), and use_tpu / use_tpu_estimator with the TPU keys
      (tpu_name, tpu_zone, gcp_project, tpu_job_name, num_tpu_cores, iterations_per_loop),
      which pick the TPUEstimator.
    model_fn: model_fn(features, labels, mode, params). The TPUEstimator passes params
      (params["batch_size"]: each core's share of the batch); the Estimator gets {}.
    model_dir, seed: where checkpoints and summaries go; the graph-level random seed
      (None: random), distinct per fine-tuning trial.
    train_batch_size, eval_batch_size, predict_batch_size: global batch sizes, used by the
      TPUEstimator only (it splits them over the cores; a runner without prediction passes
      None); the Estimator's input functions batch by themselves.
    session_config: a tf.ConfigProto (e.g. XLA auto-clustering) or None for TF's default;
      ignored on a Cloud TPU, whose cluster supplies it.
    train_distribute, eval_distribute: tf.distribute strategies for Estimator.train and
      Estimator.evaluate, or None for one device (the default: a runner opts in to each;
      Estimator.predict is never distributed). Not used for the TPU graph, which shards
      over TPU cores by itself.
    """
    estimator_config = run_config(config, model_dir, seed, session_config,
                                  train_distribute, eval_distribute)
    if tpu.tpu_graph(config):  # a Cloud TPU, or the TPU graph here (use_tpu_estimator)
        return tf.estimator.tpu.TPUEstimator(
            use_tpu=config.use_tpu, model_fn=model_fn, config=estimator_config,
            train_batch_size=train_batch_size, eval_batch_size=eval_batch_size,
            predict_batch_size=predict_batch_size)
    return tf.estimator.Estimator(
        lambda features, labels, mode: model_fn(features, labels, mode, {}),
        config=estimator_config)
