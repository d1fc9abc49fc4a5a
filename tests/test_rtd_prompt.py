"""Prompt-based classification through ELECTRA's discriminator head (use_rtd_prompt),
zero-shot and few-shot (train_examples_per_label): finetune/rtd_prompt.py,
finetune/heads.py rtd_prompt_head, the runner's zero_shot."""

import io
import json
import random
import shutil
from contextlib import redirect_stdout

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

import run_finetuning
from configure_finetuning import FinetuningConfig
from finetune import heads
from finetune import preprocessing
from finetune import task_builder
from finetune.task import Example
from model import modeling
from model.tokenization import FullTokenizer
from tests.conftest import REPO, SAMPLE_VOCAB
from tests.numpy_reference import checkpoint_values, rtd_prompt_head_reference
from util import checkpoints
from util.errors import InputError

SAMPLE_TASK = REPO / "sample_data" / "finetuning_data" / "chnsenticorp"
PROMPT = {"task_names": ["chnsenticorp"], "use_rtd_prompt": True,
          "rtd_prompt_template": "{text_a}总之很{label}。",
          "rtd_prompt_label_words": {"0": "差", "1": ["好", "不错"]}}
TINY = {"model_size": "tiny", "save_graph_def": False, "max_seq_length": 32,
        "eval_batch_size": 16, "log_every_steps": 50, "learning_rate": 1e-3}


@pytest.fixture(scope="module")
def tokenizer():
    return FullTokenizer(str(SAMPLE_VOCAB))


def prompt_task(tokenizer, tmp_path, **hparams):
    config = FinetuningConfig("m", str(tmp_path), **dict(PROMPT, **hparams))
    [task] = task_builder.get_tasks(config, tokenizer)
    return task


def tokens_of(tokenizer, feature):
    return tokenizer.convert_ids_to_tokens(feature["input_ids"][:sum(feature["input_mask"])])


def test_an_example_becomes_one_sequence_per_label_word(tokenizer, tmp_path):
    task = prompt_task(tokenizer, tmp_path, max_seq_length=12)
    example = Example(7, "chnsenticorp", text_a="房间干净，服务周到，下次还住", text_b=None,
                      label="1", gold_labels=["1"])
    features = task.featurize(example, True)
    # The text is cut to what the template and the longest word (不错) leave: 12 - 2
    # ([CLS], [SEP]) - 4 (总之很。) - 2 = 4 tokens, the same in every candidate.
    assert [tokens_of(tokenizer, f) for f in features] == [
        ["[CLS]", "房", "间", "干", "净", "总", "之", "很", "差", "。", "[SEP]"],
        ["[CLS]", "房", "间", "干", "净", "总", "之", "很", "好", "。", "[SEP]"],
        ["[CLS]", "房", "间", "干", "净", "总", "之", "很", "不", "错", "。", "[SEP]"]]
    assert [[i for i, m in enumerate(f["label_word_mask"]) if m] for f in features] == [
        [8], [8], [8, 9]]
    assert [(f["_candidate_label"], f["is_gold"], f["words_in_label"]) for f in features] == [
        (0, 0, 1), (1, 1, 2), (1, 1, 2)]
    assert all(len(f[spec.name]) == 12 for f in features for spec in task.feature_specs()
               if spec.shape)
    assert all(f["segment_ids"] == [0] * 12 and f["eid"] == 7 for f in features)


def test_a_pair_task_puts_both_texts_in_the_template(tokenizer, tmp_path):
    task = prompt_task(tokenizer, tmp_path, task_names=["lcqmc"], max_seq_length=14,
                       rtd_prompt_template="{text_a}？{label}，{text_b}",
                       rtd_prompt_label_words={"0": "不", "1": "是"})
    example = Example(0, "lcqmc", text_a="今天天气好吗", text_b="天气怎么样", label="0",
                      gold_labels=["0"])
    gold, other = task.featurize(example, False)
    # 14 - 2 - 2 (？，) - 1 = 9 text tokens: the longer text loses its end first.
    assert tokens_of(tokenizer, gold) == ["[CLS]", "今", "天", "天", "气", "好", "？", "不",
                                          "，", "天", "气", "怎", "么", "[SEP]"]
    assert (gold["is_gold"], other["is_gold"]) == (1, 0)


