"""Runs that survive a stop and a rerun spelt otherwise: SIGTERM saves the current step and
the rerun resumes there, a stop outside training releases the lock, a finished trial is
reused after its data dir moved (and after its state file was lost), a trial whose
settings changed is kept aside, overlapping task sets exclude each other."""

import io
import json
import os
import re
import shutil
import signal
import time
from contextlib import redirect_stdout

import pytest

import run_finetuning
from scripts import chaos_campaign
from tests.conftest import REPO, SAMPLE_VOCAB
from util import checkpoints
from util import interrupt
from util import lock
from util.errors import run_cli

PRETRAIN = dict(chaos_campaign.PRETRAIN, num_train_steps=60, save_checkpoints_steps=1000,
                log_every_steps=5, do_eval=False)


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    directory = tmp_path_factory.mktemp("preempt")
    chaos_campaign.prepare(str(directory))
    return directory


def test_sigterm_during_pretraining_saves_its_step_and_the_rerun_resumes_there(work):
    """Without a periodic checkpoint in reach (every 1,000 steps), a SIGTERM at step k
    saves model.ckpt-k, releases the lock and exits 143; the rerun -- even with the state
    file gone, as after a copy -- resumes at step k + 1."""
    model_dir = work / "models" / "term"
    cmd = chaos_campaign.command("run_pretraining.py", str(work), "term", PRETRAIN)
    start = chaos_campaign.Start(cmd, str(REPO))
    assert start.wait_for_steps(3), start.output  # the first line, steps 5 and 10
    start.signal(signal.SIGTERM)
    start.finish()
    assert start.proc.returncode == 143, start.output
    match = re.search(r"^stopped by SIGTERM: saved (\S+) at step (\d+); run the same command "
                      r"again to resume from step \2$", start.output, re.M)
    assert match, start.output
    step = int(match.group(2))
    assert match.group(1) == str(model_dir / ("model.ckpt-%d" % step))
    assert step >= chaos_campaign.last_step(start) >= 10
    assert checkpoints.global_step(match.group(1)) == step
    assert not (model_dir / ".lock").exists()
    os.remove(model_dir / "checkpoint")  # a dir copied without its state file
    again = chaos_campaign.Start(cmd, str(REPO)).finish()
    assert again.proc.returncode == 0, again.output
    assert "resuming from model.ckpt-%d (state file rewritten)" % step in again.output
    assert again.first_step() == step + 1
    assert checkpoints.global_step(checkpoints.latest_checkpoint(str(model_dir))) == 60


def test_a_stop_outside_training_releases_the_lock_and_says_how_to_resume(tmp_path, capsys):
    """Featurising, evaluating, exporting: a SIGTERM there unwinds at once through the
    locks (no checkpoint to save) and exits 143 with one line."""
    held = []

    def job():
        with lock.hold(str(tmp_path / "m"), "model dir"):
            held.append(os.path.exists(tmp_path / "m" / ".lock"))
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # (the handler raises before this ends)
            held.append("not stopped")

    started = time.time()
    assert run_cli(job) == 143
    assert held == [True] and time.time() - started < 4
    assert not (tmp_path / "m" / ".lock").exists()
    assert capsys.readouterr().err == (
        "stopped by SIGTERM: run the same command again to go on (what was finished is kept; "
        "training resumes from its last checkpoint)\n")
    assert signal.getsignal(signal.SIGTERM) is not interrupt._on_signal  # restored


def finetune(data_dir, **hparams):
    out = io.StringIO()
    with redirect_stdout(out):
        status = run_finetuning.main([
            "--data-dir", str(data_dir), "--model-name", "tiny", "--hparams",
            json.dumps(dict(chaos_campaign.FINETUNE, num_train_epochs=2.0, **hparams))])
    return status, out.getvalue()


@pytest.fixture
def finetuning_dir(work, tmp_path, pretrained_model_dir):
    data = tmp_path / "d"
    shutil.copytree(work / "finetuning_data", data / "finetuning_data")
    shutil.copy(SAMPLE_VOCAB, data / "vocab.txt")
    shutil.copytree(pretrained_model_dir, data / "models" / "tiny")
    return data


def test_a_finished_trial_is_reused_after_a_move_and_kept_when_settings_change(
        finetuning_dir, tmp_path, monkeypatch):
    task = chaos_campaign.TASK
    status, output = finetune(finetuning_dir)
    assert status == 0 and "step 1/" in output, output
    # The data dir moved and named relative to another working dir: the same trial.
    moved = tmp_path / "moved"
    os.rename(finetuning_dir, moved)
    monkeypatch.chdir(tmp_path)
    trial = moved / "models" / "tiny" / "finetuning_models" / ("%s_model_1" % task)
    status, output = finetune("./moved")
    assert status == 0 and "resuming from" in output and "step " not in output, output
    # ... and with its state file lost (synced from a bucket without it).
    os.remove(trial / "checkpoint")
    status, output = finetune("./moved")
    assert status == 0 and "resuming from" in output and "step " not in output, output
    # A setting that changes the weights: trained again, the earlier model kept aside.
    finished_step = checkpoints.global_step(checkpoints.latest_checkpoint(str(trial)))
    status, output = finetune("./moved", learning_rate=5e-4)
    assert status == 0 and "step 1/" in output, output
    kept = re.search(r"settings changed since \S+ was trained \(learning_rate\): training it "
                     r"again; the earlier model is kept in (\S+) ", output)
    assert kept, output
    kept_dir = kept.group(1)
    assert os.path.abspath(kept_dir).startswith(str(trial.parent / "superseded-"))
    assert os.path.basename(kept_dir) == trial.name
    assert checkpoints.global_step(checkpoints.latest_checkpoint(kept_dir)) == finished_step
    # A trial stopped before its first checkpoint, rerun with the same settings.
    for name in os.listdir(trial):
        if name.startswith(("model.ckpt", "checkpoint")):
            os.remove(trial / name)
    status, output = finetune("./moved", learning_rate=5e-4)
    assert status == 0 and "stopped before its first checkpoint: training from the start" \
        in output and "settings changed" not in output, output


