"""finetune/cmrc_metric.py: the official CMRC 2018 metric against the widened option, and a
property test against an independent transcription of the official rules on real
CMRC 2018 dev and DRCD dev questions.

Hand-worked values: segments are written after lower-casing with the punctuation removed;
LCS is the longest common contiguous run of segments; P = LCS / len(prediction segments),
R = LCS / len(reference segments), F1 = 2PR / (P + R).
"""

import json
import random
import re

import nltk
import pytest

import cmrc2018_drcd_evaluate
from finetune import cmrc_metric
from tests.conftest import shared_file

# (reference, prediction, official F1, official EM, wide F1, wide EM, the hand working)
DIFFERENCES = [
    # ASCII comma. Official: "-" dropped, "," kept: the run " testcase, ok" is NLTK's
    # [testcase , ok], so 11 + 3 = 14 segments; LCS 11, P = 11/14, R = 1,
    # F1 = (22/14) / (25/14) = 22/25. Wide: "," dropped too: 13 segments,
    # F1 = (22/13) / (24/13) = 11/12.
    ("埼玉县埼玉市南区七丁目", "埼玉县埼玉市南区七丁目 Test-case, OK", 22 / 25, 0, 11 / 12, 0),
    # Parentheses are not official punctuation: 红 楼 梦 ( 小 说 ) = 7 segments, LCS 3,
    # P = 3/7, F1 = (6/7) / (10/7) = 3/5. Wide: 红楼梦小说 = 5, F1 = (6/5) / (8/5) = 3/4.
    ("红楼梦", "红楼梦(小说)", 3 / 5, 0, 3 / 4, 0),
    # ( 红 楼 梦 ): official 5 segments, F1 3/4, and "(红楼梦)" != "红楼梦"; wide: equal.
    ("红楼梦", "(红楼梦)", 3 / 4, 0, 1.0, 1),
    # Hyphenated English, apostrophe kept officially: "jeanpaul sartre's" is NLTK's
    # [jeanpaul, sartre, 's]: LCS [jeanpaul sartre] = 2, P = 2/3, R = 2/2,
    # F1 = (4/3) / (5/3) = 4/5. Wide: "jeanpaul sartres" -> [jeanpaul, sartres]: LCS 1,
    # P = R = 1/2, F1 = 1/2 (the wide set scores LOWER here).
    ("Jean-Paul Sartre", "Jean-Paul Sartre's", 4 / 5, 0, 1 / 2, 0),
    # Hyphens go in both sets; the final period officially becomes NLTK's token ".":
    # [stateoftheart .], P = 1/2, R = 1, F1 = 2/3, and "stateoftheart." != ... -> EM 0.
    ("state-of-the-art", "state-of-the-art.", 2 / 3, 0, 1.0, 1),
    # Full-width vs half-width: "？" is official punctuation, "?" is not (是 的 ? = 3
    # segments: P = 2/3, F1 = (4/3) / (5/3) = 4/5).
    ("是的", "是的？", 1.0, 1, 1.0, 1),
    ("是的", "是的?", 4 / 5, 0, 1.0, 1),
    # "’" is in the official list, "‘" is not: ‘ 三 国 = 3 segments, F1 4/5.
    ("三国", "‘三国’", 4 / 5, 0, 1.0, 1),
    # "，" official, "," not: 北 京 , 上 海 vs 北 京 上 海: LCS 2 (北京 or 上海), P = 2/5,
    # R = 2/4, F1 = (2/5) / (9/10) = 4/9. Wide: identical, F1 1.
    ("北京上海", "北京，上海", 1.0, 1, 1.0, 1),
    ("北京上海", "北京,上海", 4 / 9, 0, 1.0, 1),
    # "……" is a two-character entry, so "…" stays: 三 国 …… (NLTK keeps "……" whole) =
    # 3 segments, F1 4/5. Wide: "…" dropped.
    ("三国", "三国……", 4 / 5, 0, 1.0, 1),
]


@pytest.mark.parametrize("reference,prediction,f1,em,wide_f1,wide_em", DIFFERENCES)
def test_official_and_wide_metric_by_hand(reference, prediction, f1, em, wide_f1, wide_em):
    assert cmrc_metric.calc_f1_score([reference], prediction) == pytest.approx(f1, abs=1e-12)
    assert cmrc_metric.calc_em_score([reference], prediction) == em
    assert cmrc_metric.calc_f1_score([reference], prediction, True) == pytest.approx(
        wide_f1, abs=1e-12)
    assert cmrc_metric.calc_em_score([reference], prediction, True) == wide_em


def test_cli_wide_punctuation_says_it_is_not_comparable(tmp_path, capsys):
    references = [reference for reference, *_ in DIFFERENCES]
    dataset = {"data": [{"paragraphs": [{"context": "x", "qas": [
        {"id": "q%d" % i, "answers": [{"text": text}]} for i, text in enumerate(references)]}]}]}
    predictions = {"q%d" % i: case[1] for i, case in enumerate(DIFFERENCES)}
    (tmp_path / "d.json").write_text(json.dumps(dataset), encoding="utf-8")
    (tmp_path / "p.json").write_text(json.dumps(predictions), encoding="utf-8")
    args = [str(tmp_path / "d.json"), str(tmp_path / "p.json")]
    assert cmrc2018_drcd_evaluate.main(args) == 0
    official = json.loads(capsys.readouterr().out)
    assert "NOTE" not in official
    assert official["F1"] == pytest.approx(100 * sum(c[2] for c in DIFFERENCES)
                                           / len(DIFFERENCES), abs=1e-3)
    assert cmrc2018_drcd_evaluate.main(args + ["--wide-punctuation"]) == 0
    captured = capsys.readouterr()
    wide = json.loads(captured.out)
    assert "NOT comparable" in wide["NOTE"] and "NOT comparable" in captured.err
    assert wide["F1"] == pytest.approx(100 * sum(c[4] for c in DIFFERENCES)
                                       / len(DIFFERENCES), abs=1e-3)


