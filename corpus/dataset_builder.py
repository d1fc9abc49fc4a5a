"""The builder's driver: validate flags, corpus and output dir, run the jobs, publish the
shards and dataset_info.json (the build behind build_pretraining_dataset.py).

Every path may be on any TensorFlow file system (gs://, ram://, local): the parent checks the
inputs where they are and writes the output there through util.fs; the TensorFlow-free job
processes get local copies of inputs kept elsewhere (corpus/local_inputs.py).
"""

import math
import os
import sys
import time

from corpus import local_inputs
from corpus import reader
from corpus import segmentation
from corpus.build_jobs import make_tokenizer, run_jobs, tokenizer_kind
from corpus.build_stats import format_count
from corpus.corpus_split import split_work
from corpus.example_builder import FEATURE_NAMES, MIN_RANDOM_TARGET
from corpus.shards import (EVAL_PREFIX, OUTPUT_PREFIX, commit_shards, discard_shards,
                           existing_outputs)
from util import fs
from util.errors import InputError
from util.io import atomic_write_json, check_writable_dir, format_duration

INFO_FILE = "dataset_info.json"

# Default shard count: one shard per this many corpus bytes, capped.
BYTES_PER_OUT_FILE = 32 * 1024 * 1024
MAX_DEFAULT_OUT_FILES = 1000


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
    if args.split_sentences and (args.ref_file or args.dep_file):
        raise InputError("--split-sentences changes the lines, and --%s annotates them line "
                         "for line: split the corpus and its annotations yourself, or drop "
                         "--split-sentences" % ("ref-file" if args.ref_file else "dep-file"))
    if not 0 <= args.eval_share < 1:
        raise InputError("--eval-share must be at least 0 and below 1 (the share of the "
                         "examples held out for evaluation, e.g. 0.02), got %g" % args.eval_share)
    if args.num_out_files is not None and args.num_out_files < args.num_processes:
        raise InputError(
            "--num-out-files (%d) must be at least --num-processes (%d): "
            "every job writes its own shards"
            % (args.num_out_files, args.num_processes))


def check_output_dir(args):
    """Refuse an output dir that is a file, inside the corpus, or in use."""
    output_dir = args.output_dir
    try:  # e.g. a file system TensorFlow does not know (a typo in gs://)
        is_file = fs.exists(output_dir) and not fs.isdir(output_dir)
    except fs.errors() as err:
        raise InputError("cannot use --output-dir %s: %s"
                         % (output_dir, fs.error_text(err))) from err
    if is_file:
        raise InputError("--output-dir %s exists and is not a directory"
                         % output_dir)
    if _is_inside(output_dir, args.corpus_dir):
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


def _is_inside(path, directory):
    """True if path is directory or below it (symbolic links resolved on a local disk)."""
    if fs.is_local(path) and fs.is_local(directory):
        directory = os.path.realpath(directory)
        return os.path.commonpath([directory, os.path.realpath(path)]) == directory
    if fs.scheme(path) != fs.scheme(directory):
        return False
    return (path.rstrip("/") + "/").startswith(directory.rstrip("/") + "/")


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
    """Create --output-dir and prove it writable (a probe file; on a local disk also some
    free space); with --overwrite delete our old shards."""
    check_writable_dir(args.output_dir, "--output-dir")
    if args.overwrite:
        for path in existing_outputs(args.output_dir):
            fs.remove(path)


def write_dataset_info(args, vocab_size, stats):
    """Write dataset_info.json atomically (see util.io.atomic_write)."""
    info = {
        "max_seq_length": args.max_seq_length,
        "num_out_files": args.num_out_files,
        "file_pattern": "%s-*-of-%d" % (OUTPUT_PREFIX, args.num_out_files),
        "vocab_size": vocab_size,
        "vocab_file": args.vocab_file and fs.abspath(args.vocab_file),
        "spm_model_file": args.spm_model_file and fs.abspath(args.spm_model_file),
        "do_lower_case": args.do_lower_case,
        "strip_accents": (args.do_lower_case if args.strip_accents is None
                          else args.strip_accents),
        "blanks_separate_docs": args.blanks_separate_docs,
        "tokenizer": args.tokenizer,
        "seed": args.seed,
        "num_processes": args.num_processes,
        "corpus_dir": fs.abspath(args.corpus_dir),
        "stats": stats.summary(),
    }
    if args.split_sentences:  # (absent otherwise, as below)
        info["split_sentences"] = True
    if args.eval_share:
        info["eval_share"] = args.eval_share
        info["eval_file_pattern"] = ("%s-*-of-%d" % (EVAL_PREFIX, args.num_processes)
                                     if stats.held_out_examples else None)
        info["stats"].update(held_out_examples=stats.held_out_examples,
                             held_out_tokens=stats.held_out_tokens)
    if args.segmenter != "none":  # absent otherwise: the plain build's info is unchanged
        info["segmenter"] = args.segmenter
        info["ref_file"] = args.ref_file
        info["linguistic_labels"] = args.linguistic_labels
        info["dep_file"] = args.dep_file
        info["features"] = sorted(FEATURE_NAMES + segmentation.feature_names(
            args.linguistic_labels))
        info["whole_word"] = stats.word_summary()
    atomic_write_json(fs.join(args.output_dir, INFO_FILE), info)


