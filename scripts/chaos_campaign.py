"""Stop pre-training and fine-tuning every way a preemptible machine or a shared model dir
does, and check that nothing is lost and nothing is written twice.

    python scripts/chaos_campaign.py --work-dir /tmp/chaos --events 12 [--seed 0]

Two jobs on tiny models and the bundled sample corpus (no ../shared needed): pre-training,
and fine-tuning a character-tagging task made from the corpus (no dropout anywhere, so a
resumed run must give the uninterrupted run's weights bit for bit; two micro-batches per
update, so a stop may fall inside an update). Each job first runs
once uninterrupted (the reference), then again in another model dir through `--events`
random events, each a start of the job with one of:

  sigterm   SIGTERM after a random number of progress lines (plus up to 1.5 s): exit 143,
            the message names the checkpoint it saved; the next start resumes right after it
  sigkill   SIGKILL likewise: the next start resumes right after the newest checkpoint
  early     SIGTERM during start-up (graph building, featurisation, restoring): exit 143
  twins     two starts at once on one model dir: one trains, the other is refused
  overlap   (fine-tuning) the job and a run on an overlapping task set ([the task, another])
            started at once: they write the same task's results, so one is refused
  stale     a lock left by a dead process of this host: broken, the run goes on
  reused    a lock naming a live process that is not its holder (a reused pid): broken

Every start spells the data dir one of three ways (absolute, relative from its parent, through
a symlink), as a rerun after a move or from another shell does. A last start runs to the end,
and fine-tuning is started once more, which must reuse the finished trial.

Checked: each start after a stop resumes where it must (the step after the newest
checkpoint; after a SIGTERM, the step after the one it saved), no checkpoint or JSON file
is unreadable, the final step is the reference's, at most one process trains at a time,
and the fine-tuned model's weights and predictions equal the reference's. Prints a report
ending in one summary line and exits non-zero on any failure.
"""

import argparse
import glob
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

PRETRAIN = {"model_size": "tiny", "max_seq_length": 64, "train_batch_size": 8,
            "learning_rate": 1e-3, "num_warmup_steps": 5, "num_train_steps": 400,
            "save_checkpoints_steps": 50, "log_every_steps": 10, "keep_checkpoint_max": 3,
            "do_eval": True, "num_eval_steps": 2, "eval_batch_size": 8, "seed": 1,
            "save_graph_def": False}
NO_DROPOUT = {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}
TASK = "peoples-daily-ner"
FINETUNE = {"model_size": "tiny", "task_names": [TASK], "max_seq_length": 64,
            "train_batch_size": 8, "num_train_epochs": 12.0, "learning_rate": 1e-3,
            "save_checkpoints_steps": 1000000, "save_checkpoints_secs": 2,
            "keep_checkpoint_max": 3, "log_every_steps": 10, "save_graph_def": False,
            "gradient_accumulation_steps": 2, "model_hparam_overrides": NO_DROPOUT}
EVENTS = ("sigterm", "sigkill", "early", "twins", "overlap", "stale", "reused")
OTHER_TASK = "msra-ner"  # "overlap": a run on TASK and this one, beside the job on TASK
TAGGED = "的了是在"  # the characters the tagging task labels B-LOC (the rest O)


