"""Does TF's grappler/oneDNN fold the GELU into its matmul? Per GELU formulation, for one
dense layer (MatMul + BiasAdd + GELU, model/modeling.py's `dense`) at ELECTRA-small's
feed-forward shape:

  * the fused nodes TF ran, in an inference graph (prediction, evaluation, SavedModel
    export) and in a training graph (the same layer plus its gradients and an update);
    `_MklNativeFusedMatMul[BiasAdd,GeluExact]` means the GELU is computed inside the matmul
    kernel, `[BiasAdd]` alone that it runs as separate element-wise ops;
  * the median wall and CPU time (all threads) of the inference forward and of a training
    step of that layer, all formulations interleaved over --rounds in one process (shared
    machines drift; CPU time is less sensitive to other jobs than wall time).

    .venv/bin/python bench/gelu_fusion.py [--rows 2048] [--width 256] [--inner 1024]
        [--steps 20] [--rounds 3]
"""

import argparse
import collections
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

import numpy as np  # noqa: E402
import tensorflow as tf2  # noqa: E402
import tensorflow.compat.v1 as tf  # noqa: E402

from bench.profile_step import fused_ops  # noqa: E402
from model import modeling  # noqa: E402

FORMS = collections.OrderedDict([
    ("gelu: modeling.gelu (exact)", modeling.gelu),
    ("gelu_new: modeling.gelu_tanh", modeling.gelu_tanh),
    ("tf.nn.gelu exact", lambda x: tf2.nn.gelu(x, approximate=False)),
    # The same function through erfc, a form grappler's GeluExact pattern does not match.
    ("exact via erfc (unfused)", lambda x: x * (0.5 * tf.math.erfc(x * -(2 ** -0.5)))),
    ("tf.nn.gelu tanh", lambda x: tf2.nn.gelu(x, approximate=True)),
])


def build(form, args, training):
    """(session, op to run, feed) for dense(width -> inner, form) on [rows, width]."""
    graph = tf.Graph()
    with graph.as_default():
        tf.set_random_seed(1)
        x = tf.placeholder(tf.float32, [args.rows, args.width])
        y = modeling.dense(x, args.inner, "dense", activation=FORMS[form],
                           kernel_initializer=modeling.create_initializer())
        op = y
        if training:
            op = tf.train.GradientDescentOptimizer(1e-3).minimize(tf.reduce_sum(y * y))
        session = tf.Session(graph=graph)
        session.run(tf.global_variables_initializer())
    feed = {x: np.random.default_rng(1).normal(size=(args.rows, args.width)).astype(np.float32)}
    return session, op, feed


def fused_of(session, op, feed):
    metadata = tf.RunMetadata()
    session.run(op, feed, options=tf.RunOptions(output_partition_graphs=True),
                run_metadata=metadata)
    counts = fused_ops(metadata.partition_graphs)
    return ", ".join(sorted(counts)) or "none"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=2048, help="B x L (16 x 128)")
    parser.add_argument("--width", type=int, default=256, help="hidden size")
    parser.add_argument("--inner", type=int, default=1024, help="feed-forward width")
    parser.add_argument("--steps", type=int, default=20, help="timed runs per round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    tf.disable_eager_execution()
    runs = {(form, training): build(form, args, training)
            for form in FORMS for training in (False, True)}
    times, cpu_times = collections.defaultdict(list), collections.defaultdict(list)
    for _ in range(args.rounds):
        for key, (session, op, feed) in runs.items():
            session.run(op, feed)  # warm-up
            for _ in range(args.steps):
                start, cpu_start = time.perf_counter(), time.process_time()
                session.run(op, feed)
                times[key].append(time.perf_counter() - start)
                cpu_times[key].append(time.process_time() - cpu_start)
    print("dense %d -> %d on %d rows, %d x %d timed runs each, interleaved"
          % (args.width, args.inner, args.rows, args.rounds, args.steps))
    for training in (False, True):
        print("\n%s" % ("training step (forward + gradients + update)" if training
                        else "inference forward"))
        for form in FORMS:
            session, op, feed = runs[form, training]
            print("  %-30s %8.2f ms wall %8.2f ms CPU   fused: %s" % (
                form, 1000 * statistics.median(times[form, training]),
                1000 * statistics.median(cpu_times[form, training]),
                fused_of(session, op, feed)))
    print()
    for training in (False, True):
        ratios = [statistics.median(t["gelu: modeling.gelu (exact)", training])
                  / statistics.median(t["gelu_new: modeling.gelu_tanh", training])
                  for t in (times, cpu_times)]
        print("%s, gelu/gelu_new time: %.2fx wall, %.2fx CPU"
              % ("training step" if training else "inference forward", ratios[0], ratios[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
