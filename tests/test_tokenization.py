"""Tests for model/tokenization.py.

Most tests use a tiny vocab written to tmp_path, so the expected token lists
can be worked out by hand from the rules; a few check the real Chinese BERT
vocab when it is available.
"""

import logging
import random
from pathlib import Path

import pytest

from model import tokenization
from model.tokenization import (BasicTokenizer, FullTokenizer,
                                SentencePieceTokenizer, WordpieceTokenizer,
                                build_tokenizer, load_vocab)
from util.errors import InputError

REPO_ROOT = Path(__file__).resolve().parents[1]

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]

# Ids follow list order: [PAD]=0, [UNK]=1, [CLS]=2, [SEP]=3, [MASK]=4, ...
SMALL_VOCAB = SPECIALS + [
    "我", "爱", "和", "你",
    "py", "##th", "##on", "##3", ".", "8", "nl", "##p",
    "！", "，", "。",
    "cafe", "mu", "##ller", "café", "müller", "Café",
    "ｈｅ", "##ｌｌｏ", "ｗｏｒｌｄ", "１", "##２", "##３",
    "abc", "##de", "a", "##a", "＄", "##5",
]


def write_vocab(directory, tokens, name="vocab.txt", text=None):
    """Write `tokens` one per line (or raw `text`) and return the path."""
    path = directory / name
    if text is None:
        text = "".join(token + "\n" for token in tokens)
    path.write_text(text, encoding="utf-8")
    return str(path)


@pytest.fixture
def small_vocab_file(tmp_path):
    return write_vocab(tmp_path, SMALL_VOCAB)


@pytest.fixture
def tokenizer(small_vocab_file):
    return FullTokenizer(small_vocab_file)


def _real_vocab_path():
    for path in (REPO_ROOT / "sample_data" / "vocab.txt",
                 REPO_ROOT.parent / "shared" / "data" / "vocab" / "vocab.txt"):
        if path.is_file():
            return path
    return None


@pytest.fixture(scope="module")
def real_tokenizer():
    path = _real_vocab_path()
    if path is None:
        pytest.skip("real Chinese BERT vocab not found at sample_data/vocab.txt "
                    "or ../shared/data/vocab/vocab.txt")
    return FullTokenizer(str(path))


# ---------------------------------------------------------------------------
# Mixed Chinese / English / digits / punctuation
# ---------------------------------------------------------------------------

MIXED = "我爱Python3.8和NLP！"


def test_basic_mixed_text():
    assert BasicTokenizer().tokenize(MIXED) == [
        "我", "爱", "python3", ".", "8", "和", "nlp", "！"]


def test_full_mixed_text_uses_continuation_pieces(tokenizer):
    assert tokenizer.tokenize(MIXED) == [
        "我", "爱", "py", "##th", "##on", "##3", ".", "8", "和",
        "nl", "##p", "！"]


def test_full_mixed_text_cased_words_are_unknown(small_vocab_file):
    # The vocab is lower-case only, so cased words cannot be covered.
    cased = FullTokenizer(small_vocab_file, do_lower_case=False)
    assert cased.tokenize(MIXED) == [
        "我", "爱", "[UNK]", ".", "8", "和", "[UNK]", "！"]


# ---------------------------------------------------------------------------
# Full-width characters
# ---------------------------------------------------------------------------

FULL_WIDTH = "Ｈｅｌｌｏ\u3000ＷＯＲＬＤ，１２３！"


def test_basic_full_width_is_lowercased_not_normalized():
    # U+3000 is whitespace (Zs); full-width letters are only lower-cased,
    # full-width comma / exclamation mark are punctuation (Po).
    assert BasicTokenizer().tokenize(FULL_WIDTH) == [
        "ｈｅｌｌｏ", "ｗｏｒｌｄ", "，", "１２３", "！"]


def test_full_full_width(tokenizer):
    assert tokenizer.tokenize(FULL_WIDTH) == [
        "ｈｅ", "##ｌｌｏ", "ｗｏｒｌｄ", "，", "１", "##２", "##３", "！"]


