"""Fine-tuning task readers, featurisation and scorers (finetune/classification.py,
finetune/tagging.py, finetune/task_builder.py).

Small files in each accepted layout are written to tmp_path; the real public copies in
../shared/data are read where they exist, and their counts checked against SOURCE.md.
"""

import json
import logging
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from configure_finetuning import FinetuningConfig
from finetune import preprocessing
from finetune.classification import ClassificationScorer, truncate_pair
from finetune.tagging import TaggingScorer, extract_entities, windows
from tests.conftest import REPO, shared_file
from finetune.task_builder import get_task, get_tasks
from model.tokenization import FullTokenizer
from util.errors import InputError

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
VOCAB = REPO_ROOT / "sample_data" / "vocab.txt"

MSRA_LABELS = ["O", "B-NR", "B-NS", "B-NT", "I-NR", "I-NS", "I-NT", "S-NR", "S-NS", "S-NT"]


@pytest.fixture(scope="module")
def tokenizer():
    return FullTokenizer(str(VOCAB))


@pytest.fixture
def make_task(tmp_path, tokenizer):
    """make_task(name, {file name: text}, **hparams): the task over files written to
    tmp_path/finetuning_data/<name>/."""
    def make(name, files, **hparams):
        task_dir = tmp_path / "finetuning_data" / name
        task_dir.mkdir(parents=True, exist_ok=True)
        for file_name, text in files.items():
            (task_dir / file_name).write_text(text, encoding="utf-8")
        config = FinetuningConfig("m", str(tmp_path), task_names=[name], **hparams)
        return get_task(config, name, tokenizer)
    return make


def tsv(*rows):
    return "".join("\t".join(row) + "\n" for row in rows)


def json_lines(*records):
    return "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records)


def fields(examples, *names):
    return [tuple(getattr(ex, name) for name in names) for ex in examples]


def tokens_of(tokenizer, feature):
    ids = [i for i, m in zip(feature["input_ids"], feature["input_mask"]) if m]
    return tokenizer.convert_ids_to_tokens(ids)


def one_hot_logits(label_ids, num_labels):
    """Logits whose argmax is label_ids (per position for tagging)."""
    return np.eye(num_labels)[np.asarray(label_ids)] * 5.0


# ---------------------------------------------------------------------------
# Readers on small files in each layout
# ---------------------------------------------------------------------------

def test_chnsenticorp_reads_columns_by_header_name(make_task):
    task = make_task("chnsenticorp", {
        "train.tsv": tsv(("label", "text_a"), ("1", "很好"), ("0", "太差")),
        "dev.tsv": tsv(("qid", "label", "text_a"), ("0", "1", "不错")),
        "test.tsv": tsv(("qid", "text_a"), ("0", "一般")),  # the ERNIE test file: no label
    })
    assert task.task_type == "classification" and task.label_list == ["0", "1"]
    assert fields(task.get_examples("train"), "eid", "text_a", "text_b", "label") == [
        (0, "很好", None, "1"), (1, "太差", None, "0")]
    assert fields(task.get_examples("dev"), "text_a", "label") == [("不错", "1")]
    assert fields(task.get_examples("test"), "text_a", "label", "gold_labels") == [
        ("一般", None, [])]


@pytest.mark.parametrize("name,file_name", [("lcqmc", "dev.txt"), ("bqcorpus", "dev.tsv")])
def test_question_matching_with_and_without_header(make_task, name, file_name):
    rows = [("怎么还款", "如何还钱", "1"), ("借款", "天气", "0")]
    headed = make_task(name, {file_name: tsv(("text_a", "text_b", "label"), *rows)})
    assert fields(headed.get_examples("dev"), "text_a", "text_b", "label") == rows
    bare = make_task(name, {file_name: tsv(*rows)})  # the published BQ / LCQMC layout
    assert fields(bare.get_examples("dev"), "text_a", "text_b", "label") == rows


def test_question_matching_test_file_may_lack_labels(make_task):
    task = make_task("bqcorpus", {"test.tsv": tsv(("为啥", "为什么")),
                                  "dev.tsv": tsv(("为啥", "为什么"))})
    assert fields(task.get_examples("test"), "text_b", "label") == [("为什么", None)]
    with pytest.raises(InputError, match=r"dev\.tsv:1: 2 tab-separated columns, expected 3"):
        task.get_examples("dev")  # dev needs labels to be scored


def test_xnli_chinese_electra_train_layout(make_task):
    task = make_task("xnli", {"train.tsv": tsv(
        ("premise", "hypo", "label"), ("他来了", "他没来", "contradictory"),
        ("他来了", "有人来了", "entailment"))})
    assert fields(task.get_examples("train"), "text_a", "text_b", "label") == [
        ("他来了", "他没来", "contradictory"), ("他来了", "有人来了", "entailment")]
    assert task.label_list == ["contradictory", "entailment", "neutral"]


def test_xnli_ernie_layout_accepts_contradiction(make_task):
    task = make_task("xnli", {"dev.tsv": tsv(
        ("text_a", "text_b", "label"), ("甲", "乙", "contradiction"), ("甲", "丙", "neutral"))})
    assert [ex.label for ex in task.get_examples("dev")] == ["contradictory", "neutral"]


