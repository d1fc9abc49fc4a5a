"""SavedModel export and the predict CLI, on tiny models fine-tuned for a few steps.

One run_finetuning call trains a randomly initialised tiny model on small synthetic
sentiment, NER and QA data (no ../shared needed); the tests export each trial and check
the SavedModel against the Estimator, then the predict CLI's output lines.
"""

import io
import json
import os
import shutil
from contextlib import redirect_stdout

import numpy as np
import pytest

import configure_finetuning
import export_savedmodel
import predict as predict_cli
import run_finetuning
from finetune import export, model_info, predict
from util.errors import InputError
from finetune import model_fn as model_fn_lib
from tests.conftest import SAMPLE_CORPUS, SAMPLE_VOCAB

TASKS = ["chnsenticorp", "peoples-daily-ner", "cmrc2018"]
HPARAMS = {"model_size": "tiny", "save_graph_def": False, "random_init": True, "task_names": TASKS,
           "max_seq_length": 48, "max_query_length": 12, "doc_stride": 16,
           "learning_rate": 1e-3, "train_batch_size": 8, "num_train_epochs": 1.0,
           "do_eval": False, "log_every_steps": 100,
           "joint_prediction": False}  # the independent QA head (the joint one: test_qa_head)

PEOPLE = ["张伟", "李娜", "王芳", "刘洋"]
PLACES = ["北京", "上海", "广州", "青石镇"]
ORGS = ["清华大学", "人民银行", "新华社"]


def corpus_lines():
    lines = []
    for path in sorted(SAMPLE_CORPUS.glob("*.txt")):
        lines += [line.strip() for line in path.read_text(encoding="utf-8").splitlines()
                  if line.strip()]
    return lines


def ner_sentence(i):
    """(chars, BIO tags) of a sentence with a person, a place and an organisation."""
    parts = [(PEOPLE[i % 4], "PER"), ("昨天在", None), (PLACES[i % 4], "LOC"),
             ("参观了", None), (ORGS[i % 3], "ORG"), ("。", None)]
    chars, tags = [], []
    for text, kind in parts:
        for j, char in enumerate(text):
            chars.append(char)
            tags.append("O" if kind is None else ("B-" if j == 0 else "I-") + kind)
    return chars, tags


def write_task_data(data_dir):
    lines = corpus_lines()
    root = data_dir / "finetuning_data"
    sentiment = root / "chnsenticorp"
    sentiment.mkdir(parents=True)
    rows = ["%d\t%s" % (int("，" in line), line) for line in lines[:24]]
    (sentiment / "train.tsv").write_text("label\ttext_a\n" + "\n".join(rows) + "\n",
                                         encoding="utf-8")
    ner = root / "peoples-daily-ner"
    ner.mkdir()
    blocks = ["\n".join("%s %s" % pair for pair in zip(*ner_sentence(i))) for i in range(16)]
    (ner / "train.txt").write_text("\n\n".join(blocks) + "\n", encoding="utf-8")
    qa = root / "cmrc2018"
    qa.mkdir()
    paragraphs = []
    for i in range(6):
        context = lines[3 * i] + lines[3 * i + 1]
        answer = lines[3 * i][2:6]
        paragraphs.append({"context": context, "qas": [{
            "id": "q%d" % i, "question": "哪个词出现在第一句？",
            "answers": [{"text": answer, "answer_start": 2}]}]})
    (qa / "train.json").write_text(json.dumps(
        {"version": "test", "data": [{"title": "t", "paragraphs": paragraphs}]},
        ensure_ascii=False), encoding="utf-8")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """D with one fine-tuned trial per task in D/models/tiny/finetuning_models/."""
    data_dir = tmp_path_factory.mktemp("predict_data")
    shutil.copy(SAMPLE_VOCAB, data_dir / "vocab.txt")
    write_task_data(data_dir)
    for task in HPARAMS["task_names"]:  # (several task_names would train one model)
        out = io.StringIO()
        with redirect_stdout(out):
            status = run_finetuning.main(["--data-dir", str(data_dir), "--model-name", "tiny",
                                          "--hparams", json.dumps(dict(HPARAMS,
                                                                       task_names=[task]))])
        assert status == 0, out.getvalue()
    return data_dir


def trial_dir(data_dir, task):
    return data_dir / "models" / "tiny" / "finetuning_models" / ("%s_model_1" % task)


def load_model(model_dir):
    """model_info.load with the config class the CLIs pass."""
    return model_info.load(model_dir, configure_finetuning.FinetuningConfig)


