"""Tokenizers for Chinese ELECTRA: BERT-style WordPiece and SentencePiece.

The WordPiece path reproduces the behaviour of the original BERT/ELECTRA
tokenizer (so ids match the public Chinese BERT vocabulary and checkpoints):
clean the text, isolate every CJK ideograph, split on whitespace, lower-case and
strip accents, split off punctuation, then greedy longest-match-first WordPiece.

The SentencePiece path is for users who bring their own `.model`; it only
checks that the special tokens the pre-training code needs are present.
"""

import collections
import logging
import unicodedata

from util import fs
from util.errors import InputError

logger = logging.getLogger(__name__)

PAD_TOKEN = "[PAD]"
UNK_TOKEN = "[UNK]"
CLS_TOKEN = "[CLS]"
SEP_TOKEN = "[SEP]"
MASK_TOKEN = "[MASK]"
SPECIAL_TOKENS = (PAD_TOKEN, UNK_TOKEN, CLS_TOKEN, SEP_TOKEN, MASK_TOKEN)

# Continuation prefix for non-initial WordPiece pieces.
WORDPIECE_PREFIX = "##"

# CJK Unified Ideographs blocks (and compatibility blocks), as in BERT. Hangul,
# kana and full-width Latin are deliberately NOT included: they are written
# with spaces or handled by WordPiece like other scripts.
_CJK_RANGES = (
    (0x4E00, 0x9FFF),
    (0x3400, 0x4DBF),
    (0x20000, 0x2A6DF),
    (0x2A700, 0x2B73F),
    (0x2B740, 0x2B81F),
    (0x2B820, 0x2CEAF),
    (0xF900, 0xFAFF),
    (0x2F800, 0x2FA1F),
)

# ASCII symbols BERT treats as punctuation although Unicode puts some of them
# (e.g. "$", "+", "^", "`") in symbol categories.
_ASCII_PUNCT_RANGES = ((33, 47), (58, 64), (91, 96), (123, 126))

# Characters that count as whitespace although their category is "Cc".
_CONTROL_WHITESPACE = ("\t", "\n", "\r")

# Only these are stripped from the end of a vocab line: other Unicode
# "whitespace" such as U+2028 is a real token in the Chinese BERT vocab.
_VOCAB_LINE_STRIP = "\r\n \t"


# ---------------------------------------------------------------------------
# Character classes
# ---------------------------------------------------------------------------

def is_cjk_char(char):
    """Return True if `char` is a CJK Unified Ideograph (BERT's definition)."""
    code = ord(char)
    return any(low <= code <= high for low, high in _CJK_RANGES)


def is_whitespace(char):
    """Return True for space, tab, newline, carriage return and category Zs."""
    if char == " " or char in _CONTROL_WHITESPACE:
        return True
    return unicodedata.category(char) == "Zs"


def is_control(char):
    """Return True for characters of any "C" category, except tab/newline/CR.

    Tab, newline and CR are categorised Cc but act as whitespace, so they are
    excluded here and handled by `is_whitespace`.
    """
    if char in _CONTROL_WHITESPACE:
        return False
    return unicodedata.category(char).startswith("C")


def is_punctuation(char):
    """Return True for ASCII non-alphanumeric symbols and category P* chars."""
    code = ord(char)
    if any(low <= code <= high for low, high in _ASCII_PUNCT_RANGES):
        return True
    return unicodedata.category(char).startswith("P")


def to_text(text):
    """Return `text` as `str`, decoding bytes as UTF-8 (bad bytes -> U+FFFD)."""
    if isinstance(text, str):
        return text
    if isinstance(text, bytes):
        return text.decode("utf-8", errors="replace")
    raise TypeError("expected text as str or bytes, got %s" % type(text).__name__)


# ---------------------------------------------------------------------------
# Vocabulary
# ---------------------------------------------------------------------------