def test_the_scorer_averages_words_and_picks_the_best_label(tokenizer, tmp_path):
    task = prompt_task(tokenizer, tmp_path)
    scorer = task.get_scorer("dev")
    for eid, gold, scores in ((0, [1], (-2.0, -3.0, -0.5)), (1, [0], (-0.1, -0.3, -0.1))):
        for label, score in zip((0, 1, 1), scores):
            scorer.update({"eid": eid, "_candidate_label": label, "_gold_ids": gold},
                          {"word_score": score, "loss": 0.25})
    # Example 0: 差 -2.0 against (好, 不错) (-3.0 + -0.5) / 2 = -1.75: label 1, right.
    # Example 1: -0.1 against -0.2: label 0, right.
    assert scorer.label_scores() == {0: [-2.0, -1.75], 1: [-0.1, pytest.approx(-0.2)]}
    assert scorer.get_predictions() == {0: "1", 1: "0"}
    assert scorer.get_results() == {"accuracy": 100.0, "loss": 0.75}


# (hparams over PROMPT, the message's parts) for settings that cannot work.
BAD = [
    ({"max_seq_length": 8},
     "rtd_prompt_template '{text_a}总之很{label}。' with the label word '不错' takes 8 of "
     "max_seq_length 8 tokens"),
    ({"rtd_prompt_label_words": {"0": "差", "1": "好☃"}},
     "rtd_prompt_label_words {'0': '差', '1': '好☃'}: '好☃' tokenises to 好 [UNK]"),
    ({"rtd_prompt_template": "{text_a}☃很{label}"},
     "rtd_prompt_template '{text_a}☃很{label}': '☃很' tokenises to [UNK] 很"),
    ({"rtd_prompt_label_words": {"0": "差", "2": "好"}},
     "rtd_prompt_label_words {'0': '差', '2': '好'}: '2' is not a label of chnsenticorp"),
    ({"rtd_prompt_label_words": {"0": "差"}},
     "rtd_prompt_label_words {'0': '差'}: no word for the label(s) '1'"),
    ({"rtd_prompt_label_words": {"0": "差", "1": []}},
     "label '1' needs a word or a non-empty list of words"),
    ({"rtd_prompt_template": "{text_a}{text_b}很{label}"},
     "rtd_prompt_template '{text_a}{text_b}很{label}': this task has one text per example"),
    ({"rtd_prompt_template": "{text_a}很好"}, "needs {label} exactly once (found 0)"),
    ({"rtd_prompt_template": "{text}很{label}"}, "unknown placeholder {text}"),
    ({"rtd_prompt_template": ""}, "use_rtd_prompt needs rtd_prompt_template"),
    ({"zero_shot": True, "use_rtd_prompt": False}, "zero_shot needs \"use_rtd_prompt\": true"),
    ({"zero_shot": True, "num_trials": 3}, "zero_shot: num_trials must be 1"),
    ({"model_type": "bert"}, "set \"model_type\": \"electra\""),
    ({"task_names": ["chnsenticorp", "lcqmc"]}, "use_rtd_prompt: one classification task"),
    ({"train_examples_per_label": -1}, "train_examples_per_label must be >= 0"),
]


@pytest.mark.parametrize("hparams, message", BAD)
def test_a_prompt_that_cannot_work_is_refused_naming_the_hparam(hparams, message, tokenizer,
                                                                tmp_path):
    with pytest.raises(InputError) as caught:
        prompt_task(tokenizer, tmp_path, **hparams)
    assert message in str(caught.value)


def test_few_shot_is_for_classification_tasks(tokenizer, tmp_path):
    config = FinetuningConfig("m", str(tmp_path), task_names=["msra-ner"],
                              train_examples_per_label=4)
    with pytest.raises(InputError, match=r"train_examples_per_label 4: only classification "
                                         r"tasks .* not msra-ner \(tagging\)"):
        task_builder.get_tasks(config, tokenizer)


