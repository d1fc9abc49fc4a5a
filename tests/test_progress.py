"""Progress-line arithmetic shared by the builder, the training hook and predict (util/)."""

import io

from util.io import format_duration, format_eta
from util.training_utils import CountProgress


def test_format_duration():
    assert format_duration(9.2) == "9s"
    assert format_duration(75) == "1m15s"
    assert format_duration(12345) == "3h25m45s"
    assert format_duration(-3) == "0s"


def test_eta_extrapolates_the_rate_so_far():
    assert format_eta(25, 100, 10.0) == "30s"  # 25 done in 10 s: 75 more take 30 s
    assert format_eta(1, 3601, 1.0) == "1h00m00s"
    assert format_eta(0, 100, 5.0) == "?"  # no rate yet
    assert format_eta(100, 100, 5.0) == "0s"
    assert format_eta(120, 100, 5.0) == "0s"


def test_count_progress_reports_count_rate_and_eta():
    out = io.StringIO()
    progress = CountProgress(10, "predicted", interval=3600, stream=out)
    progress.update(4)  # inside the interval: no line yet
    assert out.getvalue() == ""
    progress.update(6)
    progress.finish()
    line = out.getvalue().strip()
    assert line.startswith("predicted 10/10 | ") and line.endswith("| ETA 0s"), line
