"""Span-extraction QA for CMRC 2018 (simplified) and DRCD (traditional Chinese).

Data is SQuAD-format JSON: data[].paragraphs[].{context, qas[].{id, question,
answers[].{text, answer_start}}}, with answer_start counted in characters.

Alignment works on *units* rather than on whitespace-separated words: an
unspaced Chinese paragraph is one "word" to BERT's SQuAD code, which breaks the
character-to-token map. Here every CJK character and every punctuation
or symbol character is a unit, and so is each run of other non-whitespace characters (a
Latin word, a number). Each unit is tokenized on its own, so every WordPiece
token maps back to the character span of its unit. Predicted answers are cut
from the original context between the first character of the start token's unit
and the last character of the end token's unit, which keeps the context's case
and inner spaces ("iPhone 12", not "iphone12").

Featurization follows BERT's SQuAD recipe: overlapping context windows (doc_stride),
[CLS] question [SEP] context [SEP], and the "max context" rule to pick the window that
scores a token. Decoding the head's outputs into answers is in finetune/qa_decoding.py.
"""

import bisect
import collections
import logging
import unicodedata

from finetune import cmrc_metric
from finetune.qa_decoding import nbest_answers, output_candidates
from finetune.task import Example, FeatureSpec, Scorer, Task
from model.tokenization import is_cjk_char, is_punctuation, is_whitespace
from util import fs
from util.errors import InputError
from util.hparams import parse_json
from util.io import atomic_write_json

logger = logging.getLogger(__name__)

# Data file names tried for each task, '{split}' filled in (first match wins).
_SPLIT_FILES = {
    "cmrc2018": ["{split}.json", "cmrc2018_{split}.json"],
    "drcd": ["{split}.json", "DRCD_{split}.json"],
}
# DRCD ships its training split as DRCD_training.json.
_EXTRA_SPLIT_FILES = {("drcd", "train"): ["DRCD_training.json"]}

# feature_id = eid * _MAX_WINDOWS + window index: deterministic, so ids of a
# re-featurised split match those of cached tfrecords, and small enough for
# int32 on TPU for any realistic number of questions.
_MAX_WINDOWS = 1000

# Bound on the per-task memo of unit tokenizations (distinct characters and
# words of a corpus are far fewer; this only guards pathological inputs).
_UNIT_CACHE_LIMIT = 200000

# How many skipped questions are named in a warning before only counting.
_WARN_EXAMPLES = 5

# Feature keys the model reads; every other key is scorer metadata.
_SEQ_FEATURES = ("input_ids", "input_mask", "segment_ids")
_SCALAR_FEATURES = ("start_positions", "end_positions", "eid", "feature_id")


# ---------------------------------------------------------------------------
# Character units and their tokens
# ---------------------------------------------------------------------------

def _is_space(char):
    """True for characters that separate words (tokenizer rules, plus str.split's)."""
    # BasicTokenizer splits with str.split(), which also breaks on e.g. U+2028
    # that is_whitespace does not know; treating both as gaps keeps units and
    # tokens consistent.
    return is_whitespace(char) or char.isspace()


def _is_single_char_unit(char):
    """CJK characters, punctuation and symbols are always units of their own."""
    # Symbols (Unicode category S: "℃", "～", "−") are not punctuation to the
    # tokenizer, but answers often stop at them ("273.15" in "−273.15℃"), so
    # they get their own units too.
    return (is_cjk_char(char) or is_punctuation(char)
            or unicodedata.category(char).startswith("S"))


def split_units(text):
    """Character spans [(start, end), ...] of the units of text, in order.

    A unit is one CJK character, one punctuation or symbol character, or a
    maximal run of other non-whitespace characters (a Latin word, a number).
    Whitespace belongs to no unit.
    """
    units = []
    pos, size = 0, len(text)
    while pos < size:
        char = text[pos]
        if _is_space(char):
            pos += 1
        elif _is_single_char_unit(char):
            units.append((pos, pos + 1))
            pos += 1
        else:
            end = pos + 1
            while end < size and not (_is_space(text[end])
                                      or _is_single_char_unit(text[end])):
                end += 1
            units.append((pos, end))
            pos = end
    return units


