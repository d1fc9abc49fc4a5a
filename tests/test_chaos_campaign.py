"""SIGKILL pre-training and fine-tuning twice each at random moments of training: both
resume from their last checkpoint (the first step trained is the one after it), finish,
and leave no corrupt file."""

import random

import pytest

from scripts import fault_campaign


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    directory = tmp_path_factory.mktemp("faults")
    fault_campaign.prepare(str(directory))
    return str(directory)


def test_pretraining_survives_two_kills(work):
    report = fault_campaign.pretraining_campaign(work, kills=2, rng=random.Random(1),
                                                 log=print)
    assert report["kills"] == 2 and report["resumes"] >= 2, report
    assert report["steps_at_kills"][0] > 0  # killed during training, not at start-up
    # each resumed run trains on from its checkpoint's step: no step lost, none repeated
    assert report["first_steps"] and all(
        first == checkpoint + 1 for checkpoint, first in report["first_steps"]), report
    assert report["corrupt"] == []
    assert report["final_exit"] == 0 and report["final_step"] == report["target_step"]


def test_finetuning_survives_two_kills(work):
    # needs the pre-trained tiny model of the previous test (same work dir)
    report = fault_campaign.finetuning_campaign(work, kills=2, rng=random.Random(2),
                                                log=print)
    assert report["kills"] == 2 and report["resumes"] >= 2, report
    assert report["first_steps"] and all(
        first == checkpoint + 1 for checkpoint, first in report["first_steps"]), report
    assert report["corrupt"] == []
    assert report["final_exit"] == 0 and report["final_step"] == report["target_step"]
