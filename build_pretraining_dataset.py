"""Turn a plain-text corpus into ELECTRA pre-training TFRecords.

The corpus is every regular, non-hidden file under --corpus-dir (recursively),
UTF-8 text with one sentence per line and, by default, an empty line between
documents (a paragraph per line: add --split-sentences). Lines are tokenized and packed into examples of at
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
"pos_ids", "ner_ids", "dep_ids"; see corpus/segmentation.py); the ids do
not change. The shards are `pretrain_data.tfrecord-<i>-of-<n>` in
--output-dir, next to a `dataset_info.json` that records how they were built.
Paths may be local or on any TensorFlow file system (gs://, ram://).

Example:
  python build_pretraining_dataset.py --corpus-dir my_corpus/ \\
      --vocab-file sample_data/vocab.txt --output-dir data/pretrain_tfrecords
"""

import argparse
import os
import sys

from corpus import segmentation
from corpus.build_jobs import TOKENIZER_CHOICES, JobError
from corpus.dataset_builder import build
from util.errors import InputError

# TensorFlow's C++ start-up chatter would drown the progress lines. It is
# imported only where the TFRecord files are written (corpus/shards.py).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


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
                             "recursively; hidden files are ignored); like every "
                             "path here, local or on a TensorFlow file system "
                             "(gs://, ram://)")
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
    parser.add_argument("--split-sentences", action="store_true",
                        help="split each line into its sentences (after 。！？；…, with their "
                             "closing quotes) before packing: for a corpus with one "
                             "paragraph per line (the official builder expects one "
                             "sentence per line)")
    parser.add_argument("--eval-share", type=float, default=0.0, metavar="FRACTION",
                        help="hold out this share of the examples (each drawn at random, "
                             "by --seed) as pretrain_eval.tfrecord-* beside the training "
                             "shards, which then lack them: do_eval evaluates on them by "
                             "default (default: 0, none held out, as the official builder)")
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
    parser.add_argument("--strict", action="store_true",
                        help="refuse a corpus with bytes that are not UTF-8 (naming the "
                             "file and line) instead of replacing and counting them")
    return parser



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
