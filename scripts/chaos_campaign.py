"""Kill pre-training and fine-tuning with SIGKILL at random moments; prove they recover.

    python scripts/fault_campaign.py --work-dir /tmp/faults --kills 5

For each job (tiny-model pre-training, then fine-tuning from it): start it, SIGKILL it
at a random moment of training, check every checkpoint on disk is readable, repeat `--kills` times,
then let it finish and check it reached its final step, resumed from a checkpoint each
time, and left complete JSON results. Prints a report and exits non-zero on any failure.
Uses only the bundled sample corpus (no ../shared needed).
"""

import argparse
import glob
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

PRETRAIN = {"model_size": "tiny", "max_seq_length": 64, "train_batch_size": 8,
            "learning_rate": 1e-3, "num_warmup_steps": 5, "num_train_steps": 120,
            "save_checkpoints_steps": 10, "log_every_steps": 10, "keep_checkpoint_max": 3,
            "do_eval": True, "num_eval_steps": 2, "eval_batch_size": 8, "seed": 1,
            "save_graph_def": False}
FINETUNE = {"model_size": "tiny", "task_names": ["chnsenticorp"], "max_seq_length": 64,
            "train_batch_size": 8, "num_train_epochs": 6.0, "learning_rate": 1e-3,
            "save_checkpoints_steps": 10, "keep_checkpoint_max": 3, "log_every_steps": 10,
            "save_graph_def": False}


def prepare(work):
    """Tfrecords from the sample corpus and a small sentiment task made from it."""
    import build_pretraining_dataset
    shutil.copy(os.path.join(REPO, "sample_data", "vocab.txt"), os.path.join(work, "vocab.txt"))
    out = os.path.join(work, "pretrain_tfrecords")
    if not os.path.exists(os.path.join(out, "dataset_info.json")):
        assert build_pretraining_dataset.main([
            "--corpus-dir", os.path.join(REPO, "sample_data", "corpus"),
            "--vocab-file", os.path.join(work, "vocab.txt"), "--output-dir", out,
            "--max-seq-length", "64", "--num-out-files", "1", "--overwrite"]) == 0
    task_dir = os.path.join(work, "finetuning_data", "chnsenticorp")
    os.makedirs(task_dir, exist_ok=True)
    lines = []
    for path in sorted(glob.glob(os.path.join(REPO, "sample_data", "corpus", "*.txt"))):
        with open(path, encoding="utf-8") as f:
            lines += [line.strip() for line in f if line.strip()]
    # Labels only need to exist: the campaign tests recovery, not accuracy.
    rows = ["%d\t%s" % (int("，" in line), line) for line in lines[:400]]
    for split, part in (("train", rows[:300]), ("dev", rows[300:])):
        with open(os.path.join(task_dir, split + ".tsv"), "w", encoding="utf-8") as f:
            f.write("label\ttext_a\n" + "\n".join(part) + "\n")


def command(script, work, model_name, hparams):
    return [sys.executable, "-u", os.path.join(REPO, script), "--data-dir", work,
            "--model-name", model_name, "--hparams", json.dumps(hparams)]


def checkpoints_readable(model_dir):
    """(number of checkpoints, list of problems) for every checkpoint state lists."""
    import tensorflow.compat.v1 as tf
    state = tf.train.get_checkpoint_state(model_dir)
    if state is None:
        return 0, []
    problems = []
    for path in state.all_model_checkpoint_paths:
        try:
            reader = tf.train.load_checkpoint(path)
            for name in reader.get_variable_to_shape_map():
                reader.get_tensor(name)
        except Exception as e:  # any failure to read is corruption for our purposes
            problems.append("%s: %s" % (path, e))
    return len(state.all_model_checkpoint_paths), problems


def global_step(model_dir):
    import tensorflow.compat.v1 as tf
    from util import checkpoints
    latest = tf.train.latest_checkpoint(model_dir)
    return checkpoints.global_step(latest) if latest else 0


def json_files_complete(directory):
    problems = []
    for path in glob.glob(os.path.join(directory, "**", "*.json"), recursive=True):
        try:
            with open(path, encoding="utf-8") as f:
                json.load(f)
        except ValueError as e:
            problems.append("%s: %s" % (path, e))
    return problems


def run_until_killed(cmd, rng):
    """Starts cmd and SIGKILLs it at a random moment of training: after 2-4 progress
    lines beyond the run's first-step line (so at least one checkpoint of this run is on
    disk), plus up to 1.5 s (so also while the next one is being written). Returns
    (output, whether it was killed)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            cwd=REPO)
    output, wanted = [], 1 + rng.randint(2, 4)
    for line in proc.stdout:
        output.append(line)
        wanted -= line.startswith("step ")
        if wanted == 0:
            time.sleep(rng.uniform(0.0, 1.5))
            break
    killed = proc.poll() is None
    if killed:
        proc.send_signal(signal.SIGKILL)
    output.append(proc.communicate()[0])
    return "".join(output), killed


def first_step(output):
    """The step of a run's first progress line ("step N/T | ..."), or None."""
    match = re.search(r"^step (\d+)/\d+ ", output, re.M)
    return int(match.group(1)) if match else None


