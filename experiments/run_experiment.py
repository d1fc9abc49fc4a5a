"""Does pre-training help? Pre-train a small ELECTRA on real Chinese text, then fine-tune
it and a randomly initialised twin on three tasks, 3 seeds each, and write a report.

    make experiment            # = python experiments/run_experiment.py
    python experiments/run_experiment.py --mini --work-dir /tmp/x --docs-dir /tmp/x/docs

Data (all from ../shared/data, read in place; evaluation splits never enter pre-training):
  pre-training text: TNEWS titles, SIGHAN 2005 MSR sentences, DRCD paragraphs, LCQMC/BQ
    questions, OCNLI/XNLI sentences, MSRA NER sentences, ChnSentiCorp *train* reviews.
    Left out: all of CMRC 2018 and People's Daily (NER) and the SIGHAN PKU set (People's
    Daily text too), and ChnSentiCorp dev/test.
  fine-tuning: ChnSentiCorp (train subset / dev), People's Daily NER (example.dev as train,
    part of example.test as dev), CMRC 2018 (trial as train, part of dev as dev).
Every stage is resumable: rerunning the command skips what is done.
"""

import argparse
import json
import os
import shutil
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import build_pretraining_dataset  # noqa: E402
from experiments import experiment_report  # noqa: E402
import run_finetuning  # noqa: E402
import run_pretraining  # noqa: E402
from util.errors import InputError  # noqa: E402
from util.io import atomic_write_json, format_duration  # noqa: E402

SHARED_DATA = os.path.join(os.path.dirname(REPO), "shared", "data")

# The pre-trained model: ELECTRA with a 4-layer, 128-wide discriminator (generator 1/4 as
# wide), chosen so that pre-training fits in about 45 minutes on 2 CPU cores.
MODEL = {"model_size": "small", "embedding_size": 128,
         "model_hparam_overrides": {"hidden_size": 128, "num_hidden_layers": 4,
                                    "num_attention_heads": 2, "intermediate_size": 512}}
FULL = {
    "pretrain": dict(MODEL, max_seq_length=128, train_batch_size=32, learning_rate=5e-4,
                     num_warmup_steps=500, num_train_steps=5000, save_checkpoints_steps=1000, keep_checkpoint_max=0,
                     log_every_steps=100, eval_batch_size=32, num_eval_steps=20, seed=1),
    "finetune": dict(MODEL, learning_rate=3e-4, train_batch_size=32, eval_batch_size=64,
                     num_trials=3, seed=1, log_every_steps=50),
    "tasks": {
        "chnsenticorp": {"max_seq_length": 128, "num_train_epochs": 3},
        # NER: 3 epochs at 3e-4 leave random weights tagging every token O (F1 0.0) and lr
        # 1e-3 collapses both arms to O; 10 epochs at 1e-4 without layer-wise decay train both.
        "peoples-daily-ner": {"max_seq_length": 128, "num_train_epochs": 10,
                              "learning_rate": 1e-4, "layerwise_lr_decay": 0.0},
        "cmrc2018": {"max_seq_length": 256, "doc_stride": 128, "max_query_length": 32,
                     "num_train_epochs": 3},
    },
    "sizes": {"senti_train": 4000, "ner_dev": 1000, "cmrc_dev_paragraphs": 300},
}
MINI = {
    "pretrain": dict(MODEL, max_seq_length=64, train_batch_size=8, learning_rate=5e-4,
                     num_warmup_steps=5, num_train_steps=20, save_checkpoints_steps=10,
                     log_every_steps=5, eval_batch_size=8, num_eval_steps=2, seed=1,
                     model_size="tiny", model_hparam_overrides={}, embedding_size=None,
                     save_graph_def=False),
    "finetune": dict(FULL["finetune"], model_size="tiny", model_hparam_overrides={},
                     embedding_size=None, train_batch_size=8, num_trials=2, log_every_steps=5,
                     save_graph_def=False),
    # 2 trials where the seed-style table needs them, 1 elsewhere: each run costs the tests
    "tasks": {
        "chnsenticorp": {"max_seq_length": 64, "num_train_epochs": 1},
        "peoples-daily-ner": {"max_seq_length": 64, "num_train_epochs": 1, "num_trials": 1},
        "cmrc2018": {"max_seq_length": 96, "doc_stride": 48, "max_query_length": 16,
                     "num_train_epochs": 1, "num_trials": 1},
    },
    "sizes": {"senti_train": 40, "ner_dev": 20, "cmrc_dev_paragraphs": 3, "limit": 400},
}
PRETRAINED, RANDOM = "electra_pretrained", "electra_random_init"


def shared(*parts):
    path = os.path.join(SHARED_DATA, *parts)
    if not os.path.exists(path):
        raise InputError("experiment data missing: %s (the ../shared/data folder beside the "
                         "repo must hold the public data sets; see its README.md)" % path)
    return path


