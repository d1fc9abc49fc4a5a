"""The training loop of both runners on CPUs and GPUs, on one host or several: train,
evaluate and predict with tf.compat.v1 graphs and sessions, in place of
tf.estimator.Estimator (gone after TensorFlow 2.15). The TPU graph (use_tpu,
use_tpu_estimator) runs on the TPUEstimator instead (util/tpu_estimator.py); build_trainer
picks one, and both answer train / evaluate / predict / get_variable_value alike.

Each graph is built in the Estimator's order -- graph seed, global_step, the input
pipeline on /cpu:0, the model function, the "loss" summary, a sharded Saver -- and
run by a MonitoredSession with the Estimator's hooks, so that a run gives the checkpoints
(names, values, the `checkpoint` file, keep-max), TensorBoard summaries, eval metrics and
predictions the Estimator gave (tests/test_training_loop.py compares the two on TF 2.15).
The order matters to the numbers: a random op without a seed of its own (the data's
shuffle, dropout) takes the count of such ops before it in the graph as its op seed.

A model function: model_fn(features, labels, mode, params) -> util.modes.ModelSpec, with
params {} (the TPUEstimator passes its batch size there).
"""

import contextlib
import os
import time

import tensorflow.compat.v1 as tf
from tensorflow.core.protobuf.rewriter_config_pb2 import RewriterConfig

from util import checkpoints
from util import distribute
from util import fs
from util import interrupt
from util import modes
from util import summaries
from util import tpu
from util import tpu_estimator
from util.errors import InputError

# TF's graph collection holding the global step's read, which its hooks share
# (training_util.GLOBAL_STEP_READ_KEY, not exported: tests/test_tf_internals.py checks the
# name); under a strategy it must be the strategy's read, made here as the Estimator did.
GLOBAL_STEP_READ_KEY = "global_step_read_op_cache"
# Names the Estimator puts beside the model's metrics.
RESERVED_METRICS = ("loss", "global_step")


def build_trainer(config, model_fn, model_dir, seed, train_batch_size, eval_batch_size,
                  predict_batch_size=None, session_config=None, train_distribute=None,
                  eval_distribute=None):
    """What a runner trains, evaluates and predicts with: a Trainer, or the TPUEstimator for
    the TPU graph (use_tpu / use_tpu_estimator, TF 2.15 only).

    config: the runner's hparams; read here: save_checkpoints_steps, keep_checkpoint_max
      (0 keeps all), log_every_steps (TensorBoard summary interval), save_graph_def, the
      distribution and the TPU keys.
    model_dir, seed: where checkpoints and summaries go; the graph-level random seed.
    train_batch_size, eval_batch_size, predict_batch_size: global batch sizes, used by the
      TPUEstimator only (it splits them over the cores); the input functions batch here.
    session_config: a tf.ConfigProto (e.g. XLA auto-clustering) or None for the default.
    train_distribute, eval_distribute: tf.distribute strategies, or None for one device;
      prediction always runs on one device.
    """
    if tpu.tpu_graph(config):  # (tf.estimator: TF 2.15 only)
        return tpu_estimator.build_tpu_estimator(
            config, model_fn, model_dir, seed, train_batch_size, eval_batch_size,
            predict_batch_size, session_config)
    return Trainer(config, model_fn, model_dir, seed, session_config, train_distribute,
                   eval_distribute)


def default_session_config():
    """The Estimator's default: soft placement, one pass of Grappler's meta optimizer."""
    config = tf.ConfigProto(allow_soft_placement=True)
    config.graph_options.rewrite_options.meta_optimizer_iterations = RewriterConfig.ONE
    return config


