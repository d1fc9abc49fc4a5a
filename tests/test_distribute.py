"""Data-parallel pre-training and fine-tuning (distribution hparam) against one device,
on CPU only.

Parity setup: the same global batch of 8 and seed; dropout 0 and per_example_randomness,
so the masking and generator samples of an example do not depend on which replica or batch
slot it lands in (the graph's random ops would draw other numbers on each replica). The
losses can then only differ by float summation order (all-reduce vs one device), which
Adam amplifies a little where a gradient is near zero: we allow a relative 1e-3 (measured
differences: below 1e-5 over 8 steps).

Fine-tuning parity: chnsenticorp (48 training and 32 dev examples), global batch 8 for one
epoch (6 steps), seed 5, with every dropout off (the encoder's by model_hparam_overrides,
the task head's fixed 0.1 by the driver) for the same reason; "mirrored" from random weights
(random_init), two workers warm-started from a checkpoint (init_checkpoint). The per-step
losses and the dev loss must agree to 1e-3 relative and the dev accuracy exactly (measured:
the printed losses and the dev accuracy identical, dev losses 1e-8 relative apart).
"""

import json
import os
import re
import shutil
import socket
import subprocess
import sys

import pytest
import tensorflow.compat.v1 as tf

import configure_finetuning
import configure_pretraining
from tests.conftest import REPO, SAMPLE_CORPUS, SAMPLE_VOCAB
from util import distribute
from util.errors import InputError

PROGRESS = re.compile(r"^step (\d+)/\d+ \| loss ([\d.]+) \| gen ([\d.]+) \| disc ([\d.]+)",
                      re.M)
STEPS = 8
HPARAMS = {"model_size": "tiny", "save_graph_def": False,
           "max_seq_length": 64, "train_batch_size": 8,
           "num_train_steps": STEPS, "log_every_steps": 1, "save_checkpoints_steps": STEPS,
           "learning_rate": 1e-3, "num_warmup_steps": 2, "seed": 3,
           "per_example_randomness": True,
           "model_hparam_overrides": {"hidden_dropout_prob": 0.0,
                                      "attention_probs_dropout_prob": 0.0}}
# Runs run_pretraining or run_finetuning (argv[2]) in a fresh process, first splitting the
# CPU into N logical devices (possible only before TF initialises its devices, hence the
# subprocess).
DRIVER = """
import importlib
import sys
import tensorflow as tf
n, script = int(sys.argv[1]), sys.argv[2]
if n > 1:
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * n)
if script == "run_finetuning":  # the task head's dropout is a constant, not an hparam
    import finetune.heads
    finetune.heads.CLASSIFIER_DROPOUT = 0.0
sys.exit(importlib.import_module(script).main(sys.argv[3:]))
"""


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """Sequence-64 tfrecords from the bundled corpus (short sequences keep this fast)."""
    import build_pretraining_dataset

    data_dir = tmp_path_factory.mktemp("distribute_data")
    (data_dir / "vocab.txt").write_bytes(SAMPLE_VOCAB.read_bytes())
    assert build_pretraining_dataset.main([
        "--corpus-dir", str(SAMPLE_CORPUS), "--vocab-file", str(SAMPLE_VOCAB),
        "--output-dir", str(data_dir / "pretrain_tfrecords"), "--max-seq-length", "64",
        "--num-out-files", "2", "--seed", "7"]) == 0
    return data_dir