def test_xnli_official_tsv_keeps_only_zh_rows(make_task):
    header = ["language", "gold_label", "sentence1_binary_parse", "sentence2_binary_parse",
              "sentence1_parse", "sentence2_parse", "sentence1", "sentence2", "promptID",
              "pairID", "genre", "label1", "label2", "label3", "label4"]  # 15 columns

    def row(language, label, s1, s2):
        values = [language, label, "", "", "", "", s1, s2, "1", "2", "slate"] + [label] * 4
        return tuple(values)
    task = make_task("xnli", {"dev.tsv": tsv(
        header, row("en", "neutral", "He came.", "He left."),
        row("zh", "contradiction", "他来了", "他走了"), row("de", "entailment", "Ja", "Ja"),
        row("zh", "entailment", "下雨了", "天气湿"))})
    assert fields(task.get_examples("dev"), "eid", "text_a", "text_b", "label") == [
        (0, "他来了", "他走了", "contradictory"), (1, "下雨了", "天气湿", "entailment")]


def test_xnli_unknown_header_is_named(make_task):
    task = make_task("xnli", {"dev.tsv": tsv(("a", "b", "c"), ("1", "2", "3"))})
    with pytest.raises(InputError, match=r"dev\.tsv:1: unrecognised XNLI header"):
        task.get_examples("dev")


def test_tnews_tsv_and_json_with_labels_json(make_task):
    labels = json_lines({"label": "100", "label_desc": "news_story"},
                        {"label": "102", "label_desc": "news_entertainment"},
                        {"label": "101", "label_desc": "news_culture"})
    task = make_task("tnews", {
        "labels.json": labels,
        "train.tsv": tsv(("明星自拍", "news_entertainment"), ("一个故事", "news_story")),
        "dev.json": json_lines({"label": "101", "label_desc": "news_culture",
                                "sentence": "书法展", "keywords": "书法"}),
        "test.json": json_lines({"id": 0, "sentence": "新电影", "keywords": ""}),
    })
    # labels.json order, not sorted
    assert task.label_list == ["news_story", "news_entertainment", "news_culture"]
    assert fields(task.get_examples("train"), "text_a", "text_b", "label") == [
        ("明星自拍", None, "news_entertainment"), ("一个故事", None, "news_story")]
    assert fields(task.get_examples("dev"), "text_a", "label") == [("书法展", "news_culture")]
    assert fields(task.get_examples("test"), "text_a", "label") == [("新电影", None)]


def test_tnews_labels_from_training_file_without_labels_json(make_task):
    task = make_task("tnews", {
        "train.json": json_lines({"sentence": "甲", "label_desc": "news_game"},
                                 {"sentence": "乙", "label_desc": "news_car"},
                                 {"sentence": "丙", "label_desc": "news_game"}),
        "dev.json": json_lines({"sentence": "丁", "label_desc": "news_stock"})})
    assert task.label_list == ["news_car", "news_game"]  # sorted
    with pytest.raises(InputError, match=r"dev\.json:1: unknown label 'news_stock'"):
        task.get_examples("dev")


def test_ocnli_falls_back_to_train_10k_and_skips_dash(make_task, caplog):
    def pair(label):
        return {"sentence1": "他在家", "sentence2": "他不在外面", "label": label, "genre": "lit"}
    task = make_task("ocnli", {
        "train.10k.json": json_lines(pair("entailment"), pair("-"), pair("neutral")),
        "test.json": json_lines({"sentence1": "甲", "sentence2": "乙", "id": 0})})
    with caplog.at_level(logging.INFO, logger="finetune.classification"):
        examples = task.get_examples("train")
    assert fields(examples, "eid", "label") == [(0, "entailment"), (1, "neutral")]
    assert "skipped 1 pairs labelled '-'" in caplog.text
    assert [ex.label for ex in task.get_examples("test")] == [None]


def cail_case(fact, *charges):
    return {"fact": fact, "meta": {"accusation": list(charges), "relevant_articles": [264],
                                   "term_of_imprisonment": {"death_penalty": False,
                                                            "life_imprisonment": False,
                                                            "imprisonment": 6},
                                   "punish_of_money": 1000, "criminals": ["张某"]}}


def test_cail2018_labels_multi_charge_and_unknown_charges(make_task, caplog):
    task = make_task("cail2018", {
        "data_train.json": json_lines(cail_case("盗窃手机", "盗窃"),
                                      cail_case("打人并抢包", "故意伤害", "抢劫"),
                                      cail_case("偷车", "盗窃")),
        "data_valid.json": json_lines(cail_case("持刀抢劫", "抢劫"),
                                      cail_case("走私文物", "走私文物"),
                                      cail_case("抢劫伤人", "抢劫", "故意伤害")),
    })
    assert task.label_list == sorted(["盗窃", "故意伤害", "抢劫"])
    train = task.get_examples("train")
    assert fields(train, "text_a", "label", "gold_labels")[1] == (
        "打人并抢包", "故意伤害", ["故意伤害", "抢劫"])  # trains on the first charge
    with caplog.at_level(logging.WARNING, logger="finetune.classification"):
        dev = task.get_examples("dev")
    assert fields(dev, "eid", "text_a", "label") == [(0, "持刀抢劫", "抢劫"),
                                                     (1, "抢劫伤人", "抢劫")]
    assert "skipped 1 cases" in caplog.text and "走私文物 (1)" in caplog.text


