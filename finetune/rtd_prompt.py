"""Prompt-based classification through ELECTRA's replaced-token-detection head (the
fine-tuning hparam use_rtd_prompt; pure Python: no TensorFlow here).

ELECTRA's discriminator was pre-trained to tell, token by token, whether a token is the
original one or a replacement. A classification task is asked the same question: each
label has one or more label words; an example becomes one sequence per label word, the
texts and that word put into a template (rtd_prompt_template, e.g. "{text_a}总之很{label}。"
with the words {"0": "差", "1": "好"}), and the pre-trained head, unchanged, scores how
original the word looks in place:

    score(word)  = mean over the word's tokens of log P(original) = log sigmoid(-logit)
    score(label) = mean over the label's words of score(word); the best label wins

as in "ELECTRA is a zero-shot learner, too" (Ni & Kao 2022) and, for training,
"Prompting ELECTRA: few-shot learning with discriminative pre-trained models" (Xia et
al., EMNLP 2022), which fill each candidate into the template as its own sequence and
train the whole model with a sigmoid cross-entropy on the candidates' logits: the gold
label's word is "original", every other label's word "replaced". Here a word of several
tokens is averaged over its tokens, a label of several words over its words, and an
example's loss is the mean over its labels (finetune/heads.py rtd_prompt_head).

Each sequence is [CLS] filled template [SEP], all segment 0. The texts are cut (the longer
first, as BERT cuts pairs) to what the template and the longest label word leave of
max_seq_length, so every candidate of an example sees the same context.
"""

import re

from finetune.classification import ClassificationScorer, truncate_texts
from finetune.task import FeatureSpec
from model.tokenization import CLS_TOKEN, SEP_TOKEN, UNK_TOKEN
from util.errors import InputError

TEXT_A, TEXT_B, LABEL = "text_a", "text_b", "label"  # the template's placeholders
PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
TEMPLATE_KEY, WORDS_KEY = "rtd_prompt_template", "rtd_prompt_label_words"  # (in errors)


def parse_template(template, sentence_pair):
    """The template as a list of pieces: a placeholder name (TEXT_A, TEXT_B, LABEL) or a
    literal string; InputError naming the hparam and its value if it is not a template
    for this task (each of {text_a}, {label} and, for pair tasks, {text_b} exactly once)."""
    def fail(what):
        raise InputError("%s %r: %s" % (TEMPLATE_KEY, template, what))
    wanted = [TEXT_A, TEXT_B, LABEL] if sentence_pair else [TEXT_A, LABEL]
    pieces, at = [], 0
    for match in PLACEHOLDER.finditer(template):
        pieces.append(template[at:match.start()])
        name = match.group(1)
        if name not in (TEXT_A, TEXT_B, LABEL):
            fail("unknown placeholder {%s}; use %s" % (
                name, ", ".join("{%s}" % n for n in wanted)))
        pieces.append((name,))
        at = match.end()
    pieces.append(template[at:])
    if any("{" in p or "}" in p for p in pieces if isinstance(p, str)):
        fail("a lone { or }: placeholders are {text_a}, {text_b} and {label}")
    names = [p[0] for p in pieces if isinstance(p, tuple)]
    if not sentence_pair and TEXT_B in names:
        fail("this task has one text per example: drop {text_b}")
    for name in wanted:
        if names.count(name) != 1:
            fail("needs {%s} exactly once (found %d)" % (name, names.count(name)))
    return [p for p in pieces if p != ""]


