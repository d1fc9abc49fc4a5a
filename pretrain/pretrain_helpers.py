"""In-graph dynamic masking and the gather/scatter/sampling ops around it.

B = batch, L = sequence length, N = max_predictions_per_seq (masked slots per example).
Unused slots have position 0 (the [CLS] position) and weight 0; position 0 is never
written by `scatter_update`, so those slots are harmless, as in the official code.
"""

import tensorflow.compat.v1 as tf

from model import modeling
from pretrain import pretrain_data


def gather_positions(sequence, positions):
    """sequence [B, L] or [B, L, D], positions [B, N] -> [B, N] or [B, N, D]."""
    return tf.gather(sequence, positions, batch_dims=1)


def scatter_update(sequence, updates, positions):
    """Writes updates [B, N] into sequence [B, L] (int32) at positions [B, N].

    Returns (updated sequence [B, L], updated_mask [B, L] int32). Position 0 is never
    updated (unused slots point there). Duplicate positions, which the masking below
    does not produce, would receive the mean of their updates.
    """
    _, seq_length = modeling.get_shape_list(sequence)
    one_hot = tf.one_hot(positions, seq_length, dtype=tf.int32)  # [B, N, L]
    not_first = tf.concat([tf.zeros([1], tf.int32), tf.ones([seq_length - 1], tf.int32)], 0)
    one_hot *= not_first
    count = tf.reduce_sum(one_hot, axis=1)  # [B, L]: how many slots write each position
    summed = tf.reduce_sum(one_hot * tf.expand_dims(updates, -1), axis=1)  # [B, L]
    updated_mask = tf.minimum(count, 1)
    updated = tf.where(count > 0, summed // tf.maximum(count, 1), sequence)
    return updated, updated_mask


def candidates_mask(inputs, disallowed_ids):
    """[B, L] bool: real tokens that may be masked (not [CLS], [SEP], [MASK], padding)."""
    allowed = tf.cast(inputs.input_mask, tf.bool)
    for token_id in disallowed_ids:
        allowed &= tf.not_equal(inputs.input_ids, token_id)
    return allowed


def gumbel_noise(shape):
    uniform = tf.random.uniform(shape, minval=0, maxval=1)
    return -tf.log(-tf.log(uniform + 1e-9) + 1e-9)


def mask(inputs, mask_prob, max_predictions_per_seq, mask_id, disallowed_ids,
         mask_token_share=0.85):
    """Dynamic masking (ELECTRA): picks positions to predict and hides most of them.

    Per example n = max(1, min(N, round(num_tokens * mask_prob))) distinct positions are
    drawn uniformly from the candidates (Gumbel top-k, i.e. without replacement, so an
    example has exactly n masked positions). `mask_token_share` of them become [MASK];
    the rest keep their token (ELECTRA never inserts random tokens here: its generator
    does that). Returns the inputs with masked input_ids and the masked_lm_* fields set.
    """
    n_slots = max_predictions_per_seq
    batch_size, seq_length = modeling.get_shape_list(inputs.input_ids)
    candidates = candidates_mask(inputs, disallowed_ids)  # [B, L]

    num_tokens = tf.cast(tf.reduce_sum(inputs.input_mask, -1), tf.float32)  # [B]
    num_to_predict = tf.maximum(1, tf.minimum(
        n_slots, tf.cast(tf.round(num_tokens * mask_prob), tf.int32)))  # [B]
    weights = tf.sequence_mask(num_to_predict, n_slots, dtype=tf.float32)  # [B, N]

    # Random order over candidates; non-candidates sink to the end of the ranking.
    scores = gumbel_noise([batch_size, seq_length]) + \
        (1.0 - tf.cast(candidates, tf.float32)) * -1e9  # [B, L]
    positions = tf.math.top_k(scores, k=n_slots, sorted=True).indices  # [B, N]
    # An example with fewer candidates than n keeps only its real candidates.
    weights *= tf.cast(gather_positions(candidates, positions), tf.float32)
    int_weights = tf.cast(weights, tf.int32)
    positions *= int_weights  # unused slots -> position 0
    masked_lm_ids = gather_positions(inputs.input_ids, positions) * int_weights  # [B, N]

    use_mask_token = tf.cast(tf.random.uniform([batch_size, n_slots]) < mask_token_share,
                             tf.int32)
    masked_ids, _ = scatter_update(inputs.input_ids, tf.fill([batch_size, n_slots], mask_id),
                                   positions * use_mask_token)
    return pretrain_data.get_updated_inputs(
        inputs, input_ids=tf.stop_gradient(masked_ids), masked_lm_positions=positions,
        masked_lm_ids=masked_lm_ids, masked_lm_weights=weights)


def unmask(inputs):
    """Puts the original tokens back at the masked positions."""
    unmasked_ids, _ = scatter_update(inputs.input_ids, inputs.masked_lm_ids,
                                     inputs.masked_lm_positions)
    return pretrain_data.get_updated_inputs(inputs, input_ids=unmasked_ids)


def sample_from_softmax(logits, disallow=None):
    """Token ids sampled from softmax(logits) with the Gumbel-max trick: [B, N, V] -> [B, N].

    disallow: [B, N, V] one-hot of tokens that must not be drawn (e.g. the original).
    """
    if disallow is not None:
        logits -= 1000.0 * disallow
    noise = gumbel_noise(modeling.get_shape_list(logits))
    return tf.argmax(logits + noise, -1, output_type=tf.int32)