def test_cail2018_accepts_short_file_names(make_task):
    task = make_task("cail2018", {"train.json": json_lines(cail_case("偷", "盗窃")),
                                  "dev.json": json_lines(cail_case("偷", "盗窃"))})
    assert [ex.label for ex in task.get_examples("dev")] == ["盗窃"]


def test_msra_ner_reads_sentences_and_labels_txt(make_task):
    text = "张 B-NR\n三 I-NR\n去 O\n\n\n京 S-NS\n。 O"  # two blank lines; no final newline
    task = make_task("msra-ner", {"dev.ner": text, "labels.txt": "\n".join(MSRA_LABELS)})
    assert task.task_type == "tagging" and task.label_list == MSRA_LABELS
    assert fields(task.get_examples("dev"), "eid", "chars", "labels") == [
        (0, ["张", "三", "去"], ["B-NR", "I-NR", "O"]), (1, ["京", "。"], ["S-NS", "O"])]


def test_msra_ner_bmes_tags_become_bios(make_task):
    # The public MSRA copy is BMES although its labels.txt lists B-/I-/S- labels.
    task = make_task("msra-ner", {"test.txt": "中 B-NT\n共 M-NT\n党 E-NT\n京 S-NS\n"})
    assert task.get_examples("test")[0].labels == ["B-NT", "I-NT", "I-NT", "S-NS"]


def test_peoples_daily_ner_files_and_s_tags(make_task):
    task = make_task("peoples-daily-ner", {"example.dev": "在 O\n北 B-LOC\n京 I-LOC\n",
                                           "test.txt": "沪 S-LOC\n"})
    assert task.label_list == ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"]
    assert task.get_examples("dev")[0].labels == ["O", "B-LOC", "I-LOC"]
    assert task.get_examples("test")[0].labels == ["B-LOC"]  # no S- in BIO: a one-char B-


# ---------------------------------------------------------------------------
# The real files in ../shared/data
# ---------------------------------------------------------------------------

def link_shared(tmp_path, task_name, links):
    """Symlink shared files into tmp_path/finetuning_data/<task>/ under reader names,
    with the task's label file (tnews labels.json, msra-ner labels.txt)."""
    task_dir = tmp_path / "finetuning_data" / task_name
    task_dir.mkdir(parents=True, exist_ok=True)
    if task_name == "tnews":
        links = dict(links, **{"tnews/labels.json": "labels.json"})
    elif task_name == "msra-ner":
        links = dict(links, **{"msra-ner/labels.txt": "labels.txt"})
    for source, name in links.items():
        path = SHARED_DATA / source
        if not path.exists():
            pytest.skip("needs %s (the ../shared folder beside the repo is absent)" % path)
        (task_dir / name).symlink_to(path)


REAL_SETS = [  # task, shared file -> reader name, split, count (SOURCE.md), labels
    # (tnews also needs its labels.json: see link_shared)
    ("chnsenticorp", "chnsenticorp/train.tsv", "train.tsv", "train", 9600, {"0", "1"}),
    ("chnsenticorp", "chnsenticorp/dev.tsv", "dev.tsv", "dev", 1200, {"0", "1"}),
    ("chnsenticorp", "chnsenticorp/test.tsv", "test.tsv", "test", 1200, {None}),
    ("lcqmc", "lcqmc/dev.txt", "dev.txt", "dev", 8802, {"0", "1"}),
    ("lcqmc", "lcqmc/test.txt", "test.txt", "test", 12500, {"0", "1"}),
    ("bqcorpus", "bqcorpus/dev.tsv", "dev.tsv", "dev", 10000, {"0", "1"}),
    ("bqcorpus", "bqcorpus/test.tsv", "test.tsv", "test", 10000, {None}),
    ("xnli", "xnli/dev.tsv", "dev.tsv", "dev", 2490,
     {"contradictory", "entailment", "neutral"}),
    ("xnli", "xnli/test.tsv", "test.tsv", "test", 5010,
     {"contradictory", "entailment", "neutral"}),
    ("tnews", "tnews/dev.json", "dev.json", "dev", 10000, None),
    # OCNLI: SOURCE.md's 10,000 and 2,999 are line counts; the files hold 10,000 and
    # 3,000 records (no final newline), of which 15 and 50 are labelled "-".
    ("ocnli", "ocnli/train.10k.json", "train.10k.json", "train", 10000 - 15,
     {"entailment", "neutral", "contradiction"}),
    ("ocnli", "ocnli/dev.json", "dev.json", "dev", 3000 - 50,
     {"entailment", "neutral", "contradiction"}),
]


@pytest.mark.parametrize("name,source,file_name,split,count,labels", REAL_SETS,
                         ids=["%s-%s" % (s[0], s[3]) for s in REAL_SETS])
