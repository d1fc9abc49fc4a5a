"""Fine-tuning fidelity protocol: does our fine-tuning learn as the official code does?

    python experiments/finetune_fidelity.py --seeds 1 2 3 4 5 6
    python experiments/finetune_fidelity.py --seeds 1 2 3 --variant mean-loss \
        --hparams '{"loss_reduction": "mean"}'
    python experiments/finetune_fidelity.py --summarize

The setting, fixed so that the official code could be run on exactly the same inputs:
- corpus: the `context` of every paragraph of ../shared/data/cmrc2018/*.json and
  ../shared/data/drcd/*.json, newlines folded, one sentence per line (split after
  。！？；!?), an empty line between articles;
- tfrecords: build_pretraining_dataset.py, 128 tokens, the BERT Chinese vocab (21,128);
- pre-training: a 4-layer, 128-wide ELECTRA (2 heads, FFN 512, embedding 128), batch 32,
  300 steps, 30 warm-up, lr 5e-4, seed 1;
- fine-tuning: ChnSentiCorp, the first 2,000 training reviews, the whole dev set (1,200),
  seq 128, batch 32, lr 3e-4, 3 epochs, layer-wise decay 0.8, warm-up 0.1, weight decay
  0.01, one trial per seed.
The official code's dev accuracies on exactly this (same checkpoint file), seeds 1-6:
76.00, 76.75, 72.92, 75.75, 76.00, 73.92 (75.2 +- 1.5).

Writes WORKDIR/results/<variant>_seed<S>.json (dev accuracy, the training loss curve);
--summarize prints mean, sd and range per variant, and the step at which the training
loss (mean of the last 5 progress lines, every 20 steps) first falls below 0.5.

The same runs on other data and models (the before/after table of
docs/differences-from-official.md):

    python experiments/finetune_fidelity.py --model tiny --train-reviews 0 \
        --variant tiny-pretrained-sum --seeds 1 2 3
    python experiments/finetune_fidelity.py --model tiny --train-reviews 0 --random-init \
        --variant tiny-random-mean --seeds 1 2 3 --hparams '{"loss_reduction": "mean"}'

--model tiny: the 2-layer, 64-wide tiny model (config/tiny_*), pre-trained with the same
recipe on the same corpus; --train-reviews 0: the whole training set (9,600 reviews).
"""

import argparse
import contextlib
import glob
import io
import json
import os
import re
import statistics
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import build_pretraining_dataset  # noqa: E402
import run_finetuning  # noqa: E402
import run_pretraining  # noqa: E402
from util.io import atomic_write_json  # noqa: E402

SHARED = os.path.join(os.path.dirname(REPO), "shared", "data")
OFFICIAL_ACCURACIES = [76.00, 76.75, 72.92, 75.75, 76.00, 73.92]  # seeds 1-6
SHAPE = {"model_size": "small", "embedding_size": 128, "vocab_size": 21128,
         "model_hparam_overrides": {"num_hidden_layers": 4, "hidden_size": 128,
                                    "num_attention_heads": 2, "intermediate_size": 512}}
PRETRAIN = dict(SHAPE, max_seq_length=128, train_batch_size=32, num_train_steps=300,
                num_warmup_steps=30, learning_rate=5e-4, seed=1, log_every_steps=50,
                save_checkpoints_steps=300)
FINETUNE = dict(SHAPE, task_names=["chnsenticorp"], max_seq_length=128, train_batch_size=32,
                learning_rate=3e-4, num_train_epochs=3, layerwise_lr_decay=0.8,
                warmup_proportion=0.1, weight_decay_rate=0.01, num_trials=1,
                eval_batch_size=100, log_every_steps=20)
TINY_SHAPE = {"model_size": "tiny", "vocab_size": 21128}
TRAIN_REVIEWS = 2000
CONVERGED_LOSS = 0.5  # "converged": the smoothed training loss first below this
PROGRESS = re.compile(r"^step (\d+)/\d+ \| loss ([\d.]+)", re.M)
SENTENCE_END = re.compile(r"(?<=[。！？；!?])")


