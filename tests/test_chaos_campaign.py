"""The chaos campaign in a small form (scripts/chaos_campaign.py): pre-training and
fine-tuning through SIGTERM, SIGKILL, two starts at once on one model dir and a stale lock
of a reused pid, each start with the data dir spelt another way; nothing is
lost, no two runs train at once, and the fine-tuned model equals the uninterrupted one's
bit for bit."""

import random

import pytest

from scripts import chaos_campaign


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    directory = tmp_path_factory.mktemp("chaos")
    chaos_campaign.prepare(str(directory))
    return str(directory)


def check(report):
    print(chaos_campaign.summary([report]))
    assert report["lost"] == [] and report["damaged"] == [], report
    assert report["double_writers"] == 0, report
    assert report["final_exit"] == 0, report["final_output_tail"]
    assert report["final_step"] == report["target_step"]


@pytest.fixture(autouse=True)
def shorter_runs(monkeypatch):
    """Shorter runs than the campaign's: still several progress lines before each stop."""
    monkeypatch.setattr(chaos_campaign, "PRETRAIN", dict(
        chaos_campaign.PRETRAIN, num_train_steps=120, log_every_steps=5,
        save_checkpoints_steps=20))
    monkeypatch.setattr(chaos_campaign, "FINETUNE", dict(
        chaos_campaign.FINETUNE, num_train_epochs=3.0, log_every_steps=5))


def test_pretraining_through_twin_starts(work):
    # (a SIGTERM alone: tests/test_preemption.py; "twins" ends with one to the winner)
    report = chaos_campaign.campaign(work, "pretraining", ["twins"], random.Random(1))
    check(report)
    assert report["events"] == ["twins"]
    assert report["resumed"] >= 1  # the last start, after the winner's stop


def test_finetuning_through_stops_and_a_stale_lock_ends_bit_identical(work):
    # needs the reference pre-trained model of the previous test (same work dir)
    chaos_campaign.setup_pretrained(work)
    # (a stop during start-up and overlapping task sets: tests/test_preemption.py, and the
    # campaign's "early" and "overlap")
    report = chaos_campaign.campaign(work, "finetuning", ["sigkill", "reused", "sigterm"],
                                     random.Random(2))
    check(report)
    assert report["identical"] is True
    # SIGKILL loses less than the time cadence (save_checkpoints_secs) and a little slack
    assert max(report["sigkill_loss_seconds"]) < \
        chaos_campaign.FINETUNE["save_checkpoints_secs"] + 1.0, report
