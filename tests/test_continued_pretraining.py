"""Continued pre-training from a released-format checkpoint: weights only (no Adam slots,
no global_step, as the released Chinese ELECTRA checkpoints are), a fresh schedule or the
released schedule's step count, and the checks that stop a mismatch before training."""

import contextlib
import io
import json
import re
import shutil

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

import run_pretraining
from tests.conftest import PRETRAINED_HPARAMS

STEPS = 2
HPARAMS = dict(PRETRAINED_HPARAMS, num_train_steps=STEPS, save_checkpoints_steps=STEPS,
               log_every_steps=1, num_warmup_steps=1)


@pytest.fixture(scope="module")
def released(pretrained_model_dir, tmp_path_factory):
    """The shared tiny model's weights saved without any adam_m / adam_v slot or
    global_step: {"prefix": checkpoint prefix, "weights": {name: value}}."""
    source = tf.train.load_checkpoint(tf.train.latest_checkpoint(str(pretrained_model_dir)))
    weights = {name: source.get_tensor(name) for name in source.get_variable_to_shape_map()
               if name != "global_step" and not name.endswith(("/adam_m", "/adam_v"))}
    prefix = str(tmp_path_factory.mktemp("released") / "electra_model")
    with tf.Graph().as_default():
        variables = [tf.Variable(value, name=name) for name, value in weights.items()]
        with tf.Session() as session:
            session.run(tf.global_variables_initializer())
            tf.train.Saver(variables).save(session, prefix, write_meta_graph=False)
    names = [name for name, _ in tf.train.list_variables(prefix)]
    assert not any(n.endswith(("adam_m", "adam_v")) or n == "global_step" for n in names)
    return {"prefix": prefix, "weights": weights}


def pretrain(data_dir, name, **hparams):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = run_pretraining.main(["--data-dir", str(data_dir), "--model-name", name,
                                       "--hparams", json.dumps(dict(HPARAMS, **hparams))])
    return status, out.getvalue()


@pytest.fixture()
def data_dir(sample_data_dir, tmp_path):
    for item in ("vocab.txt", "pretrain_tfrecords"):
        (shutil.copytree if item.endswith("records") else shutil.copy)(
            sample_data_dir / item, tmp_path / item)
    return tmp_path


def test_warm_start_with_a_fresh_schedule(data_dir, released):
    status, out = pretrain(data_dir, "fresh", init_checkpoint=released["prefix"])
    assert status == 0, out
    assert "warm start from %s:" % released["prefix"] in out and "0 not found" in out
    assert "step 1/%d" % STEPS in out  # the schedule starts at 0: step 1 is the first
    reader = tf.train.load_checkpoint(str(data_dir / "models" / "fresh"))
    assert reader.get_tensor("global_step") == STEPS
    assert reader.has_tensor("electra/embeddings/word_embeddings/adam_m")  # slots made afresh


def test_warm_start_continuing_the_released_schedule(data_dir, released):
    # The released model trained 1,000 steps of a 1,002-step schedule: 2 more steps, at the
    # learning rate the polynomial decay gives there, lr * (1 - step / num_train_steps),
    # warmed up again from step 1,000 (num_warmup_steps 1: the first update's rate is 0).
    status, out = pretrain(data_dir, "continued", init_checkpoint=released["prefix"],
                           init_checkpoint_step=1000, num_train_steps=1000 + STEPS)
    assert status == 0, out
    assert "starting at step 1000 of the schedule" in out
    assert "step 1001/1002" in out and "step 1/" not in out
    def lr(step):  # the rate the update of this progress line used, printed to 3 digits
        return float(out.split("step %d/1002" % step)[1].split("| lr ")[1].split()[0])
    assert lr(1001) == 0.0  # the schedule at step 1000, at the start of its warm-up
    assert lr(1002) == pytest.approx(HPARAMS["learning_rate"] * (1 - 1001 / 1002), rel=5e-3)
    model_dir = data_dir / "models" / "continued"
    assert tf.train.load_checkpoint(str(model_dir)).get_tensor("global_step") == 1002
    assert not (model_dir / "model.ckpt-0.index").exists()  # the first checkpoint is 1000's
    assert (model_dir / "model.ckpt-1000.index").exists()


def test_continuing_needs_a_step_when_the_checkpoint_has_none(data_dir, released, capsys):
    status, _ = pretrain(data_dir, "no_step", init_checkpoint=released["prefix"],
                         init_checkpoint_step="checkpoint")
    assert status == 2
    assert re.search(r"^error: init_checkpoint .*electra_model has no global_step",
                     capsys.readouterr().err, re.M)
    assert not (data_dir / "models" / "no_step" / "checkpoint").exists()


@pytest.mark.parametrize("change, message", [
    ({"model_hparam_overrides": {"hidden_size": 32, "intermediate_size": 128,
                                 "num_attention_heads": 1}},
     r"init_checkpoint \S+electra_model has \S+ with shape \[64\] but the 2-layer 32-hidden "
     r"model needs \[32\] .*hidden_size 64 in the checkpoint, 32 in the model"),
    ({"vocab_size": 21127},
     r"init_checkpoint \S+electra_model has a 21128-token embedding table "
     r"\(electra/embeddings/word_embeddings \[21128, 64\]\) but vocab_size is 21127"),
])
def test_a_size_or_vocab_mismatch_stops_before_training(data_dir, released, change, message,
                                                        capsys):
    if "vocab_size" in change:  # a vocab of that size, so that only the checkpoint differs
        lines = (data_dir / "vocab.txt").read_text(encoding="utf-8").rstrip("\n").split("\n")
        (data_dir / "vocab.txt").write_text("\n".join(lines[:-1]) + "\n", encoding="utf-8")
    status, _ = pretrain(data_dir, "mismatch", init_checkpoint=released["prefix"], **change)
    assert status == 2
    assert re.search("^error: " + message, capsys.readouterr().err, re.M)
    assert not list((data_dir / "models" / "mismatch").glob("model.ckpt-*"))


def test_fine_tuning_starts_from_the_released_format(released, tmp_path):
    import run_finetuning
    from tests.test_finetuning import make_task_data
    data_dir = tmp_path
    make_task_data("chnsenticorp", data_dir / "finetuning_data" / "chnsenticorp")
    model_dir = data_dir / "models" / "released"
    model_dir.mkdir(parents=True)
    for path in tf.io.gfile.glob(released["prefix"] + "*"):
        shutil.copy(path, model_dir)
    shutil.copy(_sample_vocab(), data_dir / "vocab.txt")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = run_finetuning.main([
            "--data-dir", str(data_dir), "--model-name", "released", "--hparams", json.dumps({
                "task_names": ["chnsenticorp"], "model_size": "tiny", "max_seq_length": 64,
                "num_train_epochs": 1.0, "train_batch_size": 16, "do_eval": False})])
    assert status == 0, out.getvalue()
    assert "electra/embeddings/word_embeddings" not in out.getvalue().split("trained from scratch")[-1]
    trial = tf.train.load_checkpoint(str(model_dir / "finetuning_models" / "chnsenticorp_model_1"))
    moved = np.abs(trial.get_tensor("electra/embeddings/LayerNorm/gamma")
                   - released["weights"]["electra/embeddings/LayerNorm/gamma"]).max()
    assert 0 < moved < 0.1  # started from the released weights, then trained


def _sample_vocab():
    from tests.conftest import SAMPLE_VOCAB
    return SAMPLE_VOCAB
