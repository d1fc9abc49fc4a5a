"""Our training loop (util/training_loop.py) against the tf.estimator.Estimator it replaced,
on TensorFlow 2.15 (the last release with the Estimator): the runners, once through each,
must leave the same checkpoints (names, values bit for bit, the `checkpoint` file), the
same eval metrics and the same predictions.

The Estimator side is the old builder, transcribed here: the runners' model functions
wrapped to return EstimatorSpecs, and a RunConfig from the same hparams.
"""

import io
import json
import os
import shutil
import subprocess
import sys
from contextlib import redirect_stdout

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

import run_finetuning
import run_pretraining
from tests.conftest import REPO, SAMPLE_VOCAB, requires_tf_estimator
from tests.test_finetuning import TINY as FINETUNE_TINY, make_task_data
from tests.test_pretraining import TINY as PRETRAIN_TINY
from tests.test_distribute import free_ports
from util import distribute
from util import tpu
from util import training_loop

pytestmark = requires_tf_estimator


def estimator_trainer(config, model_fn, model_dir, seed, train_batch_size, eval_batch_size,
                      predict_batch_size=None, session_config=None, train_distribute=None,
                      eval_distribute=None):
    """The tf.estimator.Estimator the runners trained with before util/training_loop.py."""
    assert not tpu.tpu_graph(config)

    def estimator_model_fn(features, labels, mode):
        spec = model_fn(features, labels, mode, {})
        scaffold = None
        if spec.init_fn is not None:
            scaffold = tf.train.Scaffold(
                init_fn=lambda scaffold, session: spec.init_fn(session))
        return tf.estimator.EstimatorSpec(
            mode, loss=spec.loss, train_op=spec.train_op,
            eval_metric_ops=spec.eval_metric_ops or None, predictions=spec.predictions,
            training_hooks=spec.training_hooks, scaffold=scaffold)
    run_config = tf.estimator.RunConfig(
        model_dir=model_dir, tf_random_seed=seed,
        save_checkpoints_steps=config.save_checkpoints_steps,
        keep_checkpoint_max=config.keep_checkpoint_max or None,
        save_summary_steps=config.log_every_steps, log_step_count_steps=None,
        checkpoint_save_graph_def=config.save_graph_def, session_config=session_config,
        train_distribute=train_distribute, eval_distribute=eval_distribute)
    estimator = tf.estimator.Estimator(estimator_model_fn, config=run_config)
    if config.distribution == "multi_worker_mirrored" and train_distribute is not None:
        return EstimatorOnCluster(estimator)
    return estimator


class EstimatorOnCluster:
    """The Estimator trains under MultiWorkerMirroredStrategy only through
    train_and_evaluate (TF's distribute coordinator starts each host's server); the
    cluster has no evaluator, so the EvalSpec is never used."""

    def __init__(self, estimator):
        self.estimator = estimator

    def train(self, input_fn, max_steps, saving_listeners=None):
        assert not saving_listeners
        tf.estimator.train_and_evaluate(
            self.estimator, tf.estimator.TrainSpec(input_fn, max_steps=max_steps),
            tf.estimator.EvalSpec(input_fn, steps=1))


def run(main, data_dir, model_name, hparams):
    out = io.StringIO()
    with redirect_stdout(out):
        status = main(["--data-dir", str(data_dir), "--model-name", model_name,
                       "--hparams", json.dumps(hparams)])
    assert status == 0, out.getvalue()
    return out.getvalue()


def checkpoints_of(model_dir):
    """{checkpoint prefix: {variable: value}} of every checkpoint in model_dir."""
    state = tf.train.get_checkpoint_state(str(model_dir))
    out = {}
    for path in state.all_model_checkpoint_paths:
        reader = tf.train.load_checkpoint(os.path.join(str(model_dir), path))
        out[os.path.basename(path)] = {name: reader.get_tensor(name)
                                       for name in reader.get_variable_to_shape_map()}
    return out


