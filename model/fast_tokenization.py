"""A fast WordPiece tokenizer with exactly the ids of `model.tokenization`.

`FastWordpieceTokenizer` tokenizes batches of lines in three tiers, all
checked against the pure-Python `FullTokenizer` (the reference):

  1. Characters that are always a token of their own, whatever surrounds
     them: CJK ideographs, which BERT isolates before anything else, and
     punctuation that normalisation leaves alone (no case, no decomposition,
     combining class 0). They are >90% of Chinese text and are looked up
     in a per-code-point id table with numpy, no per-character Python.
  2. The runs of other characters between them (Latin words, numbers, ...)
     go, in one batch, to the Rust `tokenizers` package configured as BERT:
     BertNormalizer, BertPreTokenizer, WordPiece with "[UNK]", "##" and at
     most 200 characters per word.
  3. Lines holding a character on which `tokenizers` and the reference
     disagree are tokenized by the reference.

Splitting a line at tier-1 characters does not change its tokens: the
reference puts spaces around CJK ideographs and splits words at punctuation,
and both steps come before or commute with the per-word lower-casing and
accent stripping (the one context-dependent rule, the final sigma of
`str.lower`, is handled by tier 3).

Where `tokenizers` differs from the reference, and how that is handled:

  * Vocab file: it strips every trailing Unicode space from a line (turning
    the U+2028 token into "") and keeps the LAST id of a duplicate line. It
    gets the vocab dict read by `model.tokenization` instead.
  * Character tables: it uses old Unicode tables (Unicode 9 era) for its
    control / punctuation / non-spacing-mark tests, the reference those of
    Python's `unicodedata`. Unassigned code points are "control" (dropped)
    for the reference but kept by `tokenizers`; punctuation, marks and
    format characters added in later Unicode versions (e.g. U+061D,
    U+2E43-U+2E5D, U+0890) are classified differently.
  * CJK ranges: it starts the Extension E range at U+2B920 instead of
    U+2B820, so U+2B820-U+2B91F are not split off (tier 1 here).
  * Lower-casing: `str.lower` maps a word-final capital sigma to "ς",
    `tokenizers` always to "σ".
  * Canonical reordering (strip_accents): combining characters that are not
    non-spacing marks keep their order in `tokenizers` if its tables do not
    know their combining class.
  * Lone surrogates cannot be passed to it at all.

Rather than hard-code those lists (they depend on the Python and
`tokenizers` versions), each character is classified the first time it is
seen: a character that is not tier 1 is run through both pre-tokenizers,
inside a word, alone and word-final after a letter, and is tier 3
("divergent") if the words differ or it may be reordered. Real Chinese text
practically never contains a divergent character. The WordPiece step is the
same algorithm in both (greedy longest match, length limit in characters).
"""

import itertools
import unicodedata

import numpy as np

from model import tokenization

try:
    import tokenizers
    from tokenizers import models, normalizers, pre_tokenizers
except ImportError:  # optional: callers fall back to the Python tokenizer
    tokenizers = None

MAX_INPUT_CHARS_PER_WORD = 200

# Spans (tier 2) repeat a lot: numbers, spaces, common words. Their ids are
# cached; the cache is emptied when it reaches this many entries.
SPAN_CACHE_SIZE = 1 << 16

# Per-code-point table markers; ids in the table are >= 0.
_UNSEEN = -3
_DIVERGENT = -2
_RUST = -1
_NUM_CODE_POINTS = 0x110000

# Capital sigma: str.lower() makes it "ς" or "σ" depending on the letters
# around it, even across punctuation, so its lines go to the reference.
_CONTEXT_LOWERED = "\u03a3"


def _probe_text(char):
    """The text a character is checked in: inside, alone, and word-final.

    Word-final after a cased letter catches context-dependent lower-casing
    (final sigma); inside a word catches whitespace/punctuation splits.
    """
    return "x%sx %s x%s" % (char, char, char)


def _may_reorder(char):
    """True if NFD(char) has a combining char that strip_accents keeps.

    Non-spacing marks are dropped after NFD, so their order is moot; other
    combining characters (e.g. some Mc) keep the canonical order, which
    depends on each library's Unicode tables.
    """
    return any(unicodedata.combining(part)
               and unicodedata.category(part) != "Mn"
               for part in unicodedata.normalize("NFD", char))


