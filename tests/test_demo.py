"""scripts/demo.py (`make demo`) in miniature from a fresh copy of sample_data/: every
stage's artefact exists and is well formed, a rerun reuses the finished stages, a changed
input redoes only the stages after it, and a failing stage is named."""

import contextlib
import io
import json
import shutil

import numpy as np
import pytest

from scripts import demo
from tests.conftest import REPO, tsv_accuracy
from tests.numpy_reference import (checkpoint_values, classification_probabilities,
                                    read_vocab)

TASK_LABELS = {"0", "1"}


@pytest.fixture(scope="module")
def mini_demo(tmp_path_factory):
    """One --mini run of the whole demo: (sample dir, demo dir, its stdout)."""
    tmp = tmp_path_factory.mktemp("demo")
    sample = tmp / "sample_data"
    shutil.copytree(REPO / "sample_data", sample)
    out = tmp / "demo_data"
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        status = demo.main(["--mini", "--demo-dir", str(out), "--sample-dir", str(sample)])
    assert status == 0, buf.getvalue()[-3000:]
    return sample, out, buf.getvalue()


def test_bundled_sentiment_sample_is_in_the_chnsenticorp_layout():
    from finetune.classification import ChnSentiCorp  # noqa: F401 (the reader the demo uses)
    texts = []
    for split in ("train", "dev", "test"):
        lines = (REPO / "sample_data" / "finetuning_data" / "chnsenticorp"
                 / (split + ".tsv")).read_text(encoding="utf-8").splitlines()
        assert lines[0] == "label\ttext_a"
        rows = [line.split("\t") for line in lines[1:]]
        assert all(len(r) == 2 and r[0] in TASK_LABELS and r[1] for r in rows)
        labels = [r[0] for r in rows]
        assert 0.4 < labels.count("1") / len(labels) < 0.6  # balanced
        texts += [r[1] for r in rows]
    assert len(texts) >= 250
    assert len(set(texts)) == len(texts)  # no review twice, within or across splits


def test_every_stage_reports_what_it_made(mini_demo):
    _, out, log = mini_demo
    for n in range(1, 8):
        assert "[%d/7]" % n in log
    assert log.count("\n  -> ") == 7  # one line per stage saying what it made
    assert "demo done in" in log and str(out / "exports" / "chnsenticorp") in log
    assert "python run_finetuning.py --data-dir" in log  # the next commands


