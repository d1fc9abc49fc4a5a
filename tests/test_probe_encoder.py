"""scripts/probe_encoder.py: linear probes, collapse measures and embedding neighbours of
frozen encoders (random weights and checkpoints), and its errors for bad inputs."""

import json
import random

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

from finetune import model_info
from model import modeling
from model.configs import discriminator_config
from scripts import probe_encoder
from tests.conftest import SAMPLE_VOCAB
from util.errors import InputError

HIDDEN = 32
SHAPE = {"model_size": "tiny", "embedding_size": HIDDEN,
         "model_hparam_overrides": {"hidden_size": HIDDEN, "intermediate_size": 64}}
FILLER = "今天我们他们这个那个东西朋友老师学生电影酒店房间服务价格"


def write_tsv(path, rows, header="label\ttext_a"):
    path.write_text(header + "\n" + "".join("\t".join(r) + "\n" for r in rows),
                    encoding="utf-8")
    return path


def sentiment_rows(n, seed):
    """Texts of filler characters with one 好 (label 1) or 差 (label 0) somewhere."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        chars = [rng.choice(FILLER) for _ in range(rng.randint(4, 12))]
        chars.insert(rng.randint(0, len(chars)), "好" if i % 2 else "差")
        rows.append((str(i % 2), "".join(chars)))
    return rows


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    directory = tmp_path_factory.mktemp("probe_data")
    return {"train": write_tsv(directory / "train.tsv", sentiment_rows(60, 1)),
            "dev": write_tsv(directory / "dev.tsv", sentiment_rows(40, 2))}


def argv(data, *extra, hparams=None):
    return ["--hparams", json.dumps(hparams or SHAPE), "--vocab-file", str(SAMPLE_VOCAB),
            "--train-file", str(data["train"]), "--dev-file", str(data["dev"]),
            "--max-seq-length", "32", "--neighbours", "好"] + list(extra)


def run_probe(*args):
    return probe_encoder.probe(probe_encoder.parse_args(list(args)), log=lambda line: None)


def save_encoder(prefix, hparams, scope, edit=None, drop=()):
    """Saves freshly initialised encoder variables under scope, as a pre-training
    checkpoint has them (plus a generator variable, an Adam slot and global_step).

    edit(values, vocab) changes {name: array} before saving; drop: names left out.
    """
    config = probe_encoder.load_config(json.dumps(hparams), str(SAMPLE_VOCAB), 32)
    bert_config = discriminator_config(config)
    vocab = model_info.load_tokenizer(config).vocab
    with tf.Graph().as_default():
        tf.set_random_seed(123)
        modeling.BertModel(bert_config, False, tf.zeros([1, 8], tf.int32), scope=scope)
        with tf.Session() as session:
            session.run(tf.global_variables_initializer())
            values = {v.op.name: session.run(v) for v in tf.global_variables()}
    assert any(name.startswith(scope + "/encoder/layer_1/") for name in values)
    if edit:
        edit(values, vocab)
    values["generator/encoder/layer_0/output/dense/bias"] = np.ones([16], np.float32)
    values[scope + "/encoder/layer_0/output/dense/bias/adam_m"] = np.ones([HIDDEN], np.float32)
    values["global_step"] = np.int64(5)
    with tf.Graph().as_default():
        variables = {name: tf.Variable(value, name="v%d" % i)
                     for i, (name, value) in enumerate(sorted(values.items()))
                     if name not in drop}
        with tf.Session() as session:
            session.run(tf.global_variables_initializer())
            tf.train.Saver(variables).save(session, str(prefix), write_meta_graph=False)
    return str(prefix)


def collapse_top_layer_and_twin_tokens(scope):
    """好 gets 坏's word embedding; the last layer's LayerNorm maps every token to beta."""
    def edit(values, vocab):
        table = values[scope + "/embeddings/word_embeddings"]
        table[vocab["好"]] = table[vocab["坏"]]
        norm = scope + "/encoder/layer_1/output/LayerNorm/"
        values[norm + "gamma"] = np.zeros([HIDDEN], np.float32)
        values[norm + "beta"] = np.random.RandomState(0).normal(size=HIDDEN).astype(np.float32)
    return edit


# ----------------------------------------------------------------------------- tests

def test_tfidf_baseline_finds_the_deciding_character(data):
    train = probe_encoder.read_examples(str(data["train"]), 1000)
    dev = probe_encoder.read_examples(str(data["dev"]), 1000)
    assert len(train[0]) == 60 and len(dev[0]) == 40 and set(train[1]) == {"0", "1"}
    assert probe_encoder.tfidf_baseline(train, dev) >= 0.95
    # Shuffled training labels leave nothing to learn: about chance.
    shuffled = (train[0], random.Random(3).sample(train[1], len(train[1])))
    assert probe_encoder.tfidf_baseline(shuffled, dev) < 0.8


def test_random_weights_give_one_row_per_layer(data, tmp_path, capsys):
    out = tmp_path / "probe.json"
    status = probe_encoder.main(argv(data, "--random", "--num-train", "50",
                                     "--json-out", str(out)))
    assert status == 0
    report = json.loads(out.read_text(encoding="utf-8"))
    assert report["settings"]["num_train"] == 50 and report["settings"]["num_dev"] == 40
    assert report["tfidf_char_accuracy"] >= 0.9
    (model,) = report["models"]
    assert model["checkpoint"] is None
    assert [row["layer"] for row in model["layers"]] == ["embeddings", "layer_0", "layer_1"]
    for row in model["layers"]:
        assert 0.0 <= row["mean_acc"] <= 1.0 and 0.0 <= row["cls_acc"] <= 1.0
        assert -1.0 <= row["tok_cos"] <= 1.0 and -1.0 <= row["cls_cos"] <= 1.0 + 1e-9
        assert row["tok_cos"] < 0.99  # random weights do not make tokens one vector
    neighbours = model["neighbours"]["好"]
    assert len(neighbours) == 8 and "好" not in [t for t, _ in neighbours]
    assert [c for _, c in neighbours] == sorted([c for _, c in neighbours], reverse=True)
    table = capsys.readouterr().out
    assert "mean_acc" in table and table.count("random (seed 1)  layer_") == 2


def test_layer_features_mean_cls_and_token_cosine():
    # Sentence 0: tokens e1, e1, e2 (pairs: 1, 0, 0 -> 1/3); sentence 1: e1, -e1, padding.
    h = np.array([[[1, 0], [1, 0], [0, 1]], [[2, 0], [-1, 0], [5, 5]]], np.float32)
    mask = np.array([[1, 1, 1], [1, 1, 0]], np.float32)
    with tf.Graph().as_default(), tf.Session() as session:
        out = session.run(probe_encoder.layer_features(tf.constant(h), tf.constant(mask)))
    np.testing.assert_allclose(out["token_cos"], [1 / 3, -1.0], atol=1e-6)
    np.testing.assert_allclose(out["mean"], [[2 / 3, 1 / 3], [0.5, 0]], atol=1e-6)
    np.testing.assert_allclose(out["cls"], [[1, 0], [2, 0]])
    assert probe_encoder.mean_pairwise_cosine(np.array([[1, 0], [3, 0], [0, 2]])) == \
        pytest.approx(1 / 3)


@pytest.mark.parametrize("model_type,scope", [("electra", "electra"), ("bert", "bert")])
def test_checkpoint_encoder_is_restored(data, tmp_path, model_type, scope):
    hparams = dict(SHAPE, model_type=model_type)
    save_encoder(tmp_path / "model.ckpt-5", hparams, scope,
                 edit=collapse_top_layer_and_twin_tokens(scope))
    report = run_probe(*argv(data, "--checkpoint", str(tmp_path), "--random",
                             hparams=hparams))
    random_model, model = report["models"]
    assert model["checkpoint"] == str(tmp_path / "model.ckpt-5")
    token, cosine = model["neighbours"]["好"][0]
    assert token == "坏" and cosine == pytest.approx(1.0, abs=1e-4)
    assert random_model["neighbours"]["好"][0][1] < 0.9
    embeddings, layer_0, layer_1 = model["layers"]
    assert layer_1["tok_cos"] == pytest.approx(1.0, abs=1e-4)
    assert layer_1["cls_cos"] == pytest.approx(1.0, abs=1e-4)
    assert layer_0["tok_cos"] < 0.99
    assert random_model["layers"][2]["tok_cos"] < 0.99


def test_missing_encoder_variable_names_checkpoint_and_variable(data, tmp_path, capsys):
    missing = "electra/encoder/layer_1/output/dense/bias"
    prefix = save_encoder(tmp_path / "model.ckpt-5", SHAPE, "electra", drop=[missing])
    with pytest.raises(InputError) as error:
        run_probe(*argv(data, "--checkpoint", prefix))
    assert prefix in str(error.value) and missing in str(error.value)
    assert probe_encoder.main(argv(data, "--checkpoint", str(tmp_path / "nothing"))) == 2
    assert "nothing" in capsys.readouterr().err


def test_bad_tsv_and_bad_tokens_name_the_place(data, tmp_path, capsys):
    no_label = write_tsv(tmp_path / "no_label.tsv", [("x", "好")], header="qid\ttext_a")
    bad_line = write_tsv(tmp_path / "bad_line.tsv", [("1", "好"), ("0", "差", "extra")])
    one_label = write_tsv(tmp_path / "one_label.tsv", [("1", "好"), ("1", "好的")])
    cases = [(["--train-file", str(no_label)], "%s:1: missing column(s) label" % no_label),
             (["--dev-file", str(bad_line)], "%s:3: 3 tab-separated columns" % bad_line),
             (["--train-file", str(one_label)], "%s: the probes need at least two" % one_label),
             (["--neighbours", "好,notatoken"], "'notatoken' is not a token of %s"
              % SAMPLE_VOCAB),
             (["--hparams", json.dumps(dict(SHAPE, vocab_size=30522))],
              "%s has 21128 tokens but vocab_size is 30522: set \"vocab_size\": 21128"
              % SAMPLE_VOCAB)]
    for extra, message in cases:
        with pytest.raises(InputError) as error:
            run_probe(*(argv(data, "--random") + extra))
        assert message in str(error.value)
    assert probe_encoder.main(argv(data, "--random", "--train-file", str(no_label))) == 2
    assert str(no_label) in capsys.readouterr().err
