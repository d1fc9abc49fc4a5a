"""Benchmark of the corpus builder: pure-Python versus fast tokenizer path.

Builds a corpus (16 MB by default) from the real Chinese text in
../shared/data, going round it as often as needed (generated text if that
folder is absent), and builds it with corpus.dataset_builder.build() in
this process: --tokenizer python and fast, each with 1 and 2 processes. The
time of a run is the wall time of build(), job start-up and TFRecord writing
included (TensorFlow is imported beforehand, as any caller would have). It
prints tokens/s (tokens in the examples, special tokens included),
examples/s and seconds of every run, the ratios, and whether the python and
fast paths wrote byte-identical shards for the same process count (PASS or
FAIL; the exit status is 1 on FAIL). With --repeats N every run is done N
times (in rounds) and the fastest kept, which filters out bursts of load
from other jobs.

Usage (from the repo root):
  .venv/bin/python bench/corpus_build.py [--data-dir ../shared/data] \\
      [--megabytes 16] [--repeats 1] [--work-dir DIR] [--keep]
"""

import argparse
import glob
import importlib
import json
import os
import random
import re
import resource
import shutil
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

import build_pretraining_dataset as bpd  # noqa: E402
from corpus import dataset_builder, shards  # noqa: E402
from corpus.build_stats import format_count  # noqa: E402
from model import tokenization  # noqa: E402
from util.machine import machine_description  # noqa: E402

DEFAULT_DATA_DIR = os.path.join(os.path.dirname(REPO), "shared", "data")
SAMPLE_VOCAB = os.path.join(REPO, "sample_data", "vocab.txt")

# Sentences of short-text sources (titles, reviews, sentence pairs) grouped
# into one document, so the corpus has multi-line documents like a real one.
LINES_PER_DOCUMENT = 8
# A sentence: up to and including its end marks (every character is in one).
_SENTENCE_RE = re.compile(r"[^。！？!?]*[。！？!?]+|[^。！？!?]+")
# Unequal file sizes, so the byte-even work split is exercised.
FILE_WEIGHTS = (5, 1, 3, 1, 2, 1, 4, 1)
# Paired runs next to each other, so that both see about the same load.
RUNS = (("python", 1), ("fast", 1), ("python", 2), ("fast", 2))


# ---------------------------------------------------------------------------
# Real text from ../shared/data
# ---------------------------------------------------------------------------

def _read_lines(path):
    """The non-empty stripped lines of a UTF-8 file (bad bytes -> U+FFFD).

    msr_test_gold.utf8 ends in a truncated character, for one.
    """
    with open(path, encoding="utf-8", errors="replace") as reader:
        return [line.strip() for line in reader if line.strip()]


def _squad_contexts(path):
    """Every paragraph context of a SQuAD-format JSON file."""
    with open(path, encoding="utf-8") as reader:
        data = json.load(reader)["data"]
    return [paragraph["context"] for article in data
            for paragraph in article["paragraphs"]]


def _tsv_columns(path, columns, header):
    """The given columns of a tab-separated file, by index or header name."""
    rows = [line.split("\t") for line in _read_lines(path)]
    if header:
        names, rows = rows[0], rows[1:]
        columns = [names.index(name) for name in columns]
    return [row[i] for row in rows for i in columns if i < len(row)]


def _json_fields(path, fields):
    """The given string fields of a JSON-lines file."""
    texts = []
    for line in _read_lines(path):
        record = json.loads(line)
        texts.extend(record[field] for field in fields if record.get(field))
    return texts


def _char_per_line_sentences(path):
    """Sentences of a `<char> <label>` file (blank line between sentences)."""
    sentences, chars = [], []
    with open(path, encoding="utf-8") as reader:
        for line in reader:
            if line.strip():
                chars.append(line.split()[0])
            elif chars:
                sentences.append("".join(chars))
                chars = []
    if chars:
        sentences.append("".join(chars))
    return sentences


def _segmented_sentences(path):
    """Lines of a space-segmented file with the word spaces removed."""
    return ["".join(line.split()) for line in _read_lines(path)]


