"""End-to-end pre-training: checkpoints, falling losses, eval metrics, resume, bad input."""

import io
import json
import math
import os
import re
import shutil
import subprocess
import sys
from contextlib import redirect_stdout

import pytest
import tensorflow.compat.v1 as tf

import run_pretraining
from tests.conftest import REPO, requires_tf_estimator, shared_file
from tests.test_modeling import pretraining_graph_variables, read_variable_list

PROGRESS = re.compile(r"^step (\d+)/\d+ \| loss ([\d.]+) \| gen ([\d.]+) \| disc ([\d.]+)")
TINY = {"model_size": "tiny", "save_graph_def": False,
        "max_seq_length": 128, "num_warmup_steps": 10,
        "learning_rate": 1e-3, "seed": 3}


def run(data_dir, model_name, **hparams):
    return run_pretraining.main(["--data-dir", str(data_dir), "--model-name", model_name,
                                 "--hparams", json.dumps(hparams)])


def checkpoint_variables(model_dir):
    return dict(tf.train.list_variables(tf.train.latest_checkpoint(str(model_dir))))


def snapshot(directory):
    """{relative path: bytes} of every file under directory."""
    out = {}
    for root, _, files in os.walk(directory):
        for name in files:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, directory)] = f.read()
    return out


def test_checkpoint_holds_the_graphs_variables_their_adam_slots_and_the_step(tiny_run):
    """The runner saves what the official pre-training checkpoints hold and nothing of its
    own (no accumulator, no loss scale): the model's variables (test_modeling.py compares
    them with the official lists for every published size), an Adam m and v for each, and
    global_step. The names are the official ELECTRA-small list cut to the tiny model's two
    layers, less the discriminator's embeddings_project (tiny's embedding and hidden sizes
    are equal, so it has no projection)."""
    graph = pretraining_graph_variables(model_size="tiny", max_seq_length=128)
    expected = dict(graph, global_step=[])
    for name, shape in graph.items():
        expected[name + "/adam_m"] = shape
        expected[name + "/adam_v"] = shape
    saved = {k: list(v) for k, v in checkpoint_variables(tiny_run[0]).items()}
    assert sorted(set(saved) - set(expected)) == []
    assert sorted(set(expected) - set(saved)) == []
    assert saved == expected
    reference = read_variable_list(shared_file(
        "reference", "checkpoint-variables", "electra-small-pretraining.txt"))
    layer = re.compile(r"/layer_(\d+)/")
    two_layers = {n for n in reference if not (layer.search(n)
                                                and int(layer.search(n).group(1)) >= 2)}
    assert sorted(two_layers - set(graph)) == ["electra/embeddings_project/bias",
                                               "electra/embeddings_project/kernel"]
    assert sorted(set(graph) - two_layers) == []


@pytest.fixture(scope="module")
def tiny_run(sample_data_dir):
    """Trains the tiny model for 150 steps with eval; returns (model_dir, progress rows)."""
    out = io.StringIO()
    with redirect_stdout(out):
        status = run(sample_data_dir, "tiny_losses", train_batch_size=16, num_train_steps=150,
                     log_every_steps=25, save_checkpoints_steps=75, do_eval=True,
                     num_eval_steps=4, eval_batch_size=16, **TINY)
    assert status == 0, out.getvalue()
    rows = [tuple(float(x) for x in m.groups()) for m in map(PROGRESS.match,
                                                             out.getvalue().splitlines()) if m]
    return sample_data_dir / "models" / "tiny_losses", rows, out.getvalue()


