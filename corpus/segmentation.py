"""Word boundaries and linguistic labels for whole-word masking and LERT.

Used by build_pretraining_dataset.py (no TensorFlow here: the builder's jobs never import
it). A line's words come from jieba (`--segmenter jieba`) or from a reference file
(`--segmenter ref --ref-file`, e.g. LTP output, words separated by spaces). The line's
WordPiece tokens are aligned to its characters, and each token gets:

  word_starts  1 where the token starts a word; also 1 for [CLS]/[SEP] and for tokens whose
               word start is ambiguous (a token that could not be aligned, a character in no
               word). A WordPiece `##` continuation is never a start.
  pos_ids, ner_ids, dep_ids (--linguistic-labels)  label index + 1 in POS_LABELS /
               NER_LABELS / DEP_LABELS (model/linguistic_labels.py), 0 = no label
               (special tokens, padding, no annotation): the word's label copied to its
               tokens (NER in BIES form).

Where the segmentation and WordPiece disagree (a word boundary inside a token, e.g. jieba
splits "2019年" differently from a vocab piece), the words on both sides of that boundary
fall back to token-level starts (every non-`##` token a start) and the boundary is counted.
"""

from model import tokenization
from model.linguistic_labels import DEP_LABELS, NER_LABELS, POS_LABELS
from util.errors import InputError

SEGMENTERS = ("none", "jieba", "ref")

# jieba.posseg tags (ICTCLAS/PKU style: every tag of jieba's dictionary and of its HMM for
# unknown words) -> LTP POS tags. Note the traps: jieba `nt` is an organisation (LTP `ni`)
# while LTP `nt` is a time noun (jieba `t`); jieba `nr*` persons are LTP `nh`; jieba `s`
# place words are LTP `nl`, `f` direction words LTP `nd`. "%" collects what LTP has no tag
# for (jieba `g` morphemes, `un` unknown).
JIEBA_TO_LTP_POS = {
    "a": "a", "ad": "a", "ag": "a", "an": "n",
    "b": "b", "bg": "b",
    "c": "c",
    "d": "d", "df": "d", "dg": "d",
    "e": "e",
    "eng": "ws", "en": "ws",
    "f": "nd",
    "g": "%",
    "h": "h",
    "i": "i", "in": "i",
    "j": "j", "jn": "j",
    "k": "k",
    "l": "i", "ln": "i",
    "m": "m", "mg": "m", "mq": "m",
    "n": "n", "ng": "n",
    "nr": "nh", "nrfg": "nh", "nrt": "nh",
    "ns": "ns",
    "nt": "ni",
    "nz": "nz",
    "o": "o",
    "p": "p",
    "q": "q", "qe": "q", "qg": "q",
    "r": "r", "rg": "r", "rr": "r", "rz": "r",
    "s": "nl",
    "t": "nt", "tg": "nt",
    "u": "u", "ud": "u", "ug": "u", "uj": "u", "ul": "u", "uv": "u", "uz": "u",
    "un": "%",
    "v": "v", "vd": "v", "vg": "v", "vi": "v", "vn": "v", "vq": "v",
    "w": "wp", "x": "wp",
    "y": "u", "yg": "u",
    "z": "z", "zg": "z",
}

# jieba tags that name entities -> the LTP NER type (Nh person, Ns place, Ni organisation).
JIEBA_NER_TYPES = {"nr": "Nh", "nrfg": "Nh", "nrt": "Nh", "ns": "Ns", "nt": "Ni"}

_POS_INDEX = {label: i for i, label in enumerate(POS_LABELS)}
_NER_INDEX = {label: i for i, label in enumerate(NER_LABELS)}
_DEP_INDEX = {label: i for i, label in enumerate(DEP_LABELS)}


# ---------------------------------------------------------------------------
# Segmenters
# ---------------------------------------------------------------------------

def _import_jieba():
    try:
        import jieba
        import jieba.posseg
    except ImportError as err:
        raise InputError("--segmenter jieba needs the jieba package: "
                         "pip install jieba==0.42.1") from err
    jieba.setLogLevel(60)  # its dictionary-loading chatter would drown the progress lines
    return jieba


