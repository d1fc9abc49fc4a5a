"""One job of the builder: tokenize its run of the corpus, build and serialise the examples,
write its shards; and running the jobs, in child processes if more than one.

No TensorFlow here: each job process would pay ~3 s to import it (see corpus/shards.py).
"""

import contextlib
import dataclasses
import multiprocessing
import os
import queue
import random
import traceback

from corpus import example_serialization
from corpus import segmentation
from corpus.build_stats import Progress, Stats, format_count
from corpus.example_builder import ExampleBuilder
from corpus import sentences
from corpus.reader import annotation_lines, annotation_path, iter_lines
from corpus.shards import EVAL_PREFIX, ShardWriter
from model import fast_tokenization
from model import tokenization
from util.errors import InputError

# Lines handed to the tokenizer at once: large enough that the fast path's
# per-call overhead vanishes, small enough to keep memory flat.
LINES_PER_BATCH = 1024

TOKENIZER_CHOICES = ("auto", "fast", "python")


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
                        progress, ref_path=None, dep_path=None, shown_path=None,
                        split_sentences=False):
    """Yield the features dicts built from one WorkPiece, updating `stats`.

    `path` is the piece's (local) file; shown_path, if other, the name it has in
    messages and stats (the file where the user keeps it, e.g. gs://). Lines go to the builder in batches of
    LINES_PER_BATCH, which changes nothing but the speed. ref_path / dep_path:
    the piece's --ref-file / --dep-file (checked beforehand to match it line
    for line), read in step with it. split_sentences: each line goes to the builder as
    its sentences, one line each (corpus/sentences.py; not with annotations).
    """
    in_document = False
    batch = []
    notes = []
    refs = annotation_lines(ref_path, piece.first_line)
    deps = annotation_lines(dep_path, piece.first_line)
    shown_path = shown_path or path
    for number, line, num_bytes, bad in iter_lines(
            path, piece.start, piece.end, piece.first_line):
        ref, dep = next(refs), next(deps)
        stats.lines += 1
        stats.bytes += num_bytes
        if bad:
            count, first_line = stats.bad_by_file.get(shown_path, (0, number))
            stats.bad_by_file[shown_path] = [count + bad, first_line]
        if line or blanks_separate_docs:
            if line:
                in_document = True
            elif in_document:
                stats.documents += 1
                in_document = False
            parts = sentences.split_sentences(line) if split_sentences and line else [line]
            batch.extend(parts)
            notes.extend([(ref and segmentation.ref_words(ref),
                           dep and segmentation.dep_words(dep, dep_path, number))]
                         * len(parts))
            if len(batch) >= LINES_PER_BATCH:
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
    i % num_processes == job_id as `.tmp` files in `args.shard_dir` (removed if
    the job fails). `args` are corpus.local_inputs.job_args: local paths only.
    `args.num_out_files` is the resolved shard count; see `build`. With args.eval_share
    each example is held out with that probability (a draw of its own generator, so the
    examples are built as without it) into the job's one pretrain_eval shard.
    """
    rng = random.Random(args.seed + job_id)
    held_out_rng = random.Random("held-out %d" % (args.seed + job_id))
    tokenizer = make_tokenizer(args)
    pieces = list(args.job_pieces[job_id])
    rng.shuffle(pieces)
    annotator = make_annotator(args, tokenizer)
    builder = ExampleBuilder(tokenizer, args.max_seq_length, rng, annotator)
    stats = Stats()
    progress = Progress(job_id, sum(1 for piece in pieces if piece.start == 0),
                        sum(piece.end - piece.start for piece in pieces))
    with contextlib.ExitStack() as stack:
        writer = stack.enter_context(ShardWriter(args.shard_dir, job_id, args.num_processes,
                                                 args.num_out_files))
        held_out_writer = stack.enter_context(ShardWriter(
            args.shard_dir, job_id, args.num_processes, args.num_processes,
            EVAL_PREFIX)) if args.eval_share else None
        for piece in pieces:
            path = os.path.join(args.corpus_dir, piece.path)
            shown = os.path.join(args.shown_corpus_dir, piece.path)
            for features in examples_from_piece(
                    path, piece, builder, args.blanks_separate_docs, stats,
                    progress, annotation_path(args.ref_file, piece.path),
                    annotation_path(args.dep_file, piece.path), shown,
                    split_sentences=args.split_sentences):
                tokens = sum(features["input_mask"])
                if held_out_writer and held_out_rng.random() < args.eval_share:
                    held_out_writer.write(example_serialization.serialize_example(features))
                    stats.held_out_examples += 1
                    stats.held_out_tokens += tokens
                else:
                    writer.write(example_serialization.serialize_example(features))
                stats.examples += 1
                stats.tokens += tokens
            if piece.start == 0:  # a file cut between jobs counts once
                stats.files += 1
            report_bad_bytes(job_id, shown, stats)
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
