"""Turn a plain-text corpus into ELECTRA pre-training TFRecords.

The corpus is every regular, non-hidden file under --corpus-dir (recursively),
UTF-8 text with one sentence or paragraph per line and, by default, an empty
line between documents. Lines are tokenized and packed into examples of at
most --max-seq-length tokens exactly as the official ELECTRA
`build_pretraining_dataset.py` does:

  * lines of one document accumulate until they reach a target length, which
    is --max-seq-length, or with probability 0.05 a random length in
    [5, max_seq_length] (so the model also sees short inputs);
  * the accumulated lines are split into two segments ([CLS] A [SEP] B [SEP]),
    or with probability 0.1 kept as a single segment ([CLS] A [SEP]);
  * a document end (or the end of a file) always ends an example.

Lines are tokenized in batches, by default with the Rust `tokenizers` package
when it is installed (--tokenizer auto/fast: same ids as the pure-Python
WordPiece, --tokenizer python); with --num-processes N the corpus is cut into
N runs of about equal bytes at document boundaries.

Each example is a tf.train.Example with the int64 features "input_ids",
"input_mask" and "segment_ids", zero-padded to --max-seq-length; masking is
done at training time. With --segmenter jieba|ref an int feature "word_starts"
is added for whole-word masking (and with --linguistic-labels LERT's
"pos_ids", "ner_ids", "dep_ids"; see pretrain/segmentation.py); the ids do
not change. The shards are `pretrain_data.tfrecord-<i>-of-<n>` in
--output-dir, next to a `dataset_info.json` that records how they were built.

Example:
  python build_pretraining_dataset.py --corpus-dir corpus/ \\
      --vocab-file sample_data/vocab.txt --output-dir data/pretrain_tfrecords
"""

import argparse
import bisect
import dataclasses
import glob
import math
import multiprocessing
import os
import queue
import random
import struct
import sys
import time
import traceback

from model import fast_tokenization
from model import tokenization
from pretrain import segmentation
from util.errors import InputError
from util.io import atomic_write_json, format_duration, format_eta

# TensorFlow's C++ start-up chatter would drown the progress lines. It is
# imported only where the TFRecord files are written (see ShardWriter).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

OUTPUT_PREFIX = "pretrain_data.tfrecord"
INFO_FILE = "dataset_info.json"
FEATURE_NAMES = ("input_ids", "input_mask", "segment_ids")

# Official ELECTRA sampling constants.
SINGLE_SEGMENT_PROB = 0.1
RANDOM_TARGET_PROB = 0.05
MIN_RANDOM_TARGET = 5
SINGLE_SEGMENT_TARGET = 100000

# Default shard count: one shard per this many corpus bytes, capped.
BYTES_PER_OUT_FILE = 32 * 1024 * 1024
MAX_DEFAULT_OUT_FILES = 1000

PROGRESS_INTERVAL = 5.0

# Lines handed to the tokenizer at once: large enough that the fast path's
# per-call overhead vanishes, small enough to keep memory flat.
LINES_PER_BATCH = 1024

TOKENIZER_CHOICES = ("auto", "fast", "python")

# UTF-8 encoding of U+FFFD, used to tell genuine replacement characters in
# the corpus from the ones the decoder inserts.
_REPLACEMENT_BYTES = "\ufffd".encode("utf-8")


# ---------------------------------------------------------------------------
# Example construction
# ---------------------------------------------------------------------------