def test_real_classification_sets(tmp_path, tokenizer, name, source, file_name, split,
                                  count, labels):
    link_shared(tmp_path, name, {source: file_name})
    config = FinetuningConfig("m", str(tmp_path), task_names=[name])
    examples = get_task(config, name, tokenizer).get_examples(split)
    assert len(examples) == count
    if labels is not None:
        assert {ex.label for ex in examples} == labels


def test_real_tnews_labels_and_train_tsv(tmp_path, tokenizer):
    link_shared(tmp_path, "tnews", {"tnews/train.tsv": "train.tsv"})
    task = get_task(FinetuningConfig("m", str(tmp_path), task_names=["tnews"]), "tnews",
                    tokenizer)
    assert len(task.label_list) == 15
    assert task.label_list[:3] == ["news_story", "news_culture", "news_entertainment"]
    examples = task.get_examples("train")
    assert len(examples) == 53360
    assert {ex.label for ex in examples} <= set(task.label_list)


REAL_NER = [  # task, shared file -> reader name, split, sentences, labels never used
    ("msra-ner", "msra-ner/dev.ner", "dev.ner", "dev", 4636, {"S-NT"}),
    ("msra-ner", "msra-ner/test.ner", "test.ner", "test", 4365, set()),
    ("peoples-daily-ner", "peoples-daily-ner/example.dev", "example.dev", "dev", 2318,
     set()),
    ("peoples-daily-ner", "peoples-daily-ner/example.test", "example.test", "test", 4636,
     set()),
]


@pytest.mark.parametrize("name,source,file_name,split,count,unused", REAL_NER,
                         ids=["%s-%s" % (s[0], s[3]) for s in REAL_NER])
def test_real_ner_sets(tmp_path, tokenizer, name, source, file_name, split, count, unused):
    link_shared(tmp_path, name, {source: file_name})
    task = get_task(FinetuningConfig("m", str(tmp_path), task_names=[name]), name,
                    tokenizer)
    examples = task.get_examples(split)
    assert len(examples) == count
    used = {label for ex in examples for label in ex.labels}
    assert used == set(task.label_list) - unused
    if name == "msra-ner":
        assert task.label_list == MSRA_LABELS


def test_real_msra_dev_round_trip_with_windows(tmp_path, tokenizer):
    """Featurise the whole dev set in 32-token windows and score gold logits: every
    character comes back with its label and the scores are perfect."""
    link_shared(tmp_path, "msra-ner", {"msra-ner/dev.ner": "dev.ner"})
    task = get_task(FinetuningConfig("m", str(tmp_path), task_names=["msra-ner"],
                                     max_seq_length=32), "msra-ner", tokenizer)
    examples = task.get_examples("dev")
    scorer = task.get_scorer("dev")
    num_features = 0
    for example in examples:
        for feature in task.featurize(example, is_training=False):
            num_features += 1
            scorer.update(feature, {"logits": one_hot_logits(feature["label_ids"], 10),
                                    "loss": 0.0})
    assert num_features > len(examples)  # some sentences needed several windows
    predictions = scorer.get_predictions()
    assert all(predictions[ex.eid] == ex.labels for ex in examples)
    assert scorer.get_results() == {"precision": 100.0, "recall": 100.0, "f1": 100.0,
                                    "loss": 0.0}


# ---------------------------------------------------------------------------
# Classification featurisation
# ---------------------------------------------------------------------------

def test_single_sentence_feature_layout(make_task, tokenizer):
    task = make_task("chnsenticorp", {"dev.tsv": tsv(("label", "text_a"), ("1", "好ok"))},
                     max_seq_length=8)
    [feature] = task.featurize(task.get_examples("dev")[0], is_training=False)
    assert tokens_of(tokenizer, feature) == ["[CLS]", "好", "ok", "[SEP]"]
    assert feature["input_mask"] == [1, 1, 1, 1, 0, 0, 0, 0]
    assert feature["segment_ids"] == [0] * 8
    assert feature["input_ids"][4:] == [0] * 4
    assert feature["label_ids"] == 1 and feature["eid"] == 0
    assert [(s.name, s.shape) for s in task.feature_specs()] == [
        ("input_ids", [8]), ("input_mask", [8]), ("segment_ids", [8]),
        ("label_ids", []), ("eid", [])]


def test_single_sentence_truncated_to_max_seq_length(make_task, tokenizer):
    task = make_task("chnsenticorp", {"dev.tsv": tsv(("label", "text_a"),
                                                     ("0", "一二三四五六七八九十"))},
                     max_seq_length=8)
    [feature] = task.featurize(task.get_examples("dev")[0], is_training=False)
    assert tokens_of(tokenizer, feature) == ["[CLS]", "一", "二", "三", "四", "五", "六",
                                             "[SEP]"]
    assert all(len(feature[s.name]) == 8 for s in task.feature_specs() if s.shape)