def test_save_graph_def_false_leaves_out_the_graph_files_but_not_the_events_graph(
        tiny_run, pretrained_model_dir):
    """By default (pretrained_model_dir) a model dir gets graph.pbtxt and a .meta per
    checkpoint, as the Estimator writes them; with "save_graph_def": false (tiny_run) neither,
    while the event file still carries the graph for TensorBoard's graph view."""
    assert (pretrained_model_dir / "graph.pbtxt").is_file()
    assert (pretrained_model_dir / "model.ckpt-3.meta").is_file()
    model_dir = tiny_run[0]
    assert not (model_dir / "graph.pbtxt").exists() and not list(model_dir.glob("*.meta"))
    events = [e for path in model_dir.glob("events.out.tfevents.*")
              for e in tf.train.summary_iterator(str(path))]
    assert any(e.graph_def for e in events)


def test_tiny_pretraining_lowers_both_losses(tiny_run):
    _, rows, _ = tiny_run
    assert rows[0][0] == 1 and rows[-1][0] == 150
    first_gen, first_disc = rows[0][2], rows[0][3]
    last_gen = sum(r[2] for r in rows[-2:]) / 2
    last_disc = sum(r[3] for r in rows[-2:]) / 2
    assert first_gen > 9.0  # about ln(21128) = 9.96 at initialisation
    assert last_gen < first_gen - 2.0, rows
    assert last_disc < first_disc - 0.15, rows


def test_eval_reports_generator_and_discriminator_metrics(tiny_run):
    model_dir, _, output = tiny_run
    history = json.loads((model_dir / "results" / "unsup_results.json").read_text())
    metrics = history[-1]
    assert metrics["global_step"] == 150
    assert {"masked_lm_accuracy", "masked_lm_loss", "disc_accuracy", "disc_precision",
            "disc_recall", "disc_auc", "sampled_masked_lm_accuracy"} <= set(metrics)
    # 150 steps teach the generator frequent characters: far above chance (1/21128).
    assert metrics["masked_lm_accuracy"] > 0.02
    # The discriminator finds replaced tokens: an always-"original" one has recall 0, a
    # guessing one a precision equal to the share p of replaced tokens. p follows from the
    # confusion matrix the metrics describe (shares of real tokens): with TP the true
    # positives, accuracy a = 1 + 2 TP - TP/R - TP/P, so TP = (1 - a) / (1/R + 1/P - 2), p = TP/R.
    a, precision, recall = (metrics[k] for k in ("disc_accuracy", "disc_precision",
                                                  "disc_recall"))
    assert recall > 0, metrics
    replaced_share = (1 - a) / (1 / recall + 1 / precision - 2) / recall
    assert 0.05 < replaced_share < 0.2, metrics  # about 15% masked, most samples wrong
    assert precision > 3 * replaced_share, metrics
    assert "eval results at step 150" in output
    assert (model_dir / "results" / "unsup_results.txt").read_text().startswith("step 150:")


@requires_tf_estimator
def test_tpu_estimator_on_cpu_trains_the_same_variables_and_evaluates(sample_data_dir,
                                                                     tiny_run):
    """use_tpu_estimator: the TPU graph (TPUEstimator, TPUEstimatorSpec, params batch size,
    eval_metrics tuple, one-hot embeddings) on the CPU; same checkpoint as the Estimator's."""
    out = io.StringIO()
    with redirect_stdout(out):
        status = run(sample_data_dir, "tiny_tpu_estimator", use_tpu_estimator=True,
                     train_batch_size=4, num_train_steps=3, save_checkpoints_steps=3,
                     iterations_per_loop=2, do_eval=True, num_eval_steps=2, eval_batch_size=4,
                     **TINY)
    assert status == 0, out.getvalue()
    assert re.search(r"^step 3/3 \| [\d.]+ steps/s", out.getvalue(), re.M), out.getvalue()
    model_dir = sample_data_dir / "models" / "tiny_tpu_estimator"
    saved = checkpoint_variables(model_dir)
    assert saved == checkpoint_variables(tiny_run[0])  # names and shapes
    assert tf.train.load_variable(str(model_dir / "model.ckpt-3"), "global_step") == 3
    history = json.loads((model_dir / "results" / "unsup_results.json").read_text())
    assert len(history) == 1 and history[0]["global_step"] == 3
    for key in ("masked_lm_accuracy", "masked_lm_loss", "disc_accuracy", "disc_auc",
                "sampled_masked_lm_accuracy", "loss"):
        assert key in history[0], key
    # Three steps leave the generator near uniform over the vocab: a mean cross-entropy
    # of about ln(21128) = 9.96 per masked token (a sum over tokens, or padding counted as
    # masked positions, would be far from it).
    assert abs(history[0]["masked_lm_loss"] - math.log(21128)) < 0.1, history[0]
    assert (model_dir / "results" / "unsup_results.txt").read_text().startswith("step 3:")


