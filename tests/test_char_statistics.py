"""scripts/char_statistics.py: the character-statistics bar (unigram, left bigram,
two-sided neighbours) on hand-computable and structured corpora, and its errors."""

import json
import math

import pytest

from scripts import char_statistics as cs
from util.errors import InputError


def corpus(tmp_path, name, text):
    d = tmp_path / name
    d.mkdir()
    (d / "part.txt").write_text(text, encoding="utf-8")
    return d


def test_hand_computed_figures(tmp_path):
    # train "ab": unigram (1+1)/(2+2+1) = 0.4 for a and b; bigram after "\n" and after "a":
    # Witten-Bell (1 + 1*0.4)/(1+1) = 0.7; two-sided (1 + 1*0.7)/(1+1) = 0.85.
    stats = cs.char_statistics(corpus(tmp_path, "train", "ab\n"),
                               corpus(tmp_path, "held", "ab\n"))
    assert stats["heldout_characters"] == 2 and stats["train_characters"] == 2
    assert stats["nats"]["unigram"] == pytest.approx(-math.log(0.4))
    assert stats["nats"]["bigram"] == pytest.approx(-math.log(0.7))
    assert stats["nats"]["two_sided"] == pytest.approx(-math.log(0.85))


def test_each_estimate_is_a_distribution(tmp_path):
    lines = ["今天天气很好", "天气不好", "今天很忙", "我很好"]
    counts = cs.Counts(lines)
    vocab = list(counts.uni)
    unseen = "龘"  # any character never seen in training gets the same share
    for left, right in (("天", "很"), ("\n", "天"), ("很", "\n"), ("龘", "龘")):
        total = sum(counts.p_two_sided(left, c, right) for c in vocab)
        total += counts.p_two_sided(left, unseen, right)
        assert total == pytest.approx(1.0)
    assert sum(counts.p_bigram("天", c) for c in vocab + [unseen]) == pytest.approx(1.0)


def test_context_lowers_the_cost_when_neighbours_decide_the_character(tmp_path):
    # Each line's first and last characters are a coin flip given any context here; the
    # middle one is a coin flip given its left neighbour but fixed by both neighbours.
    train = "\n".join(["甲乙丙", "甲丁戊", "己乙庚", "己丁辛"] * 50) + "\n"
    held = "甲乙丙\n己丁辛\n"
    nats = cs.char_statistics(corpus(tmp_path, "train", train),
                              corpus(tmp_path, "held", held))["nats"]
    assert nats["unigram"] > nats["bigram"]
    assert nats["bigram"] == pytest.approx(math.log(2), abs=0.03)
    assert nats["two_sided"] == pytest.approx(2 * math.log(2) / 3, abs=0.03)


def test_cli_table_json_and_errors(tmp_path, capsys):
    train = corpus(tmp_path, "train", "你好世界\n\n世界你好\n")
    held = corpus(tmp_path, "held", "你好\n")
    (held / ".hidden.txt").write_text("不算数的字\n", encoding="utf-8")  # skipped
    out = tmp_path / "stats.json"
    assert cs.main([str(train), str(held), "--json-out", str(out)]) == 0
    printed = capsys.readouterr().out
    stats = json.loads(out.read_text(encoding="utf-8"))
    assert stats["heldout_characters"] == 2
    assert "| two-sided (left and right neighbour) | %.2f |" % stats["nats"]["two_sided"] \
        in printed
    assert cs.main([str(tmp_path / "missing"), str(held)]) == 2
    assert "missing: not a directory" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="no text files"):
        cs.char_statistics(train, empty)
