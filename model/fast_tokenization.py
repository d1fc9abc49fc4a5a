"""A fast WordPiece tokenizer on the Rust `tokenizers` package, same ids as ours.

`FastWordpieceTokenizer` configures `tokenizers` as BERT does (BertNormalizer,
BertPreTokenizer, WordPiece with "[UNK]", "##" and 200 chars per word) and
feeds it the vocab as read by `model.tokenization`, then makes sure that every
line gets exactly the ids of the pure-Python `FullTokenizer`. The two differ
in a few places, handled here:

  * Vocab file: `tokenizers` strips every trailing Unicode space from a line
    (turning the U+2028 token into "") and keeps the LAST id of a duplicate
    line. We hand it the vocab dict built by `model.tokenization` instead.
  * Character tables: `tokenizers` uses old Unicode tables (Unicode 9 era)
    for its control / punctuation / non-spacing-mark tests, Python the ones
    of its `unicodedata`. Unassigned code points are "control" (dropped) for
    Python but kept by `tokenizers`; punctuation, marks and format
    characters added in later Unicode versions (e.g. U+2E43-U+2E5D, U+061D)
    are classified differently.
  * CJK ranges: `tokenizers` starts the Extension E range at U+2B920 instead
    of U+2B820, so U+2B820-U+2B91F are not split off as single characters.
  * Lower-casing: Python's `str.lower` maps a word-final capital sigma to
    "ς", `tokenizers` always to "σ".
  * Canonical reordering (strip_accents): combining characters that are not
    non-spacing marks keep their order in `tokenizers` if its tables do not
    know their combining class.

Rather than hard-code those lists (they depend on the Python and
`tokenizers` versions), each character is checked the first time it is
seen: it is run through both pre-tokenizers, alone and after a letter, and a
character whose words differ (or that may be reordered) is marked divergent.
Lines containing a divergent character are tokenized by the Python
tokenizer, so the ids are identical by construction; real Chinese text
practically never contains one. The WordPiece step itself is the same
algorithm in both (greedy longest match, length limit in characters).
"""

import unicodedata

from model import tokenization

try:
    import tokenizers
    from tokenizers import models, normalizers, pre_tokenizers
except ImportError:  # optional: callers fall back to the Python tokenizer
    tokenizers = None

MAX_INPUT_CHARS_PER_WORD = 200


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


class FastWordpieceTokenizer(tokenization._VocabMixin):
    """WordPiece through `tokenizers`, with the ids of `FullTokenizer`.

    Args:
        vocab_file: WordPiece vocab, one token per line.
        do_lower_case: lower-case the text.
        strip_accents: strip accents; None follows do_lower_case.
    """

    def __init__(self, vocab_file, do_lower_case=True, strip_accents=None):
        # The Python tokenizer reads and checks the vocab, and tokenizes the
        # lines the Rust one would get wrong.
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
        self._checked_chars = set()
        self.divergent_chars = set()

    def tokenize(self, text):
        """Return the WordPiece tokens of `text` (str or UTF-8 bytes)."""
        text = tokenization.to_text(text)
        self._check_chars([text])
        if not self.divergent_chars.isdisjoint(text):
            return self._reference.tokenize(text)
        return self._rust.encode(text, add_special_tokens=False).tokens

    def encode_batch_ids(self, lines):
        """Return the token ids of each line (no [CLS]/[SEP] added)."""
        texts = [tokenization.to_text(line) for line in lines]
        self._check_chars(texts)
        ids = [None] * len(texts)
        fast = []
        for index, text in enumerate(texts):
            if self.divergent_chars and not self.divergent_chars.isdisjoint(text):
                ids[index] = self._reference.convert_tokens_to_ids(
                    self._reference.tokenize(text))
            else:
                fast.append(index)
        encodings = self._encode_batch([texts[i] for i in fast],
                                       add_special_tokens=False)
        for index, encoding in zip(fast, encodings):
            ids[index] = encoding.ids
        return ids

    def _check_chars(self, texts):
        """Check the characters of `texts` not seen before (see module doc)."""
        new_chars = set().union(*texts) - self._checked_chars
        for char in sorted(new_chars):
            if not self._same_words(char):
                self.divergent_chars.add(char)
        self._checked_chars |= new_chars

    def _same_words(self, char):
        """True if both pre-tokenizers split the probe text of `char` alike."""
        if self.strip_accents and _may_reorder(char):
            return False
        text = _probe_text(char)
        try:
            normalized = self._rust.normalizer.normalize_str(text)
        except Exception:  # e.g. a lone surrogate, which Rust cannot take
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
