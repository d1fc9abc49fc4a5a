"""Cross-version check: the toolkit computes the same numbers under two TensorFlow versions.

The parent runs this script in each given interpreter (a subprocess, PYTHONPATH set to the
repo, so a venv without the repo installed works too). Each child computes
  1. the ELECTRA-small discriminator's per-token logits (encoder + discriminator head;
     is_training False) for 2 x 128 tokens of sample text, the second sequence padded, with
     every variable set from a fixed-seed NumPy generator (no weight from TF's RNG);
  2. the total, generator and discriminator losses (4 decimals, from the progress line) of
     --steps steps of run_pretraining.py (tiny model, batch 8) on sample_data/corpus,
and dumps them as JSON. The parent prints the versions, the machine line and the largest
absolute difference of the logits and of each loss; exit status 1 if one is above tolerance.

Usage (from the repo root):
  .venv/bin/python bench/cross_version.py --python .venv/bin/python \\
      --python /tmp/tf221/bin/python [--steps 30] [--logits-tolerance 1e-5] \\
      [--loss-tolerance 1e-4] [--workdir DIR]
"""

import argparse
import contextlib
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from util.machine import machine_description  # noqa: E402

VOCAB = os.path.join(REPO, "sample_data", "vocab.txt")
CORPUS = os.path.join(REPO, "sample_data", "corpus")
# run_pretraining's progress line, as tests/test_pretraining.py reads it.
PROGRESS = re.compile(r"^step (\d+)/\d+ \| loss ([\d.]+) \| gen ([\d.]+) \| disc ([\d.]+)")
LOSSES = ("total", "gen", "disc")
TINY = {"model_size": "tiny", "save_graph_def": False, "max_seq_length": 128,
        "train_batch_size": 8, "log_every_steps": 1, "num_warmup_steps": 5,
        "learning_rate": 1e-3, "seed": 3}
LENGTH, REAL_TOKENS = 128, (128, 100)  # the second sequence ends in 28 padding positions


def text_batch():
    """(input_ids, input_mask) [2, 128] of `[CLS] text [SEP]` from the sample corpus's first
    lines; real text, so the ids are those a model really sees."""
    from model import tokenization
    tokenizer = tokenization.FullTokenizer(VOCAB)
    with open(os.path.join(CORPUS, "part_a_01.txt"), encoding="utf-8") as reader:
        tokens = tokenizer.tokenize(reader.read())
    ids, mask = np.zeros((2, LENGTH), np.int32), np.zeros((2, LENGTH), np.int32)
    for row, real in enumerate(REAL_TOKENS):
        text, tokens = tokens[:real - 2], tokens[real - 2:]
        ids[row, :real] = tokenizer.convert_tokens_to_ids(["[CLS]"] + text + ["[SEP]"])
        mask[row, :real] = 1
    return ids, mask


def numpy_weights(variables, seed=0):
    """{variable: value}: normal * 0.02 (in name order, float64 draws cast to float32, so
    both NumPy versions draw the same numbers), LayerNorm gamma 1."""
    rng, values = np.random.default_rng(seed), {}
    for var in sorted(variables, key=lambda v: v.op.name):
        shape = var.shape.as_list()
        values[var] = (np.ones(shape) if var.op.name.endswith("LayerNorm/gamma")
                       else rng.normal(size=shape) * 0.02).astype(np.float32)
    return values


def discriminator_logits():
    """(logits [2, 128], sha256 of the inputs: weights and ids) of ELECTRA-small."""
    import tensorflow.compat.v1 as tf

    import configure_pretraining
    from model import configs, modeling
    config = configure_pretraining.PretrainingConfig("xv", tempfile.gettempdir(),
                                                     model_size="small", vocab_file=VOCAB)
    bert = configs.discriminator_config(config)
    ids, mask = text_batch()
    with tf.Graph().as_default():
        model = modeling.BertModel(bert, False, tf.constant(ids), tf.constant(mask),
                                   tf.zeros_like(ids), scope="electra")
        logits = modeling.discriminator_logits(model.get_sequence_output(), bert)  # [B, L]
        values = numpy_weights(tf.global_variables())
        feeds = {var: tf.placeholder(tf.float32, var.shape) for var in values}
        assign = tf.group(*[var.assign(feeds[var]) for var in values])
        with tf.Session() as session:
            session.run(assign, {feeds[var]: value for var, value in values.items()})
            result = session.run(logits)
    digest = hashlib.sha256(ids.tobytes() + mask.tobytes())
    for value in values.values():
        digest.update(value.tobytes())
    return result, digest.hexdigest()


def pretraining_losses(data_dir, steps):
    """({"total", "gen", "disc": [loss per step]}, sha256 of the tfrecords) of a short tiny
    pre-training in data_dir."""
    import build_pretraining_dataset
    import run_pretraining
    records = os.path.join(data_dir, "pretrain_tfrecords")
    shutil.copy(VOCAB, os.path.join(data_dir, "vocab.txt"))
    hparams = dict(TINY, num_train_steps=steps, save_checkpoints_steps=steps)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = build_pretraining_dataset.main([
            "--corpus-dir", CORPUS, "--vocab-file", VOCAB, "--output-dir", records,
            "--max-seq-length", "128", "--num-out-files", "2", "--seed", "7"])
        status = status or run_pretraining.main(["--data-dir", data_dir, "--model-name", "xv",
                                                 "--hparams", json.dumps(hparams)])
    if status:
        raise SystemExit("pre-training failed (status %d):\n%s" % (status, out.getvalue()))
    rows = [m.groups() for m in map(PROGRESS.match, out.getvalue().splitlines()) if m]
    digest = hashlib.sha256()
    for name in sorted(os.listdir(records)):
        with open(os.path.join(records, name), "rb") as reader:
            digest.update(reader.read())
    return {name: [float(row[i + 1]) for row in rows] for i, name in enumerate(LOSSES)}, \
        digest.hexdigest()


