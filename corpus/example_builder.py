"""Packing tokenized lines into fixed-size pre-training examples, the official ELECTRA way.

Lines of one document accumulate until they reach a target length (max_seq_length, or with
probability 0.05 a random length in [5, max_seq_length]); the accumulated lines are split into
two segments ([CLS] A [SEP] B [SEP]), or with probability 0.1 kept as one ([CLS] A [SEP]).
No TensorFlow here: the builder's job processes import this module.
"""

from model import tokenization

FEATURE_NAMES = ("input_ids", "input_mask", "segment_ids")

# Official ELECTRA sampling constants.
SINGLE_SEGMENT_PROB = 0.1
RANDOM_TARGET_PROB = 0.05
MIN_RANDOM_TARGET = 5
SINGLE_SEGMENT_TARGET = 100000


class ExampleBuilder(object):
    """Packs tokenized lines into fixed-size examples, the official way.

    Args:
        tokenizer: object with `vocab`, `tokenize` and `convert_tokens_to_ids`,
            and optionally `encode_batch_ids` (see `encode_lines`).
        max_length: the sequence length of every example, special tokens
            included.
        rng: a `random.Random`; all sampling goes through it, in the same order
            as the official code, so a seed fixes the output.
    """

    def __init__(self, tokenizer, max_length, rng, annotator=None):
        self._tokenizer = tokenizer
        self._max_length = max_length
        self._rng = rng
        # With a segmenter: a corpus.segmentation.LineAnnotator giving per-token
        # word_starts (and LERT labels) that travel with the ids. It draws no random
        # numbers, so the ids are those built without it.
        self._annotator = annotator
        self.current_extras = []
        self._cls_id = tokenizer.vocab[tokenization.CLS_TOKEN]
        self._sep_id = tokenizer.vocab[tokenization.SEP_TOKEN]
        self._target_length = max_length
        self.current_sentences = []
        self.current_length = 0
        # Tokens lost to truncation (a single line longer than an example).
        self.truncated_tokens = 0

    def add_line(self, line):
        """Add one stripped line; return a features dict if an example is done.

        An empty line ends the current document (and example), unless nothing
        has been accumulated yet.
        """
        examples = self.add_lines([line])
        return examples[0] if examples else None

    def add_lines(self, lines, notes=None):
        """Add stripped lines in order; return the examples they complete.

        The same as calling `add_line` on each, but the lines are tokenized
        in one batch. notes: per line, the (ref words, DEP pairs) of its
        reference files, for the annotator.
        """
        examples = []
        notes = notes or [(None, None)] * len(lines)
        for line, ids, (ref, deps) in zip(lines, encode_lines(self._tokenizer, lines),
                                          notes):
            extras = (self._annotator.annotate(line, ids, ref, deps)
                      if self._annotator else None)
            features = self._add_ids(line, ids, extras)
            if features:
                examples.append(features)
        return examples

    def _add_ids(self, line, ids, extras=None):
        """`add_line` for a line whose token ids are known."""
        if not line and self.current_length != 0:
            return self._create_example()
        self.current_sentences.append(ids)
        self.current_extras.append(extras)
        self.current_length += len(ids)
        if self.current_length >= self._target_length:
            return self._create_example()
        return None

    def _create_example(self):
        """Split the accumulated sentences into an example and reset."""
        first, second, in_first = self._split_segments()
        untruncated = len(first) + len(second)
        first = first[:self._max_length - 2]
        second = second[:max(0, self._max_length - len(first) - 3)]
        self.truncated_tokens += untruncated - len(first) - len(second)
        extras = self._segment_extras(in_first, len(first), len(second))
        self.current_sentences = []
        self.current_extras = []
        self.current_length = 0
        if self._rng.random() < RANDOM_TARGET_PROB:
            self._target_length = self._rng.randint(MIN_RANDOM_TARGET,
                                                    self._max_length)
        else:
            self._target_length = self._max_length
        return self._make_features(first, second, extras)

    def _segment_extras(self, in_first, first_length, second_length):
        """{feature: (segment A values, segment B values)} for the annotator's features,
        cut like the ids; None without an annotator."""
        if self._annotator is None:
            return None
        out = {}
        for name in self._annotator.feature_names:
            first, second = [], []
            for extras, to_first in zip(self.current_extras, in_first):
                (first if to_first else second).extend(extras[name])
            out[name] = (first[:first_length], second[:second_length])
        return out

    def _split_segments(self):
        """Assign whole sentences to segment A or B (official rule).

        Returns the two segments' ids and, per sentence, whether it went to A.
        """
        if self._rng.random() < SINGLE_SEGMENT_PROB:
            first_target = SINGLE_SEGMENT_TARGET
        else:
            first_target = (self._target_length - 3) // 2
        first, second, in_first = [], [], []
        for sentence in self.current_sentences:
            # The rng is only consulted when the earlier conditions fail, as
            # in the official code: changing that would change every output.
            if (not first
                    or len(first) + len(sentence) < first_target
                    or (not second and len(first) < first_target
                        and self._rng.random() < 0.5)):
                first += sentence
                in_first.append(True)
            else:
                second += sentence
                in_first.append(False)
        return first, second, in_first

    def _make_features(self, first, second, extras=None):
        """Return input_ids/input_mask/segment_ids (and the annotator's features),
        zero-padded."""
        input_ids = [self._cls_id] + first + [self._sep_id]
        segment_ids = [0] * len(input_ids)
        if second:
            input_ids += second + [self._sep_id]
            segment_ids += [1] * (len(second) + 1)
        input_mask = [1] * len(input_ids)
        padding = [0] * (self._max_length - len(input_ids))
        features = {
            "input_ids": input_ids + padding,
            "input_mask": input_mask + padding,
            "segment_ids": segment_ids + padding,
        }
        for name, (values_a, values_b) in (extras or {}).items():
            # [CLS] and [SEP] start a word of their own and carry no label.
            special = 1 if name == "word_starts" else 0
            values = [special] + values_a + [special]
            if second:
                values += values_b + [special]
            features[name] = values + padding
        return features


def encode_lines(tokenizer, lines):
    """Token ids of each line, in one call if the tokenizer can batch."""
    if hasattr(tokenizer, "encode_batch_ids"):
        return tokenizer.encode_batch_ids(lines)
    return [tokenizer.convert_tokens_to_ids(tokenizer.tokenize(line))
            for line in lines]
