"""Character-level named-entity tagging (MSRA NER, People's Daily NER).

Files have one `<char> <label>` per line and a blank line between sentences. Each
character is tokenised on its own; its label goes to its first sub-token, and only
first sub-tokens are trained and scored (label_mask). A sentence longer than
max_seq_length - 2 tokens becomes consecutive windows; the scorer puts the windows back
together so every character of every sentence gets a prediction.

Tags are B-/I- (BIO) or B-/I-/S- (BIOS) by the task's label list. Files in the BMES or
BIOES schemes (the public MSRA copy uses B-/M-/E-/S-) are read into the label list's
scheme: M-X and E-X become I-X, and S-X becomes B-X when the list has no S-. This keeps
every entity's span and type, so entity-level scores are unchanged.
"""

import collections
import functools
import logging
import os

import numpy as np

from finetune.classification import iter_lines
from finetune.task import Example, FeatureSpec, Scorer, Task
from model.tokenization import CLS_TOKEN, SEP_TOKEN, UNK_TOKEN
from util import fs
from util.errors import InputError

logger = logging.getLogger(__name__)

# Tag prefixes that continue an entity begun by B- (I, and M/E of BMES/BIOES).
_CONTINUE = ("I", "M", "E")


class TaggingTask(Task):
    """A character tagging task; subclasses give the files and the built-in labels."""

    task_type = "tagging"
    default_labels = ()
    _label_ids = None
    # Part of the featurisation cache's key (finetune/preprocessing.py): bump it whenever
    # _feature writes other values, so tfrecords made by the former code (and the trials
    # trained on them) are rebuilt, not reused. 2: segment_ids 1 on real tokens.
    featurization_version = 2
    featurization_change = "segment ids 1 on every real token, as the official code"

    def __init__(self, config, name, tokenizer):
        super().__init__(config, name, tokenizer)
        # Tokenising one character at a time is slow and characters repeat a lot.
        self._pieces = {}

    @functools.cached_property
    def label_list(self):
        """labels.txt of the task dir (one label a line) if present, else default_labels."""
        path = os.path.join(self.data_dir(), "labels.txt")
        if not fs.isfile(path):
            return list(self.default_labels)
        labels = []
        for lineno, text in iter_lines(path):
            label = text.strip()
            if label in labels:
                raise InputError("%s:%d: label %r listed twice" % (path, lineno, label))
            if label:
                labels.append(label)
        if not labels:
            raise InputError("%s: no labels; expected one label a line" % path)
        return labels

    def label_id(self, label):
        """Index of label in label_list."""
        if self._label_ids is None:
            self._label_ids = {name: i for i, name in enumerate(self.label_list)}
        return self._label_ids[label]

    def get_examples(self, split):
        path = self.split_path(split)
        examples = [Example(eid, self.name, chars=chars, labels=labels)
                    for eid, (chars, labels) in enumerate(self._read_sentences(path))]
        logger.info("%s %s: %d sentences from %s", self.name, split, len(examples), path)
        return examples

    def _read_sentences(self, path):
        """Yield (chars, labels) per sentence; labels in the label list's scheme."""
        chars, labels = [], []
        converted = 0
        for lineno, text in iter_lines(path):
            if not text.strip():
                if chars:
                    yield chars, labels
                    chars, labels = [], []
                continue
            char, raw_label = parse_line(path, lineno, text)
            label = self._canonical_label(path, lineno, raw_label)
            converted += label != raw_label
            chars.append(char)
            labels.append(label)
        if chars:
            yield chars, labels
        if converted:
            logger.info("%s: %d tags of %s converted to the label list's scheme "
                        "(M-/E- -> I-, S- -> B-)", self.name, converted, path)

    def _canonical_label(self, path, lineno, label):
        """label, or its equivalent in the label list's scheme; InputError if unknown."""
        labels = self.label_list
        if label in labels:
            return label
        prefix, _, entity_type = label.partition("-")
        if prefix in ("M", "E") and "I-" + entity_type in labels:
            return "I-" + entity_type
        if prefix == "S" and "B-" + entity_type in labels:
            return "B-" + entity_type
        raise InputError("%s:%d: unknown label %r for %s; expected one of %s"
                         % (path, lineno, label, self.name, " ".join(labels)))

    def char_pieces(self, char):
        """The sub-tokens of one character; [UNK] if the tokenizer drops it (e.g. a
        zero-width or control character), so that every character is tagged."""
        if char not in self._pieces:
            pieces = self.tokenizer.tokenize(char) or [UNK_TOKEN]
            self._pieces[char] = pieces[:self.config.max_seq_length - 2]
        return self._pieces[char]

    def featurize(self, example, is_training):
        pieces = [self.char_pieces(char) for char in example.chars]
        return [self._feature(example, pieces, start, end)
                for start, end in windows([len(p) for p in pieces],
                                          self.config.max_seq_length - 2)]

    def _feature(self, example, pieces, start, end):
        """The feature of characters [start, end) of the example."""
        tokens, label_ids, label_mask = [CLS_TOKEN], [0], [0]
        for char_pieces, label in zip(pieces[start:end], example.labels[start:end]):
            tokens += char_pieces
            label_ids += [self.label_id(label)] + [0] * (len(char_pieces) - 1)
            label_mask += [1] + [0] * (len(char_pieces) - 1)
        tokens.append(SEP_TOKEN)
        label_ids.append(0)
        label_mask.append(0)
        padding = [0] * (self.config.max_seq_length - len(tokens))
        return {
            "input_ids": self.tokenizer.convert_tokens_to_ids(tokens) + padding,
            "input_mask": [1] * len(tokens) + padding,
            # 1 on every real token, 0 on padding: the token type the official tagging
            # tasks feed the encoder, so its type embedding is fine-tuned as it is there.
            "segment_ids": [1] * len(tokens) + padding,
            "label_ids": label_ids + padding,
            "label_mask": label_mask + padding,
            "eid": example.eid,
            "_char_start": start,
            "_num_chars": end - start,
        }

    def feature_specs(self):
        length = self.config.max_seq_length
        return [FeatureSpec(name, [length]) for name in
                ("input_ids", "input_mask", "segment_ids", "label_ids", "label_mask")] \
            + [FeatureSpec("eid", [])]

    def get_scorer(self, split):
        return TaggingScorer(self.label_list)


