"""Progress-line arithmetic shared by the builder, the training hook and predict (util/)."""

import io

from util.io import format_duration, format_eta
from util.progress import Progress


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
    progress = Progress(10, "predicted", interval=3600, stream=out)
    progress.update(4)  # inside the interval: no line yet
    assert out.getvalue() == ""
    progress.update(6)
    progress.finish()
    line = out.getvalue().strip()
    assert line.startswith("predicted 10/10 | ") and line.endswith("| ETA 0s"), line


def test_loop_progress_hook_reports_steps_crossing_the_interval():
    """The TPU graph's hook: several steps per session run (iterations_per_loop), a line
    whenever a multiple of every_steps is passed, and one at the last step."""
    import tensorflow.compat.v1 as tf
    from util.training_utils import LoopProgressHook

    lines = []
    with tf.Graph().as_default():
        step = tf.train.get_or_create_global_step()
        loop = tf.assign_add(step, 3)  # a "loop" of 3 steps
        hook = LoopProgressHook(10, 4, batch_size=2, printer=lambda line, **_: lines.append(line))
        with tf.train.MonitoredSession(hooks=[hook]) as session:
            for _ in range(4):  # steps 3, 6, 9, 12 (past the end: reported as reached)
                session.run(loop)
    assert [line.split(" |")[0] for line in lines] == ["step 6/10", "step 9/10", "step 12/10"]
    assert all("steps/s" in line and "seq/s" in line and "ETA" in line for line in lines)


def test_a_short_phase_is_silent_and_a_long_one_reports_to_the_end():
    clock, out = [0.0], io.StringIO()
    short = Progress(10, "featurising", "examples", interval=10, quiet_if_short=True,
                     stream=out, clock=lambda: clock[0])
    short.update(10)
    short.finish()
    assert out.getvalue() == ""
    long = Progress(100, "featurising", "examples", interval=10, quiet_if_short=True,
                    stream=out, clock=lambda: clock[0])
    for _ in range(99):
        clock[0] += 0.25  # 4 items a second: a line at 40 items (10 s), 80, and the end
        long.update()
    long.finish()
    assert out.getvalue().splitlines() == [
        "featurising 40/100 examples | 4.0/s | elapsed 10s | ETA 15s",
        "featurising 80/100 examples | 4.0/s | elapsed 20s | ETA 5s",
        "featurising 99/100 examples | 4.0/s | elapsed 25s | ETA 0s"]  # 24.75 s
