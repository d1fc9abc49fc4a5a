"""The pre-training-helps experiment in miniature, and the generic report tool."""

import json

import pytest

from experiments import experiment_report, run_experiment
from tests.conftest import shared_file
from scripts import report


@pytest.fixture(scope="module")
def mini_experiment(tmp_path_factory):
    shared_file("data", "cmrc2018", "cmrc2018_trial.json")
    work = tmp_path_factory.mktemp("experiment")
    docs = work / "docs"
    assert run_experiment.main(["--mini", "--work-dir", str(work),
                                "--docs-dir", str(docs)]) == 0
    return work, docs


def test_mini_experiment_writes_report_tables_and_plots(mini_experiment):
    work, docs = mini_experiment
    text = (docs / "report.md").read_text(encoding="utf-8")
    for needle in ("| electra_pretrained |", "| electra_random_init |", "gap > spread",
                   "chnsenticorp", "peoples-daily-ner", "cmrc2018", "## Wall-clock"):
        assert needle in text, needle
    for image in ("pretraining_losses.png", "pretraining_eval.png", "finetuning_curves.png"):
        assert (docs / image).read_bytes().startswith(b"\x89PNG"), image
    results = json.loads((docs / "results.json").read_text())
    assert {"electra_pretrained", "electra_random_init"} <= set(results)
    assert len(results["electra_pretrained"]["chnsenticorp"]["dev"]["accuracy"]["values"]) == 2
    # eval_each_checkpoint: one eval per saved checkpoint, step 0 included
    history = json.loads((work / "models" / "electra_pretrained" / "results" /
                          "unsup_results.json").read_text())
    assert [h["global_step"] for h in history] == [0, 10, 20]


def test_report_figures_are_the_runs_own(mini_experiment):
    work, docs = mini_experiment
    text = (docs / "report.md").read_text(encoding="utf-8")
    results = json.loads((docs / "results.json").read_text())
    history = json.loads((work / "models" / "electra_pretrained" / "results" /
                          "unsup_results.json").read_text())
    assert results["heldout_evaluations"] == history
    for section in ("## Conclusion", "## Pre-training on held-out text", "## Compute",
                    "two-sided (left and right neighbour)"):
        assert section in text, section
    # the held-out curve: one row per evaluated checkpoint, with the run's own figures
    for h in history:
        assert "| %d | %.3f |" % (h["global_step"], h["masked_lm_loss"]) in text
    bar = results["char_statistics"]["nats"]
    assert bar["two_sided"] < bar["bigram"] < bar["unigram"]
    assert "the two-sided bar: %.2f" % bar["two_sided"] in text
    helped = sum(1 for task in {r["task"] for r in results["verdicts"]}
                 if any(r["helps"] for r in results["verdicts"] if r["task"] == task))
    assert "on %d of 3 tasks" % helped in text
    assert set(results["wall_clock_seconds"]) >= {"pretraining", "finetuning", "total"}


def test_compute_comparison_against_the_published_small_model():
    compute = experiment_report.compute_comparison(run_experiment.FULL["pretrain"])
    # 32 x 128 x 5,000 tokens against 1,024 x 512 x 1M; 4 x 128^2 against 12 x 256^2
    assert compute["ours"]["tokens"] == 20480000
    assert compute["published"]["tokens"] == 524288000000
    assert compute["token_ratio"] == pytest.approx(25600)
    assert compute["compute_ratio"] == pytest.approx(25600 * 12)


def test_evaluation_text_never_enters_pretraining(mini_experiment):
    work, _ = mini_experiment
    corpus = "".join(p.read_text(encoding="utf-8") for p in (work / "corpus").iterdir())
    dev = json.loads((work / "finetuning_data" / "cmrc2018" / "dev.json").read_text())
    contexts = [p["context"] for a in dev["data"] for p in a["paragraphs"]]
    assert contexts and not any(c[:40] in corpus for c in contexts)
    senti_dev = (work / "finetuning_data" / "chnsenticorp" / "dev.tsv").read_text(
        encoding="utf-8").splitlines()[1:]
    assert not any(line.split("\t")[-1][:30] in corpus for line in senti_dev[:50])


def test_report_tool_on_any_results_dirs(mini_experiment, tmp_path, capsys):
    work, _ = mini_experiment
    results_dir = work / "models" / "electra_pretrained" / "results"
    assert report.main([str(results_dir), "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "| electra_pretrained |" in printed and "Params" in printed
    assert (tmp_path / "report.md").exists() and (tmp_path / "finetuning_curves.png").exists()


def test_missing_data_file_gives_a_clear_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(run_experiment, "SHARED_DATA", str(tmp_path / "nowhere"))
    assert run_experiment.main(["--mini", "--work-dir", str(tmp_path / "w"),
                                "--docs-dir", str(tmp_path / "d")]) == 2
    assert "experiment data missing: %s" % (tmp_path / "nowhere") in capsys.readouterr().err
