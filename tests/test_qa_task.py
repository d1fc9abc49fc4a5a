"""Tests for finetune/qa.py: CMRC 2018 / DRCD span extraction.

Everything uses the real Chinese BERT vocab (sample_data/vocab.txt). The
round-trip tests run over the shipped CMRC 2018 / DRCD files in ../shared and
are skipped when that folder is absent.
"""

import collections
import json
import os
import logging

import numpy as np
import pytest

from configure_finetuning import FinetuningConfig
from finetune import qa
from finetune.qa import QATask
from model.tokenization import FullTokenizer
from tests.conftest import SAMPLE_VOCAB, shared_file
from util.errors import InputError


@pytest.fixture(scope="module")
def tokenizer():
    return FullTokenizer(str(SAMPLE_VOCAB))


def make_task(tmp_path, tokenizer, name="cmrc2018", **hparams):
    """A QATask reading from tmp_path/finetuning_data/<name>/."""
    (tmp_path / "finetuning_data" / name).mkdir(parents=True, exist_ok=True)
    config = FinetuningConfig("m", str(tmp_path), task_names=[name], **hparams)
    return QATask(config, name, tokenizer)


def squad(paragraphs):
    """A SQuAD dict from [(context, [(qid, question, [(text, start), ...]), ...]), ...]."""
    return {"version": "test", "data": [{"title": "t", "paragraphs": [
        {"context": context, "qas": [
            {"id": qid, "question": question,
             "answers": [{"text": text, "answer_start": start} for text, start in answers]}
            for qid, question, answers in questions]}
        for context, questions in paragraphs]}]}


def write_split(task, split, dataset, file_name=None):
    """Writes dataset as the task's <split>.json (or file_name); returns the path."""
    path = task.data_dir() + "/" + (file_name or split + ".json")
    text = dataset if isinstance(dataset, str) else json.dumps(dataset, ensure_ascii=False)
    with open(path, "w", encoding="utf-8") as writer:
        writer.write(text)
    return path


def oracle_outputs(feature, length, high=10.0):
    """Logits peaking at the feature's gold start/end positions."""
    start, end = np.full(length, -high), np.full(length, -high)
    start[feature["start_positions"]] = high
    end[feature["end_positions"]] = high
    return {"start_logits": start, "end_logits": end, "loss": 0.5}


def context_positions(feature, first_char, last_char):
    """Input positions whose unit spans exactly [first_char, last_char)."""
    return [pos for pos, span in sorted(feature["token_to_char"].items())
            if span[0] >= first_char and span[1] <= last_char]


# ---------------------------------------------------------------------------
# Units and character alignment
# ---------------------------------------------------------------------------

def test_units_split_cjk_punctuation_symbols_and_runs():
    text = "苹果 iPhone 12，约−273.15℃。"
    units = [text[s:e] for s, e in qa.split_units(text)]
    assert units == ["苹", "果", "iPhone", "12", "，", "约", "−", "273", ".", "15", "℃", "。"]


def test_tokens_map_back_to_their_unit_spans(tokenizer):
    context = "发布 iPhone12手机"
    doc = qa.tokenize_context(context, tokenizer)
    pairs = list(zip(doc.tokens, (context[s:e] for s, e in doc.char_spans)))
    # "iphone12" is one unit; all its WordPieces point at the whole unit.
    assert pairs[0] == ("发", "发") and pairs[-1] == ("机", "机")
    assert all(unit == "iPhone12" for token, unit in pairs[2:-2])
    assert len(pairs) > 4


def test_answer_inside_a_unit_widens_to_the_unit(tokenizer):
    context = "他生于1950年。"
    doc = qa.tokenize_context(context, tokenizer)
    span = doc.token_span(3, 6)  # "195"
    assert qa.span_text(context, doc.char_spans, *span) == "1950"


def test_locate_answer_prefers_given_start_then_nearest_occurrence():
    context = "甲乙甲乙甲乙"
    assert qa.locate_answer(context, "甲乙", 2) == (2, 4)
    assert qa.locate_answer(context, "甲乙", 3) == (2, 4)  # off by one: nearest
    assert qa.locate_answer(context, "甲乙", -1) == (0, 2)  # unknown: first
    assert qa.locate_answer(context, " 乙甲 ", 1) == (1, 3)  # padded with spaces
    assert qa.locate_answer(context, "丙", 0) is None
    assert qa.locate_answer(context, "", 0) is None