def _read_vocab_lines(vocab_file):
    """Read the tokens of a vocab file, one per line, id = line index.

    Trailing blank lines at the end of the file are tolerated (editors add
    them); a blank line followed by more tokens would shift every later id, so
    it is an error.
    """
    if not vocab_file or not fs.isfile(vocab_file):
        raise InputError("vocab file not found: %s" % vocab_file)
    try:
        # Only "\n" ends a line, so a token such as "\r" or U+2028 can never
        # split a line and shift the ids. (Any file system: gs://, ram://.)
        text = fs.read_text(vocab_file, encoding="utf-8-sig")
        tokens = [line.rstrip(_VOCAB_LINE_STRIP) for line in text.split("\n")]
    except UnicodeDecodeError as err:
        raise InputError("vocab file %s is not valid UTF-8: %s"
                         % (vocab_file, err)) from err
    while tokens and not tokens[-1]:
        tokens.pop()
    if not tokens:
        raise InputError("vocab file %s is empty: expected one token per line"
                         % vocab_file)
    for index, token in enumerate(tokens):
        if not token:
            raise InputError(
                "vocab file %s, line %d: empty line inside the vocab; expected "
                "one token per line (an empty line would shift all later ids)"
                % (vocab_file, index + 1))
    return tokens


def _check_special_tokens(tokens, source, hint=""):
    """Raise InputError if any of SPECIAL_TOKENS is missing from `tokens`."""
    missing = [tok for tok in SPECIAL_TOKENS if tok not in tokens]
    if missing:
        raise InputError("%s is missing the required special token(s) %s%s"
                         % (source, " ".join(missing), hint))


def _build_vocab(tokens, vocab_file):
    """Map token -> first id, warning (not failing) about duplicates."""
    vocab = collections.OrderedDict()
    duplicates = []
    for index, token in enumerate(tokens):
        if token in vocab:
            duplicates.append((token, vocab[token] + 1, index + 1))
            continue
        vocab[token] = index
    if duplicates:
        shown = ", ".join("%r (lines %d and %d)" % dup for dup in duplicates[:10])
        more = "" if len(duplicates) <= 10 else ", ..."
        logger.warning(
            "vocab file %s has %d duplicate token(s); keeping the first id of "
            "each: %s%s", vocab_file, len(duplicates), shown, more)
    return vocab


def load_vocab(vocab_file):
    """Load a WordPiece vocab file into an OrderedDict token -> id.

    One token per line; the id is the 0-based line index. Raises InputError if
    the file is missing or empty, has an empty line inside, or lacks one of
    [PAD] [UNK] [CLS] [SEP] [MASK]. Duplicate tokens keep their first id.
    """
    tokens = _read_vocab_lines(vocab_file)
    vocab = _build_vocab(tokens, vocab_file)
    _check_special_tokens(vocab, "vocab file %s" % vocab_file)
    return vocab


# ---------------------------------------------------------------------------
# Basic tokenizer
# ---------------------------------------------------------------------------

class BasicTokenizer(object):
    """Cleans text and splits it on whitespace, CJK characters and punctuation.

    Args:
        do_lower_case: lower-case every token.
        strip_accents: remove combining marks after NFD normalisation. None
            means "same as do_lower_case", which is what BERT does.
    """

    def __init__(self, do_lower_case=True, strip_accents=None):
        self.do_lower_case = do_lower_case
        self.strip_accents = (do_lower_case if strip_accents is None
                              else strip_accents)

    def tokenize(self, text):
        """Split `text` into a list of basic (pre-WordPiece) tokens."""
        text = self._clean_text(to_text(text))
        text = self._space_cjk_chars(text)
        tokens = []
        for word in text.split():
            tokens.extend(_split_punctuation(self._normalize_word(word)))
        return [token for token in tokens if token]

    @staticmethod
    def _clean_text(text):
        """Drop NUL, U+FFFD and control chars; map all whitespace to " "."""
        chars = []
        for char in text:
            if char == "\x00" or char == "\ufffd" or is_control(char):
                continue
            chars.append(" " if is_whitespace(char) else char)
        return "".join(chars)

    @staticmethod
    def _space_cjk_chars(text):
        """Surround every CJK ideograph with spaces so each is its own token."""
        return "".join(" %s " % char if is_cjk_char(char) else char
                       for char in text)

    def _normalize_word(self, word):
        """Apply lower-casing and accent stripping as configured."""
        if self.do_lower_case:
            word = word.lower()
        if self.strip_accents:
            word = _remove_accents(word)
        return word


