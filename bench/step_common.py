"""What bench/pretrain_step.py and bench/finetune_step.py share.

Each variant (fp32, xla, bf16, xla+bf16; fp16 on a GPU) runs in a fresh subprocess, so
that its peak RSS is its own and no XLA cache or TF state carries over. The child builds
the runner's own training graph (run_pretraining's / finetune/model_fn.py's model_fn: the same
model, mixed precision and optimizer) on synthetic batches that live in memory, runs
warm-up steps (the first one compiles with XLA), then times each of `steps` training
steps on its own (wall time, and CPU time of all its threads, which other jobs on the
machine skew less), and prints one `RESULT {json}` line that the parent collects.

Model FLOPs are counted analytically from the matmul shapes (see encoder_forward_flops):
2 FLOPs per multiply-add, training step = 3 x forward (the backward pass does two matmuls
per forward one: the gradients with respect to the input and to the weights).
Element-wise work (softmax, LayerNorm, GELU, dropout, Adam) and embedding lookups are not
counted, so FLOPs/s is a lower bound on what the hardware does, as in MFU figures.
"""

import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import time

import numpy as np

from util import modes

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE_VOCAB = os.path.join(REPO, "sample_data", "vocab.txt")
VARIANTS = ("fp32", "xla", "bf16", "xla+bf16")
DEFAULT_ACT = "gelu"  # the configs' hidden_act (exact erf GELU)
_PARTS = ("fp32", "xla", "bf16", "fp16")
RESULT_PREFIX = "RESULT "
NUM_BATCHES = 4  # distinct synthetic batches, cycled (different data each step)


_ACCUM_PART = re.compile(r"^accum[1-9]\d*$")  # "accum<k>": gradient_accumulation_steps k


def parse_training_parts(name):
    """The optimizer parts of a variant: "fp32+lamb" -> ("lamb", 1), "fp32+accum4" ->
    ("adamw", 4) (gradient_accumulation_steps); anything else -> ("adamw", 1)."""
    parts = split_label(name)[0].split("+")
    steps = [int(p[len("accum"):]) for p in parts if _ACCUM_PART.match(p)]
    return ("lamb" if "lamb" in parts else "adamw"), (steps[0] if steps else 1)


def parse_variant(name):
    """"xla+bf16" -> (use_xla=True, mixed_precision="bf16"); "fp32" -> (False, "none").
    A run label's ":<hidden_act>" suffix is ignored; so are the optimizer parts "lamb" and
    "accum<k>" (parse_training_parts), which only bench/pretrain_step.py takes."""
    name = split_label(name)[0]
    parts = [p for p in name.split("+") if p != "lamb" and not _ACCUM_PART.match(p)]
    unknown = [p for p in parts if p not in _PARTS]
    precisions = [p for p in parts if p in ("bf16", "fp16")]
    if unknown or len(precisions) > 1 or not parts or ("fp32" in parts and len(parts) > 1):
        raise SystemExit("bad variant %r: expected fp32, xla, bf16, fp16 or xla+bf16 / xla+fp16"
                         % name)
    return "xla" in parts, (precisions[0] if precisions else "none")