ROUND_TRIP_FILES = {
    # file: (path parts, most answers allowed to fail because they start/end
    # inside a Latin/digit unit; measured: 1, 7 and 3)
    "cmrc2018_trial": (("data", "cmrc2018", "cmrc2018_trial.json"), 2),
    "cmrc2018_dev": (("data", "cmrc2018", "cmrc2018_dev.json"), 8),
    "drcd_dev": (("data", "drcd", "DRCD_dev.json"), 4),
}


def round_trip(path, tokenizer):
    """Counter of outcomes and failing samples for every answer of a SQuAD file.

    Each answer is located, mapped to token positions and cut back out of the
    context with span_text, the function the predictor uses.
    """
    counts, failures = collections.Counter(), []
    cache = {}
    for context, question, answers, _ in qa.iter_questions(
            qa.read_squad_json(str(path)), str(path), need_answers=True):
        doc = qa.tokenize_context(context, tokenizer, cache)
        for index, answer in enumerate(answers):
            counts["answers"] += 1
            span = qa.locate_answer(context, answer["text"], answer["answer_start"])
            if span is None:
                # Only extra references may be absent: training uses the first.
                counts["not in context" + (" (first answer)" if index == 0 else "")] += 1
                continue
            if span[0] != answer["answer_start"]:
                counts["relocated (answer_start off)"] += 1
            tokens = doc.token_span(*span)
            text = None if tokens is None else qa.span_text(context, doc.char_spans, *tokens)
            if text == answer["text"]:
                counts["exact"] += 1
            elif text == answer["text"].strip():
                counts["exact but for padding spaces"] += 1
            else:
                counts["boundary inside a unit"] += 1
                failures.append((question["id"], answer["text"], text))
    return counts, failures


@pytest.mark.parametrize("name", sorted(ROUND_TRIP_FILES))
def test_gold_spans_round_trip_on_shipped_data(name, tokenizer):
    parts, max_failures = ROUND_TRIP_FILES[name]
    counts, failures = round_trip(shared_file(*parts), tokenizer)
    print("\n%s: %s" % (name, dict(counts)))
    for qid, gold, got in failures:
        print("  %s: gold %r -> %r" % (qid, gold, got))
    assert counts["answers"] > 900
    assert counts["not in context (first answer)"] == 0
    # The only absent answers are CMRC dev's paraphrased extra references
    # (answer_start -1); the measured count is 193.
    assert counts["not in context"] <= (200 if name == "cmrc2018_dev" else 0)
    assert len(failures) <= max_failures
    assert all(got is not None for _, _, got in failures)


def test_oracle_logits_on_trial_set_score_almost_perfectly(tmp_path, tokenizer):
    """The whole featurize -> scorer path reproduces the gold answers."""
    trial = shared_file("data", "cmrc2018", "cmrc2018_trial.json")
    task = make_task(tmp_path, tokenizer, max_answer_length=512)
    write_split(task, "dev", trial.read_text(encoding="utf-8"), "cmrc2018_dev.json")
    scorer = task.get_scorer("dev")
    for example in task.get_examples("dev"):
        for feature in task.featurize(example, is_training=False):
            scorer.update(feature, oracle_outputs(feature, task.config.max_seq_length))
    results = scorer.get_results()
    print("\ntrial oracle:", results)
    # One gold answer ("AXR...") starts inside the unit "JAXR".
    assert results["total"] == 1002 and results["skip"] == 0
    assert results["em"] >= 99.8 and results["f1"] >= 99.8
    assert task.relocated_answers["dev"] == 5  # the trial's off-by-one starts


# ---------------------------------------------------------------------------
# Windows and max context
# ---------------------------------------------------------------------------

def test_doc_windows():
    assert qa.doc_windows(10, 6, 2) == [(0, 6), (2, 6), (4, 6)]
    assert qa.doc_windows(5, 6, 2) == [(0, 5)]
    assert qa.doc_windows(10, 4, 8) == [(0, 4), (4, 4), (8, 2)]  # never skips tokens
    assert qa.doc_windows(0, 4, 2) == [(0, 0)]


def test_max_context_by_hand():
    windows = [(0, 6), (2, 6), (4, 6)]  # tokens 0-5, 2-7, 4-9
    best = {pos: [w for w in range(3) if qa.is_max_context(windows, w, pos)]
            for pos in range(10)}
    # pos 3: min(3,2)=2 in w0 vs min(1,4)=1 in w1; pos 5: w1 (3,2) beats w0 (5,0)
    # and w2 (1,4); pos 6: w2 (2,3) beats w1 (4,1).
    assert best == {0: [0], 1: [0], 2: [0], 3: [0], 4: [1], 5: [1],
                    6: [2], 7: [2], 8: [2], 9: [2]}