def assert_same_checkpoints(ours_dir, theirs_dir):
    assert (ours_dir / "checkpoint").read_text() == (theirs_dir / "checkpoint").read_text()
    ours, theirs = checkpoints_of(ours_dir), checkpoints_of(theirs_dir)
    assert sorted(ours) == sorted(theirs) and ours
    for path in ours:
        assert sorted(ours[path]) == sorted(theirs[path]), path
        different = [name for name in ours[path]
                     if not np.array_equal(ours[path][name], theirs[path][name])]
        assert different == [], (path, different)


def event_tags(directory):
    """The scalar tags of every event file in directory (not below it)."""
    tags = set()
    for name in os.listdir(directory):
        if name.startswith("events.out.tfevents"):
            for event in tf.train.summary_iterator(os.path.join(directory, name)):
                tags.update(v.tag for v in event.summary.value if v.HasField("simple_value"))
    return tags


def test_pretraining_and_its_resume_match_the_estimator(sample_data_dir, monkeypatch):
    """Pre-training to step 2, then resumed to step 4, evaluating each checkpoint: the same
    checkpoints, eval metrics, progress losses and TensorBoard tags both ways."""
    hparams = dict(PRETRAIN_TINY, train_batch_size=4, save_checkpoints_steps=2,
                   keep_checkpoint_max=2, log_every_steps=1, do_eval=True,
                   eval_each_checkpoint=True, num_eval_steps=2, eval_batch_size=4)
    outputs = {}
    for name in ("loop_ours", "loop_estimator"):
        if name == "loop_estimator":
            monkeypatch.setattr(training_loop, "build_trainer", estimator_trainer)
        outputs[name] = [run(run_pretraining.main, sample_data_dir, name,
                             dict(hparams, num_train_steps=steps)) for steps in (2, 4)]
    ours, theirs = (sample_data_dir / "models" / n for n in ("loop_ours", "loop_estimator"))
    assert_same_checkpoints(ours, theirs)
    assert sorted(checkpoints_of(ours)) == ["model.ckpt-2", "model.ckpt-4"]
    results = [json.loads((d / "results" / "unsup_results.json").read_text())
               for d in (ours, theirs)]
    # Each run saves (and so evaluates) the checkpoint it starts from, as the Estimator did.
    assert [r["global_step"] for r in results[0]] == [0, 2, 2, 4]
    assert results[0] == results[1]

    def losses(output):
        return [line.split("|")[:4] for line in output.splitlines() if line.startswith("step ")]
    assert losses("".join(outputs["loop_ours"])) == losses("".join(outputs["loop_estimator"]))
    assert event_tags(ours) == event_tags(theirs) >= {"loss", "loss/total", "learning_rate"}
    assert event_tags(ours / "eval") == event_tags(theirs / "eval") >= {"loss", "disc_auc"}


@pytest.fixture(scope="module")
def finetuning_dirs(tmp_path_factory, pretrained_model_dir):
    """Two data dirs, each with the shared tiny pre-trained model and chnsenticorp."""
    dirs = []
    for name in ("ours", "estimator"):
        data_dir = tmp_path_factory.mktemp("loop_ft_" + name)
        shutil.copy(SAMPLE_VOCAB, data_dir / "vocab.txt")
        shutil.copytree(pretrained_model_dir, data_dir / "models" / "tiny")
        make_task_data("chnsenticorp", data_dir / "finetuning_data" / "chnsenticorp")
        dirs.append(data_dir)
    return dirs


