"""LERT: jieba POS/NER labels in the builder, the linguistic heads and their schedule, and
fine-tuning our BERT-named (bert/, cls/predictions) checkpoints with model_type bert."""

import io
import json
import os
import re
import shutil
from contextlib import redirect_stdout

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

import build_pretraining_dataset as bpd
import configure_pretraining
import run_pretraining
from corpus import segmentation
from model import linguistic_labels
from pretrain import objective
from tests.conftest import SAMPLE_VOCAB, shared_file
from tests.test_finetuning import TINY as FINETUNE_TINY
from tests.test_finetuning import finetune, make_task_data

PROGRESS = re.compile(r"^step (\d+)/\d+ \| loss [\d.]+ \| gen ([\d.]+) \| pos ([\d.]+) \| "
                      r"ner ([\d.]+) \| dep ([\d.]+)")


def tnews_titles(n):
    path = shared_file("data", "tnews", "train.tsv")
    with open(path, encoding="utf-8") as f:
        return [line.split("\t")[0].strip() for _, line in zip(range(n), f)]


def test_pos_and_ner_mapping_cover_every_jieba_tag():
    import jieba
    import jieba.posseg
    emitted = {tag for title in tnews_titles(2000)
               for _, tag in segmentation.jieba_words(title, with_pos=True)}
    assert len(emitted) > 30
    # Also every tag jieba can emit: its dictionary's and its HMM's (unknown words).
    with open(os.path.join(os.path.dirname(jieba.__file__), "dict.txt"), encoding="utf-8") as f:
        emitted |= {line.split()[2] for line in f if len(line.split()) > 2}
    emitted |= {tag for states in jieba.posseg.char_state_tab_P.values() for _, tag in states}
    assert sorted(emitted - set(segmentation.JIEBA_TO_LTP_POS)) == []
    assert set(segmentation.JIEBA_TO_LTP_POS.values()) <= set(linguistic_labels.POS_LABELS)
    # The traps: jieba nt is an organisation, LTP nt a time noun.
    assert segmentation.JIEBA_TO_LTP_POS["nt"] == "ni"
    assert segmentation.JIEBA_TO_LTP_POS["t"] == "nt"
    assert segmentation.JIEBA_TO_LTP_POS["nr"] == "nh"
    assert len(linguistic_labels.POS_LABELS) == 28 and len(linguistic_labels.NER_LABELS) == 13
    assert len(linguistic_labels.DEP_LABELS) == 14
    assert segmentation.bies("Nh", 1) == ["S-Nh"]
    assert segmentation.bies("Ni", 4) == ["B-Ni", "I-Ni", "I-Ni", "E-Ni"]


def assert_bies(labels):
    """A NER label sequence is well formed: S-X alone, B-X (I-X)* E-X."""
    open_type = None
    for label in labels:
        if open_type is not None:
            assert label in ("I-" + open_type, "E-" + open_type), labels
            open_type = None if label.startswith("E-") else open_type
        elif label.startswith("B-"):
            open_type = label[2:]
        else:
            assert label == "O" or label.startswith("S-"), labels
    assert open_type is None, labels