LONG_CONTEXT = "".join("第%d段讲的是天气和山水。" % i for i in range(40)) + "答案在这里藏着。"


def long_task(tmp_path, tokenizer, **hparams):
    params = dict(max_seq_length=64, max_query_length=8, doc_stride=24)
    params.update(hparams)
    return make_task(tmp_path, tokenizer, **params)


def test_long_context_gives_several_windows_and_answer_in_the_right_one(tmp_path, tokenizer):
    task = long_task(tmp_path, tokenizer)
    answer_start = LONG_CONTEXT.index("答案在这里")
    write_split(task, "train", squad([(LONG_CONTEXT, [
        ("q1", "答案在哪里藏着呢还有很多字", [("答案在这里", answer_start)])])]))
    example, = task.get_examples("train")
    features = task.featurize(example, is_training=True)
    assert len(features) > 5
    query_length = 8  # the question is cut to max_query_length tokens
    for index, feature in enumerate(features):
        for key in ("input_ids", "input_mask", "segment_ids"):
            assert len(feature[key]) == 64
        used = sum(feature["input_mask"])
        assert feature["segment_ids"][:query_length + 2] == [0] * (query_length + 2)
        assert feature["segment_ids"][query_length + 2:used] == [1] * (used - query_length - 2)
        assert feature["input_ids"][0] == task.tokenizer.vocab["[CLS]"]
        assert feature["feature_id"] == index and feature["eid"] == 0
    holding = [f for f in features if f["start_positions"] != 0]
    assert holding and holding[-1] is features[-1]
    for feature in holding:
        start, end = feature["start_positions"], feature["end_positions"]
        assert feature["tokens"][start:end + 1] == list("答案在这里")
        assert qa.span_text(LONG_CONTEXT, feature["token_to_char"], start, end) == "答案在这里"
    assert all(f["end_positions"] == 0 for f in features if f["start_positions"] == 0)
    assert len({f["feature_id"] for f in features}) == len(features)


def test_window_max_context_flags_match_the_rule(tmp_path, tokenizer):
    task = long_task(tmp_path, tokenizer)
    write_split(task, "dev", squad([(LONG_CONTEXT, [("q1", "问", [("天气", 5)])])]))
    example, = task.get_examples("dev")
    features = task.featurize(example, is_training=False)
    doc = task.doc_tokens(example.context)
    windows = qa.doc_windows(len(doc), 64 - 1 - 3, 24)
    owners = collections.Counter()
    for index, feature in enumerate(features):
        offset = 3  # [CLS] 问 [SEP]
        for pos, flag in feature["token_is_max_context"].items():
            assert flag == qa.is_max_context(windows, index, windows[index][0] + pos - offset)
            owners[windows[index][0] + pos - offset] += flag
    # every context token is scored in exactly one window
    assert sorted(owners) == list(range(len(doc))) and set(owners.values()) == {1}


# ---------------------------------------------------------------------------
# Post-processing
# ---------------------------------------------------------------------------

def single_window(tmp_path, tokenizer, context, question="问题", **hparams):
    task = make_task(tmp_path, tokenizer, max_seq_length=64, max_query_length=8, **hparams)
    write_split(task, "dev", squad([(context, [("q1", question, [(context[:1], 0)])])]))
    example, = task.get_examples("dev")
    feature, = task.featurize(example, is_training=False)
    return task, feature


def unit_positions(feature, context):
    """Unit text -> input position of its first occurrence in the window."""
    positions = {}
    for pos, (start, end) in sorted(feature["token_to_char"].items()):
        positions.setdefault(context[start:end], pos)
    return positions


def predict(task, feature, start_logits, end_logits):
    scorer = task.get_scorer("dev")
    scorer.update(feature, {"start_logits": np.asarray(start_logits),
                            "end_logits": np.asarray(end_logits), "loss": 1.0})
    return scorer.predictions()["q1"], scorer


def logits_at(length, values):
    logits = np.full(length, -5.0)
    for pos, value in values.items():
        logits[pos] = value
    return logits