def corpus_articles():
    """Lists of sentences, one list per article, from the CMRC 2018 and DRCD contexts."""
    articles = []
    for path in sorted(glob.glob(os.path.join(SHARED, "cmrc2018", "*.json")) +
                       glob.glob(os.path.join(SHARED, "drcd", "*.json"))):
        with open(path, encoding="utf-8") as f:
            data = json.load(f)["data"]
        for article in data:
            sentences = []
            for paragraph in article["paragraphs"]:
                text = " ".join(paragraph["context"].split())  # newlines folded
                sentences += [s.strip() for s in SENTENCE_END.split(text) if s.strip()]
            if sentences:
                articles.append(sentences)
    return articles


def prepare_data(work, model, train_reviews):
    """WORKDIR/data-<model>-<reviews>: vocab, tfrecords, the pre-trained model, the
    ChnSentiCorp subset (train_reviews 0: all)."""
    data = os.path.join(work, "data" if (model, train_reviews) == ("protocol", TRAIN_REVIEWS)
                        else "data-%s-%d" % (model, train_reviews))
    os.makedirs(data, exist_ok=True)
    vocab = os.path.join(SHARED, "vocab", "vocab.txt")
    with open(vocab, encoding="utf-8") as src, \
            open(os.path.join(data, "vocab.txt"), "w", encoding="utf-8") as dst:
        dst.write(src.read())
    corpus = os.path.join(work, "corpus")
    if not os.path.exists(os.path.join(corpus, "contexts.txt")):
        os.makedirs(corpus, exist_ok=True)
        with open(os.path.join(corpus, "contexts.txt"), "w", encoding="utf-8") as f:
            f.write("\n\n".join("\n".join(a) for a in corpus_articles()) + "\n")
    records = os.path.join(data, "pretrain_tfrecords")
    if not os.path.exists(os.path.join(records, "dataset_info.json")):
        if build_pretraining_dataset.main([
                "--corpus-dir", corpus, "--vocab-file", vocab, "--output-dir", records,
                "--max-seq-length", "128", "--num-processes", "2", "--num-out-files", "2",
                "--overwrite"]) != 0:
            raise SystemExit("building the tfrecords failed")
    shape = SHAPE if model == "protocol" else TINY_SHAPE
    hparams = dict({k: v for k, v in PRETRAIN.items() if k not in SHAPE}, **shape)
    if run_pretraining.main(["--data-dir", data, "--model-name", "fidelity",
                             "--hparams", json.dumps(hparams)]) != 0:
        raise SystemExit("pre-training failed")
    task_dir = os.path.join(data, "finetuning_data", "chnsenticorp")
    os.makedirs(task_dir, exist_ok=True)
    for split, limit in (("train", train_reviews), ("dev", None)):
        with open(os.path.join(SHARED, "chnsenticorp", split + ".tsv"), encoding="utf-8") as f:
            lines = f.read().splitlines()
        lines = lines[:1 + limit] if limit else lines
        target = os.path.join(task_dir, split + ".tsv")
        text = "\n".join(lines) + "\n"
        if not os.path.exists(target) or open(target, encoding="utf-8").read() != text:
            with open(target, "w", encoding="utf-8") as f:
                f.write(text)
    return data


class Tee(io.StringIO):
    """Keeps what is printed and passes it on."""

    def write(self, text):
        sys.__stdout__.write(text)
        return super().write(text)


def steps_to_converge(curve, window=5):
    """The first logged step at which the mean of the last `window` logged losses is
    below CONVERGED_LOSS; None if it never is."""
    for i in range(window - 1, len(curve)):
        if statistics.mean(loss for _, loss in curve[i - window + 1:i + 1]) < CONVERGED_LOSS:
            return curve[i][0]
    return None