def prepare(work):
    """Tfrecords from the sample corpus, its vocab, and the tagging task made from it."""
    import build_pretraining_dataset
    shutil.copy(os.path.join(REPO, "sample_data", "vocab.txt"), os.path.join(work, "vocab.txt"))
    out = os.path.join(work, "pretrain_tfrecords")
    if not os.path.exists(os.path.join(out, "dataset_info.json")):
        assert build_pretraining_dataset.main([
            "--corpus-dir", os.path.join(REPO, "sample_data", "corpus"),
            "--vocab-file", os.path.join(work, "vocab.txt"), "--output-dir", out,
            "--max-seq-length", "64", "--num-out-files", "1", "--overwrite"]) == 0
    lines = []
    for path in sorted(glob.glob(os.path.join(REPO, "sample_data", "corpus", "*.txt"))):
        with open(path, encoding="utf-8") as f:
            lines += [line.strip().replace(" ", "")[:40] for line in f if line.strip()]
    for task, name, tag in ((TASK, "example.{split}", "B-LOC"),
                            (OTHER_TASK, "{split}.ner", "B-NS")):
        task_dir = os.path.join(work, "finetuning_data", task)
        os.makedirs(task_dir, exist_ok=True)
        for split, part in (("train", lines[:240]), ("dev", lines[240:300])):
            with open(os.path.join(task_dir, name.format(split=split)), "w",
                      encoding="utf-8") as f:
                f.write("\n".join("".join("%s %s\n" % (c, tag if c in TAGGED else "O")
                                          for c in line) for line in part))
    link = work.rstrip("/") + "_link"
    if not os.path.islink(link):
        os.symlink(work, link)


def spellings(work):
    """(cwd, --data-dir) pairs naming work three ways."""
    work = os.path.abspath(work)
    return [(REPO, work), (os.path.dirname(work), "./" + os.path.basename(work)),
            (REPO, work.rstrip("/") + "_link")]


def command(script, data_dir, model_name, hparams):
    return [sys.executable, "-u", os.path.join(REPO, script), "--data-dir", data_dir,
            "--model-name", model_name, "--hparams", json.dumps(hparams)]