def test_postprocessing_picks_the_best_valid_span(tmp_path, tokenizer):
    context = "北京是中国的首都，上海是最大的城市。"
    task, feature = single_window(tmp_path, tokenizer, context)
    pos = unit_positions(feature, context)
    start = logits_at(64, {pos["上"]: 3.0, pos["北"]: 2.0, 0: 9.0, 1: 8.0})
    end = logits_at(64, {pos["海"]: 3.0, pos["京"]: 1.0, 0: 9.0, 2: 8.0})
    # [CLS] and the question score highest but are not context tokens.
    text, scorer = predict(task, feature, start, end)
    assert text == "上海"
    nbest = scorer.nbest()["q1"]
    # scores 3+3, 2+3, 2+1
    assert [e["text"] for e in nbest[:3]] == ["上海", "北京是中国的首都，上海", "北京"]
    assert abs(sum(e["probability"] for e in nbest) - 1.0) < 1e-9


def test_postprocessing_respects_start_before_end(tmp_path, tokenizer):
    context = "北京是中国的首都，上海是最大的城市。"
    task, feature = single_window(tmp_path, tokenizer, context)
    pos = unit_positions(feature, context)
    start = logits_at(64, {pos["上"]: 5.0, pos["北"]: -1.0})
    # The best end comes before the best start: 上+京 (10) is not a span, so
    # 上海 (5.5) beats 北京 (4).
    end = logits_at(64, {pos["京"]: 5.0, pos["海"]: 0.5})
    assert predict(task, feature, start, end)[0] == "上海"


def test_postprocessing_respects_max_answer_length(tmp_path, tokenizer):
    context = "北京是中国的首都，上海是最大的城市。"
    task, feature = single_window(tmp_path, tokenizer, context, max_answer_length=3)
    pos = unit_positions(feature, context)
    start = logits_at(64, {pos["北"]: 5.0, pos["上"]: 1.0})
    end = logits_at(64, {pos["城"]: 5.0, pos["的"]: 1.0, pos["是"]: 0.5})
    # 北..城 (10) and 上..的 (2) are longer than 3 tokens; 北京是 (5.5) is not.
    assert predict(task, feature, start, end)[0] == "北京是"


def test_postprocessing_with_no_valid_span_predicts_empty(tmp_path, tokenizer):
    task, feature = single_window(tmp_path, tokenizer, "北京是中国的首都。", n_best_size=2)
    start = logits_at(64, {0: 5.0, 1: 4.0})  # only [CLS] and the question
    assert predict(task, feature, start, start)[0] == ""


def test_mixed_text_answer_keeps_original_case_and_spaces(tmp_path, tokenizer):
    context = "苹果公司于2020年发布了 iPhone 12 手机，售价799美元。"
    task = make_task(tmp_path, tokenizer, max_seq_length=64, max_query_length=16)
    write_split(task, "dev", squad([(context, [
        ("q1", "苹果发布了什么手机？", [("iPhone 12", context.index("iPhone"))]),
        ("q2", "售价多少？", [("799美元", context.index("799"))])])]))
    scorer = task.get_scorer("dev")
    for example in task.get_examples("dev"):
        feature, = task.featurize(example, is_training=False)
        assert feature["tokens"][feature["start_positions"]] == "iphone" or example.qid == "q2"
        scorer.update(feature, oracle_outputs(feature, 64))
    assert scorer.predictions() == {"q1": "iPhone 12", "q2": "799美元"}


# ---------------------------------------------------------------------------
# Writing and scoring predictions
# ---------------------------------------------------------------------------

def test_write_predictions_and_perfect_score(tmp_path, tokenizer):
    context_a = "《战国无双3》是由光荣和ω-force开发的游戏，于2009年发售。"
    context_b = "DRCD是台達電子釋出的繁體中文閱讀理解資料集。"
    dataset = squad([
        (context_a, [("A1", "谁开发的？", [("光荣和ω-force", 9), ("光荣", 9)]),
                     ("A2", "何时发售？", [("2009年", context_a.index("2009"))])]),
        (context_b, [("B1", "誰釋出的？", [("台達電子", 5)])])])
    task = make_task(tmp_path, tokenizer, max_seq_length=48, max_query_length=8,
                     doc_stride=8)
    write_split(task, "dev", dataset)
    scorer = task.get_scorer("dev")
    for example in task.get_examples("dev"):
        for feature in task.featurize(example, is_training=False):
            scorer.update(feature, oracle_outputs(feature, 48))
    results = scorer.get_results()
    assert results == {"f1": 100.0, "em": 100.0, "average": 100.0, "total": 3, "skip": 0,
                       "loss": 0.5}
    preds_file = task.config.preds_file("cmrc2018", "dev")
    assert preds_file.endswith(os.path.join("cmrc2018_qa", "cmrc2018_dev_preds.json"))
    scorer.write_predictions(preds_file, str(tmp_path / "nbest.json"))
    with open(preds_file, encoding="utf-8") as reader:
        assert json.load(reader) == {"A1": "光荣和ω-force", "A2": "2009年", "B1": "台達電子"}
    with open(str(tmp_path / "nbest.json"), encoding="utf-8") as reader:
        assert json.load(reader)["A1"][0]["text"] == "光荣和ω-force"


