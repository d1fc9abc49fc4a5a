"""Sentence and sentence-pair classification tasks of Chinese ELECTRA.

Each task is a subclass of ClassificationTask that knows its files, its label list and
how to read its rows into Examples; featurising and scoring are shared. Features follow
BERT: [CLS] a [SEP] (b [SEP]), segment 0 for a and 1 for b, zero-padded to
max_seq_length, the longer of a/b losing its last token until the pair fits.

Readers are strict about structure (column counts, JSON, known labels) because a silently
misread file gives plausible-looking but wrong scores; every error names file:line.
"""

import functools
import itertools
import json
import logging
import os
import random

import numpy as np

from finetune.task import Example, FeatureSpec, Scorer, Task
from model.tokenization import CLS_TOKEN, SEP_TOKEN
from util import fs
from util.errors import InputError

logger = logging.getLogger(__name__)


# ---------------------------------------------------------------------------
# Reading helpers (also used by finetune/tagging.py)
# ---------------------------------------------------------------------------

def iter_lines(path, reader=None):
    """Yield (line number, text without the line ending) for every line of a UTF-8 file.

    Decoding line by line lets a bad byte be reported with its line number. Only "\\n"
    ends a line, so a stray "\\r" or U+2028 inside a text cannot split a row. reader: an
    open binary stream to read instead (e.g. stdin); path then only names it in errors.
    """
    if reader is None:
        with fs.open(path, "rb") as opened:  # gfile: any file system; lines end at "\n"
            yield from _decoded_lines(path, opened)
    else:
        yield from _decoded_lines(path, reader)


def _decoded_lines(path, reader):
    for lineno, raw in enumerate(reader, start=1):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            raise InputError("%s:%d: not UTF-8 text (byte %d of the line)"
                             % (path, lineno, err.start)) from err
        if lineno == 1:
            text = text.lstrip("\ufeff")  # editors on Windows add a BOM
        yield lineno, text.rstrip("\r\n")


def read_tsv(path):
    """Yield (line number, list of fields) for every non-blank line of a TSV file."""
    for lineno, text in iter_lines(path):
        if text.strip():
            yield lineno, text.split("\t")


def read_json_lines(path, reader=None):
    """Yield (line number, dict) for every non-blank line of a JSON-lines file (or of the
    binary stream reader, named path in errors)."""
    for lineno, text in iter_lines(path, reader):
        if not text.strip():
            continue
        try:
            record = json.loads(text)
        except json.JSONDecodeError as err:
            raise InputError("%s:%d: invalid JSON at column %d: %s; expected one JSON "
                             "object per line" % (path, lineno, err.colno, err.msg)) from err
        if not isinstance(record, dict):
            raise InputError("%s:%d: expected a JSON object per line, got %s"
                             % (path, lineno, type(record).__name__))
        yield lineno, record


def json_field(path, lineno, record, key):
    """record[key], or InputError naming the line and the missing field."""
    if key not in record:
        raise InputError("%s:%d: missing field %r; expected fields %s"
                         % (path, lineno, key, ", ".join(sorted(record)) or "(none)"))
    return record[key]


def read_tsv_table(path, columns=None, label_optional=False):
    """Read a TSV file as (header, rows) where rows yields (line number, {column: value}).

    With columns None the first line is the header. Otherwise a first line made only of
    names in columns is a header, and a file without one has the fields columns names;
    with label_optional it may lack the trailing "label" column (unlabelled test sets).
    Every row must have as many fields as the header.
    """
    rows = read_tsv(path)
    first = next(rows, None)
    if first is None:
        return [], iter(())
    fields = first[1]
    if columns is None or set(fields) <= set(columns):
        return fields, _table_rows(path, fields, rows)
    header = list(columns)
    if label_optional and header[-1] == "label" and len(fields) == len(header) - 1:
        header.pop()
    return header, _table_rows(path, header, itertools.chain([first], rows))