def test_init_checkpoint_warm_starts_every_weight_but_the_optimizer_state(tiny_run,
                                                                         sample_data_dir):
    """A fresh run from init_checkpoint: its step-0 checkpoint holds the source's weights
    (Adam slots and the step start afresh, and the output does not call them missing)."""
    source_dir, _, _ = tiny_run
    source = tf.train.latest_checkpoint(str(source_dir))
    out = io.StringIO()
    with redirect_stdout(out):
        status = run(sample_data_dir, "warm_started", train_batch_size=4, num_train_steps=1,
                     init_checkpoint=source, **TINY)
    assert status == 0, out.getvalue()
    weights = [n for n in checkpoint_variables(source_dir)
               if not n.endswith(("/adam_m", "/adam_v")) and n != "global_step"]
    assert ("warm start from %s: %d variables restored, 0 not found" % (source, len(weights))
            in out.getvalue()), out.getvalue()
    reader_source = tf.train.load_checkpoint(source)
    reader_start = tf.train.load_checkpoint(
        str(sample_data_dir / "models" / "warm_started" / "model.ckpt-0"))
    for name in weights:
        assert (reader_start.get_tensor(name) == reader_source.get_tensor(name)).all(), name
    assert reader_start.get_tensor("global_step") == 0
    slot = weights[0] + "/adam_m"
    assert not reader_start.get_tensor(slot).any()  # zeros, not the source's moments
    assert reader_source.get_tensor(slot).any()


def test_model_dir_is_self_describing_and_has_tensorboard_scalars(tiny_run):
    model_dir, _, _ = tiny_run
    assert (model_dir / "vocab.txt").read_bytes() == (REPO / "sample_data" / "vocab.txt")\
        .read_bytes()
    disc = json.loads((model_dir / "discriminator.json").read_text())
    gen = json.loads((model_dir / "generator.json").read_text())
    assert (disc["hidden_size"], gen["hidden_size"], gen["embedding_size"]) == (64, 16, 64)
    tags = set()
    for event_file in model_dir.glob("events.out.tfevents.*"):
        for event in tf.train.summary_iterator(str(event_file)):
            tags.update(v.tag for v in event.summary.value)
    assert {"loss/total", "loss/generator", "loss/discriminator", "learning_rate"} <= tags


# ----------------------------------------------------------------------------- bad input

def test_vocab_size_mismatch_is_reported(sample_data_dir, capsys):
    assert run(sample_data_dir, "bad_vocab", **dict(TINY, vocab_size=30522)) == 2
    err = capsys.readouterr().err
    assert "vocab.txt has 21128 tokens but vocab_size is 30522" in err
    assert not (sample_data_dir / "models" / "bad_vocab").exists()


def test_checkpoint_vocab_mismatch_is_reported_and_nothing_is_touched(
        sample_data_dir, tmp_path, capsys):
    assert run(sample_data_dir, "vocab_ckpt", train_batch_size=4, num_train_steps=2,
               **TINY) == 0
    model_dir = sample_data_dir / "models" / "vocab_ckpt"
    before = snapshot(model_dir)
    other = tmp_path / "other"
    other.mkdir()
    lines = (REPO / "sample_data" / "vocab.txt").read_text(encoding="utf-8").split("\n")
    (other / "vocab.txt").write_text("\n".join(lines[:5000]) + "\n", encoding="utf-8")
    shutil.copytree(sample_data_dir / "models", other / "models")
    status = run(other, "vocab_ckpt", pretrain_tfrecords=str(
        sample_data_dir / "pretrain_tfrecords" / "pretrain_data.tfrecord*"),
        vocab_size=5000, train_batch_size=4, num_train_steps=4, **TINY)
    assert status == 2
    err = capsys.readouterr().err
    assert "21128-token embedding table" in err and "vocab_size is 5000" in err
    assert snapshot(other / "models" / "vocab_ckpt") == before


