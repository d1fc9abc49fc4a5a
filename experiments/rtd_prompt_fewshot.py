"""Zero- and few-shot classification through the discriminator head against a new head.

    python experiments/rtd_prompt_fewshot.py --data-dir own_data --model-name small4x128 \
        --work-dir fewshot_runs
    python experiments/rtd_prompt_fewshot.py ... --summarize     # the markdown table

For each task (ChnSentiCorp, LCQMC): the rtd-prompt zero-shot score, then for k in --shots
and each seed in --seeds two runs on the same k examples per label (train_examples_per_label
k, drawn by the seed): use_rtd_prompt (params/params_<task>_rtd_prompt.json) and the standard
classification head (params/params_<task>.json), both with the training settings of
TRAINING below, so that only the head differs (train_batch_size counts sequences: a prompt
batch of 8 holds 4 examples of a 2-label task, each once per label word). Every run scores
the same dev set: ChnSentiCorp's whole (1,200), LCQMC's first 2,000 pairs (of 8,802: the
CPU budget; each is scored once per label word). The pre-trained model is D/models/M (e.g. the one
scripts/own_data_cpu.sh makes); it is copied (checkpoints and model files) to a data dir of
the experiment's own, WORK/data/models/M, so that its results stay out of D's.

Task data come from ../shared/data into WORK/data/finetuning_data/<task>/: ChnSentiCorp's
train and dev; LCQMC's dev, and its test split as the pool the k examples are drawn from
(the shared data hold no LCQMC train split), never scored.

Each run's record (its settings, dev accuracy, time) goes to WORK/records/<run>.json and is
reused by a rerun only if its settings are the same; the run's trial dir is scratch, removed
once its record is written.
"""

import argparse
import contextlib
import filecmp
import fnmatch
import io
import json
import os
import shutil
import statistics
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import run_finetuning  # noqa: E402
from util.io import atomic_write_json  # noqa: E402

SHARED = os.path.join(os.path.dirname(REPO), "shared", "data")
# task -> {file in D/finetuning_data/<task>/: its source in ../shared/data/<task>/}
# task -> {file in WORK/data/finetuning_data/<task>/: (its source in ../shared/data/<task>/,
# the lines kept: None for all)}
TASK_FILES = {
    "chnsenticorp": {"train.tsv": ("train.tsv", None), "dev.tsv": ("dev.tsv", None)},
    "lcqmc": {"train.txt": ("test.txt", None), "dev.txt": ("dev.txt", 2000)},
}
# Both methods' training, per task: the rtd-prompt params files' lr and batch, 10 epochs
# (few-shot sets are tiny: 10 epochs of 2 x 64 examples are 160 steps of 8 for the head).
TRAINING = {"chnsenticorp": {"learning_rate": 1e-4, "train_batch_size": 8,
                             "num_train_epochs": 10, "max_seq_length": 128},
            "lcqmc": {"learning_rate": 1e-4, "train_batch_size": 8, "num_train_epochs": 10,
                      "max_seq_length": 64}}
# The model dir's files the runs need (not its fine-tuned trials, results or event files).
MODEL_FILES_SKIPPED = ("finetuning_models", "finetuning_tfrecords", "results", "eval",
                       "events.out.tfevents.*", "*.lock")
SCRATCH = {"num_trials": 1, "do_test": False, "save_checkpoints_secs": 0,
           "save_graph_def": False, "keep_checkpoint_max": 1, "eval_batch_size": 128,
           "predict_batch_size": 128}


def read_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def prepare_data_dir(args):
    """WORK/data: a copy of the pre-trained model dir's model files and of D/vocab.txt, the
    tasks' files from ../shared/data; returns its path. A copy already there must match."""
    data_dir = os.path.join(args.work_dir, "data")
    source = os.path.join(args.data_dir, "models", args.model_name)
    target = os.path.join(data_dir, "models", args.model_name)
    if not os.path.isdir(source):
        sys.exit("error: no pre-trained model %s in %s/models" % (args.model_name,
                                                                  args.data_dir))
    files = {os.path.join(source, "checkpoint"): os.path.join(target, "checkpoint"),
             os.path.join(args.data_dir, "vocab.txt"): os.path.join(data_dir, "vocab.txt")}
    for root, dirs, names in os.walk(source):
        dirs[:] = [d for d in dirs if not any(fnmatch.fnmatch(d, p) for p in MODEL_FILES_SKIPPED)]
        for name in names:
            if not any(fnmatch.fnmatch(name, p) for p in MODEL_FILES_SKIPPED):
                path = os.path.join(root, name)
                files[path] = os.path.join(target, os.path.relpath(path, source))
    for source_path, path in sorted(files.items()):
        if os.path.exists(path):
            if not filecmp.cmp(source_path, path, shallow=False):
                sys.exit("error: %s differs from %s: use another --work-dir" % (
                    path, source_path))
            continue
        os.makedirs(os.path.dirname(path), exist_ok=True)
        shutil.copyfile(source_path, path)
    for task in args.tasks:
        for name, (shared, keep) in TASK_FILES[task].items():
            with open(os.path.join(SHARED, task, shared), encoding="utf-8") as f:
                text = "".join(f.readlines()[:keep])
            path = os.path.join(data_dir, "finetuning_data", task, name)
            if os.path.exists(path) and open(path, encoding="utf-8").read() != text:
                sys.exit("error: %s differs from its source: use another --work-dir" % path)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
    return data_dir


