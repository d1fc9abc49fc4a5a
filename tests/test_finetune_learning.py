"""Fine-tuning learns: a tiny model from random weights, through run_finetuning, must
solve tasks whose answer a rule decides, and clear the majority class on real reviews.

Each synthetic task hides one rule in random characters, so nothing but learning the
rule scores well; the bars (95% accuracy, 0.9 entity F1, 90 answer F1) are far above
what a constant or random predictor gets (50%, 0, a few F1 points). The real
ChnSentiCorp subset's bar is the dev majority-class rate plus a margin measured on
this code (see test_real_chnsenticorp_beats_the_majority_class).
"""

import io
import json
import random
from contextlib import redirect_stdout

import pytest
import tensorflow.compat.v1 as tf

import configure_finetuning
import run_finetuning
from finetune import model_info
from tests.conftest import SAMPLE_VOCAB, shared_file

# Characters that carry no label (none of the ones the rules below key on).
FILLER = list(
    "的一在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也能下过子说产种面而方后多定行学法所民得经十三之进着等部度家电力里如水化高自二理起小物现实加量都两体制机当使点从业本去把性")
POSITIVE, NEGATIVE = "好", "差"
LOC_MARK = "往"  # places are tagged only in sentences holding it
PLACE_FIRST, PLACE_SECOND = "江河湖海山", "州城县乡村"
# The two kinds of span a question asks for: characters of their first, middle, last place.
SPAN_CHARS = {"甲": ("金木石", "火土风", "云雨雪"), "乙": ("春夏秋", "冬东西", "南北红")}

TINY = {"model_size": "tiny", "save_graph_def": False, "random_init": True, "max_seq_length": 32,
        "train_batch_size": 16, "eval_batch_size": 64, "layerwise_lr_decay": 0.8,
        "log_every_steps": 1000, "num_trials": 1, "seed": 1}


def filler(rng, n):
    return "".join(rng.choice(FILLER) for _ in range(n))


def finetune(data_dir, hparams):
    """Runs run_finetuning on D/models/tiny (random init); returns the dev results."""
    config = run_finetuning.configure_finetuning.FinetuningConfig(
        "tiny", str(data_dir), **dict(TINY, **hparams))
    with redirect_stdout(io.StringIO()):
        results = run_finetuning.run(config)
    return results[hparams["task_names"][0]][0]["results"]["dev"]


@pytest.fixture()
def data_dir(tmp_path):
    (tmp_path / "vocab.txt").write_bytes(SAMPLE_VOCAB.read_bytes())
    return tmp_path


def write_task(data_dir, task, files):
    task_dir = data_dir / "finetuning_data" / task
    task_dir.mkdir(parents=True)
    for name, text in files.items():
        (task_dir / name).write_text(text, encoding="utf-8")


def sentiment_rows(rng, n):
    """label<TAB>text: 12 filler characters with 好 (label 1) or 差 (label 0) inside."""
    rows = []
    for _ in range(n):
        label = rng.randint(0, 1)
        text = filler(rng, 12)
        at = rng.randint(0, len(text))
        rows.append("%d\t%s%s%s" % (label, text[:at], POSITIVE if label else NEGATIVE,
                                   text[at:]))
    return "label\ttext_a\n" + "\n".join(rows) + "\n"


def test_separable_classification_is_learned(data_dir):
    rng = random.Random(0)
    write_task(data_dir, "chnsenticorp", {"train.tsv": sentiment_rows(rng, 480),
                                          "dev.tsv": sentiment_rows(rng, 200)})
    dev = finetune(data_dir, {"task_names": ["chnsenticorp"], "learning_rate": 1e-3,
                              "num_train_epochs": 3})
    assert dev["accuracy"] >= 95.0, dev


def ner_sentences(rng, n):
    """Sentences of filler characters holding one or two two-character places (a
    character of PLACE_FIRST, then one of PLACE_SECOND). They are tagged B-NS I-NS only
    in sentences that also hold 往 somewhere; elsewhere they are O."""
    blocks = []
    for _ in range(n):
        marked = rng.random() < 0.5
        chars = [(c, "O") for c in filler(rng, rng.randint(2, 6))]
        for _ in range(rng.randint(1, 2)):
            first, second = rng.choice(PLACE_FIRST), rng.choice(PLACE_SECOND)
            chars += [(first, "B-NS" if marked else "O"), (second, "I-NS" if marked else "O")]
            chars += [(c, "O") for c in filler(rng, rng.randint(1, 4))]
        if marked:
            chars.insert(rng.randint(0, len(chars)), (LOC_MARK, "O"))
        blocks.append("\n".join("%s %s" % pair for pair in chars))
    return "\n\n".join(blocks) + "\n"


def test_tagging_rule_is_learned(data_dir):
    rng = random.Random(1)
    write_task(data_dir, "msra-ner", {"train.ner": ner_sentences(rng, 400),
                                      "dev.ner": ner_sentences(rng, 150)})
    dev = finetune(data_dir, {"task_names": ["msra-ner"], "learning_rate": 1e-3,
                              "num_train_epochs": 3})
    assert dev["f1"] >= 90.0, dev