# ----------------------------------------------------------------------------- official rules

# The official evaluator's rules, transcribed here independently of cmrc_metric (its
# sp_char list verbatim; NLTK without punkt, see cmrc_metric's docstring).
SP_CHAR = ['-', ':', '_', '*', '^', '/', '\\', '~', '`', '+', '=',
           '，', '。', '：', '？', '！', '“', '”', '；', '’', '《', '》', '……', '·', '、',
           '「', '」', '（', '）', '－', '～', '『', '』']


def official_segments(in_str):
    in_str = str(in_str).lower().strip()
    segs_out, temp_str = [], ""
    for char in in_str:
        if char in SP_CHAR:  # rm_punc=True, as F1 calls it
            continue
        if re.search(r'[\u4e00-\u9fa5]', char) or char in SP_CHAR:
            if temp_str != "":
                segs_out.extend(nltk.word_tokenize(temp_str, preserve_line=True))
                temp_str = ""
            segs_out.append(char)
        else:
            temp_str += char
    if temp_str != "":
        segs_out.extend(nltk.word_tokenize(temp_str, preserve_line=True))
    return segs_out


def official_lcs(s1, s2):
    m = [[0 for _ in range(len(s2) + 1)] for _ in range(len(s1) + 1)]
    mmax = 0
    for i in range(len(s1)):
        for j in range(len(s2)):
            if s1[i] == s2[j]:
                m[i + 1][j + 1] = m[i][j] + 1
                mmax = max(mmax, m[i + 1][j + 1])
    return mmax


def official_f1(answers, prediction):
    scores = []
    for ans in answers:
        ans_segs, prediction_segs = official_segments(ans), official_segments(prediction)
        lcs_len = official_lcs(ans_segs, prediction_segs)
        if lcs_len == 0:
            scores.append(0)
            continue
        precision = 1.0 * lcs_len / len(prediction_segs)
        recall = 1.0 * lcs_len / len(ans_segs)
        scores.append((2 * precision * recall) / (precision + recall))
    return max(scores)


def official_em(answers, prediction):
    def strip(text):
        return "".join(c for c in str(text).lower().strip() if c not in SP_CHAR)
    return int(any(strip(ans) == strip(prediction) for ans in answers))


# ----------------------------------------------------------------------------- property test

ADDITIONS = ["，", ",", "。", ".", "（注）", "(注)", "“", '"', "‘", "’", "……", "…", "、", "?",
             "？", " Test-case, OK", " U.S. Army. It works", "e-mail", " don't", "ω-force",
             " 2,000.5", " (ABC)", "「", "』", "-", "－", " ", "~", "·"]


def generated_predictions(dataset, rng, per_question):
    """{id: prediction} for a sample of the dataset's questions: gold answers, cuts,
    extensions into the context, punctuation and English additions, empty and blank
    strings, random context spans; about one question in 12 gets no prediction, and one id
    is in no question."""
    cases = []
    for article in dataset["data"]:
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                cases.append((paragraph["context"], qa))
    predictions = {"not-a-question": "北京"}  # ignored
    for context, qa in rng.sample(cases, per_question):
        if rng.random() < 1 / 12:  # missing id: SKIP
            continue
        gold = rng.choice(qa["answers"])
        text, start = gold["text"], gold.get("answer_start", context.find(gold["text"]))
        kind = rng.randrange(8)
        if kind == 0:
            prediction = text
        elif kind == 1:  # cut
            cut = rng.randrange(len(text) + 1)
            prediction = text[:cut] if rng.random() < 0.5 else text[cut:]
        elif kind == 2:  # extension into the context
            begin = max(0, start - rng.randrange(6))
            prediction = context[begin:start + len(text) + rng.randrange(12)]
        elif kind == 3:
            prediction = rng.choice(ADDITIONS) + text + rng.choice(ADDITIONS)
        elif kind == 4:
            prediction = text + rng.choice(ADDITIONS[14:21])
        elif kind == 5:
            prediction = rng.choice(["", " ", "。", "……"])
        else:  # a random span of the context
            begin = rng.randrange(max(1, len(context)))
            prediction = context[begin:begin + rng.randrange(1, 40)]
        predictions[qa["id"]] = prediction
    return predictions


@pytest.mark.parametrize("path", [("cmrc2018", "cmrc2018_dev.json"), ("drcd", "DRCD_dev.json")])
def test_scorer_follows_the_official_rules_on_real_questions(path):
    dataset = json.loads(shared_file("data", *path).read_text(encoding="utf-8"))
    predictions = generated_predictions(dataset, random.Random(2018), per_question=1000)
    scores = cmrc_metric.question_scores(dataset, predictions)
    references = {qid: answers for qid, answers in cmrc_metric.iter_questions(dataset)}
    checked = 0
    for question_id, f1, em, answered in scores:
        assert answered == (question_id in predictions)
        if not answered:
            assert (f1, em) == (0.0, 0)
            continue
        prediction = predictions[question_id]
        expected = official_f1(references[question_id], prediction)
        assert abs(f1 - expected) <= 1e-9, (question_id, prediction, f1, expected)
        assert em == official_em(references[question_id], prediction), (question_id,
                                                                           prediction)
        checked += 1
    assert checked >= 850
    result = cmrc_metric.evaluate(dataset, predictions)
    assert result["TOTAL"] == len(scores) and result["SKIP"] == len(scores) - checked
    assert result["F1"] == pytest.approx(100 * sum(s[1] for s in scores) / len(scores))