def test_no_tfrecords_and_wrong_sequence_length(sample_data_dir, tmp_path, capsys):
    (tmp_path / "vocab.txt").write_bytes((REPO / "sample_data" / "vocab.txt").read_bytes())
    assert run(tmp_path, "m", **TINY) == 2
    assert "no tfrecords found matching" in capsys.readouterr().err
    status = run(sample_data_dir, "m", **dict(TINY, max_seq_length=256))
    assert status == 2
    assert "hold sequences of length 128 but max_seq_length is 256" in capsys.readouterr().err


def test_bad_hparams_file_and_unknown_key_leave_model_dir_alone(
        sample_data_dir, tmp_path, capsys):
    bad = tmp_path / "hp.json"
    bad.write_text('{\n  "model_size": "tiny",\n}\n')
    code = run_pretraining.main(["--data-dir", str(sample_data_dir), "--model-name", "x",
                                 "--hparams", str(bad)])
    assert code == 2
    assert "%s:3:1: invalid JSON" % bad in capsys.readouterr().err
    assert run(sample_data_dir, "x", **dict(TINY, num_train_step=5)) == 2
    assert "did you mean 'num_train_steps'" in capsys.readouterr().err
    assert not (sample_data_dir / "models" / "x").exists()


def test_unwritable_or_full_model_dir_fails_before_training(sample_data_dir, tmp_path,
                                                            monkeypatch, capsys):
    data_dir = tmp_path / "d"
    data_dir.mkdir()
    (data_dir / "vocab.txt").write_bytes((REPO / "sample_data" / "vocab.txt").read_bytes())
    (data_dir / "models").write_text("a file where the models directory should be")
    tfrecords = str(sample_data_dir / "pretrain_tfrecords" / "pretrain_data.tfrecord*")
    assert run(data_dir, "m", pretrain_tfrecords=tfrecords, **TINY) == 2
    assert "cannot write to the model dir %s" % (data_dir / "models" / "m") in \
        capsys.readouterr().err

    import util.io
    usage = util.io.shutil.disk_usage(str(tmp_path))
    monkeypatch.setattr(util.io.shutil, "disk_usage",
                        lambda path: usage._replace(free=10 * 2 ** 20))
    assert run(sample_data_dir, "full_disk", **TINY) == 2
    assert "only 10 MB free on the disk of the model dir" in capsys.readouterr().err
    assert not list((sample_data_dir / "models" / "full_disk").glob("*.index"))


def test_model_dir_refuses_a_different_vocab(sample_data_dir, tmp_path, capsys):
    assert run(sample_data_dir, "own_vocab", train_batch_size=4, num_train_steps=1,
               **TINY) == 0
    other = tmp_path / "vocab.txt"
    lines = (REPO / "sample_data" / "vocab.txt").read_text(encoding="utf-8").split("\n")
    lines[200], lines[201] = lines[201], lines[200]  # same size, different ids
    other.write_text("\n".join(lines), encoding="utf-8")
    model_dir = sample_data_dir / "models" / "own_vocab"
    before = snapshot(model_dir)
    assert run(sample_data_dir, "own_vocab", vocab_file=str(other), train_batch_size=4,
               num_train_steps=3, **TINY) == 2
    assert "this model was trained with another vocab" in capsys.readouterr().err
    assert snapshot(model_dir) == before