class Start:
    """One process of a job: its output lines with the time each came, and how it ended."""

    def __init__(self, cmd, cwd):
        self.started = time.time()
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, cwd=cwd)
        self.lines = []  # (time, line)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append((time.time(), line))

    def wait_for_steps(self, count, timeout=300):
        """Waits until count progress lines came (or the process ended); True if they did."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            if len(self.step_lines()) >= count:
                return True
            if self.proc.poll() is not None:
                self._reader.join(5)
                return len(self.step_lines()) >= count
            time.sleep(0.02)
        return False

    def signal(self, signum):
        if self.proc.poll() is None:
            self.proc.send_signal(signum)
            self.signalled = time.time()

    def finish(self, timeout=600):
        self.proc.wait(timeout)
        self._reader.join(10)
        self.ended = time.time()
        return self

    @property
    def output(self):
        return "".join(line for _, line in self.lines)

    def step_lines(self):
        return [(t, line) for t, line in self.lines if re.match(r"step \d+/\d+ ", line)]

    def first_step(self):
        lines = self.step_lines()
        return int(re.match(r"step (\d+)/", lines[0][1]).group(1)) if lines else None

    def training_span(self):
        """(first, last) time of a progress line, or None if it trained no step."""
        lines = self.step_lines()
        return (lines[0][0], lines[-1][0]) if lines else None


def newest_step(model_dir):
    from util import checkpoints
    latest = checkpoints.latest_checkpoint(model_dir)
    return checkpoints.global_step(latest) if latest else None


def unreadable_files(model_dir):
    """Problems with the checkpoints and JSON files under model_dir."""
    import tensorflow.compat.v1 as tf
    from util import checkpoints
    problems = []
    for prefix in checkpoints.own_checkpoints(model_dir):
        try:
            reader = tf.train.load_checkpoint(prefix)
            for name in reader.get_variable_to_shape_map():
                reader.get_tensor(name)
        except Exception as e:  # any failure to read is damage here
            problems.append("%s: %s" % (prefix, str(e).splitlines()[0]))
    for path in glob.glob(os.path.join(model_dir, "**", "*.json"), recursive=True):
        try:
            with open(path, encoding="utf-8") as f:
                json.load(f)
        except ValueError as e:
            problems.append("%s: %s" % (path, e))
    return problems


def write_lock(path, stale, command_line):
    """A lock as a run of this host left it when it died (stale "dead"), or one naming a
    live process that is not the run that wrote it (stale "reused": the pid's start time
    differs, as when a restarted container's entrypoint got the pid again)."""
    from util import lock
    record = lock.holder_record()
    if stale == "dead":
        record["pid"] = dead_pid()
    else:
        record["start_ticks"] = (record["start_ticks"] or 0) - 1
    record["command"] = command_line
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(record, f)


class Job:
    """A job's commands, where it writes, and the report of its chaos run."""

    def __init__(self, work, kind, model_name, log):
        self.work, self.kind, self.model_name, self.log = work, kind, model_name, log
        self.report = {"events": [], "resumed": 0, "lost": [], "double_writers": 0,
                       "damaged": [], "spans": [], "sigkill_loss_seconds": []}

    def start(self, spelling, tasks=(TASK,)):
        cwd, data_dir = spelling
        if self.kind == "pretraining":
            cmd = command("run_pretraining.py", data_dir, self.model_name, PRETRAIN)
        else:
            cmd = command("run_finetuning.py", data_dir, self.model_name,
                          dict(FINETUNE, task_names=list(tasks)))
        return Start(cmd, cwd)

    @property
    def model_dir(self):  # where its checkpoints are
        base = os.path.join(self.work, "models", self.model_name)
        if self.kind == "pretraining":
            return base
        return os.path.join(base, "finetuning_models", TASK + "_model_1")

    @property
    def lock_path(self):
        base = os.path.join(self.work, "models", self.model_name)
        if self.kind == "pretraining":
            return os.path.join(base, ".lock")
        import run_finetuning
        return os.path.join(base, run_finetuning.lock_name(TASK))

    def check_resume(self, start, before):
        """A start that followed a stop with a checkpoint at step `before` (after a
        SIGTERM: the one it saved) must resume at the step after it."""
        first = start.first_step()
        if before is None or first is None:
            return
        if "initialised" in start.output:  # (fine-tuning: its own checkpoint, not the init)
            self.report["lost"].append("a resumed trial also named the checkpoint it would "
                                       "start a new trial from")
        if "resuming from" in start.output and first == before + 1:
            self.report["resumed"] += 1
        else:
            self.report["lost"].append("a start after step %d began at step %s"
                                       % (before, first))

    def record(self, start):
        span = start.training_span()
        if span:
            for other in self.report["spans"]:
                if span[0] < other[1] and other[0] < span[1]:
                    self.report["double_writers"] += 1
            self.report["spans"].append(span)

    def event(self, name, rng):
        """Runs one event; returns False once the job has finished (nothing to stop)."""
        spelling = rng.choice(spellings(self.work))
        before = newest_step(self.model_dir)
        if name in ("stale", "reused"):
            write_lock(self.lock_path, "dead" if name == "stale" else "reused",
                       "an earlier %s run" % self.kind)
        if name == "twins":
            starts = [self.start(spelling), self.start(rng.choice(spellings(self.work)))]
        elif name == "overlap":
            starts = [self.start(spelling), self.start(rng.choice(spellings(self.work)),
                                                       tasks=(TASK, OTHER_TASK))]
        else:
            starts = [self.start(spelling)]
        if name == "early":
            time.sleep(rng.uniform(2.0, 6.0))  # importing, building, featurising, restoring
            starts[0].signal(signal.SIGTERM)
        else:
            trained = [s for s in starts if s.wait_for_steps(1 + rng.randint(1, 3))]
            time.sleep(rng.uniform(0.0, 1.5))
            for start in trained or starts:
                start.signal(signal.SIGKILL if name == "sigkill" else signal.SIGTERM)
        for start in starts:
            start.finish()
            self.record(start)
        # the job's own start (the overlapping run trains another model)
        main = starts[0] if name == "overlap" else max(starts,
                                                       key=lambda s: len(s.step_lines()))
        codes = sorted(s.proc.returncode for s in starts)
        self.report["events"].append(name)
        self.log("%s %s: exit %s, trained steps %s..%s, newest checkpoint %s" % (
            self.kind, name, "/".join(map(str, codes)), main.first_step(),
            last_step(main), newest_step(self.model_dir)))
        if name in ("twins", "overlap") and not any(
                "is in use by another run" in s.output for s in starts) and \
                sum(1 for s in starts if s.training_span()) == 2:
            self.report["double_writers"] += 1
        if name in ("stale", "reused") and "breaking a stale lock" not in main.output:
            self.report["lost"].append("%s lock not broken: %s" % (name, main.output[-300:]))
        for start in starts:  # a SIGTERM ends a run with its line and status 143
            if name != "sigkill" and getattr(start, "signalled", None) and \
                    start.proc.returncode not in (0, 143):
                self.report["lost"].append("a SIGTERM ended a run with status %s: %s" % (
                    start.proc.returncode, start.output[-300:]))
            elif start.proc.returncode == 143 and "stopped by SIGTERM" not in start.output:
                self.report["lost"].append("status 143 without the stop's line")
        saved = re.search(r"stopped by SIGTERM: saved \S+ at step (\d+)", main.output)
        after = newest_step(self.model_dir)
        self.check_resume(main, before)
        if name == "sigkill" and getattr(main, "signalled", None) and self.kind != "pretraining":
            self.report["sigkill_loss_seconds"].append(
                main.signalled - newest_checkpoint_time(self.model_dir))
        if saved and after != int(saved.group(1)):
            self.report["lost"].append("SIGTERM saved step %s, newest is %s"
                                       % (saved.group(1), after))
        self.report["damaged"] += unreadable_files(self.model_dir)
        if main.proc.returncode == 0:
            return False
        return True

    def finish(self, rng):
        """The last start, to the end; for fine-tuning, one more that must reuse it."""
        before = newest_step(self.model_dir)
        start = self.start(rng.choice(spellings(self.work))).finish()
        self.record(start)
        self.check_resume(start, before)
        self.report["final_exit"] = start.proc.returncode
        self.report["final_output_tail"] = start.output[-2000:]
        self.report["final_step"] = newest_step(self.model_dir)
        if self.kind == "finetuning":
            again = self.start(rng.choice(spellings(self.work))).finish()
            if again.step_lines() or "resuming from" not in again.output:
                self.report["lost"].append("the finished trial was trained again: "
                                           + again.output[-500:])
        self.report["damaged"] += unreadable_files(self.model_dir)


def last_step(start):
    lines = start.step_lines()
    return int(re.match(r"step (\d+)/", lines[-1][1]).group(1)) if lines else None


def newest_checkpoint_time(model_dir):
    from util import checkpoints
    latest = checkpoints.latest_checkpoint(model_dir)
    return os.path.getmtime(latest + ".index") if latest else 0.0


def dead_pid():
    """The pid of a process of this host that has exited."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def same_weights(dir_a, dir_b):
    """'' if the newest checkpoints of both dirs hold identical variables, else what
    differs."""
    import numpy as np
    import tensorflow.compat.v1 as tf
    from util import checkpoints
    a = tf.train.load_checkpoint(checkpoints.latest_checkpoint(dir_a))
    b = tf.train.load_checkpoint(checkpoints.latest_checkpoint(dir_b))
    names = sorted(a.get_variable_to_shape_map())
    if names != sorted(b.get_variable_to_shape_map()):
        return "other variables"
    worst = max(float(np.max(np.abs(a.get_tensor(n).astype("float64")
                                    - b.get_tensor(n).astype("float64")))) for n in names)
    return "" if worst == 0.0 else "weights differ by up to %g" % worst


def campaign(work, kind, events, rng, log=print):
    """A job's reference run, then its chaos run through `events` random events (or
    these events in order, when a list of their names)."""
    reference = Job(work, kind, "reference", log)
    chaos = Job(work, kind, "chaos", log)
    ref = reference.start(spellings(work)[0]).finish()
    if ref.proc.returncode != 0:
        raise RuntimeError("the reference %s run failed:\n%s" % (kind, ref.output[-3000:]))
    kinds = [e for e in EVENTS if kind == "finetuning" or e != "overlap"]
    names = events if isinstance(events, list) else [rng.choice(kinds)
                                                     for _ in range(events)]
    for name in names:
        if not chaos.event(name, rng):
            log("%s finished before its events ran out" % kind)
            break
    chaos.finish(rng)
    report = chaos.report
    report["target_step"] = newest_step(reference.model_dir)
    if kind == "finetuning":
        differs = same_weights(reference.model_dir, chaos.model_dir)
        preds = [os.path.join(work, "models", name, "results", TASK + "_dev_preds.json")
                 for name in ("reference", "chaos")]
        if differs:
            report["lost"].append("final weights: " + differs)
        if not all(map(os.path.exists, preds)) or open(preds[0]).read() != open(preds[1]).read():
            report["lost"].append("final predictions differ from the reference's")
        report["identical"] = not differs and "final predictions" not in " ".join(report["lost"])
    return report


def passed(report):
    return (report["final_exit"] == 0 and not report["lost"] and not report["damaged"]
            and report["double_writers"] == 0 and report["final_step"] == report["target_step"])


def summary(reports):
    """The campaign's one summary line."""
    events = [e for r in reports for e in r["events"]]
    counts = ", ".join("%d %s" % (events.count(e), e) for e in EVENTS if e in events)
    line = ("%d events (%s): %d resumed, %d lost, %d double writers, %d damaged files, "
            "final steps %s" % (
                len(events), counts, sum(r["resumed"] for r in reports),
                sum(len(r["lost"]) for r in reports),
                sum(r["double_writers"] for r in reports),
                sum(len(r["damaged"]) for r in reports),
                "as the uninterrupted run's" if all(
                    r["final_step"] == r["target_step"] for r in reports) else "DIFFERENT"))
    compared = [r["identical"] for r in reports if "identical" in r]
    if compared:
        line += ", final predictions %s the uninterrupted run" % (
            "identical to" if all(compared) else "DIFFERENT from")
    return line