def read_event_files(run_dir):
    """Every event file of a TensorBoard run dir, read with TensorFlow's own iterator:
    (graph events, {tag: [steps]})."""
    import tensorflow as tf
    graphs, steps = 0, {}
    for path in sorted(run_dir.glob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            graphs += event.HasField("graph_def")
            for value in event.summary.value:
                steps.setdefault(value.tag, []).append(event.step)
    return graphs, {tag: sorted(s) for tag, s in steps.items()}


def test_tensorboard_runs_hold_the_curves_and_one_graph(mini_demo):
    """After the demo: pre-training's run has its losses at the first and the last step
    and one graph, its eval run each evaluated checkpoint's metrics (step 0 and the last);
    a fine-tuning trial has the console's per-example loss and dev metrics per checkpoint."""
    _, out, _ = mini_demo
    model_dir = out / "models" / demo.MODEL_NAME
    last = demo.MINI_PRETRAIN["num_train_steps"]
    graphs, steps = read_event_files(model_dir)
    assert graphs == 1
    for tag in ("loss", "loss/total", "loss/generator", "loss/discriminator", "learning_rate"):
        assert steps[tag] == [1, 1 + demo.MINI_PRETRAIN["log_every_steps"], last], tag
    graphs, steps = read_event_files(model_dir / "eval")
    assert graphs == 0
    for tag in ("disc_auc", "disc_accuracy", "disc_loss", "masked_lm_accuracy",
                "masked_lm_loss", "sampled_masked_lm_accuracy", "loss"):
        assert steps[tag] == [0, last], tag

    trial_dir = model_dir / "finetuning_models" / "chnsenticorp_model_1"
    graphs, steps = read_event_files(trial_dir)
    trial_last = steps["mean_example_loss"][-1]
    assert graphs == 1 and trial_last > 1
    assert steps["mean_example_loss"][0] == 1 and steps["learning_rate"] == steps["loss"]
    assert (trial_dir / ("model.ckpt-%d.index" % trial_last)).exists()  # the final step
    graphs, steps = read_event_files(trial_dir / "eval_dev")
    assert steps == {"chnsenticorp/accuracy": [0, trial_last],
                     "chnsenticorp/loss": [0, trial_last]}


def test_results_json_and_table(mini_demo):
    _, out, _ = mini_demo
    results = out / "models" / demo.MODEL_NAME / "results"
    summary = json.loads((results / "chnsenticorp_results.json").read_text(encoding="utf-8"))
    assert len(summary["trials"]) == 2
    accuracies = [t["results"]["dev"]["accuracy"] for t in summary["trials"]]
    dev_tsv = (out / "finetuning_data" / "chnsenticorp" / "dev.tsv").read_text(encoding="utf-8")
    for trial, preds_file in enumerate(["chnsenticorp_dev_preds.json",
                                        "chnsenticorp_dev_preds_trial2.json"]):
        preds = json.loads((results / preds_file).read_text(encoding="utf-8"))
        assert accuracies[trial] == pytest.approx(tsv_accuracy(preds, dev_tsv))
    assert [t["seed"] for t in summary["trials"]] == [1, 2]
    assert summary["summary"]["dev"]["accuracy"]["max"] == max(accuracies)
    table = (results / "chnsenticorp_results.md").read_text(encoding="utf-8")
    row = [line for line in table.splitlines() if line.startswith("| %s" % demo.MODEL_NAME)]
    assert len(row) == 1
    assert "%.1f (%.1f)" % (max(accuracies), sum(accuracies) / 2) in row[0]
    assert "| 2 | " in row[0] and row[0].rstrip().endswith("| newest |")


def test_saved_model_signature(mini_demo):
    from tensorflow.core.protobuf import saved_model_pb2
    _, out, _ = mini_demo
    export = out / "exports" / "chnsenticorp"
    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((export / "saved_model.pb").read_bytes())
    signature = proto.meta_graphs[0].signature_def["serving_default"]
    assert set(signature.inputs) == {"input_ids", "input_mask", "segment_ids"}
    assert {"logits", "probabilities", "labels"} <= set(signature.outputs)
    assert "serve" in proto.meta_graphs[0].meta_info_def.tags
    assert (export / "variables").is_dir()


def test_one_prediction_per_review(mini_demo):
    sample, out, _ = mini_demo
    inputs = [json.loads(x) for x in (sample / "demo_reviews.jsonl")
              .read_text(encoding="utf-8").splitlines() if x.strip()]
    preds = [json.loads(x) for x in (out / "predictions.jsonl")
             .read_text(encoding="utf-8").splitlines()]
    assert [p["text"] for p in preds] == [x["text"] for x in inputs]
    # Each review's probabilities are the exported model's: the softmax of the head's dense
    # layer on the [CLS] vector, with the encoder written out in NumPy; the label their argmax.
    from model.tokenization import FullTokenizer
    export = out / "exports" / "chnsenticorp"
    info = json.loads((export / "model_info.json").read_text(encoding="utf-8"))
    labels = info["label_list"]
    assert set(labels) == TASK_LABELS
    values = checkpoint_values(export / "variables" / "variables")
    tokenizer, vocab = FullTokenizer(str(export / "vocab.txt")), read_vocab(export / "vocab.txt")
    for p in preds:
        expected = classification_probabilities(values, info, "chnsenticorp", tokenizer, vocab,
                                                p["text"])
        assert set(p["probabilities"]) == TASK_LABELS
        assert [p["probabilities"][label] for label in labels] == pytest.approx(
            expected, abs=1e-5), p
        assert p["label"] == labels[int(np.argmax(expected))]


def test_the_export_predicts_what_evaluation_predicted(mini_demo):
    """The dev reviews through predict.py and the demo's export get, label for label, the
    dev predictions that evaluating the exported trial (the first) wrote."""
    import predict
    _, out, _ = mini_demo
    texts = [line.split("\t")[1] for line in (out / "finetuning_data" / "chnsenticorp" /
             "dev.tsv").read_text(encoding="utf-8").splitlines()[1:]]
    stdin = io.BytesIO("".join(json.dumps({"text": t}, ensure_ascii=False) + "\n"
                               for t in texts).encode("utf-8"))
    stdout = io.StringIO()
    with contextlib.redirect_stderr(io.StringIO()):
        assert predict.main([str(out / "exports" / "chnsenticorp")], stdin=stdin,
                            stdout=stdout) == 0
    labels = [json.loads(line)["label"] for line in stdout.getvalue().splitlines()]
    evaluated = json.loads((out / "models" / demo.MODEL_NAME / "results" /
                            "chnsenticorp_dev_preds.json").read_text(encoding="utf-8"))
    assert labels == [evaluated[str(i)] for i in range(len(texts))]


def test_hf_export(mini_demo):
    from safetensors.numpy import load_file
    _, out, _ = mini_demo
    hf = out / "hf" / (demo.MODEL_NAME + "-discriminator")
    config = json.loads((hf / "config.json").read_text(encoding="utf-8"))
    assert config["model_type"] == "electra"
    tensors = load_file(str(hf / "model.safetensors"))
    assert tensors["electra.embeddings.word_embeddings.weight"].shape == (
        config["vocab_size"], config["embedding_size"])


def test_rerun_reuses_and_a_changed_input_redoes_only_later_stages(mini_demo, capsys):
    sample, out, _ = mini_demo
    assert demo.main(["--mini", "--demo-dir", str(out), "--sample-dir", str(sample)]) == 0
    log = capsys.readouterr().out
    assert log.count("reused (unchanged since the last run)") == 6  # all but the table
    assert "| %s |" % demo.MODEL_NAME in log  # the table is shown again

    reviews = sample / "demo_reviews.jsonl"
    reviews.write_text(reviews.read_text(encoding="utf-8")
                       + '{"text": "物流很快，东西也好用。"}\n', encoding="utf-8")
    assert demo.main(["--mini", "--demo-dir", str(out), "--sample-dir", str(sample)]) == 0
    log = capsys.readouterr().out
    assert log.count("reused (unchanged since the last run)") == 5  # predict redone
    preds = (out / "predictions.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(preds) == len([x for x in reviews.read_text(encoding="utf-8").splitlines()
                              if x.strip()])


def test_a_failing_stage_is_named(mini_demo, capsys, tmp_path):
    sample, out, _ = mini_demo
    broken = tmp_path / "sample_data"
    shutil.copytree(sample, broken)
    (broken / "demo_reviews.jsonl").write_text('{"text": "好"}\nnot json\n', encoding="utf-8")
    assert demo.main(["--mini", "--demo-dir", str(out), "--sample-dir", str(broken)]) == 1
    err = capsys.readouterr().err
    assert "demo failed at stage 6/7 predict a few reviews" in err
    assert "demo_reviews.jsonl" in err or "<stdin>:2" in err  # predict's own error above