def _rust_tokenizer(vocab, do_lower_case, strip_accents):
    """A `tokenizers.Tokenizer` configured like BERT's WordPiece."""
    model = models.WordPiece(
        vocab=dict(vocab), unk_token=tokenization.UNK_TOKEN,
        max_input_chars_per_word=MAX_INPUT_CHARS_PER_WORD,
        continuing_subword_prefix=tokenization.WORDPIECE_PREFIX)
    tokenizer = tokenizers.Tokenizer(model)
    tokenizer.normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True,
        strip_accents=strip_accents, lowercase=do_lower_case)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    return tokenizer


def _exclusive_cumsum(counts):
    """[0, c0, c0+c1, ...]: len(counts) + 1 running totals."""
    totals = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=totals[1:])
    return totals


def _span_bounds(in_span, line_starts):
    """Start and end (exclusive) positions of the runs of True in `in_span`,
    cut at line starts."""
    after_gap = np.ones(len(in_span), dtype=bool)  # previous not in a span
    after_gap[1:] = ~in_span[:-1]
    before_gap = np.ones(len(in_span), dtype=bool)  # next not in a span
    before_gap[:-1] = ~in_span[1:]
    before_line_start = np.ones(len(in_span), dtype=bool)
    before_line_start[:-1] = line_starts[1:]
    starts = np.flatnonzero(in_span & (after_gap | line_starts))
    ends = np.flatnonzero(in_span & (before_gap | before_line_start)) + 1
    return starts, ends