def test_unpredicted_questions_count_as_skipped(tmp_path, tokenizer):
    task = make_task(tmp_path, tokenizer, max_seq_length=48, max_query_length=8)
    write_split(task, "dev", squad([("北京是中国的首都。", [
        ("q1", "首都？", [("北京", 0)]), ("q2", "哪国？", [("中国", 3)])])]))
    scorer = task.get_scorer("dev")
    example = task.get_examples("dev")[0]
    feature, = task.featurize(example, is_training=False)
    scorer.update(feature, oracle_outputs(feature, 48))
    results = scorer.get_results()
    assert (results["total"], results["skip"], results["em"]) == (2, 1, 50.0)


# ---------------------------------------------------------------------------
# Files, specs and bad input
# ---------------------------------------------------------------------------

def test_feature_specs(tmp_path, tokenizer):
    task = make_task(tmp_path, tokenizer)
    assert task.task_type == "qa"
    specs = {spec.name: spec.shape for spec in task.feature_specs()}
    assert specs == {"input_ids": [512], "input_mask": [512], "segment_ids": [512],
                     "start_positions": [], "end_positions": [], "eid": [],
                     "feature_id": []}


def test_official_file_names_are_accepted(tmp_path, tokenizer):
    dataset = squad([("台北是城市。", [("q1", "哪裡？", [("台北", 0)])])])
    drcd = make_task(tmp_path, tokenizer, name="drcd")
    write_split(drcd, "train", dataset, "DRCD_training.json")
    write_split(drcd, "dev", dataset, "DRCD_dev.json")
    cmrc = make_task(tmp_path, tokenizer)
    write_split(cmrc, "train", dataset, "cmrc2018_train.json")
    for task, split in ((drcd, "train"), (drcd, "dev"), (cmrc, "train")):
        assert [e.qid for e in task.get_examples(split)] == ["q1"]
    with pytest.raises(InputError, match="no test file found.*test.json"):
        cmrc.get_examples("test")


def test_unlabelled_test_split(tmp_path, tokenizer):
    task = make_task(tmp_path, tokenizer, max_seq_length=48, max_query_length=8)
    write_split(task, "test", {"data": [{"paragraphs": [
        {"context": "北京是中国的首都。", "qas": [{"id": "t1", "question": "首都？"}]}]}]})
    example, = task.get_examples("test")
    assert example.answers == [] and example.answer_span is None
    feature, = task.featurize(example, is_training=False)
    assert (feature["start_positions"], feature["end_positions"]) == (0, 0)


def test_answer_not_in_context_is_skipped_for_training(tmp_path, tokenizer, caplog):
    task = make_task(tmp_path, tokenizer, max_seq_length=48, max_query_length=8)
    dataset = squad([("北京是中国的首都。", [
        ("q1", "首都？", [("北京", 0)]),
        ("q2", "哪国？", [("美国", 3)]),          # nowhere in the context
        ("q3", "是什么？", [("首都", 2)])])])       # wrong start: found at 6
    write_split(task, "train", dataset)
    write_split(task, "dev", dataset)
    with caplog.at_level(logging.WARNING, logger="finetune.qa"):
        train = task.get_examples("train")
    assert [e.qid for e in train] == ["q1", "q3"]
    assert task.skipped_questions["train"] == 1
    assert task.relocated_answers["train"] == 1
    task.get_examples("train")  # re-reading does not double the counts
    assert task.skipped_questions["train"] == 1
    assert "skipped 1 question" in caplog.text and "q2" in caplog.text
    feature, = task.featurize(train[1], is_training=True)
    start, end = feature["start_positions"], feature["end_positions"]
    assert feature["tokens"][start:end + 1] == ["首", "都"]
    # Dev keeps the question: its references are still scored by text.
    assert [e.qid for e in task.get_examples("dev")] == ["q1", "q2", "q3"]
    assert task.skipped_questions["dev"] == 0


