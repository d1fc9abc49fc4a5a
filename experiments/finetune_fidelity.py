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
--summarize prints mean, sd and range per variant.
"""

import argparse
import glob
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
TRAIN_REVIEWS = 2000
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


def prepare_data(work):
    """WORKDIR/data: vocab, tfrecords, the pre-trained model, the ChnSentiCorp subset."""
    data = os.path.join(work, "data")
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
    if run_pretraining.main(["--data-dir", data, "--model-name", "fidelity",
                             "--hparams", json.dumps(PRETRAIN)]) != 0:
        raise SystemExit("pre-training failed")
    task_dir = os.path.join(data, "finetuning_data", "chnsenticorp")
    os.makedirs(task_dir, exist_ok=True)
    for split, limit in (("train", TRAIN_REVIEWS), ("dev", None)):
        with open(os.path.join(SHARED, "chnsenticorp", split + ".tsv"), encoding="utf-8") as f:
            lines = f.read().splitlines()
        lines = lines[:1 + limit] if limit else lines
        target = os.path.join(task_dir, split + ".tsv")
        text = "\n".join(lines) + "\n"
        if not os.path.exists(target) or open(target, encoding="utf-8").read() != text:
            with open(target, "w", encoding="utf-8") as f:
                f.write(text)
    return data


def finetune(work, data, variant, seed, extra):
    """One trial; returns its record (also written to WORKDIR/results)."""
    hparams = dict(FINETUNE, seed=seed, model_dir=os.path.join(
        work, "finetuned", "%s_seed%d" % (variant, seed), "{task}"), **extra)
    results_dir = os.path.join(work, "results")
    os.makedirs(results_dir, exist_ok=True)
    start = time.time()
    trials = run_finetuning.run(run_finetuning.configure_finetuning.FinetuningConfig(
        "fidelity", data, **hparams))["chnsenticorp"]
    record = {"variant": variant, "seed": seed, "hparams": hparams,
              "dev": trials[0]["results"]["dev"], "seconds": round(time.time() - start, 1)}
    atomic_write_json(os.path.join(results_dir, "%s_seed%d.json" % (variant, seed)), record)
    return record


def summarize(work):
    by_variant = {}
    for path in sorted(glob.glob(os.path.join(work, "results", "*.json"))):
        record = json.load(open(path))
        by_variant.setdefault(record["variant"], []).append(
            (record["seed"], record["dev"]["accuracy"]))
    rows = [("official", list(enumerate(OFFICIAL_ACCURACIES, 1)))] + sorted(by_variant.items())
    print("| variant | seeds | dev accuracy per seed | mean | sd | range |")
    print("|---|---|---|---|---|---|")
    for name, runs in rows:
        runs = sorted(runs)
        accs = [a for _, a in runs]
        sd = statistics.stdev(accs) if len(accs) > 1 else 0.0
        print("| %s | %s | %s | %.1f | %.1f | %.1f-%.1f |" % (
            name, ",".join(str(s) for s, _ in runs), ", ".join("%.2f" % a for a in accs),
            statistics.mean(accs), sd, min(accs), max(accs)))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", default=os.path.join(REPO, "experiments", "fidelity"))
    parser.add_argument("--seeds", type=int, nargs="*", default=[1, 2, 3, 4, 5, 6])
    parser.add_argument("--variant", default="default", help="name of this setting")
    parser.add_argument("--hparams", default="{}", help="fine-tuning hparams on top")
    parser.add_argument("--summarize", action="store_true")
    args = parser.parse_args(argv)
    if args.summarize:
        summarize(args.workdir)
        return 0
    data = prepare_data(args.workdir)
    for seed in args.seeds:
        record = finetune(args.workdir, data, args.variant, seed, json.loads(args.hparams))
        print("%s seed %d: dev accuracy %.2f (%.0f s)" % (
            args.variant, seed, record["dev"]["accuracy"], record["seconds"]), flush=True)
    summarize(args.workdir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