@pytest.fixture(scope="module")
def exports(trained, tmp_path_factory):
    """task -> its export dir (made once per module)."""
    root = tmp_path_factory.mktemp("exports")
    dirs = {}
    for task in TASKS:
        with redirect_stdout(io.StringIO()):
            assert export_savedmodel.main([str(trial_dir(trained, task)), "--out",
                                           str(root / task)]) == 0
        dirs[task] = root / task
    return dirs


def input_lines(task):
    """Input objects for the predict CLI: short and window-spanning texts."""
    lines = corpus_lines()
    if task == "cmrc2018":
        return [{"id": "a", "context": lines[40] + lines[41] + lines[42],
                 "question": "这段话讲了什么？"},
                {"context": lines[43], "question": "谁？"}]
    if task == "peoples-daily-ner":
        long_text = "".join("".join(ner_sentence(i)[0]) for i in range(10))  # > 1 window
        return [{"text": "".join(ner_sentence(1)[0])}, {"text": long_text}, {"text": ""}]
    return [{"text": lines[50]}, {"id": 7, "text": lines[51]}, {"text_a": lines[52]}]


def run_predict(model_dir, lines, argv=()):
    """(exit status, stdout) of the predict CLI given lines (str) on stdin."""
    stdin = io.BytesIO("".join(line + "\n" for line in lines).encode("utf-8"))
    stdout = io.StringIO()
    status = predict_cli.main([str(model_dir)] + list(argv), stdin=stdin, stdout=stdout)
    return status, stdout.getvalue()


@pytest.mark.parametrize("task", TASKS)
def test_saved_model_signature_matches_the_training_loops_predictions(trained, exports, task):
    import tensorflow.compat.v1 as tf

    model = load_model(str(exports[task]))
    examples = [predict.make_example(model.task, i, predict.check_record(
        model.task, "test", i, record)) for i, record in enumerate(input_lines(task))]
    features = [f for ex in examples for f in model.task.featurize(ex, is_training=False)]
    served = predict.run_features(predict.saved_model_runner(str(exports[task])), features, 4)

    names = [spec.name for spec in model.task.feature_specs()]

    def input_fn(params):
        columns = {name: np.asarray([f.get(name, 0) for f in features], np.int32)
                   for name in names}
        return tf.data.Dataset.from_tensor_slices(columns).batch(4)

    model_fn = model_fn_lib.model_fn_builder(model.config, [model.task], model.bert_config,
                                             None, 1)
    trainer = run_finetuning.build_trainer(model.config, model_fn,
                                           str(trial_dir(trained, task)), seed=1)
    predicted = list(trainer.predict(input_fn, yield_single_examples=True))
    assert len(predicted) == len(served) == len(features)
    if task != "chnsenticorp":  # long inputs were split into windows
        assert len(features) > len(examples)
    keys = ["start_logits", "end_logits"] if task == "cmrc2018" else ["logits"]
    for ours, theirs in zip(served, predicted):
        for key in keys:
            assert np.max(np.abs(ours[key] - theirs[key])) < 1e-4
        if task == "chnsenticorp":
            probs = np.exp(theirs["logits"]) / np.sum(np.exp(theirs["logits"]))
            assert np.max(np.abs(ours["probabilities"] - probs)) < 1e-5
            assert ours["labels"].decode() == model.task.label_list[np.argmax(probs)]
    info = json.loads((exports[task] / "model_info.json").read_text(encoding="utf-8"))
    assert info["task"] == task and info["signature"]["key"] == "serving_default"
    assert (exports[task] / "vocab.txt").read_bytes() == SAMPLE_VOCAB.read_bytes()


@pytest.mark.parametrize("task", TASKS)
def test_predict_cli_writes_one_json_line_per_input(exports, task, capsys):
    inputs = input_lines(task)
    status, out = run_predict(exports[task], [""] + [json.dumps(r, ensure_ascii=False)
                                                      for r in inputs])
    assert status == 0
    assert "predicted %d/%d | " % (len(inputs), len(inputs)) in capsys.readouterr().err
    outputs = [json.loads(line) for line in out.splitlines()]
    assert len(outputs) == len(inputs)
    for lineno, (record, output) in enumerate(zip(inputs, outputs), start=2):
        assert output["id"] == record.get("id", lineno)  # line 1 was blank
        assert {k: output[k] for k in record} == record
        if task == "chnsenticorp":
            assert output["label"] in ("0", "1")
            assert set(output["probabilities"]) == {"0", "1"}
            assert abs(sum(output["probabilities"].values()) - 1) < 1e-5
            assert output["label"] == max(output["probabilities"],
                                          key=output["probabilities"].get)
        elif task == "peoples-daily-ner":
            for entity in output["entities"]:
                assert entity["type"] in ("PER", "LOC", "ORG")
                assert record["text"][entity["start"]:entity["end"]] == entity["text"] != ""
        else:
            assert output["answer"] in record["context"]
            if output["answer"]:
                assert record["context"][output["start"]:output["end"]] == output["answer"]
            assert 0 < output["probability"] <= 1