class DocTokens(object):
    """The tokens of a context, each with the character span of its unit.

    Attributes:
        tokens: WordPiece tokens of the whole context.
        char_spans: char_spans[i] = (start, end) of the unit token i came from;
            all tokens of one unit share its span.
    """

    def __init__(self, tokens, char_spans):
        self.tokens = tokens
        self.char_spans = char_spans
        # Both are non-decreasing because units do not overlap: bisect on them.
        self._starts = [span[0] for span in char_spans]
        self._ends = [span[1] for span in char_spans]

    def __len__(self):
        return len(self.tokens)

    def token_span(self, start_char, end_char):
        """(first, last) token index overlapping chars [start_char, end_char), or None.

        The answer is widened to whole units: an answer "195" inside "1950"
        maps to the token(s) of "1950". None if no token overlaps the span
        (e.g. it only covers characters the tokenizer drops).
        """
        first = bisect.bisect_right(self._ends, start_char)
        last = bisect.bisect_left(self._starts, end_char) - 1
        if first >= len(self.tokens) or last < first:
            return None
        return first, last


def tokenize_context(context, tokenizer, cache=None):
    """DocTokens of context: each unit tokenized on its own.

    cache (optional dict unit text -> tokens) saves re-tokenizing the same
    characters: Chinese text repeats a few thousand units over and over.
    """
    tokens, spans = [], []
    for start, end in split_units(context):
        unit = context[start:end]
        pieces = cache.get(unit) if cache is not None else None
        if pieces is None:
            pieces = tokenizer.tokenize(unit)
            if cache is not None:
                if len(cache) >= _UNIT_CACHE_LIMIT:
                    cache.clear()
                cache[unit] = pieces
        # A unit of characters the tokenizer drops (e.g. U+200B) gives no
        # tokens and so can never start or end a predicted answer.
        for piece in pieces:
            tokens.append(piece)
            spans.append((start, end))
    return DocTokens(tokens, spans)


def span_text(context, char_spans, start, end):
    """Answer text for tokens start..end: the original context substring.

    char_spans maps a token position to its unit's (start, end) characters: a
    DocTokens.char_spans list or a feature's "token_to_char" dict. Used both by
    the predictor and by the alignment tests, so they check the same code.
    """
    return context[char_spans[start][0]:char_spans[end][1]]


def locate_answer(context, text, answer_start):
    """Character span (start, end) of the answer in context, or None.

    Trusts answer_start when the text is there; otherwise takes the occurrence
    of the text closest to answer_start (data sets have off-by-one starts and
    -1 for answers absent from the context).
    """
    if not text or not text.strip():
        return None
    if answer_start >= 0 and context[answer_start:answer_start + len(text)] == text:
        return answer_start, answer_start + len(text)
    for candidate in (text, text.strip()):
        found = _closest_occurrence(context, candidate, answer_start)
        if found is not None:
            return found, found + len(candidate)
    return None


def _closest_occurrence(context, text, near):
    """Start of the occurrence of text closest to near (earliest on ties)."""
    best = None
    pos = context.find(text)
    while pos != -1:
        if best is None or abs(pos - near) < abs(best - near):
            best = pos
        pos = context.find(text, pos + 1)
    return best


# ---------------------------------------------------------------------------
# Windows over long contexts
# ---------------------------------------------------------------------------

def doc_windows(num_tokens, window_length, doc_stride):
    """[(start, length), ...]: windows of at most window_length tokens.

    Consecutive windows start doc_stride tokens apart (or less, never skipping a
    token); the last one ends at the end of the document. An empty document
    still gets one empty window so the question yields a feature.
    """
    windows = []
    start = 0
    while True:
        length = min(window_length, num_tokens - start)
        windows.append((start, length))
        if start + length >= num_tokens:
            return windows
        start += min(length, doc_stride)


def is_max_context(windows, window_index, position):
    """True if window window_index gives token position its best context.

    BERT's rule: a token seen by several windows is scored only in the one
    where min(left context, right context) + 0.01 * window length is largest
    (the first such window on ties).
    """
    best_index, best_score = None, None
    for index, (start, length) in enumerate(windows):
        end = start + length - 1
        if position < start or position > end:
            continue
        score = min(position - start, end - position) + 0.01 * length
        if best_score is None or score > best_score:
            best_index, best_score = index, score
    return best_index == window_index


# ---------------------------------------------------------------------------
# Reading SQuAD-format files
# ---------------------------------------------------------------------------