class RtdPrompt(object):
    """A task's template and label words, checked against its labels and vocab, and the
    featurisation of its examples into one sequence per label word.

    pieces: the parsed template, literals as token lists. words: [(label index, tokens)]
    in label order, a label's words in the order given.
    """

    def __init__(self, template, label_words, task):
        self.template = template
        self.label_words = label_words
        self.task = task
        self.max_seq_length = task.config.max_seq_length
        pieces = parse_template(template, task.sentence_pair)
        self.pieces = [p if isinstance(p, tuple) else self._tokens(TEMPLATE_KEY, p, template)
                       for p in pieces]
        self.words = self._label_words(label_words)
        self.words_in_label = [sum(1 for i, _ in self.words if i == label)
                               for label in range(len(task.label_list))]
        self.text_budget = self._text_budget()

    @classmethod
    def from_config(cls, task):
        config = task.config
        return cls(config.rtd_prompt_template, config.rtd_prompt_label_words, task)

    def _tokens(self, key, text, value):
        """text's tokens; InputError naming key and value if it has none or one that the
        vocab does not hold (it would be [UNK]: the model never saw it)."""
        tokens = self.task.tokenizer.tokenize(text)
        ids = self.task.tokenizer.convert_tokens_to_ids(tokens)
        unk = self.task.tokenizer.vocab[UNK_TOKEN]
        if unk in ids:
            shown = " ".join(UNK_TOKEN if i == unk else t for t, i in zip(tokens, ids))
            raise InputError("%s %r: %r tokenises to %s, [UNK] standing for text the "
                             "vocab has no token for (the model never saw it): use words "
                             "the vocab holds" % (key, value, text, shown))
        return tokens

    def _label_words(self, label_words):
        """[(label index, word tokens)]; InputError unless every label of the task has
        one or more non-empty words and every key is a label."""
        task = self.task
        if not isinstance(label_words, dict):
            raise InputError("%s %r: expected {label: word or [words]}" % (
                WORDS_KEY, label_words))
        by_label = {}
        for key, words in label_words.items():
            label = task.label_aliases.get(key, key)
            if label not in task.label_list:
                raise InputError("%s %r: %r is not a label of %s; its labels are %s" % (
                    WORDS_KEY, label_words, key, task.name,
                    ", ".join(task.label_list)))
            words = [words] if isinstance(words, str) else words
            if not (isinstance(words, list) and words
                    and all(isinstance(w, str) and w.strip() for w in words)):
                raise InputError("%s %r: label %r needs a word or a non-empty list of "
                                 "words, got %r" % (WORDS_KEY, label_words, key, words))
            by_label.setdefault(label, []).extend(words)
        missing = [label for label in task.label_list if label not in by_label]
        if missing:
            raise InputError("%s %r: no word for the label(s) %s of %s" % (
                WORDS_KEY, label_words, ", ".join(repr(m) for m in missing),
                task.name))
        words = [(task.label_id(label), word, self._tokens(WORDS_KEY, word, label_words))
                 for label in task.label_list for word in by_label[label]]
        for label, word, tokens in words:
            if not tokens:
                raise InputError("%s %r: the word %r of the label %r has no tokens" % (
                    WORDS_KEY, label_words, word, task.label_list[label]))
        return [(label, tokens) for label, _, tokens in words]

    def _text_budget(self):
        """Tokens left for the texts; InputError if the template and the longest label
        word leave fewer than one per text."""
        fixed = 2 + sum(len(p) for p in self.pieces if isinstance(p, list))  # [CLS], [SEP]
        longest = max(self.words, key=lambda word: len(word[1]))[1]
        texts = sum(1 for p in self.pieces if p in ((TEXT_A,), (TEXT_B,)))
        budget = self.max_seq_length - fixed - len(longest)
        if budget < texts:
            raise InputError(
                "%s %r with the label word %r takes %d of max_seq_length %d tokens ([CLS] "
                "and [SEP] included), leaving %d for %d text(s): shorten the template or "
                "the label words, or raise max_seq_length" % (
                    TEMPLATE_KEY, self.template, "".join(longest).replace("##", ""),
                    fixed + len(longest), self.max_seq_length, max(budget, 0), texts))
        return budget

    def settings(self):
        """What shapes the features besides the task's own settings (cache keys)."""
        return {TEMPLATE_KEY: self.template, WORDS_KEY: self.label_words}

    def features(self, example, tokens_a, tokens_b):
        """One feature per label word of the example (texts already tokenised)."""
        tokens_a, tokens_b = truncate_texts(tokens_a, tokens_b, self.text_budget)
        texts = {TEXT_A: tokens_a, TEXT_B: tokens_b}
        gold = [self.task.label_id(label) for label in example.gold_labels]
        trains_on = self.task.label_id(example.label) if example.label is not None else None
        return [self._feature(example, texts, label, word, label == trains_on, gold)
                for label, word in self.words]

    def _feature(self, example, texts, label, word, is_gold, gold):
        tokens, word_at = [CLS_TOKEN], None
        for piece in self.pieces:
            if piece == (LABEL,):
                word_at = len(tokens)
                tokens += word
            else:
                tokens += texts[piece[0]] if isinstance(piece, tuple) else piece
        tokens.append(SEP_TOKEN)
        length = self.max_seq_length
        padding = [0] * (length - len(tokens))
        word_mask = [0] * length
        word_mask[word_at:word_at + len(word)] = [1] * len(word)
        return {
            "input_ids": self.task.tokenizer.convert_tokens_to_ids(tokens) + padding,
            "input_mask": [1] * len(tokens) + padding,
            "segment_ids": [0] * length,
            "label_word_mask": word_mask,  # the label word's tokens: the ones scored
            "is_gold": int(is_gold),  # 1: its word should look original, 0: replaced
            "words_in_label": self.words_in_label[label],  # its share of the loss
            "eid": example.eid,
            "_candidate_label": label,  # (for the scorer; not a model input)
            "_gold_ids": gold,
        }

    def feature_specs(self):
        length = self.max_seq_length
        return [FeatureSpec("input_ids", [length]), FeatureSpec("input_mask", [length]),
                FeatureSpec("segment_ids", [length]), FeatureSpec("label_word_mask", [length]),
                FeatureSpec("is_gold", []), FeatureSpec("words_in_label", []),
                FeatureSpec("eid", [])]