TRUNCATION_WARNING_SHARE = 0.2  # a build that drops more of the corpus's tokens warns


def warn_about_truncation(args, stats):
    """On stderr, when the packing dropped more than a fifth of the tokens: what share, the
    likely cause (lines longer than an example: paragraphs, not sentences) and the fix."""
    total = stats.tokens + stats.truncated_tokens
    share = stats.truncated_tokens / total if total else 0.0
    if share <= TRUNCATION_WARNING_SHARE:
        return
    fix = ("rerun with --split-sentences (it splits lines after 。！？；… and their closing "
           "quotes) or split the lines yourself" if not args.split_sentences else
           "its sentences are still longer than --max-seq-length %d: split them further, "
           "or raise --max-seq-length" % args.max_seq_length)
    print("WARNING: %.0f%% of the corpus's tokens were dropped (%s of %s): a line that does "
          "not fit the example being filled is cut at --max-seq-length, as the official "
          "builder does, which expects one sentence per line (an empty line between "
          "documents); lines of whole paragraphs lose most of their text. %s"
          % (100 * share, format_count(stats.truncated_tokens), format_count(total),
             fix[0].upper() + fix[1:]), file=sys.stderr, flush=True)


def print_summary(args, stats, elapsed):
    """Print the final totals of all jobs."""
    print("done: %s files, %s lines, %s documents -> %s examples, %s tokens "
          "(%.1f tokens/example; %s tokens truncated: the end of the sentence that "
          "overflows an example is dropped, as the official builder does)"
          % (format_count(stats.files), format_count(stats.lines),
             format_count(stats.documents), format_count(stats.examples),
             format_count(stats.tokens), stats.tokens / stats.examples,
             format_count(stats.truncated_tokens)), flush=True)
    warn_about_truncation(args, stats)
    if args.eval_share and stats.held_out_examples:
        print("held out for evaluation: %s of the examples (%.1f%%, --eval-share %g), in "
              "%s-*-of-%d; do_eval reads them by default" % (
                  format_count(stats.held_out_examples),
                  100.0 * stats.held_out_examples / stats.examples, args.eval_share,
                  EVAL_PREFIX, args.num_processes), flush=True)
    elif args.eval_share:
        print("WARNING: --eval-share %g held out none of the %s examples: raise it; do_eval "
              "will evaluate on the training shards"
              % (args.eval_share, format_count(stats.examples)), file=sys.stderr, flush=True)
    if args.segmenter != "none":
        print("words (%s): %s; word boundaries inside a WordPiece token (token-level "
              "starts used there): %s; tokens not aligned to their line: %s"
              % (args.segmenter, format_count(stats.words),
                 format_count(stats.boundary_mismatches),
                 format_count(stats.unaligned_tokens)), flush=True)
    if stats.bad_by_file:
        print("warning: %s (--strict refuses them)" % stats.bad_bytes_message(), flush=True)
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
    corpus_files, total_bytes = reader.check_corpus(args.corpus_dir)
    reader.check_annotation_files(args.corpus_dir, corpus_files, args.ref_file,
                                  args.dep_file)
    if args.strict:
        reader.check_decodable(args.corpus_dir, corpus_files)
    if args.num_out_files is None:
        args.num_out_files = default_num_out_files(total_bytes, args.num_processes)
    work_dir = local_inputs.make_work_dir() if local_inputs.needs_work_dir(args) else None
    try:
        jobs = local_inputs.job_args(args, corpus_files, work_dir)
        jobs.job_pieces = split_work(jobs.corpus_dir, corpus_files,
                                     args.num_processes, args.blanks_separate_docs)
        # Only now, with tokenizer and corpus known to be usable, touch old output.
        prepare_output_dir(args)
        try:
            stats = run_jobs(jobs)
            if stats.examples == 0:
                raise InputError(
                    "--corpus-dir %s yielded no examples: its %d file(s) contain "
                    "no text the tokenizer keeps" % (args.corpus_dir, stats.files))
            if stats.held_out_examples:
                commit_shards(jobs.shard_dir, args.output_dir, args.num_processes,
                              EVAL_PREFIX)
            commit_shards(jobs.shard_dir, args.output_dir, args.num_out_files)
        finally:
            discard_shards(jobs.shard_dir, args.num_out_files)
            discard_shards(jobs.shard_dir, args.num_processes, EVAL_PREFIX)
    finally:
        local_inputs.remove_work_dir(work_dir)
    write_dataset_info(args, vocab_size, stats)
    print_summary(args, stats, time.monotonic() - start)
    return stats
