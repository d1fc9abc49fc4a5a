"""The official ELECTRA span-QA heads: the joint one (end given the start), used for CMRC
2018 and DRCD unless `joint_prediction` is false, and the independent one.

- Answer mask: context tokens (segment 1, input_mask 1) plus [CLS]; every other position
  gets -1000 added to its start and end logits.
- Start logits: dense(1) `dense` over the final hidden states (no dropout, as in the
  official head).
- End logits given a start s: dense(1) `dense_1` over dense(512, gelu) `qa_hidden` of
  [h_s ; h_j] for every position j (the official graph calls the squeeze op `qa_logits`,
  not the layer). Training conditions on the gold start; prediction keeps
  the `beam_size` best starts by log-softmax and, for each, the `beam_size` best ends.
- Loss: mean of the start and end cross-entropies, plus `answerable_weight` x a sigmoid
  cross-entropy of an "is impossible" logit (`answerable_classifier`) from [CLS] (and, with
  `answerable_uses_start_logits`, the start-probability-weighted hidden vector through a
  dense(512, gelu) `dense_2`) through dense(1) `dense_3` (`dense_2` without the start
  logits). CMRC 2018 and DRCD have no unanswerable questions: its target is 0.

Both 512-wide layers use the exact GELU (`modeling.gelu`) whatever the encoder's
`hidden_act`, as the official head calls `modeling.gelu` itself: a model whose config says
"gelu_new", "relu" or "linear" gets the official head all the same.

`qa_hidden` is one [2H, 512] kernel as in the official code, applied as h_s W_top +
h_j W_bottom (the same sum the concatenation gives) so that no [B, beam, L, 2H] tensor is
built.
"""

import tensorflow.compat.v1 as tf

from model import modeling

MASK_PENALTY = 1000.0  # added (negated) to the logits of positions outside the answer mask
HIDDEN_UNITS = 512  # width of qa_hidden and of the answerable classifier's hidden layer
ACTIVATION = modeling.gelu  # of both: the official head's own, not the encoder's hidden_act


class LayerNames(object):
    """The names tf.layers.dense gives unnamed layers of one scope in creation order:
    dense, dense_1, dense_2, ... (layers with a name, like qa_hidden, do not count)."""

    def __init__(self):
        self._count = 0

    def next(self):
        name = "dense" if self._count == 0 else "dense_%d" % self._count
        self._count += 1
        return name


def answer_mask(input_mask, segment_ids):
    """[B, L] float 1.0 where an answer may start or end: context tokens and [CLS]."""
    seq_length = modeling.get_shape_list(input_mask)[1]
    mask = tf.cast(input_mask, tf.float32) * tf.cast(segment_ids, tf.float32)
    return tf.minimum(mask + tf.one_hot(0, seq_length), 1.0)


def answer_mask_penalty(input_mask, segment_ids):
    """[B, L]: 0 where an answer may start or end, -1000 elsewhere (added to logits)."""
    return MASK_PENALTY * (answer_mask(input_mask, segment_ids) - 1.0)


def _cross_entropy(logits, positions):
    """-log softmax(logits)[positions] over the last axis: [B, L], [B] -> [B]."""
    return tf.nn.sparse_softmax_cross_entropy_with_logits(labels=positions, logits=logits)


class _EndLayers(object):
    """qa_hidden + the end logits' dense(1) (end_name): end logits of every position for
    given start vectors."""

    def __init__(self, width, end_name):
        with tf.variable_scope("qa_hidden"):
            kernel = tf.get_variable("kernel", [2 * width, HIDDEN_UNITS],
                                     initializer=tf.glorot_uniform_initializer())
            self._bias = tf.get_variable("bias", [HIDDEN_UNITS],
                                         initializer=tf.zeros_initializer())
        self._start_kernel, self._end_kernel = kernel[:width], kernel[width:]
        self._end_name = end_name

    def __call__(self, start_vectors, hidden):
        """start_vectors [B, K, H], hidden [B, L, H] -> end logits [B, K, L]."""
        from_start = tf.einsum("bkh,hu->bku", start_vectors, self._start_kernel)
        from_end = tf.einsum("blh,hu->blu", hidden, self._end_kernel)
        x = ACTIVATION(from_start[:, :, None, :] + from_end[:, None, :, :]
                       + self._bias)  # [B, K, L, 512]
        with tf.variable_scope(self._end_name, reuse=tf.AUTO_REUSE):
            return tf.squeeze(_dense1(x), -1)


def _dense1(x):
    """dense(1) with variables kernel/bias in the current scope (tf.layers.dense names)."""
    kernel = tf.get_variable("kernel", [x.shape[-1], 1],
                             initializer=tf.glorot_uniform_initializer())
    bias = tf.get_variable("bias", [1], initializer=tf.zeros_initializer())
    return tf.tensordot(x, kernel, axes=[[x.shape.ndims - 1], [0]]) + bias


