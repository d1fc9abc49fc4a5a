"""Tests for cmrc2018_drcd_evaluate.py (the CLI over finetune/cmrc_metric.py, whose names it
re-exports): segmentation, F1/EM, totals, CLI, real data. tests/test_cmrc_metric.py compares
the official and the widened metric and checks the scorer against the official rules.

Expected scores are worked out by hand in the comments: segments are written
after lower-casing with punctuation removed (rm_punc=True, as scoring does),
LCS is the longest common contiguous run of segments,
P = LCS / len(prediction segments), R = LCS / len(reference segments) and
F1 = 2PR / (P + R).
"""

import json
import os

import pytest

import cmrc2018_drcd_evaluate as cmrc
from tests.conftest import shared_file


def make_dataset(questions):
    """A SQuAD-format dataset from [(id, [reference texts])], one per paragraph."""
    paragraphs = [{
        "context": "".join(answers) or "无",
        "qas": [{"id": qid, "question": "问题？",
                 "answers": [{"text": text, "answer_start": 0} for text in answers]}],
    } for qid, answers in questions]
    return {"version": "v1.0", "data": [{"title": "t", "paragraphs": paragraphs}]}


def write_json(path, obj):
    """Write obj as UTF-8 JSON and return the path as a string."""
    path.write_text(json.dumps(obj, ensure_ascii=False), encoding="utf-8")
    return str(path)


