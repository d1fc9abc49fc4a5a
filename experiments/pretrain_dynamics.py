"""How fast does the discriminator learn, against the official code? One behaviour at a time.

    python experiments/pretrain_dynamics.py --seed 1                      # baseline, 2,000 steps
    python experiments/pretrain_dynamics.py --seed 1 --masking official
    python experiments/pretrain_dynamics.py --seed 1 --hidden-act gelu_new --steps 500
    python experiments/pretrain_dynamics.py --summarize experiments/dynamics/results
    python experiments/pretrain_dynamics.py --eval-of base_seed1 --masking official
    python experiments/pretrain_dynamics.py --downstream base_seed1     # ChnSentiCorp probe
    python experiments/pretrain_dynamics.py --downstream random

Setting (the official code's comparison run, OFFICIAL below, used the same): the experiment's
corpus and held-out text (experiments/run_experiment.py `write_corpus`, built once into
WORKDIR/data and reused), ELECTRA with a 4-layer, 128-wide discriminator (2 heads, FFN 512,
embedding 128) and a 1/4-wide generator, vocab 21,128, batch 32, lr 5e-4, 500 warm-up steps,
linear decay to 0 at --steps (2,000), weight decay 0.01, everything else default; the final
checkpoint is evaluated on the held-out text, 20 batches of 32. With --steps below 2,000 the
warm-up is a quarter of the steps (as 500 is of 2,000). Each run writes
WORKDIR/results/<run>.json and prints the metrics; --summarize averages the runs of each
variant (mean, standard deviation, min-max).

--downstream RUN is the ChnSentiCorp probe of docs/probes.md: fine-tune ChnSentiCorp on its
first 1,000 training reviews (5 epochs, lr 3e-4, layer-wise decay 0.8, batch 32, 128 tokens;
3 trials) from RUN's final checkpoint, or from random weights for RUN = "random", and
score the whole dev set (1,200 reviews). Writes WORKDIR/downstream/<RUN>.json.
"""

import argparse
import collections
import copy
import glob
import json
import math
import os
import re
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import configure_pretraining  # noqa: E402
import run_finetuning  # noqa: E402
import run_pretraining  # noqa: E402
from pretrain import pretrain_data  # noqa: E402
from experiments import run_experiment  # noqa: E402
from util.errors import InputError  # noqa: E402
from util.io import atomic_write_json  # noqa: E402

# disc_auc is the official code's AUC definition (padding counted, see objective.py);
# disc_auc_real_tokens ranks the real tokens only.
METRICS = ("disc_auc", "disc_auc_real_tokens", "disc_loss", "disc_precision", "disc_recall",
           "disc_accuracy",
           "masked_lm_accuracy", "masked_lm_loss", "sampled_masked_lm_accuracy")
# The official code's held-out figures at step 2,000 in this setting (one unseeded run;
# docs/pretrain_dynamics.md).
OFFICIAL = {"disc_auc": 0.694, "disc_loss": 0.366, "disc_precision": 0.820,
            "disc_recall": 0.065, "disc_accuracy": 0.877, "masked_lm_accuracy": 0.131,
            "masked_lm_loss": 6.050, "sampled_masked_lm_accuracy": 0.061}
MAX_SEQ_LENGTH = 128
# The behaviours under test: flag -> (hparam, default=unchanged). None leaves the
# repo's default in place, so a run without switches measures the current code.
SWITCHES = {"masking": "masking", "hidden_act": "hidden_act",
            "shuffle_buffer": "shuffle_buffer_size"}
# The ChnSentiCorp probe of docs/probes.md (--downstream): the fine-tuning recipe and data
# sizes.
DOWNSTREAM_TRAIN_REVIEWS = 1000
DOWNSTREAM_HPARAMS = {"task_names": ["chnsenticorp"], "max_seq_length": 128,
                      "num_train_epochs": 5, "learning_rate": 3e-4, "layerwise_lr_decay": 0.8,
                      "train_batch_size": 32, "eval_batch_size": 64, "num_trials": 3,
                      "seed": 1, "log_every_steps": 50}
RANDOM_RUN = "random"


