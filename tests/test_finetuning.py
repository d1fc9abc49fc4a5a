"""End-to-end fine-tuning of a tiny pre-trained model on every task's real sample."""

import io
import json
import math
import os
import re
import shutil
from contextlib import redirect_stdout

import pytest
import tensorflow.compat.v1 as tf

import cmrc2018_drcd_evaluate
import run_finetuning
import run_pretraining
from finetune import task_builder
from tests.conftest import SHARED, requires_tf_estimator, shared_file

TINY = {"model_size": "tiny", "save_graph_def": False, "learning_rate": 1e-3, "train_batch_size": 8,
        "eval_batch_size": 16, "num_train_epochs": 1.0, "log_every_steps": 5}

CAIL_LINES = [
    {"fact": "被告人张某于2017年5月在某超市内窃取价值人民币800元的手机一部。",
     "meta": {"accusation": ["盗窃"], "relevant_articles": [264],
              "term_of_imprisonment": {"death_penalty": False, "life_imprisonment": False,
                                       "imprisonment": 6},
              "punish_of_money": 1000, "criminals": ["张某"]}},
    {"fact": "被告人李某因琐事与被害人发生争执，持木棍将被害人打成轻伤。",
     "meta": {"accusation": ["故意伤害"], "relevant_articles": [234],
              "term_of_imprisonment": {"death_penalty": False, "life_imprisonment": False,
                                       "imprisonment": 10},
              "punish_of_money": 0, "criminals": ["李某"]}},
]


def head_lines(src, dst, n, keep_header=False, skip=0):
    """Copies n lines of src (after `skip` lines, and after the header if kept)."""
    lines = src.read_text(encoding="utf-8").splitlines(True)
    header = lines[:1] if keep_header else []
    body = lines[len(header) + skip:len(header) + skip + n]
    dst.write_text("".join(header + body), encoding="utf-8")


def head_sentences(src, dst, n):
    blocks = src.read_text(encoding="utf-8").split("\n\n")
    dst.write_text("\n\n".join(blocks[:n]) + "\n", encoding="utf-8")


def head_squad(src, dst, n_paragraphs, skip=0):
    data = json.loads(src.read_text(encoding="utf-8"))
    paragraphs = [p for article in data["data"] for p in article["paragraphs"]]
    chosen = paragraphs[skip:skip + n_paragraphs]
    dst.write_text(json.dumps({"version": "test", "data": [{"title": "t", "paragraphs": chosen}]},
                              ensure_ascii=False), encoding="utf-8")


