"""`make demo`: the whole loop on the bundled data, from raw text to predictions.

    python scripts/demo.py                       # = make demo (writes demo_data/)
    python scripts/demo.py --mini --demo-dir /tmp/d --sample-dir /tmp/sample_data  # tests

Stages, each through the public command-line entry point (the command is printed, so it
can be run by hand): build tfrecords -> pre-train the tiny model -> fine-tune it on the
bundled reviews (2 trials) -> print the results table -> export a SavedModel -> predict a
few reviews -> export the discriminator to Hugging Face format.

Rerunning is fast: a stage whose inputs and settings are unchanged since it finished is
reused; otherwise its outputs are removed and it is redone (pre-training and fine-tuning
resume from their checkpoints when their settings are unchanged).
"""

import argparse
import hashlib
import io
import json
import os
import shlex
import sys
import time
import traceback

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
from util.quiet_tf import import_tensorflow  # noqa: E402
import_tensorflow()  # first: TF's start-up noise kept off stderr

MODEL_NAME = "electra_tiny_demo"
TASK = "chnsenticorp"
LABEL_NAMES = {"0": "negative", "1": "positive"}  # ChnSentiCorp's labels
FINETUNE_PARAMS = os.path.join("params", "params_demo_chnsenticorp.json")
STATE_FILE = ".demo_state.json"  # in the demo dir: per stage, its settings key and "done"

# --mini: the same stages with tiny step counts (tests/test_demo.py).
MINI_PRETRAIN = {"num_train_steps": 12, "train_batch_size": 8, "eval_batch_size": 8,
                 "num_warmup_steps": 2, "save_checkpoints_steps": 12, "log_every_steps": 6,
                 "num_eval_steps": 1}
MINI_FINETUNE = {"num_train_epochs": 0.5, "log_every_steps": 2}


class StageError(Exception):
    """A stage's entry point returned a non-zero status."""


def shell_join(argv):
    return " ".join(shlex.quote(a) for a in argv)


def read_json(path):
    import tensorflow as tf
    with tf.io.gfile.GFile(path, "r") as f:
        return json.load(f)


def remove(pattern):
    """Removes the files and dirs matching a glob pattern (a plain path matches itself)."""
    import tensorflow as tf
    for path in tf.io.gfile.glob(pattern):
        if tf.io.gfile.isdir(path):
            tf.io.gfile.rmtree(path)
        else:
            tf.io.gfile.remove(path)


def copy_tree(src, dst):
    """Copies the files of src into dst (created), recursively."""
    import tensorflow as tf
    for root, _, files in tf.io.gfile.walk(src):
        out = os.path.join(dst, os.path.relpath(root, src))
        tf.io.gfile.makedirs(out)
        for name in files:
            tf.io.gfile.copy(os.path.join(root, name), os.path.join(out, name), overwrite=True)


def digest_files(*paths):
    """A hash of the names and contents of files (dirs walked), for the stage keys."""
    import tensorflow as tf
    h = hashlib.sha256()
    for path in paths:
        files = ([os.path.join(r, n) for r, _, ns in tf.io.gfile.walk(path) for n in ns]
                 if tf.io.gfile.isdir(path) else [path])
        for name in sorted(files):
            h.update(os.path.relpath(name, path).encode("utf-8"))
            with tf.io.gfile.GFile(name, "rb") as f:
                h.update(f.read())
    return h.hexdigest()[:16]