def _remove_accents(text):
    """NFD-decompose and drop non-spacing marks (category Mn)."""
    return "".join(char for char in unicodedata.normalize("NFD", text)
                   if unicodedata.category(char) != "Mn")


def _split_punctuation(word):
    """Split `word` so that every punctuation char is a separate token."""
    pieces = []
    current = []
    for char in word:
        if is_punctuation(char):
            if current:
                pieces.append("".join(current))
                current = []
            pieces.append(char)
        else:
            current.append(char)
    if current:
        pieces.append("".join(current))
    return pieces


# ---------------------------------------------------------------------------
# WordPiece
# ---------------------------------------------------------------------------

class WordpieceTokenizer(object):
    """Greedy longest-match-first WordPiece over a fixed vocabulary.

    Args:
        vocab: mapping (or set) of known pieces; continuation pieces carry the
            "##" prefix.
        unk_token: emitted for a word that cannot be fully covered by pieces.
        max_input_chars_per_word: longer words become `unk_token` outright.
    """

    def __init__(self, vocab, unk_token=UNK_TOKEN, max_input_chars_per_word=200):
        self.vocab = vocab
        self.unk_token = unk_token
        self.max_input_chars_per_word = max_input_chars_per_word
        # Bounding the candidate length by the longest piece avoids probing
        # substrings that cannot be in the vocab (matters for long words).
        # The "##" is counted too: a loose bound, but always a safe one.
        self._max_piece_chars = max((len(piece) for piece in vocab), default=0)

    def tokenize(self, text):
        """Return the WordPiece pieces of every whitespace-separated word."""
        pieces = []
        for word in to_text(text).split():
            pieces.extend(self._tokenize_word(word))
        return pieces

    def _tokenize_word(self, word):
        """Split one word into pieces, or [unk_token] if that is impossible."""
        if len(word) > self.max_input_chars_per_word:
            return [self.unk_token]
        pieces = []
        start = 0
        while start < len(word):
            end = self._longest_match_end(word, start)
            if end is None:
                # Partial coverage would produce misleading pieces: BERT maps
                # the whole word to [UNK] instead.
                return [self.unk_token]
            pieces.append(_piece(word, start, end))
            start = end
        return pieces

    def _longest_match_end(self, word, start):
        """Return the end of the longest vocab piece at `start`, or None."""
        end = min(len(word), start + self._max_piece_chars)
        while end > start:
            if _piece(word, start, end) in self.vocab:
                return end
            end -= 1
        return None


def _piece(word, start, end):
    """Return word[start:end] as a piece, "##"-prefixed unless word-initial."""
    prefix = WORDPIECE_PREFIX if start > 0 else ""
    return prefix + word[start:end]


# ---------------------------------------------------------------------------
# Full tokenizers
# ---------------------------------------------------------------------------

class _VocabMixin(object):
    """Token <-> id conversion shared by both full tokenizers.

    Subclasses set `vocab` (token -> id) and `inv_vocab` (id -> token).
    """

    def convert_tokens_to_ids(self, tokens):
        """Map tokens to ids; tokens not in the vocab map to [UNK]'s id."""
        unk_id = self.vocab[UNK_TOKEN]
        return [self.vocab.get(token, unk_id) for token in tokens]

    def convert_ids_to_tokens(self, ids):
        """Map ids back to tokens; an id outside the vocab is a ValueError."""
        tokens = []
        for token_id in ids:
            token = self.inv_vocab.get(int(token_id))
            if token is None:
                raise ValueError("token id %s is outside the vocab (size %d)"
                                 % (token_id, len(self)))
            tokens.append(token)
        return tokens

    def __len__(self):
        """Vocab size: one more than the largest id (the embedding rows)."""
        return len(self.inv_vocab)