class ExampleBuilder(object):
    """Packs tokenized lines into fixed-size examples, the official way.

    Args:
        tokenizer: object with `vocab`, `tokenize` and `convert_tokens_to_ids`,
            and optionally `encode_batch_ids` (see `encode_lines`).
        max_length: the sequence length of every example, special tokens
            included.
        rng: a `random.Random`; all sampling goes through it, in the same order
            as the official code, so a seed fixes the output.
    """

    def __init__(self, tokenizer, max_length, rng, annotator=None):
        self._tokenizer = tokenizer
        self._max_length = max_length
        self._rng = rng
        # With a segmenter: a pretrain.segmentation.LineAnnotator giving per-token
        # word_starts (and LERT labels) that travel with the ids. It draws no random
        # numbers, so the ids are those built without it.
        self._annotator = annotator
        self.current_extras = []
        self._cls_id = tokenizer.vocab[tokenization.CLS_TOKEN]
        self._sep_id = tokenizer.vocab[tokenization.SEP_TOKEN]
        self._target_length = max_length
        self.current_sentences = []
        self.current_length = 0
        # Tokens lost to truncation (a single line longer than an example).
        self.truncated_tokens = 0

    def add_line(self, line):
        """Add one stripped line; return a features dict if an example is done.

        An empty line ends the current document (and example), unless nothing
        has been accumulated yet.
        """
        examples = self.add_lines([line])
        return examples[0] if examples else None

    def add_lines(self, lines, notes=None):
        """Add stripped lines in order; return the examples they complete.

        The same as calling `add_line` on each, but the lines are tokenized
        in one batch. notes: per line, the (ref words, DEP pairs) of its
        reference files, for the annotator.
        """
        examples = []
        notes = notes or [(None, None)] * len(lines)
        for line, ids, (ref, deps) in zip(lines, encode_lines(self._tokenizer, lines),
                                          notes):
            extras = (self._annotator.annotate(line, ids, ref, deps)
                      if self._annotator else None)
            features = self._add_ids(line, ids, extras)
            if features:
                examples.append(features)
        return examples

    def _add_ids(self, line, ids, extras=None):
        """`add_line` for a line whose token ids are known."""
        if not line and self.current_length != 0:
            return self._create_example()
        self.current_sentences.append(ids)
        self.current_extras.append(extras)
        self.current_length += len(ids)
        if self.current_length >= self._target_length:
            return self._create_example()
        return None

    def _create_example(self):
        """Split the accumulated sentences into an example and reset."""
        first, second, in_first = self._split_segments()
        untruncated = len(first) + len(second)
        first = first[:self._max_length - 2]
        second = second[:max(0, self._max_length - len(first) - 3)]
        self.truncated_tokens += untruncated - len(first) - len(second)
        extras = self._segment_extras(in_first, len(first), len(second))
        self.current_sentences = []
        self.current_extras = []
        self.current_length = 0
        if self._rng.random() < RANDOM_TARGET_PROB:
            self._target_length = self._rng.randint(MIN_RANDOM_TARGET,
                                                    self._max_length)
        else:
            self._target_length = self._max_length
        return self._make_features(first, second, extras)

    def _segment_extras(self, in_first, first_length, second_length):
        """{feature: (segment A values, segment B values)} for the annotator's features,
        cut like the ids; None without an annotator."""
        if self._annotator is None:
            return None
        out = {}
        for name in self._annotator.feature_names:
            first, second = [], []
            for extras, to_first in zip(self.current_extras, in_first):
                (first if to_first else second).extend(extras[name])
            out[name] = (first[:first_length], second[:second_length])
        return out

    def _split_segments(self):
        """Assign whole sentences to segment A or B (official rule).

        Returns the two segments' ids and, per sentence, whether it went to A.
        """
        if self._rng.random() < SINGLE_SEGMENT_PROB:
            first_target = SINGLE_SEGMENT_TARGET
        else:
            first_target = (self._target_length - 3) // 2
        first, second, in_first = [], [], []
        for sentence in self.current_sentences:
            # The rng is only consulted when the earlier conditions fail, as
            # in the official code: changing that would change every output.
            if (not first
                    or len(first) + len(sentence) < first_target
                    or (not second and len(first) < first_target
                        and self._rng.random() < 0.5)):
                first += sentence
                in_first.append(True)
            else:
                second += sentence
                in_first.append(False)
        return first, second, in_first

    def _make_features(self, first, second, extras=None):
        """Return input_ids/input_mask/segment_ids (and the annotator's features),
        zero-padded."""
        input_ids = [self._cls_id] + first + [self._sep_id]
        segment_ids = [0] * len(input_ids)
        if second:
            input_ids += second + [self._sep_id]
            segment_ids += [1] * (len(second) + 1)
        input_mask = [1] * len(input_ids)
        padding = [0] * (self._max_length - len(input_ids))
        features = {
            "input_ids": input_ids + padding,
            "input_mask": input_mask + padding,
            "segment_ids": segment_ids + padding,
        }
        for name, (values_a, values_b) in (extras or {}).items():
            # [CLS] and [SEP] start a word of their own and carry no label.
            special = 1 if name == "word_starts" else 0
            values = [special] + values_a + [special]
            if second:
                values += values_b + [special]
            features[name] = values + padding
        return features


def encode_lines(tokenizer, lines):
    """Token ids of each line, in one call if the tokenizer can batch."""
    if hasattr(tokenizer, "encode_batch_ids"):
        return tokenizer.encode_batch_ids(lines)
    return [tokenizer.convert_tokens_to_ids(tokenizer.tokenize(line))
            for line in lines]


def _varint(value):
    """The protobuf base-128 varint of a non-negative int."""
    encoded = bytearray()
    while value > 0x7F:
        encoded.append(value & 0x7F | 0x80)
        value >>= 7
    encoded.append(value)
    return bytes(encoded)


class _VarintCache(dict):
    """int -> varint bytes, each computed on first use."""

    def __missing__(self, value):
        encoded = self[value] = _varint(value)
        return encoded


_VARINTS = _VarintCache()


def _field(number, payload):
    """A length-delimited protobuf field: tag, length, payload."""
    return _VARINTS[number << 3 | 2] + _VARINTS[len(payload)] + payload


def _map_entry(name, values):
    """One encoded entry of the Features.feature map: an Int64List feature.

    Entry: key (1), value (2); Feature.int64_list (3); Int64List.value (1),
    packed.
    """
    packed = b"".join(map(_VARINTS.__getitem__, values))
    feature = _field(3, _field(1, packed))
    return _field(1, _field(1, name.encode("utf-8")) + _field(2, feature))


# Masks and segment ids take few distinct values, so their map entries are
# cached (ids rarely repeat, so theirs are not); bounded, as an entry holds
# a max_seq_length tuple.
_CACHED_FEATURES = ("input_mask", "segment_ids")
_ENTRY_CACHE = {}
_ENTRY_CACHE_SIZE = 4096


def _cached_map_entry(name, values):
    """`_map_entry`, from the cache when the same values came before."""
    key = (name, tuple(values))
    entry = _ENTRY_CACHE.get(key)
    if entry is None:
        if len(_ENTRY_CACHE) >= _ENTRY_CACHE_SIZE:
            _ENTRY_CACHE.clear()
        entry = _ENTRY_CACHE[key] = _map_entry(name, values)
    return entry


def serialize_example(features):
    """Serialize a features dict as a tf.train.Example (deterministic bytes).

    The wire format is written by hand: building the message objects took
    longer than tokenizing on the fast path. The bytes equal those of
    tf.train.Example.SerializeToString(deterministic=True), which sorts the
    map by key so the same seed gives byte-identical files. Values must be
    non-negative (token ids, masks, segment ids).
    """
    entries = [_cached_map_entry(name, features[name])
               if name in _CACHED_FEATURES else _map_entry(name, features[name])
               for name in sorted(features)]
    # Example.features (1) holding the map entries.
    return _field(1, b"".join(entries))


# ---------------------------------------------------------------------------
# Corpus reading
# ---------------------------------------------------------------------------

def iter_corpus_files(corpus_dir):
    """Return the sorted relative paths of regular, non-hidden corpus files.

    Hidden directories (e.g. .git) are skipped too.
    """
    paths = []
    for root, dirnames, filenames in os.walk(corpus_dir):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            full = os.path.join(root, name)
            if not name.startswith(".") and os.path.isfile(full):
                paths.append(os.path.relpath(full, corpus_dir))
    return sorted(paths)