def run_cli(capsys, *argv):
    """Run main(argv); return (exit status, stdout, stderr)."""
    status = cmrc.main([str(arg) for arg in argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


# --------------------------------------------------------------------------
# Segmentation and normalisation.
# --------------------------------------------------------------------------

def test_segmentation_splits_chinese_chars_punctuation_and_english_words():
    text = "我爱iPhone 12，真的！"
    assert cmrc.mixed_segmentation(text) == [
        "我", "爱", "iphone", "12", "，", "真", "的", "！"]
    assert cmrc.mixed_segmentation(text, rm_punc=True) == [
        "我", "爱", "iphone", "12", "真", "的"]


def test_segmentation_of_whitespace_and_empty_text():
    assert cmrc.mixed_segmentation("  Hello   World \n") == ["hello", "world"]
    assert cmrc.mixed_segmentation("") == []
    assert cmrc.mixed_segmentation("《》。", rm_punc=True) == []


def test_removed_punctuation_does_not_split_an_english_word():
    # As in the official script, with rm_punc the "-" is skipped before it can
    # end the English run, so "ω-force" is one word; kept, it is a segment.
    assert cmrc.mixed_segmentation("光荣和ω-force", rm_punc=True) == [
        "光", "荣", "和", "ωforce"]
    assert cmrc.mixed_segmentation("光荣和ω-force") == [
        "光", "荣", "和", "ω", "-", "force"]


def test_official_punctuation_list_and_the_wide_option():
    # The official list: 33 entries in its order; "……" is one two-character entry, so the
    # single character "…" is not punctuation, nor are ASCII , . ( ) ' " ! ? ; or ‘.
    assert len(cmrc.OFFICIAL_PUNCTUATION) == 33
    assert cmrc.OFFICIAL_PUNCTUATION[22] == "……"
    assert "".join(cmrc.OFFICIAL_PUNCTUATION[:11]) == "-:_*^/\\~`+="
    for char in "…,.()'\"!?;‘":
        assert cmrc.remove_punctuation(char) == char, char
        assert char in cmrc.WIDE_PUNCTUATION, char
    for char in "，。：？！“”；’《》·、「」（）－～『』-:_*^/\\~`+=":
        assert cmrc.remove_punctuation(char) == "", char
    assert not set("abc123 中") & cmrc.WIDE_PUNCTUATION


def test_remove_punctuation_lowercases_strips_and_drops_marks():
    assert cmrc.remove_punctuation("  《红楼梦》，Vol.1 ") == "红楼梦vol.1"
    assert cmrc.remove_punctuation("  《红楼梦》，Vol.1 ", wide_punctuation=True) == "红楼梦vol1"


# --------------------------------------------------------------------------
# F1 and EM for single answers.
# --------------------------------------------------------------------------

def test_chinese_partial_overlap():
    # ref  "北京大学"       -> 北 京 大 学           (4 segments)
    # pred "北京大学医学部" -> 北 京 大 学 医 学 部  (7 segments)
    # LCS = 北京大学 = 4; P = 4/7, R = 4/4 = 1
    # F1 = 2 * 4/7 * 1 / (4/7 + 1) = (8/7) / (11/7) = 8/11
    assert cmrc.calc_f1_score(["北京大学"], "北京大学医学部") == pytest.approx(8 / 11)
    assert cmrc.calc_em_score(["北京大学"], "北京大学医学部") == 0


def test_exact_match():
    # Same 4 segments: LCS 4, P = R = 1, F1 = 1; texts equal, EM = 1.
    assert cmrc.calc_f1_score(["北京大学"], "北京大学") == pytest.approx(1.0)
    assert cmrc.calc_em_score(["北京大学"], "北京大学") == 1


def test_no_overlap():
    # ref 北 京 / pred 上 海: no common segment, LCS 0 -> F1 0.
    assert cmrc.calc_f1_score(["北京"], "上海") == 0.0
    assert cmrc.calc_em_score(["北京"], "上海") == 0


def test_mixed_chinese_english_answer():
    # ref  "iPhone 12发布" -> iphone 12 发 布  (4 segments)
    # pred "iphone 12"     -> iphone 12        (2 segments)
    # LCS = [iphone, 12] = 2; P = 2/2 = 1, R = 2/4 = 1/2
    # F1 = 2 * 1 * 1/2 / (1 + 1/2) = 1 / (3/2) = 2/3
    assert cmrc.calc_f1_score(["iPhone 12发布"], "iphone 12") == pytest.approx(2 / 3)
    # "iphone 12发布" != "iphone 12" -> EM 0.
    assert cmrc.calc_em_score(["iPhone 12发布"], "iphone 12") == 0
    # Case is ignored: "IPHONE 12发布" segments exactly like the reference.
    assert cmrc.calc_em_score(["iPhone 12发布"], "IPHONE 12发布") == 1


def test_english_words_are_kept_whole():
    # ref "iphone" -> [iphone]; pred "phone" -> [phone]: the segments differ,
    # so LCS 0 and F1 0 (scoring characters would give P = 5/5, R = 5/6,
    # F1 = 10/11).
    assert cmrc.calc_f1_score(["iPhone"], "phone") == 0.0
    assert cmrc.calc_f1_score(["iPhone"], "iphon") == 0.0
    # ref "apple iphone" -> [apple, iphone]; pred "iphone" -> [iphone]
    # LCS 1; P = 1/1, R = 1/2; F1 = 2 * 1 * 1/2 / (3/2) = 2/3
    assert cmrc.calc_f1_score(["Apple iPhone"], "iphone") == pytest.approx(2 / 3)


def test_punctuation_only_prediction():
    # pred "。！" -> [] after removing punctuation: LCS 0 -> F1 0;
    # EM compares "" with "红楼梦" -> 0.
    assert cmrc.calc_f1_score(["红楼梦"], "。！") == 0.0
    assert cmrc.calc_em_score(["红楼梦"], "。！") == 0
    # If the reference is punctuation-only too, both segment lists are empty,
    # so F1 is still 0 (LCS 0), but EM compares "" with "" -> 1.
    assert cmrc.calc_f1_score(["《》"], "！") == 0.0
    assert cmrc.calc_em_score(["《》"], "！") == 1
    # "……" is not punctuation officially ("…" never equals the "……" entry): it stays,
    # "……" != "" -> EM 0; dropped with the wide set -> EM 1.
    assert cmrc.calc_em_score(["……"], "！") == 0
    assert cmrc.calc_em_score(["……"], "！", wide_punctuation=True) == 1


def test_punctuation_differences_are_ignored():
    # "《红楼梦》" -> "红楼梦" == "红楼梦" -> EM 1; segments 红 楼 梦 both -> F1 1.
    assert cmrc.calc_em_score(["《红楼梦》"], "红楼梦") == 1
    assert cmrc.calc_f1_score(["《红楼梦》"], "红楼梦") == pytest.approx(1.0)
    assert cmrc.calc_em_score(["1,000 元"], "1000元") == 0  # the space stays
    # The ASCII comma is not official punctuation: "1,000元" != "1000元" -> EM 0.
    assert cmrc.calc_em_score(["1,000元"], " 1000元。") == 0
    assert cmrc.calc_em_score(["1,000元"], " 1,000元。") == 1
    assert cmrc.calc_em_score(["1,000元"], " 1000元。", wide_punctuation=True) == 1


def test_multiple_references_take_the_max():
    # pred "曹雪芹写的" -> 曹 雪 芹 写 的 (5 segments)
    #   vs "红楼梦": LCS 0 -> F1 0
    #   vs "曹雪芹": LCS 3; P = 3/5, R = 3/3 = 1;
    #                F1 = 2 * 3/5 * 1 / (3/5 + 1) = (6/5) / (8/5) = 3/4
    #   vs "曹雪芹写": LCS 4; P = 4/5, R = 1; F1 = (8/5) / (9/5) = 8/9
    answers = ["红楼梦", "曹雪芹", "曹雪芹写"]
    assert cmrc.calc_f1_score(answers, "曹雪芹写的") == pytest.approx(8 / 9)
    assert cmrc.calc_f1_score(answers[:2], "曹雪芹写的") == pytest.approx(3 / 4)
    assert cmrc.calc_em_score(answers, "曹雪芹写的") == 0
    assert cmrc.calc_em_score(answers, "曹雪芹") == 1


def test_longest_common_substring_not_subsequence():
    # ref  "甲乙丙丁"   -> 甲 乙 丙 丁     (4 segments)
    # pred "甲乙戊丙丁" -> 甲 乙 戊 丙 丁  (5 segments)
    # Longest common SUBSTRING = 甲乙 (or 丙丁) = 2:
    #   P = 2/5, R = 2/4; F1 = 2 * 2/5 * 1/2 / (2/5 + 1/2) = (2/5) / (9/10) = 4/9
    # A longest common SUBSEQUENCE (甲乙丙丁 = 4) would give
    #   P = 4/5, R = 1; F1 = (8/5) / (9/5) = 8/9, so this tells them apart.
    assert cmrc.longest_common_substring_length(list("甲乙丙丁"), list("甲乙戊丙丁")) == 2
    assert cmrc.calc_f1_score(["甲乙丙丁"], "甲乙戊丙丁") == pytest.approx(4 / 9)


def test_longest_common_substring_edge_cases():
    assert cmrc.longest_common_substring_length([], ["a"]) == 0
    assert cmrc.longest_common_substring_length(list("xabcy"), list("zabcw")) == 3
    assert cmrc.longest_common_substring_length(list("aaaa"), list("aa")) == 2


def test_no_reference_answers_scores_zero():
    assert cmrc.calc_f1_score([], "北京") == 0.0
    assert cmrc.calc_em_score([], "北京") == 0


# --------------------------------------------------------------------------
# Whole-dataset evaluation.
# --------------------------------------------------------------------------

SMALL_DATASET = make_dataset([
    ("Q1", ["北京大学"]),
    ("Q2", ["北京大学"]),
    ("Q3", ["红楼梦", "曹雪芹"]),
    ("Q4", ["上海"]),
    ("Q5", []),  # no reference answers: not counted at all
])
SMALL_PREDICTIONS = {
    "Q1": "北京大学",        # F1 1,    EM 1
    "Q2": "北京大学医学部",  # F1 8/11, EM 0 (see test_chinese_partial_overlap)
    "Q3": "曹雪芹写的",      # F1 3/4,  EM 0 (see test_multiple_references_take_the_max)
    # Q4 has no prediction: SKIP 1, scores 0.
    "Q5": "无",              # ignored: Q5 has no answers
    "Q9": "不存在",          # ignored: not in the dataset
}
# TOTAL = 4 (Q1..Q4), SKIP = 1 (Q4)
# F1 = 100 * (1 + 8/11 + 3/4 + 0) / 4 = 100 * (44 + 32 + 33) / 44 / 4
#    = 100 * 109/176 = 61.93181818...
# EM = 100 * (1 + 0 + 0 + 0) / 4 = 25
# AVERAGE = (61.9318... + 25) / 2 = 43.46590909...
EXPECTED_F1 = 100 * 109 / 176
EXPECTED_EM = 25.0
EXPECTED_AVERAGE = (EXPECTED_F1 + EXPECTED_EM) / 2


def test_evaluate_small_dataset_by_hand():
    result = cmrc.evaluate(SMALL_DATASET, SMALL_PREDICTIONS)
    assert set(result) == {"AVERAGE", "F1", "EM", "TOTAL", "SKIP"}
    assert result["TOTAL"] == 4
    assert result["SKIP"] == 1
    assert result["F1"] == pytest.approx(EXPECTED_F1)
    assert result["EM"] == pytest.approx(EXPECTED_EM)
    assert result["AVERAGE"] == pytest.approx(EXPECTED_AVERAGE)
    assert EXPECTED_AVERAGE == pytest.approx(43.4659090909)


def test_evaluate_with_no_predictions_and_empty_dataset():
    result = cmrc.evaluate(SMALL_DATASET, {})
    assert (result["TOTAL"], result["SKIP"], result["F1"], result["EM"]) == (4, 4, 0.0, 0.0)
    empty = cmrc.evaluate({"data": []}, {})
    assert empty == {"AVERAGE": 0.0, "F1": 0.0, "EM": 0.0, "TOTAL": 0, "SKIP": 0}


def test_dataset_ids_are_stripped_like_the_official_script():
    dataset = make_dataset([(" Q1 ", ["北京"])])
    assert cmrc.evaluate(dataset, {"Q1": "北京"})["EM"] == 100.0


@pytest.mark.parametrize("dataset, message", [
    ({"version": "1"}, 'the dataset has no "data" list'),
    ([], "the dataset must be a JSON object"),
    ({"data": [{"title": "x"}]}, 'data[0] has no "paragraphs" list'),
    ({"data": [{"paragraphs": [{"qas": [{"answers": []}]}]}]},
     'data[0].paragraphs[0].qas[0] has no string "id"'),
    ({"data": [{"paragraphs": [{"qas": [{"id": "a", "answers": [{"x": 1}]}]}]}]},
     'data[0].paragraphs[0].qas[0].answers[0] has no string "text"'),
])
def test_malformed_dataset_is_a_clear_error(dataset, message):
    with pytest.raises(cmrc.EvaluationError) as info:
        cmrc.evaluate(dataset, {})
    assert str(info.value) == message


def test_non_string_prediction_is_a_clear_error():
    with pytest.raises(cmrc.EvaluationError, match="'Q2'.*int"):
        cmrc.evaluate(SMALL_DATASET, {"Q1": "北京", "Q2": 3, "Q3": None})
    with pytest.raises(cmrc.EvaluationError, match="JSON object"):
        cmrc.evaluate(SMALL_DATASET, ["北京"])


# --------------------------------------------------------------------------
# Command line.
# --------------------------------------------------------------------------

def test_cli_prints_the_scores(tmp_path, capsys):
    dataset = write_json(tmp_path / "dev.json", SMALL_DATASET)
    predictions = write_json(tmp_path / "pred.json", SMALL_PREDICTIONS)
    status, out, err = run_cli(capsys, dataset, predictions)
    assert status == 0
    result = json.loads(out)
    assert list(result) == ["AVERAGE", "F1", "EM", "TOTAL", "SKIP"]
    assert result["F1"] == pytest.approx(EXPECTED_F1, abs=1e-3)
    assert result["EM"] == pytest.approx(EXPECTED_EM)
    assert result["AVERAGE"] == pytest.approx(EXPECTED_AVERAGE, abs=1e-3)
    assert (result["TOTAL"], result["SKIP"]) == (4, 1)
    # Q9 is not in the dataset (Q5 is, it just has no answers).
    assert "warning: 1 prediction id(s)" in err and "'Q9'" in err


def test_cli_output_file_matches_stdout(tmp_path, capsys):
    dataset = write_json(tmp_path / "dev.json", SMALL_DATASET)
    predictions = write_json(tmp_path / "pred.json", {"Q1": "北京大学"})
    output = tmp_path / "out" / "result.json"
    output.parent.mkdir()
    output.write_text("old", encoding="utf-8")
    status, out, err = run_cli(capsys, dataset, predictions, "--output", output)
    assert status == 0 and err == ""
    assert json.loads(output.read_text(encoding="utf-8")) == json.loads(out)
    assert os.listdir(output.parent) == ["result.json"]  # no temporary left


def test_cli_invalid_predictions_json_reports_line_and_column(tmp_path, capsys):
    dataset = write_json(tmp_path / "dev.json", SMALL_DATASET)
    predictions = tmp_path / "pred.json"
    predictions.write_text('{"Q1": "北京",\n "Q2": }\n', encoding="utf-8")
    status, out, err = run_cli(capsys, dataset, predictions)
    assert status == 2 and out == ""
    # Line 2 is ' "Q2": }': the "}" where a value was expected is column 8.
    assert err == "error: %s:2:8: Expecting value\n" % predictions
    assert "Traceback" not in err


def test_cli_invalid_utf8_reports_line_and_column(tmp_path, capsys):
    dataset = write_json(tmp_path / "dev.json", SMALL_DATASET)
    predictions = tmp_path / "pred.json"
    predictions.write_bytes(b'{\n  "Q1": "\xff"}')
    status, _, err = run_cli(capsys, dataset, predictions)
    assert status == 2
    assert err.startswith("error: %s:2:10: not valid UTF-8" % predictions)


def test_cli_missing_file(tmp_path, capsys):
    predictions = write_json(tmp_path / "pred.json", {})
    missing = tmp_path / "nope.json"
    status, _, err = run_cli(capsys, missing, predictions)
    assert status == 2
    assert err.startswith("error: %s: " % missing) and "Traceback" not in err


def test_cli_dataset_without_data_list(tmp_path, capsys):
    dataset = write_json(tmp_path / "dev.json", {"version": "1"})
    predictions = write_json(tmp_path / "pred.json", {})
    status, _, err = run_cli(capsys, dataset, predictions)
    assert status == 2
    assert err == 'error: %s: the dataset has no "data" list\n' % dataset


def test_cli_predictions_must_map_ids_to_strings(tmp_path, capsys):
    dataset = write_json(tmp_path / "dev.json", SMALL_DATASET)
    predictions = write_json(tmp_path / "pred.json", {"Q1": "北京", "Q2": ["x"]})
    status, _, err = run_cli(capsys, dataset, predictions)
    assert status == 2
    assert err.startswith("error: %s: prediction for 'Q2'" % predictions)
    predictions = write_json(tmp_path / "pred.json", ["北京"])
    status, _, err = run_cli(capsys, dataset, predictions)
    assert status == 2 and "must be a JSON object" in err


# --------------------------------------------------------------------------
# Real data: the CMRC 2018 dev set.
# --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def cmrc_dev():
    """The parsed CMRC 2018 dev set (skips when ../shared is absent)."""
    path = shared_file("data", "cmrc2018", "cmrc2018_dev.json")
    return json.loads(path.read_text(encoding="utf-8"))


def first_answers(dataset):
    """{id: first reference answer} for every question of a SQuAD dataset."""
    return {qa["id"]: qa["answers"][0]["text"]
            for article in dataset["data"]
            for paragraph in article["paragraphs"]
            for qa in paragraph["qas"]}


def test_dev_set_first_answers_score_100(cmrc_dev):
    predictions = first_answers(cmrc_dev)
    result = cmrc.evaluate(cmrc_dev, predictions)
    assert result["TOTAL"] == len(predictions) == 3219
    assert result["SKIP"] == 0
    assert result["F1"] == pytest.approx(100.0)
    assert result["EM"] == pytest.approx(100.0)
    assert result["AVERAGE"] == pytest.approx(100.0)


def test_dev_set_half_the_predictions(cmrc_dev, tmp_path, capsys):
    ids = sorted(first_answers(cmrc_dev))
    kept = {qid: text for qid, text in first_answers(cmrc_dev).items()
            if qid in set(ids[::2])}
    left_out = len(ids) - len(kept)
    dataset = write_json(tmp_path / "dev.json", cmrc_dev)
    predictions = write_json(tmp_path / "pred.json", kept)
    status, out, err = run_cli(capsys, dataset, predictions)
    assert status == 0 and err == ""
    result = json.loads(out)
    assert result["TOTAL"] == 3219
    assert result["SKIP"] == left_out == 1609
    # Every answered question scores 100, every skipped one 0.
    expected = round(100.0 * len(kept) / len(ids), 3)
    assert result["EM"] == result["F1"] == result["AVERAGE"] == expected
