"""The CMRC 2018 / DRCD span metric (EM and F1), computed as the official CMRC 2018 evaluator
computes it. The one implementation: cmrc2018_drcd_evaluate.py (the CLI), the runner's QA
scorer (finetune/qa.py) and the results tables built from its output all call `evaluate`.

Official rules (cmrc2018_evaluate.py of the CMRC 2018 release):
  * Text is lower-cased and stripped. Every character matching [\u4e00-\u9fa5] or in the
    punctuation list is a segment of its own; each run of other characters in between goes
    through NLTK's word tokenizer. For F1 the listed punctuation is dropped before
    segmenting, so a dropped character does not split an English run ("ω-force" -> "ωforce").
  * The punctuation list has 33 entries (OFFICIAL_PUNCTUATION). One of them, "……", is two
    characters long and is compared with single characters, so it never matches: "…" is
    not punctuation. ASCII , . ( ) ' " ! ? ; and the quote ‘ are not in it either, so they
    stay in the text (NLTK makes most of them tokens of their own).
  * F1 against one reference: longest common contiguous run of segments (substring, not
    subsequence) -> precision and recall -> F1 (0 when nothing is shared). EM: the
    punctuation-free strings are equal. A question scores the max over its references; a
    question without a prediction counts in SKIP and scores 0; F1 and EM are averages over
    all questions x 100, AVERAGE their mean.

What differs from the official script, and why:
  * NLTK is called as word_tokenize(run, preserve_line=True). The official call
    word_tokenize(run) first splits the run into sentences with NLTK's punkt model, which is
    downloaded data (not installed with nltk, so not available offline). The only thing that
    sentence splitting changes in the tokens is a period that ends a sentence in the middle
    of a run: the official call makes it a token of its own ("it works. then" -> it, works,
    ., then), ours leaves it on its word (it, works., then); a period at the end of the run,
    "!" and "?" are split off either way. EM never tokenizes. How rare such a period is in
    the real CMRC 2018 and DRCD dev sets: README ("Score QA predictions").
  * A question without reference answers makes the official script crash (max of an empty
    list); here it is left out of TOTAL.
  * Predictions must be strings (the official script str()s whatever it finds).

wide_punctuation=True (cmrc2018_drcd_evaluate.py --wide-punctuation) drops a wider set of
punctuation (WIDE_PUNCTUATION: every ASCII punctuation mark, "…", ‘ and more full-width
brackets) as this toolkit's evaluator did before; its scores are NOT comparable with
published CMRC 2018 / DRCD results.
"""

import re

# The official sp_char list, in its order (33 entries; "……" is one two-character entry).
OFFICIAL_PUNCTUATION = (
    "-", ":", "_", "*", "^", "/", "\\", "~", "`", "+", "=",
    "，", "。", "：", "？", "！", "“", "”", "；", "’", "《", "》", "……", "·", "、",
    "「", "」", "（", "）", "－", "～", "『", "』")
# Membership of one character: the same answers as the official `char in sp_char`.
_OFFICIAL_SET = frozenset(OFFICIAL_PUNCTUATION)
# The widened set (not comparable with published scores): Chinese / full-width marks plus
# every ASCII punctuation character (string.punctuation).
WIDE_PUNCTUATION = frozenset(
    "，。：？！“”；‘’《》…·、「」（）－～﹃﹄【】『』"
    "-:_*^/\\~`+=,'\"()[]{}.!?;#$%&<>@|")

# The official test for a Chinese character (CJK Unified Ideographs up to U+9FA5 only).
_CHINESE_CHAR = re.compile("[\u4e00-\u9fa5]")
RESULT_KEYS = ("AVERAGE", "F1", "EM", "TOTAL", "SKIP")
NOT_COMPARABLE = ("wide punctuation: these scores are NOT comparable with published "
                  "CMRC 2018 / DRCD results (drop --wide-punctuation for the official metric)")


class EvaluationError(ValueError):
    """The dataset or the predictions do not have the expected shape."""


def punctuation_set(wide_punctuation=False):
    return WIDE_PUNCTUATION if wide_punctuation else _OFFICIAL_SET


_word_tokenize = None


def word_tokenize(run):
    """NLTK's word tokenizer on one non-Chinese run, without the punkt sentence splitter
    (see the module docstring). NLTK is imported on first use: it takes seconds."""
    global _word_tokenize
    if _word_tokenize is None:
        from nltk.tokenize import word_tokenize as nltk_word_tokenize
        _word_tokenize = nltk_word_tokenize
    return _word_tokenize(run, preserve_line=True)


def _normalise(text):
    return str(text).lower().strip()


def mixed_segmentation(text, rm_punc=False, wide_punctuation=False):
    """Chinese characters, punctuation marks and NLTK tokens of the runs in between; with
    rm_punc the punctuation is dropped first (it then does not end a run)."""
    punctuation = punctuation_set(wide_punctuation)
    segments, run = [], ""
    for char in _normalise(text):
        if rm_punc and char in punctuation:
            continue
        if _CHINESE_CHAR.match(char) or char in punctuation:
            if run:
                segments.extend(word_tokenize(run))
                run = ""
            segments.append(char)
        else:
            run += char
    if run:
        segments.extend(word_tokenize(run))
    return segments