def test_sentencepiece_users_build_and_pretrain_end_to_end(tmp_path, capsys):
    """A user's own .model: the builder tokenizes with it, pre-training sizes the
    embeddings from it and masks with its [MASK]/[CLS]/[SEP] pieces."""
    import sentencepiece as spm
    import build_pretraining_dataset
    corpus = REPO / "sample_data" / "corpus"
    spm.SentencePieceTrainer.train(
        input=",".join(str(p) for p in sorted(corpus.glob("*.txt"))),
        model_prefix=str(tmp_path / "zh"), vocab_size=3000, model_type="unigram",
        character_coverage=1.0, user_defined_symbols=["[CLS]", "[SEP]", "[MASK]"],
        pad_id=0, pad_piece="[PAD]", unk_id=1, unk_piece="[UNK]", bos_id=-1, eos_id=-1,
        minloglevel=2)
    model_file = str(tmp_path / "zh.model")
    assert build_pretraining_dataset.main([
        "--corpus-dir", str(corpus), "--spm-model-file", model_file, "--output-dir",
        str(tmp_path / "pretrain_tfrecords"), "--max-seq-length", "64"]) == 0
    assert run(tmp_path, "spm", **dict(TINY, max_seq_length=64, spm_model_file=model_file,
                                       vocab_size=3000, train_batch_size=4,
                                       num_train_steps=3)) == 0
    saved = checkpoint_variables(tmp_path / "models" / "spm")
    assert list(saved["electra/embeddings/word_embeddings"]) == [3000, 64]
    assert (tmp_path / "models" / "spm" / "zh.model").exists()
    capsys.readouterr()
    assert run(tmp_path, "spm2", **dict(TINY, max_seq_length=64, spm_model_file=model_file,
                                        train_batch_size=4, num_train_steps=3)) == 2
    assert "zh.model has 3000 tokens but vocab_size is 21128" in capsys.readouterr().err


def test_official_disc_auc_counts_padding_as_originals():
    """disc_auc is the official code's metric: it also ranks every padding position, as an
    original with probability 0; disc_auc_real_tokens ranks the real tokens only."""
    from pretrain import objective
    ints = {"input_mask": [[1, 1, 1, 0, 0]], "disc_labels": [[1, 0, 0, 0, 0]],
            "disc_preds": [[0, 1, 0, 1, 1]], "masked_lm_ids": [[5]],
            "masked_lm_preds": [[5]], "sampled_tokids": [[5]]}
    floats = {"disc_probs": [[0.3, 0.6, 0.1, 0.9, 0.95]], "masked_lm_weights": [[1.0]],
              "mlm_loss": [[1.0]], "disc_loss": [0.5]}
    with tf.Graph().as_default(), tf.Session() as sess:
        metrics = objective.metric_fn(
            **{k: tf.constant(v, tf.int32) for k, v in ints.items()},
            **{k: tf.constant(v, tf.float32) for k, v in floats.items()})
        sess.run(tf.local_variables_initializer())
        sess.run([update for _, update in metrics.values()])
        values = sess.run({k: value for k, (value, _) in metrics.items()})
    # The fake (0.3) outranks one of the two real originals (0.1, not 0.6): 1/2.
    assert abs(values["disc_auc_real_tokens"] - 0.5) < 0.01
    # ... and both padding positions (0 after masking): 3 of 4 negatives.
    assert abs(values["disc_auc"] - 0.75) < 0.01


