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
from tests.numpy_reference import encoder_layers, read_vocab
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
    Returns (prefix, {name: array} as saved).
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
    return str(prefix), values


def collapse_top_layer_and_twin_tokens(scope):
    """好 gets 坏's word embedding; the last layer's LayerNorm maps every token to beta."""
    def edit(values, vocab):
        table = values[scope + "/embeddings/word_embeddings"]
        table[vocab["好"]] = table[vocab["坏"]]
        norm = scope + "/encoder/layer_1/output/LayerNorm/"
        values[norm + "gamma"] = np.zeros([HIDDEN], np.float32)
        values[norm + "beta"] = np.random.RandomState(0).normal(size=HIDDEN).astype(np.float32)
    return edit


# ------------------------------------------------ the probe's numbers, written out in NumPy

def mean_off_diagonal_cosine(vectors):
    """Mean cosine over the pairs i != j of the rows of vectors [N, H] (full N x N matrix)."""
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    cosine = unit @ unit.T
    return (cosine.sum() - np.trace(cosine)) / (len(cosine) * (len(cosine) - 1))


def probe_accuracy(x_train, y_train, x_dev, y_dev):
    """Dev accuracy of the probe the docs name: logistic regression on train-standardised
    features (scikit-learn's, fitted here on the NumPy features)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler
    scaler = StandardScaler().fit(x_train)
    model = LogisticRegression(max_iter=2000).fit(scaler.transform(x_train), y_train)
    return float(np.mean(model.predict(scaler.transform(x_dev)) == np.array(y_dev)))


def numpy_rows(values, scope, bert_config, data, num_train, accuracies=True):
    """The probe's rows (embeddings, layer_0, ...) recomputed from the variables: each TSV
    text is [CLS] + its characters + [SEP] (the texts are characters of the vocab), features
    from tests/numpy_reference.py's encoder, cosines from full matrices."""
    vocab = read_vocab(SAMPLE_VOCAB)

    def split(path, limit):
        rows = [line.split("\t") for line in
                path.read_text(encoding="utf-8").splitlines()[1:limit + 1]]
        layers = [encoder_layers(values, scope, bert_config, [vocab["[CLS]"]]
                               + [vocab[c] for c in text] + [vocab["[SEP]"]])
                  for _, text in rows]
        return [label for label, _ in rows], layers
    y_train, train = split(data["train"], num_train)
    y_dev, dev = split(data["dev"], 10 ** 6)
    rows = []
    for i in range(bert_config["num_hidden_layers"] + 1):
        row = {"tok_cos": float(np.mean([mean_off_diagonal_cosine(h[i]) for h in dev])),
               "cls_cos": mean_off_diagonal_cosine(np.array([h[i][0] for h in dev])),
               "majority": max(y_dev.count(y) for y in set(y_dev)) / len(y_dev),
               "num_dev": len(y_dev)}
        if accuracies:
            for key, feature in (("mean_acc", lambda h: h.mean(0)), ("cls_acc", lambda h: h[0])):
                x_train, x_dev = (np.array([feature(h[i]) for h in s]) for s in (train, dev))
                row[key] = probe_accuracy(x_train, y_train, x_dev, y_dev)
        rows.append(row)
    return rows


def numpy_neighbours(values, scope, token):
    """The 8 tokens of the word-embedding table nearest (cosine) to token, with cosines."""
    vocab = read_vocab(SAMPLE_VOCAB)
    tokens = sorted(vocab, key=vocab.get)
    table = np.asarray(values[scope + "/embeddings/word_embeddings"], np.float64)
    unit = table / np.linalg.norm(table, axis=1, keepdims=True)
    cosine = unit @ unit[vocab[token]]
    order = [i for i in np.argsort(-cosine, kind="stable") if i != vocab[token]][:8]
    return [(tokens[i], cosine[i]) for i in order]


