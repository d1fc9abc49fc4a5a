"""Tests for the fast corpus-builder path: FastWordpieceTokenizer gives the
ids of the pure-Python FullTokenizer, the builder writes the same bytes with
either, falls back without `tokenizers`, and splits work evenly by bytes."""

import json
import os
import random

import pytest
import tensorflow.compat.v1 as tf

import build_pretraining_dataset as bpd
from bench import corpus_build
from corpus import build_jobs, corpus_split, dataset_builder, example_serialization, shards
from model import fast_tokenization, tokenization
from tests.conftest import SAMPLE_CORPUS, SAMPLE_VOCAB, SHARED

needs_fast = pytest.mark.skipif(
    not fast_tokenization.available(),
    reason="the `tokenizers` package is not installed (no fast path)")

# (do_lower_case, strip_accents): every combination the builder can ask for.
CASINGS = [(True, None), (False, None), (False, True), (True, False)]

# A vocab where accents, case, sigma, duplicates and U+2028 all matter.
SMALL_VOCAB = (list(tokenization.SPECIAL_TOKENS)
               + ["café", "cafe", "caf", "##é", "##e", "é", "e", "ς", "σ", "Σ",
                  "i", "i\u0307", "\u2028", "##\u2028", "hello", "hello", "的",
                  "##s", "a", "##a", "x", "##x", "1", "##2", "Ａ", "ａ", "😀"])


# ---------------------------------------------------------------------------
# Differential corpora
# ---------------------------------------------------------------------------

def _char_range(first, last):
    """The characters first..last (code points, inclusive)."""
    return [chr(code) for code in range(first, last + 1)]


FUZZ_POOLS = [
    list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"),
    list(" \t\r\n.,;:!?'\"-_()[]{}<>/\\|@#$%^&*+=~`"),
    # Controls, format characters and every kind of space or line break.
    _char_range(0x00, 0x1F) + _char_range(0x7F, 0x9F)
    + list("\u00a0\u1680\u2000\u200b\u200c\u200d\u200e\u2028\u2029\u202f"
           "\u205f\u3000\ufeff\ufffd\u00ad\u180e\u061c"),
    # Combining marks, precomposed accents, case oddities.
    _char_range(0x300, 0x36F) + list("éèêëÀÁÂÃÄÅÇÑÖØÜßİıſﬁĲǅΆΈΉΣσςΐ")
    + list("\u1e9e\u0130\u03a3\u1f88\u0345\u0f39\u302e\u093e\U0001d165"),
    _char_range(0xFF01, 0xFF5E) + _char_range(0xFF61, 0xFF9F),  # full width
    _char_range(0x1F600, 0x1F64F) + _char_range(0x1FA70, 0x1FAFF)
    + list("\ufe0f\u200d\U0001f3fb"),  # emoji, new emoji, modifiers
    list("的一是不了人我在有他这中大来上国个到说们") * 5  # common CJK
    + _char_range(0x3400, 0x3410) + _char_range(0x20000, 0x20010)  # Ext A, B
    + _char_range(0x2B810, 0x2B830) + _char_range(0x2B910, 0x2B930)  # Ext E
    + _char_range(0xF900, 0xF910) + _char_range(0x2F800, 0x2F810),  # compat
    # Punctuation and marks newer than the Rust tables, and CJK punctuation.
    _char_range(0x2E40, 0x2E5D) + list("\u061d\u0890\u0891\u166d\u1734\u08ca")
    + list("，。、；：？！“”‘’（）《》【】…—～·"),
    # Unassigned, private use, noncharacters, lone surrogates.
    list("\u0378\u0380\u05ff\ue000\uf8ff\ufdd0\uffff\U000e0001\U0010ffff")
    + list("\ud800\udfff"),
    list("한국어ひらがなカタカナไทยعربيहिन्दीΕλληνικάРусский"),
]


def random_codepoint(rng):
    """Any code point at all, assigned or not."""
    return chr(rng.randrange(0x110000))