# (glob under the data dir, reader, whether each text is a whole document).
_SOURCES = (
    ("cmrc2018/*.json", _squad_contexts, True),
    ("drcd/*.json", _squad_contexts, True),
    ("sighan2005/*.utf8", _segmented_sentences, False),
    ("tnews/train.tsv", lambda p: _tsv_columns(p, [0], False), False),
    ("tnews/dev.json", lambda p: _json_fields(p, ["sentence", "keywords"]),
     False),
    ("chnsenticorp/*.tsv", lambda p: _tsv_columns(p, ["text_a"], True), False),
    ("ocnli/*.json", lambda p: _json_fields(p, ["sentence1", "sentence2"]),
     False),
    ("xnli/*.tsv", lambda p: _tsv_columns(p, ["text_a", "text_b"], True),
     False),
    ("lcqmc/*.txt", lambda p: _tsv_columns(p, [0, 1], False), False),
    ("bqcorpus/*.tsv", lambda p: _tsv_columns(p, [0, 1], False), False),
    ("msra-ner/*.ner", _char_per_line_sentences, False),
    ("peoples-daily-ner/example.*", _char_per_line_sentences, False),
)


def shared_documents(data_dir):
    """Documents (lists of lines) of all real text under `data_dir`.

    Texts are split into sentences, one per line as in a pre-training
    corpus; a reading-comprehension context is a document, the sentences of
    short texts are grouped LINES_PER_DOCUMENT to a document. Returns [] if
    `data_dir` holds none of the known sources.
    """
    documents = []
    for pattern, reader, whole in _SOURCES:
        for path in sorted(glob.glob(os.path.join(data_dir, pattern))):
            texts = [_sentences(text) for text in reader(path)]
            if whole:
                documents.extend(text for text in texts if text)
            else:
                lines = [line for text in texts for line in text]
                documents.extend(lines[i:i + LINES_PER_DOCUMENT] for i in
                                 range(0, len(lines), LINES_PER_DOCUMENT))
    return documents


def _sentences(text):
    """The non-empty stripped sentences of `text`."""
    return [sentence.strip() for sentence in _SENTENCE_RE.findall(text)
            if sentence.strip()]


def generated_documents(vocab_file, num_documents, seed=0):
    """Random documents of vocab characters, ASCII words and punctuation."""
    rng = random.Random(seed)
    vocab = tokenization.load_vocab(vocab_file)
    chars = [token for token in vocab
             if len(token) == 1 and tokenization.is_cjk_char(token)]
    words = ["ELECTRA", "bert", "2019年", "GPU", "iPhone", "3.14", "Wi-Fi"]
    punctuation = "，。、；：？！“”（）"
    documents = []
    for _ in range(num_documents):
        lines = []
        for _ in range(rng.randint(1, 12)):
            parts = [rng.choice(chars) for _ in range(rng.randint(5, 60))]
            for _ in range(rng.randint(0, 3)):
                parts.insert(rng.randint(0, len(parts)), rng.choice(words))
                parts.insert(rng.randint(0, len(parts)), rng.choice(punctuation))
            lines.append("".join(parts) + "。")
        documents.append(lines)
    return documents


def write_corpus(documents, corpus_dir, megabytes):
    """Write about `megabytes` MB of `documents` into files of unequal sizes
    (FILE_WEIGHTS), going round the documents as often as needed; return
    the total bytes written."""
    blocks = [("\n".join(lines) + "\n\n").encode("utf-8")
              for lines in documents]
    target = int(megabytes * 1e6)
    os.makedirs(corpus_dir, exist_ok=True)
    total = 0
    next_block = 0
    for index, weight in enumerate(FILE_WEIGHTS):
        size = target * weight // sum(FILE_WEIGHTS)
        chunks = []
        written = 0
        while written < size:
            block = blocks[next_block % len(blocks)]
            chunks.append(block)
            written += len(block)
            next_block += 1
        with open(os.path.join(corpus_dir, "part_%02d.txt" % index),
                  "wb") as writer:
            writer.write(b"".join(chunks))
        total += written
    return total


# ---------------------------------------------------------------------------
# Runs
# ---------------------------------------------------------------------------

def cpu_seconds():
    """User + system CPU time of this process and its finished children."""
    return sum(usage.ru_utime + usage.ru_stime for usage in (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN)))


def run_builder(corpus_dir, vocab_file, output_dir, tokenizer, processes):
    """Build in-process; return (wall seconds, CPU seconds, stats summary)."""
    argv = ["--corpus-dir", corpus_dir, "--vocab-file", vocab_file,
            "--output-dir", output_dir, "--max-seq-length", "128",
            "--num-processes", str(processes), "--num-out-files", "4",
            "--tokenizer", tokenizer, "--seed", "12345", "--overwrite"]
    args = bpd.build_parser().parse_args(argv)
    start, start_cpu = time.perf_counter(), cpu_seconds()
    stats = dataset_builder.build(args)
    return (time.perf_counter() - start, cpu_seconds() - start_cpu,
            stats.summary())