def jieba_words(line, with_pos=False):
    """jieba's words of `line` (HMM on), as [(word, jieba tag or None)]."""
    jieba = _import_jieba()
    if with_pos:
        return [(pair.word, pair.flag) for pair in jieba.posseg.cut(line)]
    return [(word, None) for word in jieba.cut(line)]


def ner_type(jieba_tag):
    """Nh/Ns/Ni for entity tags, None otherwise."""
    return JIEBA_NER_TYPES.get(jieba_tag)


def bies(entity_type, num_tokens):
    """NER labels of an entity's tokens: S-X alone, else B-X I-X ... E-X; O if no type."""
    if entity_type is None:
        return ["O"] * num_tokens
    if num_tokens == 1:
        return ["S-" + entity_type]
    return (["B-" + entity_type] + ["I-" + entity_type] * (num_tokens - 2)
            + ["E-" + entity_type])


# ---------------------------------------------------------------------------
# Reference files (word boundaries, DEP annotations)
# ---------------------------------------------------------------------------

def ref_words(ref_line):
    """Words of a --ref-file line: separated by whitespace."""
    return ref_line.split()


def dep_words(dep_line, path, number):
    """(word, DEP label) pairs of a --dep-file line: `word/LABEL` separated by spaces."""
    pairs = []
    for item in dep_line.split():
        word, sep, label = item.rpartition("/")
        if not sep or not word:
            raise InputError("%s:%d: %r is not word/DEP (expected e.g. 他/SBV 来/HED)"
                             % (path, number, item))
        if label not in _DEP_INDEX:
            raise InputError("%s:%d: unknown DEP label %r in %r; expected one of %s"
                             % (path, number, label, item, " ".join(DEP_LABELS)))
        pairs.append((word, label))
    return pairs


def same_text(line, words):
    """True if the words spell the line (whitespace ignored on both sides)."""
    return "".join(line.split()) == "".join("".join(w.split()) for w in words)


# ---------------------------------------------------------------------------
# Aligning tokens to characters
# ---------------------------------------------------------------------------

def _normalized_chars(line, do_lower_case, strip_accents):
    """The line as the BasicTokenizer sees it, one entry per output char:
    (normalised text, index of the source character in `line`)."""
    out = []
    for i, char in enumerate(line):
        if char in ("\x00", "\ufffd") or tokenization.is_control(char):
            continue
        if tokenization.is_whitespace(char):
            out.append((" ", i))
            continue
        text = char.lower() if do_lower_case else char
        if strip_accents:
            text = tokenization._remove_accents(text)
        out.extend((c, i) for c in text)
    return out


def _is_split_char(char):
    return (char == " " or tokenization.is_punctuation(char)
            or tokenization.is_cjk_char(char))


def token_spans(line, tokens, do_lower_case=True, strip_accents=None):
    """[start, end) character span in `line` of each WordPiece token, None if unknown.

    The tokens are matched in order against the normalised line (lower-casing and accent
    stripping applied per character); [UNK] takes one basic word. If a token does not
    match (e.g. a context-dependent lower-casing), it and every later token get None.
    """
    if strip_accents is None:
        strip_accents = do_lower_case
    chars = _normalized_chars(line, do_lower_case, strip_accents)
    text = "".join(c for c, _ in chars)
    spans = []
    pos = 0
    for token in tokens:
        if token.startswith(tokenization.WORDPIECE_PREFIX) and len(token) > 2:
            piece = token[2:]
        else:
            while pos < len(text) and text[pos] == " ":
                pos += 1
            piece = token
        if token == tokenization.UNK_TOKEN and pos < len(text):
            end = pos + 1
            if not _is_split_char(text[pos]):
                while end < len(text) and not _is_split_char(text[end]):
                    end += 1
            length = end - pos
        elif text.startswith(piece, pos):
            length = len(piece)
        else:
            return spans + [None] * (len(tokens) - len(spans))
        spans.append((chars[pos][1], chars[pos + length - 1][1] + 1))
        pos += length
    return spans


def char_words(line, words):
    """Per character of `line`: the index of its word, -1 for whitespace (or if unmatched).

    `words` spell the line once whitespace is removed on both sides.
    """
    owner = [-1] * len(line)
    i = 0
    for k, word in enumerate(words):
        for char in word:
            if char.isspace():
                continue
            while i < len(line) and line[i].isspace():
                i += 1
            if i >= len(line) or line[i] != char:
                return [-1] * len(line)
            owner[i] = k
            i += 1
    return owner