def check_corpus(corpus_dir):
    """Return (sorted relative file paths, total bytes) or raise InputError."""
    if not os.path.exists(corpus_dir):
        raise InputError("--corpus-dir %s does not exist" % corpus_dir)
    if not os.path.isdir(corpus_dir):
        raise InputError("--corpus-dir %s is not a directory" % corpus_dir)
    files = iter_corpus_files(corpus_dir)
    total_bytes = sum(os.path.getsize(os.path.join(corpus_dir, f)) for f in files)
    if total_bytes == 0:
        raise InputError(
            "--corpus-dir %s contains no non-empty files (hidden files are "
            "ignored); expected UTF-8 text files with one sentence per line"
            % corpus_dir)
    return files, total_bytes


def decode_line(raw):
    """Decode UTF-8 bytes; return (text, number of bad sequences replaced).

    Each undecodable byte sequence becomes U+FFFD, which the tokenizer drops.
    """
    try:
        return raw.decode("utf-8"), 0
    except UnicodeDecodeError:
        text = raw.decode("utf-8", errors="replace")
        # A well-formed EF BF BD is always decoded as itself (an invalid
        # sequence never swallows a following lead byte), so the inserted
        # replacements are the U+FFFDs not present as such in the bytes.
        return text, text.count("\ufffd") - raw.count(_REPLACEMENT_BYTES)


def iter_lines(path, start, end, first_line):
    """Yield (line number, stripped text, raw byte count, bad sequences).

    Only the lines in bytes [start, end) are read; `start` is a line start
    and `first_line` its line number.
    """
    try:
        with open(path, "rb") as reader:
            reader.seek(start)
            position = start
            for number, raw in enumerate(reader, first_line):
                if position >= end:
                    break
                position += len(raw)
                text, bad = decode_line(raw)
                if number == 1:
                    text = text.lstrip("\ufeff")  # a UTF-8 byte order mark
                yield number, text.strip(), len(raw), bad
    except OSError as err:
        raise InputError("cannot read corpus file %s: %s"
                         % (path, err.strerror or err)) from err


# ---------------------------------------------------------------------------
# Splitting the work
# ---------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class WorkPiece(object):
    """Bytes [start, end) of a corpus file, whole lines of whole documents.

    `path` is relative to the corpus dir; `first_line` is the line number at
    `start`.
    """

    path: str
    start: int
    end: int
    first_line: int = 1


def split_work(corpus_dir, files, num_processes, blanks_separate_docs):
    """Cut the corpus into `num_processes` runs of about equal bytes.

    The sorted files are read as one stream; cut i goes at the first
    document start at or after i/num_processes of the bytes (the nearest
    file start if files are the documents), so documents stay whole and a
    single big file is still shared out. Returns one list of WorkPieces per
    job, in corpus order.
    """
    sizes = [os.path.getsize(os.path.join(corpus_dir, name)) for name in files]
    offsets = [0]
    for size in sizes:
        offsets.append(offsets[-1] + size)
    # A cut is (file index, byte offset in the file, line number there).
    cuts = [(0, 0, 1)]
    for job in range(1, num_processes):
        target = offsets[-1] * job // num_processes
        cut = _cut_near(corpus_dir, files, sizes, offsets, target,
                        blanks_separate_docs)
        cuts.append(max(cut, cuts[-1]))
    cuts.append((len(files), 0, 1))
    return [_pieces_between(files, sizes, cuts[job], cuts[job + 1])
            for job in range(num_processes)]


def _cut_near(corpus_dir, files, sizes, offsets, target, blanks_separate_docs):
    """The cut for stream offset `target` (see `split_work`)."""
    index = bisect.bisect_right(offsets, target) - 1
    local = target - offsets[index]
    if local == 0:
        return (index, 0, 1)
    if not blanks_separate_docs:
        return (index, 0, 1) if 2 * local <= sizes[index] else (index + 1, 0, 1)
    start = next_document_start(os.path.join(corpus_dir, files[index]), local)
    if start is None or start[0] >= sizes[index]:
        return (index + 1, 0, 1)
    return (index,) + start


def next_document_start(path, offset):
    """(byte offset, line number) of the first line at or after `offset`
    that follows a blank line, or None if the file has none."""
    with open(path, "rb") as reader:
        # Counting newlines in big chunks is fast; the line number is only
        # needed for messages about undecodable bytes.
        newlines, last = 0, b"\n"
        while reader.tell() < offset:
            chunk = reader.read(min(offset - reader.tell(), 1 << 20))
            if not chunk:
                return None
            newlines += chunk.count(b"\n")
            last = chunk[-1:]
        position = offset
        if last != b"\n":  # inside a line: skip its rest, it is not blank
            rest = reader.readline()
            position += len(rest)
            newlines += rest.count(b"\n")
        for raw in reader:
            position += len(raw)
            newlines += raw.count(b"\n")
            # ASCII-blank bytes decode to a blank line, so this is a real
            # document end (other blank lines are merely not used as cuts).
            if not raw.strip():
                return position, newlines + 1
    return None


def _pieces_between(files, sizes, first, last):
    """The WorkPieces from cut `first` up to (not including) cut `last`."""
    pieces = []
    index, start, line = first
    while (index, start) < last[:2]:
        end = last[1] if index == last[0] else sizes[index]
        # Empty files stay in (as empty pieces), so they are counted.
        if end > start or start == 0:
            pieces.append(WorkPiece(files[index], start, end, line))
        index, start, line = index + 1, 0, 1
    return pieces


# ---------------------------------------------------------------------------
# Statistics and progress
# ---------------------------------------------------------------------------