def test_predict_from_the_trial_dir_equals_predict_from_the_export(trained, exports):
    lines = [json.dumps(r, ensure_ascii=False) for r in input_lines("chnsenticorp")]
    status, from_trial = run_predict(trial_dir(trained, "chnsenticorp"), lines,
                                     ["--task", "chnsenticorp", "--batch-size", "2"])
    assert status == 0
    status, from_export = run_predict(exports["chnsenticorp"], lines)
    assert status == 0
    for a, b in zip(from_trial.splitlines(), from_export.splitlines()):
        a, b = json.loads(a), json.loads(b)
        assert a["label"] == b["label"]
        for label in a["probabilities"]:
            assert abs(a["probabilities"][label] - b["probabilities"][label]) < 1e-5


def test_bad_predict_input_names_the_line_and_writes_nothing(exports, capsys):
    good = json.dumps({"context": "北京是中国的首都。", "question": "首都是哪里？"},
                      ensure_ascii=False)
    status, out = run_predict(exports["cmrc2018"], [good, good, '{"context": "x",'])
    err = capsys.readouterr().err
    assert status == 2 and out == ""
    assert "error: <stdin>:3: invalid JSON at column" in err, err
    status, out = run_predict(exports["cmrc2018"], [good, '{"context": "北京"}'])
    err = capsys.readouterr().err
    assert status == 2 and out == ""
    assert ("error: <stdin>:2: missing field 'question'; expected a JSON object like "
            '{"context": "...", "question": "..."}') in err, err
    status, _ = run_predict(exports["chnsenticorp"], ['{"text": 5}'])
    assert status == 2
    assert "<stdin>:1: field 'text' should be a string, got int" in capsys.readouterr().err
    status, _ = run_predict(exports["chnsenticorp"], [good], ["--task", "xnli"])
    assert status == 2 and "fine-tuned on chnsenticorp, not xnli" in capsys.readouterr().err


def test_export_is_atomic_and_never_replaces_other_dirs(trained, exports, tmp_path,
                                                        monkeypatch, capsys):
    source = str(trial_dir(trained, "chnsenticorp"))
    out = tmp_path / "export"
    # A crash after the SavedModel was written but before the export was complete.
    def crash(*args):
        raise RuntimeError("simulated crash")
    monkeypatch.setattr(model_info, "write", crash)
    with pytest.raises(RuntimeError):
        export.export(load_model(source), export.find_checkpoint(source), str(out))
    monkeypatch.undo()
    assert list(tmp_path.iterdir()) == []  # no half export, no temp dir left
    # An existing export is replaced only with --overwrite; other dirs never.
    shutil.copytree(exports["chnsenticorp"], out)
    before = sorted(os.listdir(out))
    with redirect_stdout(io.StringIO()):
        assert export_savedmodel.main([source, "--out", str(out)]) == 2
        assert "already exists; pass --overwrite" in capsys.readouterr().err
        assert export_savedmodel.main([source, "--out", str(out), "--overwrite"]) == 0
    assert sorted(os.listdir(out)) == before
    assert [p.name for p in tmp_path.iterdir()] == ["export"]
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.txt").write_text("keep me")
    assert export_savedmodel.main([source, "--out", str(tmp_path / "notes"),
                                   "--overwrite"]) == 2
    assert "is not a SavedModel export" in capsys.readouterr().err
    assert (tmp_path / "notes" / "a.txt").read_text() == "keep me"


def make_pre_model_info(legacy, data_dir):
    """A trial dir as versions before model_info.json left it: no model_info.json, no
    vocab copy, and a trial_hparams.json that also names the data dir, model and vocab."""
    os.remove(legacy / "model_info.json")
    os.remove(legacy / "vocab.txt")
    record = json.loads((legacy / "trial_hparams.json").read_text())
    record.pop("record_version", None)
    record.update(data_dir=str(data_dir), model_name="tiny",
                  vocab_file=str(data_dir / "vocab.txt"))
    (legacy / "trial_hparams.json").write_text(json.dumps(record))


def test_trial_dir_without_model_info_is_described_from_its_hparams(trained, tmp_path):
    """Trial dirs trained before model_info.json existed still load (from D/)."""
    legacy = tmp_path / "chnsenticorp_model_1"
    shutil.copytree(trial_dir(trained, "chnsenticorp"), legacy)
    make_pre_model_info(legacy, trained)
    model = load_model(str(legacy))
    current = load_model(str(trial_dir(trained, "chnsenticorp")))
    assert model.info == current.info
    assert model.task.label_list == current.task.label_list
    assert model.vocab_path == str(trained / "vocab.txt")