@pytest.fixture(scope="module")
def lert_data(tmp_path_factory):
    """tfrecords (seq 64) from 600 TNEWS titles with jieba word starts and POS/NER labels,
    plus a second build whose first line carries DEP annotations."""
    titles = tnews_titles(600)
    root = tmp_path_factory.mktemp("lert")
    (root / "corpus").mkdir()
    lines = [t for i, t in enumerate(titles) for t in ([t, ""] if i % 5 == 4 else [t])]
    (root / "corpus" / "news.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (root / "vocab.txt").write_bytes(SAMPLE_VOCAB.read_bytes())
    common = ["--corpus-dir", str(root / "corpus"), "--vocab-file", str(SAMPLE_VOCAB),
              "--max-seq-length", "64", "--segmenter", "jieba", "--linguistic-labels"]
    with redirect_stdout(io.StringIO()):
        assert bpd.main(common + ["--output-dir", str(root / "pretrain_tfrecords")]) == 0
    return root, lines, common


def read_examples(directory):
    out = []
    for path in sorted(directory.glob("pretrain_data.tfrecord*")):
        for record in tf.io.tf_record_iterator(str(path)):
            feature = tf.train.Example.FromString(record).features.feature
            out.append({k: list(v.int64_list.value) for k, v in feature.items()})
    return out


def test_builder_stores_pos_ner_labels_in_bies_form(lert_data):
    root, _, _ = lert_data
    examples = read_examples(root / "pretrain_tfrecords")
    entities = 0
    for e in examples:
        n = sum(e["input_mask"])
        assert e["pos_ids"][0] == e["ner_ids"][0] == 0  # [CLS] has no label
        assert all(e[k][n - 1] == 0 for k in ("pos_ids", "ner_ids", "dep_ids"))
        assert all(p > 0 for p, m in zip(e["pos_ids"][1:n - 1], e["input_ids"][1:n - 1])
                   if m != 102)
        assert not any(e["dep_ids"])  # no --dep-file: no DEP labels
        labels = [linguistic_labels.NER_LABELS[i - 1] for i in e["ner_ids"][:n] if i]
        if n < 64:  # a full example may have been truncated inside an entity
            assert_bies(labels)
        entities += sum(label[0] in "SB" for label in labels)
    assert entities > 50


def test_dep_file_labels_and_errors(lert_data, tmp_path, capsys):
    root, lines, common = lert_data
    # jieba's words of the first title, each tagged ATT except the last (HED).
    words = [w for w, _ in segmentation.jieba_words(lines[0]) if w.strip()]
    deps = ["%s/ATT" % w for w in words[:-1]] + ["%s/HED" % words[-1]]
    dep_lines = [" ".join(deps)] + [" ".join("%s/ATT" % c for c in line if not c.isspace())
                                    for line in lines[1:]]
    (tmp_path / "news.dep").write_text("\n".join(dep_lines) + "\n", encoding="utf-8")
    with redirect_stdout(io.StringIO()):
        status = bpd.main(common + ["--output-dir", str(tmp_path / "out"), "--dep-file",
                                    str(tmp_path / "news.dep")])
    assert status == 0
    first = read_examples(tmp_path / "out")
    assert any(any(e["dep_ids"]) for e in first)
    hed = linguistic_labels.DEP_LABELS.index("HED") + 1
    assert any(hed in e["dep_ids"] for e in first)
    dep_lines[2] = dep_lines[2].replace("/ATT", "/XYZ", 1)
    (tmp_path / "news.dep").write_text("\n".join(dep_lines) + "\n", encoding="utf-8")
    status = bpd.main(common + ["--output-dir", str(tmp_path / "out2"), "--dep-file",
                                str(tmp_path / "news.dep")])
    assert status == 2
    assert "news.dep:3: unknown DEP label 'XYZ'" in capsys.readouterr().err


def test_lert_weights_follow_the_schedule():
    config = configure_pretraining.PretrainingConfig(
        "m", "/nonexistent", model_size="tiny", max_seq_length=16, electra_objective=False,
        whole_word_masking=True, lert_objective=True, num_train_steps=600, lert_dep_steps=100)
    assert config.lert_schedule_steps() == (100, 200, 100)
    with tf.Graph().as_default():
        features = {k: tf.zeros([2, 16], tf.int32) for k in
                    ("input_ids", "input_mask", "segment_ids", "word_starts", "pos_ids",
                     "ner_ids", "dep_ids")}
        model = objective.PretrainingModel(config, features, True,
                                           {"[MASK]": 103, "[CLS]": 101, "[SEP]": 102})
        step = tf.train.get_or_create_global_step()
        weights = [out.weight for out in model.linguistic_outputs]
        names = [v.op.name for v in tf.global_variables()]
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            got = {}
            for value in (0, 50, 100, 150, 300):
                sess.run(step.assign(value))
                got[value] = sess.run(weights)
    np.testing.assert_allclose(got[0], [0, 0, 0])
    np.testing.assert_allclose(got[50], [0.5, 0.25, 0.5])
    np.testing.assert_allclose(got[150], [1, 0.75, 1])
    np.testing.assert_allclose(got[300], [1, 1, 1])
    for head in ("pos", "ner", "dep"):
        assert "cls/predictions/output_%s_layer/kernel" % head in names


@pytest.fixture(scope="module")
def lert_run(lert_data):
    root, _, _ = lert_data
    out = io.StringIO()
    with redirect_stdout(out):
        status = run_pretraining.main([
            "--data-dir", str(root), "--model-name", "tiny", "--hparams", json.dumps({
                "model_size": "tiny", "max_seq_length": 64, "electra_objective": False,
                "whole_word_masking": True, "lert_objective": True, "ngram_max": 2,
                "train_batch_size": 16, "num_train_steps": 60, "log_every_steps": 5,
                "learning_rate": 2e-3, "num_warmup_steps": 5, "seed": 1,
                # T = 6 steps each: the heads train at full weight for most of the run.
                "lert_pos_steps": 6, "lert_ner_steps": 6, "lert_dep_steps": 6})])
    assert status == 0, out.getvalue()
    rows = [tuple(float(x) for x in m.groups())
            for m in map(PROGRESS.match, out.getvalue().splitlines()) if m]
    return root, rows


def test_tiny_lert_pretraining_lowers_mlm_pos_and_ner_losses(lert_run):
    root, rows = lert_run
    assert rows[0][0] == 1 and rows[-1][0] == 60
    start = rows[0]
    end = np.mean([r for r in rows[-4:]], axis=0)  # batches are small: average the last
    for column, name in ((1, "mlm"), (2, "pos"), (3, "ner")):
        assert end[column] < 0.85 * start[column], (name, start, end)
    # No DEP annotations: the DEP head adds exactly nothing.
    assert all(r[4] == 0.0 for r in rows)
    saved = dict(tf.train.list_variables(str(root / "models" / "tiny")))
    assert "cls/predictions/output_ner_layer/kernel" in saved
    assert not any(n.startswith(("electra/", "generator")) for n in saved)
    generator = json.loads((root / "models" / "tiny" / "generator.json").read_text())
    assert generator["model_type"] == "bert"


def test_our_bert_checkpoint_finetunes_as_model_type_bert(lert_run, capsys):
    root, _ = lert_run
    shared_file("data", "chnsenticorp", "train.tsv")
    make_task_data("chnsenticorp", root / "finetuning_data" / "chnsenticorp")
    saved = tf.train.list_variables(str(root / "models" / "tiny"))
    n_encoder = len([n for n, _ in saved if n.startswith("bert/") and "adam" not in n])
    status, output = finetune(root, dict(FINETUNE_TINY, task_names=["chnsenticorp"],
                                         max_seq_length=64, model_type="bert"))
    assert status == 0, output
    # Every bert/embeddings and bert/encoder variable restored; only pooler and head fresh.
    assert "initialised %d variables" % n_encoder in output
    assert "WARNING" not in output
    assert "the checkpoint has no bert/pooler" in output
    shutil.rmtree(root / "models" / "tiny" / "finetuning_models", ignore_errors=True)