@dataclasses.dataclass
class Stats(object):
    """Counters of one job, or of all jobs once merged."""

    files: int = 0
    lines: int = 0
    documents: int = 0
    examples: int = 0
    tokens: int = 0
    truncated_tokens: int = 0
    bytes: int = 0
    # Whole-word masking (--segmenter): words seen, word boundaries that fell inside a
    # WordPiece token (token-level starts used there), tokens not placed in their line.
    words: int = 0
    boundary_mismatches: int = 0
    unaligned_tokens: int = 0
    # Corpus path -> [bad byte sequences, line number of the first one].
    bad_by_file: dict = dataclasses.field(default_factory=dict)

    def merge(self, other):
        """Add the counters of `other` (a Stats) to this one."""
        for field in dataclasses.fields(self):
            if field.name != "bad_by_file":
                setattr(self, field.name,
                        getattr(self, field.name) + getattr(other, field.name))
        # Two jobs may have read parts of the same file.
        for path, (count, first_line) in other.bad_by_file.items():
            old_count, old_first = self.bad_by_file.get(path, (0, first_line))
            self.bad_by_file[path] = [old_count + count,
                                      min(old_first, first_line)]

    def bad_sequences(self):
        """Total number of undecodable byte sequences replaced."""
        return sum(count for count, _ in self.bad_by_file.values())

    def first_bad(self):
        """"path:line" of the first bad sequence in corpus order, or None."""
        if not self.bad_by_file:
            return None
        path = min(self.bad_by_file)
        return "%s:%d" % (path, self.bad_by_file[path][1])

    def bad_bytes_message(self):
        """Human-readable summary of replaced byte sequences, or None."""
        if not self.bad_by_file:
            return None
        return ("%s undecodable byte sequences replaced in %d files (first: %s)"
                % (format_count(self.bad_sequences()), len(self.bad_by_file),
                   self.first_bad()))

    def word_summary(self):
        """JSON-friendly whole-word totals for dataset_info.json."""
        return {"words": self.words, "boundary_mismatches": self.boundary_mismatches,
                "unaligned_tokens": self.unaligned_tokens}

    def summary(self):
        """JSON-friendly totals for dataset_info.json."""
        return {
            "files": self.files,
            "lines": self.lines,
            "documents": self.documents,
            "examples": self.examples,
            "tokens": self.tokens,
            "mean_tokens_per_example": round(self.tokens / max(1, self.examples), 2),
            "truncated_tokens": self.truncated_tokens,
            "bytes": self.bytes,
            "undecodable_byte_sequences": self.bad_sequences(),
            "files_with_undecodable_bytes": len(self.bad_by_file),
            "first_undecodable": self.first_bad(),
        }


def format_count(number):
    """1234567 -> "1,234,567"."""
    return "{:,}".format(number)


class Progress(object):
    """Prints a job's progress line, at most every PROGRESS_INTERVAL seconds."""

    def __init__(self, job_id, num_files, total_bytes):
        self._job_id = job_id
        self._num_files = num_files
        self._total_bytes = total_bytes
        self._start = time.monotonic()
        self._last_report = self._start

    def maybe_report(self, stats, force=False):
        """Print the progress line if the interval has passed (or `force`)."""
        now = time.monotonic()
        if force or now - self._last_report >= PROGRESS_INTERVAL:
            self._last_report = now
            print(self.line(stats, now - self._start), flush=True)

    def line(self, stats, elapsed):
        """Return the progress line for `stats` after `elapsed` seconds."""
        rate = stats.tokens / elapsed if elapsed > 0 else 0.0
        eta = format_eta(stats.bytes, self._total_bytes, elapsed)
        return ("[job %d] files %d/%d | lines %s | docs %s | examples %s | "
                "tokens %s | %s tok/s | ETA %s"
                % (self._job_id, stats.files, self._num_files,
                   format_count(stats.lines), format_count(stats.documents),
                   format_count(stats.examples), format_count(stats.tokens),
                   format_count(int(rate)), eta))


# ---------------------------------------------------------------------------
# Output shards
# ---------------------------------------------------------------------------

def shard_path(output_dir, index, num_out_files):
    """Path of output shard `index` of `num_out_files`."""
    name = "%s-%d-of-%d" % (OUTPUT_PREFIX, index, num_out_files)
    return os.path.join(output_dir, name)


def job_shards(job_id, num_processes, num_out_files):
    """Indices of the shards written by job `job_id`."""
    return [i for i in range(num_out_files) if i % num_processes == job_id]


def existing_outputs(output_dir):
    """Paths of files in `output_dir` that look like our output shards."""
    pattern = os.path.join(glob.escape(output_dir), OUTPUT_PREFIX + "*")
    return sorted(path for path in glob.glob(pattern) if os.path.isfile(path))


# Framing of the records in a `.tmp` shard: little-endian length, bytes.
_RECORD_LENGTH = struct.Struct("<Q")


class ShardWriter(object):
    """Round-robins examples over one job's shards, written as `.tmp` files.

    The `.tmp` files hold length-prefixed records; once every job has
    succeeded the parent writes them out as TFRecord files (see
    `commit_shards`). Jobs thus never import TensorFlow, whose ~3 s start-up
    per process would outweigh the fast path's work on a corpus of many MB.
    On an exception inside the `with` block the `.tmp` files are removed, so
    a failed job leaves nothing behind.
    """

    def __init__(self, output_dir, job_id, num_processes, num_out_files):
        self.tmp_paths = [
            shard_path(output_dir, i, num_out_files) + ".tmp"
            for i in job_shards(job_id, num_processes, num_out_files)
        ]
        self._writers = []
        self._num_written = 0

    def __enter__(self):
        try:
            for path in self.tmp_paths:
                self._writers.append(open(path, "wb"))
        except BaseException:
            self._close(remove=True)
            raise
        return self

    def __exit__(self, exc_type, exc_value, exc_traceback):
        self._close(remove=exc_type is not None)
        return False

    def write(self, serialized):
        """Append one serialized example to the next shard in turn."""
        writer = self._writers[self._num_written % len(self._writers)]
        writer.write(_RECORD_LENGTH.pack(len(serialized)))
        writer.write(serialized)
        self._num_written += 1

    def _close(self, remove):
        """Close every writer; delete the `.tmp` files if `remove`."""
        for writer in self._writers:
            writer.close()
        self._writers = []
        if remove:
            remove_files(self.tmp_paths)