def hparams_for(args):
    """The comparison setting (module docstring) plus the switches given (model-shape ones go
    to the overrides)."""
    model = copy.deepcopy(run_experiment.MODEL)
    warmup = 500 if args.steps == 2000 else max(1, args.steps // 4)
    hparams = dict(model, max_seq_length=MAX_SEQ_LENGTH, train_batch_size=32,
                   learning_rate=5e-4, num_warmup_steps=warmup, num_train_steps=args.steps,
                   weight_decay_rate=0.01, save_checkpoints_steps=args.steps,
                   keep_checkpoint_max=1, log_every_steps=100, do_eval=True,
                   eval_batch_size=32, num_eval_steps=20, seed=args.seed)
    if args.hidden_act is not None:
        hparams["model_hparam_overrides"]["hidden_act"] = args.hidden_act
    if args.masking is not None:
        hparams["masking"] = args.masking
    if args.shuffle_buffer is not None:
        hparams["shuffle_buffer_size"] = args.shuffle_buffer
    hparams.update(json.loads(args.hparams))
    return hparams


def variant_name(args):
    """e.g. "base", "masking-official", "hidden_act-gelu+steps500": the switches set."""
    parts = ["%s-%s" % (flag, getattr(args, flag)) for flag in SWITCHES
             if getattr(args, flag) is not None]
    if args.hparams != "{}":
        parts.append("hp-" + "-".join("%s=%s" % kv for kv in
                                      sorted(json.loads(args.hparams).items())))
    if args.steps != 2000:
        parts.append("steps%d" % args.steps)
    return "+".join(parts) or "base"


def prepare_data(workdir, corpus_limit=None):
    """The corpus and its tfrecords, built once per workdir (later runs reuse them, whatever
    their --corpus-limit)."""
    data = os.path.join(workdir, "data")
    os.makedirs(data, exist_ok=True)
    corpus, heldout = run_experiment.write_corpus(data, limit=corpus_limit)
    run_experiment.build_tfrecords(data, corpus, heldout, MAX_SEQ_LENGTH)
    return data


def run(args):
    data = prepare_data(args.workdir, args.corpus_limit)
    variant = variant_name(args)
    name = "%s_seed%d" % (variant, args.seed)
    out = os.path.join(args.workdir, "results", name + ".json")
    if os.path.exists(out):
        print("%s exists: delete it to rerun" % out)
        return report_one(out)
    hparams = dict(hparams_for(args), eval_tfrecords=os.path.join(
        data, "heldout_tfrecords", "pretrain_data.tfrecord*"))
    start, code = time.time(), code_version()
    status = run_pretraining.main(["--data-dir", data, "--model-name", name,
                                   "--hparams", json.dumps(hparams)])
    if status != 0:
        raise InputError("pre-training %s failed" % name)
    with open(os.path.join(data, "models", name, "results", "unsup_results.json"),
              encoding="utf-8") as f:
        final = json.load(f)[-1]
    if int(final["global_step"]) != args.steps:
        raise InputError("%s: the last evaluation is of step %d, not %d"
                         % (name, final["global_step"], args.steps))
    atomic_write_json(out, {"variant": variant, "seed": args.seed, "steps": args.steps,
                            "code": code, "hparams": hparams, "seconds": round(time.time() - start),
                            "metrics": {k: final[k] for k in METRICS if k in final}})
    return report_one(out)


def eval_of(args):
    """Evaluates a finished run's final checkpoint with the switches given (e.g. another
    masking): which part of a metric is the evaluation's, not the training's. The result
    goes to WORKDIR/evals/<run>+<switches>.json (not among the training results)."""
    data = os.path.join(args.workdir, "data")
    source = os.path.join(args.workdir, "results", args.eval_of + ".json")
    if not os.path.exists(source):
        raise InputError("%s not found: --eval-of takes a finished run's name, e.g. "
                         "base_seed1" % source)
    with open(source, encoding="utf-8") as f:
        trained = json.load(f)
    variant = "eval:%s+%s" % (args.eval_of, variant_name(args))
    out = os.path.join(args.workdir, "evals", variant[len("eval:"):] + ".json")
    hparams = dict(trained["hparams"], do_train=False)
    for flag, key in SWITCHES.items():
        if getattr(args, flag) is not None and key != "hidden_act":
            hparams[key] = getattr(args, flag)
    hparams.update(json.loads(args.hparams))
    eval_dir = os.path.join(args.workdir, "evals", "model_dirs", variant[len("eval:"):])
    config = configure_pretraining.PretrainingConfig(
        "eval", data, **dict(hparams, model_dir=eval_dir))
    checkpoint = os.path.join(data, "models", args.eval_of,
                              "model.ckpt-%d" % trained["steps"])
    trainer = run_pretraining.build_trainer(
        config, run_pretraining.load_special_ids(config), None)
    start = time.time()
    final = run_pretraining.run_eval(trainer, config,
                                     pretrain_data.find_tfrecords(config.eval_tfrecords),
                                     checkpoint_path=checkpoint)
    atomic_write_json(out, {"variant": variant, "seed": trained["seed"],
                            "steps": trained["steps"], "hparams": hparams,
                            "seconds": round(time.time() - start),
                            "metrics": {k: final[k] for k in METRICS if k in final}})
    return report_one(out)


def write_downstream_data(data):
    """finetuning_data/chnsenticorp/: the first 1,000 training reviews and the whole dev set
    (the pre-training corpus holds ChnSentiCorp's training reviews, never dev)."""
    folder = os.path.join(data, "finetuning_data", "chnsenticorp")
    os.makedirs(folder, exist_ok=True)
    train = run_experiment.read_lines("chnsenticorp", "train.tsv")
    run_experiment.write_text(os.path.join(folder, "train.tsv"),
                              train[:1 + DOWNSTREAM_TRAIN_REVIEWS])
    run_experiment.write_text(os.path.join(folder, "dev.tsv"),
                              run_experiment.read_lines("chnsenticorp", "dev.tsv"))


def downstream(args):
    """Fine-tunes ChnSentiCorp from a finished run's final checkpoint (or random weights)
    with the recipe of docs/probes.md's probe; prints and saves the dev accuracy of every
    trial."""
    data = prepare_data(args.workdir, args.corpus_limit)
    out = os.path.join(args.workdir, "downstream", args.downstream + ".json")
    if os.path.exists(out):
        print("%s exists: delete it to rerun" % out)
        return report_downstream(out)
    if args.downstream == RANDOM_RUN:
        model_name, extra, source = "random_init", {"random_init": True}, None
        os.makedirs(os.path.join(data, "models", model_name), exist_ok=True)
    else:
        source = os.path.join(args.workdir, "results", args.downstream + ".json")
        if not os.path.exists(source):
            raise InputError("%s not found: --downstream takes a finished run's name (e.g. "
                             "base_seed1) or %r" % (source, RANDOM_RUN))
        model_name, extra = args.downstream, {}
    write_downstream_data(data)
    model = copy.deepcopy(run_experiment.MODEL)
    if source:  # the fine-tuned encoder has the pre-trained one's shape (e.g. gelu_new)
        with open(source, encoding="utf-8") as f:
            model["model_hparam_overrides"] = json.load(f)["hparams"]["model_hparam_overrides"]
    hparams = dict(model, **DOWNSTREAM_HPARAMS, **extra)
    hparams.update(json.loads(args.hparams))
    results_json = os.path.join(data, "models", model_name, "results",
                                "chnsenticorp_results.json")
    if os.path.exists(results_json):  # a finished earlier call whose summary was not saved
        os.remove(results_json)
    start = time.time()
    status = run_finetuning.main(["--data-dir", data, "--model-name", model_name,
                                  "--hparams", json.dumps(hparams)])
    if status != 0:
        raise InputError("fine-tuning ChnSentiCorp from %s failed" % args.downstream)
    with open(results_json, encoding="utf-8") as f:
        accuracy = json.load(f)["summary"]["dev"]["accuracy"]
    atomic_write_json(out, {"run": args.downstream, "hparams": hparams,
                            "train_reviews": DOWNSTREAM_TRAIN_REVIEWS, "code": code_version(),
                            "seconds": round(time.time() - start),
                            "dev_accuracy": accuracy["values"]})
    return report_downstream(out)


def report_downstream(path):
    with open(path, encoding="utf-8") as f:
        result = json.load(f)
    print("ChnSentiCorp dev accuracy, fine-tuned from %s (%d trials): %s" % (
        result["run"], len(result["dev_accuracy"]), format_spread(result["dev_accuracy"])))
    return 0


def summarize_downstream(directory):
    """Markdown table of the --downstream results in DIR, or "" when there are none."""
    rows = []
    for path in sorted(glob.glob(os.path.join(directory, "*.json"))):
        with open(path, encoding="utf-8") as f:
            result = json.load(f)
        rows.append("| %s | %d | %s |" % (result["run"], len(result["dev_accuracy"]),
                                          format_spread(result["dev_accuracy"])))
    if not rows:
        return ""
    table = ("| fine-tuned from | trials | ChnSentiCorp dev accuracy |\n|---|---|---|\n"
             + "\n".join(rows))
    print(table)
    return table


def code_version():
    """The commit the run's code is at (+ "-dirty" with uncommitted changes)."""
    def git(*cmd):
        return subprocess.run(["git", "-C", REPO] + list(cmd), capture_output=True,
                              text=True).stdout.strip()
    return (git("rev-parse", "--short", "HEAD") or "unknown") + (
        "-dirty" if git("status", "--porcelain", "--untracked-files=no") else "")


def report_one(path):
    with open(path, encoding="utf-8") as f:
        result = json.load(f)
    print("%s seed %d, step %d (%ds):" % (result["variant"], result["seed"], result["steps"],
                                          result["seconds"]))
    for key in METRICS:
        if key in result["metrics"]:
            print("  %-28s %.4f" % (key, result["metrics"][key]))
    return 0


def summarize(directory):
    """Markdown table: official figures, then per variant mean +- sd [min, max] (n seeds)."""
    runs = collections.defaultdict(list)
    for path in sorted(glob.glob(os.path.join(directory, "*.json"))):
        with open(path, encoding="utf-8") as f:
            result = json.load(f)
        # an --eval-of result's variant names its run ("eval:base_seed2+masking-official"):
        # without the seed, the evaluations of one variant's seeds share a column
        runs[re.sub(r"_seed\d+", "", result["variant"])].append(result)
    if not runs:
        raise InputError("no run results (*.json) in %s" % directory)
    variants = sorted(runs, key=lambda v: (v != "base", v))
    header = ["held-out metric", "official (1 run)"] + [
        "%s (n=%d; seeds %s)" % (v, len(runs[v]), ",".join(str(r["seed"]) for r in runs[v]))
        for v in variants]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for key in METRICS:
        cells = [key, "%.3f" % OFFICIAL[key] if key in OFFICIAL else "n/a"]
        for v in variants:
            values = [r["metrics"][key] for r in runs[v] if key in r["metrics"]]
            cells.append(format_spread(values) if values else "n/a")
        lines.append("| " + " | ".join(cells) + " |")
    table = "\n".join(lines)
    print(table)
    downstream_dir = os.path.join(os.path.dirname(os.path.abspath(directory)), "downstream")
    if os.path.isdir(downstream_dir):
        print()
        table += "\n\n" + summarize_downstream(downstream_dir)
    return table


def format_spread(values):
    mean = sum(values) / len(values)
    if len(values) == 1:
        return "%.3f" % mean
    sd = math.sqrt(sum((x - mean) ** 2 for x in values) / (len(values) - 1))
    return "%.3f ± %.3f [%.3f, %.3f]" % (mean, sd, min(values), max(values))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", default=os.path.join(REPO, "experiments", "dynamics"),
                        help="data (built once), checkpoints and results/*.json")
    parser.add_argument("--corpus-limit", dest="corpus_limit", type=int,
                        help="documents per corpus source when WORKDIR/data is first built "
                             "(quick checks, tests; default: all, 32,823 examples)")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--masking", choices=("distinct", "official"),
                        help="masking hparam (default: the repo's)")
    parser.add_argument("--hidden-act", dest="hidden_act",
                        help="hidden_act of both transformers, e.g. gelu or gelu_new")
    parser.add_argument("--shuffle-buffer", dest="shuffle_buffer", type=int,
                        help="shuffle_buffer_size (official code: 100)")
    parser.add_argument("--hparams", default="{}",
                        help="other pre-training hparams to change, as JSON")
    parser.add_argument("--eval-of", dest="eval_of", metavar="RUN",
                        help="only evaluate finished run RUN (e.g. base_seed1) with the "
                             "switches given (eval-time masking, shuffle: no retraining)")
    parser.add_argument("--downstream", metavar="RUN",
                        help="fine-tune ChnSentiCorp (the probe of docs/probes.md) from "
                             "finished run RUN's checkpoint, or from random weights with "
                             "RUN=random")
    parser.add_argument("--summarize", metavar="DIR",
                        help="print the table of the runs in DIR (e.g. WORKDIR/results)")
    args = parser.parse_args(argv)
    try:
        if args.summarize:
            summarize(args.summarize)
            return 0
        if args.downstream:
            return downstream(args)
        return eval_of(args) if args.eval_of else run(args)
    except InputError as e:
        print("error: %s" % e, file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