def _answerable_logit(hidden, start_logits, config, names):
    """[B] "is impossible" logit from [CLS] (+ the start-probability-weighted vector)."""
    features = hidden[:, 0]  # [B, H]
    if config.answerable_uses_start_logits:
        start_p = tf.nn.softmax(start_logits)  # [B, L]
        weighted = tf.einsum("bl,blh->bh", start_p, hidden)
        features = modeling.dense(tf.concat([features, weighted], -1), HIDDEN_UNITS,
                                  names.next(), activation=ACTIVATION)  # [B, 512]
    return tf.squeeze(modeling.dense(features, 1, names.next()), -1)


def _answerable_term(hidden, start_logits, config, names):
    """(answerable_weight x its sigmoid cross-entropy [B], the "is impossible" logit [B]),
    zeros without `answerable_classifier`. Both official QA heads have it."""
    if not config.answerable_classifier:
        zeros = tf.zeros_like(start_logits[:, 0])
        return zeros, zeros
    logit = _answerable_logit(hidden, start_logits, config, names)
    impossible = tf.zeros_like(logit)  # CMRC 2018 and DRCD have no unanswerable questions
    return config.answerable_weight * tf.nn.sigmoid_cross_entropy_with_logits(
        labels=impossible, logits=logit), logit


def independent_qa_head(hidden, features, config):
    """joint_prediction false: hidden [B, L, H] -> start logits (`dense`) and end logits
    (`dense_1`) [B, L], both with the answer mask, no dropout; the loss is the mean of the
    two cross-entropies plus the answerable classifier's term (`dense_2`, `dense_3`)."""
    hidden = tf.cast(hidden, tf.float32)
    names = LayerNames()
    penalty = answer_mask_penalty(features["input_mask"], features["segment_ids"])
    start_logits = tf.squeeze(modeling.dense(hidden, 1, names.next()), -1) + penalty
    end_logits = tf.squeeze(modeling.dense(hidden, 1, names.next()), -1) + penalty
    losses = 0.5 * (_cross_entropy(start_logits, features["start_positions"]) +
                    _cross_entropy(end_logits, features["end_positions"]))  # [B]
    answerable_loss, answerable_logit = _answerable_term(hidden, start_logits, config, names)
    return losses + answerable_loss, {"start_logits": start_logits, "end_logits": end_logits,
                                      "answerable_logit": answerable_logit}


def joint_qa_head(hidden, features, config, is_training):
    """hidden [B, L, H] (the encoder's final states) -> (per-example loss [B], outputs).

    Outputs at prediction: start_top_index / start_top_log_probs [B, K], end_top_index /
    end_top_log_probs [B, K, K] (row k: the ends for start k), answerable_logit [B];
    K = min(beam_size, L). The loss uses the gold positions at prediction too, so the dev
    loss means the same as the training loss.
    """
    hidden = tf.cast(hidden, tf.float32)
    seq_length = modeling.get_shape_list(hidden)[1]
    penalty = answer_mask_penalty(features["input_mask"], features["segment_ids"])  # [B, L]
    names = LayerNames()
    start_logits = tf.squeeze(modeling.dense(hidden, 1, names.next()), -1) + penalty  # [B, L]
    end_layers = _EndLayers(hidden.shape[-1], names.next())
    start_positions = features["start_positions"]
    gold_start = tf.gather(hidden, start_positions[:, None], batch_dims=1)  # [B, 1, H]
    end_logits = end_layers(gold_start, hidden)[:, 0] + penalty  # [B, L]
    losses = 0.5 * (_cross_entropy(start_logits, start_positions)
                    + _cross_entropy(end_logits, features["end_positions"]))
    answerable_loss, answerable_logit = _answerable_term(hidden, start_logits, config, names)
    losses += answerable_loss
    outputs = {"answerable_logit": answerable_logit}
    if is_training:
        return losses, outputs
    beam = min(config.beam_size, seq_length) if isinstance(seq_length, int) \
        else config.beam_size
    start_top_log_probs, start_top_index = tf.nn.top_k(tf.nn.log_softmax(start_logits),
                                                       k=beam)  # [B, K]
    start_vectors = tf.gather(hidden, start_top_index, batch_dims=1)  # [B, K, H]
    beam_end_logits = end_layers(start_vectors, hidden) + penalty[:, None, :]  # [B, K, L]
    end_top_log_probs, end_top_index = tf.nn.top_k(tf.nn.log_softmax(beam_end_logits),
                                                   k=beam)  # [B, K, K]
    outputs.update(start_top_index=start_top_index, start_top_log_probs=start_top_log_probs,
                   end_top_index=end_top_index, end_top_log_probs=end_top_log_probs)
    return losses, outputs
