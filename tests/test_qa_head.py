"""The official joint QA head (finetune/qa_head.py) and its beam decoding, on hand-built
encoder outputs; then CMRC 2018 (real questions) fine-tuned end to end with it by a params
file holding every official key, exported and served. (tests/test_finetuning.py fine-tunes
cmrc2018 and drcd with the default head too; test_predict.py the independent head.)"""

import io
import json
import math
import shutil
from contextlib import redirect_stdout
from types import SimpleNamespace

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

import configure_finetuning
import configure_pretraining
import export_savedmodel
import predict
import run_finetuning
from finetune import export, heads, preprocessing
from finetune.qa_decoding import beam_candidates, nbest_answers
from tests.conftest import SAMPLE_VOCAB, shared_file
from util.errors import InputError

# [CLS] q q q [SEP] c c c c c c [SEP] pad pad: context at 5..10
LENGTH, WIDTH, QUESTION, CONTEXT = 14, 8, range(1, 4), range(5, 11)
INPUT_MASK = [1] * 12 + [0] * 2
SEGMENT_IDS = [0] * 5 + [1] * 7 + [0] * 2


def np_gelu(x):
    return x * 0.5 * (1.0 + np.vectorize(math.erf)(x / math.sqrt(2.0)))


def head_config(beam_size=LENGTH, **kwargs):
    return SimpleNamespace(**dict(dict(joint_prediction=True, beam_size=beam_size,
                                       answerable_classifier=True,
                                       answerable_uses_start_logits=True,
                                       answerable_weight=0.5), **kwargs))


class FixedEncoder(object):
    """Stands in for modeling.BertModel: given final hidden states [B, L, H]."""

    def __init__(self, hidden):
        self.hidden = hidden

    def get_sequence_output(self):
        return self.hidden


def run_head(hidden_values, config, hidden_act="gelu"):
    """(prediction outputs, variable values) of the head, built as the fine-tuning graph
    builds it for an encoder of that hidden_act, on hidden [B, L, H]."""
    batch = len(hidden_values)
    with tf.Graph().as_default():
        tf.set_random_seed(3)
        hidden = tf.constant(np.asarray(hidden_values, np.float32))
        features = {"input_mask": tf.constant([INPUT_MASK] * batch),
                    "segment_ids": tf.constant([SEGMENT_IDS] * batch),
                    "start_positions": tf.zeros([batch], tf.int32),
                    "end_positions": tf.zeros([batch], tf.int32)}
        task = SimpleNamespace(name="cmrc2018", task_type="qa", head_name=None, config=config)
        _, outputs = heads.build_head(task, FixedEncoder(hidden), SimpleNamespace(
            hidden_act=hidden_act), features, False)
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            values = {v.op.name.split("cmrc2018/")[1]: v for v in tf.global_variables()}
            return sess.run(outputs), sess.run(values)


def window_feature():
    """A scorer feature for the layout: each context token is one character."""
    return {"token_to_char": {p: (p - 5, p - 4) for p in CONTEXT},
            "token_is_max_context": {p: True for p in CONTEXT}}


def log_softmax(x):
    x = x - x.max()
    return x - np.log(np.exp(x).sum())


def exhaustive_best(hidden, variables, max_answer_length):
    """The best valid (start, end) by start + end log-probability, over every pair,
    computed in NumPy from the head's variables (concatenation, not the split kernel)."""
    penalty = np.array([0.0 if (p == 0 or (INPUT_MASK[p] and SEGMENT_IDS[p])) else -1000.0
                        for p in range(LENGTH)])
    start = hidden @ variables["dense/kernel"][:, 0] + variables["dense/bias"][0] + penalty
    start_lp = log_softmax(start)
    best = None
    for s in CONTEXT:
        pairs = np.concatenate([np.repeat(hidden[s][None], LENGTH, 0), hidden], -1)
        h = np_gelu(pairs @ variables["qa_hidden/kernel"] + variables["qa_hidden/bias"])
        end_lp = log_softmax(h @ variables["dense_1/kernel"][:, 0]
                             + variables["dense_1/bias"][0] + penalty)
        for e in CONTEXT:
            if s <= e < s + max_answer_length:
                score = start_lp[s] + end_lp[e]
                if best is None or score > best[0]:
                    best = (score, s, e)
    return best