def shard_bytes(output_dir):
    """{shard name: content} of every output shard."""
    contents = {}
    for path in shards.existing_outputs(output_dir):
        with open(path, "rb") as reader:
            contents[os.path.basename(path)] = reader.read()
    return contents


def format_table(results):
    """The result rows as a fixed-width table.

    tokens/cpu-s (tokens per CPU second, all processes) hardly depends on
    what else runs on the machine, unlike the wall-clock rates.
    """
    lines = ["%-7s %9s %12s %12s %9s %13s" % (
        "path", "processes", "tokens/s", "examples/s", "seconds",
        "tokens/cpu-s")]
    for (path, processes), (seconds, cpu, stats) in results.items():
        lines.append("%-7s %9d %12s %12s %9.2f %13s" % (
            path, processes, format_count(int(stats["tokens"] / seconds)),
            format_count(int(stats["examples"] / seconds)), seconds,
            format_count(int(stats["tokens"] / cpu))))
    return "\n".join(lines)


def ratio_lines(results):
    """Tokens/s ratios: fast over python for 1 and for 2 processes, and
    fast with 2 processes over python with 1."""
    def rate(key):
        seconds, _, stats = results[key]
        return stats["tokens"] / seconds

    lines = ["fast/python tokens/s, %d process%s: %.1fx"
             % (processes, "es" if processes > 1 else "",
                rate(("fast", processes)) / rate(("python", processes)))
             for processes in (1, 2)]
    lines.append("fast 2 processes / python 1 process tokens/s: %.1fx"
                 % (rate(("fast", 2)) / rate(("python", 1))))
    return lines


def parse_args(argv):
    """The benchmark's command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default=DEFAULT_DATA_DIR,
                        help="real text to build the corpus from (default: "
                             "../shared/data; generated text if absent)")
    parser.add_argument("--vocab-file", default=SAMPLE_VOCAB,
                        help="WordPiece vocab (default: the bundled one)")
    parser.add_argument("--megabytes", type=float, default=16.0,
                        help="corpus size in MB (default: 16)")
    parser.add_argument("--repeats", type=int, default=1,
                        help="runs of each configuration; the fastest "
                             "counts (default: 1)")
    parser.add_argument("--work-dir",
                        help="where corpus and outputs go, kept afterwards "
                             "(default: a temporary directory, removed)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the temporary work dir")
    return parser.parse_args(argv)


def main(argv=None):
    """Run the benchmark; return 0 if the outputs matched, else 1."""
    args = parse_args(argv)
    # The builder imports TensorFlow when it writes the shards; import it
    # now so that no run is charged for it. (Not at the top: the job
    # processes re-import this module and must stay free of it.)
    importlib.import_module("tensorflow")

    work_dir = args.work_dir or tempfile.mkdtemp(prefix="corpus_build_bench_")
    remove_work_dir = not (args.work_dir or args.keep)
    try:
        documents = shared_documents(args.data_dir)
        source = "real text from %s" % args.data_dir
        if not documents:
            documents = generated_documents(args.vocab_file, 2000)
            source = "generated text (%s has no known data)" % args.data_dir
        corpus_dir = os.path.join(work_dir, "corpus")
        total = write_corpus(documents, corpus_dir, args.megabytes)
        print("corpus: %s, %s bytes in %d files; machine: %s"
              % (source, format_count(total), len(FILE_WEIGHTS),
                 machine_description()), flush=True)
        results, outputs = {}, {}
        for _ in range(args.repeats):
            for key in RUNS:
                output_dir = os.path.join(work_dir, "out_%s_%d" % key)
                result = run_builder(corpus_dir, args.vocab_file, output_dir,
                                     *key)
                if key not in results or result[0] < results[key][0]:
                    results[key] = result
                outputs[key] = shard_bytes(output_dir)
        print()
        print(format_table(results))
        print("\n".join(ratio_lines(results)))
        identical = all(outputs[("python", p)] == outputs[("fast", p)]
                        for p in (1, 2))
        print("identical shards, python vs fast (1 and 2 processes): %s"
              % ("PASS" if identical else "FAIL"))
        return 0 if identical else 1
    finally:
        if remove_work_dir:
            shutil.rmtree(work_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