def test_finetuning_matches_the_estimator(finetuning_dirs, monkeypatch):
    """Fine-tuning chnsenticorp: the same trial checkpoints, dev metrics and predictions."""
    hparams = dict(FINETUNE_TINY, task_names=["chnsenticorp"], max_seq_length=64,
                   num_train_epochs=1, save_checkpoints_steps=3, log_every_steps=2)
    ours_dir, theirs_dir = finetuning_dirs
    run(run_finetuning.main, ours_dir, "tiny", hparams)
    monkeypatch.setattr(training_loop, "build_trainer", estimator_trainer)
    run(run_finetuning.main, theirs_dir, "tiny", hparams)

    def trial_dir(data_dir):
        results = json.loads((data_dir / "models" / "tiny" / "results" /
                              "chnsenticorp_results.json").read_text())
        return results["trials"][0]
    ours, theirs = trial_dir(ours_dir), trial_dir(theirs_dir)
    assert ours["results"] == theirs["results"] and "accuracy" in ours["results"]["dev"]
    assert_same_checkpoints(*(type(ours_dir)(t["model_dir"]) for t in (ours, theirs)))
    preds = [(d / "models" / "tiny" / "results" / "chnsenticorp_dev_preds.json").read_text()
             for d in (ours_dir, theirs_dir)]
    assert preds[0] == preds[1]


# run_pretraining in a fresh process through our loop or (argv[1] "estimator") the
# Estimator, first splitting the CPU into argv[2] logical devices (they can be made only
# before TF starts its devices).
DRIVER = """
import sys
import tensorflow as tf
side, cpus = sys.argv[1], int(sys.argv[2])
if cpus > 1:
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * cpus)
import run_pretraining
from util import training_loop
if side == "estimator":
    from tests.test_training_loop import estimator_trainer
    training_loop.build_trainer = estimator_trainer
sys.exit(run_pretraining.main(sys.argv[3:]))
"""


def start_pretraining(side, cpus, data_dir, model_name, hparams, env=None):
    return subprocess.Popen(
        [sys.executable, "-c", DRIVER, side, str(cpus), "--data-dir", str(data_dir),
         "--model-name", model_name, "--hparams", json.dumps(hparams)],
        cwd=REPO, env=dict(os.environ, **(env or {})), stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True)


def finished(processes):
    outputs = []
    try:
        for process in processes:
            out, _ = process.communicate(timeout=600)
            assert process.returncode == 0, out[-3000:]
            outputs.append(out)
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
    return outputs


def test_mirrored_pretraining_and_its_evaluation_match_the_estimator(sample_data_dir):
    """MirroredStrategy over two CPUs, training and (distributed) evaluation: the same
    checkpoints and metrics through our loop and through the Estimator."""
    hparams = dict(PRETRAIN_TINY, train_batch_size=4, num_train_steps=4,
                   save_checkpoints_steps=2, log_every_steps=2, do_eval=True,
                   num_eval_steps=2, eval_batch_size=4, distribution="mirrored",
                   mirrored_devices=["/cpu:0", "/cpu:1"])
    outputs = finished([start_pretraining(side, 2, sample_data_dir, "mirrored_" + side, hparams)
                        for side in ("ours", "estimator")])
    assert all("2 replicas" in out for out in outputs), outputs
    ours, theirs = (sample_data_dir / "models" / ("mirrored_" + side)
                    for side in ("ours", "estimator"))
    assert_same_checkpoints(ours, theirs)
    results = [json.loads((d / "results" / "unsup_results.json").read_text())
               for d in (ours, theirs)]
    assert results[0] == results[1] and results[0][-1]["global_step"] == 4


def test_two_worker_pretraining_matches_the_estimator(sample_data_dir):
    """MultiWorkerMirroredStrategy, two workers on loopback ports: the chief's checkpoints
    through our loop and through the Estimator's train_and_evaluate are the same."""
    hparams = dict(PRETRAIN_TINY, train_batch_size=4, num_train_steps=4,
                   save_checkpoints_steps=2, log_every_steps=2,
                   distribution="multi_worker_mirrored")
    for side in ("ours", "estimator"):
        workers = ["localhost:%d" % port for port in free_ports(2)]
        finished([start_pretraining(side, 1, sample_data_dir, "workers_" + side, hparams,
                                    {"TF_CONFIG": distribute.tf_config_json(workers, i)})
                  for i in range(2)])
    ours, theirs = (sample_data_dir / "models" / ("workers_" + side)
                    for side in ("ours", "estimator"))
    assert_same_checkpoints(ours, theirs)
    assert sorted(checkpoints_of(ours))[-1] == "model.ckpt-4"
