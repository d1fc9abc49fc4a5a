"""The bad-input campaign (scripts/bad_input_campaign.py): every bad input to every tool
is a clear error that leaves written files intact, the troubleshooting page is generated
from the campaign, and the campaign's own classifier can fail."""

import os
import sys

import pytest

from scripts import bad_input_campaign as campaign
from tests.conftest import REPO

DOC = REPO / "docs" / "troubleshooting.md"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """(work root, outcomes) of one run of every case, shared by the first two tests."""
    root = str(tmp_path_factory.mktemp("bad_inputs"))
    return root, campaign.run_campaign(root, campaign.CASES)


def test_every_bad_input_is_a_clear_error_and_loses_nothing(run):
    root, outcomes = run
    assert len(outcomes) >= 45
    failing = [campaign.report_line(o, root) for o in outcomes if o.kind != campaign.CLEAR]
    assert not failing, "%s\n%s" % (campaign.summary_line(outcomes), "\n".join(failing))


def test_troubleshooting_page_is_generated_from_the_cases(run):
    root, outcomes = run
    assert DOC.read_text(encoding="utf-8") == campaign.render_docs(outcomes, root), (
        "regenerate it: python scripts/bad_input_campaign.py --write-docs "
        "docs/troubleshooting.md")


def fake_case(main, setup=None):
    return campaign.Case("fake", "fake-tool", "a fake tool", setup, ["@D/kept.txt"],
                         message="bad input", program=main)


def refuse(argv):
    print("error: bad input", file=sys.stderr)
    return 2


def accept(argv):
    return 0


def crash(argv):
    raise KeyError("boom")


def delete(argv):
    os.remove(argv[0])
    return refuse(argv)


@pytest.mark.parametrize("main, kind", [
    (refuse, campaign.CLEAR), (accept, campaign.WRONG), (crash, campaign.TRACEBACK),
    (delete, campaign.LOST)])
def test_the_classifier_sees_each_failure(tmp_path, main, kind):
    fixture = tmp_path / "F"
    fixture.mkdir()
    (fixture / "kept.txt").write_text("data")
    outcome = campaign.run_case(fake_case(main), str(fixture), str(tmp_path / "D"))
    assert outcome.kind == kind, outcome.detail
    if kind == campaign.TRACEBACK:
        assert "KeyError" in outcome.detail
    if kind == campaign.LOST:
        assert "kept.txt" in outcome.detail