def read_lines(*parts):
    # errors="replace": the SIGHAN MSR file ends in a truncated UTF-8 sequence.
    with open(shared(*parts), encoding="utf-8", errors="replace") as f:
        return [line.rstrip("\r\n") for line in f]


def jsonl(*parts, key):
    return [json.loads(line)[key] for line in read_lines(*parts) if line.strip()]


def tsv_column(*parts, column, header=True):
    rows = [line.split("\t") for line in read_lines(*parts) if line.strip()]
    if header:
        index = rows[0].index(column)
        rows = rows[1:]
    else:
        index = column
    return [r[index] for r in rows if len(r) > index]


def chunk_docs(sentences, per_doc):
    """Short unrelated sentences (titles, questions) grouped into pseudo-documents."""
    return [sentences[i:i + per_doc] for i in range(0, len(sentences), per_doc)]


def pretraining_documents():
    """{source name: list of documents (lists of lines)} from the allowed sources."""
    drcd = json.load(open(shared("drcd", "DRCD_dev.json"), encoding="utf-8"))
    docs = {
        "drcd_paragraphs": [[p["context"]] for a in drcd["data"] for p in a["paragraphs"]],
        "sighan_msr": chunk_docs([line.replace(" ", "") for line in
                                  read_lines("sighan2005", "msr_test_gold.utf8")
                                  if line.strip()], 8),
        "tnews_titles": chunk_docs(tsv_column("tnews", "train.tsv", column=0, header=False)
                                   + jsonl("tnews", "dev.json", key="sentence"), 10),
        "chnsenticorp_train": [[t] for t in tsv_column("chnsenticorp", "train.tsv",
                                                       column="text_a")],
        "lcqmc_bq_questions": chunk_docs(
            [q for f in (("lcqmc", "dev.txt"), ("lcqmc", "test.txt"), ("bqcorpus", "dev.tsv"))
             for q in tsv_column(*f, column=0, header=False)], 10),
        "ocnli_xnli": chunk_docs(jsonl("ocnli", "train.10k.json", key="sentence1")
                                 + tsv_column("xnli", "dev.tsv", column="text_a"), 10),
        "msra_ner_sentences": chunk_docs(ner_sentences("msra-ner", "dev.ner")
                                         + ner_sentences("msra-ner", "test.ner"), 8),
    }
    return docs


def ner_sentences(*parts):
    text = open(shared(*parts), encoding="utf-8").read()
    return ["".join(line.split(" ")[0] for line in block.splitlines() if line.strip())
            for block in text.split("\n\n") if block.strip()]


def write_corpus(work, limit=None):
    """corpus/ (training) and heldout_corpus/ (every 50th document, for do_eval)."""
    corpus, heldout = os.path.join(work, "corpus"), os.path.join(work, "heldout_corpus")
    if os.path.isdir(corpus) and os.path.isdir(heldout):
        return corpus, heldout
    stats = {}
    for directory in (corpus + ".tmp", heldout + ".tmp"):
        shutil.rmtree(directory, ignore_errors=True)
        os.makedirs(directory)
    for name, docs in pretraining_documents().items():
        docs = docs[:limit] if limit else docs
        train = [d for i, d in enumerate(docs) if i % 50 != 49]
        held = [d for i, d in enumerate(docs) if i % 50 == 49]
        for directory, part in ((corpus + ".tmp", train), (heldout + ".tmp", held)):
            with open(os.path.join(directory, name + ".txt"), "w", encoding="utf-8") as f:
                f.write("\n\n".join("\n".join(d) for d in part) + "\n")
        stats[name] = {"documents": len(docs), "characters": sum(len(x) for d in docs
                                                                 for x in d)}
    os.replace(corpus + ".tmp", corpus)
    os.replace(heldout + ".tmp", heldout)
    atomic_write_json(os.path.join(work, "corpus_stats.json"), stats)
    return corpus, heldout


def build_tfrecords(work, corpus, heldout, max_seq_length):
    vocab = os.path.join(REPO, "sample_data", "vocab.txt")
    shutil.copy(vocab, os.path.join(work, "vocab.txt"))
    for source, out in ((corpus, "pretrain_tfrecords"), (heldout, "heldout_tfrecords")):
        out = os.path.join(work, out)
        if os.path.exists(os.path.join(out, "dataset_info.json")):
            continue
        status = build_pretraining_dataset.main([
            "--corpus-dir", source, "--vocab-file", vocab, "--output-dir", out,
            "--max-seq-length", str(max_seq_length), "--num-processes", "2",
            "--num-out-files", "2", "--overwrite"])
        if status != 0:
            raise InputError("building tfrecords from %s failed" % source)


