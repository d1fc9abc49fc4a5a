"""TensorBoard event files of the training loop: one graph per run, the final step's
scalars, and scalars written outside a session (eval and dev metrics).

The Estimator wrote the graph twice into each start's event file (the cached writer's
constructor, then the checkpoint hook) and once more on every resume, so TensorBoard
warned "Found more than one graph event per run"; and its summaries every N steps never
reached the last step. Here one writer without a graph serves both hooks, the graph goes
in once per run directory, and the last step is logged too. Checkpoints are not touched.
"""

import os
import struct
import uuid

import tensorflow.compat.v1 as tf
from google.protobuf import message
from tensorflow.core.util import event_pb2
from tensorflow.python.training import training_util

EVENT_FILE_GLOB = "events.out.tfevents.*"


def has_graph_event(output_dir):
    """True if an event file in output_dir already holds a graph (each file read from the
    oldest on, until its first graph: a run's graph is among its first events)."""
    for path in sorted(tf.io.gfile.glob(os.path.join(output_dir, EVENT_FILE_GLOB))):
        if any(event.HasField("graph_def") for event in read_events(path)):
            return True
    return False


def read_events(path):
    """The Event protos of an event file, lazily; a file cut short (a killed run) or
    damaged ends at its last whole, readable record, as TensorBoard reads it. (TFRecord
    framing: length u64, its CRC u32, data, data's CRC u32; read here rather than by TF's
    iterator, which logs a deprecation warning.)"""
    with tf.io.gfile.GFile(path, "rb") as f:
        while True:
            header = f.read(12)
            if len(header) < 12:
                return
            length = struct.unpack("<Q", header[:8])[0]
            data = f.read(length + 4)
            if len(data) < length + 4:
                return
            try:
                event = event_pb2.Event.FromString(data[:length])
            except message.DecodeError:
                return
            yield event


class EventWriter(object):
    """The FileWriter the training hooks share, dropping graph events once the run
    directory has its graph (a resume's, or the cached writer's constructor's)."""

    def __init__(self, output_dir, with_graph):
        self._writer = tf.summary.FileWriter(output_dir)  # no graph: no event at creation
        self._with_graph = with_graph

    def add_graph(self, *args, **kwargs):
        if self._with_graph:
            self._writer.add_graph(*args, **kwargs)

    def add_meta_graph(self, *args, **kwargs):
        if self._with_graph:
            self._writer.add_meta_graph(*args, **kwargs)

    def __getattr__(self, name):  # add_summary, add_session_log, flush, close, ...
        return getattr(self._writer, name)


def open_event_writer(output_dir):
    """The writer for a training session in output_dir, with a graph only if none is there."""
    return EventWriter(output_dir, with_graph=not has_graph_event(output_dir))


class CheckpointSaverHook(tf.train.CheckpointSaverHook):
    """TF's saver hook (checkpoints and their timing unchanged) writing its graph and
    session-log events with the given EventWriter instead of the cached writer, whose
    constructor would add a graph event of the not yet finalised graph."""

    def __init__(self, checkpoint_dir, writer, **kwargs):
        super(CheckpointSaverHook, self).__init__(checkpoint_dir, **kwargs)
        self._event_writer = writer

    def begin(self):  # (TF's begin, with this writer)
        self._summary_writer = self._event_writer
        self._global_step_tensor = training_util._get_or_create_global_step_read()  # pylint: disable=protected-access
        if self._global_step_tensor is None:
            raise RuntimeError("Global step should be created to use CheckpointSaverHook.")
        for listener in self._listeners:
            listener.begin()


class SummarySaverHook(tf.train.SummarySaverHook):
    """TF's summary hook (every save_steps steps from the first) that also logs the step
    that ends the run (last_step), so the curves reach the final checkpoint."""

    def __init__(self, last_step, **kwargs):
        super(SummarySaverHook, self).__init__(**kwargs)
        self._last_step = last_step

    def before_run(self, run_context):
        args = super(SummarySaverHook, self).before_run(run_context)
        # _next_step: the global step the coming run ends at (None before the first).
        if not self._request_summary and self._next_step == self._last_step:
            self._request_summary = True
            summary_op = self._get_summary_op()
            if summary_op is not None:
                args.fetches["summary"] = summary_op
        return args


def write_scalars(output_dir, scalars, step):
    """{tag: number} as TensorBoard scalars at `step` in output_dir's event file."""
    with tf.Graph().as_default():  # the v1 writer works in graph mode only
        # An event file is named by the second and the host: a second writer to the same
        # dir within that second (the next task's dev metrics) would truncate the first's
        # file without a suffix of its own.
        writer = tf.summary.FileWriter(output_dir, filename_suffix="." + uuid.uuid4().hex[:8])
        writer.add_summary(tf.Summary(value=[
            tf.Summary.Value(tag=tag, simple_value=float(value))
            for tag, value in sorted(scalars.items())]), step)
        writer.close()