def _table_rows(path, header, rows):
    """Check each row's width against the header and name its fields."""
    for lineno, fields in rows:
        if len(fields) != len(header):
            raise InputError("%s:%d: %d tab-separated columns, expected %d (%s)"
                             % (path, lineno, len(fields), len(header), "\t".join(header)))
        yield lineno, dict(zip(header, fields))


def require_columns(path, header, names):
    """InputError if a column of names is not in the header."""
    missing = [name for name in names if name not in header]
    if missing:
        raise InputError("%s:1: missing column(s) %s in the header %r"
                         % (path, ", ".join(missing), "\t".join(header)))


# ---------------------------------------------------------------------------
# The shared task
# ---------------------------------------------------------------------------

class ClassificationTask(Task):
    """A task whose examples get one label from label_list; subclasses read the files.

    Subclasses set label_list (or a property computing it), split_files (candidate
    file names for Task.split_file) and implement _read(split, path), a generator of
    dicts with text_a, text_b (None for single sentences), label (None if unlabelled)
    and gold_labels (labels a prediction may match; [label] except for cail2018).
    """

    task_type = "classification"
    label_list = None
    sentence_pair = False  # examples are (text_a, text_b) pairs, not single texts
    unordered_pair = False  # (a, b) means the same as (b, a): double_unordered applies
    label_aliases = {}  # other spellings of a label in some releases of the data
    report_macro_f1 = False
    _label_ids = None  # label -> index, built on first use

    def get_examples(self, split):
        path = self.split_path(split)
        examples = [Example(eid, self.name, **fields)
                    for eid, fields in enumerate(self._read(split, path))]
        logger.info("%s %s: %d examples from %s", self.name, split, len(examples), path)
        return examples

    def _read(self, split, path):
        """Yield the fields of each example of split read from path (see the class doc)."""
        raise NotImplementedError()

    def label_id(self, label):
        """Index of label in label_list."""
        if self._label_ids is None:
            self._label_ids = {name: i for i, name in enumerate(self.label_list)}
        return self._label_ids[label]

    def is_labelled(self, example):
        return bool(example.gold_labels)

    def check_label(self, path, lineno, label):
        """The canonical spelling of a label read at path:lineno; InputError if unknown."""
        label = self.label_aliases.get(label, label)
        if label not in self.label_list:
            raise InputError("%s:%d: unknown label %r for %s; expected one of %s"
                             % (path, lineno, label, self.name, ", ".join(self.label_list)))
        return label

    def labelled(self, text_a, text_b, label):
        """Example fields for a single-label row (label None for unlabelled test rows)."""
        return {"text_a": text_a, "text_b": text_b, "label": label,
                "gold_labels": [] if label is None else [label]}

    def featurize(self, example, is_training):
        return [self._feature(example, a, b) for a, b in self.token_orders(example, is_training)]

    def token_orders(self, example, is_training):
        """[(tokens of text_a, of text_b or None)], and (b, a) too when training a pair task
        with double_unordered."""
        tokens_a = self.tokenizer.tokenize(example.text_a)
        tokens_b = (None if example.text_b is None
                    else self.tokenizer.tokenize(example.text_b))
        orders = [(tokens_a, tokens_b)]
        if (is_training and self.config.double_unordered and self.unordered_pair
                and tokens_b is not None):
            orders.append((tokens_b, tokens_a))
        return orders

    def sample_per_label(self, examples, k, seed):
        """k examples of each label (by the label an example trains on), drawn with seed
        from examples, in file order: a few-shot training set (train_examples_per_label).
        The draw depends on the examples and the seed only, so either head trains on the
        same ones."""
        rng = random.Random(seed)
        chosen = []
        for label in self.label_list:
            candidates = [example for example in examples if example.label == label]
            if len(candidates) < k:
                raise InputError(
                    "train_examples_per_label %d: %s has only %d training examples of label "
                    "%r in %s; lower train_examples_per_label" % (
                        k, self.name, len(candidates), label, self.split_path("train")))
            chosen += rng.sample(candidates, k)
        return sorted(chosen, key=lambda example: example.eid)

    def _feature(self, example, tokens_a, tokens_b):
        """One feature dict for the token lists a and b (b may be None)."""
        length = self.config.max_seq_length
        tokens_a, tokens_b = truncate_pair(tokens_a, tokens_b, length)
        tokens = [CLS_TOKEN] + tokens_a + [SEP_TOKEN]
        segment_ids = [0] * len(tokens)
        if tokens_b is not None:
            tokens += tokens_b + [SEP_TOKEN]
            segment_ids += [1] * (len(tokens_b) + 1)
        padding = [0] * (length - len(tokens))
        return {
            "input_ids": self.tokenizer.convert_tokens_to_ids(tokens) + padding,
            "input_mask": [1] * len(tokens) + padding,
            "segment_ids": segment_ids + padding,
            "label_ids": 0 if example.label is None else self.label_id(example.label),
            "eid": example.eid,
            "_gold_ids": [self.label_id(label) for label in example.gold_labels],
        }

    def feature_specs(self):
        length = self.config.max_seq_length
        return [FeatureSpec("input_ids", [length]), FeatureSpec("input_mask", [length]),
                FeatureSpec("segment_ids", [length]), FeatureSpec("label_ids", []),
                FeatureSpec("eid", [])]

    def get_scorer(self, split):
        return ClassificationScorer(self.label_list, self.report_macro_f1)