def test_full_width_symbol_is_not_punctuation(tokenizer):
    # "＄" is category Sc and outside the ASCII ranges, so it stays attached
    # to the digit, unlike ASCII "$".
    assert BasicTokenizer().tokenize("你＄5和$5") == [
        "你", "＄5", "和", "$", "5"]
    assert tokenizer.tokenize("你＄5") == ["你", "＄", "##5"]


@pytest.mark.parametrize("char, expected", [
    ("，", True), ("。", True), ("！", True), ("？", True), ("、", True),
    ("《", True), ("“", True), ("$", True), ("+", True), ("^", True),
    ("＄", False), ("＋", False), ("a", False), ("１", False), ("我", False),
])
def test_is_punctuation(char, expected):
    assert tokenization.is_punctuation(char) is expected


@pytest.mark.parametrize("char, expected", [
    ("我", True), ("\u4e00", True), ("\u9fff", True), ("\u3400", True),
    ("\U00020000", True), ("\uf900", True), ("\U0002f800", True),
    ("あ", False), ("한", False), ("Ａ", False), ("，", False),
])
def test_is_cjk_char(char, expected):
    assert tokenization.is_cjk_char(char) is expected


# ---------------------------------------------------------------------------
# Accents
# ---------------------------------------------------------------------------

CAFE = "Caf\u00e9 M\u00fcller"  # precomposed é and ü


@pytest.mark.parametrize("kwargs, expected", [
    ({}, ["cafe", "muller"]),
    ({"do_lower_case": False}, ["Caf\u00e9", "M\u00fcller"]),
    ({"strip_accents": False}, ["caf\u00e9", "m\u00fcller"]),
    ({"do_lower_case": False, "strip_accents": True}, ["Cafe", "Muller"]),
])
def test_basic_accents(kwargs, expected):
    assert BasicTokenizer(**kwargs).tokenize(CAFE) == expected


def test_basic_strips_decomposed_accent():
    assert BasicTokenizer().tokenize("Cafe\u0301") == ["cafe"]


@pytest.mark.parametrize("kwargs, expected", [
    ({}, ["cafe", "mu", "##ller"]),
    ({"do_lower_case": False}, ["Caf\u00e9", "[UNK]"]),
    ({"strip_accents": False}, ["caf\u00e9", "m\u00fcller"]),
])
def test_full_accents(small_vocab_file, kwargs, expected):
    assert FullTokenizer(small_vocab_file, **kwargs).tokenize(CAFE) == expected


# ---------------------------------------------------------------------------
# Control characters and whitespace
# ---------------------------------------------------------------------------

def test_control_characters_are_dropped():
    # NUL, BEL, U+FFFD and zero-width space (Cf) vanish without splitting.
    text = "a\x00b\x07c\ufffdd\u200be"
    assert BasicTokenizer().tokenize(text) == ["abcde"]
    assert BasicTokenizer().tokenize("\ufeff我\u00ad") == ["我"]


def test_full_after_dropping_controls(tokenizer):
    assert tokenizer.tokenize("abc\x00de") == ["abc", "##de"]


def test_tab_newline_cr_are_whitespace():
    assert BasicTokenizer().tokenize("我\t爱\n你\r和 x\ty\u00a0a") == [
        "我", "爱", "你", "和", "x", "y", "a"]


@pytest.mark.parametrize("char, control, whitespace", [
    ("\t", False, True), ("\n", False, True), ("\r", False, True),
    (" ", False, True), ("\u3000", False, True), ("\u00a0", False, True),
    ("\x00", True, False), ("\x07", True, False), ("\u200b", True, False),
    ("\ufeff", True, False), ("a", False, False),
])
def test_char_classes(char, control, whitespace):
    assert tokenization.is_control(char) is control
    assert tokenization.is_whitespace(char) is whitespace


# ---------------------------------------------------------------------------
# WordPiece edge cases
# ---------------------------------------------------------------------------

def load_vocab_from_list(tokens):
    """A plain dict vocab, enough for WordpieceTokenizer."""
    return {token: index for index, token in enumerate(tokens)}