def check_top_spans_are_the_exhaustive_best(hidden, outputs, variables, max_answer_length):
    context = "abcdef"
    for b in range(len(hidden)):
        row = {k: v[b] for k, v in outputs.items()}
        candidates = beam_candidates(window_feature(), row, max_answer_length)
        top = nbest_answers(context, candidates, 20)[0]
        score, s, e = exhaustive_best(hidden[b], variables, max_answer_length)
        assert (top["start"], top["end"]) == (s - 5, e - 4)
        assert top["text"] == context[s - 5:e - 4]
        assert top["score"] == pytest.approx(score, abs=1e-4)


@pytest.mark.parametrize("max_answer_length", [2, 30])
def test_beam_decoding_finds_the_exhaustive_best_span(max_answer_length):
    hidden = np.random.RandomState(max_answer_length).normal(size=(4, LENGTH, WIDTH))
    outputs, variables = run_head(hidden, head_config())
    check_top_spans_are_the_exhaustive_best(hidden, outputs, variables, max_answer_length)


@pytest.mark.parametrize("hidden_act", ["relu", "linear"])
def test_prediction_uses_exact_gelu_whatever_the_encoders_hidden_act(hidden_act):
    """The official head's qa_hidden is modeling.gelu (exact erf) for every encoder: the
    beam's spans and scores are the exact-GELU NumPy ones ("linear" used to crash)."""
    hidden = np.random.RandomState(11).normal(size=(4, LENGTH, WIDTH))
    outputs, variables = run_head(hidden, head_config(), hidden_act)
    check_top_spans_are_the_exhaustive_best(hidden, outputs, variables, 30)


def test_answer_mask_never_picks_question_or_padding():
    """Question and padding tokens get hidden states the start and end layers rank
    highest; they still never enter a decoded span, and their log-probs are ~-1000."""
    _, variables = run_head(np.zeros((1, LENGTH, WIDTH)), head_config())
    direction = variables["dense/kernel"][:, 0] / np.linalg.norm(variables["dense/kernel"])
    hidden = np.random.RandomState(0).normal(size=(3, LENGTH, WIDTH)) * 0.1
    for p in list(QUESTION) + [12, 13]:
        hidden[:, p] = 50.0 * direction
    outputs, _ = run_head(hidden, head_config(beam_size=6))
    allowed = {0} | set(CONTEXT) | {11}  # [CLS], context and its [SEP] (never decoded)
    for b in range(3):
        for k, start in enumerate(outputs["start_top_index"][b]):
            assert start in allowed, start
            for end, lp in zip(outputs["end_top_index"][b][k],
                               outputs["end_top_log_probs"][b][k]):
                assert end in allowed or lp < -500
        row = {k: v[b] for k, v in outputs.items()}
        top = nbest_answers("abcdef", beam_candidates(window_feature(), row, 30), 20)[0]
        assert top["start"] is not None and 0 <= top["start"] < top["end"] <= 6


# ---------------------------------------------------------------------------- end to end

QA_TASKS = {"cmrc2018": ("cmrc2018", "cmrc2018_dev.json")}
CONTEXT_CHARS = 90

# Every QA, prediction and output-path key of the official fine-tuning config, as an official
# params file would set them.
OFFICIAL_KEYS = {
    "joint_prediction": True, "beam_size": 8, "answerable_classifier": True,
    "answerable_uses_start_logits": True, "answerable_weight": 0.5, "qa_na_threshold": -2.75,
    "predict_batch_size": 3, "n_writes_test": 5, "write_distill_outputs": False,
    "double_unordered": False, "use_tfrecords_if_existing": True, "n_best_size": 20,
    "max_answer_length": 30, "max_query_length": 16, "doc_stride": 32,
    "model_dir": None, "results_txt": None, "results_pkl": "ignored.pkl",
    "qa_eval_file": None, "qa_na_file": None, "test_predictions": None}


