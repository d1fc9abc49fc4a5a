"""How well simple character statistics guess held-out text: the bar a masked LM must beat.

    python scripts/char_statistics.py TRAIN_CORPUS_DIR HELDOUT_CORPUS_DIR [--json-out F]

Both dirs are pre-training corpora (text files, one sentence or paragraph per line, searched
recursively, hidden files skipped). Counted on TRAIN, each model's cost on HELDOUT is the mean
-ln p(char) in nats over every held-out character (line ends are context, never guessed):

- unigram:   p(c), character frequency, add-one smoothed (one slot for unseen characters)
- bigram:    p(c | left neighbour)
- two-sided: p(c | left neighbour, right neighbour), from (left, char, right) triples: the
             information an MLM has about a masked character from its two neighbours alone

Each longer context is Witten-Bell interpolated with the shorter one (two-sided -> bigram ->
unigram), so no estimate is zero and nothing is tuned. A masked LM's `masked_lm_loss` (nats
per masked token) that is not below `two_sided` has learned no more context than the
neighbouring characters give. Units are characters, while the MLM's are WordPiece tokens
(almost all single characters in Chinese text), so the comparison is close, not exact.
"""

import argparse
import collections
import json
import math
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from util.errors import InputError, run_cli  # noqa: E402

BOUNDARY = "\n"  # the context before a line's first and after its last character


def corpus_lines(corpus_dir):
    """Yields the non-empty lines (stripped) of every non-hidden file under corpus_dir."""
    import tensorflow as tf
    if not tf.io.gfile.isdir(corpus_dir):
        raise InputError("%s: not a directory (expected a corpus dir of text files)"
                         % corpus_dir)
    files = sorted(os.path.join(root, name) for root, _, names in tf.io.gfile.walk(corpus_dir)
                   for name in names
                   if not name.startswith(".")
                   and not any(p.startswith(".") for p in os.path.relpath(root, corpus_dir)
                               .split(os.sep) if p != "."))
    if not files:
        raise InputError("%s: no text files found" % corpus_dir)
    for path in files:
        with tf.io.gfile.GFile(path, "rb") as f:
            for line in f.read().decode("utf-8", errors="replace").splitlines():
                line = line.strip()
                if line:
                    yield line


class Counts:
    """Unigram, left-bigram and (left, char, right) counts of a corpus."""

    def __init__(self, lines):
        self.uni = collections.Counter()
        self.bi = collections.Counter()       # l + c
        self.left = collections.Counter()     # l: count of (l, *)
        self.left_types = collections.Counter()  # l: distinct c after l
        self.tri = collections.Counter()      # l + c + r
        self.ctx = collections.Counter()      # l + r: count of (l, *, r)
        self.ctx_types = collections.Counter()   # l + r: distinct c between them
        for line in lines:
            padded = BOUNDARY + line + BOUNDARY
            self.uni.update(line)
            self.bi.update(padded[i:i + 2] for i in range(len(line)))
            self.tri.update(padded[i:i + 3] for i in range(len(line)))
        for lc, n in self.bi.items():
            self.left[lc[0]] += n
            self.left_types[lc[0]] += 1
        for lcr, n in self.tri.items():
            self.ctx[lcr[0] + lcr[2]] += n
            self.ctx_types[lcr[0] + lcr[2]] += 1
        self.total = sum(self.uni.values())
        if not self.total:
            raise InputError("the training corpus has no characters")

    def p_unigram(self, c):
        # +1 slot for characters never seen in training
        return (self.uni[c] + 1.0) / (self.total + len(self.uni) + 1.0)

    def p_bigram(self, left, c):
        return witten_bell(self.bi[left + c], self.left[left], self.left_types[left],
                           self.p_unigram(c))

    def p_two_sided(self, left, c, right):
        return witten_bell(self.tri[left + c + right], self.ctx[left + right],
                           self.ctx_types[left + right], self.p_bigram(left, c))


def witten_bell(count, context_count, context_types, p_lower):
    """(count + T p_lower) / (N + T): N events seen in this context, T distinct outcomes."""
    if not context_count:
        return p_lower
    return (count + context_types * p_lower) / (context_count + context_types)


def cross_entropies(counts, lines):
    """Mean -ln p over the held-out characters, per model; also the character count."""
    totals = {"unigram": 0.0, "bigram": 0.0, "two_sided": 0.0}
    n = 0
    for line in lines:
        padded = BOUNDARY + line + BOUNDARY
        for i, c in enumerate(line):
            left, right = padded[i], padded[i + 2]
            totals["unigram"] -= math.log(counts.p_unigram(c))
            totals["bigram"] -= math.log(counts.p_bigram(left, c))
            totals["two_sided"] -= math.log(counts.p_two_sided(left, c, right))
            n += 1
    if not n:
        raise InputError("the held-out corpus has no characters")
    return {name: total / n for name, total in totals.items()}, n


def char_statistics(train_dir, heldout_dir):
    """The nats per held-out character of each model, with the corpus sizes."""
    counts = Counts(corpus_lines(train_dir))
    nats, n = cross_entropies(counts, corpus_lines(heldout_dir))
    return {"nats": nats, "train_characters": counts.total,
            "distinct_train_characters": len(counts.uni), "heldout_characters": n}


def format_table(stats):
    names = {"unigram": "unigram (character frequency)",
             "bigram": "bigram (left neighbour)",
             "two_sided": "two-sided (left and right neighbour)"}
    rows = ["| model | nats per held-out character |", "|---|---|"]
    rows += ["| %s | %.2f |" % (names[k], stats["nats"][k])
             for k in ("unigram", "bigram", "two_sided")]
    return "\n".join(rows) + (
        "\n\nCounted on %s training characters (%s distinct), scored on %s held-out "
        "characters." % (format(stats["train_characters"], ","),
                         format(stats["distinct_train_characters"], ","),
                         format(stats["heldout_characters"], ",")))


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("train_dir", help="corpus dir the counts are taken from")
    parser.add_argument("heldout_dir", help="corpus dir the models are scored on")
    parser.add_argument("--json-out", help="also write the figures to this JSON file")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)

    def job():
        stats = char_statistics(args.train_dir, args.heldout_dir)
        print(format_table(stats), flush=True)
        if args.json_out:
            from util.io import atomic_write_json
            atomic_write_json(args.json_out, stats)
    return run_cli(job)


if __name__ == "__main__":
    sys.exit(main())