def test_over_long_word_is_unknown():
    vocab = load_vocab_from_list(["a", "##a"])
    short = WordpieceTokenizer(vocab, max_input_chars_per_word=5)
    assert short.tokenize("aaaaa") == ["a", "##a", "##a", "##a", "##a"]
    assert short.tokenize("aaaaaa") == ["[UNK]"]
    default = WordpieceTokenizer(vocab)
    assert default.tokenize("a" * 200) == ["a"] + ["##a"] * 199
    assert default.tokenize("a" * 201) == ["[UNK]"]


def test_unmatched_piece_makes_whole_word_unknown(tokenizer):
    wordpiece = tokenizer.wordpiece_tokenizer
    assert wordpiece.tokenize("pyx") == ["[UNK]"]
    assert wordpiece.tokenize("xpy") == ["[UNK]"]
    assert tokenizer.tokenize("py pyx python") == [
        "py", "[UNK]", "py", "##th", "##on"]


def test_custom_unk_token():
    wordpiece = WordpieceTokenizer({"a": 0}, unk_token="<unk>")
    assert wordpiece.tokenize("a b") == ["a", "<unk>"]


# ---------------------------------------------------------------------------
# Empty input and bytes
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("text", ["", "   ", "\n", "\u3000\t\r\n", "\x00\u200b"])
def test_empty_and_whitespace_only(tokenizer, text):
    assert BasicTokenizer().tokenize(text) == []
    assert tokenizer.tokenize(text) == []


def test_bytes_are_decoded_as_utf8(tokenizer):
    assert tokenizer.tokenize("我爱".encode("utf-8")) == ["我", "爱"]
    # An invalid byte becomes U+FFFD, which the cleaner then drops.
    assert tokenizer.tokenize(b"\xff" + "你".encode("utf-8")) == ["你"]


# ---------------------------------------------------------------------------
# Ids
# ---------------------------------------------------------------------------

def test_ids_round_trip(tokenizer):
    tokens = tokenizer.tokenize(MIXED)
    ids = tokenizer.convert_tokens_to_ids(tokens)
    assert ids == [SMALL_VOCAB.index(token) for token in tokens]
    assert tokenizer.convert_ids_to_tokens(ids) == tokens


def test_unknown_token_maps_to_unk_id(tokenizer):
    assert tokenizer.convert_tokens_to_ids(["zzz", "我", "[MASK]"]) == [1, 5, 4]


def test_vocab_attributes(tokenizer):
    assert len(tokenizer) == len(SMALL_VOCAB)
    assert tokenizer.do_lower_case is True
    assert tokenizer.inv_vocab[0] == "[PAD]"
    assert list(tokenizer.vocab)[:5] == SPECIALS
    with pytest.raises(ValueError):
        tokenizer.convert_ids_to_tokens([len(SMALL_VOCAB)])


# ---------------------------------------------------------------------------
# load_vocab
# ---------------------------------------------------------------------------

def test_load_vocab_ids_are_line_indices(small_vocab_file):
    vocab = load_vocab(small_vocab_file)
    assert list(vocab.items()) == [(tok, i) for i, tok in enumerate(SMALL_VOCAB)]


def test_load_vocab_strips_crlf_and_trailing_blank_lines(tmp_path):
    path = write_vocab(tmp_path, None,
                       text="\r\n".join(SPECIALS + ["我  "]) + "\r\n\n\n")
    assert list(load_vocab(path)) == SPECIALS + ["我"]


def test_load_vocab_missing_file(tmp_path):
    path = str(tmp_path / "nope.txt")
    with pytest.raises(InputError, match="vocab file not found: .*nope.txt"):
        load_vocab(path)


@pytest.mark.parametrize("text", ["", "\n\n"])
def test_load_vocab_empty_file(tmp_path, text):
    path = write_vocab(tmp_path, None, text=text)
    with pytest.raises(InputError, match="empty"):
        load_vocab(path)