def read_records(path):
    """Yield the records of a `.tmp` shard written by ShardWriter."""
    with open(path, "rb") as reader:
        while True:
            header = reader.read(_RECORD_LENGTH.size)
            if not header:
                return
            (length,) = _RECORD_LENGTH.unpack(header)
            yield reader.read(length)


def remove_files(paths):
    """Delete the files in `paths` that exist."""
    for path in paths:
        if os.path.exists(path):
            os.remove(path)


# ---------------------------------------------------------------------------
# One job
# ---------------------------------------------------------------------------

def make_tokenizer(args):
    """Build the tokenizer the flags describe (InputError on a bad vocab).

    --tokenizer fast or auto uses the fast WordPiece tokenizer when it is
    available; auto falls back to the Python one, fast is then an error.
    """
    if args.tokenizer != "python":
        tokenizer = fast_tokenization.build_fast_tokenizer(
            vocab_file=args.vocab_file, do_lower_case=args.do_lower_case,
            strip_accents=args.strip_accents,
            spm_model_file=args.spm_model_file)
        if tokenizer is not None:
            return tokenizer
        if args.tokenizer == "fast":
            raise InputError(
                "--tokenizer fast needs a WordPiece --vocab-file and the "
                "`tokenizers` package (pip install 'tokenizers>=0.15,<1'); "
                "use --tokenizer python or auto otherwise")
    return tokenization.build_tokenizer(
        vocab_file=args.vocab_file, do_lower_case=args.do_lower_case,
        strip_accents=args.strip_accents, spm_model_file=args.spm_model_file)


def tokenizer_kind(tokenizer):
    """"fast" or "python": which path `tokenizer` is."""
    if isinstance(tokenizer, fast_tokenization.FastWordpieceTokenizer):
        return "fast"
    return "python"


def examples_from_piece(path, piece, builder, blanks_separate_docs, stats,
                        progress, ref_path=None, dep_path=None):
    """Yield the features dicts built from one WorkPiece, updating `stats`.

    `path` is the piece's file. Lines go to the builder in batches of
    LINES_PER_BATCH, which changes nothing but the speed. ref_path / dep_path:
    the piece's --ref-file / --dep-file (checked beforehand to match it line
    for line), read in step with it.
    """
    in_document = False
    batch = []
    notes = []
    refs = annotation_lines(ref_path, piece.first_line)
    deps = annotation_lines(dep_path, piece.first_line)
    for number, line, num_bytes, bad in iter_lines(
            path, piece.start, piece.end, piece.first_line):
        ref, dep = next(refs), next(deps)
        stats.lines += 1
        stats.bytes += num_bytes
        if bad:
            count, first_line = stats.bad_by_file.get(path, (0, number))
            stats.bad_by_file[path] = [count + bad, first_line]
        if line or blanks_separate_docs:
            if line:
                in_document = True
            elif in_document:
                stats.documents += 1
                in_document = False
            batch.append(line)
            notes.append((ref and segmentation.ref_words(ref),
                          dep and segmentation.dep_words(dep, dep_path, number)))
            if len(batch) == LINES_PER_BATCH:
                yield from builder.add_lines(batch, notes)
                batch, notes = [], []
        progress.maybe_report(stats)
    yield from builder.add_lines(batch, notes)
    if in_document:
        stats.documents += 1
    # The end of a piece (a file, or a run of whole documents) always ends
    # the document being built.
    features = builder.add_line("")
    if features:
        yield features


def annotation_lines(path, first_line):
    """The stripped lines of a reference file from line `first_line` on, then
    None forever; None throughout if there is no file."""
    if path:
        for number, line, _, _ in iter_lines(path, 0, float("inf"), 1):
            if number >= first_line:
                yield line
    while True:
        yield None


def annotation_path(pattern, corpus_file):
    """The --ref-file / --dep-file of a corpus file: {path} in the pattern is
    the file's path relative to --corpus-dir."""
    if not pattern:
        return None
    return pattern.replace("{path}", corpus_file)


def make_annotator(args, tokenizer):
    """A LineAnnotator for --segmenter jieba/ref, None for none."""
    if args.segmenter == "none":
        return None
    return segmentation.LineAnnotator(tokenizer, args.segmenter,
                                      linguistic=args.linguistic_labels)


def write_examples(job_id, args):
    """Run job `job_id` of `args.num_processes`; return its Stats as a dict.

    The job takes its run of the corpus, `args.job_pieces[job_id]` (see
    `split_work`), shuffles the pieces with random.Random(seed + job_id)
    like the official tool does its files, and writes the shards i with
    i % num_processes == job_id as `.tmp` files (removed if the job fails).
    `args.num_out_files` is the resolved shard count; see `build`.
    """
    rng = random.Random(args.seed + job_id)
    tokenizer = make_tokenizer(args)
    pieces = list(args.job_pieces[job_id])
    rng.shuffle(pieces)
    annotator = make_annotator(args, tokenizer)
    builder = ExampleBuilder(tokenizer, args.max_seq_length, rng, annotator)
    stats = Stats()
    progress = Progress(job_id, sum(1 for piece in pieces if piece.start == 0),
                        sum(piece.end - piece.start for piece in pieces))
    with ShardWriter(args.output_dir, job_id, args.num_processes,
                     args.num_out_files) as writer:
        for piece in pieces:
            path = os.path.join(args.corpus_dir, piece.path)
            for features in examples_from_piece(
                    path, piece, builder, args.blanks_separate_docs, stats,
                    progress, annotation_path(args.ref_file, piece.path),
                    annotation_path(args.dep_file, piece.path)):
                writer.write(serialize_example(features))
                stats.examples += 1
                stats.tokens += sum(features["input_mask"])
            if piece.start == 0:  # a file cut between jobs counts once
                stats.files += 1
            report_bad_bytes(job_id, path, stats)
            progress.maybe_report(stats)
    progress.maybe_report(stats, force=True)
    stats.truncated_tokens = builder.truncated_tokens
    if annotator:
        stats.words = annotator.words
        stats.boundary_mismatches = annotator.boundary_mismatches
        stats.unaligned_tokens = annotator.unaligned_tokens
    return dataclasses.asdict(stats)