def test_pair_feature_layout_and_truncation(make_task, tokenizer):
    task = make_task("lcqmc", {"dev.txt": tsv(("一二三四五六", "七八", "1"),
                                              ("一二三", "四五六七八", "0"))},
                     max_seq_length=10)
    first, second = task.get_examples("dev")
    [feature] = task.featurize(first, is_training=False)
    # 6 + 2 tokens, room for 7: the longer a loses its last token.
    assert tokens_of(tokenizer, feature) == ["[CLS]", "一", "二", "三", "四", "五", "[SEP]",
                                             "七", "八", "[SEP]"]
    assert feature["segment_ids"] == [0] * 7 + [1] * 3
    assert feature["input_mask"] == [1] * 10
    [feature] = task.featurize(second, is_training=False)
    # 3 + 5: now b is the longer and loses its last token.
    assert tokens_of(tokenizer, feature) == ["[CLS]", "一", "二", "三", "[SEP]",
                                             "四", "五", "六", "七", "[SEP]"]
    assert feature["segment_ids"] == [0] * 5 + [1] * 5


def test_truncate_pair_pops_b_on_a_tie():
    assert truncate_pair(list("abcd"), list("wxyz"), 8) == (list("abc"), list("wx"))
    assert truncate_pair(list("ab"), None, 3) == (["a"], None)


def test_double_unordered_adds_swapped_pair_for_training_only(make_task, tokenizer):
    task = make_task("lcqmc", {"train.tsv": tsv(("你好", "再见", "0"))},
                     double_unordered=True)
    example = task.get_examples("train")[0]
    straight, swapped = task.featurize(example, is_training=True)
    assert tokens_of(tokenizer, straight) == ["[CLS]", "你", "好", "[SEP]", "再", "见",
                                              "[SEP]"]
    assert tokens_of(tokenizer, swapped) == ["[CLS]", "再", "见", "[SEP]", "你", "好",
                                             "[SEP]"]
    assert swapped["eid"] == straight["eid"] == 0
    assert len(task.featurize(example, is_training=False)) == 1
    xnli = make_task("xnli", {"train.tsv": tsv(("premise", "hypo", "label"),
                                               ("甲", "乙", "neutral"))},
                     double_unordered=True)
    assert len(xnli.featurize(xnli.get_examples("train")[0], is_training=True)) == 1


def test_unlabelled_test_example_gets_label_id_zero(make_task):
    task = make_task("tnews", {"labels.json": json_lines({"label_desc": "news_car"},
                                                         {"label_desc": "news_game"}),
                               "test.json": json_lines({"sentence": "新车"})})
    [feature] = task.featurize(task.get_examples("test")[0], is_training=False)
    assert feature["label_ids"] == 0 and feature["_gold_ids"] == []


# ---------------------------------------------------------------------------
# Tagging featurisation
# ---------------------------------------------------------------------------

def test_tagging_labels_go_to_first_sub_token(make_task, tokenizer):
    # 한 becomes three pieces; U+200B is dropped by the tokenizer and stands in as [UNK].
    task = make_task("peoples-daily-ner", {"example.dev": (
        "金 B-PER\n한 I-PER\n\u200b O\nA B-ORG\n")}, max_seq_length=12)
    [feature] = task.featurize(task.get_examples("dev")[0], is_training=False)
    assert tokens_of(tokenizer, feature) == ["[CLS]", "金", "ᄒ", "##ᅡ", "##ᆫ", "[UNK]", "a",
                                             "[SEP]"]
    ids = {label: i for i, label in enumerate(task.label_list)}
    assert feature["label_ids"] == [0, ids["B-PER"], ids["I-PER"], 0, 0, ids["O"],
                                    ids["B-ORG"], 0, 0, 0, 0, 0]
    assert feature["label_mask"] == [0, 1, 1, 0, 0, 1, 1, 0, 0, 0, 0, 0]
    assert feature["segment_ids"] == [1] * 8 + [0] * 4  # official: 1 on every real token
    assert feature["input_mask"] == [1] * 8 + [0] * 4
    assert (feature["_char_start"], feature["_num_chars"]) == (0, 4)
    assert [(s.name, s.shape) for s in task.feature_specs()] == [
        ("input_ids", [12]), ("input_mask", [12]), ("segment_ids", [12]),
        ("label_ids", [12]), ("label_mask", [12]), ("eid", [])]


def test_tagging_segment_ids_are_one_on_every_real_token_of_every_window(make_task):
    """The official tagging featurisation (ELECTRA finetune/tagging/tagging_tasks.py) sets
    segment_ids = pad([1] * len(input_ids)): 1 on [CLS], the tokens and [SEP], 0 on the
    padding, in every window of a long sentence."""
    chars = "一二三四五六七八九十百千万亿零两"  # 16 characters: windows of 6, 6 and 4
    task = make_task("msra-ner", {"dev.ner": "".join("%s O\n" % c for c in chars)},
                     max_seq_length=8)
    features = task.featurize(task.get_examples("dev")[0], is_training=False)
    assert [(f["_char_start"], f["_num_chars"]) for f in features] == [(0, 6), (6, 6),
                                                                        (12, 4)]
    assert [f["segment_ids"] for f in features] == [[1] * 8, [1] * 8, [1] * 6 + [0] * 2]
    assert all(f["segment_ids"] == f["input_mask"] for f in features)