class FastWordpieceTokenizer(tokenization._VocabMixin):
    """WordPiece in numpy and Rust, with the ids of `FullTokenizer`.

    Args:
        vocab_file: WordPiece vocab, one token per line.
        do_lower_case: lower-case the text.
        strip_accents: strip accents; None follows do_lower_case.
    """

    def __init__(self, vocab_file, do_lower_case=True, strip_accents=None):
        # The reference reads and checks the vocab, classifies characters
        # and tokenizes the lines the Rust tokenizer would get wrong.
        self._reference = tokenization.FullTokenizer(
            vocab_file, do_lower_case=do_lower_case, strip_accents=strip_accents)
        self.vocab = self._reference.vocab
        self.inv_vocab = self._reference.inv_vocab
        self.do_lower_case = do_lower_case
        self.strip_accents = self._reference.basic_tokenizer.strip_accents
        self._rust = _rust_tokenizer(self.vocab, do_lower_case,
                                     self.strip_accents)
        # Batch encoding without offsets, where the version has it.
        self._encode_batch = getattr(self._rust, "encode_batch_fast",
                                     self._rust.encode_batch)
        # Per code point: its id if it is always a token of its own, or
        # _RUST / _DIVERGENT / _UNSEEN.
        self._char_ids = np.full(_NUM_CODE_POINTS, _UNSEEN, dtype=np.int32)
        self._span_cache = {}

    def tokenize(self, text):
        """Return the WordPiece tokens of `text` (str or UTF-8 bytes)."""
        return self.convert_ids_to_tokens(self.encode_batch_ids([text])[0])

    def encode_batch_ids(self, lines):
        """Return the token ids of each line (no [CLS]/[SEP] added)."""
        texts = [tokenization.to_text(line) for line in lines]
        joined = "".join(texts)
        # One code point per element; surrogatepass keeps lone surrogates
        # (they are divergent) from raising here.
        codes = np.frombuffer(joined.encode("utf-32-le", "surrogatepass"),
                              dtype="<u4")
        self._classify_new_chars(codes)
        char_ids = self._char_ids[codes]
        lengths = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
        bounds = _exclusive_cumsum(lengths)
        divergent_count = _exclusive_cumsum(char_ids == _DIVERGENT)[bounds]
        by_reference = np.diff(divergent_count) > 0
        ids = self._encode_fast(joined, char_ids, bounds,
                                np.repeat(~by_reference, lengths))
        for index in np.flatnonzero(by_reference):
            ids[index] = self._reference.convert_tokens_to_ids(
                self._reference.tokenize(texts[index]))
        return ids

    def _encode_fast(self, joined, char_ids, bounds, in_fast_line):
        """Tiers 1 and 2 for the lines where `in_fast_line`; see the module
        doc. Returns a list of id lists, one per line ([] for the others)."""
        in_span = in_fast_line & (char_ids == _RUST)
        line_starts = np.zeros(len(char_ids), dtype=bool)
        line_starts[bounds[:-1][bounds[:-1] < len(char_ids)]] = True
        span_starts, span_ends = _span_bounds(in_span, line_starts)
        spans = [joined[start:end] for start, end
                 in zip(span_starts.tolist(), span_ends.tolist())]
        span_ids = self._span_ids(spans)
        span_lengths = np.fromiter(map(len, span_ids), dtype=np.int64,
                                   count=len(span_ids))
        # Output tokens per position: 1 for a tier-1 char, the span's token
        # count at a span start, else 0.
        single = in_fast_line & (char_ids >= 0)
        counts = single.astype(np.int64)
        counts[span_starts] = span_lengths
        out_bounds = _exclusive_cumsum(counts)
        out = np.empty(out_bounds[-1], dtype=np.int64)
        out[out_bounds[:-1][single]] = char_ids[single]
        span_first = np.repeat(out_bounds[span_starts], span_lengths)
        within = (np.arange(len(span_first))
                  - np.repeat(_exclusive_cumsum(span_lengths)[:-1],
                              span_lengths))
        out[span_first + within] = np.fromiter(
            itertools.chain.from_iterable(span_ids), dtype=np.int64,
            count=len(span_first))
        out = out.tolist()
        line_bounds = out_bounds[bounds].tolist()
        return [out[start:end]
                for start, end in zip(line_bounds[:-1], line_bounds[1:])]

    def _span_ids(self, spans):
        """Token ids of each span: cached, or from the Rust tokenizer."""
        cache = self._span_cache
        unique = list(dict.fromkeys(spans))
        new = [span for span in unique if span not in cache]
        if len(cache) + len(new) > SPAN_CACHE_SIZE:
            cache.clear()
            new = unique
        encodings = self._encode_batch(new, add_special_tokens=False)
        cache.update(zip(new, (encoding.ids for encoding in encodings)))
        return [cache[span] for span in spans]

    def _classify_new_chars(self, codes):
        """Fill the table for the code points in `codes` not seen before."""
        new = np.unique(codes[self._char_ids[codes] == _UNSEEN])
        for code in new.tolist():
            self._char_ids[code] = self._classify(chr(code))

    def _classify(self, char):
        """The table entry of `char`: its id (tier 1), _RUST or _DIVERGENT."""
        own_id = self._own_token_id(char)
        if own_id is not None:
            return own_id
        if ((self.do_lower_case and char in _CONTEXT_LOWERED)
                or (self.strip_accents and _may_reorder(char))
                or not self._same_words(char)):
            return _DIVERGENT
        return _RUST

    def _own_token_id(self, char):
        """The id of `char` if it is one token in any context, else None."""
        if tokenization.is_cjk_char(char):
            # Isolated by spaces before any other step.
            isolated = True
        else:
            # Split off after normalisation, which must leave it alone and
            # must not reorder across it.
            isolated = (tokenization.is_punctuation(char)
                        and unicodedata.combining(char) == 0
                        and unicodedata.normalize("NFD", char) == char
                        and self._reference.basic_tokenizer.tokenize(char)
                        == [char])
        if not isolated:
            return None
        ids = self._reference.convert_tokens_to_ids(
            self._reference.tokenize(char))
        return ids[0] if len(ids) == 1 else None

    def _same_words(self, char):
        """True if both pre-tokenizers split the probe text of `char` alike."""
        text = _probe_text(char)
        try:
            normalized = self._rust.normalizer.normalize_str(text)
        except Exception:  # a lone surrogate, which Rust cannot take
            return False
        rust_words = [word for word, _ in
                      self._rust.pre_tokenizer.pre_tokenize_str(normalized)]
        return rust_words == self._reference.basic_tokenizer.tokenize(text)


def available():
    """True if the `tokenizers` package can be imported."""
    return tokenizers is not None


def build_fast_tokenizer(vocab_file=None, do_lower_case=True,
                         strip_accents=None, spm_model_file=None):
    """Return a FastWordpieceTokenizer, or None if there is no fast path.

    None means: `tokenizers` is not installed, or the tokenizer is a
    SentencePiece model (only WordPiece has a fast path); the caller then
    uses `tokenization.build_tokenizer`.
    """
    if spm_model_file or not vocab_file or not available():
        return None
    return FastWordpieceTokenizer(vocab_file, do_lower_case=do_lower_case,
                                  strip_accents=strip_accents)
