"""Reading the corpus: its files, their lines (undecodable bytes counted), and the
--ref-file / --dep-file that annotate it line for line.

The parent lists and checks the corpus where it is (any file system, through util.fs); the job
processes read local files only (a corpus elsewhere is copied first, see
corpus/local_inputs.py) with Python's own file functions: they never import TensorFlow.
"""

import os

from corpus import segmentation
from util import fs
from util.errors import InputError

# UTF-8 encoding of U+FFFD, used to tell genuine replacement characters in
# the corpus from the ones the decoder inserts.
_REPLACEMENT_BYTES = "\ufffd".encode("utf-8")


def iter_corpus_files(corpus_dir):
    """Return the sorted relative paths of regular, non-hidden corpus files.

    Hidden directories (e.g. .git) are skipped too.
    """
    if not fs.is_local(corpus_dir):
        top = corpus_dir.rstrip("/")
        names = [path[len(top) + 1:] for path in fs.walk_files(top)]
        return sorted(name for name in names
                      if not any(part.startswith(".") for part in name.split("/")))
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
    try:
        if not fs.exists(corpus_dir):
            raise InputError("--corpus-dir %s does not exist" % corpus_dir)
        if not fs.isdir(corpus_dir):
            raise InputError("--corpus-dir %s is not a directory" % corpus_dir)
        files = iter_corpus_files(corpus_dir)
        total_bytes = sum(fs.getsize(fs.join(corpus_dir, f)) for f in files)
    except fs.errors() as err:  # e.g. a file system TensorFlow does not know
        raise InputError("cannot read --corpus-dir %s: %s"
                         % (corpus_dir, fs.error_text(err))) from err
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
        with open_binary(path) as reader:
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
    except read_errors(path) as err:
        raise InputError("cannot read corpus file %s: %s"
                         % (path, fs.error_text(err))) from err


def check_decodable(corpus_dir, corpus_files):
    """--strict: InputError naming the first line with bytes that are not UTF-8 (which the
    build would otherwise replace, count and warn about), before any output is touched."""
    for name in corpus_files:
        path = fs.join(corpus_dir, name)
        try:
            with open_binary(path) as reader:
                for number, raw in enumerate(reader, 1):
                    _, bad = decode_line(raw)
                    if bad:
                        raise InputError(
                            "%s:%d: %d undecodable byte sequence(s) (not UTF-8); --strict "
                            "refuses them: convert the file to UTF-8 (e.g. iconv -f GB18030 "
                            "-t UTF-8), or drop --strict to have them replaced and counted"
                            % (path, number, bad))
        except read_errors(path) as err:
            raise InputError("cannot read corpus file %s: %s"
                             % (path, fs.error_text(err))) from err


def open_binary(path):
    """A local file with Python's open (job processes stay TensorFlow-free), any other
    (gs://, ram://, read by the parent only) through util.fs."""
    return open(path, "rb") if fs.is_local(path) else fs.open(path, "rb")


def read_errors(path):
    """What reading path may raise; util.fs's list (which imports TensorFlow) only for
    a path that is not local. Used in `except`, so evaluated only after an error."""
    return (OSError,) if fs.is_local(path) else fs.errors()


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


def check_annotation_files(corpus_dir, corpus_files, ref_file, dep_file):
    """Every corpus file's --ref-file / --dep-file must exist and match it line
    for line (same text once whitespace is removed): said before any output
    is touched, naming file and line."""
    for pattern, flag in ((ref_file, "--ref-file"), (dep_file, "--dep-file")):
        if not pattern:
            continue
        if "{path}" not in pattern and len(corpus_files) > 1:
            raise InputError("%s %s must contain {path} (the corpus file's path "
                             "relative to --corpus-dir): the corpus has %d files"
                             % (flag, pattern, len(corpus_files)))
        for name in corpus_files:
            _check_annotation_file(fs.join(corpus_dir, name),
                                   annotation_path(pattern, name), flag)


def _check_annotation_file(corpus_path, path, flag):
    if not fs.isfile(path):
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