class Trainer:
    """Trains, evaluates and predicts with model_fn, checkpoints in model_dir."""

    def __init__(self, config, model_fn, model_dir, seed, session_config=None,
                 train_distribute=None, eval_distribute=None):
        self.model_dir = model_dir
        self._model_fn = model_fn
        self._seed = seed
        self._save_steps = config.save_checkpoints_steps
        self._save_secs = config.save_checkpoints_secs  # 0: by steps only
        self._keep_max = config.keep_checkpoint_max or None  # 0 and None: keep every one
        self._summary_steps = config.log_every_steps  # as often as the progress lines
        self._save_graph_def = config.save_graph_def
        self._session_config = session_config or default_session_config()
        self._train_strategy = train_distribute
        self._eval_strategy = eval_distribute
        self._multi_worker = config.distribution == "multi_worker_mirrored" \
            and train_distribute is not None
        self._chief = distribute.is_chief(config)

    # -- training -------------------------------------------------------------------------

    def train(self, input_fn, max_steps, saving_listeners=(), hooks=()):
        """Trains to global step max_steps, from the newest checkpoint in model_dir if any
        (nothing to do if it is there already). saving_listeners: CheckpointSaverListeners
        called around each checkpoint (on the chief); hooks: extra SessionRunHooks.
        Returns the last session run's loss (None if no step ran)."""
        latest = checkpoints.latest_checkpoint(self.model_dir)
        if latest and checkpoints.global_step(latest) >= max_steps:
            return None
        checkpoints.repair_state_file(self.model_dir)  # TF resumes by the state file only
        if self._multi_worker:
            self._check_hosts_agree(checkpoints.global_step(latest) if latest else 0)
        with tf.Graph().as_default() as graph:
            if self._train_strategy is None:
                spec, input_hooks = self._build_train_graph(graph, input_fn)
            else:
                spec, input_hooks = self._build_distributed_train_graph(graph, input_fn)
            loss, train_op = spec.loss, spec.train_op
            # The Estimator's own: a "loss" scalar beside the model's summaries, and the
            # Saver every checkpoint is written with.
            if not any(s.op.name == "loss" for s in tf.get_collection(tf.GraphKeys.SUMMARIES)):
                tf.summary.scalar("loss", loss)
            tf.add_to_collection(tf.GraphKeys.LOSSES, loss)
            tf.add_to_collection(tf.GraphKeys.SAVERS, tf.train.Saver(
                sharded=True, max_to_keep=self._keep_max, keep_checkpoint_every_n_hours=10000,
                defer_build=True, save_relative_paths=True))
            scaffold = tf.train.Scaffold(init_fn=spec_init_fn(spec.init_fn))
            worker_hooks = (input_hooks + list(hooks)
                            + [tf.train.StopAtStepHook(last_step=max_steps),
                               tf.train.NanTensorHook(loss)] + list(spec.training_hooks))
            session, writer = self._training_session(scaffold, worker_hooks,
                                                     list(saving_listeners), max_steps)
            last_loss = None  # (an input that ends at once trains no step)
            # A SIGTERM or Ctrl-C stops the loop between two steps, where the step's
            # checkpoint can be saved (util/interrupt.py); one during the final save (the
            # session's close) waits for it.
            try:
                with interrupt.deferred(), session:
                    while not session.should_stop():
                        _, last_loss = session.run([train_op, loss])
                        if interrupt.requested():
                            self._save_and_stop(session, scaffold)
            finally:  # after the session's close, whose final save logs to it
                writer.close()
            if interrupt.requested():  # came during the final save: it is on disk
                latest = checkpoints.latest_checkpoint(self.model_dir)
                raise interrupt.Stopped(interrupt.take_request(), latest,
                                        checkpoints.global_step(latest) if latest else None)
        return last_loss

    def _check_hosts_agree(self, step):
        """On a cluster, before the training session: every host is to start from the same
        step, or all stop with a message. Each restores from model_dir as it sees it; with
        a model_dir on each host's own disk they would find different checkpoints and wait
        forever in the first collective (the chief's initial values are broadcast to hosts
        that restored instead). One all-reduce of the step, in a graph of its own."""
        strategy = self._train_strategy
        with tf.Graph().as_default():
            with strategy.scope():
                total = strategy.reduce(
                    tf.distribute.ReduceOp.SUM, strategy.extended.call_for_each_replica(
                        lambda: tf.constant(float(step))), axis=None)
            cluster, task_type, index = distribute.read_tf_config()
            with tf.Session("grpc://" + cluster[task_type][index],
                            config=strategy.update_config_proto(self._session_config)) as s:
                step_sum = s.run(total)
        replicas = strategy.num_replicas_in_sync
        if step_sum != replicas * step:
            raise InputError(
                "the hosts of the cluster start from different checkpoints (this one at step "
                "%d, the mean over the %d replicas %.1f): model_dir %s must be one storage "
                "every host sees (a bucket, a shared file system), not each host's own disk"
                % (step, replicas, step_sum / replicas, self.model_dir))

    def _save_and_stop(self, session, scaffold):
        """Saves the current step's checkpoint and raises interrupt.Stopped naming it. Not
        on a cluster: a save there may wait in a collective for workers still training,
        so it stops at once and resumes from the last periodic checkpoint."""
        signum = interrupt.take_request()
        if self._multi_worker:
            raise interrupt.Stopped(signum)
        saved, step = session.run_step_fn(lambda step_context: save_checkpoint(
            step_context.session, scaffold.saver, self.model_dir, self._save_graph_def))
        raise interrupt.Stopped(signum, saved, step)

    def _build_train_graph(self, graph, input_fn):
        """One device: (the model's ModelSpec, input hooks)."""
        tf.set_random_seed(self._seed)
        tf.train.create_global_step(graph)
        features, labels, input_hooks = call_input_fn(input_fn)
        return self._model_fn(features, labels, modes.TRAIN, {}), input_hooks

    def _build_distributed_train_graph(self, graph, input_fn):
        """Each replica's model under the strategy (the Estimator's order: the input
        pipeline before global_step here); the loss is the sum of the replicas' (each
        holds its share of the batch's): (a ModelSpec of the whole, input hooks)."""
        strategy = self._train_strategy
        with strategy.scope():
            tf.set_random_seed(self._seed)
            features, labels, input_hooks = distributed_input(strategy, input_fn)
            global_step = tf.train.create_global_step(graph)
            tf.add_to_collection(GLOBAL_STEP_READ_KEY, strategy.extended.read_var(global_step))
            grouped = strategy.extended.call_for_each_replica(
                self._model_fn, args=(features, labels, modes.TRAIN, {}))
            loss = strategy.reduce(tf.distribute.ReduceOp.SUM, grouped.loss, axis=None)
            train_op = strategy.group(grouped.train_op)
            spec = modes.ModelSpec(
                mode=modes.TRAIN, loss=loss, train_op=train_op,
                init_fn=strategy.experimental_local_results(grouped.init_fn)[0],
                training_hooks=[strategy.experimental_local_results(h)[0]
                                for h in grouped.training_hooks])
        return spec, input_hooks

    def _training_session(self, scaffold, worker_hooks, listeners, max_steps):
        """The MonitoredSession of training, with the hooks the Estimator's
        MonitoredTrainingSession had: checkpoints every save_checkpoints_steps (and at the
        end), summaries every log_every_steps, then the worker hooks. On a cluster every
        worker initialises (or restores from model_dir) its own copy and runs the saving
        hooks too (their ops may hold collectives); the other workers write theirs under
        model_dir/tmp_worker_<index>/, which can be deleted. Both hooks write with one
        event writer (util/summaries.py: one graph per run, the last step's scalars).
        Returns (the session, that writer)."""
        output_dir, master, config = self.model_dir, "", self._session_config
        if self._multi_worker:
            cluster, task_type, index = distribute.read_tf_config()
            master = "grpc://" + cluster[task_type][index]
            config = self._train_strategy.update_config_proto(config)
            if not self._chief:
                output_dir = os.path.join(self.model_dir, "tmp_%s_%d" % (task_type, index))
                listeners = []
        writer = summaries.open_event_writer(output_dir)
        saver_hook = summaries.CheckpointSaverHook(
            output_dir, writer, save_steps=self._save_steps, scaffold=scaffold,
            listeners=listeners, save_graph_def=self._save_graph_def)
        summary_hook = summaries.SummarySaverHook(
            max_steps, save_steps=self._summary_steps, summary_writer=writer, scaffold=scaffold)
        if self._multi_worker:  # (no timed saves: the workers' clocks would disagree on
            hooks = worker_hooks + [summary_hook, saver_hook]  # the step to save at)
        else:  # the Estimator's order: its chief-only saver first
            hooks = [saver_hook, summary_hook] + worker_hooks
            if self._save_secs:
                hooks.insert(1, TimedCheckpointHook(self._save_secs, scaffold, output_dir,
                                                    self._save_graph_def, listeners))
        creator = tf.train.ChiefSessionCreator(scaffold=scaffold, master=master, config=config,
                                               checkpoint_dir=self.model_dir)
        return tf.train.MonitoredSession(session_creator=creator, hooks=hooks,
                                         stop_grace_period_secs=120), writer

    # -- evaluation and prediction --------------------------------------------------------

    def evaluate(self, input_fn, steps=None, checkpoint_path=None, hooks=()):
        """The eval metrics (plus "loss", the mean of the batches' losses, and
        "global_step") of checkpoint_path (default: the newest) over `steps` batches or
        until the input ends (steps None: until then); also written as TensorBoard scalars
        to model_dir/eval."""
        checkpoint_path = checkpoint_path or self._latest_checkpoint()
        strategy = self._eval_strategy
        with tf.Graph().as_default() as graph, \
                (strategy.scope() if strategy else contextlib.nullcontext()):
            tf.set_random_seed(self._seed)
            global_step = tf.train.create_global_step(graph)
            if strategy is None:
                features, labels, input_hooks = call_input_fn(input_fn)
                spec = self._model_fn(features, labels, modes.EVAL, {})
                check_metric_names(spec.eval_metric_ops)
                metrics = dict(spec.eval_metric_ops, loss=tf.metrics.mean(spec.loss))
                update_ops = [metrics[name][1] for name in sorted(metrics)]
            else:
                metrics, update_ops, input_hooks = self._distributed_eval_metrics(input_fn)
            values = {name: metrics[name][0] for name in sorted(metrics)}
            values["global_step"] = global_step
            final = tf.train.FinalOpsHook(values)
            update = tf.group(*update_ops)
            with self._restoring_session(checkpoint_path,
                                         input_hooks + list(hooks) + [final]) as session:
                done = 0
                while not session.should_stop() and (steps is None or done < steps):
                    session.run(update)
                    done += 1
        results = final.final_ops_values
        summaries.write_scalars(os.path.join(self.model_dir, "eval"),
                                {k: v for k, v in results.items() if k != "global_step"},
                                int(results["global_step"]))
        return results

    def _distributed_eval_metrics(self, input_fn):
        """The eval metrics of each replica's model under the eval strategy."""
        strategy = self._eval_strategy
        features, labels, input_hooks = distributed_input(strategy, input_fn)
        grouped = strategy.extended.call_for_each_replica(
            self._model_fn, args=(features, labels, modes.EVAL, {}))
        check_metric_names(grouped.eval_metric_ops)
        metrics = dict(grouped.eval_metric_ops)
        metrics["loss"] = strategy.extended.call_for_each_replica(
            tf.metrics.mean, args=(grouped.loss,))
        update_ops = [strategy.group(metrics[name][1]) for name in sorted(metrics)]
        return metrics, update_ops, input_hooks

    def predict(self, input_fn, checkpoint_path=None, yield_single_examples=True):
        """Yields the model's predictions ({name: value}; the model function's predictions
        must be such a dict) with checkpoint_path (default: the newest), one example at a
        time (or one batch), until the input ends."""
        checkpoint_path = checkpoint_path or self._latest_checkpoint()
        with tf.Graph().as_default() as graph:
            tf.set_random_seed(self._seed)
            tf.train.create_global_step(graph)
            features, _, input_hooks = call_input_fn(input_fn)
            predictions = self._model_fn(features, None, modes.PREDICT, {}).predictions
            if not isinstance(predictions, dict) or not predictions:
                raise ValueError("a model function's predictions must be a non-empty dict "
                                 "{name: tensor with the batch first}, got %r" % (predictions,))
            with self._restoring_session(checkpoint_path, input_hooks) as session:
                while not session.should_stop():
                    batch = session.run(predictions)
                    if not yield_single_examples:
                        yield batch
                        continue
                    for i in range(batch_length(batch)):
                        yield {name: value[i] for name, value in batch.items()}

    def _restoring_session(self, checkpoint_path, hooks):
        creator = tf.train.ChiefSessionCreator(
            scaffold=tf.train.Scaffold(), checkpoint_filename_with_path=checkpoint_path,
            config=self._session_config)
        return tf.train.MonitoredSession(session_creator=creator, hooks=hooks)

    def _latest_checkpoint(self):
        latest = checkpoints.latest_checkpoint(self.model_dir)
        if not latest:
            raise ValueError("no checkpoint in %s to evaluate or predict with" % self.model_dir)
        return latest

    def get_variable_value(self, name):
        """A variable's value in the newest checkpoint."""
        return tf.train.load_checkpoint(
            fs.tf_checkpoint_path(self._latest_checkpoint())).get_tensor(name)


