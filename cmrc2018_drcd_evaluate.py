"""Score CMRC 2018 / DRCD span-extraction predictions as the official CMRC 2018 evaluator does.

Usage:
  python cmrc2018_drcd_evaluate.py DATASET.json PREDICTIONS.json [--output FILE]
      [--wide-punctuation]

DATASET is SQuAD-format JSON (CMRC 2018 or DRCD):
  {"data": [{"paragraphs": [{"context": ..., "qas": [
      {"id": ..., "question": ..., "answers": [{"text": ..., "answer_start": 0}]}]}]}]}
PREDICTIONS is a JSON object {question_id: answer_text}. The script prints one
JSON object {"AVERAGE", "F1", "EM", "TOTAL", "SKIP"}: F1, EM and AVERAGE are
percentages (rounded to 3 decimals, as the official script prints them),
AVERAGE = (F1 + EM) / 2, TOTAL counts the scored questions and SKIP those
without a prediction (they count in TOTAL and score 0).

The metric is finetune/cmrc_metric.py (its docstring lists the official rules and the
two places this differs: NLTK's tokenizer without punkt sentence splitting, so it works
offline, and questions without answers left out instead of crashing). The runner scores
with the same code. --wide-punctuation drops a wider punctuation set (every ASCII mark,
"…", more full-width brackets); its output then carries a "NOTE" saying the scores are not
comparable with published ones.
"""

import argparse
import json
import sys

from finetune.cmrc_metric import (  # noqa: F401 (the scoring functions, re-exported)
    NOT_COMPARABLE, OFFICIAL_PUNCTUATION, RESULT_KEYS, WIDE_PUNCTUATION, EvaluationError,
    calc_em_score, calc_f1_score, check_dataset, check_predictions, evaluate,
    longest_common_substring_length, mixed_segmentation, remove_punctuation,
    unknown_prediction_ids)
from util import fs
from util.io import atomic_write_text


class InputError(Exception):
    """A file could not be read or parsed; the message is ready to print."""


def _line_and_column(data, offset):
    """1-based (line, column) of a byte or character offset in `data`."""
    newline = b"\n" if isinstance(data, bytes) else "\n"
    line = data.count(newline, 0, offset) + 1
    column = offset - (data.rfind(newline, 0, offset) + 1) + 1
    return line, column


def load_json(path):
    """Parse a UTF-8 JSON file; raise InputError as "FILE:line:col: message"."""
    try:
        data = fs.read_bytes(path)  # local, gs:// or ram://
    except fs.errors() as err:
        raise InputError("%s: %s" % (path, fs.error_text(err))) from None
    try:
        # utf-8-sig: files saved by some Windows editors start with a BOM.
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line, column = _line_and_column(data, err.start)
        raise InputError("%s:%d:%d: not valid UTF-8 (%s)"
                         % (path, line, column, err.reason)) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise InputError("%s:%d:%d: %s"
                         % (path, err.lineno, err.colno, err.msg)) from None


def format_result(result):
    """The result as one JSON line, percentages rounded to 3 decimals (and the NOTE of a
    wide-punctuation result)."""
    keys = RESULT_KEYS + (("NOTE",) if "NOTE" in result else ())
    rounded = {key: round(result[key], 3) if isinstance(result[key], float)
               else result[key] for key in keys}
    return json.dumps(rounded, ensure_ascii=False)


def _parse_args(argv):
    """Command-line arguments."""
    parser = argparse.ArgumentParser(
        description="Score CMRC 2018 / DRCD predictions (F1 and EM) like the "
                    "official CMRC 2018 evaluator.")
    parser.add_argument("dataset", help="SQuAD-format dataset JSON")
    parser.add_argument("predictions",
                        help="JSON object {question_id: answer_text}")
    parser.add_argument("--output", help="also write the result JSON here")
    parser.add_argument("--wide-punctuation", action="store_true",
                        help="drop every ASCII punctuation mark, '…' and more full-width "
                             "brackets too (NOT the official metric: scores are not "
                             "comparable with published ones)")
    return parser.parse_args(argv)


def _evaluate_files(args):
    """Load both files, warn about stray ids and return the result dict."""
    dataset = load_json(args.dataset)
    predictions = load_json(args.predictions)
    try:
        check_dataset(dataset)
    except EvaluationError as err:
        raise InputError("%s: %s" % (args.dataset, err)) from None
    try:
        check_predictions(predictions)
    except EvaluationError as err:
        raise InputError("%s: %s" % (args.predictions, err)) from None
    try:
        unknown = unknown_prediction_ids(dataset, predictions)
        result = evaluate(dataset, predictions, args.wide_punctuation)
    except EvaluationError as err:
        raise InputError("%s: %s" % (args.dataset, err)) from None
    if unknown:
        print("warning: %d prediction id(s) not in the dataset were ignored "
              "(first: %r)" % (len(unknown), unknown[0]), file=sys.stderr)
    if args.wide_punctuation:
        print("warning: %s" % NOT_COMPARABLE, file=sys.stderr)
    return result


def main(argv=None):
    """Run the evaluator; return the process exit status."""
    args = _parse_args(argv)
    try:
        if args.output and fs.isdir(args.output):  # before the scores are printed
            raise InputError("--output %s is a directory; give the path of a file to write "
                             "the scores to" % args.output)
        result = _evaluate_files(args)
    except InputError as err:
        print("error: %s" % err, file=sys.stderr)
        return 2
    line = format_result(result)
    print(line)
    if args.output:
        try:
            atomic_write_text(args.output, line + "\n")
        except fs.errors() as err:
            print("error: cannot write %s: %s"
                  % (args.output, fs.error_text(err)), file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