def truncate_pair(tokens_a, tokens_b, max_seq_length):
    """Copies of a and b cut to fit [CLS] a [SEP] (b [SEP]) in max_seq_length tokens."""
    return truncate_texts(tokens_a, tokens_b, max_seq_length - (2 if tokens_b is None else 3))


def truncate_texts(tokens_a, tokens_b, budget):
    """Copies of a and b (b may be None) cut to budget tokens together.

    Like BERT, the pair loses one token at a time from the end of the longer list (b on a
    tie), so a short sentence keeps all of its tokens.
    """
    tokens_a = list(tokens_a)
    if tokens_b is None:
        return tokens_a[:budget], None
    tokens_b = list(tokens_b)
    while len(tokens_a) + len(tokens_b) > budget:
        longer = tokens_a if len(tokens_a) > len(tokens_b) else tokens_b
        longer.pop()
    return tokens_a, tokens_b


class ClassificationScorer(Scorer):
    """Accuracy (a prediction is right if it is any gold label of the example), loss and
    optionally macro-F1; also keeps each example's predicted label."""

    def __init__(self, label_list, report_macro_f1=False):
        super().__init__()
        self._label_list = label_list
        self._report_macro_f1 = report_macro_f1
        self._true = []  # per labelled feature: the gold id the prediction is judged by
        self._pred = []
        self._predictions = {}  # eid -> predicted label

    def update(self, feature, outputs):
        pred = int(np.argmax(outputs["logits"]))
        self._predictions[feature["eid"]] = self._label_list[pred]
        gold = feature["_gold_ids"]
        if gold:  # unlabelled test rows only get a prediction (their loss is against label 0)
            super().update(feature, outputs)
            self._true.append(pred if pred in gold else gold[0])
            self._pred.append(pred)

    def get_results(self):
        results = {}
        if self._true:
            correct = sum(t == p for t, p in zip(self._true, self._pred))
            results["accuracy"] = 100.0 * correct / len(self._true)
            if self._report_macro_f1:
                results["macro_f1"] = macro_f1(self._true, self._pred)
        results["loss"] = self.mean_loss()
        return results

    def get_predictions(self):
        """dict eid -> predicted label string (one feature per example at eval time)."""
        return dict(self._predictions)


def macro_f1(true_ids, pred_ids):
    """Macro-averaged F1 in percent over the labels that occur in gold or predictions.

    Labels absent from both have no defined F1; averaging them in as 0 would make the
    score depend on how many charges a small dev set happens to miss.
    """
    from sklearn.metrics import f1_score  # imported late: only cail2018 needs it
    return 100.0 * f1_score(true_ids, pred_ids, average="macro")


# ---------------------------------------------------------------------------
# The tasks
# ---------------------------------------------------------------------------

