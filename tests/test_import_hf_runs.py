"""Imported Hugging Face models in the runners: an ELECTRA pair continues pre-training from
its imported weights with no further step, and the same model dir fine-tunes on
ChnSentiCorp (../shared/data); an imported BERT fine-tunes as model_type bert."""

import io
import json
import random
import shutil
from contextlib import redirect_stdout

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

import build_pretraining_dataset
import run_finetuning
import run_pretraining
from scripts import import_hf
from tests.conftest import SHARED, shared_file
from tests.test_import_hf import FIXTURES

SEQ = 32  # the fixtures' max_position_embeddings is 40


def run(main, argv):
    out = io.StringIO()
    with redirect_stdout(out):
        status = main(argv)
    assert status in (0, None), out.getvalue()
    return out.getvalue()


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """D: the fixtures' vocab and tfrecords of text in it (random sentences of its
    characters), ChnSentiCorp's first 64 training and 32 dev reviews."""
    data = tmp_path_factory.mktemp("imported")
    vocab = FIXTURES / "electra-discriminator" / "safetensors" / "vocab.txt"
    shutil.copy(str(vocab), str(data / "vocab.txt"))
    chars = [t for t in vocab.read_text(encoding="utf-8").split("\n")
             if len(t) == 1]
    rng = random.Random(3)
    corpus = data / "corpus"
    corpus.mkdir()
    docs = ["\n".join("".join(rng.choice(chars) for _ in range(rng.randint(6, 14)))
                      for _ in range(8)) for _ in range(40)]
    (corpus / "text.txt").write_text("\n\n".join(docs) + "\n", encoding="utf-8")
    run(build_pretraining_dataset.main, [
        "--corpus-dir", str(corpus), "--vocab-file", str(vocab), "--output-dir",
        str(data / "pretrain_tfrecords"), "--max-seq-length", str(SEQ), "--num-out-files", "1"])
    shared_file("data", "chnsenticorp", "train.tsv")
    task = data / "finetuning_data" / "chnsenticorp"
    task.mkdir(parents=True)
    for split, count in (("train", 64), ("dev", 32)):
        lines = (SHARED / "data" / "chnsenticorp" / ("%s.tsv" % split)).read_text(
            encoding="utf-8").splitlines()
        (task / ("%s.tsv" % split)).write_text("\n".join(lines[:count + 1]) + "\n",
                                               encoding="utf-8")
    return data


def checkpoint_arrays(prefix):
    reader = tf.train.load_checkpoint(str(prefix))
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()}


FINETUNE = {"task_names": ["chnsenticorp"], "max_seq_length": SEQ, "train_batch_size": 8,
            "eval_batch_size": 16, "num_train_epochs": 1.0, "num_trials": 1,
            "learning_rate": 1e-3, "save_graph_def": False}


def test_imported_pair_continues_pretraining_then_fine_tunes(data_dir):
    model_dir = data_dir / "models" / "pair"
    run(import_hf.main, [str(FIXTURES / "electra-discriminator" / "bin-legacy"), "--out",
                         str(model_dir), "--generator",
                         str(FIXTURES / "electra-generator" / "bin-legacy")])
    imported = checkpoint_arrays(model_dir / "electra_model")
    shape = json.loads((model_dir / "hf_import.json").read_text())["pretrain_hparams"]
    hparams = dict(shape, max_seq_length=SEQ, train_batch_size=4, num_train_steps=3,
                   num_warmup_steps=1, learning_rate=1e-4, save_checkpoints_steps=3,
                   save_graph_def=False)
    output = run(run_pretraining.main, ["--data-dir", str(data_dir), "--model-name", "pair",
                                        "--hparams", json.dumps(hparams)])
    assert "starting from the weights in the model dir: %s" % (model_dir / "electra_model") \
        in output
    assert "warm start from %s: %d variables restored, 0 not found" % (
        model_dir / "electra_model", len(imported)) in output
    trained = checkpoint_arrays(model_dir / "model.ckpt-3")
    # Every imported weight moved by a few Adam steps of lr <= 1e-4 only: the run started
    # from them (a fresh initialisation would differ by the weights' own size, ~0.5).
    for name, value in imported.items():
        change = float(np.max(np.abs(trained[name] - value)))
        assert change < 1e-3, (name, change)
    assert sum(float(np.max(np.abs(trained[n] - v))) for n, v in imported.items()) > 0
    # The same model dir fine-tunes, from the newest checkpoint of the continued run.
    output = run(run_finetuning.main, ["--data-dir", str(data_dir), "--model-name", "pair",
                                       "--hparams", json.dumps(FINETUNE)])
    disc_variables = [n for n in imported if n.startswith("electra/")]
    assert ("initialised %d variables from %s; 2 trained from scratch: "
            "task_specific/chnsenticorp/dense/kernel" % (len(disc_variables),
                                                          model_dir / "model.ckpt-3")) in output
    results = json.loads((model_dir / "results" / "chnsenticorp_results.json").read_text())
    assert results  # written: the scores themselves are a tiny random model's


def test_imported_bert_fine_tunes_as_model_type_bert(data_dir):
    model_dir = data_dir / "models" / "bert"
    run(import_hf.main, [str(FIXTURES / "bert-pretraining" / "safetensors"), "--out",
                         str(model_dir)])
    output = run(run_finetuning.main, ["--data-dir", str(data_dir), "--model-name", "bert",
                                       "--hparams", json.dumps(FINETUNE)])
    assert 'model_type "bert"' in output  # taken from pretrain_hparams.json
    imported = checkpoint_arrays(model_dir / "bert_model.ckpt")
    encoder = [n for n in imported if n.startswith("bert/")]
    assert ("initialised %d variables from %s; 2 trained from scratch"
            % (len(encoder), model_dir / "bert_model.ckpt")) in output
    assert "WARNING" not in output