def test_tagging_featurisation_version_is_in_the_cache_key(make_task, monkeypatch):
    """Cached tfrecords are keyed by the data and the settings, not by the code: the
    tagging tasks' featurisation version is in the key, so tfrecords written before
    segment_ids became the official ones (version 2) are rebuilt, not reused."""
    task = make_task("msra-ner", {"train.ner": "一 O\n"}, vocab_file=str(VOCAB))
    key = preprocessing.cache_key(task, "train", task.config)
    assert type(task).featurization_version >= 2
    monkeypatch.setattr(type(task), "featurization_version",
                        type(task).featurization_version + 1)
    assert preprocessing.cache_key(task, "train", task.config) != key


def test_windows_split_at_character_boundaries():
    assert windows([1] * 14, 6) == [(0, 6), (6, 12), (12, 14)]
    # A 3-piece character does not fit after 4 others: it opens the next window.
    assert windows([1, 1, 1, 1, 3, 1], 6) == [(0, 4), (4, 6)]
    assert windows([], 6) == []


def test_long_sentence_windows_and_reassembly(make_task, tokenizer):
    chars = "一二三四五六七八九十百千万亿"  # 14 characters, 6 per window at length 8
    labels = ["B-LOC", "I-LOC"] + ["O"] * 10 + ["B-PER", "I-PER"]
    task = make_task("peoples-daily-ner", {"example.dev": "".join(
        "%s %s\n" % pair for pair in zip(chars, labels))}, max_seq_length=8)
    example = task.get_examples("dev")[0]
    features = task.featurize(example, is_training=False)
    assert [(f["_char_start"], f["_num_chars"]) for f in features] == [(0, 6), (6, 6),
                                                                       (12, 2)]
    assert tokens_of(tokenizer, features[2]) == ["[CLS]", "万", "亿", "[SEP]"]
    scorer = task.get_scorer("dev")
    for feature in reversed(features):  # order of arrival does not matter
        scorer.update(feature, {"logits": one_hot_logits(feature["label_ids"], 7),
                                "loss": 0.5})
    assert scorer.get_predictions() == {0: labels}
    assert scorer.get_results()["f1"] == 100.0


def test_tagging_scorer_detects_a_missing_window(make_task):
    task = make_task("peoples-daily-ner", {"example.dev": "甲 O\n" * 10}, max_seq_length=8)
    _, second = task.featurize(task.get_examples("dev")[0], is_training=False)
    scorer = task.get_scorer("dev")
    scorer.update(second, {"logits": one_hot_logits(second["label_ids"], 7), "loss": 0.0})
    with pytest.raises(ValueError, match="window starting at character 0 is missing"):
        scorer.get_results()


# ---------------------------------------------------------------------------
# Scorers
# ---------------------------------------------------------------------------

def classification_feature(eid, gold_ids):
    return {"eid": eid, "_gold_ids": gold_ids, "label_ids": gold_ids[0] if gold_ids else 0}


def test_accuracy_loss_and_predictions():
    scorer = ClassificationScorer(["a", "b", "c"])
    cases = [(0, [0], [3, 1, 0], 0.2),  # right
             (1, [1], [0, 2, 1], 0.4),  # right
             (2, [2], [2, 1, 0], 0.6),  # wrong: predicts a
             (3, [1], [0, 1, 0], 0.8),  # right
             (4, [], [0, 0, 1], 1.0)]   # unlabelled: a prediction, not in accuracy
    for eid, gold, logits, loss in cases:
        scorer.update(classification_feature(eid, gold), {"logits": np.array(logits),
                                                          "loss": loss})
    results = scorer.get_results()
    assert results["accuracy"] == 75.0
    # The loss of the labelled rows only: an unlabelled row's is against a placeholder label.
    assert results["loss"] == pytest.approx((0.2 + 0.4 + 0.6 + 0.8) / 4)
    assert "macro_f1" not in results
    assert scorer.get_predictions() == {0: "a", 1: "b", 2: "a", 3: "b", 4: "c"}


def test_cail_accuracy_any_charge_and_macro_f1():
    # Labels A B C D (D never occurs, so it has no F1 and is left out of the average).
    # case 1 gold {A} pred A: right.      case 2 gold {A} pred B: wrong.
    # case 3 gold {B, C} pred C: right (any charge counts; judged as a C).
    # case 4 gold {B} pred B: right.      accuracy 3/4 = 75.
    # A: TP 1, FN 1 (case 2)  -> P 1,   R 1/2, F1 2/3
    # B: TP 1, FP 1 (case 2)  -> P 1/2, R 1,   F1 2/3
    # C: TP 1                 -> F1 1.   macro-F1 = (2/3 + 2/3 + 1) / 3 = 7/9
    scorer = ClassificationScorer(["A", "B", "C", "D"], report_macro_f1=True)
    for eid, gold, pred in [(0, [0], 0), (1, [0], 1), (2, [1, 2], 2), (3, [1], 1)]:
        scorer.update(classification_feature(eid, gold),
                      {"logits": one_hot_logits(pred, 4), "loss": 1.0})
    results = scorer.get_results()
    assert results["accuracy"] == 75.0
    assert results["macro_f1"] == pytest.approx(700.0 / 9)
    assert results["loss"] == 1.0