def dev_labels(data_dir, task):
    """The dev set's labels, read here independently of the task readers."""
    path = os.path.join(data_dir, "finetuning_data", task, "dev.tsv" if task == "chnsenticorp"
                        else "dev.txt")
    with open(path, encoding="utf-8") as f:
        rows = [line.rstrip("\n").split("\t") for line in f if line.strip()]
    if task == "chnsenticorp":  # a header, with or without a leading qid column
        column = rows[0].index("label")
        return [r[column] for r in rows[1:]]
    return [r[2] for r in rows]  # lcqmc: text_a, text_b, label; no header


def runs(tasks, shots, seeds):
    """(run name, task, method, k, seed) of every run, zero-shot first."""
    for task in tasks:
        yield "%s_zero_shot" % task, task, "prompt", 0, 1
        for k in shots:
            for seed in seeds:
                for method in ("prompt", "head"):
                    yield "%s_%s_k%d_seed%d" % (task, method, k, seed), task, method, k, seed


def run_hparams(task, method, k, seed, work_dir, name):
    """(params file, overrides) of one run."""
    prompt_file = os.path.join(REPO, "params", "params_%s_rtd_prompt.json" % task)
    overrides = dict(SCRATCH, seed=seed, max_seq_length=TRAINING[task]["max_seq_length"],
                     model_dir=os.path.join(work_dir, "scratch", name, "{task}_model"))
    if k == 0:
        return prompt_file, dict(overrides, zero_shot=True)
    overrides.update(TRAINING[task], train_examples_per_label=k)
    if method == "prompt":
        return prompt_file, overrides
    return os.path.join(REPO, "params", "params_%s.json" % task), overrides


def run_one(args, data_dir, name, task, method, k, seed):
    """Runs (or reuses) one run; returns its record."""
    params_file, overrides = run_hparams(task, method, k, seed, args.work_dir, name)
    settings = {"params": read_json(params_file), "overrides": overrides,
                "model": os.path.abspath(os.path.join(args.data_dir, "models",
                                                      args.model_name))}
    record_path = os.path.join(args.work_dir, "records", name + ".json")
    if os.path.exists(record_path) and read_json(record_path)["settings"] == settings:
        return read_json(record_path)
    start = time.time()
    log = io.StringIO()
    with contextlib.redirect_stdout(log):
        status = run_finetuning.main(["--data-dir", data_dir, "--model-name",
                                      args.model_name, "--hparams", params_file,
                                      json.dumps(overrides)])
    os.makedirs(os.path.join(args.work_dir, "logs"), exist_ok=True)
    with open(os.path.join(args.work_dir, "logs", name + ".log"), "w") as f:
        f.write(log.getvalue())
    if status:
        sys.exit("error: run %s failed (status %s); its log: %s" % (
            name, status, os.path.join(args.work_dir, "logs", name + ".log")))
    # The newest run's record is at the top level: this run's.
    results = read_json(os.path.join(data_dir, "models", args.model_name, "results",
                                     task + "_results.json"))
    accuracy = results["trials"][0]["results"]["dev"]["accuracy"]
    record = {"name": name, "task": task, "method": method, "k": k, "seed": seed,
              "dev_accuracy": accuracy, "seconds": round(time.time() - start, 1),
              "settings": settings}
    atomic_write_json(record_path, record)
    shutil.rmtree(os.path.join(args.work_dir, "scratch", name))  # the trial: scratch
    print("%-32s dev accuracy %.2f (%.0f s)" % (name, accuracy, record["seconds"]),
          flush=True)
    return record


def mean_sd(values):
    return "%.1f ± %.1f" % (statistics.mean(values),
                            statistics.stdev(values) if len(values) > 1 else 0.0)


def summarize(args):
    """The markdown table of the records there are."""
    records = {}
    for name in os.listdir(os.path.join(args.work_dir, "records")):
        record = read_json(os.path.join(args.work_dir, "records", name))
        records[record["name"]] = record
    lines = []
    for task in args.tasks:
        labels = dev_labels(os.path.join(args.work_dir, "data"), task)
        majority = 100.0 * max(labels.count(x) for x in set(labels)) / len(labels)
        zero = records.get("%s_zero_shot" % task)
        lines += ["", "%s (dev, %d examples; majority class %.1f%%; zero-shot through the "
                  "discriminator head: %s)" % (task, len(labels), majority,
                                               "%.1f%%" % zero["dev_accuracy"] if zero
                                               else "not run"), "",
                  "| k per label | rtd-prompt | new head | rtd-prompt better in |",
                  "|---|---|---|---|"]
        for k in args.shots:
            pairs = [(records.get("%s_prompt_k%d_seed%d" % (task, k, s)),
                      records.get("%s_head_k%d_seed%d" % (task, k, s))) for s in args.seeds]
            pairs = [(p["dev_accuracy"], h["dev_accuracy"]) for p, h in pairs if p and h]
            if not pairs:
                continue
            prompt, head = [p for p, _ in pairs], [h for _, h in pairs]
            lines.append("| %d | %s | %s | %d of %d seeds |" % (
                k, mean_sd(prompt), mean_sd(head), sum(p > h for p, h in pairs), len(pairs)))
    print("\n".join(lines[1:]))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--model-name", required=True)
    parser.add_argument("--work-dir", required=True, help="records, logs and scratch trials")
    parser.add_argument("--tasks", nargs="+", default=list(TASK_FILES), choices=TASK_FILES)
    parser.add_argument("--shots", nargs="+", type=int, default=[8, 16, 32, 64])
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3, 4, 5])
    parser.add_argument("--summarize", action="store_true", help="print the table only")
    args = parser.parse_args(argv)
    if args.summarize:
        return summarize(args)
    data_dir = prepare_data_dir(args)
    for run in runs(args.tasks, args.shots, args.seeds):
        run_one(args, data_dir, *run)
    summarize(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