def test_overlapping_task_sets_exclude_each_other(finetuning_dir, capsys):
    """A run on one task holds that task's lock; a run on a set holding it is refused
    before it writes anything (the results file of the task is common to both)."""
    model_dir = finetuning_dir / "models" / "tiny"
    with lock.hold(str(model_dir), "chnsenticorp fine-tuning in the model dir",
                   name=run_finetuning.lock_name("chnsenticorp")):
        (finetuning_dir / "finetuning_data" / "chnsenticorp").mkdir()
        status, output = finetune(finetuning_dir,
                                  task_names=["chnsenticorp", chaos_campaign.TASK])
    assert status == 2
    err = capsys.readouterr().err
    assert "the chnsenticorp fine-tuning in the model dir %s is in use by another run" \
        % model_dir in err, err
    assert not (model_dir / "finetuning_models").exists()
    assert not (model_dir / run_finetuning.lock_name(chaos_campaign.TASK)).exists()


def test_the_time_cadence_needs_a_number_of_seconds(finetuning_dir, capsys):
    status, _ = finetune(finetuning_dir, save_checkpoints_secs=-1)
    assert status == 2
    assert "save_checkpoints_secs must be a number of seconds >= 0" in capsys.readouterr().err


def test_a_full_disk_names_the_file_not_the_op_and_its_own_file_system(tmp_path):
    """TensorFlow's text names the node (save/SaveV2) before the file: the message names
    the file, and the free space of the file system holding it."""
    import shutil as shell
    from util.errors import disk_full_message
    target = tmp_path / "m" / "model.ckpt-5_temp" / "part-00000-of-00001.data-00000-of-00001"
    (tmp_path / "m").mkdir()
    error = tf_resource_exhausted("{{node save/SaveV2}} %s; No space left on device "
                                  "[[{{node save/SaveV2}}]]" % target)
    message = disk_full_message(error)
    assert message.startswith("the disk is full: writing %s failed (" % target), message
    free = shell.disk_usage(str(tmp_path / "m")).free / 2 ** 20
    assert re.search(r"\((\d+) MB free on the disk of %s\)" % re.escape(str(tmp_path / "m")),
                     message)
    assert abs(int(re.search(r"\((\d+) MB", message).group(1)) - free) < 512
    assert "/SaveV2" not in message


def tf_resource_exhausted(text):
    import tensorflow as tf2
    return tf2.errors.ResourceExhaustedError(None, None, text)


def test_metrics_written_twice_in_one_second_keep_both(tmp_path):
    """Each task's dev metrics go to <trial>/eval_dev by a writer of their own, within the
    same second: neither event file may truncate the other."""
    from util import summaries
    for task in ("a", "b", "c"):
        summaries.write_scalars(str(tmp_path), {"%s/accuracy" % task: 1.0}, 7)
    import tensorflow as tf2
    tags = set()
    for path in tmp_path.iterdir():
        for event in tf2.compat.v1.train.summary_iterator(str(path)):
            tags.update(v.tag for v in event.summary.value)
    assert tags == {"a/accuracy", "b/accuracy", "c/accuracy"}


@pytest.mark.parametrize("module", ["finetune.export", "finetune.predict"])
def test_the_former_commands_say_which_command_to_use(module):
    import subprocess
    import sys
    result = subprocess.run([sys.executable, "-m", module, "x", "--out", "y"], cwd=str(REPO),
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert "is a library module, not a command: use `python " in result.stderr


@pytest.mark.parametrize("scheme", ["local", "ram"])
def test_a_changed_trial_is_moved_aside_whole_on_a_disk_and_in_a_bucket(tmp_path, scheme):
    """On ram:// (a bucket's stand-in) a directory cannot be renamed as one: the trial is
    copied aside, then removed, and the new trial starts empty (no old checkpoint left in
    it to resume)."""
    import types
    import uuid
    from util import fs
    root = str(tmp_path) if scheme == "local" else "ram://moved-%s" % uuid.uuid4().hex
    trial = fs.join(root, "task_model_1")
    fs.makedirs(trial)
    fs.write_text(fs.join(trial, "trial_hparams.json"),
                  json.dumps({"learning_rate": 1, "record_version": 2}))
    for name in ("model.ckpt-7.index", "model.ckpt-7.data-00000-of-00001"):
        fs.write_bytes(fs.join(trial, name), b"weights")
    config = types.SimpleNamespace(results_dir=fs.join(root, "results"))
    out = io.StringIO()
    with redirect_stdout(out):
        run_finetuning.prepare_trial_dir(config, trial, {"learning_rate": 2}, dict)
    kept = re.search(r"the earlier model is kept in (\S+) ", out.getvalue()).group(1)
    assert sorted(fs.basename(p) for p in fs.walk_files(kept)) == [
        "model.ckpt-7.data-00000-of-00001", "model.ckpt-7.index", "trial_hparams.json"]
    assert fs.read_bytes(fs.join(kept, "model.ckpt-7.index")) == b"weights"
    assert [fs.basename(p) for p in fs.walk_files(trial)] == ["trial_hparams.json"]