def test_load_vocab_empty_line_inside(tmp_path):
    path = write_vocab(tmp_path, None,
                       text="[PAD]\n[UNK]\n\n[CLS]\n[SEP]\n[MASK]\n")
    with pytest.raises(InputError, match=r"vocab\.txt, line 3: empty line"):
        load_vocab(path)


def test_load_vocab_missing_mask(tmp_path):
    path = write_vocab(tmp_path, SPECIALS[:4] + ["我"])
    with pytest.raises(InputError, match=r"missing .*special token\(s\) \[MASK\]$"):
        load_vocab(path)


def test_load_vocab_lists_all_missing_specials(tmp_path):
    path = write_vocab(tmp_path, ["[PAD]", "[UNK]", "[SEP]"])
    with pytest.raises(InputError, match=r"\[CLS\] \[MASK\]"):
        load_vocab(path)


def test_input_error_is_value_error(tmp_path):
    with pytest.raises(ValueError):
        load_vocab(str(tmp_path / "nope.txt"))


def test_duplicate_token_keeps_first_id(tmp_path, caplog):
    tokens = SPECIALS + ["我", "你", "我"]
    path = write_vocab(tmp_path, tokens)
    with caplog.at_level(logging.WARNING, logger="model.tokenization"):
        vocab = load_vocab(path)
    assert vocab["我"] == 5
    assert len(vocab) == 7
    assert "duplicate" in caplog.text and "'我' (lines 6 and 8)" in caplog.text
    # The tokenizer still has one embedding row per line, and the id of the
    # duplicate line maps back to its token.
    full = FullTokenizer(path)
    assert len(full) == 8
    assert full.convert_ids_to_tokens([7]) == ["我"]
    assert full.convert_tokens_to_ids(["我"]) == [5]


# ---------------------------------------------------------------------------
# build_tokenizer
# ---------------------------------------------------------------------------

def test_build_tokenizer_wordpiece(small_vocab_file):
    built = build_tokenizer(vocab_file=small_vocab_file, do_lower_case=False)
    assert isinstance(built, FullTokenizer)
    assert built.do_lower_case is False


def test_build_tokenizer_needs_a_source():
    with pytest.raises(InputError, match="vocab_file"):
        build_tokenizer()


# ---------------------------------------------------------------------------
# Real Chinese BERT vocab
# ---------------------------------------------------------------------------

def test_real_vocab_specials(real_tokenizer):
    assert len(real_tokenizer) == 21128
    assert real_tokenizer.convert_tokens_to_ids(SPECIALS) == [0, 100, 101, 102, 103]
    # Line 344 holds U+2028; stripping all Unicode whitespace (as str.strip
    # does) would turn it into an empty token.
    assert real_tokenizer.vocab["\u2028"] == 343


def test_real_vocab_mixed(real_tokenizer):
    tokens = real_tokenizer.tokenize(MIXED)
    assert tokens == ["我", "爱", "python", "##3", ".", "8", "和", "n", "##lp", "！"]
    assert real_tokenizer.convert_tokens_to_ids(tokens) == [
        2769, 4263, 9030, 8152, 119, 129, 1469, 156, 10986, 8013]


def test_real_vocab_full_width(real_tokenizer):
    # Full-width Latin is not folded to ASCII, so "Ｈｅｌｌｏ" does not reuse
    # the "hello" piece: it falls apart into single full-width characters.
    assert real_tokenizer.tokenize(FULL_WIDTH) == [
        "ｈ", "##ｅ", "##ｌ", "##ｌ", "##ｏ", "ｗ", "##ｏ", "##ｒ", "##ｌ", "##ｄ",
        "，", "１２", "##３", "！"]
    assert real_tokenizer.tokenize("hello world") == ["hello", "world"]


def test_real_vocab_accents(real_tokenizer):
    assert real_tokenizer.tokenize(CAFE) == ["cafe", "mu", "##ller"]


# ---------------------------------------------------------------------------
# SentencePiece
# ---------------------------------------------------------------------------

_SPM_WORDS = ["我", "爱", "你", "他", "们", "学习", "中文", "自然", "语言", "处理",
              "模型", "数据", "hello", "world", "model", "data", "。", "，"]