def finetune(work, data, variant, seed, extra, model):
    """One trial; returns its record (also written to WORKDIR/results)."""
    shape = SHAPE if model == "protocol" else TINY_SHAPE
    hparams = dict({k: v for k, v in FINETUNE.items() if k not in SHAPE}, **shape)
    hparams.update(seed=seed, model_dir=os.path.join(
        work, "finetuned", "%s_seed%d" % (variant, seed), "{task}"), **extra)
    results_dir = os.path.join(work, "results")
    os.makedirs(results_dir, exist_ok=True)
    start = time.time()
    out = Tee()
    with contextlib.redirect_stdout(out):
        trials = run_finetuning.run(run_finetuning.configure_finetuning.FinetuningConfig(
            "fidelity", data, **hparams))["chnsenticorp"]
    curve = [(int(step), float(loss)) for step, loss in PROGRESS.findall(out.getvalue())]
    record = {"variant": variant, "seed": seed, "hparams": hparams, "data": data,
              "dev": trials[0]["results"]["dev"], "seconds": round(time.time() - start, 1),
              "loss_curve": curve, "steps_to_converge": steps_to_converge(curve)}
    atomic_write_json(os.path.join(results_dir, "%s_seed%d.json" % (variant, seed)), record)
    return record


def summarize(work):
    by_variant = {}
    for path in sorted(glob.glob(os.path.join(work, "results", "*.json"))):
        record = json.load(open(path))
        by_variant.setdefault(record["variant"], []).append(
            (record["seed"], record["dev"]["accuracy"], record.get("steps_to_converge")))
    rows = [("official code", [(s, a, None) for s, a in enumerate(OFFICIAL_ACCURACIES, 1)])]
    print("| variant | seeds | dev accuracy per seed | mean | sd | range | steps to loss < %.1f |"
          % CONVERGED_LOSS)
    print("|---|---|---|---|---|---|---|")
    for name, runs in rows + sorted(by_variant.items()):
        runs = sorted(runs)
        accs = [a for _, a, _ in runs]
        sd = statistics.stdev(accs) if len(accs) > 1 else 0.0
        steps = "-" if name == rows[0][0] else ", ".join(
            str(c) if c is not None else "never" for _, _, c in runs)
        print("| %s | %s | %s | %.1f | %.1f | %.1f-%.1f | %s |" % (
            name, ",".join(str(s) for s, _, _ in runs), ", ".join("%.2f" % a for a in accs),
            statistics.mean(accs), sd, min(accs), max(accs), steps))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", default=os.path.join(REPO, "experiments", "fidelity"))
    parser.add_argument("--seeds", type=int, nargs="*", default=[1, 2, 3, 4, 5, 6])
    parser.add_argument("--variant", default="default", help="name of this setting")
    parser.add_argument("--hparams", default="{}", help="fine-tuning hparams on top")
    parser.add_argument("--model", choices=["protocol", "tiny"], default="protocol",
                        help="the protocol's 4-layer model, or the tiny one")
    parser.add_argument("--train-reviews", type=int, default=TRAIN_REVIEWS,
                        help="first N training reviews; 0: all")
    parser.add_argument("--random-init", action="store_true",
                        help="fine-tune from random weights, not the pre-trained model")
    parser.add_argument("--summarize", action="store_true")
    args = parser.parse_args(argv)
    if args.summarize:
        summarize(args.workdir)
        return 0
    data = prepare_data(args.workdir, args.model, args.train_reviews)
    extra = dict(json.loads(args.hparams), **({"random_init": True} if args.random_init else {}))
    for seed in args.seeds:
        record = finetune(args.workdir, data, args.variant, seed, extra, args.model)
        print("%s seed %d: dev accuracy %.2f (%.0f s)" % (
            args.variant, seed, record["dev"]["accuracy"], record["seconds"]), flush=True)
    summarize(args.workdir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
