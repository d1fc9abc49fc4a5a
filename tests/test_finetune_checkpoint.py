"""A fine-tuning checkpoint of ELECTRA-small holds exactly the official fine-tuning graph's
variables (../shared/reference/checkpoint-variables/electra-small-finetuning-*.txt, made
from the official code): names and shapes, the head's `dense`, `dense_1`, ... included.
So an official fine-tuned checkpoint restores in ours and ours in the official code."""

import io
import json
import shutil
from contextlib import redirect_stdout

import tensorflow.compat.v1 as tf

import run_finetuning
from tests.conftest import SAMPLE_VOCAB, shared_file
from tests.test_modeling import read_variable_list

REVIEWS = "label\ttext_a\n1\t房间干净，服务很好。\n0\t菜凉了，服务员也不理人。\n"
SQUAD = {"version": "t", "data": [{"title": "t", "paragraphs": [{
    "context": "上海是中国的一座城市，人口众多。",
    "qas": [{"id": "q%d" % i, "question": "上海在哪个国家？",
             "answers": [{"text": "中国", "answer_start": 3}]} for i in range(2)]}]}]}


def one_step_checkpoint(tmp_path, task, files, **hparams):
    """{name: shape} of the checkpoint of one ELECTRA-small training step on task,
    optimizer slots and global_step left out (as in the reference lists)."""
    shutil.copy(SAMPLE_VOCAB, tmp_path / "vocab.txt")
    task_dir = tmp_path / "finetuning_data" / task
    task_dir.mkdir(parents=True)
    for name, text in files.items():
        (task_dir / name).write_text(text, encoding="utf-8")
    config = run_finetuning.configure_finetuning.FinetuningConfig(
        "m", str(tmp_path), **dict(dict(
            model_size="small", random_init=True, task_names=[task], train_batch_size=2,
            num_train_epochs=1, do_eval=False, max_seq_length=32), **hparams))
    with redirect_stdout(io.StringIO()):
        run_finetuning.run(config)
    checkpoint = tf.train.latest_checkpoint(config.trial_model_dir(task, 1))
    assert checkpoint.endswith("-1")  # one step
    return {name: shape for name, shape in tf.train.list_variables(checkpoint)
            if not name.endswith(("/adam_m", "/adam_v")) and name != "global_step"}


def assert_same_variables(ours, reference):
    assert sorted(set(reference) - set(ours)) == []
    assert sorted(set(ours) - set(reference)) == []
    assert {name: list(ours[name]) for name in reference} == reference


def test_classification_checkpoint_has_the_official_variables(tmp_path):
    reference = read_variable_list(shared_file(
        "reference", "checkpoint-variables", "electra-small-finetuning-chnsenticorp.txt"))
    ours = one_step_checkpoint(tmp_path, "chnsenticorp", {"train.tsv": REVIEWS})
    assert_same_variables(ours, reference)


def test_qa_checkpoint_has_the_official_variables(tmp_path):
    reference = read_variable_list(shared_file(
        "reference", "checkpoint-variables", "electra-small-finetuning-cmrc2018.txt"))
    ours = one_step_checkpoint(
        tmp_path, "cmrc2018", {"train.json": json.dumps(SQUAD, ensure_ascii=False)},
        max_seq_length=48, max_query_length=16, doc_stride=16)
    assert_same_variables(ours, reference)


def test_independent_qa_head_names_its_layers_in_the_official_order(tmp_path):
    ours = one_step_checkpoint(
        tmp_path, "drcd", {"train.json": json.dumps(SQUAD, ensure_ascii=False)},
        model_size="tiny", max_seq_length=48, max_query_length=16, doc_stride=16,
        joint_prediction=False)
    heads = {name: shape for name, shape in ours.items() if name.startswith("task_specific")}
    # start, end, then (as in the joint head) the answerable classifier's two layers
    assert heads == {"task_specific/drcd/dense/kernel": [64, 1],
                     "task_specific/drcd/dense/bias": [1],
                     "task_specific/drcd/dense_1/kernel": [64, 1],
                     "task_specific/drcd/dense_1/bias": [1],
                     "task_specific/drcd/dense_2/kernel": [128, 512],
                     "task_specific/drcd/dense_2/bias": [512],
                     "task_specific/drcd/dense_3/kernel": [512, 1],
                     "task_specific/drcd/dense_3/bias": [1]}
