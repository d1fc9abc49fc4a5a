"""bench/cross_version.py's verdict on two dumps (no TensorFlow child runs here: the dumps
are made up, in the layout a child writes)."""

import copy

import pytest

from bench import cross_version


def make_dump(steps=5):
    return {"tensorflow": "2.15.1", "numpy": "1.26.4", "python": "3.11.7",
            "logits": [[0.01 * i - 0.3 for i in range(128)] for _ in range(2)],
            "losses": {"total": [43.2306 - 0.1 * s for s in range(steps)],
                       "gen": [9.981 - 0.01 * s for s in range(steps)],
                       "disc": [0.665 - 0.001 * s for s in range(steps)]},
            "inputs_sha256": {"logits": "ab" * 32, "tfrecords": "cd" * 32}}


def verdicts(a, b, logits_tolerance=1e-5, loss_tolerance=1e-4):
    return {what.split(" (")[0].split(",")[0]: (diff, within) for what, diff, _, within
            in cross_version.compare(a, b, logits_tolerance, loss_tolerance)}


def test_identical_dumps_pass_with_zero_differences():
    rows = verdicts(make_dump(), make_dump())
    assert set(rows) == {"inputs: weights", "discriminator logits", "total loss", "gen loss",
                         "disc loss"}
    assert all(within and diff == 0.0 for diff, within in rows.values())


def test_differences_within_tolerance_pass():
    b = make_dump()
    b["logits"][1][7] += 4e-6
    b["losses"]["disc"][2] += 0.00009  # under a 4-decimal step of the progress line
    rows = verdicts(make_dump(), b)
    assert rows["discriminator logits"] == (pytest.approx(4e-6), True)
    assert rows["disc loss"] == (pytest.approx(9e-5), True)


@pytest.mark.parametrize("plant, failing", [
    (lambda d: d["logits"][0].__setitem__(100, d["logits"][0][100] - 2e-5),
     "discriminator logits"),
    (lambda d: d["losses"]["gen"].__setitem__(3, d["losses"]["gen"][3] + 0.0002), "gen loss"),
    (lambda d: d["losses"]["total"].pop(), "total loss"),  # a step missing
    (lambda d: d["inputs_sha256"].__setitem__("tfrecords", "ef" * 32), "inputs: weights"),
])
def test_a_planted_difference_above_tolerance_fails_that_row_only(plant, failing):
    b = copy.deepcopy(make_dump())
    plant(b)
    rows = verdicts(make_dump(), b)
    assert [what for what, (_, within) in rows.items() if not within] == [failing]
    assert rows[failing][0] > 1e-5


def test_no_logged_steps_fail_rather_than_pass():
    a = make_dump(steps=0)
    assert not verdicts(a, copy.deepcopy(a))["total loss"][1]