def fuzz_strings(seed=1234, count=1000):
    """Random strings mixing every pool, plus long and boundary words."""
    rng = random.Random(seed)
    strings = ["", " ", "\u2028", "a" * 199, "a" * 200, "a" * 201, "x" * 400,
               "中" * 300, "İ" * 150, "Σ" * 3, "aΣ.b", "aΣ，b", "xΣ 中Σ",
               "é" * 120 + "\u0301" * 90, "\ud800中", "𫠠𫠟x𫠠"]
    for _ in range(count):
        parts = []
        for _ in range(rng.randint(1, 30)):
            if rng.random() < 0.05:
                parts.append(random_codepoint(rng))
            else:
                parts.append(rng.choice(rng.choice(FUZZ_POOLS)))
            if rng.random() < 0.02:
                parts.append(rng.choice("ax中") * rng.randint(150, 260))
        strings.append("".join(parts))
    return strings


def reference_ids(tokenizer, lines):
    """The pure-Python tokenizer's ids of each line."""
    return [tokenizer.convert_tokens_to_ids(tokenizer.tokenize(line))
            for line in lines]


def fast_ids(tokenizer, lines, batch_size):
    """The fast tokenizer's ids of each line, in batches of `batch_size`."""
    ids = []
    for start in range(0, len(lines), batch_size):
        ids.extend(tokenizer.encode_batch_ids(lines[start:start + batch_size]))
    return ids


def first_mismatches(lines, got, want, limit=5):
    """(line, fast ids, reference ids) of the first differing lines."""
    return [(line, a, b) for line, a, b in zip(lines, got, want)
            if a != b][:limit]


@pytest.fixture(scope="module")
def small_vocab_file(tmp_path_factory):
    """SMALL_VOCAB as a file."""
    path = tmp_path_factory.mktemp("vocab") / "vocab.txt"
    path.write_text("\n".join(SMALL_VOCAB) + "\n", encoding="utf-8")
    return str(path)


# ---------------------------------------------------------------------------
# Identical ids
# ---------------------------------------------------------------------------

@needs_fast
@pytest.mark.parametrize("do_lower_case, strip_accents", CASINGS)
@pytest.mark.parametrize("vocab", ["sample", "small"])
def test_fuzz_ids_identical(vocab, do_lower_case, strip_accents,
                            small_vocab_file):
    vocab_file = str(SAMPLE_VOCAB) if vocab == "sample" else small_vocab_file
    reference = tokenization.FullTokenizer(vocab_file, do_lower_case,
                                           strip_accents)
    fast = fast_tokenization.FastWordpieceTokenizer(vocab_file, do_lower_case,
                                                    strip_accents)
    lines = fuzz_strings()
    want = reference_ids(reference, lines)
    got = fast_ids(fast, lines, 97)
    assert first_mismatches(lines, got, want) == []
    # A fresh tokenizer that sees everything in one batch agrees too.
    fresh = fast_tokenization.FastWordpieceTokenizer(
        vocab_file, do_lower_case, strip_accents)
    assert fresh.encode_batch_ids(lines) == want


@needs_fast
def test_fuzz_single_lines_and_tokens(monkeypatch):
    # One line per call, a tiny span cache that keeps being emptied, and
    # string tokens instead of ids.
    monkeypatch.setattr(fast_tokenization, "SPAN_CACHE_SIZE", 8)
    reference = tokenization.FullTokenizer(str(SAMPLE_VOCAB))
    fast = fast_tokenization.FastWordpieceTokenizer(str(SAMPLE_VOCAB))
    for line in fuzz_strings(seed=99, count=400):
        assert fast.tokenize(line) == reference.tokenize(line), repr(line)
    assert fast.encode_batch_ids([]) == []
    assert fast.encode_batch_ids(["", "", "的"]) == [[], [], [fast.vocab["的"]]]
    assert fast.tokenize("hello".encode("utf-8")) == reference.tokenize("hello")