def read_squad_json(path):
    """The parsed JSON of path; InputError for unreadable or invalid JSON."""
    try:
        text = fs.read_text(path, encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise InputError("%s: not UTF-8 text (byte %d)" % (path, err.start))
    except fs.errors() as err:
        raise InputError("%s: cannot read: %s" % (path, fs.error_text(err)))
    return parse_json(text, path)


def _require(obj, key, kind, where, path):
    """obj[key] checked to be of type kind; InputError naming path and where."""
    if not isinstance(obj, dict):
        raise InputError("%s: %s should be a JSON object, got %s"
                         % (path, where or "the top level", type(obj).__name__))
    if key not in obj:
        raise InputError("%s: %s has no %r key (expected SQuAD format: data[]."
                         "paragraphs[].context/qas[])" % (path, where or "the top level", key))
    value = obj[key]
    if not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise InputError("%s: %s%s should be a %s, got %s"
                         % (path, where + "." if where else "", key, names,
                            type(value).__name__))
    return value


def iter_questions(dataset, path, need_answers):
    """Yield (context, qa, answers, where) for every question of a SQuAD dict.

    Checks the structure as it goes and raises InputError naming the path of
    the first bad entry (e.g. data[3].paragraphs[0]: no 'context' key).
    """
    for i, article in enumerate(_require(dataset, "data", list, "", path)):
        where_article = "data[%d]" % i
        paragraphs = _require(article, "paragraphs", list, where_article, path)
        for j, paragraph in enumerate(paragraphs):
            where = "%s.paragraphs[%d]" % (where_article, j)
            context = _require(paragraph, "context", str, where, path)
            if not context.strip():
                raise InputError("%s: %s.context is empty" % (path, where))
            for k, qa in enumerate(_require(paragraph, "qas", list, where, path)):
                where_qa = "%s.qas[%d]" % (where, k)
                _require(qa, "id", str, where_qa, path)
                _require(qa, "question", str, where_qa, path)
                answers = _read_answers(qa, where_qa, path, need_answers)
                yield context, qa, answers, where_qa


def _read_answers(qa, where, path, need_answers):
    """The question's answers as [{"text", "answer_start"}] (-1: unknown start)."""
    if "answers" not in qa and not need_answers:
        return []  # unlabelled test data
    answers = []
    for m, answer in enumerate(_require(qa, "answers", list, where, path)):
        where_answer = "%s.answers[%d]" % (where, m)
        text = _require(answer, "text", str, where_answer, path)
        start = answer.get("answer_start", -1)
        if isinstance(start, bool) or not isinstance(start, int):
            raise InputError("%s: %s.answer_start should be an int, got %r"
                             % (path, where_answer, start))
        answers.append({"text": text, "answer_start": start})
    return answers


# ---------------------------------------------------------------------------
# The task
# ---------------------------------------------------------------------------

class QATask(Task):
    """CMRC 2018 / DRCD span extraction (any SQuAD-format, character-offset data).

    Attributes:
        skipped_questions: Counter split -> training questions skipped because
            no answer could be found in (or mapped onto) their context.
        relocated_answers: Counter split -> questions whose answer (the first
            one found) had an answer_start not pointing at its text and was
            found elsewhere in the context.
    """

    task_type = "qa"

    def __init__(self, config, name, tokenizer):
        super(QATask, self).__init__(config, name, tokenizer)
        self.skipped_questions = collections.Counter()
        self.relocated_answers = collections.Counter()
        self._unit_cache = {}
        self._doc_cache = (None, None)  # (context, DocTokens): questions share paragraphs
        self._check_lengths()

    def _check_lengths(self):
        """Fail early if the question leaves no room for context in a window."""
        room = self.config.max_seq_length - self.config.max_query_length - 3
        if room < 1:
            raise InputError(
                "fine-tuning hparams: max_seq_length (%d) must exceed max_query_length "
                "(%d) + 3 so that context fits beside the question"
                % (self.config.max_seq_length, self.config.max_query_length))

    # -- files --------------------------------------------------------------

    def files_for(self, split):
        """The file names this task accepts for split."""
        candidates = list(_SPLIT_FILES.get(self.name, ["{split}.json",
                                                       self.name + "_{split}.json"]))
        return candidates + _EXTRA_SPLIT_FILES.get((self.name, split), [])

    def is_labelled(self, example):
        return bool(example.answers)

    def unusable_note(self, split):
        skipped = self.skipped_questions[split]
        return (" (%d question(s) skipped: their answer text is not in the context)"
                % skipped if skipped else "")

    def load_dataset(self, split):
        """(path, parsed JSON) of split's original file (what the evaluator scores)."""
        path = self.split_path(split)
        return path, read_squad_json(path)

    # -- examples -----------------------------------------------------------

    def get_examples(self, split):
        """One Example per question, with every reference answer.

        Training questions whose answer text is nowhere in the context are
        skipped (counted in skipped_questions, with a warning); for other
        splits they are kept, as evaluation compares texts only.
        """
        path, dataset = self.load_dataset(split)
        is_train = split == "train"
        # Counts describe the latest read of the split, not a sum over re-reads.
        self.skipped_questions[split] = 0
        self.relocated_answers[split] = 0
        examples, skipped, seen = [], [], {}
        for context, qa, answers, where in iter_questions(dataset, path,
                                                          need_answers=split != "test"):
            qid = qa["id"].strip()  # the evaluator strips ids too
            if qid in seen:
                raise InputError("%s: %s repeats question id %r of %s (ids must be "
                                 "unique: predictions are keyed by id)"
                                 % (path, where, qid, seen[qid]))
            seen[qid] = where
            span = self._locate_first(context, answers, split, "%s: %s (id %s)"
                                      % (path, where, qid))
            if is_train and span is None:
                if self.config.strict_input:
                    raise InputError("%s: %s (id %s): no answer text is in the context; "
                                     "strict_input refuses it (false: skip the question)"
                                     % (path, where, qid))
                skipped.append(qid)
                continue
            examples.append(Example(len(examples), self.name, qid=qid,
                                    question=qa["question"], context=context,
                                    answers=answers, answer_span=span))
        if skipped:  # (warned with their ids; the relocations only counted so far)
            self._warn_skipped(split, skipped, "whose answer text is not in the context")
        if self.relocated_answers[split]:
            logger.warning("%s %s: %s", self.name, split, self._relocated_note(split))
        return examples

    def _relocated_note(self, split):
        return ("%d answer(s) had an answer_start not pointing at their text; the nearest "
                "occurrence was used" % self.relocated_answers[split])

    def repairs(self, split):
        """What reading (and featurising) split changed or dropped, in words."""
        notes = []
        if self.relocated_answers[split]:
            notes.append(self._relocated_note(split))
        if self.skipped_questions[split]:
            notes.append("%d question(s) skipped: their answer is not in the context or "
                         "covers no token" % self.skipped_questions[split])
        return notes

    def _locate_first(self, context, answers, split, where):
        """Char span of the first answer found in context (None if none is). An
        answer_start that misses its text is moved to the nearest occurrence (counted), or
        refused with strict_input."""
        for answer in answers:
            span = locate_answer(context, answer["text"], answer["answer_start"])
            if span is None:
                continue
            if answer["answer_start"] >= 0 and span[0] != answer["answer_start"]:
                if self.config.strict_input:
                    raise InputError(
                        "%s: answer_start %d does not point at its answer %r (it is at %d); "
                        "strict_input refuses it (false: use the nearest occurrence)"
                        % (where, answer["answer_start"], answer["text"], span[0]))
                self.relocated_answers[split] += 1
            return span
        return None

    def _warn_skipped(self, split, qids, why):
        """Count skipped training questions and say so once, with examples."""
        self.skipped_questions[split] += len(qids)
        shown = ", ".join(qids[:_WARN_EXAMPLES]) + (", ..." if len(qids) > _WARN_EXAMPLES
                                                   else "")
        logger.warning("%s %s: skipped %d question(s) %s (%s); %d skipped in total",
                       self.name, split, len(qids), why, shown,
                       self.skipped_questions[split])

    # -- features -----------------------------------------------------------

    def feature_specs(self):
        length = self.config.max_seq_length
        return ([FeatureSpec(name, [length]) for name in _SEQ_FEATURES]
                + [FeatureSpec(name, []) for name in _SCALAR_FEATURES])

    def doc_tokens(self, context):
        """DocTokens of context, reusing the last result (same paragraph)."""
        cached_context, cached_doc = self._doc_cache
        if cached_context is not context and cached_context != context:
            cached_doc = tokenize_context(context, self.tokenizer, self._unit_cache)
            self._doc_cache = (context, cached_doc)
        return cached_doc

    def featurize(self, example, is_training):
        """One feature per context window (see the module docstring).

        Positions point at the first answer's tokens in the window holding the
        whole answer and at [CLS] (0) elsewhere; they are also filled for dev
        examples so the dev loss means something. A training example whose
        answer covers no token yields no features (counted as skipped).
        """
        doc = self.doc_tokens(example.context)
        answer_tokens = None
        if example.answer_span is not None:
            answer_tokens = doc.token_span(*example.answer_span)
        if is_training and answer_tokens is None:
            self._warn_skipped("train", [example.qid], "whose answer covers no token")
            return []
        query = self.tokenizer.tokenize(example.question)[:self.config.max_query_length]
        room = self.config.max_seq_length - len(query) - 3
        windows = doc_windows(len(doc), room, self.config.doc_stride)
        if len(windows) > _MAX_WINDOWS:
            raise InputError("%s question %s: its context needs %d windows (more than %d); "
                             "raise doc_stride or max_seq_length"
                             % (self.name, example.qid, len(windows), _MAX_WINDOWS))
        return [self._window_feature(example, doc, query, windows, index, answer_tokens)
                for index in range(len(windows))]

    def _window_feature(self, example, doc, query, windows, index, answer_tokens):
        """The feature dict of window index: model inputs plus scorer metadata."""
        start, length = windows[index]
        tokens = ["[CLS]"] + query + ["[SEP]"]
        offset = len(tokens)  # input position of the window's first context token
        token_to_char, max_context = {}, {}
        for position in range(start, start + length):
            token_to_char[len(tokens)] = doc.char_spans[position]
            max_context[len(tokens)] = is_max_context(windows, index, position)
            tokens.append(doc.tokens[position])
        tokens.append("[SEP]")
        start_position, end_position = 0, 0
        if answer_tokens is not None:
            first, last = answer_tokens
            if first >= start and last < start + length:
                start_position, end_position = first - start + offset, last - start + offset
        feature = self._pad_inputs(tokens, offset)
        feature.update({
            "start_positions": start_position, "end_positions": end_position,
            "eid": example.eid, "feature_id": example.eid * _MAX_WINDOWS + index,
            # metadata for the scorer
            "qid": example.qid, "context": example.context, "window_index": index,
            "tokens": tokens,
            "token_to_char": token_to_char, "token_is_max_context": max_context,
        })
        return feature

    def _pad_inputs(self, tokens, context_offset):
        """input_ids / input_mask / segment_ids, zero-padded to max_seq_length."""
        padding = [0] * (self.config.max_seq_length - len(tokens))
        ids = self.tokenizer.convert_tokens_to_ids(tokens)
        segments = [0] * context_offset + [1] * (len(tokens) - context_offset)
        return {"input_ids": ids + padding, "input_mask": [1] * len(tokens) + padding,
                "segment_ids": segments + padding}

    def get_scorer(self, split):
        return QAScorer(self, split)


# ---------------------------------------------------------------------------
# Prediction post-processing and scoring
# ---------------------------------------------------------------------------

class QAScorer(Scorer):
    """Turns per-window start/end logits into answers and scores them (F1/EM)."""

    def __init__(self, task, split):
        super(QAScorer, self).__init__()
        self._task = task
        self._split = split
        self._config = task.config
        self._questions = {}  # eid -> (qid, context), from the features
        self._candidates = collections.defaultdict(list)  # eid -> [_Candidate]
        self._nbest = None  # qid -> n-best list, computed on demand
        self._null_odds = {}  # qid -> lowest answerable logit over its windows (joint head)

    def update(self, feature, outputs):
        """Keeps only the window's valid candidates, not its full logits."""
        super(QAScorer, self).update(feature, outputs)
        eid = feature["eid"]
        self._questions.setdefault(eid, (feature["qid"], feature["context"]))
        self._candidates[eid].extend(output_candidates(feature, outputs, self._config))
        if "answerable_logit" in outputs:
            qid, logit = feature["qid"], float(outputs["answerable_logit"])
            self._null_odds[qid] = min(logit, self._null_odds.get(qid, logit))
        self._nbest = None

    def null_odds(self):
        """qid -> the answerable classifier's lowest "is impossible" logit over the
        question's windows (what the official code writes to qa_na_file)."""
        return dict(self._null_odds)

    def nbest(self):
        """qid -> n-best list (dicts with text, score, probability, logits)."""
        if self._nbest is None:
            self._nbest = collections.OrderedDict()
            for eid in sorted(self._questions):
                qid, context = self._questions[eid]
                self._nbest[qid] = nbest_answers(context, self._candidates[eid],
                                                 self._config.n_best_size)
        return self._nbest

    def predictions(self):
        """qid -> predicted answer text."""
        return collections.OrderedDict((qid, entries[0]["text"])
                                       for qid, entries in self.nbest().items())

    def get_predictions(self):
        """qid -> predicted answer text (the runner writes this as <task>_<split>_preds.json)."""
        return self.predictions()

    def write_predictions(self, path, nbest_path=None):
        """Writes {qid: answer} JSON to path (and the n-best lists to nbest_path)."""
        atomic_write_json(path, self.predictions())
        if nbest_path:
            atomic_write_json(nbest_path, self.nbest())

    def get_results(self):
        """F1/EM (percent) of the predictions against the split's original file."""
        _, dataset = self._task.load_dataset(self._split)
        scores = cmrc_metric.evaluate(dataset, dict(self.predictions()))
        return {"f1": scores["F1"], "em": scores["EM"], "average": scores["AVERAGE"],
                "total": scores["TOTAL"], "skip": scores["SKIP"], "loss": self.mean_loss()}
