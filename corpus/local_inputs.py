"""Local copies of the builder's inputs that live on another file system (gs://, ram://).

The job processes read the corpus, its --ref-file / --dep-file and the vocab with Python's own
file functions and never import TensorFlow (its start-up costs ~3 s per process, and ram://
exists only inside the process that wrote it). So the parent, which checked those inputs where
they are, copies each one that is not local into a local work dir and gives the jobs a copy of
the flags that points there; local inputs are read where they are, as before. The jobs' `.tmp`
shards go to the work dir as well when --output-dir is not local (see corpus/shards.py).
"""

import argparse
import os
import shutil
import tempfile

from corpus.reader import annotation_path
from util import fs

# Flags naming a file the jobs read, and a corpus-file pattern ({path}) the jobs read.
_FILE_FLAGS = ("vocab_file", "spm_model_file")
_PATTERN_FLAGS = ("ref_file", "dep_file")


def needs_work_dir(args):
    """True if an input or the output of `args` is not on the local disk."""
    paths = [args.corpus_dir, args.output_dir] + [
        getattr(args, flag) for flag in _FILE_FLAGS + _PATTERN_FLAGS]
    return any(path and not fs.is_local(path) for path in paths)


def make_work_dir():
    """A fresh local temp dir for the copies (remove it with remove_work_dir)."""
    return tempfile.mkdtemp(prefix="build_pretraining_dataset_")


def remove_work_dir(work_dir):
    if work_dir:
        shutil.rmtree(work_dir, ignore_errors=True)


def job_args(args, corpus_files, work_dir=None):
    """A copy of `args` for the jobs: every input that is not local replaced by a copy under
    work_dir, `shard_dir` where the jobs write their `.tmp` shards and `shown_corpus_dir`,
    the --corpus-dir as given (it names files in messages and dataset_info.json)."""
    local = argparse.Namespace(**vars(args))
    local.shown_corpus_dir = args.corpus_dir
    local.shard_dir = args.output_dir
    if work_dir is None:
        return local
    if not fs.is_local(args.corpus_dir):
        local.corpus_dir = os.path.join(work_dir, "corpus")
        for name in corpus_files:
            _copy(fs.join(args.corpus_dir, name), os.path.join(local.corpus_dir, name))
    for flag in _PATTERN_FLAGS:
        pattern = getattr(args, flag)
        if pattern and not fs.is_local(pattern):
            local_pattern = os.path.join(work_dir, flag, "{path}")
            for name in corpus_files:
                _copy(annotation_path(pattern, name), annotation_path(local_pattern, name))
            setattr(local, flag, local_pattern)
    for flag in _FILE_FLAGS:
        path = getattr(args, flag)
        if path and not fs.is_local(path):
            setattr(local, flag, _copy(path, os.path.join(work_dir, flag, fs.basename(path))))
    if not fs.is_local(args.output_dir):
        local.shard_dir = os.path.join(work_dir, "shards")
        os.makedirs(local.shard_dir)
    return local


def _copy(source, local_path):
    """Copy one file from any file system to local_path; return local_path."""
    os.makedirs(os.path.dirname(local_path), exist_ok=True)
    fs.copy(source, local_path, overwrite=True)
    return local_path