def kill_and_resume(cmd, model_dir, kills, rng, log):
    """Runs cmd, SIGKILLing it `kills` times; returns a report dict."""
    report = {"kills": 0, "resumes": 0, "corrupt": [], "steps_at_kills": [],
              "first_steps": []}  # (checkpoint step resumed from, first progress line's)
    for _ in range(kills):
        resumed_from = global_step(model_dir) if os.path.isdir(model_dir) else 0
        output, killed = run_until_killed(cmd, rng)
        if not killed:  # finished before its kill: nothing left to interrupt
            log("job ended before its kill")
            break
        report["kills"] += 1
        if resumed_from and "resuming from" in output:
            report["resumes"] += 1
            report["first_steps"].append((resumed_from, first_step(output)))
        elif resumed_from:
            report["corrupt"].append("restart after step %d did not say it resumed"
                                     % resumed_from)
        count, problems = checkpoints_readable(model_dir)
        report["corrupt"] += problems
        step = global_step(model_dir) if count else 0
        report["steps_at_kills"].append(step)
        log("kill %d: %d checkpoints readable, newest at step %d" % (
            report["kills"], count - len(problems), step))
    resumed_from = global_step(model_dir) if os.path.isdir(model_dir) else 0
    final = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           cwd=REPO)
    report["final_exit"] = final.returncode
    report["final_output_tail"] = final.stdout[-2000:]
    if "resuming from" in final.stdout:
        report["resumes"] += 1
        report["first_steps"].append((resumed_from, first_step(final.stdout)))
    report["corrupt"] += checkpoints_readable(model_dir)[1]
    report["final_step"] = global_step(model_dir)
    return report


def pretraining_campaign(work, kills, rng, log=print):
    hparams = dict(PRETRAIN)
    report = kill_and_resume(command("run_pretraining.py", work, "faulty", hparams),
                             os.path.join(work, "models", "faulty"), kills, rng, log)
    report["target_step"] = hparams["num_train_steps"]
    report["corrupt"] += json_files_complete(os.path.join(work, "models", "faulty"))
    return report


def finetuning_campaign(work, kills, rng, log=print):
    hparams = dict(FINETUNE)
    model_dir = os.path.join(work, "models", "faulty", "finetuning_models",
                             "chnsenticorp_model_1")
    report = kill_and_resume(command("run_finetuning.py", work, "faulty", hparams),
                             model_dir, kills, rng, log)
    # 300 reviews padded to whole batches, num_train_epochs times (the official count)
    batch = hparams["train_batch_size"]
    report["target_step"] = int(-(-300 // batch) * hparams["num_train_epochs"])
    results = os.path.join(work, "models", "faulty", "results")
    report["corrupt"] += json_files_complete(results)
    if not os.path.exists(os.path.join(results, "chnsenticorp_results.json")):
        report["corrupt"].append("no chnsenticorp_results.json after the final run")
    return report


def passed(report):
    return (report["final_exit"] == 0 and not report["corrupt"]
            and report["final_step"] == report["target_step"])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work-dir", required=True, help="scratch directory (reused)")
    parser.add_argument("--kills", type=int, default=5, help="SIGKILLs per job")
    parser.add_argument("--seed", type=int, default=0, help="seed of the kill delays")
    args = parser.parse_args(argv)
    os.makedirs(args.work_dir, exist_ok=True)
    shutil.rmtree(os.path.join(args.work_dir, "models"), ignore_errors=True)
    rng = random.Random(args.seed)
    prepare(args.work_dir)
    ok = True
    for name, campaign in (("pre-training", pretraining_campaign),
                           ("fine-tuning", finetuning_campaign)):
        print("== %s: %d kills" % (name, args.kills), flush=True)
        report = campaign(args.work_dir, args.kills, rng)
        ok &= passed(report)
        print("%s: kills survived %d, resumes verified %d, corrupt files %d, final step "
              "%d/%d, final exit %d -> %s" % (
                  name, report["kills"], report["resumes"], len(report["corrupt"]),
                  report["final_step"], report["target_step"], report["final_exit"],
                  "PASS" if passed(report) else "FAIL"), flush=True)
        for problem in report["corrupt"]:
            print("  corrupt: %s" % problem)
        if report["final_exit"] != 0:
            print(report["final_output_tail"])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
