"""Shared test fixtures: paths, TF graph-mode sessions, tiny pre-training data."""

import os
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


def tsv_accuracy(preds, tsv_text, label_column=0):
    """Accuracy (%) of a classification preds file ({row index: label}) against the
    labels of a TSV with a header line, read here independently of the task reader."""
    labels = [row.split("\t")[label_column] for row in tsv_text.splitlines()[1:] if row]
    assert sorted(preds, key=int) == [str(i) for i in range(len(labels))]
    return 100.0 * sum(preds[str(i)] == label for i, label in enumerate(labels)) / len(labels)