@needs_fast
def test_vocab_as_read_by_python_tokenizer(small_vocab_file):
    # `tokenizers` would read "\u2028" as "" and keep the last "hello".
    fast = fast_tokenization.FastWordpieceTokenizer(small_vocab_file)
    reference = tokenization.FullTokenizer(small_vocab_file)
    assert fast.vocab == reference.vocab and len(fast) == len(reference)
    assert fast.encode_batch_ids(["hello"]) == [[SMALL_VOCAB.index("hello")]]
    assert fast.convert_ids_to_tokens([SMALL_VOCAB.index("\u2028")]) == ["\u2028"]
    assert fast.convert_tokens_to_ids(["café", "nope"]) == [
        SMALL_VOCAB.index("café"), SMALL_VOCAB.index(tokenization.UNK_TOKEN)]


@needs_fast
@pytest.mark.parametrize("char", [
    "\u03a3",  # final sigma
    "\u0378",  # unassigned: dropped by Python only
    "\u2e5d", "\u061d",  # punctuation newer than the Rust tables
    "\u0890",  # format character newer than the Rust tables
    "\ud800",  # lone surrogate: Rust cannot take it
])
def test_divergent_chars_go_to_python(char):
    fast = fast_tokenization.FastWordpieceTokenizer(str(SAMPLE_VOCAB))
    reference = tokenization.FullTokenizer(str(SAMPLE_VOCAB))
    # Raw `tokenizers` splits these differently ...
    assert not fast._same_words(char)
    line = "x%sx 中%s abc" % (char, char)
    assert fast.encode_batch_ids([line]) == reference_ids(reference, [line])
    # ... so they never reach it: the new punctuation is looked up in the
    # table (tier 1), the rest sends its lines to Python (tier 3).
    assert fast._char_ids[ord(char)] != fast_tokenization._RUST


@needs_fast
def test_cjk_extension_e_start_is_isolated():
    # `tokenizers` starts Extension E at U+2B920: U+2B820 stays in a word.
    fast = fast_tokenization.FastWordpieceTokenizer(str(SAMPLE_VOCAB))
    reference = tokenization.FullTokenizer(str(SAMPLE_VOCAB))
    line = "x\U0002b820x"
    normalized = fast._rust.normalizer.normalize_str(line)
    assert len(fast._rust.pre_tokenizer.pre_tokenize_str(normalized)) == 1
    assert fast.encode_batch_ids([line]) == reference_ids(reference, [line])
    assert fast._char_ids[0x2B820] >= 0


def shared_lines():
    """Every distinct line of the real text in ../shared/data, or skip."""
    data_dir = SHARED / "data"
    if not data_dir.is_dir():
        pytest.skip("needs %s (the ../shared folder beside the repo is "
                    "absent): differential test on real text" % data_dir)
    documents = corpus_build.shared_documents(str(data_dir))
    if not documents:
        pytest.skip("no known data set under %s" % data_dir)
    return sorted({line for lines in documents for line in lines})


def lines_covering_every_character(lines, every):
    """The lines that contain a character no earlier line had, plus every `every`-th line."""
    seen, kept = set(), []
    for i, line in enumerate(lines):
        new = set(line) - seen
        if new or i % every == 0:
            kept.append(line)
            seen |= new
    return kept


@needs_fast
def test_shared_corpus_ids_identical():
    # All real text: CMRC/DRCD contexts, SIGHAN, TNEWS, ChnSentiCorp, OCNLI,
    # XNLI, LCQMC, BQ and the NER sentences (~230k distinct lines).
    lines = shared_lines()
    assert len(lines) > 100000
    # The pure-Python reference takes ~70 s for all of them on 2 cores; every line that brings
    # a character not seen before (so every rare character and punctuation mark is met) and
    # every 8th line besides (33,053 of 230,708 lines) keep the comparison exhaustive over
    # characters: the test took 76 s before, 21 s after.
    lines = lines_covering_every_character(lines, every=8)
    reference = tokenization.FullTokenizer(str(SAMPLE_VOCAB))
    fast = fast_tokenization.FastWordpieceTokenizer(str(SAMPLE_VOCAB))
    got = fast_ids(fast, lines, build_jobs.LINES_PER_BATCH)
    want = reference_ids(reference, lines)
    assert first_mismatches(lines, got, want) == []