class FullTokenizer(_VocabMixin):
    """BasicTokenizer followed by WordpieceTokenizer over a vocab file."""

    def __init__(self, vocab_file, do_lower_case=True, strip_accents=None):
        tokens = _read_vocab_lines(vocab_file)
        self.vocab = _build_vocab(tokens, vocab_file)
        _check_special_tokens(self.vocab, "vocab file %s" % vocab_file)
        # Built from the lines rather than from `vocab`, so the id of a
        # duplicate line still maps back to its token.
        self.inv_vocab = dict(enumerate(tokens))
        self.do_lower_case = do_lower_case
        self.basic_tokenizer = BasicTokenizer(do_lower_case=do_lower_case,
                                              strip_accents=strip_accents)
        self.wordpiece_tokenizer = WordpieceTokenizer(self.vocab)

    def tokenize(self, text):
        """Return the WordPiece tokens of `text`."""
        pieces = []
        for token in self.basic_tokenizer.tokenize(text):
            pieces.extend(self.wordpiece_tokenizer.tokenize(token))
        return pieces


_SPM_SPECIALS_HINT = (
    "; train the SentencePiece model with e.g. --pad_id=0 --pad_piece=[PAD] "
    "--unk_id=1 --unk_piece=[UNK] --bos_id=-1 --eos_id=-1 "
    "--user_defined_symbols=[CLS],[SEP],[MASK]")


class SentencePieceTokenizer(_VocabMixin):
    """Tokenizer over a user-supplied SentencePiece `.model` file.

    The vocab is the model's piece list (id = piece id); the special tokens
    [PAD] [UNK] [CLS] [SEP] [MASK] must be pieces of the model.
    """

    def __init__(self, spm_model_file, do_lower_case=True):
        self.sp_model = _load_spm_model(spm_model_file)
        self.do_lower_case = do_lower_case
        self.vocab = collections.OrderedDict(
            (self.sp_model.id_to_piece(i), i)
            for i in range(self.sp_model.get_piece_size()))
        self.inv_vocab = {i: piece for piece, i in self.vocab.items()}
        _check_special_tokens(
            self.vocab, "SentencePiece model %s" % spm_model_file,
            _SPM_SPECIALS_HINT)

    def tokenize(self, text):
        """Return the SentencePiece pieces of `text` (lower-cased if set)."""
        text = to_text(text)
        if self.do_lower_case:
            text = text.lower()
        return self.sp_model.encode(text, out_type=str)


def _load_spm_model(spm_model_file):
    """Load a SentencePiece model, turning failures into InputError."""
    # Imported lazily so WordPiece users do not need sentencepiece installed.
    import sentencepiece as spm

    if not spm_model_file or not fs.isfile(spm_model_file):
        raise InputError("SentencePiece model file not found: %s"
                         % spm_model_file)
    processor = spm.SentencePieceProcessor()
    try:  # from bytes: SentencePiece itself can open only local files
        processor.load_from_serialized_proto(fs.read_bytes(spm_model_file))
    except (OSError, RuntimeError) as err:
        raise InputError("cannot load SentencePiece model %s: %s; expected a "
                         ".model file written by SentencePieceTrainer"
                         % (spm_model_file, err)) from err
    return processor


def build_tokenizer(vocab_file=None, do_lower_case=True, strip_accents=None,
                    spm_model_file=None):
    """Return a SentencePieceTokenizer if `spm_model_file`, else FullTokenizer.

    `strip_accents` only applies to the WordPiece tokenizer.
    """
    if spm_model_file:
        return SentencePieceTokenizer(spm_model_file,
                                      do_lower_case=do_lower_case)
    if not vocab_file:
        raise InputError("no tokenizer given: expected a vocab file (vocab_file) "
                         "or a SentencePiece model (spm_model_file)")
    return FullTokenizer(vocab_file, do_lower_case=do_lower_case,
                         strip_accents=strip_accents)