@pytest.mark.parametrize("era", ["no model_info.json", "model_info.json without version"])
def test_tagging_model_of_the_former_features_is_refused(trained, tmp_path, era):
    """A tagging model fine-tuned with segment ids 0 (before featurisation version 2) would
    predict from other inputs than it learnt from: refused, not silently off."""
    legacy = tmp_path / "ner_model_1"
    shutil.copytree(trial_dir(trained, "peoples-daily-ner"), legacy)
    assert load_model(str(legacy)).info["featurization_version"] == 2
    if era == "no model_info.json":
        make_pre_model_info(legacy, trained)
    else:
        info = json.loads((legacy / "model_info.json").read_text(encoding="utf-8"))
        del info["featurization_version"]
        (legacy / "model_info.json").write_text(json.dumps(info), encoding="utf-8")
    with pytest.raises(InputError) as err:
        load_model(str(legacy))
    assert "features of version 1, but this version of the toolkit makes version 2 " \
        "(segment ids 1 on every real token" in str(err.value)
    assert "fine-tune it again" in str(err.value)


def stub_runner(model, start_token, end_token):
    """A model stand-in that 'recognises' start_token..end_token: NER tags it B-PER I-PER,
    QA puts its start/end logits there. Checks the decoding and offsets exactly."""
    ids = model.tokenizer.convert_tokens_to_ids([start_token, end_token])
    labels = model.task.label_list if model.task.task_type == "tagging" else ["O"]

    def run(batch):
        input_ids = batch["input_ids"]  # [B, L]
        is_start, is_end = input_ids == ids[0], input_ids == ids[1]
        if model.task.task_type == "qa":
            padding = (1 - batch["input_mask"]) * -10000.0
            return {"start_logits": is_start * 5.0 + padding,
                    "end_logits": is_end * 5.0 + padding}
        tags = np.where(is_start, labels.index("B-PER"),
                        np.where(is_end, labels.index("I-PER"), labels.index("O")))
        return {"logits": np.eye(len(labels))[tags]}  # [B, L, C]
    return run


def test_decoding_maps_tags_and_spans_back_to_character_offsets(trained):
    # NER: 73 characters in 46-character windows; the second entity straddles the cut.
    text = "我们说" + "张伟去了北京。" * 10
    model = load_model(str(trial_dir(trained, "peoples-daily-ner")))
    inputs = predict.read_inputs(model.task, io.BytesIO(
        json.dumps({"text": text}, ensure_ascii=False).encode("utf-8")))
    output, = predict.predict(model, stub_runner(model, "张", "伟"), inputs, batch_size=4)
    assert output["entities"] == [{"type": "PER", "start": 3 + 7 * k, "end": 5 + 7 * k,
                                   "text": "张伟"} for k in range(10)]
    # QA: the answer is only in the last of three windows of the context.
    context = "今天天气很好。" * 8 + "张伟去了北京。"
    model = load_model(str(trial_dir(trained, "cmrc2018")))
    inputs = predict.read_inputs(model.task, io.BytesIO(json.dumps(
        {"context": context, "question": "去了哪里？"}, ensure_ascii=False).encode("utf-8")))
    output, = predict.predict(model, stub_runner(model, "北", "京"), inputs, batch_size=4)
    assert (output["answer"], output["start"], output["end"]) == ("北京", 60, 62)


def test_qa_model_whose_head_followed_another_activation_is_refused(trained, tmp_path):
    """A QA model from before the head's activation was fixed to the exact GELU: with
    hidden_act "gelu" its head was that already (it loads); with another it is refused."""
    legacy = tmp_path / "cmrc2018_model_1"
    shutil.copytree(trial_dir(trained, "cmrc2018"), legacy)
    info = json.loads((legacy / "model_info.json").read_text(encoding="utf-8"))
    assert info["qa_head_activation"] == "gelu"
    del info["qa_head_activation"]
    (legacy / "model_info.json").write_text(json.dumps(info), encoding="utf-8")
    assert load_model(str(legacy)).task.name == "cmrc2018"
    info["bert_config"]["hidden_act"] = "gelu_new"
    (legacy / "model_info.json").write_text(json.dumps(info), encoding="utf-8")
    with pytest.raises(InputError) as err:
        load_model(str(legacy))
    assert "QA head using hidden_act 'gelu_new'" in str(err.value)
    assert "fine-tune it again" in str(err.value)