def test_rerun_with_another_shape_or_data_leaves_the_model_dir_byte_identical(
        sample_data_dir, tmp_path, capsys):
    """A finished model dir is resumed only by its own run: another model size, other
    hparams or replaced training tfrecords are refused before anything in it is rewritten."""
    data = tmp_path / "d"
    shutil.copytree(sample_data_dir, data)
    assert run(data, "m", train_batch_size=4, num_train_steps=2, **TINY) == 0
    model_dir = data / "models" / "m"
    before = snapshot(model_dir)
    capsys.readouterr()

    assert run(data, "m", train_batch_size=4, num_train_steps=4,
               **dict(TINY, model_size="small")) == 2
    err = capsys.readouterr().err
    assert "holds a checkpoint of another run" in err and "model_size: 'tiny' -> 'small'" in err
    assert snapshot(model_dir) == before

    assert run(data, "m", train_batch_size=4, num_train_steps=4,
               **dict(TINY, model_hparam_overrides={"hidden_size": 64})) == 2
    assert "model_hparam_overrides" in capsys.readouterr().err
    assert snapshot(model_dir) == before

    # Replaced tfrecords (same names, other examples): the data record notices.
    shutil.rmtree(data / "pretrain_tfrecords")
    import build_pretraining_dataset
    assert build_pretraining_dataset.main([
        "--corpus-dir", str(REPO / "sample_data" / "corpus"), "--vocab-file",
        str(data / "vocab.txt"), "--output-dir", str(data / "pretrain_tfrecords"),
        "--max-seq-length", "128", "--num-out-files", "2", "--seed", "8"]) == 0
    capsys.readouterr()
    assert run(data, "m", train_batch_size=4, num_train_steps=4, **TINY) == 2
    err = capsys.readouterr().err
    assert "training data changed (pretrain_data.tfrecord-0-of-2: other content" in err
    assert snapshot(model_dir) == before


def test_a_checkpoint_without_this_runs_variables_is_refused_before_training(
        sample_data_dir, tmp_path, capsys):
    """A model dir holding weights only (a released checkpoint unzipped there, no Adam
    slots) is not resumed into TensorFlow's NotFoundError: the message points to
    init_checkpoint. The check builds the real graph, so it also catches shapes the
    hparams record cannot (a dir without pretrain_hparams.json)."""
    data = tmp_path / "d"
    shutil.copytree(sample_data_dir, data)
    assert run(data, "m", train_batch_size=4, num_train_steps=2, **TINY) == 0
    model_dir = data / "models" / "m"
    released = tmp_path / "released"
    with tf.Graph().as_default():
        reader = tf.train.load_checkpoint(str(tf.train.latest_checkpoint(str(model_dir))))
        weights = [tf.Variable(reader.get_tensor(name), name=name)
                   for name in reader.get_variable_to_shape_map()
                   if not name.endswith(("adam_m", "adam_v")) and name != "global_step"]
        with tf.Session() as session:
            session.run(tf.global_variables_initializer())
            tf.train.Saver(weights).save(session, str(released / "model.ckpt"))
    for name in os.listdir(model_dir):
        if name.startswith(("model.ckpt", "checkpoint", "pretrain_hparams", "train_data")):
            os.remove(model_dir / name)
    for name in os.listdir(released):
        shutil.copy(released / name, model_dir / name)
    before = snapshot(model_dir)
    capsys.readouterr()
    assert run(data, "m", train_batch_size=4, num_train_steps=4, **TINY) == 2
    err = capsys.readouterr().err
    assert "lacks" in err and "adam_m" in err and '"init_checkpoint"' in err
    assert snapshot(model_dir) == before


def test_a_second_run_on_a_model_dir_is_refused_and_a_dead_runs_lock_is_broken(
        sample_data_dir, tmp_path, capsys):
    import socket
    data = tmp_path / "d"
    shutil.copytree(sample_data_dir, data)
    model_dir = data / "models" / "m"
    model_dir.mkdir(parents=True)
    lock = {"host": socket.gethostname(), "pid": os.getppid(), "started": "earlier",
            "command": "run_pretraining.py --model-name m", "token": "x"}
    (model_dir / ".lock").write_text(json.dumps(lock))
    assert run(data, "m", train_batch_size=4, num_train_steps=2, **TINY) == 2
    err = capsys.readouterr().err
    assert "model dir %s is in use by another run (host %s, pid %d" % (
        model_dir, socket.gethostname(), os.getppid()) in err
    assert "rm %s" % (model_dir / ".lock") in err
    assert os.listdir(model_dir) == [".lock"]

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (model_dir / ".lock").write_text(json.dumps(dict(lock, pid=dead.pid)))
    assert run(data, "m", train_batch_size=4, num_train_steps=2, **TINY) == 0
    assert "breaking a stale lock" in capsys.readouterr().out
    assert not (model_dir / ".lock").exists() and tf.train.latest_checkpoint(str(model_dir))