def add_step_args(parser, rounds=True):
    """The flags the step benchmarks take (model, batch, steps, variants, hidden acts, the
    child's job; --rounds unless rounds is False)."""
    from model import modeling
    parser.add_argument("--model-size", default="small", choices=modeling.MODEL_SIZES,
                        help="config/<size>_discriminator_config.json (default small)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=30, help="timed steps per variant")
    parser.add_argument("--warmup-steps", type=int, default=3,
                        help="untimed steps first (XLA compiles in the first)")
    parser.add_argument("--variants", default=",".join(VARIANTS),
                        help="comma-separated: fp32, xla, bf16, xla+bf16 (fp16, xla+fp16 "
                             "on a GPU); pretrain_step.py also +lamb and +accum<k>, e.g. "
                             "fp32+lamb, fp32+accum4 (compared per sequence with fp32)")
    parser.add_argument("--hidden-acts", default=DEFAULT_ACT,
                        help="comma-separated hidden_act values, each run with every variant "
                             "(interleaved like them): gelu (exact erf, the default), gelu_new "
                             "(BERT's tanh form); with more than one, rows are labelled "
                             "<variant>:<hidden_act>")
    if rounds:
        parser.add_argument("--rounds", type=int, default=2,
                            help="runs of every variant, interleaved (fp32, bf16, fp32, "
                                 "bf16, ...), their steps pooled: machine-speed drift hits "
                                 "all alike")
    parser.add_argument("--run-variant", help=argparse.SUPPRESS)  # the child's job


def check_step_args(parser, args):
    """parser.error for step counts below 1, an unknown variant or hidden act."""
    from model import modeling
    if args.steps < 1 or args.warmup_steps < 1 or getattr(args, "rounds", 1) < 1:
        parser.error("--steps, --warmup-steps and --rounds must be >= 1")
    for variant in args.variants.split(","):
        parse_variant(variant)
    unknown = [a for a in args.hidden_acts.split(",") if a not in modeling.ACTIVATIONS]
    if unknown:
        parser.error("unknown --hidden-acts value(s) %s: expected %s"
                     % (", ".join(unknown), ", ".join(sorted(modeling.ACTIVATIONS))))


def run_labels(args):
    """The runs in interleaving order: each variant with each --hidden-acts value, labelled
    "<variant>" when only the default act runs, else "<variant>:<hidden_act>"."""
    acts = args.hidden_acts.split(",")
    variants = args.variants.split(",")
    if acts == [DEFAULT_ACT]:
        return variants
    return ["%s:%s" % (variant, act) for variant in variants for act in acts]


def split_label(label):
    """"bf16:gelu_new" -> ("bf16", "gelu_new"); "bf16" -> ("bf16", "gelu")."""
    variant, _, act = label.partition(":")
    return variant, act or DEFAULT_ACT


def act_overrides(label):
    """model_hparam_overrides for a run label: {"hidden_act": its act}."""
    return {"hidden_act": split_label(label)[1]}


def encoder_forward_flops(bert_config, batch_size, seq_length, embedding_size=None):
    """Matmul FLOPs of one BertModel forward pass (model/modeling.py), T = B x L tokens:
    projection 2TEH (if E != H) + layers x (QKV 6TH^2 + scores 2TLH + context 2TLH +
    attention output 2TH^2 + feed-forward 4THI)."""
    tokens = batch_size * seq_length
    hidden, inter = bert_config.hidden_size, bert_config.intermediate_size
    emb = embedding_size or bert_config.embedding_size or hidden
    projection = 2 * tokens * emb * hidden if emb != hidden else 0
    per_layer = (8 * tokens * hidden * hidden + 4 * tokens * seq_length * hidden
                 + 4 * tokens * hidden * inter)
    return projection + bert_config.num_hidden_layers * per_layer


def synthetic_ids(rng, batch_size, seq_length, vocab_size, cls_id, sep_id):
    """[NUM_BATCHES, B, L] (input_ids, input_mask, segment_ids) of full-length examples
    `[CLS] a [SEP] b [SEP]`, ids drawn from the upper vocab (plain characters)."""
    shape = (NUM_BATCHES, batch_size, seq_length)
    ids = rng.integers(1000, vocab_size, size=shape, dtype=np.int32)
    middle = seq_length // 2
    ids[:, :, 0] = cls_id
    ids[:, :, middle] = sep_id
    ids[:, :, -1] = sep_id
    segments = np.zeros(shape, np.int32)
    segments[:, :, middle + 1:] = 1
    return ids, np.ones(shape, np.int32), segments


def in_memory_features(arrays):
    """{name: [NUM_BATCHES, ...] array} -> {name: one batch tensor}, cycling the batches.
    A repeated in-memory dataset: no file I/O or parsing in the timed steps."""
    import tensorflow.compat.v1 as tf
    dataset = tf.data.Dataset.from_tensor_slices(arrays).repeat()
    return tf.data.make_one_shot_iterator(dataset.prefetch(1)).get_next()


def time_training(train_op, loss, session_config, warmup_steps, steps):
    """Initialises the default graph's variables, runs warm-up then timed steps.
    Returns {step_times, cpu_times (s; CPU of all threads), first_loss, last_loss}."""
    import tensorflow.compat.v1 as tf
    init = tf.group(tf.global_variables_initializer(), tf.local_variables_initializer())
    with tf.Session(config=session_config) as session:
        session.run(init)
        first_loss = None
        for _ in range(warmup_steps):
            value = session.run([train_op, loss])[1]
            first_loss = value if first_loss is None else first_loss
        times, cpu_times = [], []
        for _ in range(steps):
            start, cpu_start = time.perf_counter(), time.process_time()
            value = session.run([train_op, loss])[1]
            times.append(time.perf_counter() - start)
            cpu_times.append(time.process_time() - cpu_start)
    return {"step_times": times, "cpu_times": cpu_times, "first_loss": float(first_loss),
            "last_loss": float(value)}


def time_model_fn(model_fn, arrays, session_config, warmup_steps, steps, extra=None):
    """Builds model_fn's TRAIN graph on in-memory batches `arrays`, times it (see
    time_training) and prints the result, with this process's peak RSS and `extra`
    (a dict), for run_child. A step here is one session run (with gradient accumulation,
    one micro-batch)."""
    import tensorflow.compat.v1 as tf
    with tf.Graph().as_default():
        tf.set_random_seed(1)
        spec = model_fn(in_memory_features(arrays), None, modes.TRAIN, {})
        result = time_training(spec.train_op, spec.loss, session_config, warmup_steps, steps)
    result["peak_rss_mb"] = peak_rss_mb()
    result.update(extra or {})
    emit_result(result)


def peak_rss_mb():
    """Peak resident set size of this process, MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def emit_result(result):
    print(RESULT_PREFIX + json.dumps(result), flush=True)


def run_child(script, child_args):
    """Runs `script child_args` in a fresh interpreter; its RESULT dict, or an error dict
    with the end of its output."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run([sys.executable, script] + child_args, cwd=REPO, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in proc.stdout.splitlines():
        if line.startswith(RESULT_PREFIX):
            return json.loads(line[len(RESULT_PREFIX):])
    tail = "\n".join(proc.stdout.strip().splitlines()[-8:])
    return {"error": "exit status %d:\n%s" % (proc.returncode, tail)}


def run_variants(script, variants, child_args, rounds):
    """Runs every variant's child `rounds` times, interleaved, and pools each variant's
    timed steps: [(variant, result)]. A variant that fails is not run again."""
    pooled = {}
    for _ in range(rounds):
        for variant in variants:
            if "error" in pooled.get(variant, {}):
                continue
            result = run_child(script, child_args(variant))
            if variant not in pooled or "error" in result:
                pooled[variant] = result
                continue
            into = pooled[variant]
            into["step_times"] += result["step_times"]
            into["cpu_times"] += result["cpu_times"]
            into["peak_rss_mb"] = max(into["peak_rss_mb"], result["peak_rss_mb"])
            into["last_loss"] = result["last_loss"]  # every run starts from the same init
    return [(variant, pooled[variant]) for variant in variants]


def summarise(result, batch_size, flops_per_step):
    """Adds seq/s (batch / median step time), the median wall and CPU ms and GFLOP/s
    to a child's result. A child that times micro-batches of gradient accumulation
    reports its sequences and FLOPs per session run ("sequences_per_run", "run_share")."""
    batch_size = result.get("sequences_per_run", batch_size)
    flops_per_step *= result.get("run_share", 1.0)
    times = result["step_times"]
    median = statistics.median(times)
    result.update(median_ms=1000 * median, seq_per_s=batch_size / median,
                  mean_seq_per_s=batch_size * len(times) / sum(times),
                  cpu_ms=1000 * statistics.median(result["cpu_times"]),
                  gflops_per_s=flops_per_step / median / 1e9)
    return result


def print_table(rows):
    """rows: [(label, result)]. One line per run; errors say what failed."""
    width = max([10] + [len(label) for label, _ in rows])
    header = "%-*s %8s %11s %9s %8s %12s %14s %17s" % (
        width, "variant", "seq/s", "mean seq/s", "step ms", "CPU ms", "peak RSS MB",
        "model GFLOP/s", "loss first/last")
    print(header)
    for label, r in rows:
        if "error" in r:
            print("%-*s failed: %s" % (width, label, r["error"].replace("\n", "\n    ")))
            continue
        print("%-*s %8.1f %11.1f %9.1f %8.1f %12.0f %14.1f %8.3f/%.3f" % (
            width, label, r["seq_per_s"], r["mean_seq_per_s"], r["median_ms"], r["cpu_ms"],
            r["peak_rss_mb"], r["gflops_per_s"], r["first_loss"], r["last_loss"]))


def print_ratios(rows, prefix=""):
    """`<variant>/fp32 sequences/s: 1.23x` for every variant that ran (against fp32 with
    the same hidden act), then with several hidden acts `<variant> <act>/<first act>
    sequences/s: 0.98x, CPU ms per step: 1.01x` for each variant (CPU time, all threads,
    is less sensitive to other jobs on the machine than wall time)."""
    done = {label: r for label, r in rows if "error" not in r}
    labels = [label for label, _ in rows]
    acts = list(dict.fromkeys(split_label(label)[1] for label in labels))
    tagged = any(":" in label for label in labels)

    def label_of(variant, act):
        return "%s:%s" % (variant, act) if tagged else variant

    def ratio(label, base, text, cpu=False):
        if label in done and base in done:
            new, old = done[label], done[base]
            cpu_text = (", CPU ms per step: %.2fx" % (new["cpu_ms"] / old["cpu_ms"])
                        if cpu and "cpu_ms" in new and "cpu_ms" in old else "")
            print("%s%s sequences/s: %.2fx%s"
                  % (prefix, text, new["seq_per_s"] / old["seq_per_s"], cpu_text))

    if not any(label_of("fp32", act) in done for act in acts):
        print("%sno fp32 result to compare with" % prefix)
    for label in labels:
        variant, act = split_label(label)
        if variant != "fp32":
            ratio(label, label_of("fp32", act), "%s/%s" % (label, label_of("fp32", act)))
    for variant in dict.fromkeys(split_label(label)[0] for label in labels):
        for act in acts[1:]:
            ratio(label_of(variant, act), label_of(variant, acts[0]),
                  "%s %s/%s" % (variant, act, acts[0]), cpu=True)