def setup_pretrained(work):
    """The fine-tuning job's start: copies of the reference pre-trained model."""
    source = os.path.join(work, "models", "reference")
    for name in ("reference", "chaos"):
        target = os.path.join(work, "models", name)
        for sub in ("finetuning_models", "results", "finetuning_tfrecords"):
            shutil.rmtree(os.path.join(target, sub), ignore_errors=True)
    for name in ("chaos",):
        target = os.path.join(work, "models", name)
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(source, target, ignore=shutil.ignore_patterns(".*lock*"))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work-dir", required=True, help="scratch directory (reused)")
    parser.add_argument("--events", type=int, default=12, help="random events per job")
    parser.add_argument("--seed", type=int, default=0, help="seed of the events and delays")
    args = parser.parse_args(argv)
    work = os.path.abspath(args.work_dir)
    os.makedirs(work, exist_ok=True)
    shutil.rmtree(os.path.join(work, "models"), ignore_errors=True)
    rng = random.Random(args.seed)
    prepare(work)
    reports = []
    for kind in ("pretraining", "finetuning"):
        print("== %s: %d events" % (kind, args.events), flush=True)
        if kind == "finetuning":
            setup_pretrained(work)
        report = campaign(work, kind, args.events, rng)
        reports.append(report)
        print("%s: %s -> %s" % (kind, summary([report]),
                                "PASS" if passed(report) else "FAIL"), flush=True)
        for problem in report["lost"] + report["damaged"]:
            print("  problem: %s" % problem)
        if report["final_exit"] != 0:
            print(report["final_output_tail"])
        if report["sigkill_loss_seconds"]:
            print("  fine-tuning time lost to SIGKILL (save_checkpoints_secs %d): at most "
                  "%.1f s" % (FINETUNE["save_checkpoints_secs"],
                              max(report["sigkill_loss_seconds"])))
    print(summary(reports), flush=True)
    return 0 if all(map(passed, reports)) else 1


if __name__ == "__main__":
    sys.exit(main())