def test_a_full_disk_mid_run_names_the_path_and_what_is_free(sample_data_dir, tmp_path,
                                                             monkeypatch, capsys):
    """ENOSPC at a checkpoint (as Python's OSError or in TensorFlow's error text) is one
    message naming the file and the free space, not a traceback."""
    import errno
    from util import training_utils
    data = tmp_path / "d"
    shutil.copytree(sample_data_dir, data)
    target = data / "models" / "m" / "model.ckpt-2.index"
    for error in (OSError(errno.ENOSPC, "No space left on device", str(target)),
                  tf.errors.ResourceExhaustedError(
                      None, None, "%s; No space left on device" % target)):
        def full(self, session, step, error=error):
            raise error
        monkeypatch.setattr(training_utils.CheckpointLogger, "after_save", full)
        assert run(data, "m", train_batch_size=4, num_train_steps=2, **TINY) == 3
        err = capsys.readouterr().err
        assert re.search(r"^error: the disk is full: writing %s failed \(\d+ MB free on the "
                         r"disk of %s\)\. Free some space and rerun" % (
                             re.escape(str(target)), re.escape(str(target.parent))), err,
                         re.M), err


def test_a_truncated_or_corrupted_tfrecord_is_named_with_its_offset(sample_data_dir, tmp_path,
                                                                   capsys):
    """TensorFlow's DataLossError names no file; the run names the damaged one and how many
    records precede the damage (counted here independently of the code under test)."""
    data = tmp_path / "d"
    shutil.copytree(sample_data_dir, data)
    shard = data / "pretrain_tfrecords" / "pretrain_data.tfrecord-1-of-2"
    raw = shard.read_bytes()
    offsets, position = [], 0  # TFRecord framing: u64 length, u32 crc, data, u32 crc
    while position < len(raw):
        offsets.append(position)
        position += 16 + int.from_bytes(raw[position:position + 8], "little")
    damaged_record = 5  # early: the run meets it in its first batches
    cut = offsets[damaged_record] + 20  # inside that record
    for name, damaged in (("truncated", raw[:cut]),
                          ("corrupted", raw[:cut] + bytes([raw[cut] ^ 0xFF]) + raw[cut + 1:])):
        shard.write_bytes(damaged)
        assert run(data, "m_" + name, train_batch_size=8, num_train_steps=60,
                   shuffle_buffer_size=1, **TINY) == 2, name
        err = capsys.readouterr().err
        assert err.startswith("error: %s is damaged after its first %d records (%s record at"
                              % (shard, damaged_record, name)), err


def test_a_warmup_longer_than_the_run_is_reported_with_the_numbers(sample_data_dir, capsys):
    """The default 10,000 warm-up steps kept for a 20-step run: lr_t = lr (1 - t/T) t/W
    peaks at t = T/2 with lr T/(4W), 20 / 40,000 = 0.05% of learning_rate."""
    assert run(sample_data_dir, "long_warmup", **dict(TINY, num_warmup_steps=10000,
                                                      num_train_steps=20,
                                                      train_batch_size=4)) == 0
    out = capsys.readouterr().out
    assert ('WARNING: num_warmup_steps 10000 is 50000% of num_train_steps 20: the learning '
            'rate never passes 0.05% of learning_rate 0.001; set "num_warmup_steps" to about '
            '10% of the run, e.g. 2') in out
    lrs = [float(m) for m in re.findall(r"\| lr ([\d.e+-]+) \|", out)]
    assert max(lrs) <= 0.001 * 20 / 40000 * 1.0001
