"""Score span-extraction predictions the way the official CMRC 2018 evaluator does.

Usage:
  python cmrc2018_drcd_evaluate.py DATASET.json PREDICTIONS.json [--output FILE]

DATASET is SQuAD-format JSON (CMRC 2018 or DRCD):
  {"data": [{"paragraphs": [{"context": ..., "qas": [
      {"id": ..., "question": ..., "answers": [{"text": ..., "answer_start": 0}]}]}]}]}
PREDICTIONS is a JSON object {question_id: answer_text}. The script prints one
JSON object {"AVERAGE", "F1", "EM", "TOTAL", "SKIP"}: F1, EM and AVERAGE are
percentages (rounded to 3 decimals, as the official script prints them),
AVERAGE = (F1 + EM) / 2, TOTAL counts the scored questions and SKIP those
without a prediction (they count in TOTAL and score 0).

Scoring, as in the official evaluator:
  * Text is lower-cased and split into segments: every Chinese character and
    every punctuation character is a segment of its own, everything in between
    is split into English words (alphanumeric runs stay whole, so a partial
    English word never matches).
  * F1 against one reference uses the longest common *substring* (contiguous
    run) of the punctuation-free segment lists, not the longest common
    subsequence; EM compares the punctuation-free strings.
  * A question's score is the best over its reference answers.

Differences from the official script, all deliberate:
  * English runs are split by a small built-in tokenizer instead of NLTK's
    word_tokenize, so the script works offline with the standard library.
  * The punctuation set (PUNCTUATION) is wider than the official list; the
    official "……" entry, which can never match a single character, is "…".
  * Questions with no reference answers (the official script crashes on them)
    are left out of TOTAL.
"""

import argparse
import json
import re
import sys

from util import fs
from util.io import atomic_write_text

# Characters that are punctuation for scoring: each one is a segment of its
# own, and all of them are dropped before F1 and EM are computed. This is the
# official CMRC 2018 list (Chinese full-width punctuation plus a few ASCII
# symbols) widened with the remaining full-width brackets/quotes and every
# other ASCII punctuation character, so that stray quotes, dots or brackets
# around an answer never cost points.
PUNCTUATION = frozenset(
    # Chinese / full-width punctuation.
    "，。：？！“”；‘’《》…·、「」（）－～﹃﹄【】『』"
    # ASCII punctuation (all of string.punctuation).
    "-:_*^/\\~`+=,'\"()[]{}.!?;#$%&<>@|"
)

# The official evaluator treats only the CJK Unified Ideographs block as
# Chinese (U+4E00..U+9FA5); rarer ideographs fall into the English buffer.
_CHINESE_CHAR = re.compile("[\u4e00-\u9fa5]")

# Stand-in for NLTK's word_tokenize on the non-Chinese runs: alphanumeric
# runs stay together, any other visible character is a token of its own and
# whitespace only separates. ASCII punctuation never reaches it (it is in
# PUNCTUATION), so the two tokenizers agree on what matters for scoring.
_ENGLISH_TOKEN = re.compile(r"\w+|[^\w\s]")

RESULT_KEYS = ("AVERAGE", "F1", "EM", "TOTAL", "SKIP")


class EvaluationError(ValueError):
    """The dataset or the predictions do not have the expected shape."""


# --------------------------------------------------------------------------
# Text normalisation and segmentation.
# --------------------------------------------------------------------------

def _normalise(text):
    """Lower-case and strip, as both official normalisers do first."""
    return str(text).lower().strip()


def _split_english(buffer):
    """Split a run of non-Chinese, non-punctuation characters into words."""
    return _ENGLISH_TOKEN.findall("".join(buffer))


def mixed_segmentation(text, rm_punc=False):
    """Split text into Chinese characters, punctuation marks and English words.

    With rm_punc=True punctuation characters are dropped before segmenting.
    Like the official evaluator, a dropped character does not end the English
    word it sits in: "ω-force" gives ["ωforce"], not ["ω", "force"].
    """
    segments = []
    buffer = []
    for char in _normalise(text):
        is_punctuation = char in PUNCTUATION
        if is_punctuation and rm_punc:
            continue
        if is_punctuation or _CHINESE_CHAR.match(char):
            segments.extend(_split_english(buffer))
            buffer = []
            segments.append(char)
        else:
            buffer.append(char)
    segments.extend(_split_english(buffer))
    return segments


def remove_punctuation(text):
    """Lower-case and strip text and drop every character in PUNCTUATION."""
    return "".join(char for char in _normalise(text) if char not in PUNCTUATION)


# --------------------------------------------------------------------------
# Per-question scores.
# --------------------------------------------------------------------------

def longest_common_substring_length(first, second):
    """Length of the longest contiguous run shared by two sequences.

    Dynamic programming over one row at a time: run[j] is the length of the
    common run ending at the current item of `first` and second[j - 1].
    """
    best = 0
    previous = [0] * (len(second) + 1)
    for item in first:
        current = [0] * (len(second) + 1)
        for j, other in enumerate(second, start=1):
            if item == other:
                current[j] = previous[j - 1] + 1
                best = max(best, current[j])
        previous = current
    return best


def f1_against_reference(reference, prediction):
    """F1 of one prediction against one reference answer (0.0 to 1.0)."""
    reference_segments = mixed_segmentation(reference, rm_punc=True)
    prediction_segments = mixed_segmentation(prediction, rm_punc=True)
    overlap = longest_common_substring_length(reference_segments,
                                              prediction_segments)
    # A zero overlap also covers empty segment lists (e.g. punctuation only),
    # which would otherwise divide by zero.
    if overlap == 0:
        return 0.0
    precision = overlap / len(prediction_segments)
    recall = overlap / len(reference_segments)
    return 2 * precision * recall / (precision + recall)