def report_bad_bytes(job_id, path, stats):
    """Warn once per file about replaced undecodable bytes."""
    if path in stats.bad_by_file:
        count, first_line = stats.bad_by_file[path]
        print("[job %d] warning: %s: %s undecodable byte sequences replaced "
              "(first at line %d)" % (job_id, path, format_count(count),
                                      first_line), flush=True)


# ---------------------------------------------------------------------------
# Running the jobs
# ---------------------------------------------------------------------------

class JobError(RuntimeError):
    """A job process crashed or died; the message carries its traceback."""


def _job_main(job_id, args, results):
    """Child-process entry: put (job_id, stats, error) on the `results` queue."""
    try:
        results.put((job_id, write_examples(job_id, args), None))
    except InputError as err:
        results.put((job_id, None, ("input", str(err))))
    except BaseException:  # the parent must hear of any failure, or it would wait
        results.put((job_id, None, ("crash", traceback.format_exc())))


def run_jobs(args):
    """Run every job (in child processes if more than one); return Stats."""
    if args.num_processes == 1:
        return Stats(**write_examples(0, args))
    context = multiprocessing.get_context("spawn")  # TF is not fork-safe
    results = context.Queue()
    processes = [context.Process(target=_job_main, args=(j, args, results))
                 for j in range(args.num_processes)]
    for process in processes:
        process.start()
    try:
        return _collect_results(processes, results)
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()
            process.join()


def _collect_results(processes, results):
    """Wait for every job's stats; raise on the first failure."""
    total = Stats()
    done = set()
    while len(done) < len(processes):
        try:
            job_id, stats, error = results.get(timeout=1.0)
        except queue.Empty:
            _check_for_crashes(processes, done)
            continue
        if error is not None:
            kind, message = error
            if kind == "input":
                raise InputError(message)
            raise JobError("job %d failed:\n%s" % (job_id, message))
        total.merge(Stats(**stats))
        done.add(job_id)
    return total


def _check_for_crashes(processes, done):
    """Raise if a job died without reporting (e.g. killed for memory)."""
    for job_id, process in enumerate(processes):
        # A job that reported exits with 0; its message may still be queued.
        if job_id not in done and process.exitcode not in (None, 0):
            raise JobError("job %d died with exit code %d (killed, e.g. for "
                           "lack of memory?)" % (job_id, process.exitcode))


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------

def parse_bool(text):
    """argparse type for true/false flags."""
    value = text.strip().lower()
    if value in ("true", "yes", "1"):
        return True
    if value in ("false", "no", "0"):
        return False
    raise argparse.ArgumentTypeError("expected true or false, got %r" % text)


def parse_strip_accents(text):
    """argparse type for --strip-accents: True, False or None (auto)."""
    if text.strip().lower() == "auto":
        return None
    return parse_bool(text)


def build_parser():
    """The command-line parser."""
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--corpus-dir", required=True,
                        help="directory of UTF-8 text files (searched "
                             "recursively; hidden files are ignored)")
    parser.add_argument("--vocab-file",
                        help="WordPiece vocab, one token per line (required "
                             "unless --spm-model-file is given)")
    parser.add_argument("--output-dir", required=True,
                        help="where the TFRecord shards and dataset_info.json "
                             "are written")
    parser.add_argument("--max-seq-length", type=int, default=128,
                        help="tokens per example, [CLS]/[SEP] included "
                             "(default: 128)")
    parser.add_argument("--num-processes", type=int, default=1,
                        help="parallel jobs (default: 1)")
    parser.add_argument("--num-out-files", type=int, default=None,
                        help="number of output shards (default: one per "
                             "32 MiB of corpus, rounded up, at least "
                             "--num-processes and at most 1000)")
    parser.add_argument("--blanks-separate-docs", type=parse_bool, default=True,
                        metavar="{true,false}",
                        help="an empty line ends a document (default: true); "
                             "if false, empty lines are ignored and each file "
                             "is one document")
    parser.add_argument("--do-lower-case", type=parse_bool, default=True,
                        metavar="{true,false}",
                        help="lower-case the text (default: true)")
    parser.add_argument("--strip-accents", type=parse_strip_accents,
                        default=None, metavar="{true,false,auto}",
                        help="strip accents; auto follows --do-lower-case "
                             "(default: auto; WordPiece only)")
    parser.add_argument("--spm-model-file",
                        help="SentencePiece .model to tokenize with instead "
                             "of --vocab-file")
    parser.add_argument("--tokenizer", choices=TOKENIZER_CHOICES,
                        default="auto",
                        help="python: the pure-Python tokenizer; fast: "
                             "the same ids, many times faster, with the "
                             "`tokenizers` package (WordPiece only); auto: "
                             "fast if available, else python (default: auto)")
    parser.add_argument("--segmenter", choices=segmentation.SEGMENTERS,
                        default="none",
                        help="word boundaries for whole-word masking, stored "
                             "as a word_starts feature: jieba, ref (from "
                             "--ref-file) or none (default: none, no "
                             "word_starts)")
    parser.add_argument("--ref-file", metavar="PATTERN",
                        help="with --segmenter ref: the segmented text of "
                             "each corpus file, one line per corpus line, "
                             "words separated by spaces (e.g. LTP output); "
                             "{path} stands for the corpus file's path "
                             "relative to --corpus-dir")
    parser.add_argument("--linguistic-labels", action="store_true",
                        help="with --segmenter jieba: also store LERT's "
                             "per-token pos_ids, ner_ids (from jieba's POS "
                             "tags mapped to LTP's) and dep_ids")
    parser.add_argument("--dep-file", metavar="PATTERN",
                        help="with --linguistic-labels: DEP annotations, one "
                             "line per corpus line of word/LABEL items "
                             "separated by spaces; {path} as for --ref-file "
                             "(without it dep_ids are all 0: no DEP loss)")
    parser.add_argument("--seed", type=int, default=12345,
                        help="random seed; job j uses seed + j (default: 12345)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace existing pretrain_data.tfrecord* files "
                             "in --output-dir")
    return parser