def save_checkpoint(session, saver, model_dir, save_graph_def):
    """Saves session's variables as model_dir/model.ckpt-<global step> with the saving
    hook's Saver (the same names, shards and keep-max), unless that step's checkpoint is
    the newest already. Returns (the prefix, the step)."""
    step = int(session.run(tf.train.get_global_step()))
    newest = checkpoints.latest_checkpoint(model_dir)
    if newest and fs.basename(newest) == "model.ckpt-%d" % step:
        return newest, step
    return saver.save(session, os.path.join(model_dir, "model.ckpt"), global_step=step,
                      write_meta_graph=save_graph_def), step


class TimedCheckpointHook(tf.train.SessionRunHook):
    """Also saves a checkpoint once every_secs have passed since the last one (the
    Estimator's save_checkpoints_secs, here beside the step cadence): a run killed
    without warning (SIGKILL, a lost machine) loses minutes, not all since the last step
    checkpoint. Calls the listeners (e.g. the "checkpoint saved" line) as the saver does."""

    def __init__(self, every_secs, scaffold, model_dir, save_graph_def, listeners):
        self._every_secs = every_secs
        self._scaffold = scaffold
        self._model_dir = model_dir
        self._save_graph_def = save_graph_def
        self._listeners = listeners

    def after_create_session(self, session, coord):
        self._last = time.time()

    def after_run(self, run_context, run_values):
        if time.time() < self._last + self._every_secs:
            return
        session = run_context.session
        step = int(session.run(tf.train.get_global_step()))
        for listener in self._listeners:
            listener.before_save(session, step)
        save_checkpoint(session, self._scaffold.saver, self._model_dir, self._save_graph_def)
        for listener in self._listeners:
            listener.after_save(session, step)
        self._last = time.time()