def test_training_answer_covering_no_token_is_skipped(tmp_path, tokenizer, caplog):
    context = "北京\u200b是首都。"  # U+200B is dropped by the tokenizer
    task = make_task(tmp_path, tokenizer, max_seq_length=48, max_query_length=8)
    write_split(task, "train", squad([(context, [("q1", "问", [("\u200b", 2)])])]))
    example, = task.get_examples("train")
    with caplog.at_level(logging.WARNING, logger="finetune.qa"):
        assert task.featurize(example, is_training=True) == []
    assert task.skipped_questions["train"] == 1 and "covers no token" in caplog.text


def test_broken_json_names_file_line_and_column(tmp_path, tokenizer):
    task = make_task(tmp_path, tokenizer)
    path = write_split(task, "dev", '{"data": [\n  {"paragraphs": [],}\n]}')
    with pytest.raises(InputError) as err:
        task.get_examples("dev")
    assert "%s:2:21: invalid JSON" % path in str(err.value)


@pytest.mark.parametrize("dataset, where", [
    ({"version": 1}, "the top level has no 'data' key"),
    ({"data": [{"title": "x"}]}, "data[0] has no 'paragraphs' key"),
    ({"data": [{"paragraphs": [{"context": "甲"}, {"qas": []}]}]},
     "data[0].paragraphs[0] has no 'qas' key"),
    ({"data": [{"paragraphs": []}, {"paragraphs": [{"qas": []}]}]},
     "data[1].paragraphs[0] has no 'context' key"),
    ({"data": [{"paragraphs": [{"context": " ", "qas": []}]}]},
     "data[0].paragraphs[0].context is empty"),
    ({"data": [{"paragraphs": [{"context": "甲", "qas": [{"id": "a", "question": "?"}]}]}]},
     "data[0].paragraphs[0].qas[0] has no 'answers' key"),
    ({"data": {"paragraphs": []}}, "data should be a list"),
])
def test_missing_keys_name_their_path(tmp_path, tokenizer, dataset, where):
    task = make_task(tmp_path, tokenizer)
    path = write_split(task, "dev", dataset)
    with pytest.raises(InputError) as err:
        task.get_examples("dev")
    assert str(err.value).startswith(path) and where in str(err.value)


def test_duplicate_question_ids_are_rejected(tmp_path, tokenizer):
    task = make_task(tmp_path, tokenizer)
    write_split(task, "dev", squad([("甲乙", [("q", "?", [("甲", 0)]),
                                            ("q", "?", [("乙", 1)])])]))
    with pytest.raises(InputError, match="repeats question id 'q'"):
        task.get_examples("dev")


def test_query_longer_than_sequence_is_an_input_error(tmp_path, tokenizer):
    with pytest.raises(InputError, match="max_seq_length"):
        make_task(tmp_path, tokenizer, max_seq_length=16, max_query_length=16)


def test_repairs_are_warnings_and_strict_input_refuses_them(tmp_path, tokenizer, caplog):
    """A moved answer_start and a skipped question are WARNINGs (with counts); with
    strict_input each is an error naming the file, the question and what is wrong."""
    task = make_task(tmp_path, tokenizer, max_seq_length=48, max_query_length=8)
    moved = squad([("北京是中国的首都。", [("q1", "首都？", [("首都", 2)])])])  # at 6
    absent = squad([("北京是中国的首都。", [("q2", "哪国？", [("美国", 3)])])])
    path = write_split(task, "train", moved)
    with caplog.at_level(logging.WARNING, logger="finetune.qa"):
        task.get_examples("train")
    assert "1 answer(s) had an answer_start not pointing at their text" in caplog.text
    assert task.repairs("train") == [
        "1 answer(s) had an answer_start not pointing at their text; the nearest "
        "occurrence was used"]
    task.config.strict_input = True
    with pytest.raises(InputError) as err:
        task.get_examples("train")
    assert str(err.value).startswith("%s: data[0].paragraphs[0].qas[0] (id q1): answer_start "
                                     "2 does not point at its answer '首都' (it is at 6)" % path)
    write_split(task, "train", absent)
    with pytest.raises(InputError) as err:
        task.get_examples("train")
    assert "(id q2): no answer text is in the context; strict_input refuses it" in str(err.value)
