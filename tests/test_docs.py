"""The README's claims that tests can hold it to."""

from tests.conftest import REPO


def test_committed_experiment_report_matches_its_results_json():
    """docs/experiment/report.md's sections re-render, figure for figure, from results.json."""
    import json

    from experiments import experiment_report
    docs = REPO / "docs" / "experiment"
    text = (docs / "report.md").read_text(encoding="utf-8")
    results = json.loads((docs / "results.json").read_text(encoding="utf-8"))
    rows, history = results["verdicts"], results["heldout_evaluations"]
    bar, compute = results["char_statistics"], results["compute"]
    for section in (experiment_report.conclusion(rows, history, bar, compute),
                    experiment_report.curve_section(history, bar),
                    experiment_report.compute_section(compute),
                    experiment_report.verdicts(rows)):
        assert section in text, section[:200]
    assert "Command: `%s`" % results["command"] in text
    for stage, seconds in results["wall_clock_seconds"].items():
        assert "| %s | %s |" % (stage, experiment_report.format_duration(seconds)) in text
    for image in ("pretraining_losses.png", "pretraining_eval.png", "finetuning_curves.png"):
        assert "](%s)" % image in text
        assert (docs / image).read_bytes().startswith(b"\x89PNG"), image
    # the README's summary table quotes the same means
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    means = {(r["task"], r["metric"]): (r["pretrained"], r["random_init"]) for r in rows}
    p, r = means[("chnsenticorp", "accuracy")]
    assert "| ChnSentiCorp accuracy | %.1f | %.1f |" % (p, r) in readme
    p, r = means[("peoples-daily-ner", "f1")]
    assert "| People's Daily NER F1 | %.1f | %.1f |" % (p, r) in readme
    (pe, re_), (pf, rf) = means[("cmrc2018", "em")], means[("cmrc2018", "f1")]
    assert "| CMRC 2018 EM / F1 | %.1f / %.1f | %.1f / %.1f |" % (pe, pf, re_, rf) in readme