class RtdPromptScorer(object):
    """Collects the word scores of an example's sequences (they arrive one by one, in
    order) and scores each example as a ClassificationScorer does (accuracy, loss,
    macro-F1 where the task reports it), its logits the labels' mean word scores and its
    loss the sum of its sequences' (the mean over labels, heads.rtd_prompt_head)."""

    def __init__(self, label_list, report_macro_f1=False):
        self._label_list = label_list
        self._report_macro_f1 = report_macro_f1
        self._examples = {}  # eid -> {"scores": [[word scores] per label], "loss", "gold"}

    def update(self, feature, outputs):
        entry = self._examples.setdefault(feature["eid"], {
            "scores": [[] for _ in self._label_list], "loss": 0.0,
            "gold": feature["_gold_ids"]})
        entry["scores"][feature["_candidate_label"]].append(float(outputs["word_score"]))
        entry["loss"] += float(outputs["loss"])

    def label_scores(self):
        """{eid: [score of each label]} (the mean of its words' scores)."""
        return {eid: [sum(s) / len(s) for s in entry["scores"]]
                for eid, entry in self._examples.items()}

    def _classification(self):
        scorer = ClassificationScorer(self._label_list, self._report_macro_f1)
        for eid, scores in self.label_scores().items():
            entry = self._examples[eid]
            scorer.update({"eid": eid, "_gold_ids": entry["gold"]},
                          {"logits": scores, "loss": entry["loss"]})
        return scorer

    def get_results(self):
        return self._classification().get_results()

    def get_predictions(self):
        return self._classification().get_predictions()


class RtdPromptTask(object):
    """Mixed in before a ClassificationTask class (prompted): the task reads its data as
    usual, but featurises, is scored and gets its head as rtd-prompt classification."""

    head_name = "rtd_prompt"

    def __init__(self, config, name, tokenizer):
        super().__init__(config, name, tokenizer)
        # Trial dirs of their own: a prompt run does not move a fine-tuned model aside,
        # nor a few-shot run the zero-shot copy of the pre-trained weights.
        self.model_suffix = "_rtd_prompt" + ("_zero_shot" if config.zero_shot else "")
        # Checked now, when the runner builds its tasks: before anything is written.
        self.prompt = RtdPrompt.from_config(self)

    def featurize(self, example, is_training):
        return [feature for a, b in self.token_orders(example, is_training)
                for feature in self.prompt.features(example, a, b)]

    def feature_specs(self):
        return self.prompt.feature_specs()

    def featurization_settings(self):
        return self.prompt.settings()

    def get_scorer(self, split):
        return RtdPromptScorer(self.label_list, self.report_macro_f1)


def prompted(task_class):
    """task_class (a ClassificationTask) as an rtd-prompt task."""
    return type("RtdPrompt" + task_class.__name__, (RtdPromptTask, task_class), {})