def default_num_out_files(total_bytes, num_processes):
    """One shard per 32 MiB of corpus, at least num_processes, at most 1000.

    If num_processes exceeds 1000, every job still gets a shard.
    """
    wanted = min(MAX_DEFAULT_OUT_FILES, math.ceil(total_bytes / BYTES_PER_OUT_FILE))
    return max(num_processes, wanted)


def check_flags(args):
    """Raise InputError for flag values that cannot work."""
    if not args.vocab_file and not args.spm_model_file:
        raise InputError("no tokenizer given: expected --vocab-file (or "
                         "--spm-model-file)")
    if args.max_seq_length < MIN_RANDOM_TARGET:
        raise InputError("--max-seq-length must be at least %d, got %d"
                         % (MIN_RANDOM_TARGET, args.max_seq_length))
    if args.num_processes < 1:
        raise InputError("--num-processes must be at least 1, got %d"
                         % args.num_processes)
    if args.segmenter == "ref" and not args.ref_file:
        raise InputError("--segmenter ref needs --ref-file PATTERN (the segmented "
                         "corpus, one line per corpus line, words separated by spaces)")
    if args.ref_file and args.segmenter != "ref":
        raise InputError("--ref-file is only read with --segmenter ref")
    if args.linguistic_labels and args.segmenter != "jieba":
        raise InputError("--linguistic-labels takes POS and NER from jieba: use "
                         "--segmenter jieba")
    if args.dep_file and not args.linguistic_labels:
        raise InputError("--dep-file is only read with --linguistic-labels")
    if args.segmenter != "none" and args.spm_model_file:
        raise InputError("--segmenter %s aligns words to WordPiece tokens: use "
                         "--vocab-file, not --spm-model-file" % args.segmenter)
    if args.num_out_files is not None and args.num_out_files < args.num_processes:
        raise InputError(
            "--num-out-files (%d) must be at least --num-processes (%d): "
            "every job writes its own shards"
            % (args.num_out_files, args.num_processes))


def check_output_dir(args):
    """Refuse an output dir that is a file, inside the corpus, or in use."""
    output_dir = args.output_dir
    if os.path.exists(output_dir) and not os.path.isdir(output_dir):
        raise InputError("--output-dir %s exists and is not a directory"
                         % output_dir)
    corpus = os.path.realpath(args.corpus_dir)
    output = os.path.realpath(output_dir)
    if os.path.commonpath([corpus, output]) == corpus:
        # The shards would be read back as corpus text by the next run.
        raise InputError("--output-dir %s is inside --corpus-dir %s; choose "
                         "a directory outside the corpus"
                         % (output_dir, args.corpus_dir))
    existing = existing_outputs(output_dir)
    if existing and not args.overwrite:
        raise InputError(
            "--output-dir %s already contains %d %s* file(s); pass "
            "--overwrite to replace them or choose another --output-dir"
            % (output_dir, len(existing), OUTPUT_PREFIX))


def check_annotation_files(args, corpus_files):
    """Every corpus file's --ref-file / --dep-file must exist and match it line
    for line (same text once whitespace is removed): said before any output
    is touched, naming file and line."""
    for pattern, flag in ((args.ref_file, "--ref-file"), (args.dep_file, "--dep-file")):
        if not pattern:
            continue
        if "{path}" not in pattern and len(corpus_files) > 1:
            raise InputError("%s %s must contain {path} (the corpus file's path "
                             "relative to --corpus-dir): the corpus has %d files"
                             % (flag, pattern, len(corpus_files)))
        for name in corpus_files:
            _check_annotation_file(os.path.join(args.corpus_dir, name),
                                   annotation_path(pattern, name), flag)


def _check_annotation_file(corpus_path, path, flag):
    if not os.path.isfile(path):
        raise InputError("%s %s (for corpus file %s) does not exist"
                         % (flag, path, corpus_path))
    corpus = iter_lines(corpus_path, 0, float("inf"), 1)
    notes = iter_lines(path, 0, float("inf"), 1)
    while True:
        line, note = next(corpus, None), next(notes, None)
        if line is None and note is None:
            return
        if line is None or note is None:
            longer, number = (path, note[0]) if line is None else (corpus_path, line[0])
            raise InputError(
                "%s %s and corpus file %s differ in length: %s has a line %d, the "
                "other file ends before it; expected one line per corpus line"
                % (flag, path, corpus_path, longer, number))
        number, text = line[0], line[1]
        words = (segmentation.ref_words(note[1]) if flag == "--ref-file"
                 else [w for w, _ in segmentation.dep_words(note[1], path, number)])
        if not segmentation.same_text(text, words):
            raise InputError(
                "%s:%d: the words %r do not spell corpus line %s:%d %r (whitespace "
                "ignored); the reference file must segment the corpus line for line"
                % (path, number, " ".join(words)[:60], corpus_path, number, text[:60]))