def small_split(path, skip, count):
    """count questions of a real dev file (from question skip on), contexts cut to
    CONTEXT_CHARS characters around answers that fit."""
    paragraphs = []
    data = json.loads(path.read_text(encoding="utf-8"))["data"]
    for article in data:
        for paragraph in article["paragraphs"]:
            context = paragraph["context"][:CONTEXT_CHARS]
            qas = [qa for qa in paragraph["qas"] if all(
                0 <= a["answer_start"] and a["answer_start"] + len(a["text"]) <= len(context)
                for a in qa["answers"])]
            if qas:
                paragraphs.append({"context": context, "qas": qas[:1]})
    chosen = paragraphs[skip:skip + count]
    return {"version": "small", "data": [{"title": "t", "paragraphs": chosen}]}


@pytest.fixture(scope="module")
def qa_run(tmp_path_factory):
    """Both QA tasks fine-tuned with the joint head (a few steps) from one params file
    holding every official key; records the batch sizes of the prediction input_fns."""
    sources = {task: shared_file("data", folder, name) for task, (folder, name) in QA_TASKS.items()}
    data_dir = tmp_path_factory.mktemp("qa_head")
    shutil.copy(SAMPLE_VOCAB, data_dir / "vocab.txt")
    for task, source in sources.items():
        folder = data_dir / "finetuning_data" / task
        folder.mkdir(parents=True)
        for split, skip, count in (("train", 0, 16), ("dev", 16, 6)):
            (folder / ("%s.json" % split)).write_text(json.dumps(
                small_split(source, skip, count), ensure_ascii=False), encoding="utf-8")
    params = dict(OFFICIAL_KEYS, model_size="tiny", random_init=True,
                  task_names=list(QA_TASKS), max_seq_length=64, learning_rate=3e-3,
                  train_batch_size=8, num_train_epochs=1.0, log_every_steps=100,
                  qa_preds_file=str(data_dir / "preds" / "{task}-{split}.json"))
    params_file = data_dir / "params_official.json"
    params_file.write_text(json.dumps(params), encoding="utf-8")
    batch_sizes = []
    real_input_fn = preprocessing.get_input_fn

    def recording_input_fn(path, specs, is_training, batch_size, **kwargs):
        if not is_training:
            batch_sizes.append(batch_size)
        return real_input_fn(path, specs, is_training, batch_size, **kwargs)
    out = io.StringIO()
    preprocessing.get_input_fn = recording_input_fn
    try:
        with redirect_stdout(out):
            status = run_finetuning.main(["--data-dir", str(data_dir), "--model-name",
                                          "tiny", "--hparams", str(params_file)])
    finally:
        preprocessing.get_input_fn = real_input_fn
    assert status == 0, out.getvalue()
    return SimpleNamespace(data_dir=data_dir, log=out.getvalue(), batch_sizes=batch_sizes,
                           results=data_dir / "models" / "tiny" / "results")


def test_joint_head_fine_tunes_and_the_evaluator_scores_it(qa_run, task="cmrc2018"):
    import cmrc2018_drcd_evaluate

    preds = json.loads((qa_run.data_dir / "preds" / ("%s-dev.json" % task)).read_text(
        encoding="utf-8"))  # qa_preds_file's {task}/{split} honoured
    dev = json.loads((qa_run.data_dir / "finetuning_data" / task / "dev.json").read_text(
        encoding="utf-8"))
    contexts = {qa["id"]: p["context"] for p in dev["data"][0]["paragraphs"]
                for qa in p["qas"]}
    assert sorted(preds) == sorted(contexts)
    assert all(answer and answer in contexts[qid] for qid, answer in preds.items())
    record = json.loads((qa_run.results / ("%s_results.json" % task)).read_text())
    results = record["trials"][0]["results"]["dev"]
    expected = cmrc2018_drcd_evaluate.evaluate(dev, preds)
    assert results["f1"] == pytest.approx(expected["F1"]) and results["total"] == 6
    assert json.loads((qa_run.results / (task + "_qa") / ("%s_dev_eval.json" % task))
                      .read_text())["f1"] == results["f1"]
    odds = json.loads((qa_run.results / (task + "_qa") / ("%s_dev_null_odds.json" % task))
                      .read_text())
    assert sorted(odds) == sorted(preds)
    assert ("%s: " % task) in (qa_run.results / ("%s_results.txt" % task)).read_text()