def parse_line(path, lineno, text):
    """(char, label) of a `<char> <label>` line (a tab may separate them too)."""
    separator = "\t" if "\t" in text else " "
    char, _, label = text.rpartition(separator)
    # A whitespace character is a valid (if odd) character, but whitespace inside a
    # longer token or the label means the line has more than two fields.
    if (not char or not label or any(c.isspace() for c in label)
            or (len(char) > 1 and any(c.isspace() for c in char))):
        raise InputError("%s:%d: expected `<char> <label>` (a character, a space, a "
                         "label), got %r" % (path, lineno, text))
    return char, label


def windows(piece_counts, max_tokens):
    """Consecutive [start, end) character ranges whose pieces fit max_tokens each.

    A character with more pieces than max_tokens has been cut to max_tokens already,
    so every window holds at least one character.
    """
    ranges = []
    start = 0
    while start < len(piece_counts):
        end, used = start, 0
        while end < len(piece_counts) and used + piece_counts[end] <= max_tokens:
            used += piece_counts[end]
            end += 1
        ranges.append((start, end))
        start = end
    return ranges


def extract_entities(tags):
    """Entities of a tag sequence as (start, end exclusive, type), the conlleval way.

    An entity starts at B-X or S-X, or at an I-X (M-X, E-X) that does not continue an
    entity of type X; it ends before a tag that does not continue it, or at E-X / S-X.
    Tags without a B/I/M/E/S prefix count as O.
    """
    entities = []
    start, entity_type = None, None
    for i, tag in enumerate(tags):
        prefix, _, tag_type = tag.partition("-")
        if prefix not in ("B", "I", "M", "E", "S"):
            prefix = "O"
        continues = start is not None and prefix in _CONTINUE and tag_type == entity_type
        if start is not None and not continues:
            entities.append((start, i, entity_type))
            start = None
        if prefix != "O" and start is None:
            start, entity_type = i, tag_type
        if prefix in ("E", "S"):
            entities.append((start, i + 1, entity_type))
            start = None
    if start is not None:
        entities.append((start, len(tags), entity_type))
    return entities


class TaggingScorer(Scorer):
    """Entity-level precision, recall and F1 (percent) over whole sentences, and loss."""

    def __init__(self, label_list):
        super().__init__()
        self._label_list = label_list
        self._windows = collections.defaultdict(list)  # eid -> [(char start, pred, gold)]

    def update(self, feature, outputs):
        super().update(feature, outputs)
        mask = np.asarray(feature["label_mask"]) == 1
        pred = np.argmax(np.asarray(outputs["logits"])[mask], axis=-1)
        gold = np.asarray(feature["label_ids"])[mask]
        if len(pred) != feature["_num_chars"]:
            raise ValueError("feature of example %d has %d first sub-tokens for %d "
                             "characters"
                             % (feature["eid"], len(pred), feature["_num_chars"]))
        self._windows[feature["eid"]].append((feature["_char_start"], pred.tolist(),
                                              gold.tolist()))

    def _sentences(self):
        """eid -> (predicted tags, gold tags) of the whole sentence."""
        sentences = {}
        for eid, parts in self._windows.items():
            pred, gold = [], []
            for start, part_pred, part_gold in sorted(parts):
                if start != len(pred):
                    raise ValueError("example %d: a window starting at character %d is "
                                     "missing" % (eid, len(pred)))
                pred += part_pred
                gold += part_gold
            sentences[eid] = ([self._label_list[i] for i in pred],
                              [self._label_list[i] for i in gold])
        return sentences

    def get_results(self):
        found = correct = expected = 0
        for pred, gold in self._sentences().values():
            pred_entities = set(extract_entities(pred))
            gold_entities = set(extract_entities(gold))
            found += len(pred_entities)
            expected += len(gold_entities)
            correct += len(pred_entities & gold_entities)
        precision = 100.0 * correct / found if found else 0.0
        recall = 100.0 * correct / expected if expected else 0.0
        f1 = (2 * precision * recall / (precision + recall)) if correct else 0.0
        return {"precision": precision, "recall": recall, "f1": f1,
                "loss": self.mean_loss()}

    def get_predictions(self):
        """dict eid -> list of predicted tags, one per character of the sentence."""
        return {eid: pred for eid, (pred, _) in self._sentences().items()}


class MsraNer(TaggingTask):
    """MSRA NER (SIGHAN 2006): NR person, NS place, NT organisation."""

    default_labels = ("O", "B-NR", "B-NS", "B-NT", "I-NR", "I-NS", "I-NT",
                      "S-NR", "S-NS", "S-NT")
    split_files = ("{split}.ner", "{split}.txt")


class PeoplesDailyNer(TaggingTask):
    """People's Daily 1998 NER: PER, LOC, ORG in BIO."""

    default_labels = ("O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG")
    split_files = ("example.{split}", "{split}.txt")


# Task name -> class; task_builder.py maps names (and their aliases) through this.
TAGGING_TASKS = {
    "msra-ner": MsraNer,
    "peoples-daily-ner": PeoplesDailyNer,
}