def feature_names(linguistic):
    """The features a LineAnnotator adds to each example."""
    return ("word_starts",) + (("pos_ids", "ner_ids", "dep_ids") if linguistic else ())


class LineAnnotator(object):
    """Per-token word_starts (and LERT labels) of corpus lines; counts disagreements.

    segmenter: "jieba" or "ref". linguistic: also pos_ids/ner_ids/dep_ids (jieba only).
    """

    def __init__(self, tokenizer, segmenter, linguistic=False):
        self._tokenizer = tokenizer
        self._segmenter = segmenter
        self._linguistic = linguistic
        self._lower = getattr(tokenizer, "do_lower_case", True)
        self._strip = getattr(tokenizer, "strip_accents", None)
        if self._strip is None and hasattr(tokenizer, "basic_tokenizer"):
            self._strip = tokenizer.basic_tokenizer.strip_accents
        self.boundary_mismatches = 0  # word boundaries that fell inside a token
        self.unaligned_tokens = 0  # tokens that could not be placed in the line
        self.words = 0
        self.feature_names = feature_names(linguistic)

    def annotate(self, line, ids, ref=None, deps=None):
        """{feature: per-token list} for a line with token ids `ids`.

        ref: the --ref-file words of the line (segmenter "ref"); deps: its
        (word, DEP label) pairs from --dep-file, if any.
        """
        if not ids:
            return {name: [] for name in self.feature_names}
        if self._segmenter == "ref":
            tagged = [(w, None) for w in ref]
        else:
            tagged = jieba_words(line, with_pos=self._linguistic)
        tagged = [(w, tag) for w, tag in tagged if w.strip()]
        self.words += len(tagged)
        tokens = self._tokenizer.convert_ids_to_tokens(ids)
        spans = token_spans(line, tokens, self._lower, self._strip)
        owner = char_words(line, [w for w, _ in tagged])
        out = {"word_starts": self._word_starts(tokens, spans, owner)}
        if self._linguistic:
            out.update(self._labels(tokens, spans, owner, tagged, line, deps))
        return out

    def _word_starts(self, tokens, spans, owner):
        # Words whose boundary with a neighbour falls inside a token: token-level starts.
        conflicting = set()
        for span in spans:
            if span is None:
                continue
            start, end = span
            for j in range(start + 1, end):
                if owner[j] != owner[j - 1] and owner[j] != -1 and owner[j - 1] != -1:
                    self.boundary_mismatches += 1
                    conflicting.update((owner[j], owner[j - 1]))
        starts = []
        for token, span in zip(tokens, spans):
            if token.startswith(tokenization.WORDPIECE_PREFIX) and len(token) > 2:
                starts.append(0)
            elif span is None:
                self.unaligned_tokens += 1
                starts.append(1)
            else:
                k = owner[span[0]]
                first = k == -1 or k in conflicting or not _inside_word(owner, span[0], k)
                starts.append(1 if first else 0)
        return starts

    def _labels(self, tokens, spans, owner, tagged, line, deps):
        word_of = [owner[s[0]] if s is not None else -1 for s in spans]
        pos_ids = [(_POS_INDEX[JIEBA_TO_LTP_POS.get(tagged[k][1], "%")] + 1) if k >= 0 else 0
                   for k in word_of]
        ner_ids = [0] * len(tokens)
        for k in set(word_of) - {-1}:
            members = [t for t, w in enumerate(word_of) if w == k]
            for t, label in zip(members, bies(ner_type(tagged[k][1]), len(members))):
                ner_ids[t] = _NER_INDEX[label] + 1
        dep_ids = [0] * len(tokens)
        if deps:
            dep_owner = char_words(line, [w for w, _ in deps])
            for t, span in enumerate(spans):
                if span is not None and dep_owner[span[0]] >= 0:
                    dep_ids[t] = _DEP_INDEX[deps[dep_owner[span[0]]][1]] + 1
        return {"pos_ids": pos_ids, "ner_ids": ner_ids, "dep_ids": dep_ids}


def _inside_word(owner, index, k):
    """True if a character of word k precedes `index` (ignoring whitespace between)."""
    j = index - 1
    while j >= 0 and owner[j] == -1:
        j -= 1
    return j >= 0 and owner[j] == k