def test_official_keys_are_honoured(qa_run):
    assert qa_run.batch_sizes == [3]  # predict_batch_size, not eval_batch_size (32)
    assert qa_run.log.count("results_pkl: results are written as JSON") == 1


def test_joint_export_predicts_what_evaluation_predicted(qa_run, tmp_path):
    trial = qa_run.data_dir / "models" / "tiny" / "finetuning_models" / "cmrc2018_model_1"
    with redirect_stdout(io.StringIO()):
        assert export_savedmodel.main([str(trial), "--out", str(tmp_path / "export")]) == 0
    info = json.loads((tmp_path / "export" / "model_info.json").read_text())
    assert sorted(info["signature"]["outputs"]) == sorted(export.OUTPUTS["qa_joint"])
    dev = json.loads((qa_run.data_dir / "finetuning_data" / "cmrc2018" / "dev.json")
                     .read_text(encoding="utf-8"))
    preds = json.loads((qa_run.data_dir / "preds" / "cmrc2018-dev.json").read_text(
        encoding="utf-8"))
    lines = "".join(json.dumps({"id": qa["id"], "context": p["context"],
                                "question": qa["question"]}, ensure_ascii=False) + "\n"
                    for p in dev["data"][0]["paragraphs"] for qa in p["qas"])
    out = io.StringIO()
    assert predict.main([str(tmp_path / "export")], stdin=io.BytesIO(lines.encode("utf-8")),
                        stdout=out) == 0
    answers = {o["id"]: o["answer"] for o in map(json.loads, out.getvalue().splitlines())}
    assert answers == preds


def test_official_path_placeholders_and_defaults(tmp_path):
    config = configure_finetuning.FinetuningConfig(
        "m", str(tmp_path), task_names=["cmrc2018"], eval_batch_size=7,
        test_predictions=str(tmp_path / "{:}_{:}_{:}.json"),
        model_dir=str(tmp_path / "ft" / "{task}"))
    assert config.predict_batch_size == 7  # follows eval_batch_size when only that is set
    assert config.preds_file("cmrc2018", "test", 2) == str(tmp_path / "cmrc2018_test_2.json")
    assert config.trial_model_dir("cmrc2018", 3) == str(tmp_path / "ft" / "cmrc2018_3")
    assert config.preds_file("cmrc2018", "dev", 2).endswith(
        "cmrc2018_qa/cmrc2018_dev_preds_trial2.json")
    assert (config.joint_prediction, config.beam_size, config.answerable_weight,
            config.qa_na_threshold, config.n_writes_test) == (True, 20, 0.5, -2.75, 5)
    assert run_finetuning.eval_splits(configure_finetuning.FinetuningConfig(
        "m", str(tmp_path), write_test_outputs=True, n_writes_test=1), trial=2) == ["dev"]
    # several tasks train one model: its trials share model_dir, named by the tasks
    assert configure_finetuning.FinetuningConfig(
        "m", str(tmp_path), model_dir="/x/{task}",
        task_names=["cmrc2018", "drcd"]).trial_model_dir("cmrc2018_drcd", 2) == "/x/cmrc2018_drcd_2"
    # pre-training's official results_pkl key is accepted too (results stay JSON)
    assert configure_pretraining.PretrainingConfig("m", str(tmp_path),
                                                   results_pkl="r.pkl").results_pkl == "r.pkl"