class Demo:
    """The stages and their bookkeeping; paths are relative to the working directory."""

    def __init__(self, args):
        self.args = args
        self.demo = args.demo_dir
        self.sample = args.sample_dir
        self.model_dir = os.path.join(self.demo, "models", MODEL_NAME)
        self.results = os.path.join(self.model_dir, "results")
        self.trial_dir = os.path.join(self.model_dir, "finetuning_models", TASK + "_model_1")
        self.export_dir = os.path.join(self.demo, "exports", TASK)
        self.reviews = os.path.join(self.sample, "demo_reviews.jsonl")
        self.predictions = os.path.join(self.demo, "predictions.jsonl")
        self.hf_dir = os.path.join(self.demo, "hf", MODEL_NAME + "-discriminator")
        self.state_path = os.path.join(self.demo, STATE_FILE)
        self.state = {}
        self.keys = {}  # stage title -> key of its settings and of the stages it comes after
        self.current = "setup"  # the stage running, for the error message

    # -- bookkeeping -----------------------------------------------------------------

    def load_state(self):
        import tensorflow as tf
        if tf.io.gfile.exists(self.state_path):
            try:
                self.state = read_json(self.state_path)
            except ValueError:
                self.state = {}  # a damaged state file: every stage is redone

    def save_state(self):
        import tensorflow as tf
        tmp = self.state_path + ".tmp"
        with tf.io.gfile.GFile(tmp, "w") as f:
            f.write(json.dumps(self.state, indent=2, sort_keys=True) + "\n")
        tf.io.gfile.rename(tmp, self.state_path, overwrite=True)

    def stage(self, number, title, settings, outputs, body, after=(), resumable=False,
              extra_removals=()):
        """Runs body() unless the stage finished with the same settings and inputs.

        settings: what decides the stage's result besides the stages it comes after
        (JSON-able); after: the titles of those stages (one redone redoes this one too).
        outputs: paths the stage writes; removed before a redo (kept for a resumable
        stage whose settings are unchanged: its tool resumes from them); extra_removals:
        glob patterns of further leftovers to remove then.
        body() returns the one line saying what was made and where.
        """
        import tensorflow as tf
        key = hashlib.sha256(json.dumps([[self.keys[t] for t in after], settings],
                                        sort_keys=True).encode("utf-8")).hexdigest()[:16]
        self.keys[title] = key
        entry = self.state.get(title, {})
        self.current = "%d/7 %s" % (number, title)
        print("\n[%d/7] %s" % (number, title), flush=True)
        if (entry.get("key") == key and entry.get("done")
                and all(tf.io.gfile.exists(p) for p in outputs)):
            print("  reused (unchanged since the last run): %s" % entry["made"], flush=True)
            return
        if entry.get("key") != key or not resumable:
            for path in outputs + list(extra_removals):
                remove(path)
        self.state[title] = {"key": key, "done": False}
        self.save_state()
        start = time.time()
        try:
            made = body()
        except StageError:
            raise
        except Exception as e:  # a bug or an environment problem: name the stage
            traceback.print_exc()
            raise StageError("%s: %s" % (type(e).__name__, e))
        print("  -> %s (%.0fs)" % (made, time.time() - start), flush=True)
        self.state[title] = {"key": key, "done": True, "made": made}
        self.save_state()

    def run_tool(self, command, main, argv, **kwargs):
        """Prints the command, then runs the entry point main(argv) in this process."""
        print("  $ %s %s" % (command, shell_join(argv)), flush=True)
        status = main(argv, **kwargs)
        if status:
            raise StageError("`%s` exited with status %s (its error is above)"
                             % (command.split()[-1], status))

    # -- the stages ------------------------------------------------------------------

    def pretrain_hparams(self):
        """The hparams argument: the bundled file as is, or inline JSON with --mini."""
        path = os.path.join(self.sample, "demo_hparams.json")
        hparams = read_json(path)
        if not self.args.mini:
            return path, hparams
        hparams.update(MINI_PRETRAIN)
        return json.dumps(hparams), hparams

    def finetune_hparams(self):
        path = os.path.join(REPO, FINETUNE_PARAMS)
        hparams = read_json(path)
        if not self.args.mini:
            return FINETUNE_PARAMS, hparams
        hparams.update(MINI_FINETUNE)
        return json.dumps(hparams), hparams

    def build_tfrecords(self, max_seq_length):
        import build_pretraining_dataset
        corpus = os.path.join(self.sample, "corpus")
        vocab = os.path.join(self.sample, "vocab.txt")
        out = os.path.join(self.demo, "pretrain_tfrecords")

        def body():
            import tensorflow as tf
            self.run_tool("python build_pretraining_dataset.py", build_pretraining_dataset.main,
                          ["--corpus-dir", corpus, "--vocab-file", vocab, "--output-dir", out,
                           "--max-seq-length", str(max_seq_length), "--overwrite"])
            tf.io.gfile.copy(vocab, os.path.join(self.demo, "vocab.txt"), overwrite=True)
            stats = read_json(os.path.join(out, "dataset_info.json"))["stats"]
            return "made %d examples of %d tokens in %s" % (stats["examples"], max_seq_length,
                                                             out)
        self.stage(1, "build tfrecords", [digest_files(corpus, vocab), max_seq_length],
                   [out, os.path.join(self.demo, "vocab.txt")], body)

    def pretrain(self, hparams_arg, hparams):
        import run_pretraining

        def body():
            self.run_tool("python run_pretraining.py", run_pretraining.main,
                          ["--data-dir", self.demo, "--model-name", MODEL_NAME,
                           "--hparams", hparams_arg])
            return "pre-trained %d steps: checkpoints in %s" % (hparams["num_train_steps"],
                                                                 self.model_dir)
        self.stage(2, "pre-train the tiny ELECTRA", hparams, [self.model_dir], body,
                   after=["build tfrecords"], resumable=True)

    def finetune(self, hparams_arg, hparams):
        import run_finetuning
        task_data = os.path.join(self.sample, "finetuning_data", TASK)
        outputs = [os.path.join(self.demo, "finetuning_data"),
                   os.path.join(self.model_dir, "finetuning_models"),
                   os.path.join(self.model_dir, "finetuning_tfrecords"),
                   os.path.join(self.results, TASK + "_results.json"),
                   os.path.join(self.results, TASK + "_results.md")]

        def body():
            copy_tree(task_data, os.path.join(self.demo, "finetuning_data", TASK))
            self.run_tool("python run_finetuning.py", run_finetuning.main,
                          ["--data-dir", self.demo, "--model-name", MODEL_NAME,
                           "--hparams", hparams_arg])
            return "fine-tuned %d trials: %s_model_<i>/ in %s" % (
                hparams["num_trials"], TASK, os.path.dirname(self.trial_dir))
        self.stage(3, "fine-tune on the bundled reviews", [digest_files(task_data), hparams],
                   outputs, body, after=["pre-train the tiny ELECTRA"], resumable=True,
                   extra_removals=[os.path.join(self.results, TASK + "_*")])

    def results_table(self):
        """Printed on every run (reused or not): it is what the demo is for."""
        import tensorflow as tf
        table = os.path.join(self.results, TASK + "_results.md")
        self.current = "4/7 results table"
        print("\n[4/7] results table", flush=True)
        with tf.io.gfile.GFile(table, "r") as f:
            print("\n".join("  " + line for line in f.read().strip().splitlines()))
        print("  -> %s (every trial's metrics: %s)"
              % (table, os.path.join(self.results, TASK + "_results.json")), flush=True)

    def export(self):
        import export_savedmodel

        def body():
            self.run_tool("python export_savedmodel.py", export_savedmodel.main,
                          [self.trial_dir, "--out", self.export_dir, "--overwrite"])
            return "SavedModel (signature serving_default) in %s" % self.export_dir
        self.stage(5, "export the first trial as a SavedModel", [], [self.export_dir], body,
                   after=["fine-tune on the bundled reviews"])

    def predict(self):
        import predict

        def body():
            import tensorflow as tf
            out = io.StringIO()
            with tf.io.gfile.GFile(self.reviews, "rb") as stdin:
                print("  $ python predict.py %s < %s > %s"
                      % (self.export_dir, self.reviews, self.predictions), flush=True)
                status = predict.main([self.export_dir], stdin=stdin, stdout=out)
            if status:
                raise StageError("`predict.py` exited with status %s" % status)
            with tf.io.gfile.GFile(self.predictions, "w") as f:
                f.write(out.getvalue())
            rows = [json.loads(line) for line in out.getvalue().splitlines()]
            for row in rows:
                label = row["label"]
                print("  %s %-8s p=%.3f  %s" % (label, LABEL_NAMES.get(label, ""),
                                                 row["probabilities"][label], row["text"]))
            return "%d predictions in %s" % (len(rows), self.predictions)
        self.stage(6, "predict a few reviews", [digest_files(self.reviews)],
                   [self.predictions], body, after=["export the first trial as a SavedModel"])

    def export_hf(self):
        from scripts import export_hf

        def body():
            self.run_tool("python scripts/export_hf.py", export_hf.main,
                          [self.model_dir, self.hf_dir, "--component", "discriminator"])
            return "Hugging Face ElectraForPreTraining in %s" % self.hf_dir
        self.stage(7, "export the discriminator to Hugging Face format", [], [self.hf_dir],
                   body, after=["pre-train the tiny ELECTRA"])

    def closing(self, elapsed):
        from util.io import format_duration
        rows = [
            ("pre-training checkpoints", self.model_dir + "/model.ckpt-*"),
            ("fine-tuned trials", os.path.dirname(self.trial_dir) + "/" + TASK + "_model_<i>/"),
            ("TensorBoard", "tensorboard --logdir " + os.path.join(self.demo, "models")),
            ("results table", os.path.join(self.results, TASK + "_results.md") + " (.json)"),
            ("SavedModel", self.export_dir),
            ("predictions", self.predictions),
            ("Hugging Face model", self.hf_dir),
        ]
        width = max(len(what) for what, _ in rows)
        print("\ndemo done in %s. What it made:" % format_duration(elapsed))
        for what, where in rows:
            print("  %-*s  %s" % (width, what, where))
        print("\nNext, on your own data (docs/own-data.md: a CPU-sized run with the figures "
              "to expect):\n"
              "  .venv/bin/python build_pretraining_dataset.py --corpus-dir my_corpus/ "
              "--vocab-file sample_data/vocab.txt --output-dir D/pretrain_tfrecords "
              "--max-seq-length 128 --eval-share 0.02 && cp sample_data/vocab.txt D/\n"
              "  .venv/bin/python run_pretraining.py --data-dir D --model-name my_electra "
              "--hparams params/pretrain_cpu_minutes.json\n"
              "  .venv/bin/python run_finetuning.py --data-dir D --model-name my_electra "
              "--hparams params_chnsenticorp.json '{\"num_train_epochs\": 5}'   "
              "# task data in D/finetuning_data/chnsenticorp/\n"
              "\nNote: the demo's model is tiny (2 layers, hidden 64), pre-trained for minutes on "
              "a corpus of %s tokens and fine-tuned on %d reviews: its accuracy says nothing "
              "about a real model. The demo shows that every stage runs and what each one "
              "writes." % (format(self.corpus_tokens, ","), self.train_reviews), flush=True)

    def run(self):
        import tensorflow as tf
        tf.io.gfile.makedirs(self.demo)
        self.load_state()
        pre_arg, pre_hparams = self.pretrain_hparams()
        ft_arg, ft_hparams = self.finetune_hparams()
        self.build_tfrecords(pre_hparams.get("max_seq_length", 128))
        self.pretrain(pre_arg, pre_hparams)
        self.finetune(ft_arg, ft_hparams)
        self.results_table()
        self.export()
        self.predict()
        self.export_hf()
        info = read_json(os.path.join(self.demo, "pretrain_tfrecords", "dataset_info.json"))
        self.corpus_tokens = info["stats"]["tokens"]
        with tf.io.gfile.GFile(os.path.join(self.demo, "finetuning_data", TASK,
                                            "train.tsv"), "r") as f:
            self.train_reviews = len(f.read().strip().splitlines()) - 1  # minus the header


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--demo-dir", default="demo_data",
                        help="where everything is written (default demo_data)")
    parser.add_argument("--sample-dir", default=os.path.relpath(os.path.join(REPO, "sample_data")),
                        help="the bundled data: corpus/, vocab.txt, demo_hparams.json, "
                             "finetuning_data/, demo_reviews.jsonl")
    parser.add_argument("--mini", action="store_true",
                        help="tiny step counts: a check that every stage runs (tests)")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    demo = Demo(args)
    start = time.time()
    try:
        demo.run()
    except StageError as e:
        print("\ndemo failed at stage %s: %s\nFix it and run `make demo` again: finished "
              "stages are reused." % (demo.current, e), file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        print("\ndemo interrupted at stage %s; run `make demo` again to continue."
              % demo.current, file=sys.stderr, flush=True)
        return 130
    demo.closing(time.time() - start)
    return 0


if __name__ == "__main__":
    sys.exit(main())
