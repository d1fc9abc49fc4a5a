"""Tests for build_pretraining_dataset.py (and its corpus/ modules): example layout, sampling, sharding, errors."""

import collections
import json
import os
import random
import re
import subprocess
import sys
import uuid

import pytest
import tensorflow.compat.v1 as tf

import build_pretraining_dataset as bpd
from corpus import example_serialization
from corpus import local_inputs
from corpus import reader as corpus_reader
from corpus.dataset_builder import INFO_FILE, default_num_out_files
from corpus.example_builder import FEATURE_NAMES, ExampleBuilder
from corpus.shards import OUTPUT_PREFIX
from model import tokenization
from util import fs

SPECIALS = ["[PAD]", "[unused1]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
PAD_ID, UNK_ID, CLS_ID, SEP_ID = 0, 2, 3, 4
# Two disjoint character sets, so tests can tell which document a token came from.
CHARS_A = "的一是不了人我在有他这中大来上国个到说们"
CHARS_B = "为子和你地出道也时年得就那要下以生会自着"
WORDS = ["hello", "world", "##s", ",", "。"]


@pytest.fixture
def vocab_file(tmp_path):
    """A tiny WordPiece vocab with the special tokens, CJK chars and words."""
    path = tmp_path / "vocab.txt"
    path.write_text("\n".join(SPECIALS + list(CHARS_A + CHARS_B) + WORDS) + "\n",
                    encoding="utf-8")
    return str(path)


@pytest.fixture
def tokenizer(vocab_file):
    """The real tokenizer over the tiny vocab."""
    return tokenization.build_tokenizer(vocab_file=vocab_file)


def write_corpus(directory, files):
    """Write {relative name: text or bytes} under `directory`; return its path."""
    for name, content in files.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    return str(directory)


def random_line(rng, chars, max_chars):
    """A non-empty line of CJK chars, sometimes with words or [UNK] mixed in."""
    parts = [rng.choice(chars) for _ in range(rng.randint(1, max_chars))]
    if rng.random() < 0.3:
        parts.insert(rng.randint(0, len(parts)), " hellos, world ")
    if rng.random() < 0.1:
        parts.append("☃")  # not in the vocab: [UNK]
    return "".join(parts)


def random_corpus_text(rng, num_docs, chars=CHARS_A + CHARS_B, max_chars=40):
    """Documents of random lines separated by empty lines."""
    docs = []
    for _ in range(num_docs):
        lines = [random_line(rng, chars, max_chars)
                 for _ in range(rng.randint(1, 10))]
        docs.append("\n".join(lines))
    return "\n\n".join(docs) + "\n"


def run_build(corpus_dir, vocab_file, output_dir, *extra):
    """Run the CLI in-process; return its exit status."""
    argv = ["--corpus-dir", str(corpus_dir), "--vocab-file", vocab_file,
            "--output-dir", str(output_dir)] + [str(arg) for arg in extra]
    return bpd.main(argv)


def shard_files(output_dir):
    """Names of the files in output_dir that look like shards, sorted."""
    return sorted(n for n in os.listdir(output_dir)
                  if n.startswith(OUTPUT_PREFIX))


def read_shard(path):
    """Decode every tf.train.Example of a TFRecord file into a dict of lists."""
    examples = []
    for record in tf.io.tf_record_iterator(str(path)):
        example = tf.train.Example.FromString(record)
        examples.append({name: list(example.features.feature[name].int64_list.value)
                         for name in FEATURE_NAMES})
    return examples


def read_all(output_dir):
    """All examples of all shards, shard by shard."""
    examples = []
    for name in shard_files(output_dir):
        examples.extend(read_shard(os.path.join(output_dir, name)))
    return examples


def read_info(output_dir):
    """The parsed dataset_info.json."""
    with open(os.path.join(output_dir, INFO_FILE), encoding="utf-8") as reader:
        return json.load(reader)


def real_length(example):
    """Number of real (unpadded) tokens."""
    return sum(example["input_mask"])


def segments(example):
    """(first segment ids, second segment ids) without [CLS]/[SEP]."""
    n = real_length(example)
    ids, seg = example["input_ids"][:n], example["segment_ids"][:n]
    split = seg.index(1) if 1 in seg else n
    return ids[1:split - 1], ids[split:n - 1]


def assert_layout(example, max_len):
    """Check [CLS]/[SEP] placement, segment ids, mask and padding."""
    ids, mask, seg = (example["input_ids"], example["input_mask"],
                      example["segment_ids"])
    assert len(ids) == len(mask) == len(seg) == max_len
    n = real_length(example)
    assert mask == [1] * n + [0] * (max_len - n)
    assert ids[n:] == [0] * (max_len - n) and seg[n:] == [0] * (max_len - n)
    assert ids[0] == CLS_ID and ids[n - 1] == SEP_ID
    split = seg[:n].index(1) if 1 in seg[:n] else n
    assert seg[:n] == [0] * split + [1] * (n - split)
    assert ids[split - 1] == SEP_ID
    first, second = segments(example)
    assert first, "the first segment is never empty"
    assert CLS_ID not in first + second and SEP_ID not in first + second
    if split < n:
        assert second, "a second segment has tokens before its [SEP]"


# ---------------------------------------------------------------------------
# Example construction
# ---------------------------------------------------------------------------

class ScriptedRng(object):
    """A stand-in for random.Random that replays fixed draws in order."""

    def __init__(self, randoms, randints):
        self.randoms = list(randoms)
        self.randints = list(randints)
        self.randint_args = []

    def random(self):
        return self.randoms.pop(0)

    def randint(self, low, high):
        self.randint_args.append((low, high))
        return self.randints.pop(0)


def test_builder_follows_official_rule_and_rng_order(tokenizer):
    line = CHARS_A[:4]  # 4 tokens
    ids = tokenizer.convert_tokens_to_ids(list(line))
    rng = ScriptedRng(
        # example 1: no single-segment; coin for sentence 2 -> B; random target
        # example 2: single segment; normal target
        randoms=[0.5, 0.7, 0.01, 0.05, 0.9], randints=[7])
    builder = ExampleBuilder(tokenizer, 20, rng)
    outputs = [builder.add_line(line) for _ in range(7)]
    assert outputs[:4] == [None] * 4 and outputs[5] is None
    first, second = segments(outputs[4])
    # target 20 -> first-segment target 8; sentence 2 would reach 8, the coin
    # (0.7) sends it to B, so B gets the other 16 tokens, truncated to 13.
    assert first == ids
    assert second == (ids * 4)[:13]
    assert builder.truncated_tokens == 3
    assert rng.randint_args == [(5, 20)]
    # Next target is 7: two lines (8 tokens), single segment (draw 0.05 < 0.1).
    assert segments(outputs[6]) == (ids * 2, [])
    assert rng.randoms == [] and rng.randints == []
    assert builder.current_sentences == [] and builder.current_length == 0


def test_empty_line_ends_example_only_when_something_accumulated(tokenizer):
    builder = ExampleBuilder(tokenizer, 32, random.Random(0))
    assert builder.add_line("") is None  # nothing yet: recorded as empty sentence
    assert builder.add_line(CHARS_A[:3]) is None
    example = builder.add_line("")
    assert segments(example) == (tokenizer.convert_tokens_to_ids(list(CHARS_A[:3])), [])
    assert builder.add_line("") is None


def test_layout_and_token_conservation_on_random_docs(tmp_path, vocab_file, tokenizer):
    rng = random.Random(7)
    files = {"doc%d.txt" % i: random_corpus_text(rng, 60) for i in range(3)}
    corpus = write_corpus(tmp_path / "corpus", files)
    out = tmp_path / "out"
    assert run_build(corpus, vocab_file, out, "--max-seq-length", 48) == 0
    examples = read_all(out)
    assert len(examples) > 100
    for example in examples:
        assert_layout(example, 48)
    # Every token either lands in an example or is counted as truncated.
    corpus_tokens = sum(len(tokenizer.tokenize(line))
                        for text in files.values() for line in text.splitlines())
    stats = read_info(out)["stats"]
    specials = sum(3 if segments(e)[1] else 2 for e in examples)
    assert stats["tokens"] == sum(real_length(e) for e in examples)
    assert stats["tokens"] - specials + stats["truncated_tokens"] == corpus_tokens


def test_single_segment_and_random_length_shares(tmp_path, vocab_file):
    # One long document of 6-token lines, max length 64: without the random
    # draws every example has two segments and exactly 64 real tokens.
    rng = random.Random(3)
    lines = ["".join(rng.choice(CHARS_A) for _ in range(6)) for _ in range(33000)]
    corpus = write_corpus(tmp_path / "corpus", {"long.txt": "\n".join(lines)})
    out = tmp_path / "out"
    assert run_build(corpus, vocab_file, out, "--max-seq-length", 64) == 0
    examples = read_all(out)
    assert len(examples) > 2900
    single = sum(1 for e in examples if not segments(e)[1]) / len(examples)
    short = sum(1 for e in examples if real_length(e) < 64) / len(examples)
    assert 0.08 < single < 0.12  # 0.1 (+ a few very short random targets)
    assert 0.03 < short < 0.07  # 0.05 * P(random target <= 60) = 0.047


def test_document_boundary_ends_example(tmp_path, vocab_file):
    rng = random.Random(11)
    docs = [random_corpus_text(rng, 1, CHARS_A if i % 2 == 0 else CHARS_B).strip()
            for i in range(200)]
    text = "\n\n".join(docs) + "\n"
    corpus = write_corpus(tmp_path / "corpus", {"docs.txt": text})
    ids_a = set(tokenization.build_tokenizer(vocab_file).convert_tokens_to_ids(
        list(CHARS_A)))
    ids_b = set(tokenization.build_tokenizer(vocab_file).convert_tokens_to_ids(
        list(CHARS_B)))

    def mixed_examples(output_dir):
        count = 0
        for example in read_all(output_dir):
            tokens = set(example["input_ids"])
            count += bool(tokens & ids_a) and bool(tokens & ids_b)
        return count

    assert run_build(corpus, vocab_file, tmp_path / "docs") == 0
    assert mixed_examples(tmp_path / "docs") == 0
    assert read_info(tmp_path / "docs")["stats"]["documents"] == 200
    # Sanity check of the check: without document breaks, examples do mix.
    assert run_build(corpus, vocab_file, tmp_path / "nodocs",
                     "--blanks-separate-docs", "false") == 0
    assert mixed_examples(tmp_path / "nodocs") > 0


# ---------------------------------------------------------------------------
# Determinism and sharding
# ---------------------------------------------------------------------------

@pytest.fixture
def multi_file_corpus(tmp_path):
    """Several files of random documents, one in a subdirectory."""
    rng = random.Random(5)
    files = {"a.txt": random_corpus_text(rng, 40),
             "b.txt": random_corpus_text(rng, 40),
             "sub/c.txt": random_corpus_text(rng, 40),
             "d.txt": random_corpus_text(rng, 40)}
    return write_corpus(tmp_path / "corpus", files)


def file_bytes(output_dir):
    """{shard name: content} of an output dir."""
    return {name: (output_dir / name).read_bytes() for name in shard_files(output_dir)}


def test_same_seed_same_bytes_different_seed_differs(tmp_path, vocab_file,
                                                     multi_file_corpus):
    for name, seed in (("one", 1), ("two", 1), ("three", 2)):
        assert run_build(multi_file_corpus, vocab_file, tmp_path / name,
                         "--seed", seed, "--num-out-files", 3) == 0
    assert file_bytes(tmp_path / "one") == file_bytes(tmp_path / "two")
    assert file_bytes(tmp_path / "one") != file_bytes(tmp_path / "three")


def test_round_robin_over_output_files(tmp_path, vocab_file, multi_file_corpus):
    assert run_build(multi_file_corpus, vocab_file, tmp_path / "single",
                     "--num-out-files", 1) == 0
    assert run_build(multi_file_corpus, vocab_file, tmp_path / "sharded",
                     "--num-out-files", 3) == 0
    assert shard_files(tmp_path / "sharded") == [
        "pretrain_data.tfrecord-%d-of-3" % i for i in range(3)]
    reference = read_all(tmp_path / "single")
    for i in range(3):
        path = tmp_path / "sharded" / ("pretrain_data.tfrecord-%d-of-3" % i)
        assert read_shard(path) == reference[i::3]


@pytest.mark.parametrize("total_bytes, processes, expected", [
    (1, 1, 1),
    (32 * 2 ** 20, 1, 1),
    (32 * 2 ** 20 + 1, 1, 2),
    (10 * 2 ** 30, 1, 320),
    (100 * 2 ** 30, 1, 1000),
    (1, 4, 4),
    (100 * 2 ** 30, 1200, 1200),
])
def test_default_num_out_files(total_bytes, processes, expected):
    assert default_num_out_files(total_bytes, processes) == expected


def test_default_num_out_files_used_for_small_corpus(tmp_path, vocab_file,
                                                     multi_file_corpus):
    assert run_build(multi_file_corpus, vocab_file, tmp_path / "out") == 0
    assert shard_files(tmp_path / "out") == ["pretrain_data.tfrecord-0-of-1"]
    assert read_info(tmp_path / "out")["num_out_files"] == 1


def test_two_processes_match_one_process(tmp_path, vocab_file):
    # Single-line documents of at most 4 tokens always form one example each,
    # whatever the random draws, so both runs must hold the same examples.
    rng = random.Random(9)
    files = {}
    for f in range(5):
        docs = ["".join(rng.choice(CHARS_A) for _ in range(rng.randint(1, 4)))
                for _ in range(50)]
        files["f%d.txt" % f] = "\n\n".join(docs) + "\n"
    corpus = write_corpus(tmp_path / "corpus", files)
    assert run_build(corpus, vocab_file, tmp_path / "one", "--num-out-files", 4) == 0
    assert run_build(corpus, vocab_file, tmp_path / "two", "--num-out-files", 4,
                     "--num-processes", 2) == 0
    assert shard_files(tmp_path / "two") == [
        "pretrain_data.tfrecord-%d-of-4" % i for i in range(4)]
    one, two = read_all(tmp_path / "one"), read_all(tmp_path / "two")
    assert len(one) == len(two) == 250
    assert (collections.Counter(tuple(e["input_ids"]) for e in one)
            == collections.Counter(tuple(e["input_ids"]) for e in two))
    info = read_info(tmp_path / "two")
    assert info["num_processes"] == 2 and info["stats"]["examples"] == 250
    assert info["stats"]["files"] == 5


def test_fewer_out_files_than_processes_is_an_error(tmp_path, vocab_file,
                                                    multi_file_corpus, capsys):
    assert run_build(multi_file_corpus, vocab_file, tmp_path / "out",
                     "--num-processes", 3, "--num-out-files", 2) == 2
    assert "--num-out-files (2) must be at least --num-processes (3)" in \
        capsys.readouterr().err
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------
# Errors and robustness
# ---------------------------------------------------------------------------

def test_missing_corpus_dir(tmp_path, vocab_file, capsys):
    missing = tmp_path / "nope"
    assert run_build(missing, vocab_file, tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and str(missing) in err and "does not exist" in err


def test_corpus_dir_is_a_file(tmp_path, vocab_file, capsys):
    path = tmp_path / "corpus.txt"
    path.write_text("你好\n", encoding="utf-8")
    assert run_build(path, vocab_file, tmp_path / "out") == 2
    assert "is not a directory" in capsys.readouterr().err


@pytest.mark.parametrize("files", [
    {},
    {"empty.txt": "", "sub/empty2.txt": ""},
    {".hidden.txt": "你好\n"},
])
def test_corpus_without_non_empty_files(tmp_path, vocab_file, capsys, files):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    write_corpus(corpus, files)
    assert run_build(corpus, vocab_file, tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert str(corpus) in err and "no non-empty files" in err


def test_corpus_without_examples(tmp_path, vocab_file, capsys):
    corpus = write_corpus(tmp_path / "corpus", {"blank.txt": "  \n\n\t\n"})
    out = tmp_path / "out"
    assert run_build(corpus, vocab_file, out) == 2
    assert "yielded no examples" in capsys.readouterr().err
    assert os.listdir(out) == []


def test_bad_vocab_file(tmp_path, multi_file_corpus, capsys):
    missing = str(tmp_path / "missing_vocab.txt")
    assert run_build(multi_file_corpus, missing, tmp_path / "out") == 2
    assert missing in capsys.readouterr().err


def test_undecodable_bytes_are_counted_and_replaced(tmp_path, vocab_file, capsys):
    # Line 2 has two bad sequences; line 3 a genuine U+FFFD, which is no error.
    content = ("你\n".encode("utf-8") + b"hello \xe7\x9a\x84\xff\xfe\xe4\xb8\x80\n"
               + "是\ufffd\n".encode("utf-8"))
    corpus = write_corpus(tmp_path / "corpus", {"bad.txt": content})
    out = tmp_path / "out"
    assert run_build(corpus, vocab_file, out) == 0
    printed = capsys.readouterr().out
    bad_path = os.path.join(corpus, "bad.txt")
    assert ("2 undecodable byte sequences replaced in 1 files (first: %s:2)"
            % bad_path) in printed
    stats = read_info(out)["stats"]
    assert stats["undecodable_byte_sequences"] == 2
    assert stats["files_with_undecodable_bytes"] == 1
    assert stats["first_undecodable"] == bad_path + ":2"
    [example] = read_all(out)
    tokenizer = tokenization.build_tokenizer(vocab_file)
    expected = tokenizer.convert_tokens_to_ids(
        tokenizer.tokenize("你 hello 的一 是"))
    assert segments(example)[0] + segments(example)[1] == expected


def test_decode_line_counts_only_inserted_replacements():
    assert corpus_reader.decode_line("好\ufffd".encode("utf-8")) == ("好\ufffd", 0)
    text, bad = corpus_reader.decode_line(b"a\xe4\xef\xbf\xbd\xffb")
    assert text == "a\ufffd\ufffd\ufffdb" and bad == 2


def test_existing_output_needs_overwrite(tmp_path, vocab_file, multi_file_corpus,
                                         capsys):
    out = tmp_path / "out"
    out.mkdir()
    old = out / "pretrain_data.tfrecord-0-of-7"
    old.write_bytes(b"old shard")
    assert run_build(multi_file_corpus, vocab_file, out) == 2
    err = capsys.readouterr().err
    assert "already contains 1" in err and "--overwrite" in err
    assert old.read_bytes() == b"old shard"
    assert sorted(os.listdir(out)) == ["pretrain_data.tfrecord-0-of-7"]

    # A failing validation with --overwrite still leaves the old files alone.
    assert run_build(multi_file_corpus, str(tmp_path / "no_vocab"), out,
                     "--overwrite") == 2
    assert old.read_bytes() == b"old shard"

    (out / "notes.txt").write_text("keep me", encoding="utf-8")
    assert run_build(multi_file_corpus, vocab_file, out, "--overwrite") == 0
    assert not old.exists()
    assert sorted(os.listdir(out)) == [
        "dataset_info.json", "notes.txt", "pretrain_data.tfrecord-0-of-1"]
    assert (out / "notes.txt").read_text(encoding="utf-8") == "keep me"


def test_failed_job_leaves_no_partial_output(tmp_path, vocab_file,
                                             multi_file_corpus, monkeypatch):
    calls = []
    real_serialize = example_serialization.serialize_example

    def failing_serialize(features):
        calls.append(1)
        if len(calls) == 20:
            raise RuntimeError("disk full")
        return real_serialize(features)

    monkeypatch.setattr(example_serialization, "serialize_example", failing_serialize)
    out = tmp_path / "out"
    with pytest.raises(RuntimeError, match="disk full"):
        run_build(multi_file_corpus, vocab_file, out, "--num-out-files", 3)
    assert os.listdir(out) == []


def test_output_dir_inside_corpus_is_refused(tmp_path, vocab_file,
                                             multi_file_corpus, capsys):
    assert run_build(multi_file_corpus, vocab_file,
                     os.path.join(multi_file_corpus, "out")) == 2
    assert "inside --corpus-dir" in capsys.readouterr().err


def test_hidden_files_are_ignored_and_paths_sorted(tmp_path):
    corpus = write_corpus(tmp_path / "corpus", {
        "b.txt": "x", "a/z.txt": "x", "a/.hidden": "x", ".git/config": "x",
        "c.txt": ""})
    assert corpus_reader.iter_corpus_files(corpus) == ["a/z.txt", "b.txt", "c.txt"]


# ---------------------------------------------------------------------------
# Flags and dataset_info.json
# ---------------------------------------------------------------------------

def test_dataset_info_and_boolean_flags(tmp_path, vocab_file, multi_file_corpus):
    out = tmp_path / "out"
    assert run_build(multi_file_corpus, vocab_file, out, "--max-seq-length", 64,
                     "--do-lower-case", "false", "--seed", 42,
                     "--num-out-files", 2) == 0
    info = read_info(out)
    examples = read_all(out)
    assert info["max_seq_length"] == 64
    assert info["num_out_files"] == 2
    assert info["vocab_size"] == len(SPECIALS) + len(CHARS_A + CHARS_B) + len(WORDS)
    assert info["do_lower_case"] is False
    assert info["strip_accents"] is False  # auto follows --do-lower-case
    assert info["blanks_separate_docs"] is True
    assert info["seed"] == 42
    assert info["corpus_dir"] == os.path.abspath(multi_file_corpus)
    stats = info["stats"]
    assert stats["files"] == 4 and stats["documents"] == 160
    assert stats["examples"] == len(examples)
    assert stats["tokens"] == sum(real_length(e) for e in examples)
    assert stats["mean_tokens_per_example"] == pytest.approx(
        stats["tokens"] / stats["examples"], abs=0.01)
    assert stats["undecodable_byte_sequences"] == 0
    assert not any(name.endswith(".tmp") for name in os.listdir(out))


def test_flag_parsing():
    parser = bpd.build_parser()
    base = ["--corpus-dir", "c", "--output-dir", "o", "--vocab-file", "v"]
    args = parser.parse_args(base)
    assert (args.do_lower_case, args.strip_accents, args.blanks_separate_docs) == (
        True, None, True)
    assert args.max_seq_length == 128 and args.seed == 12345
    assert args.num_out_files is None and args.num_processes == 1
    args = parser.parse_args(base + ["--do-lower-case", "False", "--strip-accents",
                                     "true", "--blanks-separate-docs", "no"])
    assert (args.do_lower_case, args.strip_accents, args.blanks_separate_docs) == (
        False, True, False)
    with pytest.raises(SystemExit):
        parser.parse_args(base + ["--do-lower-case", "maybe"])
    assert "32 MiB" in parser.format_help()


# ---------------------------------------------------------------------------
# Other file systems (ram://, TensorFlow's in-memory one, stands in for a bucket)
# ---------------------------------------------------------------------------

def ram_dir(name):
    """A fresh ram:// directory name for this test (ram:// lives as long as the process)."""
    return "ram://builder_tests/%s_%s" % (name, uuid.uuid4().hex)


def ram_copy(local_dir, name):
    """A copy of a local directory tree in ram://; return its path."""
    target = ram_dir(name)
    fs.copy_tree(local_dir, target)
    return target


def test_ram_corpus_to_ram_output_matches_local_build(tmp_path, vocab_file,
                                                      multi_file_corpus, capsys):
    # Two processes: the jobs cannot see ram:// and get local copies; their shards are
    # written locally and committed to ram:// by the parent. A bad byte checks that
    # messages and dataset_info.json name the file where the user keeps it.
    with open(os.path.join(multi_file_corpus, "b.txt"), "ab") as f:
        f.write(b"\xff\n")
    corpus = ram_copy(multi_file_corpus, "corpus")
    out = ram_dir("out")
    args = ("--num-processes", 2, "--num-out-files", 3)
    assert run_build(multi_file_corpus, vocab_file, tmp_path / "local", *args) == 0
    capsys.readouterr()
    assert run_build(corpus, vocab_file, out, *args) == 0
    assert "(first: %s/b.txt:" % corpus in capsys.readouterr().out
    local = file_bytes(tmp_path / "local")
    assert len(local) == 3
    assert {name: fs.read_bytes(fs.join(out, name)) for name in local} == local
    assert fs.listdir(out) == sorted(list(local) + [INFO_FILE])
    info = json.loads(fs.read_text(fs.join(out, INFO_FILE)))
    local_info = read_info(tmp_path / "local")
    assert info["corpus_dir"] == corpus
    assert info["stats"]["first_undecodable"].startswith(corpus + "/b.txt:")
    local_info["stats"]["first_undecodable"] = info["stats"]["first_undecodable"]
    assert info["stats"] == local_info["stats"]
    # Nothing named after the scheme appeared on the local disk (os.makedirs("ram://x")
    # would have made a folder "ram:").
    assert not os.path.exists("ram:") and not os.path.exists(str(tmp_path / "ram:"))


def test_bad_or_used_bucket_output_is_refused_and_old_files_stay(vocab_file,
                                                                 multi_file_corpus, capsys):
    assert run_build(multi_file_corpus, vocab_file, "nosuchfs://bucket/out") == 2
    err = capsys.readouterr().err
    assert err.startswith("error: cannot use --output-dir nosuchfs://bucket/out: ")
    assert err.count("\n") == 1
    a_file = ram_dir("file")
    fs.write_text(a_file, "not a directory")
    assert run_build(multi_file_corpus, vocab_file, a_file) == 2
    assert "--output-dir %s exists and is not a directory" % a_file in capsys.readouterr().err
    assert fs.read_text(a_file) == "not a directory"
    out = ram_dir("used")
    old = fs.join(out, "pretrain_data.tfrecord-0-of-7")
    fs.makedirs(out)
    fs.write_bytes(old, b"old shard")
    assert run_build(multi_file_corpus, vocab_file, out) == 2
    err = capsys.readouterr().err
    assert "--output-dir %s already contains 1" % out in err and "--overwrite" in err
    assert run_build(multi_file_corpus, "missing_vocab.txt", out, "--overwrite") == 2
    assert fs.listdir(out) == ["pretrain_data.tfrecord-0-of-7"]
    assert fs.read_bytes(old) == b"old shard"
    assert run_build(multi_file_corpus, vocab_file, out, "--overwrite") == 0
    assert fs.listdir(out) == [INFO_FILE, "pretrain_data.tfrecord-0-of-1"]


def test_jobs_get_local_copies_of_bucket_inputs(tmp_path, vocab_file, multi_file_corpus):
    corpus = ram_copy(multi_file_corpus, "corpus")
    refs = ram_copy(multi_file_corpus, "refs")  # any bytes do here: only copied
    vocab = fs.join(ram_dir("vocab"), "vocab.txt")
    fs.copy(vocab_file, vocab)
    args = bpd.build_parser().parse_args([
        "--corpus-dir", corpus, "--vocab-file", vocab, "--output-dir", ram_dir("out"),
        "--segmenter", "ref", "--ref-file", refs + "/{path}"])
    files = corpus_reader.iter_corpus_files(corpus)
    assert local_inputs.needs_work_dir(args)
    jobs = local_inputs.job_args(args, files, str(tmp_path))
    assert (jobs.shown_corpus_dir, jobs.output_dir) == (corpus, args.output_dir)
    assert os.path.isdir(jobs.shard_dir)
    assert open(jobs.vocab_file, "rb").read() == open(vocab_file, "rb").read()
    for name in files:
        original = open(os.path.join(multi_file_corpus, name), "rb").read()
        assert open(os.path.join(jobs.corpus_dir, name), "rb").read() == original
        assert open(corpus_reader.annotation_path(jobs.ref_file, name), "rb").read() == original
    local = bpd.build_parser().parse_args([
        "--corpus-dir", multi_file_corpus, "--vocab-file", vocab_file, "--output-dir", "o"])
    assert not local_inputs.needs_work_dir(local)
    assert vars(local_inputs.job_args(local, files)) == dict(
        vars(local), shown_corpus_dir=multi_file_corpus, shard_dir="o")


JOB_WITHOUT_TENSORFLOW = """
import sys
import build_pretraining_dataset as bpd
from corpus import build_jobs, corpus_split, local_inputs, reader
args = bpd.build_parser().parse_args(sys.argv[1:])
files = reader.iter_corpus_files(args.corpus_dir)
args.num_out_files, args.tokenizer = 1, "python"
jobs = local_inputs.job_args(args, files)
jobs.job_pieces = corpus_split.split_work(args.corpus_dir, files, 1, True)
assert build_jobs.write_examples(0, jobs)["examples"] > 0
print("tensorflow imported:", "tensorflow" in sys.modules)
"""


def test_a_job_never_imports_tensorflow(tmp_path, vocab_file, multi_file_corpus):
    # Each job process would pay TensorFlow's start-up (seconds) for nothing.
    out = tmp_path / "out"
    out.mkdir()
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    result = subprocess.run(
        [sys.executable, "-c", JOB_WITHOUT_TENSORFLOW, "--corpus-dir", multi_file_corpus,
         "--vocab-file", vocab_file, "--output-dir", str(out)],
        cwd=repo, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "tensorflow imported: False" in result.stdout
    assert os.listdir(out) == ["pretrain_data.tfrecord-0-of-1.tmp"]


def test_strict_refuses_undecodable_bytes_before_touching_old_output(tmp_path, vocab_file,
                                                                     capsys):
    good = write_corpus(tmp_path / "good", {"a.txt": "你好。\n今天天气很好。\n".encode("utf-8")})
    out = tmp_path / "out"
    assert run_build(good, vocab_file, out) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    bad = write_corpus(tmp_path / "bad", {"ok.txt": "好。\n".encode("utf-8"),
                                          "gbk.txt": "你好\n".encode("utf-8")
                                          + "天气\n".encode("gb18030")})
    capsys.readouterr()
    assert run_build(bad, vocab_file, out, "--overwrite", "--strict") == 2
    err = capsys.readouterr().err
    replaced = "天气".encode("gb18030").decode("utf-8", errors="replace").count("\ufffd")
    assert "%s:2: %d undecodable byte sequence(s) (not UTF-8); --strict refuses them" % (
        os.path.join(bad, "gbk.txt"), replaced) in err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_sentences_end_after_their_marks_and_closing_quotes():
    from corpus.sentences import split_sentences
    assert split_sentences("他说：“走吧。”然后我们走了！你呢？好……真的吗?!还有") == [
        "他说：“走吧。”", "然后我们走了！", "你呢？", "好……", "真的吗?!", "还有"]
    assert split_sentences("逗号，从不，断句") == ["逗号，从不，断句"]
    assert split_sentences("（注：见上。）下一句；最后") == ["（注：见上。）", "下一句；", "最后"]
    assert split_sentences("   ") == []


def paragraph_corpus(directory):
    """The sample corpus with eight of its sentence lines joined into each line: one
    paragraph per line, as a user following "one sentence or paragraph per line" wrote."""
    sample = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                          "sample_data", "corpus")
    lines = []
    for name in sorted(os.listdir(sample)):
        with open(os.path.join(sample, name), encoding="utf-8") as f:
            lines += [line.strip() for line in f if line.strip()]
    directory.mkdir()
    paragraphs = ["".join(lines[i:i + 8]) for i in range(0, len(lines), 8)]
    (directory / "corpus.txt").write_text("\n\n".join(paragraphs) + "\n", encoding="utf-8")
    return sum(len(line) for line in lines)


def test_a_paragraph_per_line_corpus_warns_and_split_sentences_keeps_it(tmp_path, capsys):
    vocab = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                         "sample_data", "vocab.txt")
    paragraph_corpus(tmp_path / "corpus")
    assert run_build(tmp_path / "corpus", vocab, tmp_path / "out", "--max-seq-length", 128) == 0
    out, err = capsys.readouterr()
    kept, dropped = [int(x.replace(",", "")) for x in re.search(
        r"-> [\d,]+ examples, ([\d,]+) tokens \([\d.]+ tokens/example; ([\d,]+) tokens "
        r"truncated", out).groups()]
    share = dropped / (kept + dropped)
    assert share > 0.4  # most of each paragraph does not fit the example being filled
    assert ("WARNING: %d%% of the corpus's tokens were dropped (%s of %s)"
            % (round(100 * share), format(dropped, ","), format(kept + dropped, ","))) in err
    assert "Rerun with --split-sentences" in err
    assert run_build(tmp_path / "corpus", vocab, tmp_path / "out2", "--max-seq-length", 128,
                     "--split-sentences") == 0
    out, err = capsys.readouterr()
    kept2, dropped2 = [int(x.replace(",", "")) for x in re.search(
        r"-> [\d,]+ examples, ([\d,]+) tokens \([\d.]+ tokens/example; ([\d,]+) tokens "
        r"truncated", out).groups()]
    # (kept counts each example's [CLS] and [SEP] too: more, shorter examples hold more)
    assert dropped2 < dropped / 3 and kept2 > 1.8 * kept
    assert dropped2 / (kept2 + dropped2) < 0.2 and "WARNING" not in err
    info = json.loads((tmp_path / "out2" / INFO_FILE).read_text())
    assert info["split_sentences"] is True


def test_split_sentences_refuses_line_by_line_annotations(tmp_path, vocab_file, capsys):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.txt").write_text("一句。两句。\n", encoding="utf-8")
    (tmp_path / "ref.txt").write_text("一句 。 两句 。\n", encoding="utf-8")
    assert run_build(corpus, vocab_file, tmp_path / "out", "--segmenter", "ref",
                     "--ref-file", tmp_path / "ref.txt", "--split-sentences") == 2
    assert "--split-sentences changes the lines, and --ref-file annotates them line for " \
        "line" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_a_missing_corpus_dir_is_one_line_without_tensorflows_start_up_noise(tmp_path):
    """The check imports TensorFlow (for gs:// paths) on its way to the error; its start-up
    lines used to come first, twice."""
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    result = subprocess.run(
        [sys.executable, os.path.join(repo, "build_pretraining_dataset.py"), "--corpus-dir",
         str(tmp_path / "missing"), "--vocab-file", os.path.join(repo, "sample_data",
                                                                 "vocab.txt"),
         "--output-dir", str(tmp_path / "out")], capture_output=True, text=True,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="0"))
    assert result.returncode == 2
    assert result.stderr == "error: --corpus-dir %s does not exist\n" % (tmp_path / "missing")


def records_of(output_dir, prefix):
    """The serialized examples of every shard of one kind in output_dir, as a multiset."""
    return collections.Counter(
        record for name in sorted(os.listdir(output_dir)) if name.startswith(prefix)
        for record in tf.io.tf_record_iterator(os.path.join(output_dir, name)))


def test_eval_share_holds_examples_out_of_an_otherwise_unchanged_build(tmp_path, vocab_file,
                                                                       capsys):
    """--eval-share moves a share of the examples, drawn per example, to pretrain_eval
    shards: training + held out = the build without the flag, example for example; the
    summary and dataset_info say how many; rebuilding without it removes them."""
    from corpus.shards import EVAL_PREFIX
    corpus = write_corpus(tmp_path / "corpus", {
        "a.txt": random_corpus_text(random.Random(3), 150),
        "b.txt": random_corpus_text(random.Random(4), 150)})
    plain, held = tmp_path / "plain", tmp_path / "held"
    assert run_build(corpus, vocab_file, plain, "--num-processes", 2, "--seed", 5) == 0
    assert run_build(corpus, vocab_file, held, "--num-processes", 2, "--seed", 5,
                     "--eval-share", 0.1) == 0
    out = capsys.readouterr().out
    everything = records_of(plain, OUTPUT_PREFIX)
    training, held_out = records_of(held, OUTPUT_PREFIX), records_of(held, EVAL_PREFIX)
    assert training + held_out == everything and not training & held_out
    total, n_held = sum(everything.values()), sum(held_out.values())
    # A binomial draw of p = 0.1: more than 3 standard deviations off is a wrong share.
    assert abs(n_held - 0.1 * total) < 3 * (0.09 * total) ** 0.5, (n_held, total)
    assert sorted(n for n in os.listdir(held) if n.startswith(EVAL_PREFIX)) == [
        EVAL_PREFIX + "-0-of-2", EVAL_PREFIX + "-1-of-2"]
    info = json.loads((held / INFO_FILE).read_text())
    assert info["stats"]["held_out_examples"] == n_held and info["eval_share"] == 0.1
    assert info["stats"]["examples"] == total
    assert "held out for evaluation: %d of the examples" % n_held in out
    assert "eval_share" not in json.loads((plain / INFO_FILE).read_text())

    assert run_build(corpus, vocab_file, held, "--num-processes", 2, "--seed", 5,
                     "--overwrite") == 0
    assert not records_of(held, EVAL_PREFIX)  # an old build's held-out shards are gone
    assert records_of(held, OUTPUT_PREFIX) == everything


@pytest.mark.parametrize("share", [-0.1, 1.0])
def test_an_eval_share_outside_0_to_1_is_refused_before_writing(tmp_path, vocab_file, capsys,
                                                                share):
    corpus = write_corpus(tmp_path / "corpus", {"a.txt": "的一是\n"})
    assert run_build(corpus, vocab_file, tmp_path / "out", "--eval-share", share) == 2
    assert "--eval-share must be at least 0 and below 1" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_an_eval_share_that_holds_out_nothing_warns_and_writes_no_held_out_shards(
        tmp_path, vocab_file, capsys):
    from corpus.shards import EVAL_PREFIX
    corpus = write_corpus(tmp_path / "corpus", {"a.txt": random_corpus_text(random.Random(5), 3)})
    assert run_build(corpus, vocab_file, tmp_path / "out", "--eval-share", 1e-9) == 0
    captured = capsys.readouterr()
    assert "WARNING: --eval-share 1e-09 held out none of the" in captured.err
    assert "held out for evaluation" not in captured.out
    assert not records_of(tmp_path / "out", EVAL_PREFIX)
    assert sum(records_of(tmp_path / "out", OUTPUT_PREFIX).values()) > 0
    info = json.loads((tmp_path / "out" / INFO_FILE).read_text())
    assert info["eval_file_pattern"] is None and info["stats"]["held_out_examples"] == 0
