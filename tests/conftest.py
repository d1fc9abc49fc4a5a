"""Shared test fixtures: paths, TF graph-mode sessions, tiny pre-training data, a tiny
pre-trained model."""

import contextlib
import importlib.util
import io
import json
import os
import shutil
import sys
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
SAMPLE_CORPUS = REPO / "sample_data" / "corpus"
SAMPLE_VOCAB = REPO / "sample_data" / "vocab.txt"

if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


# The TPUEstimator tests and the comparisons of our training loop with the Estimator need
# tf.estimator, which only TensorFlow 2.15 ships (tensorflow_estimator).
requires_tf_estimator = pytest.mark.skipif(
    importlib.util.find_spec("tensorflow_estimator") is None,
    reason="needs tf.estimator, which only tensorflow 2.15.x ships (make TF=2.15 test)")


def shared_file(*parts):
    """A file under ../shared, or skip the test saying what is missing."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip("needs %s (the ../shared folder beside the repo is absent)" % path)
    return path


@pytest.fixture(scope="session")
def sample_data_dir(tmp_path_factory):
    """A data dir with vocab.txt and pretrain_tfrecords/ (seq 128) from the bundled corpus."""
    import build_pretraining_dataset

    data_dir = tmp_path_factory.mktemp("pretrain_data")
    (data_dir / "vocab.txt").write_bytes(SAMPLE_VOCAB.read_bytes())
    status = build_pretraining_dataset.main([
        "--corpus-dir", str(SAMPLE_CORPUS), "--vocab-file", str(SAMPLE_VOCAB),
        "--output-dir", str(data_dir / "pretrain_tfrecords"), "--max-seq-length", "128",
        "--num-out-files", "2", "--seed", "7"])
    assert status == 0
    return data_dir


# The model of pretrained_model_dir: tiny ELECTRA, 3 steps of run_pretraining.py (with the
# default save_graph_def: graph.pbtxt and .meta files, as the Estimator writes them).
PRETRAINED_HPARAMS = {"model_size": "tiny", "max_seq_length": 128, "train_batch_size": 4,
                      "num_train_steps": 3, "save_checkpoints_steps": 3, "num_warmup_steps": 1,
                      "learning_rate": 1e-3, "seed": 11}


def run_temp_dir(tmp_path_factory):
    """A directory of this pytest run shared by its xdist workers (each worker's basetemp
    is a popen-gwN folder below it); without xdist, the run's basetemp itself."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@contextlib.contextmanager
def file_lock(path):
    """An exclusive lock on path (created if need be) between processes, for the block."""
    import fcntl
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@pytest.fixture(scope="session")
def pretrained_model_dir(tmp_path_factory, sample_data_dir):
    """A run_pretraining.py model dir (PRETRAINED_HPARAMS: checkpoint with its Adam slots,
    discriminator/generator configs, vocab) for the tests that need "a pre-trained model"
    rather than pre-training itself. Built once per test run: the first xdist worker to ask
    builds it under a file lock, the others wait for it. Read-only: copy it (shutil.copytree)
    to a data dir's models/<name> to fine-tune or write into it."""
    import run_pretraining

    root = run_temp_dir(tmp_path_factory)
    model_dir, done = root / "shared_pretrained_tiny", root / "shared_pretrained_tiny.done"
    with file_lock(str(root / "shared_pretrained_tiny.lock")):
        if not done.exists():
            shutil.rmtree(model_dir, ignore_errors=True)  # a failed build's
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                status = run_pretraining.main([
                    "--data-dir", str(sample_data_dir), "--model-name", "shared_pretrained",
                    "--hparams", json.dumps(dict(PRETRAINED_HPARAMS, model_dir=str(model_dir)))])
            assert status == 0, out.getvalue()
            done.touch()
    return model_dir


def tsv_accuracy(preds, tsv_text, label_column=0):
    """Accuracy (%) of a classification preds file ({row index: label}) against the
    labels of a TSV with a header line, read here independently of the task reader."""
    labels = [row.split("\t")[label_column] for row in tsv_text.splitlines()[1:] if row]
    assert sorted(preds, key=int) == [str(i) for i in range(len(labels))]
    return 100.0 * sum(preds[str(i)] == label for i, label in enumerate(labels)) / len(labels)