def check_against_numpy(model, values, scope, bert_config, data, num_train, accuracies=True):
    """Every number of a probed model's rows and its 好 neighbours as NumPy gets them from
    the same variables. An accuracy may differ by one dev text: float32 features against
    float64 ones can move a text across the regression's boundary. A collapsed layer's
    accuracies are not compared: its features are one vector up to rounding, which the
    standardisation scales up, so they fit rounding noise (float32's differs from NumPy's).
    accuracies=False: the cosines and neighbours only (the regressions are the slow part)."""
    expected = numpy_rows(values, scope, bert_config, data, num_train, accuracies)
    assert len(model["layers"]) == len(expected)
    for row, want in zip(model["layers"], expected):
        for key in ("tok_cos", "cls_cos"):
            assert row[key] == pytest.approx(want[key], abs=1e-5), (row, want)
        if not accuracies or want["tok_cos"] > 1.0 - 1e-9:
            continue
        for key in ("mean_acc", "cls_acc"):
            assert abs(row[key] - want[key]) <= 1.0 / want["num_dev"] + 1e-9, (row, want)
    neighbours = numpy_neighbours(values, scope, "好")
    assert [t for t, _ in model["neighbours"]["好"]] == [t for t, _ in neighbours]
    assert [c for _, c in model["neighbours"]["好"]] == pytest.approx(
        [c for _, c in neighbours], abs=1e-4)
    return expected


@pytest.fixture
def probed_variables(monkeypatch):
    """[{name: array}, ...]: the variables of each model the probe embeds with, in order,
    read from its session (random weights are visible nowhere else)."""
    seen = []
    embed = probe_encoder.embed

    def spy(session, *args, **kwargs):
        variables = tf.global_variables()
        values = dict(zip([v.op.name for v in variables], session.run(variables)))
        if not seen or session is not seen[-1][0]:  # embed runs twice: train, dev
            seen.append((session, values))
        return embed(session, *args, **kwargs)
    monkeypatch.setattr(probe_encoder, "embed", spy)
    return seen


# ----------------------------------------------------------------------------- tests

def test_tfidf_baseline_finds_the_deciding_character(data):
    train = probe_encoder.read_examples(str(data["train"]), 1000)
    dev = probe_encoder.read_examples(str(data["dev"]), 1000)
    assert len(train[0]) == 60 and len(dev[0]) == 40 and set(train[1]) == {"0", "1"}
    assert probe_encoder.tfidf_baseline(train, dev) >= 0.95
    # Shuffled training labels leave nothing to learn: about chance.
    shuffled = (train[0], random.Random(3).sample(train[1], len(train[1])))
    assert probe_encoder.tfidf_baseline(shuffled, dev) < 0.8


def test_random_weights_give_one_row_per_layer(data, tmp_path, capsys, probed_variables):
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
    ((_, values),) = probed_variables
    expected = check_against_numpy(model, values, "electra", report["settings"]["bert_config"],
                                   data, num_train=50)
    # Even random weights carry the deciding character (好 or 差) into the mean vector:
    # each layer's probe beats the majority class of dev by a margin ...
    for row, want in zip(model["layers"], expected):
        assert row["mean_acc"] >= want["majority"] + 0.25, (row, want)
    # ... while the embedding layer's [CLS] vector is the same for every text.
    assert expected[0]["cls_cos"] == pytest.approx(1.0)
    assert model["layers"][0]["cls_acc"] == pytest.approx(expected[0]["majority"])
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
def test_checkpoint_encoder_is_restored(data, tmp_path, model_type, scope, probed_variables):
    hparams = dict(SHAPE, model_type=model_type)
    _, saved = save_encoder(tmp_path / "model.ckpt-5", hparams, scope,
                            edit=collapse_top_layer_and_twin_tokens(scope))
    report = run_probe(*argv(data, "--checkpoint", str(tmp_path), "--random",
                             hparams=hparams))
    random_model, model = report["models"]
    assert model["checkpoint"] == str(tmp_path / "model.ckpt-5")
    token, cosine = model["neighbours"]["好"][0]
    assert token == "坏" and cosine == pytest.approx(1.0, abs=1e-4)
    assert random_model["neighbours"]["好"][0][1] < 0.9
    layer_1 = model["layers"][2]
    assert layer_1["tok_cos"] == pytest.approx(1.0, abs=1e-4)
    assert layer_1["cls_cos"] == pytest.approx(1.0, abs=1e-4)
    # The checkpoint's numbers are NumPy's from the saved values (all of them restored;
    # only layer_1 collapsed), the random model's from its own initial values.
    bert_config = report["settings"]["bert_config"]
    check_against_numpy(model, saved, scope, bert_config, data, num_train=1000)
    (_, random_values), _ = probed_variables
    check_against_numpy(random_model, random_values, scope, bert_config, data, num_train=1000,
                        accuracies=False)


def test_missing_encoder_variable_names_checkpoint_and_variable(data, tmp_path, capsys):
    missing = "electra/encoder/layer_1/output/dense/bias"
    prefix, _ = save_encoder(tmp_path / "model.ckpt-5", SHAPE, "electra", drop=[missing])
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