# ---------------------------------------------------------------------------
# The builder
# ---------------------------------------------------------------------------

def build(output_dir, *extra, corpus=SAMPLE_CORPUS, vocab=SAMPLE_VOCAB):
    """Run the builder CLI in-process; return its exit status."""
    return bpd.main(["--corpus-dir", str(corpus), "--vocab-file", str(vocab),
                     "--output-dir", str(output_dir)]
                    + [str(arg) for arg in extra])


def info(output_dir):
    """The dataset_info.json of a build."""
    with open(os.path.join(output_dir, dataset_builder.INFO_FILE), encoding="utf-8") as f:
        return json.load(f)


@needs_fast
@pytest.mark.parametrize("extra", [
    ["--num-out-files", 3, "--seed", 7],
    ["--num-processes", 2, "--num-out-files", 4, "--max-seq-length", 64],
    ["--do-lower-case", "false", "--strip-accents", "true"],
])
def test_build_fast_equals_python(tmp_path, extra):
    assert build(tmp_path / "python", "--tokenizer", "python", *extra) == 0
    assert build(tmp_path / "fast", "--tokenizer", "fast", *extra) == 0
    python = corpus_build.shard_bytes(str(tmp_path / "python"))
    fast = corpus_build.shard_bytes(str(tmp_path / "fast"))
    assert python and python == fast
    python_info, fast_info = info(tmp_path / "python"), info(tmp_path / "fast")
    assert (python_info["tokenizer"], fast_info["tokenizer"]) == ("python", "fast")
    assert python_info["stats"] == fast_info["stats"]


@needs_fast
def test_auto_picks_fast_and_reports_it(tmp_path, capsys):
    assert build(tmp_path / "out") == 0
    assert info(tmp_path / "out")["tokenizer"] == "fast"
    assert "tokenizer fast" in capsys.readouterr().out


