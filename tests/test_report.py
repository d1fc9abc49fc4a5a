"""scripts/report.py's fine-tuning panels plot what the console prints: the per-example
loss (not the loop's batch sum), and the dev metric of each evaluation."""

from scripts import report
from util import summaries


def test_the_finetuning_panels_read_the_console_loss_and_the_dev_metric(tmp_path):
    trial = tmp_path / "chnsenticorp_model_1"
    for step, (batch_sum, per_example) in enumerate([(50.0, 1.56), (30.0, 0.94)], 1):
        summaries.write_scalars(str(trial), {"loss": batch_sum,
                                                 "mean_example_loss": per_example}, step)
    summaries.write_scalars(str(trial / "eval_dev"), {"chnsenticorp/accuracy": 81.5,
                                                          "chnsenticorp/loss": 0.4}, 2)
    label, losses, metric, dev = report.finetuning_series(str(trial), "chnsenticorp")
    assert [(step, round(value, 4)) for step, value in losses] == [(1, 1.56), (2, 0.94)]
    assert label == "training loss per example (the console's)"
    assert (metric, dev) == ("accuracy", [(2, 81.5)])
    models = [("m", {"chnsenticorp": {"trials": [{"model_dir": str(trial)}]}})]
    assert report.plot_finetuning(models, str(tmp_path)) == ["finetuning_curves.png"]
    assert (tmp_path / "finetuning_curves.png").read_bytes().startswith(b"\x89PNG")


def test_event_files_of_earlier_versions_fall_back_to_the_batch_loss(tmp_path):
    summaries.write_scalars(str(tmp_path), {"loss": 50.0}, 1)
    label, losses, metric, dev = report.finetuning_series(str(tmp_path), "x")
    assert (label, losses, metric, dev) == ("training loss (batch sum)", [(1, 50.0)], None, [])