class ChnSentiCorp(ClassificationTask):
    """Review sentiment. TSV with a header: train `label text_a`, dev/test `qid label
    text_a` (the ERNIE test file has no label column)."""

    label_list = ["0", "1"]
    split_files = ("{split}.tsv",)

    def _read(self, split, path):
        header, rows = read_tsv_table(path)
        require_columns(path, header, ["text_a"] + ([] if split == "test" else ["label"]))
        for lineno, row in rows:
            label = row.get("label")
            if label is not None:
                label = self.check_label(path, lineno, label)
            yield self.labelled(row["text_a"], None, label)


class QuestionMatching(ClassificationTask):
    """LCQMC and BQ Corpus: `text_a text_b label`, with or without a header line; test
    files may lack the label column."""

    label_list = ["0", "1"]
    split_files = ("{split}.tsv", "{split}.txt")
    sentence_pair = True
    unordered_pair = True

    def _read(self, split, path):
        header, rows = read_tsv_table(path, ("text_a", "text_b", "label"),
                                      label_optional=split == "test")
        require_columns(path, header, ["text_a", "text_b"]
                        + ([] if split == "test" else ["label"]))
        for lineno, row in rows:
            label = row.get("label")
            if label is not None:
                label = self.check_label(path, lineno, label)
            yield self.labelled(row["text_a"], row["text_b"], label)


# XNLI layouts by the header's columns: (premise, hypothesis, label) column names.
_XNLI_LAYOUTS = (
    ("premise", "hypo", "label"),  # the Chinese ELECTRA (machine-translated) train file
    ("text_a", "text_b", "label"),  # Baidu ERNIE's task data
    ("sentence1", "sentence2", "gold_label"),  # the official XNLI 15-column TSV
)


class Xnli(ClassificationTask):
    """Chinese XNLI in any of the three layouts of _XNLI_LAYOUTS (told apart by the
    header); the official TSV mixes 15 languages, of which only zh rows are kept."""

    label_list = ["contradictory", "entailment", "neutral"]
    split_files = ("{split}.tsv",)
    sentence_pair = True
    label_aliases = {"contradiction": "contradictory"}

    def _read(self, split, path):
        header, rows = read_tsv_table(path)
        a_col, b_col, label_col = self._layout(path, header)
        for lineno, row in rows:
            if row.get("language", "zh") != "zh":
                continue
            yield self.labelled(row[a_col], row[b_col],
                                self.check_label(path, lineno, row[label_col]))

    @staticmethod
    def _layout(path, header):
        """The (premise, hypothesis, label) column names present in header."""
        for layout in _XNLI_LAYOUTS:
            if all(name in header for name in layout):
                return layout
        raise InputError("%s:1: unrecognised XNLI header %r; expected the columns %s"
                         % (path, "\t".join(header),
                            " or ".join("/".join(layout) for layout in _XNLI_LAYOUTS)))


class Tnews(ClassificationTask):
    """Toutiao news titles (single sentence; the keywords are not used): CLUE JSON lines
    with label_desc, or a headerless TSV `sentence label_desc`."""

    split_files = ("{split}.json", "{split}.tsv")

    @functools.cached_property
    def label_list(self):
        """labels.json of the task dir in file order, else the training file's labels."""
        labels_file = os.path.join(self.data_dir(), "labels.json")
        if fs.isfile(labels_file):
            labels = [json_field(labels_file, lineno, record, "label_desc")
                      for lineno, record in read_json_lines(labels_file)]
        else:
            path = self.split_file("train", self.split_files)
            labels = sorted({label for _, _, label in self._rows("train", path)})
        if not labels:
            raise InputError("%s: no labels found in %s" % (
                self.name, labels_file if fs.isfile(labels_file) else "the train file"))
        return labels

    def _read(self, split, path):
        for lineno, sentence, label in self._rows(split, path):
            if label is not None:
                label = self.check_label(path, lineno, label)
            yield self.labelled(sentence, None, label)

    @staticmethod
    def _rows(split, path):
        """Yield (line number, sentence, label_desc or None) from either format."""
        if path.endswith(".json"):
            for lineno, record in read_json_lines(path):
                label = record.get("label_desc") if split == "test" \
                    else json_field(path, lineno, record, "label_desc")
                yield lineno, json_field(path, lineno, record, "sentence"), label
            return
        header, rows = read_tsv_table(path, ("sentence", "label_desc"))
        require_columns(path, header, ["sentence"] + ([] if split == "test"
                                                      else ["label_desc"]))
        for lineno, row in rows:
            yield lineno, row["sentence"], row.get("label_desc")