def test_cail2018_task_scorer_reports_macro_f1(make_task):
    task = make_task("cail2018", {
        "data_train.json": json_lines(cail_case("偷", "盗窃"), cail_case("打", "故意伤害")),
        "data_valid.json": json_lines(cail_case("偷打", "故意伤害", "盗窃"))})
    [feature] = task.featurize(task.get_examples("dev")[0], is_training=False)
    scorer = task.get_scorer("dev")
    scorer.update(feature, {"logits": one_hot_logits(task.label_list.index("盗窃"), 2),
                            "loss": 0.3})
    assert scorer.get_results() == {"accuracy": 100.0, "macro_f1": 100.0, "loss": 0.3}


def test_extract_entities_conlleval_rules():
    tags = ["B-PER", "I-LOC", "I-LOC", "O", "I-PER", "E-PER", "S-ORG", "M-ORG", "B-PER",
            "B-PER", "I-PER"]
    assert extract_entities(tags) == [
        (0, 1, "PER"),  # B-PER cut short by an I- of another type
        (1, 3, "LOC"),  # ... which starts its own entity
        (4, 6, "PER"),  # I- after O starts an entity; E- ends it
        (6, 7, "ORG"),  # S- single
        (7, 8, "ORG"),  # M- after a closed S- starts a new one
        (8, 9, "PER"),  # B- B-: two entities
        (9, 11, "PER")]


def tagging_update(scorer, eid, gold, pred, label_list):
    """Score one sentence given gold and predicted tags (one token per character)."""
    length = len(gold) + 2
    to_ids = [label_list.index(tag) for tag in gold]
    feature = {"eid": eid, "_char_start": 0, "_num_chars": len(gold),
               "label_ids": [0] + to_ids + [0], "label_mask": [0] + [1] * len(gold) + [0]}
    logits = np.zeros((length, len(label_list)))
    for position, tag in enumerate(pred, start=1):
        logits[position, label_list.index(tag)] = 1.0
    scorer.update(feature, {"logits": logits, "loss": 0.1})


def test_entity_precision_recall_f1_hand_worked():
    sentences = [
        # gold: NR 0-2, NS 3-4 (S- single).   pred: the same.        -> 2 right
        (["B-NR", "I-NR", "O", "S-NS", "O"], ["B-NR", "I-NR", "O", "S-NS", "O"]),
        # gold: NT 0-2.  pred: I- without B- starts NT 0-2.           -> 1 right
        (["B-NT", "I-NT", "O"], ["I-NT", "I-NT", "O"]),
        # gold: NR 0-1, NR 1-2 (two singles).  pred: one NR 0-2.      -> 0 right
        (["S-NR", "S-NR"], ["B-NR", "I-NR"]),
        # gold: none.  pred: NS 0-1 (I- start), NS 1-2 (B-).          -> 0 right
        (["O", "O"], ["I-NS", "B-NS"]),
    ]
    # gold entities 2+1+2+0 = 5, predicted 2+1+1+2 = 6, right 3:
    # P = 3/6 = 50, R = 3/5 = 60, F1 = 2 * 50 * 60 / 110 = 54.545...
    scorer = TaggingScorer(MSRA_LABELS)
    for eid, (gold, pred) in enumerate(sentences):
        tagging_update(scorer, eid, gold, pred, MSRA_LABELS)
    results = scorer.get_results()
    assert results["precision"] == pytest.approx(50.0)
    assert results["recall"] == pytest.approx(60.0)
    assert results["f1"] == pytest.approx(6000.0 / 110)
    assert results["loss"] == pytest.approx(0.1)


def test_entity_scores_are_zero_without_entities():
    scorer = TaggingScorer(MSRA_LABELS)
    tagging_update(scorer, 0, ["O", "O"], ["O", "O"], MSRA_LABELS)
    assert scorer.get_results() == {"precision": 0.0, "recall": 0.0, "f1": 0.0,
                                    "loss": 0.1}


# ---------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------

def test_wrong_column_count_names_file_and_line(make_task, tmp_path):
    task = make_task("lcqmc", {"train.tsv": tsv(("甲", "乙", "1"), ("甲", "乙", "0"),
                                                ("甲乙", "0"))})
    path = tmp_path / "finetuning_data" / "lcqmc" / "train.tsv"
    with pytest.raises(InputError) as err:
        task.get_examples("train")
    assert "%s:3: 2 tab-separated columns, expected 3" % path in str(err.value)


def test_unknown_label_names_file_and_line(make_task, tmp_path):
    task = make_task("chnsenticorp", {"train.tsv": tsv(("label", "text_a"), ("1", "好"),
                                                       ("2", "坏"))})
    path = tmp_path / "finetuning_data" / "chnsenticorp" / "train.tsv"
    with pytest.raises(InputError, match="unknown label '2' for chnsenticorp; expected "
                                         "one of 0, 1") as err:
        task.get_examples("train")
    assert str(err.value).startswith("%s:3:" % path)


def test_missing_header_column(make_task):
    task = make_task("chnsenticorp", {"train.tsv": tsv(("1", "好"), ("0", "坏"))})
    with pytest.raises(InputError, match=r"train\.tsv:1: missing column\(s\) text_a, label"):
        task.get_examples("train")