def dump(path, workdir, steps):
    """The child's job: compute both parts and write them to `path` as JSON."""
    from util.quiet_tf import import_tensorflow
    tf = import_tensorflow()  # first: TF's start-up noise kept off stderr
    logits, weights_sha = discriminator_logits()
    data_dir = tempfile.mkdtemp(prefix="xv-", dir=workdir)
    losses, data_sha = pretraining_losses(data_dir, steps)
    result = {"tensorflow": tf.__version__, "numpy": np.__version__,
              "python": sys.version.split()[0], "logits": logits.tolist(), "losses": losses,
              "inputs_sha256": {"logits": weights_sha, "tfrecords": data_sha}}
    with open(path, "w", encoding="utf-8") as writer:
        json.dump(result, writer)


def max_difference(a, b):
    """max |a - b| of two nested lists; inf when their shapes differ or they are empty
    (a run that logged fewer steps, or none, fails rather than passes)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b))) if a.shape == b.shape and a.size else float("inf")


def compare(a, b, logits_tolerance, loss_tolerance):
    """[(what, max |a - b|, tolerance, within)] for two dumps: the logits, then each loss
    over the steps. Different inputs (weights, ids or tfrecords) count as a difference too:
    the check would then compare different computations."""
    rows = [("inputs: weights, ids, tfrecords (sha256)",
             0.0 if a["inputs_sha256"] == b["inputs_sha256"] else float("inf"), None)]
    scale = np.max(np.abs(a["logits"]))  # what the tolerance is small against
    rows.append(("discriminator logits (max |logit| %.3g)" % scale,
                 max_difference(a["logits"], b["logits"]), logits_tolerance))
    for name in LOSSES:
        rows.append(("%s loss, %d steps" % (name, len(a["losses"][name])),
                     max_difference(a["losses"][name], b["losses"][name]), loss_tolerance))
    return [(what, diff, tol, diff <= (tol or 0.0)) for what, diff, tol in rows]


def run_child(python, args, workdir, index):
    """Runs `python this --dump` in workdir; (dump dict, seconds) or SystemExit with its output."""
    out = os.path.join(workdir, "dump_%d.json" % index)
    env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="3")
    start = time.perf_counter()
    proc = subprocess.run([python, os.path.abspath(__file__), "--dump", out, "--workdir",
                           workdir, "--steps", str(args.steps)], cwd=REPO, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if proc.returncode:
        raise SystemExit("%s failed (exit status %d):\n%s" % (python, proc.returncode,
                                                               proc.stdout[-4000:]))
    with open(out, encoding="utf-8") as reader:
        return json.load(reader), time.perf_counter() - start


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--python", action="append", default=[],
                        help="an interpreter to run in (give exactly two)")
    parser.add_argument("--steps", type=int, default=30, help="pre-training steps")
    parser.add_argument("--logits-tolerance", type=float, default=1e-5)
    parser.add_argument("--loss-tolerance", type=float, default=1e-4,
                        help="the progress line prints 4 decimals")
    parser.add_argument("--workdir", help="for the dumps and tfrecords (default: a temp dir, "
                                          "removed afterwards)")
    parser.add_argument("--dump", help=argparse.SUPPRESS)  # the child's job
    args = parser.parse_args(argv)
    if not args.dump and len(args.python) != 2:
        parser.error("give --python twice (the two interpreters to compare)")
    if args.steps < 1:
        parser.error("--steps must be >= 1")
    # The children run in the repo root: paths given relative to here must still hold.
    args.python = [os.path.abspath(p) if os.sep in p else p for p in args.python]
    missing = [p for p in args.python if not shutil.which(p)]
    if missing:
        parser.error("no such interpreter: %s" % ", ".join(missing))
    if args.workdir:
        args.workdir = os.path.abspath(args.workdir)
        os.makedirs(args.workdir, exist_ok=True)
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.dump:
        dump(args.dump, args.workdir, args.steps)
        return 0
    print("cross-version check: ELECTRA-small discriminator logits (2 x %d tokens), %d steps "
          "of tiny pre-training" % (LENGTH, args.steps))
    print("machine: %s" % machine_description(), flush=True)
    dumps = []
    with (contextlib.nullcontext(args.workdir) if args.workdir
          else tempfile.TemporaryDirectory(prefix="cross-version-")) as workdir:
        for index, python in enumerate(args.python):
            result, seconds = run_child(python, args, workdir, index)
            dumps.append(result)
            print("%s: %s: python %s, tensorflow %s, numpy %s (%.0f s)" % (
                "AB"[index], python, result["python"], result["tensorflow"], result["numpy"],
                seconds), flush=True)
    rows = compare(dumps[0], dumps[1], args.logits_tolerance, args.loss_tolerance)
    for what, diff, tol, within in rows:
        text = ("identical" if within else "differ") if tol is None else \
            "max |A - B| %.3g (tolerance %g)" % (diff, tol)
        print("%-42s %s: %s" % (what, text, "PASS" if within else "FAIL"))
    return 0 if all(row[3] for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
