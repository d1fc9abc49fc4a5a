"""Answer decoding for span-extraction QA: from one window's head outputs to valid
(start, end) candidates, and from a question's candidates over all its windows to the
n-best answers (context substrings). Shared by the training scorer (finetune/qa.py),
finetune.predict and the exported SavedModel's callers.

Independent head (joint_prediction false): every pair among the top n_best_size starts and
ends, scored by start + end logit (BERT's SQuAD recipe). Joint head (the official default):
the beam of starts and, per start, its beam of ends, scored by start + end log-probability.
A candidate is valid when both ends are context tokens, start <= end, it spans at most
max_answer_length tokens and the window is the start token's max-context window.
"""

import collections

import numpy as np

_Candidate = collections.namedtuple("_Candidate", ["score", "start_char", "end_char",
                                                   "start_logit", "end_logit"])


def _top_indexes(logits, n):
    """Indexes of the n largest logits, largest first (stable on ties)."""
    logits = np.asarray(logits, dtype=np.float64).reshape(-1)
    return np.argsort(-logits, kind="stable")[:n].tolist()


def _valid_candidates(feature, pairs, max_answer_length):
    """_Candidate tuples of the (start, end, start score, end score) pairs that are valid:
    both context tokens, start <= end, at most max_answer_length tokens, and the window
    is the start token's max-context window."""
    token_to_char = feature["token_to_char"]
    max_context = feature["token_is_max_context"]
    candidates = []
    for start, end, start_score, end_score in pairs:
        if start not in token_to_char or not max_context.get(start, False):
            continue
        if end not in token_to_char or end < start or end - start + 1 > max_answer_length:
            continue
        candidates.append(_Candidate(start_score + end_score, token_to_char[start][0],
                                     token_to_char[end][1], start_score, end_score))
    return candidates


def window_candidates(feature, start_logits, end_logits, n_best_size, max_answer_length):
    """Valid candidates of one window of the independent head: every pair among the top
    n_best_size starts and ends, scored by start + end logit."""
    ends = _top_indexes(end_logits, n_best_size)
    pairs = ((start, end, float(start_logits[start]), float(end_logits[end]))
             for start in _top_indexes(start_logits, n_best_size) for end in ends)
    return _valid_candidates(feature, pairs, max_answer_length)


def beam_candidates(feature, outputs, max_answer_length):
    """Valid candidates of one window of the joint head: for each beam start k, its beam
    of ends, scored by start + end log-probability (the official ranking)."""
    pairs = ((int(start), int(end), float(start_lp), float(end_lp))
             for start, start_lp, ends, end_lps in zip(
                 outputs["start_top_index"], outputs["start_top_log_probs"],
                 outputs["end_top_index"], outputs["end_top_log_probs"])
             for end, end_lp in zip(ends, end_lps))
    return _valid_candidates(feature, pairs, max_answer_length)


def output_candidates(feature, outputs, config):
    """The candidates of one window from the head's outputs (joint or independent)."""
    if "start_top_index" in outputs:
        return beam_candidates(feature, outputs, config.max_answer_length)
    return window_candidates(feature, outputs["start_logits"], outputs["end_logits"],
                             config.n_best_size, config.max_answer_length)


def nbest_answers(context, candidates, n_best_size):
    """Top n_best_size distinct answer texts with scores, probabilities and character
    offsets (text = context[start:end]; None for the empty fallback answer)."""
    ranked = sorted(candidates, key=lambda c: c.score, reverse=True)
    entries, seen = [], set()
    for candidate in ranked:
        text = context[candidate.start_char:candidate.end_char]
        if text in seen:
            continue
        seen.add(text)
        entries.append({"text": text, "score": candidate.score,
                        "start": candidate.start_char, "end": candidate.end_char,
                        "start_logit": candidate.start_logit,
                        "end_logit": candidate.end_logit})
        if len(entries) >= n_best_size:
            break
    if not entries:
        # No valid span in any window: predict the empty answer (scores 0).
        entries.append({"text": "", "score": 0.0, "start": None, "end": None,
                        "start_logit": 0.0, "end_logit": 0.0})
    scores = np.array([entry["score"] for entry in entries])
    probs = np.exp(scores - scores.max())
    probs /= probs.sum()
    for entry, prob in zip(entries, probs):
        entry["probability"] = float(prob)
    return entries