def pretrain(work, plan):
    """One run; every checkpoint (every 1,000 steps, and step 0) is evaluated on held-out
    text as it is saved, which gives the eval curve without disturbing the lr schedule."""
    hparams = dict(plan["pretrain"], do_eval=True, eval_each_checkpoint=True,
                   eval_tfrecords=os.path.join(work, "heldout_tfrecords",
                                               "pretrain_data.tfrecord*"))
    status = run_pretraining.main(["--data-dir", work, "--model-name", PRETRAINED,
                                   "--hparams", json.dumps(hparams)])
    if status != 0:
        raise InputError("pre-training failed (rerun to resume from the last checkpoint)")


def write_finetuning_data(work, sizes):
    root = os.path.join(work, "finetuning_data")
    senti = os.path.join(root, "chnsenticorp")
    os.makedirs(senti, exist_ok=True)
    lines = read_lines("chnsenticorp", "train.tsv")
    write_text(os.path.join(senti, "train.tsv"), lines[:1 + sizes["senti_train"]])
    dev = read_lines("chnsenticorp", "dev.tsv")
    write_text(os.path.join(senti, "dev.tsv"), dev[:1 + sizes.get("limit", len(dev))])

    ner = os.path.join(root, "peoples-daily-ner")
    os.makedirs(ner, exist_ok=True)
    train_blocks = open(shared("peoples-daily-ner", "example.dev"), encoding="utf-8")\
        .read().strip().split("\n\n")
    test_blocks = open(shared("peoples-daily-ner", "example.test"), encoding="utf-8")\
        .read().strip().split("\n\n")
    limit = sizes.get("limit")
    write_text(os.path.join(ner, "train.txt"), ["\n\n".join(train_blocks[:limit])])
    write_text(os.path.join(ner, "dev.txt"), ["\n\n".join(test_blocks[:sizes["ner_dev"]])])

    cmrc = os.path.join(root, "cmrc2018")
    os.makedirs(cmrc, exist_ok=True)
    trial = json.load(open(shared("cmrc2018", "cmrc2018_trial.json"), encoding="utf-8"))
    if limit:
        trial["data"] = trial["data"][:max(1, limit // 100)]
    dev = json.load(open(shared("cmrc2018", "cmrc2018_dev.json"), encoding="utf-8"))
    paragraphs = [p for a in dev["data"] for p in a["paragraphs"]]
    dev["data"] = [{"title": "dev", "paragraphs": paragraphs[-sizes["cmrc_dev_paragraphs"]:]}]
    atomic_write_json(os.path.join(cmrc, "train.json"), trial)
    atomic_write_json(os.path.join(cmrc, "dev.json"), dev)


def write_text(path, lines):
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


def finetune(work, plan):
    random_dir = os.path.join(work, "models", RANDOM)
    os.makedirs(random_dir, exist_ok=True)
    shutil.copy(os.path.join(work, "vocab.txt"), os.path.join(random_dir, "vocab.txt"))
    for task, task_hparams in plan["tasks"].items():
        for model_name, extra in ((PRETRAINED, {}), (RANDOM, {"random_init": True})):
            if os.path.exists(os.path.join(work, "models", model_name, "results",
                                           "%s_results.json" % task)):
                continue
            hparams = dict(plan["finetune"], task_names=[task], **task_hparams, **extra)
            status = run_finetuning.main(["--data-dir", work, "--model-name", model_name,
                                          "--hparams", json.dumps(hparams)])
            if status != 0:
                raise InputError("fine-tuning %s on %s failed" % (model_name, task))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work-dir", default=os.path.join(REPO, "experiment_data"),
                        help="data, checkpoints and results (not committed); a local "
                             "folder: this harness reads ../shared and renames directories")
    parser.add_argument("--docs-dir", default=os.path.join(REPO, "docs", "experiment"),
                        help="where the report and plots go")
    parser.add_argument("--mini", action="store_true",
                        help="a minutes-long miniature run with the tiny model (for tests)")
    args = parser.parse_args(argv)
    plan = MINI if args.mini else FULL
    start = time.time()
    timings = {}
    try:
        os.makedirs(args.work_dir, exist_ok=True)
        stages = [
            ("corpus", lambda: write_corpus(args.work_dir, plan["sizes"].get("limit"))),
            ("tfrecords", lambda: build_tfrecords(args.work_dir, *write_corpus(args.work_dir),
                                                  plan["pretrain"]["max_seq_length"])),
            ("pretraining", lambda: pretrain(args.work_dir, plan)),
            ("finetuning data", lambda: write_finetuning_data(args.work_dir, plan["sizes"])),
            ("finetuning", lambda: finetune(args.work_dir, plan)),
        ]
        for name, stage in stages:
            t0 = time.time()
            print("== %s" % name, flush=True)
            stage()
            timings[name] = time.time() - t0
        timings["total"] = time.time() - start
        experiment_report.write_report(args, plan, timings, PRETRAINED, RANDOM)
    except InputError as e:
        print("error: %s" % e, file=sys.stderr)
        return 2
    print("experiment done in %s; report in %s" % (format_duration(time.time() - start),
                                                   args.docs_dir), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