def remove_punctuation(text, wide_punctuation=False):
    """Lower-cased, stripped text without the punctuation characters."""
    punctuation = punctuation_set(wide_punctuation)
    return "".join(char for char in _normalise(text) if char not in punctuation)


def longest_common_substring_length(first, second):
    """Length of the longest contiguous run shared by two sequences (one DP row at a time:
    row[j] is the length of the common run ending at the current item and second[j-1])."""
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


def f1_against_reference(reference, prediction, wide_punctuation=False):
    """F1 (0..1) of one prediction against one reference answer."""
    reference_segments = mixed_segmentation(reference, True, wide_punctuation)
    prediction_segments = mixed_segmentation(prediction, True, wide_punctuation)
    overlap = longest_common_substring_length(reference_segments, prediction_segments)
    if overlap == 0:  # also covers empty segment lists
        return 0.0
    precision = overlap / len(prediction_segments)
    recall = overlap / len(reference_segments)
    return 2 * precision * recall / (precision + recall)


def calc_f1_score(answers, prediction, wide_punctuation=False):
    """Best F1 of the prediction over the reference answers (0.0 if there are none)."""
    return max((f1_against_reference(answer, prediction, wide_punctuation)
                for answer in answers), default=0.0)


def calc_em_score(answers, prediction, wide_punctuation=False):
    """1 if the punctuation-free prediction equals a punctuation-free reference, else 0."""
    target = remove_punctuation(prediction, wide_punctuation)
    return int(any(remove_punctuation(answer, wide_punctuation) == target
                   for answer in answers))


# ----------------------------------------------------------------------------- datasets

def _expect_list(container, key, where):
    """container[key] if it is a list, else an EvaluationError naming `where`."""
    if not isinstance(container, dict):
        raise EvaluationError("%s must be a JSON object" % where)
    value = container.get(key)
    if not isinstance(value, list):
        raise EvaluationError('%s has no "%s" list' % (where, key))
    return value


def check_dataset(dataset):
    """EvaluationError unless dataset has a "data" list."""
    _expect_list(dataset, "data", "the dataset")


def _question(qa, where):
    """(id, [reference texts]) of one "qas" entry, validated."""
    if not isinstance(qa, dict):
        raise EvaluationError("%s must be a JSON object" % where)
    question_id = qa.get("id")
    if not isinstance(question_id, str):
        raise EvaluationError('%s has no string "id"' % where)
    texts = []
    for index, answer in enumerate(_expect_list(qa, "answers", where)):
        text = answer.get("text") if isinstance(answer, dict) else None
        if not isinstance(text, str):
            raise EvaluationError('%s.answers[%d] has no string "text"' % (where, index))
        texts.append(text)
    return question_id.strip(), texts  # the official script strips ids


def iter_questions(dataset):
    """(question id, [reference texts]) for every question of a SQuAD-format dataset."""
    for i, article in enumerate(_expect_list(dataset, "data", "the dataset")):
        for j, paragraph in enumerate(_expect_list(article, "paragraphs", "data[%d]" % i)):
            where = "data[%d].paragraphs[%d]" % (i, j)
            for k, qa in enumerate(_expect_list(paragraph, "qas", where)):
                yield _question(qa, "%s.qas[%d]" % (where, k))


def check_predictions(predictions):
    """EvaluationError unless predictions maps ids to answer strings."""
    if not isinstance(predictions, dict):
        raise EvaluationError("predictions must be a JSON object {question_id: answer_text}")
    for key, value in predictions.items():
        if not isinstance(value, str):
            raise EvaluationError("prediction for %r must be a string, got %s"
                                  % (key, type(value).__name__))


def unknown_prediction_ids(dataset, predictions):
    """Sorted prediction ids that match no question in the dataset."""
    known = {question_id for question_id, _ in iter_questions(dataset)}
    return sorted(set(predictions) - known)


def question_scores(dataset, predictions, wide_punctuation=False):
    """[(id, f1 0..1, em 0/1, answered)] per scored question, in dataset order (questions
    without reference answers are left out; unanswered ones score 0)."""
    check_predictions(predictions)
    scores = []
    for question_id, answers in iter_questions(dataset):
        if not answers:
            continue
        if question_id not in predictions:
            scores.append((question_id, 0.0, 0, False))
            continue
        prediction = predictions[question_id]
        scores.append((question_id, calc_f1_score(answers, prediction, wide_punctuation),
                       calc_em_score(answers, prediction, wide_punctuation), True))
    return scores


def evaluate(dataset, predictions, wide_punctuation=False):
    """{"AVERAGE", "F1", "EM"} (unrounded percentages), "TOTAL" (questions scored) and
    "SKIP" (of those, the ones without a prediction); with wide_punctuation also "NOTE"
    (NOT_COMPARABLE)."""
    scores = question_scores(dataset, predictions, wide_punctuation)
    total = len(scores)
    f1 = 100.0 * sum(s[1] for s in scores) / total if total else 0.0
    em = 100.0 * sum(s[2] for s in scores) / total if total else 0.0
    result = {"AVERAGE": (f1 + em) / 2, "F1": f1, "EM": em, "TOTAL": total,
              "SKIP": sum(1 for s in scores if not s[3])}
    if wide_punctuation:
        result["NOTE"] = NOT_COMPARABLE
    return result