def span_dataset(rng, n, prefix):
    """SQuAD-style: each context holds two three-character spans, one of kind 甲 (its
    characters from SPAN_CHARS["甲"], first, middle, last) and one of kind 乙; the
    question names the kind whose span is the answer."""
    paragraphs = []
    for i in range(n):
        spans = {kind: "".join(rng.choice(chars) for chars in SPAN_CHARS[kind])
                 for kind in SPAN_CHARS}
        order = rng.sample(sorted(spans), 2)
        pieces = [filler(rng, rng.randint(1, 6)), spans[order[0]],
                  filler(rng, rng.randint(1, 6)), spans[order[1]], filler(rng, rng.randint(1, 6))]
        context = "".join(pieces)
        kind = rng.choice(order)
        paragraphs.append({"context": context, "qas": [{
            "id": "%s%d" % (prefix, i), "question": kind + "是什么",
            "answers": [{"text": spans[kind], "answer_start": context.index(spans[kind])}]}]})
    return json.dumps({"version": "synthetic", "data": [{"title": "t", "paragraphs":
                                                          paragraphs}]}, ensure_ascii=False)


def test_span_rule_is_learned_by_the_joint_qa_head(data_dir):
    rng = random.Random(2)
    write_task(data_dir, "cmrc2018", {"train.json": span_dataset(rng, 480, "t"),
                                      "dev.json": span_dataset(rng, 150, "d")})
    dev = finetune(data_dir, {"task_names": ["cmrc2018"], "learning_rate": 1e-3,
                              "num_train_epochs": 3, "max_seq_length": 40,
                              "max_query_length": 8, "doc_stride": 32})
    assert dev["f1"] >= 90.0, dev


def test_real_chnsenticorp_beats_the_majority_class(data_dir):
    data = shared_file("data", "chnsenticorp", "train.tsv").parent
    train = data.joinpath("train.tsv").read_text(encoding="utf-8").splitlines()
    dev = data.joinpath("dev.tsv").read_text(encoding="utf-8").splitlines()
    dev = dev[:1 + 400]
    write_task(data_dir, "chnsenticorp", {"train.tsv": "\n".join(train[:1 + 1200]) + "\n",
                                          "dev.tsv": "\n".join(dev) + "\n"})
    column = dev[0].split("\t").index("label")  # dev.tsv is qid<TAB>label<TAB>text_a
    labels = [row.split("\t")[column] for row in dev[1:]]
    majority = 100.0 * max(labels.count(x) for x in set(labels)) / len(labels)
    got = finetune(data_dir, {"task_names": ["chnsenticorp"], "learning_rate": 1e-3,
                              "num_train_epochs": 3, "max_seq_length": 64})
    assert got["accuracy"] >= majority + MARGIN, (got, majority)


# This setting scored 72.8, 74.3, 73.5, 77.5, 75.0 with seeds 1-5 (majority class 54.75%):
# the margin leaves about 3 standard deviations (1.8) below the lowest.
MARGIN = 12.0


def test_several_tasks_train_one_model_with_a_head_each(data_dir):
    """task_names with two tasks: one encoder, one head per task, each example's loss
    from its own task's head; both rules are learned by the one model."""
    rng = random.Random(3)
    write_task(data_dir, "chnsenticorp", {"train.tsv": sentiment_rows(rng, 480),
                                          "dev.tsv": sentiment_rows(rng, 200)})
    write_task(data_dir, "msra-ner", {"train.ner": ner_sentences(rng, 400),
                                      "dev.ner": ner_sentences(rng, 150)})
    config = run_finetuning.configure_finetuning.FinetuningConfig(
        "tiny", str(data_dir), **dict(TINY, task_names=["chnsenticorp", "msra-ner"],
                                      learning_rate=1e-3, num_train_epochs=3))
    with redirect_stdout(io.StringIO()):
        results = run_finetuning.run(config)
    assert results["chnsenticorp"][0]["results"]["dev"]["accuracy"] >= 95.0, results
    assert results["msra-ner"][0]["results"]["dev"]["f1"] >= 90.0, results
    model_dir = config.trial_model_dir("chnsenticorp_msra-ner", 1)
    assert results["chnsenticorp"][0]["model_dir"] == results["msra-ner"][0]["model_dir"] \
        == model_dir
    names = {name for name, _ in tf.train.list_variables(model_dir)
             if not name.endswith(("adam_m", "adam_v")) and name != "global_step"}
    heads = {name for name in names if name.startswith("task_specific/")}
    assert heads == {"task_specific/%s/dense/%s" % (task, v) for task in
                     ("chnsenticorp", "msra-ner") for v in ("kernel", "bias")}
    encoder = names - heads  # one encoder: 16 variables per layer, 5 of embeddings
    assert all(name.startswith("electra/") for name in encoder) and len(encoder) == 2 * 16 + 5
    # Either task's head can be loaded (and exported) from the one trial dir.
    for task in ("chnsenticorp", "msra-ner"):
        loaded = model_info.load(model_dir, configure_finetuning.FinetuningConfig, task)
        assert (loaded.task.name, loaded.info["task"]) == (task, task)
    assert model_info.load(model_dir, configure_finetuning.FinetuningConfig).task.name == (
        "chnsenticorp")
