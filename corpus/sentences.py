"""Splitting a Chinese paragraph into sentences (build_pretraining_dataset.py
--split-sentences).

The official builder packs the lines of a document into examples line by line, and a line
that does not fit the example being filled is cut at --max-seq-length: with one paragraph
per line most of a paragraph is dropped. Split into sentences first, the lines are short
and the packing keeps nearly everything.

A sentence ends after a run of 。！？；!?; or of the ellipsis …, together with the closing
quotes and brackets that follow it (”’」』）)】》"'), so that 他说：“走吧。”然后… splits after
the closing quote, not inside it. Commas never end a sentence; a line without any end
mark stays whole.
"""

import re

SENTENCE_END = "。！？；!?;…"
CLOSERS = "”’」』）)】》\"'"
_SENTENCE = re.compile(r"[^%s]*(?:[%s]+[%s]*|$)" % (
    re.escape(SENTENCE_END), re.escape(SENTENCE_END), re.escape(CLOSERS)))


def split_sentences(line):
    """The sentences of line, in order, stripped; [] for a blank line."""
    return [part.strip() for part in _SENTENCE.findall(line) if part.strip()]
