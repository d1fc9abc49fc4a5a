"""Every path on a TensorFlow file system: ram:// (in memory) stands in for a gs:// bucket.

One module fixture runs, in this process, what a Cloud TPU user runs against a bucket:
the builder reading its corpus from ram:// and writing the tfrecords there, pre-training from --data-dir ram://... (twice: the second run
resumes from the checkpoint stored there and evaluates), fine-tuning chnsenticorp from
that model with its data in ram://, export of the trial to ram:// and prediction from the
export. The tests then check what each step left in the bucket, and that nothing of the
run reached the local disk outside the system temp dir (no `ram:` folder in the cwd: the
os.makedirs("gs://...") trap).
"""

import io
import json
import os
import tempfile
from contextlib import redirect_stderr, redirect_stdout

import pytest

import build_pretraining_dataset
import export_savedmodel
import predict
import run_finetuning
import run_pretraining
from tests.conftest import REPO, SAMPLE_CORPUS, SAMPLE_VOCAB, tsv_accuracy
from tests.numpy_reference import checkpoint_values, classification_probabilities, vocab_ids
from util import fs, io as util_io

BUCKET = "ram://cloud-paths-test"
DATA = BUCKET + "/D"
MODEL = DATA + "/models/tiny"
EXPORT = BUCKET + "/exports/chnsenticorp"
PRETRAIN = {"model_size": "tiny", "save_graph_def": False,
            "max_seq_length": 32, "num_warmup_steps": 1,
            "learning_rate": 1e-3, "seed": 3, "train_batch_size": 8, "eval_batch_size": 8,
            "num_eval_steps": 1, "log_every_steps": 1}
FINETUNE = {"model_size": "tiny", "save_graph_def": False,
            "task_names": ["chnsenticorp"], "max_seq_length": 32,
            "learning_rate": 1e-3, "train_batch_size": 8, "eval_batch_size": 8,
            "num_train_epochs": 1.0, "log_every_steps": 100}
SKIP_DIRS = {".git", ".venv", "__pycache__", ".pytest_cache"}


def local_files(root):
    """Every path below root (skipping VCS, venv and caches)."""
    found = set()
    for directory, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS]
        found.update(os.path.join(directory, name) for name in dirs + files)
    return found


def captured(job):
    """(return value, stdout + stderr) of job()."""
    out = io.StringIO()
    with redirect_stdout(out), redirect_stderr(out):
        value = job()
    return value, out.getvalue()


def pretrain(**hparams):
    return captured(lambda: run_pretraining.main([
        "--data-dir", DATA, "--model-name", "tiny",
        "--hparams", json.dumps(dict(PRETRAIN, **hparams))]))


