"""Progress reporting and checkpoint listeners for the training loops (util/training_loop.py,
the TPUEstimator)."""

import logging
import time

import tensorflow.compat.v1 as tf

from util.io import format_duration, format_eta


def quiet_tensorflow():
    """Keeps TF's deprecation notices and INFO chatter out of the progress output.

    (C++ start-up logs need TF_CPP_MIN_LOG_LEVEL, set by the entry points before TF loads.)
    """
    tf.get_logger().setLevel(logging.WARNING)
    try:  # private, but the only switch for the compat.v1 deprecation notices
        from tensorflow.python.util import deprecation
        deprecation._PRINT_DEPRECATION_WARNINGS = False
    except ImportError:
        pass


class ProgressHook(tf.train.SessionRunHook):
    """Prints a line on the first step of a run and then every `every_steps` steps:
    step, losses, lr, speed, ETA. The first line shows where the losses start.

    tensors: {label: scalar tensor}, printed in order, e.g. {"loss": ..., "gen": ...}.
    Values are fetched only on logging steps, so the hook costs nothing in between.
    runs_per_step: session runs per global step (gradient accumulation's k micro-batches);
    a step's line is printed after its last run, with that micro-batch's tensors.
    """

    def __init__(self, tensors, num_train_steps, every_steps, batch_size, printer=print,
                 runs_per_step=1):
        self._tensors = dict(tensors)
        self._runs_per_step = runs_per_step
        self._num_train_steps = num_train_steps
        self._every = every_steps
        self._batch_size = batch_size
        self._print = printer

    def begin(self):
        self._global_step = tf.train.get_or_create_global_step()

    def after_create_session(self, session, coord):
        self._step = int(session.run(self._global_step))
        self._start_step = self._step
        self._start_time = self._last_time = time.time()
        self._last_step = self._step
        self._runs = 0

    def before_run(self, run_context):
        self._runs += 1
        if self._runs % self._runs_per_step:
            return None  # a micro-batch in the middle of an update
        self._step += 1  # the step this run will complete
        if (self._step % self._every == 0 or self._step == self._num_train_steps
                or self._step == self._start_step + 1):
            return tf.train.SessionRunArgs(self._tensors)
        return None

    def after_run(self, run_context, run_values):
        if run_values.results is None:
            return
        self._report(self._step, ["%s %s" % (label, _format_value(v))
                                  for label, v in run_values.results.items()])

    def _report(self, step, parts):
        """The progress line for global step `step`; parts: "label value" strings."""
        now = time.time()
        rate = (step - self._last_step) / max(now - self._last_time, 1e-9)
        elapsed = now - self._start_time
        self._print("step %d/%d | %s%.2f steps/s %.1f seq/s | elapsed %s | ETA %s" % (
            step, self._num_train_steps, "".join(p + " | " for p in parts), rate,
            rate * self._batch_size, format_duration(elapsed),
            format_eta(step - self._start_step, self._num_train_steps - self._start_step,
                       elapsed)), flush=True)
        self._last_time, self._last_step = now, step


class LoopProgressHook(ProgressHook):
    """ProgressHook's line without the losses, for the TPU graph: a TPU runs
    iterations_per_loop steps per session run and its tensors stay on the device, so this
    reads the global step (a host variable) after each run and reports every
    `every_steps` steps: step, speed, ETA."""

    def __init__(self, num_train_steps, every_steps, batch_size, printer=print):
        super().__init__({}, num_train_steps, every_steps, batch_size, printer)

    def before_run(self, run_context):
        return None

    def after_run(self, run_context, run_values):
        step = int(run_context.session.run(self._global_step))
        if step // self._every > self._last_step // self._every or \
                step >= self._num_train_steps:
            self._report(step, [])


class CountingHook(tf.train.SessionRunHook):
    """Counts session runs (e.g. evaluation batches) on a util.progress.Progress line."""

    def __init__(self, progress):
        self._progress = progress

    def after_run(self, run_context, run_values):
        self._progress.update()

    def end(self, session):
        self._progress.finish()


class CheckpointLogger(tf.train.CheckpointSaverListener):
    """Says when a checkpoint has been written (so a user knows what a restart resumes)."""

    def __init__(self, printer=print):
        self._print = printer

    def after_save(self, session, global_step_value):
        self._print("checkpoint saved at step %d" % global_step_value, flush=True)


def _format_value(value):
    value = float(value)
    return "%.2e" % value if 0 < abs(value) < 1e-3 else "%.4f" % value