def make_task_data(task, task_dir):
    """Small train/dev files for `task` cut from the real samples in ../shared/data."""
    task_dir.mkdir(parents=True, exist_ok=True)
    if task == "cail2018":
        lines = [json.dumps(CAIL_LINES[i % 2], ensure_ascii=False) for i in range(24)]
        for name in ("data_train.json", "data_valid.json"):
            (task_dir / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
        return
    data = SHARED / "data"
    shared_file("data", "vocab", "vocab.txt")
    if task == "chnsenticorp":
        head_lines(data / "chnsenticorp" / "train.tsv", task_dir / "train.tsv", 48, True)
        head_lines(data / "chnsenticorp" / "dev.tsv", task_dir / "dev.tsv", 32, True)
    elif task == "lcqmc":
        head_lines(data / "lcqmc" / "dev.txt", task_dir / "train.tsv", 48)
        head_lines(data / "lcqmc" / "test.txt", task_dir / "dev.tsv", 32)
    elif task == "bqcorpus":  # the shared test.tsv has no labels: cut both from dev.tsv
        head_lines(data / "bqcorpus" / "dev.tsv", task_dir / "train.tsv", 48)
        head_lines(data / "bqcorpus" / "dev.tsv", task_dir / "dev.tsv", 32, skip=48)
    elif task == "xnli":
        head_lines(data / "xnli" / "dev.tsv", task_dir / "train.tsv", 48, True)
        head_lines(data / "xnli" / "test.tsv", task_dir / "dev.tsv", 32, True)
    elif task == "tnews":
        head_lines(data / "tnews" / "train.tsv", task_dir / "train.tsv", 48)
        head_lines(data / "tnews" / "dev.json", task_dir / "dev.json", 32)
        shutil.copy(data / "tnews" / "labels.json", task_dir / "labels.json")
    elif task == "ocnli":
        head_lines(data / "ocnli" / "train.10k.json", task_dir / "train.json", 48)
        head_lines(data / "ocnli" / "dev.json", task_dir / "dev.json", 32)
    elif task == "msra-ner":
        head_sentences(data / "msra-ner" / "dev.ner", task_dir / "train.ner", 40)
        head_sentences(data / "msra-ner" / "test.ner", task_dir / "dev.ner", 24)
    elif task == "peoples-daily-ner":
        head_sentences(data / "peoples-daily-ner" / "example.dev", task_dir / "train.txt", 40)
        head_sentences(data / "peoples-daily-ner" / "example.test", task_dir / "dev.txt", 24)
    elif task == "cmrc2018":
        head_squad(data / "cmrc2018" / "cmrc2018_trial.json", task_dir / "train.json", 6)
        head_squad(data / "cmrc2018" / "cmrc2018_dev.json", task_dir / "dev.json", 4)
    elif task == "drcd":
        head_squad(data / "drcd" / "DRCD_dev.json", task_dir / "train.json", 6)
        head_squad(data / "drcd" / "DRCD_dev.json", task_dir / "dev.json", 4, skip=100)


@pytest.fixture(scope="module")
def pretrained(sample_data_dir, pretrained_model_dir):
    """D with a tiny ELECTRA pre-trained for a few steps as D/models/tiny (a copy of the
    session's shared one, tests/conftest.py)."""
    shutil.copytree(pretrained_model_dir, sample_data_dir / "models" / "tiny")
    return sample_data_dir


def finetune(data_dir, hparams):
    out = io.StringIO()
    with redirect_stdout(out):
        status = run_finetuning.main(["--data-dir", str(data_dir), "--model-name", "tiny",
                                      "--hparams", json.dumps(hparams)])
    return status, out.getvalue()


CLASSIFICATION = ["chnsenticorp", "lcqmc", "bqcorpus", "xnli", "tnews", "ocnli", "cail2018"]
TAGGING = ["msra-ner", "peoples-daily-ner"]
QA = ["cmrc2018", "drcd"]


@pytest.mark.parametrize("task", CLASSIFICATION + TAGGING + QA)
def test_each_task_finetunes_and_writes_metrics(pretrained, task):
    make_task_data(task, pretrained / "finetuning_data" / task)
    hparams = dict(TINY, task_names=[task], max_seq_length=64)
    if task in QA:
        hparams.update(max_seq_length=128, doc_stride=64, max_query_length=24)
    status, output = finetune(pretrained, hparams)
    assert status == 0, output
    assert "initialised" in output and "WARNING" not in output, output
    results = json.loads((pretrained / "models" / "tiny" / "results" /
                          ("%s_results.json" % task)).read_text())
    dev = results["trials"][0]["results"]["dev"]
    if task in CLASSIFICATION:
        # The reported accuracy is the written predictions' against the gold labels.
        preds = json.loads((pretrained / "models" / "tiny" / "results" /
                            ("%s_dev_preds.json" % task)).read_text())
        config = run_finetuning.configure_finetuning.FinetuningConfig(
            "tiny", str(pretrained), task_names=[task], max_seq_length=64)
        examples = task_builder.get_task(config, task, None).get_examples("dev")
        correct = sum(preds[str(ex.eid)] in ex.gold_labels for ex in examples)
        assert dev["accuracy"] == pytest.approx(100.0 * correct / len(examples))
        assert "%s: accuracy: %.1f - " % (task, dev["accuracy"]) in output
        assert math.isfinite(dev["loss"]), dev
    elif task in TAGGING:
        assert {"precision", "recall", "f1"} <= set(dev)
        preds = json.loads((pretrained / "models" / "tiny" / "results" /
                            ("%s_dev_preds.json" % task)).read_text())
        assert len(preds) == 24 and all(isinstance(tags, list) for tags in preds.values())
    else:
        preds_file = pretrained / "models" / "tiny" / "results" / ("%s_qa" % task) / \
            ("%s_dev_preds.json" % task)
        preds = json.loads(preds_file.read_text())
        dataset = json.loads((pretrained / "finetuning_data" / task / "dev.json").read_text())
        scored = cmrc2018_drcd_evaluate.evaluate(dataset, preds)
        assert scored["TOTAL"] == len(preds) and scored["SKIP"] == 0
        assert abs(scored["F1"] - dev["f1"]) < 1e-6


def test_test_outputs_and_rerun_reuses_the_finished_trial(pretrained):
    make_task_data("xnli", pretrained / "finetuning_data" / "xnli")
    shutil.copy(pretrained / "finetuning_data" / "xnli" / "dev.tsv",
                pretrained / "finetuning_data" / "xnli" / "test.tsv")
    hparams = dict(TINY, task_names=["xnli"], max_seq_length=64, write_test_outputs=True)
    status, output = finetune(pretrained, hparams)
    assert status == 0, output
    preds = json.loads((pretrained / "models" / "tiny" / "results" /
                        "xnli_test_preds.json").read_text())
    assert len(preds) == 32
    assert set(preds.values()) <= {"contradictory", "entailment", "neutral"}
    # Same settings again: the finished trial is reused, not retrained.
    status, again = finetune(pretrained, hparams)
    assert status == 0 and "resuming from" in again and "step 1/" not in again
    # Neither another keep_checkpoint_max (it shapes no weight) nor a record written when
    # it was still fingerprinted (the former default 1) retrains the finished trial.
    record = pretrained / "models" / "tiny" / "finetuning_models" / "xnli_model_1" / \
        "trial_hparams.json"
    recorded = json.loads(record.read_text())
    record.write_text(json.dumps(dict(recorded, keep_checkpoint_max=1)))
    status, again = finetune(pretrained, dict(hparams, keep_checkpoint_max=2))
    assert status == 0 and "resuming from" in again and "step 1/" not in again, again


def test_rerun_validates_before_touching_a_finished_trial_and_sees_new_data(pretrained,
                                                                             capsys):
    """A changed hparam with a bad training row (or a too long max_seq_length) stops the
    rerun before the finished trial's checkpoint is touched; changed training data (same
    hparams) trains the trial again instead of reusing the old model."""
    task_dir = pretrained / "finetuning_data" / "lcqmc"
    make_task_data("lcqmc", task_dir)
    hparams = dict(TINY, task_names=["lcqmc"], max_seq_length=64)
    status, output = finetune(pretrained, hparams)
    assert status == 0, output
    trial_dir = pretrained / "models" / "tiny" / "finetuning_models" / "lcqmc_model_1"
    results_dir = pretrained / "models" / "tiny" / "results"

    def snapshot():  # every byte of the finished trial and of the results
        return {p: p.read_bytes() for d in (trial_dir, results_dir) for p in d.rglob("*")
                if p.is_file()}
    before = snapshot()
    good = (task_dir / "train.tsv").read_text(encoding="utf-8")
    (task_dir / "train.tsv").write_text(good + "only one column\n", encoding="utf-8")
    status, output = finetune(pretrained, dict(hparams, learning_rate=5e-4))
    assert status == 2 and "train.tsv:49" in capsys.readouterr().err
    status, output = finetune(pretrained, dict(hparams, max_seq_length=600))
    assert status == 2 and "max_seq_length 600" in capsys.readouterr().err
    assert snapshot() == before  # nothing touched
    # New training data, same hparams: trained again, not "resuming".
    rows = good.splitlines(True)
    (task_dir / "train.tsv").write_text("".join(rows[:40]), encoding="utf-8")
    status, output = finetune(pretrained, hparams)
    assert status == 0, output
    assert "resuming from" not in output and "training it again" in output
    assert "40 training features" in output
    # A changed training hparam trains afresh.
    status, changed = finetune(pretrained, dict(hparams, learning_rate=5e-4))
    assert status == 0 and "settings changed" in changed and "step 1/" in changed


def test_trials_use_distinct_seeds_and_table_reports_max_and_mean(pretrained):
    make_task_data("chnsenticorp", pretrained / "finetuning_data" / "chnsenticorp")
    status, output = finetune(pretrained, dict(TINY, task_names=["chnsenticorp"],
                                               max_seq_length=64, num_trials=2, seed=10))
    assert status == 0, output
    results_dir = pretrained / "models" / "tiny" / "results"
    results = json.loads((results_dir / "chnsenticorp_results.json").read_text())
    assert [t["seed"] for t in results["trials"]] == [10, 11]
    accs = [t["results"]["dev"]["accuracy"] for t in results["trials"]]
    table = (results_dir / "chnsenticorp_results.md").read_text()
    assert "| tiny | %.1f (%.1f) | 2 |" % (max(accs), sum(accs) / 2) in table


def test_params_file_by_bare_name_and_bad_params(pretrained, tmp_path, capsys):
    from configure_finetuning import FinetuningConfig
    from util.hparams import load_hparams
    params = load_hparams("params_cmrc2018.json", search_dirs=[run_finetuning.PARAMS_DIR])
    config = FinetuningConfig("tiny", str(pretrained), **params)
    assert (config.task_names, config.max_seq_length, config.num_train_epochs) == \
        (["cmrc2018"], 512, 2)
    bad = tmp_path / "params_bad.json"
    bad.write_text('{"task_names": ["xnli"],\n "learning_rate": 3e-4,\n}')
    status = run_finetuning.main(["--data-dir", str(pretrained), "--model-name", "tiny",
                                  "--hparams", str(bad)])
    assert status == 2 and "%s:3:1: invalid JSON" % bad in capsys.readouterr().err
    status, _ = finetune(pretrained, dict(TINY, task_names=["xnli"], num_train_epoch=1))
    assert status == 2 and "did you mean 'num_train_epochs'" in capsys.readouterr().err


def test_missing_split_file_fails_before_training(pretrained, tmp_path, capsys):
    shutil.copytree(pretrained / "models" / "tiny", tmp_path / "models" / "tiny",
                    ignore=shutil.ignore_patterns("results", "finetuning_*"))
    task_dir = tmp_path / "finetuning_data" / "bqcorpus"
    make_task_data("bqcorpus", task_dir)
    (task_dir / "dev.tsv").unlink()
    status, output = finetune(tmp_path, dict(TINY, task_names=["bqcorpus"]))
    assert status == 2
    err = capsys.readouterr().err
    assert "bqcorpus: no dev file found; looked for" in err and "dev.tsv" in err
    assert "training features" not in output


def test_missing_pretrained_checkpoint(pretrained, tmp_path, capsys):
    status = run_finetuning.main([
        "--data-dir", str(tmp_path), "--model-name", "nothing", "--hparams",
        json.dumps(dict(TINY, task_names=["xnli"], vocab_file=str(pretrained / "vocab.txt")))])
    assert status == 2
    assert "no pre-trained checkpoint in" in capsys.readouterr().err
    # Neither model nor vocab: the model is named first (its vocab usually comes with it).
    status, _ = finetune(tmp_path, dict(TINY, task_names=["xnli"]))
    assert status == 2
    assert capsys.readouterr().err.startswith("error: no pre-trained checkpoint in")


def make_bert_checkpoint(model_dir, vocab):
    """A tiny BERT-architecture checkpoint (`bert/` scope, pooler, an MLM-head variable)."""
    import tensorflow.compat.v1 as tf
    from model import modeling
    model_dir.mkdir(parents=True)
    shutil.copy(vocab, model_dir / "vocab.txt")
    config = modeling.BertConfig.for_model_size("tiny")
    with tf.Graph().as_default():
        modeling.BertModel(config, False, tf.zeros([1, 8], tf.int32), scope="bert",
                           add_pooler=True)
        tf.get_variable("cls/predictions/output_bias", [config.vocab_size])
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            tf.train.Saver().save(sess, str(model_dir / "bert_model.ckpt"))
        return len(tf.global_variables()) - 1  # encoder variables, without the MLM bias


def test_finetuning_from_a_bert_family_checkpoint_restores_every_encoder_variable(
        pretrained, tmp_path, capsys):
    n_encoder = make_bert_checkpoint(tmp_path / "models" / "tiny", pretrained / "vocab.txt")
    make_task_data("chnsenticorp", tmp_path / "finetuning_data" / "chnsenticorp")
    status, output = finetune(tmp_path, dict(TINY, task_names=["chnsenticorp"],
                                             max_seq_length=64, model_type="bert"))
    assert status == 0, output
    assert "initialised %d variables" % n_encoder in output
    assert "2 trained from scratch: task_specific/chnsenticorp/dense/kernel" in output
    assert "WARNING" not in output
    # The same checkpoint read as ELECTRA: a clear error saying what to set.
    status, _ = finetune(tmp_path, dict(TINY, task_names=["chnsenticorp"], max_seq_length=64,
                                        keep_all_models=False))
    assert status == 2
    assert 'has bert/ ones: set "model_type": "bert"' in capsys.readouterr().err


def test_checkpoint_of_another_size_is_refused(pretrained, capsys):
    make_task_data("chnsenticorp", pretrained / "finetuning_data" / "chnsenticorp")
    status, output = finetune(pretrained, dict(TINY, task_names=["chnsenticorp"],
                                               model_size="small"))
    assert status == 2 and "training features" not in output
    err = capsys.readouterr().err
    assert re.search(r"has electra/\S+ with shape \[[\d, ]+\] but the 12-layer 256-hidden "
                     r"model needs \[[\d, ]+\] \(and \d+ more variables of other shapes\): "
                     r".*\bhidden_size \d+ in the checkpoint, 256 in the model\b.*; set model_size",
                     err), err


# eval_batch_size that does not divide the dev set: the TPU graph pads its last batch.
TPU_EVAL_BATCH = {"chnsenticorp": 12, "msra-ner": 10, "cmrc2018": 7}


@pytest.mark.parametrize("task", sorted(TPU_EVAL_BATCH))
@requires_tf_estimator
def test_tpu_estimator_finetuning_scores_exactly_as_the_training_loop(pretrained, task):
    """use_tpu_estimator: TPUEstimator(use_tpu=False) trains, predicts the dev set padded to
    whole batches, and gives exactly our training loop's metrics and predictions for
    the same checkpoint; padding never reaches the prediction file."""
    make_task_data(task, pretrained / "finetuning_data" / task)
    hparams = dict(TINY, task_names=[task], max_seq_length=64,
                   eval_batch_size=TPU_EVAL_BATCH[task], iterations_per_loop=2)
    if task in QA:
        hparams.update(max_seq_length=128, doc_stride=64, max_query_length=24)
    results_dir = pretrained / "models" / "tiny" / "results"
    preds_file = results_dir / ("%s_qa" % task if task in QA else "") / \
        ("%s_dev_preds.json" % task)

    def dev_results():
        results = json.loads((results_dir / ("%s_results.json" % task)).read_text())
        return results["trials"][0]["results"]["dev"], json.loads(preds_file.read_text())

    if task == "chnsenticorp":  # and a test set (labelled: the dev file) to predict
        shutil.copy(pretrained / "finetuning_data" / task / "dev.tsv",
                    pretrained / "finetuning_data" / task / "test.tsv")
    status, output = finetune(pretrained, dict(hparams, use_tpu_estimator=True,
                                               write_test_outputs=task == "chnsenticorp"))
    assert status == 0, output
    assert "initialised" in output and "WARNING" not in output, output
    steps = re.findall(r"^step (\d+)/(\d+) \| [\d.]+ steps/s", output, re.M)
    assert steps and steps[-1][0] == steps[-1][1], output  # progress up to the last step
    padding = re.search(r"predicting (\d+) %s dev features \+ (\d+) padding" % task, output)
    num_features, num_padding = map(int, padding.groups()) if padding else (0, 0)
    assert 0 < num_padding == -num_features % TPU_EVAL_BATCH[task], output
    tpu_dev, tpu_preds = dev_results()
    output_tpu = output
    # The same checkpoint through our training loop: no padding, a short last batch.
    status, output = finetune(pretrained, dict(hparams, do_train=False))
    assert status == 0 and "padding" not in output, output
    dev, preds = dev_results()
    assert tpu_preds == preds  # one entry per real example, the same answers
    # Every score exact; the mean loss to float32 rounding (the last batch's matmuls see
    # 8 rows here and 12 there: CPU kernels block them differently).
    assert {k: v for k, v in tpu_dev.items() if k != "loss"} == \
        {k: v for k, v in dev.items() if k != "loss"}
    assert tpu_dev["loss"] == pytest.approx(dev["loss"], rel=1e-6)
    if task == "chnsenticorp":
        assert num_padding == 4 and len(preds) == 32
        assert "predicting 32 chnsenticorp test features + 4 padding" in output_tpu
        assert json.loads((results_dir / "chnsenticorp_test_preds.json").read_text()) == preds
    elif task == "msra-ner":  # 24 sentences, some split over several windows
        assert len(preds) == 24
    else:
        dataset = json.loads((pretrained / "finetuning_data" / task / "dev.json").read_text())
        questions = {qa["id"] for article in dataset["data"] for p in article["paragraphs"]
                     for qa in p["qas"]}
        assert set(preds) == questions
        assert abs(cmrc2018_drcd_evaluate.evaluate(dataset, preds)["F1"] - dev["f1"]) < 1e-6


def test_empty_or_unlabelled_splits_give_no_number(pretrained, tmp_path, capsys):
    """A header-only train or dev file is refused before training (no untrained head's
    accuracy, no `loss: 0.00`); an unlabelled test set is predicted but not scored; a QA
    training set whose every answer is missing from its context trains on nothing, so it
    is refused."""
    shutil.copytree(pretrained / "models" / "tiny", tmp_path / "models" / "tiny",
                    ignore=shutil.ignore_patterns("results", "finetuning_*"))
    task_dir = tmp_path / "finetuning_data" / "chnsenticorp"
    make_task_data("chnsenticorp", task_dir)
    good_train = (task_dir / "train.tsv").read_text(encoding="utf-8")
    header = good_train.splitlines(True)[0]
    hparams = dict(TINY, task_names=["chnsenticorp"], max_seq_length=32)
    (task_dir / "train.tsv").write_text(header, encoding="utf-8")
    status, output = finetune(tmp_path, hparams)
    assert status == 2 and "training features" not in output
    assert "train.tsv holds no usable train examples" in capsys.readouterr().err
    (task_dir / "train.tsv").write_text(good_train, encoding="utf-8")
    good_dev = (task_dir / "dev.tsv").read_text(encoding="utf-8")
    (task_dir / "dev.tsv").write_text(good_dev.splitlines(True)[0], encoding="utf-8")
    status, output = finetune(tmp_path, hparams)
    assert status == 2 and "training features" not in output
    assert "dev.tsv holds no usable dev examples" in capsys.readouterr().err
    results = tmp_path / "models" / "tiny" / "results"
    assert not (results / "chnsenticorp_results.json").exists()

    # An unlabelled test file (ChnSentiCorp's public test.tsv layout: qid, text_a).
    (task_dir / "dev.tsv").write_text(good_dev, encoding="utf-8")
    rows = [line.split("\t") for line in good_dev.splitlines()[1:]]
    (task_dir / "test.tsv").write_text("qid\ttext_a\n" + "".join(
        "%d\t%s\n" % (i, row[-1]) for i, row in enumerate(rows)), encoding="utf-8")
    status, output = finetune(tmp_path, dict(hparams, do_test=True))
    assert status == 0, output
    assert "chnsenticorp test: not scored" in output
    assert "chnsenticorp: accuracy" in output  # the dev line, still scored
    record = json.loads((results / "chnsenticorp_results.json").read_text())
    assert [list(t["results"]) for t in record["trials"]] == [["dev"]]
    assert len(json.loads((results / "chnsenticorp_test_preds.json").read_text())) == len(rows)

    # QA: every training answer absent from its context.
    qa_dir = tmp_path / "finetuning_data" / "cmrc2018"
    make_task_data("cmrc2018", qa_dir)
    train = json.loads((qa_dir / "train.json").read_text(encoding="utf-8"))
    for article in train["data"]:
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                for answer in qa["answers"]:
                    answer["text"] = "不在文中的答案"
    (qa_dir / "train.json").write_text(json.dumps(train, ensure_ascii=False), encoding="utf-8")
    status, output = finetune(tmp_path, dict(TINY, task_names=["cmrc2018"], max_seq_length=128))
    assert status == 2
    err = capsys.readouterr().err
    assert "train.json holds no usable train examples" in err and "skipped" in err


def test_a_second_finetuning_run_of_the_same_task_is_refused(pretrained, tmp_path, capsys):
    import socket
    shutil.copytree(pretrained / "models" / "tiny", tmp_path / "models" / "tiny",
                    ignore=shutil.ignore_patterns("results", "finetuning_*"))
    make_task_data("chnsenticorp", tmp_path / "finetuning_data" / "chnsenticorp")
    lock = tmp_path / "models" / "tiny" / ".finetune_chnsenticorp.lock"
    lock.write_text(json.dumps({"host": socket.gethostname(), "pid": os.getppid(),
                                "started": "earlier", "command": "run_finetuning.py",
                                "token": "x"}))
    status, output = finetune(tmp_path, dict(TINY, task_names=["chnsenticorp"],
                                             max_seq_length=32))
    assert status == 2 and "training features" not in output
    assert "the chnsenticorp fine-tuning in the model dir %s is in use by another run" % (
        tmp_path / "models" / "tiny") in capsys.readouterr().err
    assert not (tmp_path / "models" / "tiny" / "finetuning_models").exists()


def test_results_of_every_setting_are_kept_newest_first(pretrained, tmp_path):
    """Two settings on one model name: both runs' results stay (JSON, table, text), the
    newest first; rerunning a setting replaces its own record instead of adding one."""
    shutil.copytree(pretrained / "models" / "tiny", tmp_path / "models" / "tiny",
                    ignore=shutil.ignore_patterns("results", "finetuning_*"))
    make_task_data("chnsenticorp", tmp_path / "finetuning_data" / "chnsenticorp")
    first = dict(TINY, task_names=["chnsenticorp"], max_seq_length=32)
    second = dict(first, learning_rate=5e-4)
    outputs = []
    for hparams in (first, second, second):
        status, output = finetune(tmp_path, hparams)
        assert status == 0, output
        outputs.append(output)
    results = tmp_path / "models" / "tiny" / "results"
    record = json.loads((results / "chnsenticorp_results.json").read_text())
    assert record["hparams"]["learning_rate"] == 5e-4
    assert [run["hparams"]["learning_rate"] for run in record["earlier_runs"]] == [1e-3]
    dev = [re.search(r"chnsenticorp: accuracy: ([\d.]+)", out).group(1) for out in outputs]
    table = (results / "chnsenticorp_results.md").read_text().splitlines()
    rows = [line for line in table if line.startswith("| tiny |")]
    assert len(rows) == 2
    assert rows[0].startswith("| tiny | %s (%s) | 1 |" % (dev[2], dev[2]))
    assert rows[0].endswith("| newest |")
    assert rows[1].startswith("| tiny | %s (%s) | 1 |" % (dev[0], dev[0]))
    assert rows[1].endswith("| learning_rate 0.001 |")
    text = (results / "chnsenticorp_results.txt").read_text()
    assert text.count("run ") == 2 and "(learning_rate 0.001)" in text


def test_a_trial_keeps_its_five_newest_checkpoints_by_default(pretrained, tmp_path):
    """The official fine-tuning sets no keep_checkpoint_max, so each trial keeps the
    RunConfig default of 5 checkpoints; hparams without the key keep 5 here too, and the
    runner's Saver keeps them (7 written at every step 0..6, the newest 5 left)."""
    config = run_finetuning.configure_finetuning.FinetuningConfig(
        "tiny", str(tmp_path), task_names=["chnsenticorp"])
    assert config.keep_checkpoint_max == 5
    shutil.copytree(pretrained / "models" / "tiny", tmp_path / "models" / "tiny",
                    ignore=shutil.ignore_patterns("results", "finetuning_*"))
    make_task_data("chnsenticorp", tmp_path / "finetuning_data" / "chnsenticorp")
    status, output = finetune(tmp_path, dict(TINY, task_names=["chnsenticorp"],
                                             max_seq_length=32, save_checkpoints_steps=1))
    assert status == 0, output
    trial_dir = tmp_path / "models" / "tiny" / "finetuning_models" / "chnsenticorp_model_1"
    state = tf.train.get_checkpoint_state(str(trial_dir))
    kept = [os.path.basename(path) for path in state.all_model_checkpoint_paths]
    assert kept == ["model.ckpt-%d" % step for step in range(2, 7)]
    assert sorted(p.name for p in trial_dir.glob("model.ckpt-*.index")) == sorted(
        name + ".index" for name in kept)


def event_scalars(directory):
    """{tag: [(step, value)]} of every TensorBoard event file below directory."""
    scalars = {}
    for path in sorted(directory.glob("events.out.tfevents.*")):
        for event in tf.train.summary_iterator(str(path)):
            for value in event.summary.value:
                scalars.setdefault(value.tag, []).append((event.step, value.simple_value))
    return scalars


def test_layered_hparams_shape_from_the_model_dir_and_tensorboard(sample_data_dir, tmp_path):
    """A model pre-trained with overrides fine-tunes from a shipped params file plus one
    inline change: the shape comes from its pretrain_hparams.json (and the run says so),
    later JSON keys win, and TensorBoard gets the learning rate, the loss and the dev
    metrics."""
    data = tmp_path / "d"
    shutil.copytree(sample_data_dir, data, ignore=shutil.ignore_patterns("models"))
    overrides = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 1,
                 "intermediate_size": 128}
    with redirect_stdout(io.StringIO()):
        assert run_pretraining.main([
            "--data-dir", str(data), "--model-name", "mine", "--hparams", json.dumps({
                "model_size": "small", "model_hparam_overrides": overrides,
                "train_batch_size": 4, "num_train_steps": 2, "num_warmup_steps": 1})]) == 0
    make_task_data("chnsenticorp", data / "finetuning_data" / "chnsenticorp")
    out = io.StringIO()
    with redirect_stdout(out):
        status = run_finetuning.main([
            "--data-dir", str(data), "--model-name", "mine", "--hparams",
            "params_chnsenticorp.json", '{"max_seq_length": 32, "num_train_epochs": 1}',
            '{"train_batch_size": 8, "log_every_steps": 2}'])
    output = out.getvalue()
    assert status == 0, output
    assert "model shape from %s: model_hparam_overrides %s" % (
        data / "models" / "mine" / "pretrain_hparams.json", json.dumps(overrides, sort_keys=True)) \
        in output
    trial = data / "models" / "mine" / "finetuning_models" / "chnsenticorp_model_1"
    recorded = json.loads((trial / "trial_hparams.json").read_text())
    assert (recorded["learning_rate"], recorded["max_seq_length"], recorded["num_train_epochs"],
            recorded["train_batch_size"], recorded["model_hparam_overrides"]) == \
        (3e-4, 32, 1.0, 8, overrides)
    train_curves = event_scalars(trial)
    steps = 48 // 8  # 48 training rows, batch 8, one epoch
    # Each summary holds the rate the step's update used, at global step t = its step - 1:
    # 3e-4 x (1 - t/6) x min(1, t / 0.6) (warm-up: 10% of the 6 steps).
    lr = dict(train_curves["learning_rate"])
    expected = {s: 3e-4 * (1 - (s - 1) / steps) * min(1.0, (s - 1) / (0.1 * steps))
                for s in lr}
    assert len(lr) >= 2 and lr == pytest.approx(expected, rel=1e-5)
    assert len(train_curves["mean_example_loss"]) == len(train_curves["loss"]) == len(lr)
    dev = json.loads((data / "models" / "mine" / "results" / "chnsenticorp_results.json")
                     .read_text())["trials"][0]["results"]["dev"]
    assert event_scalars(trial / "eval_dev")["chnsenticorp/accuracy"] == \
        [(steps, pytest.approx(dev["accuracy"]))]