def write_sentiment_data(task_dir):
    lines = [line.strip() for path in sorted(SAMPLE_CORPUS.glob("*.txt"))
             for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    for split, rows in (("train", lines[:16]), ("dev", lines[16:28])):
        text = "label\ttext_a\n" + "".join("%d\t%s\n" % ("，" in line, line) for line in rows)
        util_io.atomic_write_text(fs.join(task_dir, split + ".tsv"), text)
    return len(lines[16:28])


@pytest.fixture(scope="module")
def bucket_run():
    """Runs everything against ram://; returns the outputs the tests look at."""
    before = {root: local_files(root) for root in {os.getcwd(), str(REPO)}}
    fs.rmtree(BUCKET)
    fs.copy(str(SAMPLE_VOCAB), DATA + "/vocab.txt")
    # The builder reads the corpus and vocab from the bucket and writes the tfrecords there.
    fs.copy_tree(str(SAMPLE_CORPUS), BUCKET + "/corpus")
    runs = {"build": captured(lambda: build_pretraining_dataset.main([
        "--corpus-dir", BUCKET + "/corpus", "--vocab-file", DATA + "/vocab.txt",
        "--output-dir", DATA + "/pretrain_tfrecords", "--max-seq-length", "32",
        "--num-out-files", "1", "--seed", "7"]))}
    assert runs["build"][0] == 0, runs["build"][1]
    runs.update({"first": pretrain(num_train_steps=1),
            "resumed": pretrain(num_train_steps=2, do_eval=True)})
    num_dev = write_sentiment_data(DATA + "/finetuning_data/chnsenticorp")
    runs["finetune"] = captured(lambda: run_finetuning.main([
        "--data-dir", DATA, "--model-name", "tiny", "--hparams", json.dumps(FINETUNE)]))
    trial = MODEL + "/finetuning_models/chnsenticorp_model_1"
    runs["export"] = captured(lambda: export_savedmodel.main([trial, "--out", EXPORT]))
    inputs = ["今天天气很好，我们去公园。", "这本书写得不好"]
    stdout = io.StringIO()
    runs["predict"] = captured(lambda: predict.main(
        [EXPORT], stdin=io.BytesIO("".join(json.dumps({"text": t}, ensure_ascii=False) + "\n"
                                           for t in inputs).encode("utf-8")),
        stdout=stdout))
    after = {root: local_files(root) for root in before}
    yield {"runs": runs, "before": before, "after": after, "num_dev": num_dev,
           "inputs": inputs, "predictions": stdout.getvalue(), "trial": trial}
    fs.rmtree(BUCKET)


def test_pretraining_runs_and_resumes_from_the_bucket(bucket_run):
    import tensorflow.compat.v1 as tf
    runs = bucket_run["runs"]
    shards = fs.glob(DATA + "/pretrain_tfrecords/pretrain_data.tfrecord*")
    assert shards == [DATA + "/pretrain_tfrecords/pretrain_data.tfrecord-0-of-1"]
    assert fs.exists(DATA + "/pretrain_tfrecords/dataset_info.json")
    for name in ("first", "resumed"):
        assert runs[name][0] == 0, runs[name][1]
    assert "resuming from %s/model.ckpt-1" % MODEL in runs["resumed"][1]
    # TensorBoard: each start wrote its own event file, and the run holds one graph.
    event_files = fs.glob(MODEL + "/events.out.tfevents.*")
    graphs = [sum(e.HasField("graph_def") for e in tf.train.summary_iterator(path))
              for path in sorted(event_files)]
    assert graphs == [1, 0], graphs
    latest = tf.train.latest_checkpoint(MODEL)
    assert latest == MODEL + "/model.ckpt-2"
    reader = tf.train.load_checkpoint(MODEL)  # the dir: see fs.tf_checkpoint_path
    assert reader.get_tensor("global_step") == 2
    assert fs.read_bytes(MODEL + "/vocab.txt") == SAMPLE_VOCAB.read_bytes()
    for name in ("discriminator.json", "generator.json", "pretrain_hparams.json"):
        assert json.loads(fs.read_text(MODEL + "/" + name))
    # do_eval (second run only) appended its results in the bucket
    lines = fs.read_text(MODEL + "/results/unsup_results.txt").splitlines()
    assert len(lines) == 1 and lines[0].startswith("step 2: ")
    history = json.loads(fs.read_text(MODEL + "/results/unsup_results.json"))
    assert [h["global_step"] for h in history] == [2]


def test_finetuning_writes_results_export_and_predictions_in_the_bucket(bucket_run):
    runs = bucket_run["runs"]
    assert runs["finetune"][0] == 0, runs["finetune"][1]
    results = json.loads(fs.read_text(MODEL + "/results/chnsenticorp_results.json"))
    assert results["task"] == "chnsenticorp" and len(results["trials"]) == 1
    preds = json.loads(fs.read_text(MODEL + "/results/chnsenticorp_dev_preds.json"))
    dev_tsv = fs.read_text(DATA + "/finetuning_data/chnsenticorp/dev.tsv")
    assert results["summary"]["dev"]["accuracy"]["max"] == pytest.approx(
        tsv_accuracy(preds, dev_tsv))
    table = fs.read_text(MODEL + "/results/chnsenticorp_results.md")
    assert "| Model | Development Set | Trials |" in table
    preds = fs.glob(MODEL + "/results/chnsenticorp_dev_preds*")
    assert len(preds) == 1 and len(json.loads(fs.read_text(preds[0]))) == bucket_run["num_dev"]
    assert fs.glob(MODEL + "/finetuning_tfrecords/*"), "the tfrecord cache is in the bucket"
    assert runs["export"][0] == 0, runs["export"][1]
    assert fs.exists(EXPORT + "/saved_model.pb") and fs.exists(EXPORT + "/model_info.json")
    assert runs["predict"][0] == 0, runs["predict"][1]
    outputs = [json.loads(line) for line in bucket_run["predictions"].splitlines()]
    assert [o["text"] for o in outputs] == bucket_run["inputs"]
    # the exported model's probabilities, its variables read back from the bucket and the
    # encoder written out in NumPy; the label is their argmax
    from model.tokenization import FullTokenizer
    info = json.loads(fs.read_text(EXPORT + "/model_info.json"))
    values = checkpoint_values(EXPORT + "/variables/variables")
    tokenizer = FullTokenizer(EXPORT + "/vocab.txt")
    vocab = vocab_ids(fs.read_text(EXPORT + "/vocab.txt"))
    for output in outputs:
        expected = classification_probabilities(values, info, "chnsenticorp", tokenizer, vocab,
                                                output["text"])
        assert [output["probabilities"][label] for label in info["label_list"]] == \
            pytest.approx(expected, abs=1e-5), output
        assert output["label"] == info["label_list"][expected.argmax()]


def test_report_tables_and_plots_from_and_into_the_bucket(bucket_run):
    from scripts import report
    _, table = report.build_report([MODEL + "/results"], BUCKET + "/report")
    assert "| tiny |" in table
    assert set(fs.listdir(BUCKET + "/report")) == {
        "finetuning_curves.png", "pretraining_eval.png", "pretraining_losses.png", "report.md"}
    assert fs.read_bytes(BUCKET + "/report/finetuning_curves.png").startswith(b"\x89PNG")


def test_nothing_of_the_run_reaches_the_local_disk(bucket_run):
    assert not [name for name in os.listdir(os.getcwd()) if name.startswith("ram:")]
    temp = os.path.realpath(tempfile.gettempdir())
    for root, before in bucket_run["before"].items():
        new = {p for p in bucket_run["after"][root] - before
               if not os.path.realpath(p).startswith(temp + os.sep)}
        assert not new, "the ram:// run wrote to the local disk: %s" % sorted(new)[:5]


def write_tiny_tfrecord(path, seq_length):
    """One pre-training record of seq_length zeros (enough for the start-up checks)."""
    import tensorflow.compat.v1 as tf
    feature = {name: tf.train.Feature(int64_list=tf.train.Int64List(value=[0] * seq_length))
               for name in ("input_ids", "input_mask", "segment_ids")}
    with tf.io.TFRecordWriter(path) as writer:
        writer.write(tf.train.Example(features=tf.train.Features(
            feature=feature)).SerializeToString())


def test_bad_bucket_paths_fail_before_training_naming_the_path():
    bad = "ram://cloud-paths-bad/D"
    fs.rmtree("ram://cloud-paths-bad")
    status, log = captured(lambda: run_pretraining.main([
        "--data-dir", bad, "--model-name", "m", "--hparams", json.dumps(PRETRAIN)]))
    assert status == 2
    assert log.strip().splitlines()[-1] == "error: vocab file not found: %s/vocab.txt" % bad
    status, log = captured(lambda: run_finetuning.main([
        "--data-dir", bad, "--model-name", "m", "--hparams", json.dumps(FINETUNE)]))
    # No model and no vocab: fine-tuning names the model first (its vocab comes with it).
    assert status == 2 and "error: no pre-trained checkpoint in %s/models/m" % bad in log

    # A model dir that cannot be created: a file stands where D/models/ should be.
    fs.copy(str(SAMPLE_VOCAB), bad + "/vocab.txt")
    fs.makedirs(bad + "/pretrain_tfrecords")
    write_tiny_tfrecord(bad + "/pretrain_tfrecords/pretrain_data.tfrecord-0-of-1", 32)
    fs.write_text(bad + "/models", "a file where the models directory should be")
    status, log = captured(lambda: run_pretraining.main([
        "--data-dir", bad, "--model-name", "m", "--hparams", json.dumps(PRETRAIN)]))
    assert status == 2
    assert log.strip().splitlines() == [
        "error: cannot write to the model dir %s/models/m: it cannot be created "
        "(%s/models is a file)" % (bad, bad)]
    assert not fs.glob(bad + "/models/m/*")
    fs.rmtree("ram://cloud-paths-bad")


def test_fs_layer_on_ram_corrects_prefixes_and_writes_atomically():
    root = "ram://cloud-paths-fs"
    fs.rmtree(root)
    fs.makedirs(root + "/m")
    fs.write_bytes(root + "/m/model.ckpt-3.index", b"x")
    # ram:// itself calls a name that begins another file's name existing and a directory
    import tensorflow as tf
    assert tf.io.gfile.isdir(root + "/m/model.ckpt-3")
    assert not fs.exists(root + "/m/model.ckpt-3") and not fs.isdir(root + "/m/model.ckpt-3")
    assert fs.isdir(root + "/m") and fs.isfile(root + "/m/model.ckpt-3.index")

    util_io.atomic_write_json(root + "/r/a.json", {"v": 1})

    def fail(tmp):
        fs.write_text(tmp, "half")
        raise RuntimeError("killed")
    with pytest.raises(RuntimeError):
        util_io.atomic_write(root + "/r/a.json", fail)
    assert fs.listdir(root + "/r") == ["a.json"]  # the old file, no temporary left
    assert json.loads(fs.read_text(root + "/r/a.json")) == {"v": 1}
    fs.append_text(root + "/r/log.txt", "1\n")
    fs.append_text(root + "/r/log.txt", "2\n")
    assert fs.read_text(root + "/r/log.txt") == "1\n2\n"
    assert fs.same_bytes(root + "/r/a.json", root + "/r/a.json")
    assert not fs.same_bytes(root + "/r/a.json", root + "/r/log.txt")
    assert [fs.dirname(p) for p in ("gs://b", "gs://b/x", "ram://b/x/y")] == \
        ["gs://b", "gs://b", "ram://b/x"]
    assert fs.is_local("rel/x") and fs.is_local("/abs") and not fs.is_local("gs://b/x")
    fs.rmtree(root)
