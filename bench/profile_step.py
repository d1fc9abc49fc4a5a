"""Where a pre-training step's time goes: kernel time by op type, fp32 graph vs bf16.

    python bench/profile_step.py [--model-size small] [--seq-length 128] [--batch-size 16]
        [--steps 5] [--variants fp32,bf16] [--hidden-acts gelu,gelu_new]

Each variant runs in its own process: a few warm-up steps, then --steps traced steps
(TF's FULL_TRACE step stats); the kernel time of every op (its start to end on its thread)
is summed per op type and averaged per step. The table splits matrix multiplications from
the rest, since only the former get faster in bfloat16 on a CPU; the last line is the
speed-up Amdahl's law allows bf16 when the rest costs what it costs in fp32. Then the fused
matmuls grappler/oneDNN made of the graph, e.g. `_MklNativeFusedMatMul[BiasAdd,GeluExact]`
(a GELU folded into its matmul) or `[BiasAdd]` (the GELU left as separate element-wise ops).
Tracing slows the step a little; compare the shares, not the totals, with pretrain_step.py.
"""

import argparse
import collections
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from bench import step_common  # noqa: E402
from util import modes  # noqa: E402
from bench.pretrain_step import child_args, model_fn_and_batch  # noqa: E402

MATMUL_OPS = ("MatMul", "BatchMatMul", "Einsum", "FusedMatMul")  # substrings of op types
TOP_OPS = 12  # op types listed by name; the rest are summed in one row


def kernel_ms_by_op(step_stats):
    """{op type: ms} of one traced step."""
    totals = collections.Counter()
    for device in step_stats.dev_stats:
        for node in device.node_stats:
            if " = " not in node.timeline_label:  # e.g. the session's own bookkeeping
                continue
            op = node.timeline_label.split(" = ")[1].split("(")[0]
            totals[op] += (node.op_end_rel_micros - node.op_start_rel_micros) / 1000.0
    return totals


def fused_ops(partition_graphs):
    """{"<op type>[<fused ops>]": count} of the fused nodes in the graphs TF ran."""
    counts = collections.Counter()
    for graph in partition_graphs:
        for node in graph.node:
            if "fused_ops" in node.attr:
                fused = ",".join(op.decode() for op in node.attr["fused_ops"].list.s)
                counts["%s[%s]" % (node.op, fused)] += 1
    return counts


def run_variant(args, variant):
    """In the child: build, warm up, trace; print the RESULT line ({"kernel_ms": {op: ms
    per step}, "fused": fused_ops of the step})."""
    import tensorflow.compat.v1 as tf

    _, model_fn, batch = model_fn_and_batch(args, variant)
    totals = collections.Counter()
    with tf.Graph().as_default():
        tf.set_random_seed(1)
        spec = model_fn(step_common.in_memory_features(batch), None,
                        modes.TRAIN, {})
        with tf.Session() as session:
            session.run(tf.global_variables_initializer())
            for _ in range(args.warmup_steps):
                session.run(spec.train_op)
            options = tf.RunOptions(trace_level=tf.RunOptions.FULL_TRACE,
                                    output_partition_graphs=True)
            for _ in range(args.steps):
                metadata = tf.RunMetadata()
                session.run(spec.train_op, options=options, run_metadata=metadata)
                totals.update(kernel_ms_by_op(metadata.step_stats))
    step_common.emit_result({"kernel_ms": {op: ms / args.steps for op, ms in totals.items()},
                             "fused": fused_ops(metadata.partition_graphs)})


def is_matmul(op):
    return any(part in op for part in MATMUL_OPS)


def print_profile(results, fused=None):
    """results: {label: {op: ms per step}} -> the table and the Amdahl line (when the first
    two labels differ in precision only); fused: {label: fused_ops} -> one line each."""
    variants = list(results)
    width = max([12] + [len(v) + 2 for v in variants])
    first = results[variants[0]]
    others = sorted((op for op in first if not is_matmul(op)), key=lambda op: -first[op])
    print("%-26s" % "kernel ms per step" + "".join("%*s" % (width, v) for v in variants))

    def row(label, ops):
        print("%-26s" % label + "".join(
            "%*.0f" % (width, sum(results[v].get(op, 0.0) for op in ops)) for v in variants))

    all_ops = set().union(*results.values())
    matmuls = sorted(op for op in all_ops if is_matmul(op))
    rest = [op for op in all_ops if not is_matmul(op)]
    row("matmul (all kinds)", matmuls)
    for op in others[:TOP_OPS]:
        row("  " + op, [op])
    row("  other ops", [op for op in rest if op not in others[:TOP_OPS]])
    row("everything but matmul", rest)
    row("total", all_ops)
    for label, counts in (fused or {}).items():
        print("fused matmuls, %s: %s" % (label, ", ".join(
            "%s x%d" % item for item in sorted(counts.items())) or "none"))
    acts = [step_common.split_label(v)[1] for v in variants[:2]]
    if len(variants) > 1 and acts[0] == acts[1]:
        base, fast = results[variants[0]], results[variants[1]]
        base_mm = sum(base.get(op, 0.0) for op in matmuls)
        fast_mm = sum(fast.get(op, 0.0) for op in matmuls)
        base_total = sum(base.values())
        share = base_mm / base_total
        speedup = base_mm / fast_mm
        print("matmul share of %s kernel time %.0f%%; %s matmuls %.2fx faster; with the rest "
              "unchanged %s could be at most %.2fx %s" % (
                  variants[0], 100 * share, variants[1], speedup, variants[1],
                  1.0 / ((1 - share) + share / speedup), variants[0]))


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    step_common.add_step_args(parser, rounds=False)  # the traced steps are not timed
    parser.add_argument("--seq-length", type=int, default=128)
    parser.set_defaults(steps=5, variants="fp32,bf16")
    args = parser.parse_args(argv)
    step_common.check_step_args(parser, args)
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.run_variant:
        run_variant(args, args.run_variant)
        return 0
    print("kernel time of a pre-training step by op type: model %s, seq %d, batch %d, "
          "%d traced steps per variant" % (args.model_size, args.seq_length,
                                           args.batch_size, args.steps), flush=True)
    results, fused = {}, {}
    for label in step_common.run_labels(args):
        result = step_common.run_child(os.path.abspath(__file__), child_args(args, label))
        if "error" in result:
            print("%s failed: %s" % (label, result["error"]))
            return 1
        results[label], fused[label] = result["kernel_ms"], result["fused"]
    print_profile(results, fused)
    return 0


if __name__ == "__main__":
    sys.exit(main())