def _train_spm(directory, name, **extra):
    """Train a tiny unigram model on generated lines; return the .model path."""
    spm = pytest.importorskip("sentencepiece")
    rng = random.Random(1234)
    corpus = directory / "corpus.txt"
    lines = [" ".join(rng.choice(_SPM_WORDS) for _ in range(rng.randint(3, 10)))
             for _ in range(400)]
    corpus.write_text("\n".join(lines) + "\n", encoding="utf-8")
    prefix = directory / name
    spm.SentencePieceTrainer.train(
        input=str(corpus), model_prefix=str(prefix), vocab_size=100,
        model_type="unigram", hard_vocab_limit=False, character_coverage=1.0,
        minloglevel=2, **extra)
    return str(prefix) + ".model"


@pytest.fixture(scope="module")
def spm_model_file(tmp_path_factory):
    return _train_spm(
        tmp_path_factory.mktemp("spm"), "with_specials",
        user_defined_symbols=["[CLS]", "[SEP]", "[MASK]"],
        pad_id=0, pad_piece="[PAD]", unk_id=1, unk_piece="[UNK]",
        bos_id=-1, eos_id=-1)


def test_spm_specials_in_vocab(spm_model_file):
    tok = SentencePieceTokenizer(spm_model_file)
    assert tok.vocab["[PAD]"] == 0
    assert tok.vocab["[UNK]"] == 1
    assert all(special in tok.vocab for special in SPECIALS)
    assert len(tok) == tok.sp_model.get_piece_size()


def test_spm_tokenize_and_ids_round_trip(spm_model_file):
    tok = SentencePieceTokenizer(spm_model_file)
    text = "我爱自然语言处理 Hello World"
    tokens = tok.tokenize(text)
    assert tokens == tok.sp_model.encode(text.lower(), out_type=str)
    assert "[UNK]" not in tokens and all(t in tok.vocab for t in tokens)
    ids = tok.convert_tokens_to_ids(tokens)
    assert ids == tok.sp_model.encode(text.lower())
    assert tok.convert_ids_to_tokens(ids) == tokens
    assert tok.tokenize(text) == tok.tokenize(text.lower())


def test_spm_unknown_piece_maps_to_unk(spm_model_file):
    tok = SentencePieceTokenizer(spm_model_file)
    # "龘" never occurs in the corpus: sentencepiece returns it as a surface
    # piece, which is not in the vocab and so maps to [UNK].
    tokens = tok.tokenize("龘")
    assert "龘" in "".join(tokens)
    assert tok.vocab["[UNK]"] in tok.convert_tokens_to_ids(tokens)


def test_spm_cased(spm_model_file):
    tok = SentencePieceTokenizer(spm_model_file, do_lower_case=False)
    assert tok.do_lower_case is False
    assert tok.tokenize("Hello") == tok.sp_model.encode("Hello", out_type=str)


def test_build_tokenizer_prefers_spm(spm_model_file, small_vocab_file):
    built = build_tokenizer(vocab_file=small_vocab_file,
                            spm_model_file=spm_model_file)
    assert isinstance(built, SentencePieceTokenizer)


def test_spm_without_specials_is_rejected(tmp_path):
    model_file = _train_spm(tmp_path, "plain")
    with pytest.raises(InputError) as info:
        SentencePieceTokenizer(model_file)
    message = str(info.value)
    assert "plain.model" in message
    assert "[PAD] [UNK] [CLS] [SEP] [MASK]" in message
    assert "user_defined_symbols" in message and "unk_piece" in message


def test_spm_missing_model_file(tmp_path):
    with pytest.raises(InputError, match="not found: .*missing.model"):
        SentencePieceTokenizer(str(tmp_path / "missing.model"))


def test_spm_corrupt_model_file(tmp_path):
    pytest.importorskip("sentencepiece")
    bad = tmp_path / "bad.model"
    bad.write_bytes(b"not a model")
    with pytest.raises(InputError, match="bad.model"):
        SentencePieceTokenizer(str(bad))