class Ocnli(ClassificationTask):
    """Original Chinese NLI, CLUE JSON lines; pairs whose annotators disagreed (label
    "-") are skipped, as in CLUE's baselines."""

    label_list = ["entailment", "neutral", "contradiction"]
    sentence_pair = True

    def files_for(self, split):
        if split == "train":
            return ("train.json", "train.50k.json", "train.10k.json")
        return ("{split}.json",)

    def _read(self, split, path):
        skipped = 0
        for lineno, record in read_json_lines(path):
            label = record.get("label") if split == "test" \
                else json_field(path, lineno, record, "label")
            if label == "-":
                skipped += 1
                continue
            if label is not None:
                label = self.check_label(path, lineno, label)
            yield self.labelled(json_field(path, lineno, record, "sentence1"),
                                json_field(path, lineno, record, "sentence2"), label)
        if skipped:
            logger.info("%s: skipped %d pairs labelled '-' (no annotator agreement) in %s",
                        self.name, skipped, path)


class Cail2018(ClassificationTask):
    """CAIL 2018 charge prediction from the case facts (JSON lines, see the module docs
    of the data). Labels: the sorted charges of the training file. A case trains on its
    first charge; any of its charges counts as a correct prediction."""

    report_macro_f1 = True
    _official_split = {"train": "train", "dev": "valid", "test": "test"}

    def files_for(self, split):
        return ("data_%s.json" % self._official_split.get(split, split), "{split}.json")

    @functools.cached_property
    def label_list(self):
        # The training file is large (150k cases): read the charge set once.
        path = self.split_file("train", self.files_for("train"))
        return sorted({charge for _, _, charges in self._cases(path) for charge in charges})

    def _read(self, split, path):
        known = set(self.label_list)
        unknown = {}  # charge -> cases skipped for it
        for lineno, fact, charges in self._cases(path, optional=split == "test"):
            missing = [charge for charge in charges if charge not in known]
            for charge in missing:
                unknown[charge] = unknown.get(charge, 0) + 1
            if missing:
                continue
            yield {"text_a": fact, "text_b": None,
                   "label": charges[0] if charges else None, "gold_labels": charges}
        if unknown:
            logger.warning("%s: skipped %d cases of %s with charges not in the training "
                           "file: %s", self.name, sum(unknown.values()), path,
                           ", ".join("%s (%d)" % item for item in sorted(unknown.items())))

    @staticmethod
    def _cases(path, optional=False):
        """Yield (line number, fact, list of charges); with optional, a case without
        "meta" (an unlabelled test set) has no charges."""
        for lineno, record in read_json_lines(path):
            fact = json_field(path, lineno, record, "fact")
            if optional and "meta" not in record:
                yield lineno, fact, []
                continue
            meta = json_field(path, lineno, record, "meta")
            if not isinstance(meta, dict):
                raise InputError("%s:%d: \"meta\" must be a JSON object with an "
                                 "\"accusation\" list" % (path, lineno))
            charges = json_field(path, lineno, meta, "accusation")
            if not (isinstance(charges, list) and charges
                    and all(isinstance(c, str) for c in charges)):
                raise InputError("%s:%d: meta.accusation must be a non-empty list of "
                                 "charge names, got %r" % (path, lineno, charges))
            yield lineno, fact, charges


# Task name -> class; task_builder.py maps names through this.
CLASSIFICATION_TASKS = {
    "chnsenticorp": ChnSentiCorp,
    "lcqmc": QuestionMatching,
    "bqcorpus": QuestionMatching,
    "xnli": Xnli,
    "tnews": Tnews,
    "ocnli": Ocnli,
    "cail2018": Cail2018,
}