def test_few_shot_head_loss_and_gradient_match_numpy():
    """rtd_prompt_head against tests/numpy_reference.py on fixed weights and hidden states:
    the per-sequence losses and word scores, and the gradient of their sum (the official
    batch loss) with respect to the head's weights and the encoder's output."""
    rng = np.random.RandomState(3)
    batch, length, width, num_labels = 5, 6, 8, 3
    hidden = rng.normal(0, 1.0, (batch, length, width))
    weights = {"discriminator_predictions/dense/kernel": rng.normal(0, 0.5, (width, width)),
               "discriminator_predictions/dense/bias": rng.normal(0, 0.2, (width,)),
               "discriminator_predictions/dense_1/kernel": rng.normal(0, 0.7, (width, 1)),
               "discriminator_predictions/dense_1/bias": rng.normal(0, 0.2, (1,))}
    features = {  # three candidates of one example (label 1 has two words), another's
        # gold candidate, and a padding record (no word: it must add exactly 0)
        "label_word_mask": np.array([[0, 0, 1, 0, 0, 0], [0, 0, 1, 1, 0, 0],
                                     [0, 0, 1, 0, 0, 0], [0, 0, 0, 1, 1, 1],
                                     [0, 0, 0, 0, 0, 0]]),
        "is_gold": np.array([0, 1, 1, 1, 0]), "words_in_label": np.array([1, 2, 2, 1, 0])}
    expected = rtd_prompt_head_reference(hidden, weights, features, num_labels)

    class Encoder(object):
        def __init__(self, output):
            self.output = output

        def get_sequence_output(self):
            return self.output

    class Task(object):
        name, task_type, head_name = "t", "classification", "rtd_prompt"
        label_list = ["a", "b", "c"]

    bert_config = modeling.BertConfig(vocab_size=10, hidden_size=width)
    with tf.Graph().as_default():
        encoder_output = tf.constant(hidden, tf.float32)
        losses, outputs = heads.build_head(
            Task(), Encoder(encoder_output), bert_config,
            {k: tf.constant(v, tf.int32) for k, v in features.items()}, True)
        variables = {v.op.name: v for v in tf.trainable_variables()}
        assert sorted(variables) == sorted(weights)  # the pre-training names, unscoped
        total = tf.reduce_sum(losses)
        names = sorted(weights)
        gradients = tf.gradients(total, [variables[n] for n in names] + [encoder_output])
        with tf.Session() as session:
            for name in names:
                variables[name].load(weights[name], session)
            got = session.run({"losses": losses, "word_score": outputs["word_score"],
                               "gradients": gradients})
    np.testing.assert_allclose(got["losses"], expected["losses"], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(got["word_score"], expected["word_scores"], rtol=1e-5,
                               atol=1e-7)
    assert got["losses"][-1] == 0.0
    for name, value in zip(names + ["hidden"], got["gradients"]):
        np.testing.assert_allclose(value, expected["gradients"][name], rtol=1e-4, atol=1e-6,
                                   err_msg=name)


# ---------------------------------------------------------------------------- end to end

def finetune(data_dir, model_name, *hparams):
    out = io.StringIO()
    with redirect_stdout(out):
        status = run_finetuning.main(["--data-dir", str(data_dir), "--model-name", model_name,
                                      "--hparams"] + [json.dumps(h) for h in hparams])
    return status, out.getvalue()


# A discriminator that knows one rule: a token is replaced exactly when the marker 乙
# comes right before it.
RULE_VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + list("甲乙丙丁戊己庚辛好差。")
MARKER = "乙"
RULE_LENGTH = 24


def rule_batch(rng, size):
    """Random sequences of the vocab's characters (a quarter of them markers) and the
    rule's labels."""
    ids, mask, labels = (np.zeros((size, RULE_LENGTH), np.int32) for _ in range(3))
    marker, first = RULE_VOCAB.index(MARKER), RULE_VOCAB.index("甲")
    for row in range(size):
        body = [marker if rng.random() < 0.25 else rng.randrange(first, len(RULE_VOCAB))
                for _ in range(rng.randint(3, RULE_LENGTH - 2))]
        tokens = [RULE_VOCAB.index("[CLS]")] + body + [RULE_VOCAB.index("[SEP]")]
        ids[row, :len(tokens)], mask[row, :len(tokens)] = tokens, 1
        labels[row, 1:len(tokens)] = [t == marker for t in tokens[:-1]]
    return ids, mask, labels


def train_rule_discriminator(model_dir, steps=150):
    """model_dir/model.ckpt-<steps>: a tiny ELECTRA encoder and its discriminator head
    (modeling.discriminator_logits, the pre-training head) trained on the rule."""
    model_dir.mkdir(parents=True)
    (model_dir / "vocab.txt").write_text("\n".join(RULE_VOCAB) + "\n", encoding="utf-8")
    bert_config = modeling.BertConfig.for_model_size("tiny")
    bert_config.vocab_size = len(RULE_VOCAB)
    rng = random.Random(0)
    with tf.Graph().as_default():
        tf.set_random_seed(1)
        ids, mask, labels = (tf.placeholder(tf.int32, [None, RULE_LENGTH]) for _ in range(3))
        bert = modeling.BertModel(bert_config, False, ids, mask, scope="electra")
        logits = modeling.discriminator_logits(bert.get_sequence_output(), bert_config)
        weights = tf.cast(mask, tf.float32)
        loss = tf.reduce_sum(weights * tf.nn.sigmoid_cross_entropy_with_logits(
            labels=tf.cast(labels, tf.float32), logits=logits)) / tf.reduce_sum(weights)
        model_variables = tf.global_variables()
        train_op = tf.train.AdamOptimizer(3e-3).minimize(loss)
        with tf.Session() as session:
            session.run(tf.global_variables_initializer())
            for _ in range(steps):
                feed = dict(zip((ids, mask, labels), rule_batch(rng, 32)))
                last, _ = session.run([loss, train_op], feed)
            tf.train.Saver(model_variables).save(session, str(model_dir / "model.ckpt"),
                                                 global_step=steps)
    assert last < 0.01, last  # it learnt the rule
    return model_dir / ("model.ckpt-%d" % steps)


def test_zero_shot_recovers_the_rule_the_discriminator_learnt(tmp_path):
    """The template puts the label word right after the text; 好 (label 1) is one token,
    差乙差 (label 0) three, the middle one a marker. A text ending in the marker makes 好
    "replaced" (its score is that of a replaced token) and the first and last 差 too (2/3
    of one), one that does not leaves 好 original and only the last 差 replaced: the
    rule's label is 0 exactly when the text ends in the marker. Zero-shot, with no
    training file at all, must score the dev set by that rule, with the head restored
    from the checkpoint as it is."""
    checkpoint = train_rule_discriminator(tmp_path / "models" / "rule")
    rng = random.Random(5)
    rows = []
    for i in range(24):
        text = "".join(rng.choice("甲丙丁戊己庚辛") for _ in range(rng.randint(2, 8)))
        rows.append(("0", text + MARKER) if i % 2 else ("1", text))
    task_dir = tmp_path / "finetuning_data" / "chnsenticorp"
    task_dir.mkdir(parents=True)
    (task_dir / "dev.tsv").write_text("label\ttext_a\n" + "".join(
        "%s\t%s\n" % row for row in rows), encoding="utf-8")
    status, output = finetune(tmp_path, "rule", dict(
        TINY, **PROMPT), {"vocab_size": len(RULE_VOCAB), "zero_shot": True,
                          "rtd_prompt_template": "{text_a}{label}。",
                          "rtd_prompt_label_words": {"0": "差乙差", "1": "好"}})
    assert status == 0, output
    assert "chnsenticorp (rtd-prompt zero-shot): accuracy: 100.0 - " in output, output
    assert "0 trained from scratch" in output
    trial = tmp_path / "models" / "rule" / "finetuning_models" / \
        "chnsenticorp_rtd_prompt_zero_shot_model_1"
    scored_with = checkpoint_values(checkpoints.latest_checkpoint(str(trial)))
    pretrained = checkpoint_values(checkpoint)
    head = [name for name in pretrained if name.startswith("discriminator_predictions/")]
    assert len(head) == 4 and all(np.array_equal(scored_with[n], pretrained[n]) for n in head)
    results = json.loads((tmp_path / "models" / "rule" / "results" /
                          "chnsenticorp_results.json").read_text())
    assert results["trials"][0]["results"]["dev"]["accuracy"] == 100.0


@pytest.fixture
def data_dir(tmp_path, pretrained_model_dir):
    """D with the shared tiny pre-trained model as D/models/tiny and the sample reviews."""
    shutil.copytree(pretrained_model_dir, tmp_path / "models" / "tiny")
    shutil.copytree(SAMPLE_TASK, tmp_path / "finetuning_data" / "chnsenticorp")
    return tmp_path


def test_few_shot_trains_the_pretrained_head_on_the_examples_the_standard_head_gets(
        data_dir):
    few_shot = dict(TINY, **PROMPT, train_examples_per_label=4, train_batch_size=8,
                    num_train_epochs=2.0)
    status, output = finetune(data_dir, "tiny", few_shot)
    assert status == 0, output
    assert "chnsenticorp train: 4 examples per label drawn with seed 1 (8 of 200)" in output
    # 8 examples x 3 label words; the pre-trained head restored, nothing fresh.
    assert "24 training features" in output and "0 trained from scratch" in output, output
    assert "chnsenticorp (rtd-prompt 4-shot): accuracy: " in output
    trial = data_dir / "models" / "tiny" / "finetuning_models" / "chnsenticorp_rtd_prompt_model_1"
    model_info = json.loads((trial / "model_info.json").read_text())
    assert model_info["rtd_prompt"] is True
    trained = checkpoint_values(checkpoints.latest_checkpoint(str(trial)))
    pretrained = checkpoint_values(checkpoints.find_checkpoint(str(data_dir / "models" /
                                                                   "tiny")))
    name = "discriminator_predictions/dense_1/kernel"
    assert not np.array_equal(trained[name], pretrained[name])  # trained through the head
    # The standard head with train_examples_per_label draws the same examples.
    config = FinetuningConfig("tiny", str(data_dir), **few_shot)
    standard = FinetuningConfig("tiny", str(data_dir), task_names=["chnsenticorp"],
                                train_examples_per_label=4)
    tokenizer = FullTokenizer(str(SAMPLE_VOCAB))
    [prompt_task], [standard_task] = (task_builder.get_tasks(c, tokenizer)
                                      for c in (config, standard))
    drawn = [[e.eid for e in preprocessing.training_examples(t, c)]
             for t, c in ((prompt_task, config), (standard_task, standard))]
    assert drawn[0] == drawn[1] and len(drawn[0]) == 8
    assert sorted(e.label for e in preprocessing.training_examples(standard_task, standard)) \
        == ["0"] * 4 + ["1"] * 4
    # Zero-shot beside it: a row of its own in the task's results table.
    status, output = finetune(data_dir, "tiny", dict(TINY, **PROMPT, zero_shot=True))
    assert status == 0, output
    table = (data_dir / "models" / "tiny" / "results" / "chnsenticorp_results.md").read_text()
    assert "| tiny (rtd-prompt zero-shot) |" in table and "| tiny (rtd-prompt 4-shot) |" \
        in table, table


def test_a_bad_prompt_stops_the_run_before_anything_is_written(data_dir, capsys):
    model_dir = data_dir / "models" / "tiny"
    before = sorted(p.relative_to(data_dir) for p in data_dir.rglob("*"))
    for hparams, message in BAD[:2]:
        status, _ = finetune(data_dir, "tiny", dict(TINY, **PROMPT), hparams)
        assert status == 2 and message in capsys.readouterr().err
    # A checkpoint without the discriminator head (a fresh one would score at random).
    values = checkpoint_values(checkpoints.find_checkpoint(str(model_dir)))
    headless = data_dir / "headless" / "model.ckpt-1"
    checkpoints.write_checkpoint(str(headless), {
        name: value for name, value in values.items()
        if not name.startswith("discriminator_predictions/")})
    status, _ = finetune(data_dir, "tiny", dict(TINY, **PROMPT),
                         {"init_checkpoint": str(headless)})
    err = capsys.readouterr().err
    assert status == 2 and "lacks 4 of the 4 variables" in err and \
        "use_rtd_prompt scores with the pre-trained discriminator head" in err, err
    after = sorted(p.relative_to(data_dir) for p in data_dir.rglob("*")
                   if "headless" not in p.parts)
    assert after == before