def test_bad_json_line_names_file_and_line(make_task):
    task = make_task("ocnli", {"dev.json": json_lines({"sentence1": "甲", "sentence2": "乙",
                                                      "label": "neutral"})
                               + '{"sentence1": "甲", "sentence2": \n'})
    with pytest.raises(InputError, match=r"dev\.json:2: invalid JSON"):
        task.get_examples("dev")


def test_missing_json_field_and_bad_cail_meta(make_task):
    task = make_task("ocnli", {"dev.json": json_lines({"sentence1": "甲",
                                                      "label": "neutral"})})
    with pytest.raises(InputError, match=r"dev\.json:1: missing field 'sentence2'"):
        task.get_examples("dev")
    cail = make_task("cail2018", {"data_train.json": json_lines(
        {"fact": "偷", "meta": {"accusation": "盗窃"}})})
    with pytest.raises(InputError, match=r"data_train\.json:1: meta\.accusation must be"):
        cail.get_examples("train")


def test_missing_split_file_lists_paths_tried(make_task, tmp_path):
    task = make_task("lcqmc", {})
    task_dir = tmp_path / "finetuning_data" / "lcqmc"
    with pytest.raises(InputError) as err:
        task.get_examples("train")
    message = str(err.value)
    assert str(task_dir / "train.tsv") in message and str(task_dir / "train.txt") in message


@pytest.mark.parametrize("line", ["中O", "中 B-NR extra", "中 "])
def test_bad_ner_line_names_file_and_line(make_task, line):
    task = make_task("msra-ner", {"dev.ner": "因 O\n%s\n" % line})
    with pytest.raises(InputError, match=r"dev\.ner:2: expected `<char> <label>`"):
        task.get_examples("dev")


def test_unknown_ner_label_names_file_and_line(make_task):
    task = make_task("peoples-daily-ner", {"example.dev": "因 O\n\n此 B-XYZ\n"})
    with pytest.raises(InputError, match=r"example\.dev:3: unknown label 'B-XYZ'"):
        task.get_examples("dev")


# ---------------------------------------------------------------------------
# Task builder
# ---------------------------------------------------------------------------

def test_unknown_task_name_suggests_closest(tmp_path, tokenizer):
    config = FinetuningConfig("m", str(tmp_path), task_names=["lcqcm"])
    with pytest.raises(InputError, match="unknown task 'lcqcm'.*did you mean 'lcqmc'"):
        get_tasks(config, tokenizer)


def test_builder_aliases_and_task_types(tmp_path, tokenizer):
    names = ["msra_ner", "peoples_daily_ner", "xnli", "cail2018"]
    config = FinetuningConfig("m", str(tmp_path), task_names=names)
    tasks = get_tasks(config, tokenizer)
    assert [(t.name, t.task_type) for t in tasks] == [
        ("msra_ner", "tagging"), ("peoples_daily_ner", "tagging"),
        ("xnli", "classification"), ("cail2018", "classification")]
    assert tasks[0].label_list == MSRA_LABELS
    twice = FinetuningConfig("m", str(tmp_path), task_names=["msra-ner", "msra_ner"])
    with pytest.raises(InputError, match="task_names lists msra-ner twice"):
        get_tasks(twice, tokenizer)


def test_builder_constructs_qa_tasks_from_finetune_qa(tmp_path, tokenizer, monkeypatch):
    created = []
    fake_qa = types.ModuleType("finetune.qa")
    fake_qa.QATask = lambda config, name, tok: created.append((name, tok)) or "qa task"
    monkeypatch.setitem(sys.modules, "finetune.qa", fake_qa)
    config = FinetuningConfig("m", str(tmp_path), task_names=["drcd"])
    assert get_task(config, "drcd", tokenizer) == "qa task"
    assert created == [("drcd", tokenizer)]


@pytest.mark.parametrize("params_file", sorted(
    p.name for p in (REPO / "params").glob("params_*.json")))
def test_each_shipped_params_file_reads_the_public_splits_or_names_the_hparam(params_file,
                                                                              tmp_path):
    """Every split a shipped params file makes the runner read (dev; test with do_test or
    write_test_outputs) reads from the public copy in ../shared/data, or fails naming
    the hparam to change (the CMRC 2018 and DRCD test sets are not public)."""
    import run_finetuning
    from configure_finetuning import FinetuningConfig
    from finetune import task_builder
    from model import tokenization
    from util.errors import InputError
    from util.hparams import load_hparams
    params = load_hparams(params_file, search_dirs=[run_finetuning.PARAMS_DIR])
    [task_name] = params["task_names"]
    public = shared_file("data", task_name)
    (tmp_path / "finetuning_data").mkdir()
    (tmp_path / "finetuning_data" / task_name).symlink_to(public)
    config = FinetuningConfig("m", str(tmp_path), **params)
    tokenizer = tokenization.build_tokenizer(str(shared_file("data", "vocab", "vocab.txt")))
    [task] = task_builder.get_tasks(config, tokenizer)
    splits = run_finetuning.eval_splits(config)
    assert splits[0] == "dev"
    for split in splits:
        try:
            task.check_split(split, task.get_examples(split), need_labels=split == "dev")
        except InputError as e:
            assert split == "test" and '"write_test_outputs" is true: set both to false' in \
                str(e), (split, str(e))