def check_tokenizer(args):
    """Build the tokenizer once up front; return its vocab size.

    Vocab problems, missing special tokens included, thus surface before any
    work is done or old output is deleted. Resolves --tokenizer auto to the
    path taken, so that every job takes the same one.
    """
    tokenizer = make_tokenizer(args)
    args.tokenizer = tokenizer_kind(tokenizer)
    return len(tokenizer)


def prepare_output_dir(args):
    """Create --output-dir; with --overwrite delete our old shards."""
    try:
        os.makedirs(args.output_dir, exist_ok=True)
    except OSError as err:
        raise InputError("cannot create --output-dir %s: %s"
                         % (args.output_dir, err.strerror or err)) from err
    if args.overwrite:
        remove_files(existing_outputs(args.output_dir))


def commit_shards(args):
    """Write the jobs' `.tmp` shards as TFRecord files with their final names.

    Every shard is written as `.part` first and only then are all renamed,
    so a failure (e.g. a full disk) leaves no final shard behind.
    """
    import tensorflow.compat.v1 as tf  # only here: see ShardWriter

    paths = [shard_path(args.output_dir, index, args.num_out_files)
             for index in range(args.num_out_files)]
    for path in paths:
        with tf.io.TFRecordWriter(path + ".part") as writer:
            for record in read_records(path + ".tmp"):
                writer.write(record)
    for path in paths:
        os.replace(path + ".part", path)


def discard_shards(args):
    """Delete any `.tmp` and `.part` shards of this run."""
    remove_files(shard_path(args.output_dir, i, args.num_out_files) + suffix
                 for i in range(args.num_out_files)
                 for suffix in (".tmp", ".part"))


def write_dataset_info(args, vocab_size, stats):
    """Write dataset_info.json atomically (tmp file, then os.replace)."""
    info = {
        "max_seq_length": args.max_seq_length,
        "num_out_files": args.num_out_files,
        "file_pattern": "%s-*-of-%d" % (OUTPUT_PREFIX, args.num_out_files),
        "vocab_size": vocab_size,
        "vocab_file": args.vocab_file and os.path.abspath(args.vocab_file),
        "spm_model_file": (args.spm_model_file
                           and os.path.abspath(args.spm_model_file)),
        "do_lower_case": args.do_lower_case,
        "strip_accents": (args.do_lower_case if args.strip_accents is None
                          else args.strip_accents),
        "blanks_separate_docs": args.blanks_separate_docs,
        "tokenizer": args.tokenizer,
        "seed": args.seed,
        "num_processes": args.num_processes,
        "corpus_dir": os.path.abspath(args.corpus_dir),
        "stats": stats.summary(),
    }
    if args.segmenter != "none":  # absent otherwise: the plain build's info is unchanged
        info["segmenter"] = args.segmenter
        info["ref_file"] = args.ref_file
        info["linguistic_labels"] = args.linguistic_labels
        info["dep_file"] = args.dep_file
        info["features"] = sorted(FEATURE_NAMES + segmentation.feature_names(
            args.linguistic_labels))
        info["whole_word"] = stats.word_summary()
    atomic_write_json(os.path.join(args.output_dir, INFO_FILE), info)


def print_summary(args, stats, elapsed):
    """Print the final totals of all jobs."""
    print("done: %s files, %s lines, %s documents -> %s examples, %s tokens "
          "(%.1f tokens/example, %s truncated)"
          % (format_count(stats.files), format_count(stats.lines),
             format_count(stats.documents), format_count(stats.examples),
             format_count(stats.tokens), stats.tokens / stats.examples,
             format_count(stats.truncated_tokens)), flush=True)
    if args.segmenter != "none":
        print("words (%s): %s; word boundaries inside a WordPiece token (token-level "
              "starts used there): %s; tokens not aligned to their line: %s"
              % (args.segmenter, format_count(stats.words),
                 format_count(stats.boundary_mismatches),
                 format_count(stats.unaligned_tokens)), flush=True)
    if stats.bad_by_file:
        print("warning: " + stats.bad_bytes_message(), flush=True)
    else:
        print("undecodable byte sequences: 0", flush=True)
    print("wrote %d files %s-*-of-%d and %s to %s"
          % (args.num_out_files, OUTPUT_PREFIX, args.num_out_files, INFO_FILE,
             args.output_dir), flush=True)
    print("elapsed %s, %s tok/s, tokenizer %s, %d process(es)"
          % (format_duration(elapsed),
             format_count(int(stats.tokens / max(elapsed, 1e-9))),
             args.tokenizer, args.num_processes), flush=True)


def build(args):
    """Validate everything, run the jobs, publish the shards; return Stats."""
    start = time.monotonic()
    check_flags(args)
    check_output_dir(args)
    vocab_size = check_tokenizer(args)
    corpus_files, total_bytes = check_corpus(args.corpus_dir)
    check_annotation_files(args, corpus_files)
    if args.num_out_files is None:
        args.num_out_files = default_num_out_files(total_bytes, args.num_processes)
    args.job_pieces = split_work(args.corpus_dir, corpus_files,
                                 args.num_processes, args.blanks_separate_docs)
    # Only now, with tokenizer and corpus known to be usable, touch old output.
    prepare_output_dir(args)
    try:
        stats = run_jobs(args)
        if stats.examples == 0:
            raise InputError(
                "--corpus-dir %s yielded no examples: its %d file(s) contain "
                "no text the tokenizer keeps" % (args.corpus_dir, stats.files))
        commit_shards(args)
    finally:
        discard_shards(args)
    write_dataset_info(args, vocab_size, stats)
    print_summary(args, stats, time.monotonic() - start)
    return stats


def main(argv=None):
    """Command-line entry point; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        build(args)
    except InputError as err:
        print("error: %s" % err, file=sys.stderr)
        return 2
    except JobError as err:
        print("error: %s" % err, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