def start(data_dir, model_name, logical_cpus=1, env=None, script="run_pretraining",
          base=HPARAMS, **hparams):
    cmd = [sys.executable, "-c", DRIVER, str(logical_cpus), script, "--data-dir",
           str(data_dir), "--model-name", model_name,
           "--hparams", json.dumps(dict(base, **hparams))]
    return subprocess.Popen(cmd, cwd=REPO, env=dict(os.environ, **(env or {})),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finished(process):
    out, _ = process.communicate(timeout=600)
    assert process.returncode == 0, out[-3000:]
    return out


def pretraining_losses(out):
    rows = [tuple(float(x) for x in m.groups()) for m in PROGRESS.finditer(out)]
    assert [r[0] for r in rows] == list(range(1, STEPS + 1)), out[-3000:]
    return [r[1:] for r in rows]


def losses(process):
    out = finished(process)
    return pretraining_losses(out), out


def assert_same_trajectory(got, expected):
    for step, (a, b) in enumerate(zip(got, expected), 1):
        assert a == pytest.approx(b, rel=1e-3), "step %d: %s vs one device %s" % (step, a, b)


@pytest.fixture(scope="module")
def one_device(data_dir):
    return losses(start(data_dir, "one_device"))[0]


def test_mirrored_over_two_cpus_follows_the_one_device_trajectory(data_dir, one_device):
    rows, out = losses(start(data_dir, "mirrored", logical_cpus=2, distribution="mirrored",
                             mirrored_devices=["/cpu:0", "/cpu:1"]))
    assert "distribution mirrored: 2 replicas" in out
    assert "4 sequences per replica per step" in out
    assert_same_trajectory(rows, one_device)
    # The losses fall (the step is really taken), and global_step moved once per step.
    assert rows[-1][0] < rows[0][0] - 5
    model_dir = data_dir / "models" / "mirrored"
    assert (model_dir / ("model.ckpt-%d.index" % STEPS)).exists()


def free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def run_two_workers(start_worker):
    """Two loopback workers, start_worker(env) -> Popen with env holding the worker's
    TF_CONFIG; their outputs once both finished. A worker left running is killed."""
    workers = ["localhost:%d" % p for p in free_ports(2)]
    processes = [start_worker({"TF_CONFIG": distribute.tf_config_json(workers, i)})
                 for i in range(2)]
    try:
        return [finished(p) for p in processes]
    finally:
        for p in processes:
            if p.poll() is None:
                p.kill()


def test_two_workers_follow_the_one_device_trajectory_and_resume(data_dir, one_device):
    outs = run_two_workers(lambda env: start(data_dir, "two_workers", env=env,
                                             distribution="multi_worker_mirrored"))
    for out in outs:  # each worker prints the global losses
        assert_same_trajectory(pretraining_losses(out), one_device)
    model_dir = data_dir / "models" / "two_workers"
    assert (model_dir / ("model.ckpt-%d.index" % STEPS)).exists()  # written by the chief
    assert (model_dir / "pretrain_hparams.json").exists()
    # Restarted on its model dir, the cluster resumes from the chief's checkpoint (the
    # resume checks read it before training: the strategy must be built before them).
    outs = run_two_workers(lambda env: start(data_dir, "two_workers", env=env,
                                             distribution="multi_worker_mirrored",
                                             num_train_steps=STEPS + 2))
    for out in outs:
        assert "resuming from %s" % (model_dir / ("model.ckpt-%d" % STEPS)) in out, out
        assert re.search(r"^step %d/%d \| loss" % (STEPS + 2, STEPS + 2), out, re.M), out
    assert tf.train.load_variable(str(model_dir / ("model.ckpt-%d" % (STEPS + 2))),
                                  "global_step") == STEPS + 2


def test_hosts_that_see_different_checkpoints_stop_with_a_message(data_dir, one_device,
                                                                    tmp_path):
    """model_dir on each host's own disk: the chief finds no checkpoint, the other host the
    one-device run's; both stop before the first step, naming the cause (they used to train
    on out of step until one waited forever in an all-reduce)."""
    dirs = [tmp_path / "chief", tmp_path / "worker"]
    for d in dirs:
        shutil.copytree(data_dir, d, ignore=shutil.ignore_patterns("models"))
    shutil.copytree(data_dir / "models" / "one_device", dirs[1] / "models" / "split")

    def start_worker(env):
        index = json.loads(env["TF_CONFIG"])["task"]["index"]
        return start(dirs[index], "split", env=env, distribution="multi_worker_mirrored",
                     num_train_steps=STEPS + 2)
    workers = ["localhost:%d" % p for p in free_ports(2)]
    processes = [start_worker({"TF_CONFIG": distribute.tf_config_json(workers, i)})
                 for i in range(2)]
    try:
        outs = [p.communicate(timeout=300)[0] for p in processes]
    finally:
        for p in processes:
            if p.poll() is None:
                p.kill()
    for process, out in zip(processes, outs):
        assert process.returncode == 2, out[-3000:]
        assert "the hosts of the cluster start from different checkpoints" in out, out[-3000:]
        assert "must be one storage every host sees" in out
        assert not re.search(r"^step \d+/", out, re.M), out[-3000:]


def config(**hparams):
    return configure_pretraining.PretrainingConfig("m", "/tmp/d", **hparams)


def test_bad_distribution_hparams_are_refused():
    with pytest.raises(InputError, match=r'"none", "mirrored", "multi_worker_mirrored", '
                                         r"got 'mirror'"):
        config(distribution="mirror")
    with pytest.raises(InputError, match="use_tpu runs on TPUEstimator"):
        config(distribution="mirrored", use_tpu=True)
    with pytest.raises(InputError, match="use_tpu_estimator runs TPUEstimator on one device"):
        config(distribution="mirrored", use_tpu_estimator=True)
    with pytest.raises(InputError, match="num_tpu_cores and iterations_per_loop must be >= 1"):
        config(use_tpu_estimator=True, iterations_per_loop=0)
    with pytest.raises(InputError, match="num_gpus must be >= 0"):
        config(distribution="mirrored", num_gpus=-1)
    with pytest.raises(InputError, match="eval_each_checkpoint"):
        config(distribution="multi_worker_mirrored", eval_each_checkpoint=True)


@pytest.mark.parametrize("tf_config, message", [
    (None, "needs the TF_CONFIG environment variable"),
    ('{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 0},}',
     r"TF_CONFIG:1:\d+: invalid JSON"),
    ('{"cluster": {"ps": ["a:1"]}, "task": {"type": "ps", "index": 0}}', "cluster"),
    ('{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 2}}',
     "task index must be an integer from 0 to 1"),
    ('{"cluster": {"worker": ["a:1"]}}', "\"task\" must name"),
])
def test_multi_worker_needs_a_valid_tf_config(monkeypatch, tf_config, message):
    if tf_config is None:
        monkeypatch.delenv("TF_CONFIG", raising=False)
    else:
        monkeypatch.setenv("TF_CONFIG", tf_config)
    with pytest.raises(InputError, match=message):
        distribute.build_strategy(config(distribution="multi_worker_mirrored"))


def test_global_batch_must_split_over_the_replicas():
    class TwoReplicas:
        num_replicas_in_sync = 2
    with pytest.raises(InputError, match="train_batch_size 9 does not split over the 2 "
                                         "replicas"):
        distribute.check_batch_sizes(TwoReplicas(), {"train_batch_size": 9})


# --- fine-tuning -------------------------------------------------------------------------

FT_STEPS = 6  # 48 training examples, batch 8, one epoch
FT_HPARAMS = {"task_names": ["chnsenticorp"], "model_size": "tiny", "save_graph_def": False,
              "random_init": True,
              "max_seq_length": 64, "train_batch_size": 8, "eval_batch_size": 16,
              "num_train_epochs": 1.0, "learning_rate": 1e-3, "log_every_steps": 1,
              "seed": 5,
              "model_hparam_overrides": {"hidden_dropout_prob": 0.0,
                                         "attention_probs_dropout_prob": 0.0}}
FT_PROGRESS = re.compile(r"^step (\d+)/%d \| loss ([\d.]+) \|" % FT_STEPS, re.M)


@pytest.fixture(scope="module")
def ft_data_dir(tmp_path_factory):
    """vocab.txt and the fine-tuning tests' chnsenticorp cut; no pre-trained model (runs
    start from random weights, random_init, unless given an init_checkpoint)."""
    from tests.test_finetuning import make_task_data

    data_dir = tmp_path_factory.mktemp("distribute_finetuning")
    (data_dir / "vocab.txt").write_bytes(SAMPLE_VOCAB.read_bytes())
    make_task_data("chnsenticorp", data_dir / "finetuning_data" / "chnsenticorp")
    return data_dir


def start_finetuning(data_dir, model_name, logical_cpus=1, env=None, **hparams):
    return start(data_dir, model_name, logical_cpus, env, script="run_finetuning",
                 base=FT_HPARAMS, **hparams)


def finetuning_losses(out):
    rows = [(int(m.group(1)), float(m.group(2))) for m in FT_PROGRESS.finditer(out)]
    assert [step for step, _ in rows] == list(range(1, FT_STEPS + 1)), out[-3000:]
    return [loss for _, loss in rows]


def dev_results(data_dir, model_name):
    results = json.loads((data_dir / "models" / model_name / "results" /
                          "chnsenticorp_results.json").read_text())
    return results["trials"][0]["results"]["dev"]


def assert_same_finetuning(losses_got, dev_got, one_device):
    losses_expected, dev_expected = one_device
    assert_same_trajectory(losses_got, losses_expected)
    assert dev_got["loss"] == pytest.approx(dev_expected["loss"], rel=1e-3)
    assert dev_got["accuracy"] == dev_expected["accuracy"]


@pytest.fixture(scope="module")
def ft_one_device(ft_data_dir):
    out = finished(start_finetuning(ft_data_dir, "ft_one_device"))
    return finetuning_losses(out), dev_results(ft_data_dir, "ft_one_device")


def test_mirrored_finetuning_over_two_cpus_matches_one_device(ft_data_dir, ft_one_device):
    out = finished(start_finetuning(ft_data_dir, "ft_mirrored", logical_cpus=2,
                                    distribution="mirrored",
                                    mirrored_devices=["/cpu:0", "/cpu:1"]))
    assert "distribution mirrored: 2 replicas" in out
    assert "4 sequences per replica per step" in out
    assert_same_finetuning(finetuning_losses(out), dev_results(ft_data_dir, "ft_mirrored"),
                           ft_one_device)
    # global_step moved once per step: the final checkpoint is step 6, not 12.
    trial_dir = ft_data_dir / "models" / "ft_mirrored" / "finetuning_models" / \
        "chnsenticorp_model_1"
    assert (trial_dir / ("model.ckpt-%d.index" % FT_STEPS)).exists()


def test_two_workers_finetune_from_a_checkpoint_like_one_device(ft_data_dir, ft_one_device):
    # Warm-started from the one-device run's checkpoint (init_checkpoint, every variable
    # restored), against one device from the same checkpoint.
    warm = {"random_init": False, "init_checkpoint": str(
        ft_data_dir / "models" / "ft_one_device" / "finetuning_models" /
        "chnsenticorp_model_1" / ("model.ckpt-%d" % FT_STEPS))}
    reference = finished(start_finetuning(ft_data_dir, "ft_warm_one_device", **warm))
    one_device = (finetuning_losses(reference), dev_results(ft_data_dir, "ft_warm_one_device"))
    assert "initialised 39 variables" in reference
    outs = run_two_workers(lambda env: start_finetuning(
        ft_data_dir, "ft_two_workers", env=env, distribution="multi_worker_mirrored", **warm))
    dev = dev_results(ft_data_dir, "ft_two_workers")  # written by the chief alone
    for out in outs:  # each worker prints the global losses
        assert "distribution multi_worker_mirrored: 2 replicas" in out
        assert_same_finetuning(finetuning_losses(out), dev, one_device)
    assert "the chief predicts dev with the final checkpoint" in outs[1]
    assert "chnsenticorp: accuracy" in outs[0] and "chnsenticorp: accuracy" not in outs[1]
    trial_dir = ft_data_dir / "models" / "ft_two_workers" / "finetuning_models" / \
        "chnsenticorp_model_1"
    assert (trial_dir / ("model.ckpt-%d.index" % FT_STEPS)).exists()


def ft_config(**hparams):
    return configure_finetuning.FinetuningConfig("m", "/tmp/d", **hparams)


def test_bad_finetuning_distribution_hparams_are_refused():
    with pytest.raises(InputError, match=r"^fine-tuning hparams: distribution must be one of "
                                         r'"none", "mirrored", "multi_worker_mirrored", '
                                         r"got 'mirror'"):
        ft_config(distribution="mirror")
    with pytest.raises(InputError, match="fine-tuning hparams: num_gpus must be >= 0"):
        ft_config(distribution="mirrored", num_gpus=-1)
    with pytest.raises(InputError, match="fine-tuning hparams: mirrored_devices is for "
                                         "\"distribution\": \"mirrored\""):
        ft_config(mirrored_devices=["/cpu:0", "/cpu:1"])
    with pytest.raises(InputError, match="use_tpu runs on TPUEstimator"):
        ft_config(distribution="mirrored", use_tpu=True)
    with pytest.raises(InputError, match="use_tpu_estimator runs TPUEstimator on one device"):
        ft_config(distribution="mirrored", use_tpu_estimator=True)
    with pytest.raises(InputError, match="train_batch_size 32 does not split over "
                                         "num_tpu_cores 3"):
        ft_config(use_tpu=True, num_tpu_cores=3)
    with pytest.raises(InputError, match="batch sizes must be > 0"):
        ft_config(train_batch_size=0)


def test_finetuning_batch_that_does_not_split_is_refused_before_training(ft_data_dir):
    process = start_finetuning(ft_data_dir, "ft_bad_batch", logical_cpus=2,
                               distribution="mirrored", mirrored_devices=["/cpu:0", "/cpu:1"],
                               train_batch_size=9)
    out, _ = process.communicate(timeout=600)
    assert process.returncode == 2, out[-3000:]
    assert "train_batch_size 9 does not split over the 2 replicas of the distribution: " \
        "use a multiple of 2" in out
    assert "training features" not in out