def em_against_reference(reference, prediction):
    """1 if the punctuation-free texts are equal, else 0."""
    return int(remove_punctuation(reference) == remove_punctuation(prediction))


def calc_f1_score(answers, prediction):
    """Best F1 of the prediction over the reference answers (0.0 if none)."""
    return max((f1_against_reference(answer, prediction) for answer in answers),
               default=0.0)


def calc_em_score(answers, prediction):
    """Best exact match of the prediction over the reference answers (0 or 1)."""
    return max((em_against_reference(answer, prediction) for answer in answers),
               default=0)


# --------------------------------------------------------------------------
# Reading the dataset and predictions.
# --------------------------------------------------------------------------

def _expect_list(container, key, where):
    """container[key] if it is a list, else an EvaluationError naming `where`."""
    if not isinstance(container, dict):
        raise EvaluationError("%s must be a JSON object" % where)
    value = container.get(key)
    if not isinstance(value, list):
        raise EvaluationError('%s has no "%s" list' % (where, key))
    return value


def _question(qa, where):
    """(id, [reference texts]) of one "qas" entry, validated."""
    if not isinstance(qa, dict):
        raise EvaluationError("%s must be a JSON object" % where)
    question_id = qa.get("id")
    if not isinstance(question_id, str):
        raise EvaluationError('%s has no string "id"' % where)
    answers = _expect_list(qa, "answers", where)
    texts = []
    for index, answer in enumerate(answers):
        text = answer.get("text") if isinstance(answer, dict) else None
        if not isinstance(text, str):
            raise EvaluationError('%s.answers[%d] has no string "text"'
                                  % (where, index))
        texts.append(text)
    # The official script strips ids, so " Q1 " in the dataset is "Q1".
    return question_id.strip(), texts


def iter_questions(dataset):
    """Yield (question id, [reference texts]) for every question in the dataset."""
    articles = _expect_list(dataset, "data", "the dataset")
    for i, article in enumerate(articles):
        paragraphs = _expect_list(article, "paragraphs", "data[%d]" % i)
        for j, paragraph in enumerate(paragraphs):
            where = "data[%d].paragraphs[%d]" % (i, j)
            for k, qa in enumerate(_expect_list(paragraph, "qas", where)):
                yield _question(qa, "%s.qas[%d]" % (where, k))


def check_predictions(predictions):
    """Raise EvaluationError unless predictions maps ids to answer strings."""
    if not isinstance(predictions, dict):
        raise EvaluationError("predictions must be a JSON object "
                              "{question_id: answer_text}")
    for key, value in predictions.items():
        if not isinstance(value, str):
            raise EvaluationError("prediction for %r must be a string, got %s"
                                  % (key, type(value).__name__))


def unknown_prediction_ids(dataset, predictions):
    """Sorted prediction ids that match no question in the dataset."""
    known = {question_id for question_id, _ in iter_questions(dataset)}
    return sorted(set(predictions) - known)


# --------------------------------------------------------------------------
# Whole-dataset evaluation.
# --------------------------------------------------------------------------

def evaluate(dataset, predictions):
    """Score predictions {id: text} against a parsed SQuAD-format dataset.

    Returns {"AVERAGE", "F1", "EM"} as unrounded percentages plus "TOTAL"
    (questions scored) and "SKIP" (of those, the ones without a prediction,
    which score 0). Questions without reference answers are not counted.
    """
    check_predictions(predictions)
    f1_sum = em_sum = 0.0
    total = skipped = 0
    for question_id, answers in iter_questions(dataset):
        if not answers:
            continue
        total += 1
        if question_id not in predictions:
            skipped += 1
            continue
        prediction = predictions[question_id]
        f1_sum += calc_f1_score(answers, prediction)
        em_sum += calc_em_score(answers, prediction)
    # An empty dataset scores 0 rather than dividing by zero.
    f1 = 100.0 * f1_sum / total if total else 0.0
    em = 100.0 * em_sum / total if total else 0.0
    return {"AVERAGE": (f1 + em) / 2, "F1": f1, "EM": em,
            "TOTAL": total, "SKIP": skipped}


# --------------------------------------------------------------------------
# Command line.
# --------------------------------------------------------------------------

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
    """The result as one JSON line, percentages rounded to 3 decimals."""
    rounded = {key: round(result[key], 3) if isinstance(result[key], float)
               else result[key] for key in RESULT_KEYS}
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
    return parser.parse_args(argv)


def _evaluate_files(args):
    """Load both files, warn about stray ids and return the result dict."""
    dataset = load_json(args.dataset)
    predictions = load_json(args.predictions)
    try:
        _expect_list(dataset, "data", "the dataset")
    except EvaluationError as err:
        raise InputError("%s: %s" % (args.dataset, err)) from None
    try:
        check_predictions(predictions)
    except EvaluationError as err:
        raise InputError("%s: %s" % (args.predictions, err)) from None
    try:
        unknown = unknown_prediction_ids(dataset, predictions)
        result = evaluate(dataset, predictions)
    except EvaluationError as err:
        raise InputError("%s: %s" % (args.dataset, err)) from None
    if unknown:
        print("warning: %d prediction id(s) not in the dataset were ignored "
              "(first: %r)" % (len(unknown), unknown[0]), file=sys.stderr)
    return result


def main(argv=None):
    """Run the evaluator; return the process exit status."""
    args = _parse_args(argv)
    try:
        result = _evaluate_files(args)
    except InputError as err:
        print("error: %s" % err, file=sys.stderr)
        return 2
    line = format_result(result)
    print(line)
    if args.output:
        try:
            atomic_write_text(args.output, line + "\n")
        except OSError as err:
            print("error: cannot write %s: %s"
                  % (args.output, err.strerror or err), file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