def test_fallback_without_tokenizers(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(fast_tokenization, "tokenizers", None)
    assert not fast_tokenization.available()
    assert fast_tokenization.build_fast_tokenizer(str(SAMPLE_VOCAB)) is None
    assert build(tmp_path / "auto", "--tokenizer", "auto") == 0
    assert info(tmp_path / "auto")["tokenizer"] == "python"
    assert "tokenizer python" in capsys.readouterr().out
    assert build(tmp_path / "fast", "--tokenizer", "fast") == 2
    assert "--tokenizer fast needs" in capsys.readouterr().err
    assert not shards.existing_outputs(str(tmp_path / "fast"))


def test_no_fast_path_for_sentencepiece():
    assert fast_tokenization.build_fast_tokenizer(
        str(SAMPLE_VOCAB), spm_model_file="any.model") is None


def test_serialize_example_matches_tensorflow(monkeypatch):
    # Varints of 1 to 6 bytes; masks from a few patterns, through a small
    # entry cache that fills, hits and is emptied.
    monkeypatch.setattr(example_serialization, "_ENTRY_CACHE_SIZE", 8)
    rng = random.Random(3)
    for _ in range(300):
        length = rng.randint(1, 140)
        features = {"input_ids": [rng.choice([0, 1, 127, 128, 16383, 16384,
                                              rng.randrange(1 << 40)])
                                  for _ in range(length)]}
        for name in ("input_mask", "segment_ids"):
            cut = rng.choice([0, 1, length // 2, length])
            features[name] = [rng.choice([1, 200])] * cut + [0] * (length - cut)
        feature = {name: tf.train.Feature(
            int64_list=tf.train.Int64List(value=values))
            for name, values in features.items()}
        expected = tf.train.Example(features=tf.train.Features(
            feature=feature)).SerializeToString(deterministic=True)
        assert example_serialization.serialize_example(features) == expected
        assert example_serialization.serialize_example(features) == expected
    assert len(example_serialization._ENTRY_CACHE) <= 8


# ---------------------------------------------------------------------------
# Even split by bytes
# ---------------------------------------------------------------------------

def write_files(directory, files):
    """Write {name: bytes} under `directory`; return its path."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        (directory / name).write_bytes(content)
    return str(directory)


def doc_text(index, lines=3):
    """A document of `lines` numbered lines, ending in a blank line."""
    return "".join("文%d行%d\n" % (index, i) for i in range(lines)) + "\n"


def check_pieces(corpus_dir, jobs):
    """Every file is covered exactly once, in whole lines."""
    covered = {}
    for pieces in jobs:
        for piece in pieces:
            covered.setdefault(piece.path, []).append((piece.start, piece.end))
            with open(os.path.join(corpus_dir, piece.path), "rb") as reader:
                head = reader.read(piece.start)
            assert piece.start == 0 or head.endswith(b"\n")
            assert piece.first_line == head.count(b"\n") + 1
    for name, ranges in covered.items():
        size = os.path.getsize(os.path.join(corpus_dir, name))
        ranges.sort()
        assert ranges[0][0] == 0 and ranges[-1][1] == size
        assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))


def test_split_work_even_by_bytes(tmp_path):
    # One big file and three small ones, with 1 to 4 jobs.
    files = {"big.txt": "".join(doc_text(i) for i in range(3000)).encode(),
             "s1.txt": doc_text(1).encode(), "s2.txt": b"",
             "s3.txt": doc_text(2).encode()}
    corpus = write_files(tmp_path / "c", files)
    names = sorted(files)
    total = sum(len(content) for content in files.values())
    for processes in (1, 2, 3, 4):
        jobs = corpus_split.split_work(corpus, names, processes, True)
        check_pieces(corpus, jobs)
        sizes = [sum(p.end - p.start for p in pieces) for pieces in jobs]
        assert max(sizes) - min(sizes) < 0.01 * total
        for pieces in jobs:  # every cut is right after a blank line
            for piece in pieces:
                if piece.start:
                    with open(os.path.join(corpus, piece.path), "rb") as f:
                        assert f.read(piece.start).endswith(b"\n\n")
    # If files are the documents, cuts are only between files.
    jobs = corpus_split.split_work(corpus, names, 2, False)
    assert all(piece.start == 0 for pieces in jobs for piece in pieces)
    assert [[p.path for p in pieces] for pieces in jobs] == [
        ["big.txt"], ["s1.txt", "s2.txt", "s3.txt"]]


def test_single_file_two_processes(tmp_path):
    # Single-line documents of <= 4 tokens are one example each, whatever
    # the draws: both runs must hold the same examples; the bad bytes of
    # both halves are counted once each.
    rng = random.Random(4)
    docs = ["".join(rng.choice("的一是不了人我在有他")
                    for _ in range(rng.randint(1, 4))).encode()
            for _ in range(400)]
    docs[10], docs[390] = b"\xff", b"x\xfe"
    content = b"\n\n".join(docs) + b"\n"
    corpus = write_files(tmp_path / "c", {"one.txt": content})
    assert build(tmp_path / "one", corpus=corpus) == 0
    assert build(tmp_path / "two", "--num-processes", 2, corpus=corpus) == 0
    one, two = info(tmp_path / "one")["stats"], info(tmp_path / "two")["stats"]
    assert one["files"] == two["files"] == 1
    assert two["undecodable_byte_sequences"] == one["undecodable_byte_sequences"] == 2
    assert two["first_undecodable"] == one["first_undecodable"]
    for key in ("examples", "tokens", "documents", "lines", "bytes"):
        assert one[key] == two[key], key

    def examples(output_dir):
        records = []
        for path in shards.existing_outputs(str(output_dir)):
            for record in tf.io.tf_record_iterator(path):
                example = tf.train.Example.FromString(record)
                records.append(tuple(
                    example.features.feature["input_ids"].int64_list.value))
        return sorted(records)

    assert examples(tmp_path / "one") == examples(tmp_path / "two")