def check_metric_names(eval_metric_ops):
    """The model's metrics must leave the loop's own names free."""
    taken = sorted(set(eval_metric_ops) & set(RESERVED_METRICS))
    if taken:
        raise ValueError("eval metric names %s are the training loop's own (the mean loss "
                         "and the checkpoint's step): rename them" % ", ".join(taken))


def batch_length(batch):
    """The batch size of a session run's predictions, the same for every name."""
    lengths = {name: len(value) for name, value in batch.items()}
    if len(set(lengths.values())) != 1:
        raise ValueError("predictions of different batch lengths: %s" % lengths)
    return next(iter(lengths.values()))


def split_features(result):
    """(features, labels) from what a dataset yields: a pair, or the features alone."""
    if isinstance(result, (list, tuple)):
        if len(result) != 2:
            raise ValueError("an input_fn's dataset yields features or (features, labels), "
                             "got %d elements" % len(result))
        return result[0], result[1]
    return result, None


def call_input_fn(input_fn):
    """One device: (features, labels, [hook initialising the iterator])."""
    with tf.device("/cpu:0"):  # the input pipeline on the host, as the Estimator placed it
        dataset = input_fn(params={})
    iterator = tf.data.make_initializable_iterator(dataset)
    features, labels = split_features(iterator.get_next())
    return features, labels, [InitializeIterator(lambda: iterator.initializer)]


def distributed_input(strategy, input_fn):
    """Under a strategy: each input pipeline's share, as per-replica (features, labels)."""
    iterator = strategy.make_input_fn_iterator(
        lambda input_context: input_fn(params={}, input_context=input_context))
    features, labels = split_features(iterator.get_next())
    return features, labels, [InitializeIterator(iterator.initialize)]


def spec_init_fn(init_fn):
    """A Scaffold's init_fn (scaffold, session) for a ModelSpec's init_fn (session)."""
    if init_fn is None:
        return None
    return lambda scaffold, session: init_fn(session)


class InitializeIterator(tf.train.SessionRunHook):
    """Runs an input iterator's initializer once the session exists."""

    def __init__(self, make_initializer):
        self._make_initializer = make_initializer

    def begin(self):
        self._initializer = self._make_initializer()

    def after_create_session(self, session, coord):
        session.run(self._initializer)
